"""What a change to a few names does to the rest of a signed zone, decided from the
snapshot of its file: the part of the fast re-sign (:mod:`dnsseal.signfile.resign`) that
places names and mends the NSEC or NSEC3 chain.

Given the *affected* names (whose data may have changed) with their new data, and for every
other name the types the snapshot records, :class:`ChainPlan` answers what a full run
would decide: each name's :class:`~dnsseal.zone.model.NameKind` (as
:func:`~dnsseal.zone.model.layout` does), which names enter or leave the chain (for NSEC3
with the empty non-terminals above them, and opt-out), whose chain record therefore
changes (the predecessor of every name that enters or leaves, a name whose bitmap
changes), which blocks have signatures due for refresh, and the new chain records of all
the names it touches.  Names are walked in canonical order over the snapshot's rows merged
with the new names, so nothing is looked up in a whole-zone structure.

A change of zone cut or DNAME above names that did not change would change their kind:
that raises :class:`~dnsseal.signfile.resign.Fallback` (the careful path handles it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import dns.name
import dns.rdatatype

from dnsseal.signer import denial
from dnsseal.signfile.blockmatch import RowIndex
from dnsseal.signfile.filesnapshot import Snapshot
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import type_bitmap
from dnsseal.zone.model import CHAIN_TYPES, NameKind, OwnerName, RRset, Zone

if TYPE_CHECKING:
    from dnsseal.signer.sign import SignParams

T = dns.rdatatype
Record = tuple[dns.name.Name, int, int, bytes]
Key = tuple[bytes, ...]


class FallbackError(Exception):
    """Raised here, turned into :class:`~dnsseal.signfile.resign.Fallback` by the caller."""


def name_key(name: dns.name.Name) -> Key:
    """Canonical sort key: labels from the root, lower-cased (the root itself left out)."""
    return tuple(label.lower() for label in reversed(name.labels[:-1]))


class ChainPlan:
    """The plan for one fast re-sign (see the module docstring).

    ``data``: the affected names' new data (chain types removed, apex prepared);
    ``affected``: those names (a name not in ``data`` no longer holds data); ``owner_row``:
    the snapshot row of each affected name that had one; ``at``: where each row is in the
    file (-1: not found unchanged); ``row_name`` and ``parse_row`` give a row's owner and
    records; ``chain_rows``: NSEC3 rows whose chain record must be made again;
    ``known_rows``: rows of other names, when the caller knows them (no search).  Raises
    :class:`FallbackError`."""

    def __init__(
        self,
        snap: Snapshot,
        index: RowIndex,
        at: Sequence[int],
        row_name: Callable[[int], OwnerName],
        parse_row: Callable[[int], list[Record]],
        origin: dns.name.Name,
        params: SignParams,
        now: int,
        refresh: int,
        data: Zone,
        affected: set[dns.name.Name],
        owner_row: Mapping[dns.name.Name, int],
        chain_rows: set[int],
        known_rows: Mapping[dns.name.Name, int] | None = None,
    ) -> None:
        self.snap, self.index, self.at = snap, index, at
        self.row_name, self.parse_row = row_name, parse_row
        self.origin = origin
        self.depth = len(origin.labels)
        self.nsec3 = params.nsec3
        self.data = data
        self.affected = affected
        self.owner_row = owner_row
        self.row_owner = {j: name for name, j in owner_row.items() if j >= 0}
        self.known_rows = known_rows or {}
        self._types: dict[dns.name.Name, frozenset[int] | None] = {}
        self._kinds: dict[dns.name.Name, NameKind] = {}
        # New names (affected, no row) with data, in canonical order.
        self.new_names = sorted(
            (x for x in affected if owner_row.get(x, -1) < 0 and x in data.rrsets), key=name_key
        )
        self.new_keys = [name_key(x) for x in self.new_names]
        self.touched_rows: set[int] = set(chain_rows)
        self.due_rows: set[int] = set()
        self._check_cuts()
        self._find_due(now, refresh)
        # NSEC3 bookkeeping: hashed owner texts added (-> source name) and rows removed.
        self.added: dict[bytes, dns.name.Name | None] = {}
        self.removed_rows: set[int] = set()
        self.sources: dict[bytes, dns.name.Name] = {}
        self._added_sorted: list[bytes] = []
        if self.nsec3 is None:
            self._plan_nsec()
        else:
            self._plan_nsec3()

    # -- the new state of any name -----------------------------------------------------

    def types(self, name: dns.name.Name) -> frozenset[int] | None:
        """The data types ``name`` holds after the change, None when it holds none."""
        if name in self.affected:
            node = self.data.rrsets.get(name)
            return frozenset(node) if node else None
        if name in self._types:
            return self._types[name]
        j = self.known_rows.get(name, -1)
        if j < 0:
            j = self.index.find(name_key(name))
        got = None
        if j >= 0:
            t = frozenset(self.snap.types(j)) - CHAIN_TYPES
            got = t or None
        self._types[name] = got
        return got

    def kind(self, name: dns.name.Name) -> NameKind:
        """What :func:`~dnsseal.zone.model.layout` makes of ``name`` after the change."""
        got = self._kinds.get(name)
        if got is not None:
            return got
        labels = name.labels
        if len(labels) <= self.depth:
            got = NameKind.APEX
        else:
            t = self.types(name) or frozenset()
            got = NameKind.DELEGATION if T.NS in t else NameKind.AUTH
            parent = self.types(dns.name.Name(labels[1:])) or frozenset()
            if T.DNAME in parent:
                got = NameKind.OCCLUDED
            else:
                for i in range(1, len(labels) - self.depth):
                    up = self.types(dns.name.Name(labels[i:])) or frozenset()
                    if T.NS in up or T.DNAME in up:
                        got = NameKind.OCCLUDED
                        break
        self._kinds[name] = got
        return got

    def _old_types(self, name: dns.name.Name) -> frozenset[int] | None:
        j = self.owner_row.get(name, -1)
        if j < 0:
            return None
        return frozenset(self.snap.types(j)) - CHAIN_TYPES or None

    def _check_cuts(self) -> None:
        """A name that gains or loses NS or DNAME changes the kind of every name below it:
        those must all be affected names (their kind is then computed anew)."""
        for name in self.affected:
            old = self._old_types(name) or frozenset()
            new = self.types(name) or frozenset()
            is_apex = len(name.labels) <= self.depth
            cut_changed = not is_apex and ((T.NS in old) != (T.NS in new))
            if not cut_changed and (T.DNAME in old) == (T.DNAME in new):
                continue
            if is_apex:
                raise FallbackError("a DNAME appears or goes at the apex")
            key = name_key(name)
            j = self.index.position(key)
            n = len(self.snap)
            while j < n:
                k = self.index.key(j)
                if k == key:
                    j += 1
                    continue
                if k[: len(key)] != key:
                    break
                if j not in self.row_owner:
                    raise FallbackError(f"the zone cut or DNAME at {name} changes names below it")
                j += 1

    def _find_due(self, now: int, refresh: int) -> None:
        cols = self.snap.cols
        if (
            min(cols.min_exp, default=now + refresh + 1) - now > refresh
            and max(cols.max_inc, default=now) <= now
        ):
            return
        at = self.at
        self.due_rows = {
            j
            for j, (lo, hi) in enumerate(zip(cols.min_exp, cols.max_inc, strict=True))
            if (lo - now <= refresh or hi > now) and at[j] >= 0 and j not in self.row_owner
        }
        self.touched_rows |= self.due_rows

    # -- walking names in canonical order -------------------------------------------

    def _walk(self, key: Key, forward: bool,
              row: int = -1) -> Iterator[tuple[int, dns.name.Name | None]]:  # fmt: skip
        """Rows (``(row, None)``) and new names (``(-1, name)``) strictly after (or before)
        ``key`` in canonical order, then from the other end (one full round).  ``row``:
        the row whose owner has ``key``, when known (no search then)."""
        n = len(self.snap)
        index = self.index
        j = row if row >= 0 else index.position(key)
        m = bisect_right(self.new_keys, key) if forward else bisect_left(self.new_keys, key)
        if forward:
            if j < n and index.key(j) == key:
                j += 1
        else:
            j -= 1
        for _ in range(2):
            if forward:
                while j < n or m < len(self.new_names):
                    if m < len(self.new_names) and (j >= n or self.new_keys[m] < index.key(j)):
                        yield -1, self.new_names[m]
                        m += 1
                    else:
                        yield j, None
                        j += 1
                j, m = 0, 0
            else:
                while j >= 0 or m > 0:
                    if m > 0 and (j < 0 or self.new_keys[m - 1] > index.key(j)):
                        yield -1, self.new_names[m - 1]
                        m -= 1
                    else:
                        yield j, None
                        j -= 1
                j, m = n - 1, len(self.new_names)

    def _name(self, j: int, name: dns.name.Name | None) -> dns.name.Name:
        if name is not None:
            return name
        return self.row_owner.get(j) or self.row_name(j)

    # -- NSEC --------------------------------------------------------------------------

    def _in_nsec_chain(self, j: int, name: dns.name.Name | None) -> bool:
        if name is None and j not in self.row_owner:
            return T.NSEC in self.snap.types(j)  # unaffected: as before
        x = self._name(j, name)
        return self.types(x) is not None and self.kind(x) is not NameKind.OCCLUDED

    def _nsec_neighbour(self, name: dns.name.Name, forward: bool,
                        row: int = -1) -> tuple[int, dns.name.Name]:  # fmt: skip
        for j, x in self._walk(name_key(name), forward, row):
            if self._in_nsec_chain(j, x):
                return j, self._name(j, x)
        raise FallbackError("no NSEC chain")  # pragma: no cover - the apex is in it

    def _plan_nsec(self) -> None:
        for name in self.affected:
            j = self.owner_row.get(name, -1)
            old = j >= 0 and T.NSEC in self.snap.types(j)
            new = self.types(name) is not None and self.kind(name) is not NameKind.OCCLUDED
            if old != new:
                row, _ = self._nsec_neighbour(name, forward=False, row=j)
                if row >= 0:
                    self.touched_rows.add(row)

    # -- NSEC3 -------------------------------------------------------------------------

    def _hashed(self, name: dns.name.Name) -> bytes:
        assert self.nsec3 is not None
        digest = denial.nsec3_hash(canonical.name_wire(name), self.nsec3.salt,
                                   self.nsec3.iterations)  # fmt: skip
        label = canonical.base32hex_digests([digest])[0]
        suffix = self.snap.owner(0)
        return label + b"." + (b"" if suffix == b"." else suffix)

    def _chain_owner(self, m: int) -> bytes:
        return self.snap.owner(self.snap.chain[m])

    def _chain_row(self, text: bytes) -> int:
        chain = self.snap.chain
        m = bisect_left(range(len(chain)), text, key=self._chain_owner)
        return chain[m] if m < len(chain) and self._chain_owner(m) == text else -1

    def _data_included(self, name: dns.name.Name) -> bool:
        t = self.types(name)
        if t is None:
            return False
        kind = self.kind(name)
        if kind is NameKind.OCCLUDED:
            return False
        assert self.nsec3 is not None
        return not (kind is NameKind.DELEGATION and self.nsec3.opt_out and T.DS not in t)

    def _included_below(self, name: dns.name.Name) -> bool:
        key = name_key(name)
        for j, x in self._walk(key, forward=True):
            k = name_key(x) if x is not None else self.index.key(j)
            if len(k) <= len(key) or k[: len(key)] != key:
                return False
            if x is None and j not in self.row_owner:
                if self.snap.is_chain_row(j):
                    continue
                if self._chain_row(self._hashed(self.row_name(j))) >= 0:
                    return True
            elif self._data_included(self._name(j, x)):
                return True
        return False  # pragma: no cover - the walk always leaves the subtree

    def _same_place(self, name: dns.name.Name) -> bool:
        """Whether an affected name keeps its types and (no name above it being affected)
        its kind: then its place in the chain and its bitmap stay as they are."""
        old = self._old_types(name)
        return (
            old is not None
            and old == self.types(name)
            and not any(
                dns.name.Name(name.labels[i:]) in self.affected
                for i in range(1, len(name.labels) - self.depth)
            )
        )

    def _plan_nsec3(self) -> None:
        candidates: dict[dns.name.Name, bool] = {}  # name -> affected itself
        for name in self.affected:
            if self._same_place(name):
                continue  # no hashing: nothing about its NSEC3 record changes
            candidates[name] = True
            labels = name.labels
            for i in range(1, len(labels) - self.depth):
                candidates.setdefault(dns.name.Name(labels[i:]), False)
        for name, is_affected in candidates.items():
            if not is_affected and self.types(name) is not None:
                continue  # an unchanged data name keeps its place
            h = self._hashed(name)
            row = self._chain_row(h)
            old = row >= 0
            if self.types(name) is not None:
                new = self._data_included(name)
            else:
                new = len(name.labels) > self.depth and self._included_below(name)
            if new:
                self.sources[h] = name
            if new and not old:
                if h in self.added or self.index.find(_text_key(h)) >= 0:
                    raise FallbackError(f"NSEC3 owner of {name} collides with another name")
                self.added[h] = name
            elif old and not new:
                self.removed_rows.add(row)
            elif new and is_affected:
                self.touched_rows.add(row)  # its bitmap may change (see _same_place)
        self._added_sorted = sorted(self.added)
        for h in [*self.added, *(self.snap.owner(j) for j in self.removed_rows)]:
            prev = self._nsec3_neighbour(h, forward=False)
            row = self._chain_row(prev)
            if row >= 0 and row not in self.removed_rows:
                self.touched_rows.add(row)
        self.touched_rows -= self.removed_rows

    def _nsec3_neighbour(self, text: bytes, forward: bool) -> bytes:
        """The hashed owner after (or before) ``text`` in the new chain."""
        chain = self.snap.chain
        m = (bisect_right if forward else bisect_left)(range(len(chain)), text,
                                                       key=self._chain_owner)  # fmt: skip
        a = (bisect_right if forward else bisect_left)(self._added_sorted, text)
        step = 1 if forward else -1
        if not forward:
            m -= 1
            a -= 1
        for _ in range(2):
            while True:
                while 0 <= m < len(chain) and chain[m] in self.removed_rows:
                    m += step
                old = self._chain_owner(m) if 0 <= m < len(chain) else None
                new = self._added_sorted[a] if 0 <= a < len(self._added_sorted) else None
                if old is None and new is None:
                    break
                if new is None or (old is not None and (old < new if forward else old > new)):
                    assert old is not None
                    return old
                return new
            m = 0 if forward else len(chain) - 1
            a = 0 if forward else len(self._added_sorted) - 1
        raise FallbackError("no NSEC3 chain")  # pragma: no cover - the apex is in it

    # -- the chain records of the touched names --------------------------------------

    def chain_records(self, data: Zone, kinds: Mapping[dns.name.Name, NameKind]) -> list[RRset]:
        """The NSEC or NSEC3 RRsets of every name this plan touches, as a full run makes
        them (``data``: the touched names' data, prepared; ``kinds``: their kinds)."""
        ttl = data.soa().negative_ttl
        out: list[RRset] = []
        if self.nsec3 is None:
            rows = {name: self.owner_row.get(name, -1) for name in self.affected}
            rows.update((self.row_name(j), j) for j in self.touched_rows)
            bitmaps: dict[tuple[NameKind, tuple[int, ...]], bytes] = {}
            for name, row in rows.items():
                node = data.rrsets.get(name)
                if not node or kinds[name] is NameKind.OCCLUDED:
                    continue
                _, nxt = self._nsec_neighbour(name, forward=True, row=row)
                key = (kinds[name], tuple(sorted(node)))
                bitmap = bitmaps.get(key)
                if bitmap is None:
                    bitmap = bitmaps[key] = type_bitmap(denial.nsec_types(node, kinds[name]))
                rdata = canonical.name_wire(nxt) + bitmap
                out.append(RRset(name, T.NSEC, ttl, (rdata,)))
            return out
        params = self.nsec3
        head = params.param_rdata()[:1] + bytes((params.flags,)) + params.param_rdata()[2:]
        owners = [*self.added, *(self.snap.owner(j) for j in self.touched_rows
                                 if self.snap.is_chain_row(j))]  # fmt: skip
        for text in owners:
            after = self._nsec3_neighbour(text, forward=True)
            source = self.sources.get(text)
            if source is not None:
                node = data.rrsets.get(source)
                if node:
                    kind = kinds.get(source) or self.kind(source)
                    types = denial._included_types(node, kind, params.opt_out)
                    bitmap = type_bitmap(types) if types is not None else b""
                else:
                    bitmap = b""  # an empty non-terminal
            else:
                bitmap = self.snap.chain_bitmap(self._chain_row(text))
            digest = _b32_decode(after.split(b".", 1)[0])
            rdata = head + bytes((len(digest),)) + digest + bitmap
            label = text.split(b".", 1)[0]
            owner = OwnerName.trusted((label, *self.origin.labels))
            out.append(RRset(owner, T.NSEC3, ttl, (rdata,)))
        return out


def _text_key(text: bytes) -> Key:
    labels = text.split(b".")
    labels.pop()
    labels.reverse()
    return tuple(labels)


def _b32_decode(label: bytes) -> bytes:
    import base64

    return base64.b32hexdecode(label.upper())
