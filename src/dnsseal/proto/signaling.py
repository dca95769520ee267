"""The child operator's half of authenticated bootstrapping (RFC 9615 s3-5): the records of
a signaling zone ``_signal.<ns host>``.  PURE: zones in, records and diffs out.

For every zone served here whose apex NS set names the signaling zone's host, the CDS and
CDNSKEY RRsets of its apex are copied, unchanged, to ``_dsboot.<child>._signal.<host>``
while the child waits for its DS (RFC 9615 s5.1: they go away once the parent has it).
The signaling zone is an ordinary signed zone, so its NSEC/NSEC3 chain proves NODATA for
other types and covers the empty non-terminals; it has no zone cut at a signaling name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from dnsseal.proto.dsautomation import signal_name
from dnsseal.zone.diff import Record, ZoneDiff
from dnsseal.zone.model import RRset, Zone

T = dns.rdatatype
SIGNAL_TYPES = (T.CDS, T.CDNSKEY)
SIGNAL_LABEL = b"_signal"


@dataclass(frozen=True, slots=True)
class ChildApex:
    """What the signaling zone needs from one served zone."""

    origin: dns.name.Name
    ns: frozenset[dns.name.Name]
    rrsets: tuple[RRset, ...]  # its apex CDS and CDNSKEY RRsets (may be empty)
    waiting: bool  # a key waits for its DS at the parent


def host_of(signaling_origin: dns.name.Name) -> dns.name.Name | None:
    """The name server host a signaling zone stands for (``_signal.ns1.example.`` ->
    ``ns1.example.``), None when the name does not start with ``_signal``."""
    labels = signaling_origin.labels
    if len(labels) < 2 or labels[0].lower() != SIGNAL_LABEL:
        return None
    return dns.name.Name(labels[1:])


def child_apex(zone: Zone, waiting: bool) -> ChildApex:
    """The parts of ``zone`` (a signed or unsigned model) the signaling zone copies."""
    ns = zone.get(zone.origin, T.NS)
    names = frozenset(_ns_targets(ns)) if ns is not None else frozenset()
    rrsets = tuple(r for t in SIGNAL_TYPES if (r := zone.get(zone.origin, t)) is not None)
    return ChildApex(zone.origin, names, rrsets, waiting)


def _ns_targets(ns: RRset) -> Iterable[dns.name.Name]:
    for wire in ns.rdatas:
        yield dns.name.from_wire(wire, 0)[0].canonicalize()


def wanted(signaling_origin: dns.name.Name, children: Iterable[ChildApex]) -> set[Record]:
    """The signaling records the zone should hold now."""
    host = host_of(signaling_origin)
    if host is None:
        return set()
    out: set[Record] = set()
    for c in children:
        if not c.waiting or host.canonicalize() not in c.ns or not c.rrsets:
            continue
        owner = signal_name(c.origin, host).canonicalize()
        if not owner.is_subdomain(signaling_origin):
            continue
        for rr in c.rrsets:
            for rd in rr.rdatas:
                out.add((owner, rr.rtype, rr.ttl, rd))
    return out


def current(zone: Zone) -> set[Record]:
    """The signaling records in ``zone`` (CDS/CDNSKEY below its apex)."""
    return {
        (rr.name, rr.rtype, rr.ttl, rd)
        for rr in zone.iter_rrsets()
        if rr.rtype in SIGNAL_TYPES and rr.name != zone.origin
        for rd in rr.rdatas
    }


def signaling_diff(zone: Zone, want: set[Record]) -> ZoneDiff:
    """The change that turns ``zone``'s signaling records into ``want``."""
    have = current(zone)
    return ZoneDiff(tuple(sorted(have - want, key=_order)), tuple(sorted(want - have, key=_order)))


def _order(r: Record) -> tuple[str, int, bytes]:
    return (r[0].to_text(), r[1], r[3])


def zone_text(signaling_origin: dns.name.Name, want: set[Record]) -> str:
    """The records as master-file lines (``dnsseal signaling-zone``)."""
    import dns.rdata
    import dns.rdataclass

    lines = []
    for owner, rtype, ttl, wire in sorted(want, key=_order):
        rd = dns.rdata.from_wire(dns.rdataclass.IN, T.RdataType(rtype), wire, 0, len(wire))
        lines.append(f"{owner.to_text()} {ttl} IN {T.to_text(T.RdataType(rtype))} {rd.to_text()}")
    return "".join(line + "\n" for line in lines)
