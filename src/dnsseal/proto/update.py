"""Dynamic update (RFC 2136), pure: an UPDATE message and the zone's data -> a change.

:func:`evaluate` checks the zone section, the prerequisites (RFC 2136 2.4 / 3.2) against
the zone's current data and turns the update section (3.4) into a
:class:`~dnsseal.zone.diff.ZoneDiff` against that data, or says which rcode to answer.
Records the server manages (RRSIG, NSEC, NSEC3, NSEC3PARAM; DNSKEY / CDS / CDNSKEY below
the apex; the signing-state records, TYPE65534 at the apex, as BIND refuses them) are
REFUSED; the SOA is the server's (its serial follows every change), so SOA
updates are ignored, as is deleting the apex NS RRset (3.4.2.3/3.4.2.4).  Who may update
is the caller's ACL decision (:mod:`dnsseal.proto.acl`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsseal.signer.incremental import SIGNER_TYPES
from dnsseal.signer.signingstate import PRIVATE_TYPE
from dnsseal.zone import canonical
from dnsseal.zone.diff import Record, ZoneDiff, apply, diff
from dnsseal.zone.model import Zone

T = dns.rdatatype
IN = dns.rdataclass.IN
ANY = dns.rdataclass.ANY
NONE = dns.rdataclass.NONE
APEX_ONLY = frozenset({T.DNSKEY, T.CDS, T.CDNSKEY})
META = frozenset({T.ANY, T.AXFR, T.IXFR, T.MAILA, T.MAILB, T.OPT, T.TSIG, T.TKEY})


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """``rcode`` NOERROR with the ``change`` to make (possibly empty), or the error rcode
    and why."""

    rcode: int
    change: ZoneDiff = field(default_factory=ZoneDiff)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.rcode == dns.rcode.NOERROR


def zone_name(msg: dns.message.Message) -> dns.name.Name | None:
    """The zone an UPDATE is for (its single zone-section entry, SOA class IN)."""
    if msg.opcode() != dns.opcode.UPDATE or len(msg.question) != 1:
        return None
    z = msg.question[0]
    if z.rdtype != T.SOA or z.rdclass != IN:
        return None
    return z.name


def _tt(rtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType(rtype))


def _cls(rr: dns.rrset.RRset) -> int:
    """The class as sent: dnspython reads class ANY / NONE in UPDATE sections into
    ``deleting`` (with the zone's class in ``rdclass``)."""
    return int(rr.deleting) if rr.deleting is not None else int(rr.rdclass)


def _fail(rcode: int, reason: str) -> UpdateResult:
    return UpdateResult(rcode, ZoneDiff(), reason)


def _rrset_rdatas(zone: Zone, name: dns.name.Name, rtype: int) -> set[bytes]:
    rr = zone.get(name.canonicalize(), rtype)
    return set(rr.rdatas) if rr is not None else set()


def _name_exists(zone: Zone, name: dns.name.Name) -> bool:
    return bool(zone.rrsets.get(name.canonicalize()))


def check_prerequisites(zone: Zone, prereqs: Iterable[dns.rrset.RRset]) -> UpdateResult | None:
    """RFC 2136 3.2: None when every prerequisite holds, else the failure."""
    origin = zone.origin
    wanted: dict[tuple[dns.name.Name, int], set[bytes]] = {}
    for rr in prereqs:
        name = rr.name.canonicalize()
        if not name.is_subdomain(origin):
            return _fail(dns.rcode.NOTZONE, f"prerequisite {rr.name} is outside {origin}")
        if rr.ttl != 0:
            return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: TTL must be 0")
        if _cls(rr) == ANY:
            if len(rr):
                return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: RDATA with class ANY")
            if rr.rdtype == T.ANY:
                if not _name_exists(zone, name):
                    return _fail(dns.rcode.NXDOMAIN, f"{rr.name} does not exist")
            elif not _rrset_rdatas(zone, name, rr.rdtype):
                return _fail(dns.rcode.NXRRSET, f"{rr.name} {T.to_text(rr.rdtype)} does not exist")
        elif _cls(rr) == NONE:
            if len(rr):
                return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: RDATA with class NONE")
            if rr.rdtype == T.ANY:
                if _name_exists(zone, name):
                    return _fail(dns.rcode.YXDOMAIN, f"{rr.name} exists")
            elif _rrset_rdatas(zone, name, rr.rdtype):
                return _fail(dns.rcode.YXRRSET, f"{rr.name} {T.to_text(rr.rdtype)} exists")
        elif _cls(rr) == IN:
            key = (name, int(rr.rdtype))
            wanted.setdefault(key, set()).update(canonical.rdata_wire(rd) for rd in rr)
        else:
            return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: class {_cls(rr)}")
    for (name, rtype), rdatas in wanted.items():  # value-dependent: whole RRsets equal
        if _rrset_rdatas(zone, name, rtype) != rdatas:
            return _fail(dns.rcode.NXRRSET, f"{name} {_tt(rtype)} differs")
    return None


def _prescan(zone: Zone, updates: Iterable[dns.rrset.RRset]) -> UpdateResult | None:
    """RFC 2136 3.4.1 plus our refusals of records the server manages."""
    origin = zone.origin
    for rr in updates:
        name = rr.name.canonicalize()
        if not name.is_subdomain(origin):
            return _fail(dns.rcode.NOTZONE, f"{rr.name} is outside {origin}")
        rtype = int(rr.rdtype)
        if _cls(rr) == IN:
            if rtype in META:
                return _fail(dns.rcode.FORMERR, f"{rr.name}: cannot add type {_tt(rtype)}")
        elif _cls(rr) == ANY:
            if rr.ttl != 0 or len(rr) or (rtype in META and rtype != T.ANY):
                return _fail(dns.rcode.FORMERR, f"{rr.name}: malformed delete")
        elif _cls(rr) == NONE:
            if rr.ttl != 0 or rtype in META:
                return _fail(dns.rcode.FORMERR, f"{rr.name}: malformed delete")
        else:
            return _fail(dns.rcode.FORMERR, f"{rr.name}: class {_cls(rr)}")
        if (
            rtype in SIGNER_TYPES
            or (rtype in APEX_ONLY and name != origin)
            or (rtype == PRIVATE_TYPE and name == origin)
        ):
            return _fail(
                dns.rcode.REFUSED,
                f"{rr.name} {_tt(rtype)}: maintained by the server, not by updates",
            )
    return None


def evaluate(msg: dns.message.Message, zone: Zone, served: Zone | None = None) -> UpdateResult:
    """Check an UPDATE for ``zone`` (its unsigned data) and compute the change.  The
    prerequisites are checked against ``served`` (the zone as served, DNSSEC records
    included) when given.  Updates apply in order (each sees the effect of the previous
    ones, RFC 2136 3.4.2)."""
    prereqs = msg.answer  # dnspython: the prerequisite section is the answer section
    updates = msg.authority  # and the update section the authority section
    failed = check_prerequisites(served or zone, prereqs) or _prescan(zone, updates)
    if failed is not None:
        return failed
    origin = zone.origin
    current = zone
    for rr in updates:
        name = rr.name.canonicalize()
        rtype = int(rr.rdtype)
        step_rm: list[Record] = []
        step_add: list[Record] = []
        if _cls(rr) == IN:
            if rtype == T.SOA:
                continue  # the server owns the SOA serial
            node = current.rrsets.get(name, {})
            if rtype == T.CNAME and any(t != T.CNAME for t in node):
                continue  # 3.4.2.2: no CNAME next to other data
            if rtype != T.CNAME and T.CNAME in node:
                continue
            existing = current.get(name, rtype)
            new = {canonical.rdata_wire(rd) for rd in rr}
            if existing is not None and existing.ttl != rr.ttl:
                # One TTL per RRset (RFC 2181 5.2): the new TTL applies to all of it.
                step_rm += [(name, rtype, existing.ttl, rd) for rd in existing.rdatas]
                new |= set(existing.rdatas)
            elif existing is not None:
                new -= set(existing.rdatas)
            if rtype == T.CNAME and existing is not None:
                step_rm += [(name, rtype, existing.ttl, rd) for rd in existing.rdatas]
                new = {canonical.rdata_wire(rd) for rd in rr}
            step_add += [(name, rtype, rr.ttl, rd) for rd in sorted(new)]
        elif _cls(rr) == ANY:
            node = current.rrsets.get(name, {})
            types = list(node) if rtype == T.ANY else [rtype]
            for t in types:
                if name == origin and t in (T.SOA, T.NS):
                    continue  # the apex keeps its SOA and NS (3.4.2.3)
                existing = node.get(t)
                if existing is not None:
                    step_rm += [(name, t, existing.ttl, rd) for rd in existing.rdatas]
        else:  # NONE: delete these records
            if rtype == T.SOA:
                continue
            existing = current.get(name, rtype)
            if existing is None:
                continue
            gone = {canonical.rdata_wire(rd) for rd in rr} & set(existing.rdatas)
            if name == origin and rtype == T.NS and gone == set(existing.rdatas):
                continue  # never the last apex NS
            step_rm += [(name, rtype, existing.ttl, rd) for rd in sorted(gone)]
        if step_rm or step_add:
            current = apply(current, ZoneDiff(tuple(step_rm), tuple(step_add)))
    # The net effect only: a record added then removed in one message is no change.
    return UpdateResult(dns.rcode.NOERROR, diff(zone, current))
