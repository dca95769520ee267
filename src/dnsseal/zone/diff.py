"""Differences between zone versions, record by record (what IXFR and UPDATE carry)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dns.name
import dns.rdata
import dns.rdatatype

from dnsseal.zone import canonical
from dnsseal.zone.model import RRset, Zone, ZoneBuilder

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
    return _ordered(set(records(old)), set(records(new)))


def _order(r: Record) -> tuple[tuple[bytes, ...], int, bytes]:
    return (tuple(label.lower() for label in reversed(r[0].labels)), r[1], r[3])


def _ordered(before: set[Record], after: set[Record]) -> ZoneDiff:
    return ZoneDiff(
        tuple(sorted(before - after, key=_order)), tuple(sorted(after - before, key=_order))
    )


def apply(zone: Zone, change: ZoneDiff) -> Zone:
    """``zone`` with ``change`` applied.  Removing a record that is not there is ignored;
    a record's TTL need not match to remove it (RFC 2136 semantics).  TTLs of an RRset that
    differ are reduced to the smallest (RFC 2181 5.2), as :class:`ZoneBuilder` does.

    Costs O(change): the outer mappings are copied, only the changed names' nodes are
    rebuilt; every other node and RRset is shared with ``zone``."""
    if not change:
        return zone
    owners = ZoneBuilder(zone.origin, zone.rdclass)  # one OwnerName per changed name
    rm: dict[dns.name.Name, dict[tuple[bool, int], set[bytes]]] = {}
    add: dict[dns.name.Name, dict[tuple[bool, int], list[tuple[int, bytes]]]] = {}
    for name, t, _, rd in change.removed:
        key = (True, _covered(rd)) if t == T.RRSIG else (False, t)
        rm.setdefault(owners.owner(name), {}).setdefault(key, set()).add(rd)
    for name, t, ttl, rd in change.added:
        key = (True, _covered(rd)) if t == T.RRSIG else (False, t)
        add.setdefault(owners.owner(name), {}).setdefault(key, []).append((ttl, rd))
    # dict.copy copies the table as it is; dict() of a dict with holes (deleted owners)
    # inserts every key again, comparing the keys whose hashes collide.
    rrsets = _copy(zone.rrsets)
    rrsigs = _copy(zone.rrsigs)
    for name in rm.keys() | add.keys():
        gone = rm.get(name, {})
        new = add.get(name, {})
        for sig in (False, True):
            table = rrsigs if sig else rrsets
            keys = [k for k in (*gone, *new) if k[0] is sig]
            if not keys:
                continue
            old_node = table.get(name)
            node = dict(old_node) if old_node is not None else {}
            owner = next(iter(old_node.values())).name if old_node else name
            for key in dict.fromkeys(keys):
                t = key[1]
                old = node.get(t)
                kept = set(old.rdatas) - gone.get(key, set()) if old is not None else set()
                low: int | None = old.ttl if old is not None and kept else None
                for add_ttl, rd in new.get(key, ()):
                    kept.add(rd)
                    low = add_ttl if low is None else min(low, add_ttl)
                if kept:
                    assert low is not None
                    if old is not None and low == old.ttl and kept == set(old.rdatas):
                        continue
                    node[t] = RRset(owner, T.RRSIG if sig else t, low, tuple(sorted(kept)))
                else:
                    node.pop(t, None)
            if node:
                table[name] = node
            else:
                table.pop(name, None)
    return Zone(zone.origin, rrsets, rrsigs, zone.rdclass)


def _covered(rrsig_rdata: bytes) -> int:
    return int.from_bytes(rrsig_rdata[:2], "big")


def records_at(zone: Zone, names: Iterable[dns.name.Name]) -> set[Record]:
    """The records (signatures included) ``zone`` has at ``names``."""
    out: set[Record] = set()
    for name in names:
        for rr in zone.rrsets.get(name, {}).values():
            out.update((rr.name, rr.rtype, rr.ttl, rd) for rd in rr.rdatas)
        for rr in zone.rrsigs.get(name, {}).values():
            out.update((rr.name, T.RRSIG, rr.ttl, rd) for rd in rr.rdatas)
    return out


def _copy(table: Mapping[dns.name.Name, Mapping[int, RRset]]) -> dict[dns.name.Name, Any]:
    return table.copy() if type(table) is dict else dict(table)


def diff_at(old: Zone, new: Zone, names: Iterable[dns.name.Name]) -> ZoneDiff:
    """:func:`diff` for zones known to differ only at ``names`` (O(those names))."""
    names = list(names)
    return _ordered(records_at(old, names), records_at(new, names))


def touched(change: ZoneDiff) -> set[dns.name.Name]:
    """The (lower-case) owner names ``change`` has records at."""
    return {r[0].canonicalize() for r in (*change.removed, *change.added)}
