"""Differences between zone versions, record by record (what IXFR and UPDATE carry)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdatatype

from dnsseal.zone import canonical
from dnsseal.zone.model import Zone, ZoneBuilder

T = dns.rdatatype
# (owner, type, TTL, canonical RDATA); an RRSIG's covered type is in its RDATA.
Record = tuple[dns.name.Name, int, int, bytes]


@dataclass(frozen=True, slots=True)
class ZoneDiff:
    """Records to remove, then records to add.  A TTL change is a removal and an addition."""

    removed: tuple[Record, ...] = ()
    added: tuple[Record, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.removed or self.added)


def record(name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> Record:
    """A diff record from a dnspython rdata (as UPDATE or IXFR handling has them)."""
    return (name, int(rdata.rdtype), ttl, canonical.rdata_wire(rdata))


def records(zone: Zone) -> Iterator[Record]:
    """Every record of ``zone``, signatures included."""
    for rr in zone.iter_rrsets():
        for rd in rr.rdatas:
            yield (rr.name, rr.rtype, rr.ttl, rd)
    for node in zone.rrsigs.values():
        for rr in node.values():
            for rd in rr.rdatas:
                yield (rr.name, T.RRSIG, rr.ttl, rd)


def diff(old: Zone, new: Zone) -> ZoneDiff:
    """The records to remove from ``old`` and add to it to get ``new``, in canonical order
    of owner then type."""
    before = set(records(old))
    after = set(records(new))

    def order(r: Record) -> tuple[tuple[bytes, ...], int, bytes]:
        return (tuple(label.lower() for label in reversed(r[0].labels)), r[1], r[3])

    return ZoneDiff(tuple(sorted(before - after, key=order)), tuple(sorted(after - before,
                                                                          key=order)))  # fmt: skip


def apply(zone: Zone, change: ZoneDiff) -> Zone:
    """``zone`` with ``change`` applied.  Removing a record that is not there is ignored;
    a record's TTL need not match to remove it (RFC 2136 semantics)."""
    gone = {(name.canonicalize(), t, rd) for name, t, _, rd in change.removed}
    b = ZoneBuilder(zone.origin, zone.rdclass)
    for name, t, ttl, rd in records(zone):
        if (name, t, rd) not in gone:
            b.add(name, t, ttl, rd)
    for name, t, ttl, rd in change.added:
        b.add(name, t, ttl, rd)
    return b.build()
