"""Integrity checks of a loaded zone, as ``named-checkzone`` does them (its defaults:
``check-integrity``, ``check-mx``, ``check-srv-cname``, ``check-mx-cname``).

Pure: a :class:`~dnsseal.zone.model.Zone` in, findings out.  Each finding names the owner
and type of the record at fault and says what is wrong in BIND's words, so an operator who
knows named-checkzone's output reads ours the same way:

* error: an NS of the apex that is a CNAME, or an in-zone NS with no address records;
* warning: an MX or SRV target that is a CNAME or has no address records, a delegation
  whose in-zone name server has no glue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from dnsseal.zone import canonical
from dnsseal.zone.model import Zone

T = dns.rdatatype
ERROR, WARNING = "error", "warning"
_ADDRESS = (T.A, T.AAAA)


@dataclass(frozen=True, slots=True)
class ZoneFinding:
    severity: str  # ERROR or WARNING
    owner: dns.name.Name
    rtype: int
    message: str
    apex: bool = False  # BIND writes "NS '...'" for the apex's NS, "owner/TYPE '...'" else

    def __str__(self) -> str:
        if self.apex:
            return f"{dns.rdatatype.to_text(dns.rdatatype.RdataType(self.rtype))} {self.message}"
        owner = self.owner.to_text(omit_final_dot=True)
        return (
            f"{owner}/{dns.rdatatype.to_text(dns.rdatatype.RdataType(self.rtype))} {self.message}"
        )


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)


def _target(rtype: int, wire: bytes) -> dns.name.Name:
    """The host name an NS, MX or SRV record points to."""
    offset = {int(T.NS): 0, int(T.MX): 2, int(T.SRV): 6}[rtype]
    return canonical.name_from_wire(wire, offset)[0]


def _delegations(zone: Zone) -> list[dns.name.Name]:
    return [n for n, node in zone.rrsets.items() if n != zone.origin and T.NS in node]


def _below(name: dns.name.Name, cuts: list[dns.name.Name]) -> dns.name.Name | None:
    return next((c for c in cuts if name.is_subdomain(c)), None)


def _has_address(zone: Zone, name: dns.name.Name) -> bool:
    node = zone.rrsets.get(name, {})
    return any(t in node for t in _ADDRESS)


def _is_cname(zone: Zone, name: dns.name.Name) -> bool:
    return T.CNAME in zone.rrsets.get(name, {})


def check_zone(zone: Zone) -> list[ZoneFinding]:
    """Every finding of ``zone``, in canonical owner order."""
    return list(_findings(zone))


def _findings(zone: Zone) -> Iterator[ZoneFinding]:
    cuts = _delegations(zone)
    for owner in zone.names():
        node = zone.rrsets[owner]
        cut = _below(owner, cuts)
        if cut is not None and owner != cut:
            continue  # glue and occluded data: not checked as authoritative data
        for rtype in (T.NS, T.MX, T.SRV):
            rrset = node.get(rtype)
            if rrset is None:
                continue
            for wire in rrset.rdatas:
                target = _target(rtype, wire)
                if target == dns.name.root or not target.is_subdomain(zone.origin):
                    continue  # out of zone: nothing to check here
                yield from _check_target(zone, owner, rtype, target, cuts)


def _check_target(
    zone: Zone,
    owner: dns.name.Name,
    rtype: int,
    target: dns.name.Name,
    cuts: list[dns.name.Name],
) -> Iterator[ZoneFinding]:
    quoted = f"'{_text(target)}'"
    if _is_cname(zone, target):
        sev = ERROR if rtype == T.NS else WARNING
        apex = rtype == T.NS and owner == zone.origin
        yield ZoneFinding(sev, owner, rtype, f"{quoted} is a CNAME (illegal)", apex)
        return
    if _has_address(zone, target):
        return
    if rtype == T.NS and owner != zone.origin:  # a delegation's name server
        if target.is_subdomain(owner):
            yield ZoneFinding(
                WARNING,
                owner,
                rtype,
                f"{quoted} has no REQUIRED GLUE address records (A or AAAA)",
            )
        return
    if _below(target, cuts) is not None:
        return  # served by the child: its addresses are the child's business
    apex = rtype == T.NS
    sev = ERROR if apex else WARNING
    yield ZoneFinding(sev, owner, rtype, f"{quoted} has no address records (A or AAAA)", apex)
