"""Answers straight from the query bytes for the questions that make up nearly all traffic.

:class:`WireTable` holds the served zones keyed by the lower-cased wire form of their origin.
:meth:`WireTable.answer` reads a plain query by slicing its bytes (header, one question with
an uncompressed name, at most one EDNS version 0 OPT), finds the zone and the node with dict
lookups on bytes and tuples of bytes, and, for

* a name holding data of the asked type (the RRset and, with DO, its RRSIG RRset),
* NODATA at an existing name or an empty non-terminal,
* NXDOMAIN where no wildcard applies (SOA, and with DO the NSEC or NSEC3 proofs),

concatenates the response: a packed header, the query's own question bytes (its case kept),
the RRsets' uncompressed response wire memoised on the snapshot (compression is optional,
RFC 1035 4.1.4) and the OPT record.  No dnspython name, message or renderer is built.

Everything else returns None and takes :class:`dnsseal.proto.engine.Engine`'s general path,
unchanged: other opcodes and classes, TSIG, compressed or odd question names, ANY, RRSIG,
NS, DS and meta-types, CNAME and DNAME chains, wildcards, names at or under a delegation,
and answers that do not fit the client's buffer (the general path compresses or truncates).
The denial proofs come from :func:`dnsseal.proto.answer.nodata` and
:func:`dnsseal.proto.answer.nxdomain`, the functions the general path uses, so both paths
give the same records; tests/server/test_wiretable.py compares them on random questions.
"""

from __future__ import annotations

import bisect
import struct
import threading
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal.proto.answer import Answer, nodata, nxdomain
from dnsseal.proto.fastpath import options_ok, rrset_wire
from dnsseal.proto.snapshot import (
    DNAME,
    NS,
    NSEC,
    NSEC3,
    SHA1_B32_LEN,
    Key,
    Node,
    WireRRsets,
    ZoneSnapshot,
    negative_wires,
    nsec3_digest,
    nsec3_int,
    sort_key,
)

HEADER = struct.Struct("!HHHHHH")
QD_ONLY = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
NO_AR, ONE_AR = b"\x00\x00", b"\x00\x01"
CLASS_IN = b"\x00\x01"
OPT_TYPE = b"\x00\x29"
QR_AA = 0x8400
ECHO = 0x0110  # RD and CD are copied from the query
NXDOMAIN = int(dns.rcode.NXDOMAIN)
CNAME = int(dns.rdatatype.CNAME)
RRSIG = int(dns.rdatatype.RRSIG)
WILDCARD = b"*"
TCP_MAX = 65535
MIN_UDP = 512
WILDCARD_MEMO = 10_000  # closest enclosers whose wildcard's covering NSEC is remembered
DENIAL_MEMO = 50_000  # NSEC RRsets (with RRSIGs) kept joined as one bytes object per zone

# (sections' wire, rcode, answer count, authority count)
Sections = tuple[bytes, int, int, int]
# A WireTable.names entry: the zone's slot, the node, and for the lane that answers a type
# the node holds (here and in C) its WireRRsets' wires and counts and, when the zone is
# signed, its RRSIGs' (None where the node's RRsets are not WireRRsets).
Names = tuple[
    "ZoneSlot",
    Node,
    Mapping[int, bytes] | None,
    dict[int, int] | None,
    Mapping[int, bytes] | None,
    dict[int, int] | None,
]
# A zone's share of a WireTable: (snapshot, zone, names entries, exist entries, the slot
# its entries hold)
Prefilled = tuple[
    ZoneSnapshot, "WireZone", dict[bytes, Names], dict[bytes, "ZoneSlot | None"], "ZoneSlot"
]

T = dns.rdatatype
# Question types answered here: every type except 0, the meta range (RFC 6895: OPT-like
# 128-255 covers TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY), OPT, and the types the general
# path treats specially (RRSIG like ANY, NS with addresses, DS from the parent side).
GENERAL_QTYPES = frozenset({0, int(T.OPT), int(T.RRSIG), int(T.NS), int(T.DS), *range(128, 256)})


# Shared empty memo and list of the WireZones that do not need their own (see WireZone).
UNUSED: dict[Any, Any] = {}
NONE: list[Any] = []


def _unused() -> dict[Any, Any]:
    return UNUSED


def _none() -> list[Any]:
    return NONE


def _own(wz: WireZone, memo: str) -> dict[Any, Any]:
    """The memo ``memo`` of ``wz`` to write to: made on the first write (two threads
    making it at once lose one memo's entries, nothing else)."""
    got: dict[Any, Any] = getattr(wz, memo)
    if got is UNUSED:
        got = {}
        object.__setattr__(wz, memo, got)
    return got


@dataclass(frozen=True, slots=True, eq=False)
class WireZone:
    """One served zone as the byte path needs it."""

    snap: ZoneSnapshot
    depth: int  # labels of the origin, the root label included
    walk: bool  # the zone has delegations or DNAMEs: a name's ancestors must be checked
    signed: bool
    nsec: bool  # signed with NSEC (the NXDOMAIN proof is built here without an Answer)
    soa: tuple[bytes, int]  # negative-answer SOA (RFC 2308 TTL): wire and record count
    soa_sig: tuple[bytes, int]  # the same with its RRSIG
    # The memos below start as the shared, never written UNUSED (a zone that never
    # answers a denial here costs no dict for them); _own gives the zone its own on the
    # first write.
    wildcard_cover: dict[Key, int] = field(default_factory=_unused)  # NSEC index covering *.ce
    nsec_denial: dict[int, tuple[bytes, int]] = field(default_factory=_unused)  # by NSEC index
    # NSEC3: closest encloser -> (closest provable encloser, its NSEC3 node, the node
    # covering its wildcard, its wire length); NSEC3 RRset + RRSIGs by id(node)
    encloser: dict[Key, tuple[Key, Node | None, Node | None, int]] = field(default_factory=_unused)
    nsec3_denial: dict[int, tuple[bytes, int]] = field(default_factory=_unused)
    # For the C datagram loop (dnsseal.server._udpfast): the NSEC owners' sort keys
    # (the snapshot's nsec_sort), and the closest encloser's lower-case wire name ->
    # (labels of its closest provable encloser, that one's NSEC3 node, the node covering
    # its wildcard), both as the NXDOMAIN lane reads them.
    nsec_sort: list[bytes] = field(default_factory=_none)
    enclosers: dict[bytes, tuple[int, Node | None, Node | None]] = field(default_factory=_unused)
    # NSEC3: the owners' hashes as 20-octet digests, sorted, and their nodes in that order
    # (lists never changed in place: a new version copies before it changes them)
    nsec3_digests: list[bytes] = field(default_factory=_none)
    nsec3_owners: list[Node] = field(default_factory=_none)


class ZoneSlot:
    """The version of one zone that a :class:`WireTable`'s entries answer from.

    Every ``names`` and ``exist`` entry of a zone holds the zone's slot, not its
    :class:`WireZone`: a new version made from the one served (an UPDATE) then changes the
    entries of the owners it changed and this one attribute, instead of every entry of
    the zone.  A reader loads ``current`` once per answer and reads only that version
    (the C NXDOMAIN lane does the same)."""

    __slots__ = ("current",)

    def __init__(self, current: WireZone) -> None:
        self.current = current


def wire_zone(snap: ZoneSnapshot) -> WireZone:
    """One zone as the byte path needs it."""
    soa, soa_sig = _negative(snap)
    return WireZone(
        snap,
        len(snap.origin.labels),
        bool(snap.cut_keys) or snap.has_dname,
        snap.signed,
        bool(snap.nsec_nodes),
        soa,
        soa_sig,
        nsec_sort=snap.nsec_sort,
        nsec3_digests=[h.to_bytes(20, "big") for h in snap.nsec3_hashes] or NONE,
        nsec3_owners=[snap.nsec3_by_hash[h] for h in snap.nsec3_hashes] or NONE,
    )


def wire_zone_after(prev: WireZone, snap: ZoneSnapshot) -> WireZone | None:
    """:func:`wire_zone` of ``snap`` made from ``prev`` in O(the owners that changed), or
    None when ``snap`` is not a successor of ``prev``'s snapshot made by
    :func:`dnsseal.proto.snapshot.update_from_model` (``snap.base``) or when something
    that every entry depends on differs: the denial chain's kind or parameters, the zone
    cuts, a DNAME, the empty non-terminals beyond the changed owners."""
    base = snap.base() if snap.base is not None else None
    old = prev.snap
    if base is not old or snap.origin != old.origin:
        return None
    nsec = bool(snap.nsec_nodes)
    if (
        nsec != prev.nsec
        or snap.signed != prev.signed
        or snap.nsec3 != old.nsec3
        or snap.has_dname != old.has_dname
        or (snap.cut_keys is not old.cut_keys and snap.cut_keys != old.cut_keys)
    ):
        return None
    depth = prev.depth
    digests: list[bytes] | None = None
    owners: list[Node] = prev.nsec3_owners
    before, after = old.by_key, snap.by_key
    for k in snap.changed:
        was, now = before.get(k), after.get(k)
        if was is not None or now is not None:
            wr = was.rrsets if was is not None else {}
            nr = now.rrsets if now is not None else {}
            if (DNAME in wr) != (DNAME in nr) or (len(k) > depth and (NS in wr) != (NS in nr)):
                return None  # a zone cut or a DNAME came or went: every name below changes
        h = _hash_of(k, depth)
        if h is None:
            continue
        had, has = old.nsec3_by_hash.get(h), snap.nsec3_by_hash.get(h)
        if had is has:
            continue
        if digests is None:
            digests, owners = list(prev.nsec3_digests), list(owners)
        digest = h.to_bytes(20, "big")
        i = bisect.bisect_left(digests, digest)
        there = i < len(digests) and digests[i] == digest
        if has is None:
            if there:
                del digests[i], owners[i]
        elif there:
            owners[i] = has
        else:
            digests.insert(i, digest)
            owners.insert(i, has)
    soa, soa_sig = _negative(snap)
    return WireZone(
        snap,
        depth,
        prev.walk,
        prev.signed,
        nsec,
        soa,
        soa_sig,
        nsec_sort=snap.nsec_sort,  # (update_from_model kept it in order)
        nsec3_digests=prev.nsec3_digests if digests is None else digests,
        nsec3_owners=owners,
    )


def _negative(snap: ZoneSnapshot) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    """The negative-answer SOA's wire and record count, without and with its RRSIGs."""
    got = negative_wires(snap)
    if got is not None:
        return got
    return rrset_wire(snap, snap.negative_soa[0], True), _section(snap, snap.negative_soa)


def _hash_of(k: Key, depth: int) -> int | None:
    """The NSEC3 hash an owner key names (its first label read as base32hex) when it can
    be an NSEC3 owner of the zone (one label below the origin), else None."""
    if len(k) != depth + 1:
        return None
    label = k[0]
    if len(label) != SHA1_B32_LEN or not label.isalnum():
        return None
    try:
        return int(label, 32)
    except ValueError:
        return None


def _wire(node: Node, sigs: bool, rdtype: int, snap: ZoneSnapshot) -> tuple[bytes, int] | None:
    """The response wire and record count of ``node``'s RRset (or RRSIG RRset, ``sigs``)
    of ``rdtype``, or None."""
    rrsets = node.sigs if sigs else node.rrsets
    if type(rrsets) is WireRRsets:
        data = rrsets.wires.get(rdtype)
        if data is None:
            return None
        counts = rrsets.counts
        return data, counts.get(rdtype, 1) if counts else 1
    if rdtype not in rrsets:
        return None
    return rrset_wire(snap, rrsets[rdtype], True)


class WireTable:
    """The byte-level answer path over a set of zones (see the module docstring).

    The zone set changes one zone at a time (:meth:`replace_zone`), in place: one zone
    coming up, changing or going costs the work of that zone (and, when served zones nest,
    of the zones above it), never a walk over every served zone.  The dicts the C datagram
    loop reads (``names``, ``exist``) are the same objects for the table's whole life;
    every change to them is one dict operation, so a reader sees each entry whole, from the
    old version of a zone or the new one.  The entries hold the zone's :class:`ZoneSlot`,
    so a version made from the one served changes only the entries of the owners it
    changed (:meth:`_step`).  The engine empties its response caches only
    after a change is complete (:meth:`dnsseal.proto.engine.Engine.replace_zone`), so an
    answer made from an old entry can only land in a cache that is dropped."""

    __slots__ = ("_below", "_lock", "by_rcode", "exist", "names", "prefilled", "rebuilt", "zones")

    def __init__(
        self,
        snaps: Iterable[ZoneSnapshot],
        by_rcode: dict[int, int],
        previous: WireTable | None = None,
    ) -> None:
        """``by_rcode``: the counter (rcode -> answers) this path adds to.  ``previous``:
        the table this one replaces (not to be used after: the entries it hands over
        change in place); the zones whose snapshot did not change keep their entries
        (and names) instead of being walked again."""
        by_origin = {question_key(s.origin): s for s in snaps}
        # Reused only over the same set of zones: a zone added below another takes names.
        same = previous is not None and previous.zones.keys() == by_origin.keys()
        old = previous.prefilled if previous is not None and same else {}
        # Lower-case wire name -> served zones strictly below it (for every proper suffix
        # of every origin): whether a zone's names can lie inside a deeper zone.
        self._below: dict[bytes, int] = {}
        for key in by_origin:
            self._count_below(key, 1)
        # A zone's share of the table by id of its current snapshot (see Prefilled).
        self.prefilled: dict[int, Prefilled] = {}
        self.rebuilt = 0  # zones whose entries were computed (kept ones are not counted)
        self._lock = threading.Lock()  # one writer of names at a time (see _find)
        zones: dict[bytes, WireZone] = {}
        for key, snap in by_origin.items():
            kept = old.get(id(snap))
            zones[key] = kept[1] if kept is not None and kept[0] is snap else wire_zone(snap)
        self.zones: dict[bytes, WireZone] = zones
        # Lower-case question name -> (its zone's slot, node, ...: see Names) for every
        # name holding data with no delegation or DNAME above it (what _find would
        # remember on the first ask), made once per snapshot: the UDP loop answers these
        # names without the Python path.
        self.names: dict[bytes, Names] = {}
        # Every existing name (and empty non-terminal) -> its zone's slot when an NXDOMAIN
        # below it is plain (no delegation, DNAME or wildcard to handle), else None: where the C
        # loop's NXDOMAIN lane finds the closest encloser.  Deeper zones win a shared name.
        self.exist: dict[bytes, ZoneSlot | None] = {}
        for wz in sorted(zones.values(), key=lambda z: z.depth):
            kept = old.get(id(wz.snap))
            entries = kept if kept is not None and kept[1] is wz else self._entries(wz)
            self.prefilled[id(wz.snap)] = entries
            self.names.update(entries[2])
            self.exist.update(entries[3])
        self.by_rcode = by_rcode

    def replace_zone(self, origin: dns.name.Name, snap: ZoneSnapshot | None) -> None:
        """Serve ``snap`` as the zone at ``origin`` (None: stop serving that zone), in
        place.  The work is that zone's names and, only when it is added below or removed
        from under another served zone, the names of the zones above it; for a version
        made from the one served by :func:`dnsseal.proto.snapshot.update_from_model` (an
        UPDATE), only the owners it changed."""
        key = question_key(origin)
        current = self.zones.get(key)
        if current is not None and snap is not None and current.snap is snap:
            return
        old: Prefilled | None = None
        if current is not None:
            old = self.prefilled.get(id(current.snap))
        if old is not None and snap is not None:
            wz = wire_zone_after(current, snap) if current is not None else None
            if wz is not None:
                self._step(key, old, wz)
                return
        added = current is None and snap is not None
        removed = current is not None and snap is None
        if added:
            self._count_below(key, 1)
        new: Prefilled | None = None
        if snap is not None:
            wz = wire_zone(snap)
            new = self._entries(wz)
        with self._lock:
            if new is not None:
                self.zones[key] = new[1]
                self.prefilled[id(new[0])] = new
            else:
                self.zones.pop(key, None)
            if old is not None:
                self.prefilled.pop(id(old[0]), None)
            self._merge(key, old, new)
        if removed:
            self._count_below(key, -1)
        if added or removed:
            # The zones above this one: their names inside it change hands.
            for start in _label_starts(key)[1:]:
                above = self.zones.get(key[start:])
                if above is None:
                    continue
                before = self.prefilled.get(id(above.snap))
                again = self._entries(above, before[4] if before is not None else None)
                with self._lock:
                    self.prefilled[id(above.snap)] = again
                    self._merge(key[start:], before, again)

    def _entries(self, wz: WireZone, slot: ZoneSlot | None = None) -> Prefilled:
        """``wz``'s share of the table (its names inside deeper zones left to those),
        its entries holding ``slot`` (a new one when None)."""
        self.rebuilt += 1
        below = bool(self._below.get(question_key(wz.snap.origin)))
        if slot is None:
            slot = ZoneSlot(wz)
        return (wz.snap, wz, *_entries_of(wz, slot, self.zones if below else {}), slot)

    def _step(self, key: bytes, old: Prefilled, wz: WireZone) -> None:
        """Serve ``wz``, a version made from ``old``'s (see :func:`wire_zone_after`), by
        changing the entries of the owners it changed (and of the parents of wildcards
        that came or went, and of empty non-terminals that came or went) and the zone's
        slot.  The zone's share dicts change in place.

        A reader meanwhile sees each entry whole, and never an ``exist`` entry that
        claims a plain NXDOMAIN the version in the slot would not give: the changed
        entries are first made None (the Python path's, which reads the served version
        only), then the slot and ``zones`` change, then the entries take their new
        values."""
        snap, prev = wz.snap, old[0]
        names_share, exist_share, slot = old[2], old[3], old[4]
        depth = wz.depth
        affected = set(snap.changed)
        for k in snap.changed:
            if k[0] == WILDCARD and len(k) > depth:
                affected.add(k[1:])  # whether NXDOMAIN below the parent is plain
        if snap.ent_keys is not prev.ent_keys:
            affected |= snap.ent_keys ^ prev.ent_keys
        origin = prev.origin.labels
        below = bool(self._below.get(key))
        zones = self.zones if below else {}
        dnames: Container[Key] = _Dnames(snap.by_key) if snap.has_dname else ()
        changes: list[tuple[bytes, Names | None, ZoneSlot | None, bool]] = []
        for k in affected:
            if len(k) < depth or k[len(k) - depth :] != origin:
                continue
            lname = question_key_of(k)
            if k in snap.by_key or k in snap.ent_keys:
                entry, value = _entry_of(wz, slot, zones, dnames, k, lname)
                changes.append((lname, entry, value, True))
            elif lname in exist_share:
                changes.append((lname, None, None, False))
        new: Prefilled = (snap, wz, names_share, exist_share, slot)
        nested = self._nested(key)
        names, exist = self.names, self.exist
        with self._lock:
            for lname, _, _, present in changes:
                if nested or present or lname in exist:
                    exist[lname] = None
            for lname, entry, value, present in changes:
                if entry is not None:
                    names_share[lname] = entry
                else:
                    names_share.pop(lname, None)
                if present:
                    exist_share[lname] = value
                else:
                    exist_share.pop(lname, None)
            self.prefilled.pop(id(prev), None)
            self.prefilled[id(snap)] = new
            self.zones[key] = wz
            slot.current = wz
            for lname, entry, value, present in changes:
                if nested:
                    self._settle(names, 2, lname)
                    self._settle(exist, 3, lname)
                    continue
                if entry is not None:
                    names[lname] = entry
                else:
                    names.pop(lname, None)
                if present:
                    exist[lname] = value
                else:
                    exist.pop(lname, None)

    def _nested(self, key: bytes) -> bool:
        """Whether the zone at ``key`` has served zones below or above it."""
        return bool(self._below.get(key)) or any(
            key[s:] in self.zones for s in _label_starts(key)[1:]
        )

    def _count_below(self, key: bytes, step: int) -> None:
        below = self._below
        for start in _label_starts(key)[1:]:
            suffix = key[start:]
            n = below.get(suffix, 0) + step
            if n:
                below[suffix] = n
            else:
                below.pop(suffix, None)

    def _merge(self, key: bytes, old: Prefilled | None, new: Prefilled | None) -> None:
        """Put a zone's new entries in ``names`` and ``exist`` in place of its old ones
        (the caller holds the lock).  Each change is one dict operation; entries are
        added or overwritten before the ones that went are deleted."""
        nested = self._nested(key)
        tables: tuple[tuple[int, dict[bytes, Any]], ...] = ((2, self.names), (3, self.exist))
        for index, table in tables:
            before: dict[bytes, Any] = old[index] if old is not None else {}  # type: ignore[assignment]
            after: dict[bytes, Any] = new[index] if new is not None else {}  # type: ignore[assignment]
            if not nested:
                table.update(after)
                for name in before:
                    if name not in after:
                        table.pop(name, None)
                continue
            for name in {*before, *after}:
                self._settle(table, index, name)

    def _settle(self, table: dict[bytes, Any], index: int, name: bytes) -> None:
        """``table[name]`` from the deepest served zone whose entries hold ``name``."""
        for start in _label_starts(name):
            wz = self.zones.get(name[start:])
            if wz is None:
                continue
            entries = self.prefilled.get(id(wz.snap))
            if entries is None:
                continue
            share: dict[bytes, Any] = entries[index]  # type: ignore[assignment]
            if name in share:
                table[name] = share[name]
                return
        table.pop(name, None)

    def answer(self, wire: bytes, tcp: bool, our_payload: int) -> bytes | None:
        """The response to ``wire``, or None when the general path must answer.

        Never raises on hostile bytes: whatever is not a well-formed plain query is None.
        ``our_payload`` is the EDNS buffer size we advertise and accept at most."""
        n = len(wire)
        if n < 17 or wire[2] & 0xF8 or wire[4:10] != QD_ONLY:
            return None  # a response, another opcode, or not exactly one question
        ar = wire[10:12]
        if ar == NO_AR:
            edns = False
        elif ar == ONE_AR:
            edns = True
        else:
            return None
        # A name seen before ends at the first zero byte (the names cache holds no name
        # with a zero byte inside a label, so a hit is a complete, well-formed name).
        qend = wire.find(b"\x00", 12) + 1
        if qend == 0:
            return None
        lname = wire[12:qend].lower()
        hit = self.names.get(lname)
        starts: list[int] = []
        if hit is None:
            # The question name, parsed: plain labels only (no compression pointer).
            pos = 12
            length = wire[pos]
            while length:
                if length > 63:
                    return None
                starts.append(pos)
                pos += length + 1
                if pos >= n:
                    return None
                length = wire[pos]
            if pos + 1 != qend:
                qend = pos + 1
                lname = wire[12:qend].lower()
            if qend - 12 > 255:
                return None
        if qend + 4 > n or wire[qend + 2 : qend + 4] != CLASS_IN:
            return None
        qtype = wire[qend] << 8 | wire[qend + 1]
        if qtype in GENERAL_QTYPES:
            return None
        end = qend + 4
        if edns:
            if (
                n < end + 11
                or wire[end] != 0
                or wire[end + 1 : end + 3] != OPT_TYPE
                or wire[end + 6] != 0  # EDNS version > 0: BADVERS from the general path
                or end + 11 + (wire[end + 9] << 8 | wire[end + 10]) != n
                or (end + 11 != n and not options_ok(wire, end + 11))
            ):
                return None
            do = wire[end + 7] & 0x80 != 0
            if tcp:
                limit = TCP_MAX
            else:
                limit = max(MIN_UDP, min(wire[end + 3] << 8 | wire[end + 4], our_payload))
        else:
            if end != n:
                return None
            do = False
            limit = TCP_MAX if tcp else MIN_UDP

        data: Sections | None = None
        if hit is not None:
            slot, node, wires, counts, sig_wires, sig_counts = hit
            if wires is not None:  # the common case, inline: RRset + RRSIGs
                body = wires.get(qtype)
                if body is not None:
                    an = counts.get(qtype, 1) if counts else 1
                    if do and sig_wires is not None:
                        sig = sig_wires.get(qtype)
                        if sig is not None:
                            body += sig
                            an += sig_counts.get(qtype, 1) if sig_counts else 1
                    data = body, 0, an, 0
            if data is None:
                wz = slot.current  # read once: the version this answer comes from
                qk = _key_of(lname)
                if wz.snap.by_key.get(qk) is not node:
                    return None  # an entry being replaced: the general path's
                data = self._positive(wz, node, qtype, do)
                if data is None:
                    data = self._negative(wz, qk, qk, node, qtype, do)
        else:
            data = self._find(wire, lname, starts, qtype, do)
        if data is None:
            return None
        body, rcode, an, ns = data
        if end + len(body) + (11 if edns else 0) > limit:
            return None
        flags = QR_AA | ((wire[2] << 8 | wire[3]) & ECHO) | rcode
        by_rcode = self.by_rcode
        by_rcode[rcode] = by_rcode.get(rcode, 0) + 1
        head = HEADER.pack(wire[0] << 8 | wire[1], flags, 1, an, ns, 1 if edns else 0)
        if edns:
            return head + wire[12:end] + body + (OPT_DO if do else OPT_NO_DO)[our_payload]
        return head + wire[12:end] + body

    def _find(
        self, wire: bytes, lname: bytes, starts: list[int], qtype: int, do: bool
    ) -> Sections | None:
        """A name not seen yet (or not existing): find its zone and closest encloser the
        way answer._step does (RFC 1034 4.3.2 step 3)."""
        zones = self.zones
        wz = None
        below = 0
        for below, s in enumerate(starts):  # noqa: B007 (``below`` is used after the loop)
            wz = zones.get(lname[s - 12 :])
            if wz is not None:
                break
        else:
            below = len(starts)
            wz = zones.get(b"\x00")
        if wz is None:
            return None
        qk = _name_key(wire, lname, starts)
        snap = wz.snap
        by_key = snap.by_key
        node = by_key.get(qk)
        nl = len(qk)
        o = wz.depth
        ce = qk[below:]
        if node is None or wz.walk:
            # Delegations and DNAMEs on the way down are the general path's; the deepest
            # existing name is the closest encloser.
            cuts, ents, dname = snap.cut_keys, snap.ent_keys, snap.has_dname
            for depth in range(o, nl + 1):
                here = qk[nl - depth :]
                if depth > o:
                    if here in cuts:
                        return None
                    if here not in by_key and here not in ents:
                        return self._negative(wz, qk, ce, None, qtype, do, lname)
                    ce = here
                if dname and depth != nl:
                    dnode = by_key.get(here)
                    if dnode is not None and DNAME in dnode.rrsets:
                        return None
        if node is not None:
            if b"\x00" not in lname[:-1]:
                # Only while ``wz`` is still served: a zone replaced in the meantime (by
                # the event loop, while this runs in the UDP thread) must not get an old
                # entry back.  The lock makes the check and the store one step.
                with self._lock:
                    share = self.prefilled.get(id(snap))
                    if share is not None and self.zones.get(question_key(snap.origin)) is wz:
                        self.names[lname] = names_entry(share[4], wz, node)
            got = self._positive(wz, node, qtype, do)
            if got is not None:
                return got
        return self._negative(wz, qk, qk, node, qtype, do)

    @staticmethod
    def _positive(wz: WireZone, node: Node, qtype: int, do: bool) -> Sections | None:
        """The RRset of ``qtype`` at ``node`` (and its RRSIGs with DO), if it has one."""
        snap = wz.snap
        got = _wire(node, False, qtype, snap)
        if got is None:
            return None
        data, an = got
        if do and wz.signed:
            sig = _wire(node, True, qtype, snap)
            if sig is not None:
                data += sig[0]
                an += sig[1]
        return data, 0, an, 0

    @staticmethod
    def _negative(
        wz: WireZone,
        qk: Key,
        ce: Key,
        node: Node | None,
        qtype: int,
        do: bool,
        lname: bytes = b"",
    ) -> Sections | None:
        """NODATA at an existing name (``ce`` is ``qk``) or NXDOMAIN below ``ce``."""
        snap = wz.snap
        sig_do = do and wz.signed
        if ce is not qk:
            wk = (WILDCARD, *ce)
            if wk in snap.by_key:
                return None  # wildcard synthesis
            if not sig_do:
                data, ns = wz.soa
                return data, NXDOMAIN, 0, ns
            if wz.nsec:
                return _nsec_nxdomain(wz, qk, wk)
            if snap.nsec3 is not None and snap.nsec3_hashes:
                return _nsec3_nxdomain(wz, qk, ce, lname)
            ans = Answer()
            nxdomain(snap, qk, ce, sig_do, ans)
            data, ns = _section(snap, ans.authority)
            return data, NXDOMAIN, 0, ns
        if node is not None and CNAME in node.rrsets:
            return None  # a chain to follow
        ans = Answer()
        nodata(snap, qk, node, sig_do, ans)
        data, ns = _section(snap, ans.authority)
        return data, 0, 0, ns


def names_entry(slot: ZoneSlot, wz: WireZone, node: Node) -> Names:
    """The ``names`` entry of ``node`` in ``wz`` (see :data:`Names`), served through
    ``slot``."""
    rrsets, sigs = node.rrsets, node.sigs
    if type(rrsets) is not WireRRsets:
        return slot, node, None, None, None, None
    if wz.signed and type(sigs) is WireRRsets:
        return slot, node, rrsets.wires, rrsets.counts, sigs.wires, sigs.counts
    return slot, node, rrsets.wires, rrsets.counts, None, None


def _entries_of(
    wz: WireZone, slot: ZoneSlot, zones: Mapping[bytes, WireZone]
) -> tuple[dict[bytes, Names], dict[bytes, ZoneSlot | None]]:
    """One zone's ``names`` and ``exist`` entries (each as :func:`_entry_of` makes it).

    ``zones``: the served zones, or nothing when none is below ``wz``."""
    snap = wz.snap
    dnames = (
        {k for k, node in snap.by_key.items() if DNAME in node.rrsets} if snap.has_dname else set()
    )
    names: dict[bytes, Names] = {}
    exist: dict[bytes, ZoneSlot | None] = {}
    for key in (*snap.by_key, *snap.ent_keys):
        lname = question_key_of(key)
        entry, exist[lname] = _entry_of(wz, slot, zones, dnames, key, lname)
        if entry is not None:
            names[lname] = entry
    return names, exist


def _entry_of(
    wz: WireZone,
    slot: ZoneSlot,
    zones: Mapping[bytes, WireZone],
    dnames: Container[Key],
    key: Key,
    lname: bytes,
) -> tuple[Names | None, ZoneSlot | None]:
    """The ``names`` entry (None: none) and the ``exist`` value of the owner or empty
    non-terminal ``key`` (``lname``: its lower-case wire) of ``wz``.

    ``names``: an owner that :meth:`WireTable._find` would remember when first asked (the
    zone is the deepest served one above it, no delegation at or above it and no DNAME
    above it below the origin; no zero octet inside a label).  ``exist``: the zone's slot
    when a name below it that does not exist gets a plain NXDOMAIN from
    :meth:`WireTable._negative` (no delegation at or above it, no DNAME at or above it,
    no wildcard child, not inside a deeper served zone), else None.  ``dnames``: the
    zone's DNAME owners."""
    snap = wz.snap
    o = wz.depth
    by_key = snap.by_key
    nl = len(key)
    node = by_key.get(key)
    inside = bool(zones) and any(lname[i:] in zones for i in _label_starts(lname)[: nl - o])
    if wz.walk:
        cuts, ents = snap.cut_keys, snap.ent_keys
        cut_above = any(key[nl - d :] in cuts for d in range(o + 1, nl + 1))
        missing_above = any(
            key[nl - d :] not in by_key and key[nl - d :] not in ents for d in range(o + 1, nl)
        )
    else:
        cut_above = missing_above = False
    dname_above = snap.has_dname and any(key[nl - d :] in dnames for d in range(o, nl))
    plain = not (inside or cut_above or missing_above or dname_above)
    value = slot if plain and key not in dnames and (WILDCARD, *key) not in by_key else None
    if node is not None and plain and b"\x00" not in lname[:-1]:
        return names_entry(slot, wz, node), value
    return None, value


class _Dnames:
    """The DNAME owners of a zone, looked up in its nodes (no set of them is made)."""

    __slots__ = ("by_key",)

    def __init__(self, by_key: Mapping[Key, Node]) -> None:
        self.by_key = by_key

    def __contains__(self, key: object) -> bool:
        node = self.by_key.get(key)  # type: ignore[call-overload]
        return node is not None and DNAME in node.rrsets


def _label_starts(lname: bytes) -> list[int]:
    """Offsets of each label of the well-formed wire name ``lname`` (the root's last)."""
    starts = []
    pos = 0
    while True:
        starts.append(pos)
        length = lname[pos]
        if not length:
            return starts
        pos += length + 1


def question_key_of(key: Key) -> bytes:
    """The lower-case wire form of the snapshot key ``key`` (labels, root last)."""
    return b"".join(bytes((len(label),)) + label for label in key)


def _key_of(lname: bytes) -> Key:
    """The snapshot's dict key of the well-formed lower-case wire name ``lname``."""
    labels = []
    pos = 0
    length = lname[0]
    while length:
        labels.append(lname[pos + 1 : pos + 1 + length])
        pos += length + 1
        length = lname[pos]
    labels.append(b"")
    return tuple(labels)


class _OptCache(dict[int, bytes]):
    """Our OPT record by advertised payload size, made on first use."""

    def __init__(self, flags: bytes) -> None:
        super().__init__()
        self.flags = flags

    def __missing__(self, payload: int) -> bytes:
        opt = b"\x00\x00\x29" + payload.to_bytes(2, "big") + self.flags
        self[payload] = opt
        return opt


OPT_DO = _OptCache(b"\x00\x00\x80\x00\x00\x00")  # extended rcode 0, version 0, DO, no options
OPT_NO_DO = _OptCache(b"\x00\x00\x00\x00\x00\x00")


def _name_key(wire: bytes, lname: bytes, starts: list[int]) -> Key:
    """The question name as the snapshot's dict key: its lower-case labels, root last."""
    labels = [lname[s - 11 : s - 11 + wire[s]] for s in starts]
    labels.append(b"")
    return tuple(labels)


def _nsec_nxdomain(wz: WireZone, qk: Key, wk: Key) -> Sections:
    """NXDOMAIN with DO in an NSEC zone (as answer.nxdomain): SOA and its RRSIG, the NSEC
    covering ``qk`` and the one covering the wildcard ``wk``, each with its RRSIG."""
    keys = wz.nsec_sort
    first = bisect.bisect_right(keys, sort_key(qk[::-1])) - 1
    second = wz.wildcard_cover.get(wk)
    if second is None:
        second = bisect.bisect_right(keys, sort_key(wk[::-1])) - 1
        if len(wz.wildcard_cover) < WILDCARD_MEMO:
            _own(wz, "wildcard_cover")[wk] = second
    denial = wz.nsec_denial
    one = denial.get(first) or _nsec_denial(wz, first)
    if second == first:
        return wz.soa_sig[0] + one[0], NXDOMAIN, 0, wz.soa_sig[1] + one[1]
    two = denial.get(second) or _nsec_denial(wz, second)
    return (
        b"".join((wz.soa_sig[0], one[0], two[0])),
        NXDOMAIN,
        0,
        wz.soa_sig[1] + one[1] + two[1],
    )


def _nsec3_nxdomain(wz: WireZone, qk: Key, ce: Key, lname: bytes) -> Sections:
    """NXDOMAIN with DO in an NSEC3 zone (as answer.nxdomain): SOA and its RRSIG, the
    closest encloser proof (the NSEC3 matching the closest provable encloser, the one
    covering the next closer name) and the NSEC3 covering the wildcard, each once."""
    snap = wz.snap
    assert snap.nsec3 is not None
    provable, match, wild, size = _encloser(wz, ce)
    hashes = snap.nsec3_hashes
    # The next closer name is a suffix of the question (``lname``, its lower-case wire).
    nc = qk[len(qk) - len(provable) - 1 :]
    size += len(nc[0]) + 1
    if len(lname) >= size:
        h = nsec3_digest(snap.nsec3, lname[len(lname) - size :])
    else:
        h = nsec3_int(snap.nsec3, nc)
    cover = snap.nsec3_by_hash[hashes[bisect.bisect_right(hashes, h) - 1]]
    parts = [wz.soa_sig[0]]
    ns = wz.soa_sig[1]
    seen: list[Node] = []
    for node in (match, cover, wild):
        if node is None or any(node is s for s in seen):
            continue
        seen.append(node)
        got = wz.nsec3_denial.get(id(node)) or _nsec3_denial(wz, node)
        parts.append(got[0])
        ns += got[1]
    return b"".join(parts), NXDOMAIN, 0, ns


def _encloser(wz: WireZone, ce: Key) -> tuple[Key, Node | None, Node | None, int]:
    """For the closest encloser ``ce`` of an NSEC3 zone: the closest provable encloser,
    its NSEC3 node, the node covering its wildcard and its wire length (memoised)."""
    known = wz.encloser.get(ce)
    if known is None:
        snap = wz.snap
        provable = ce
        match = snap.nsec3_matching(provable)
        while match is None and len(provable) > wz.depth:
            provable = provable[1:]
            match = snap.nsec3_matching(provable)
        size = sum(len(label) + 1 for label in provable)
        known = provable, match, snap.nsec3_covering((WILDCARD, *provable)), size
        memo = _own(wz, "encloser")
        if len(memo) >= WILDCARD_MEMO:
            memo.clear()
        memo[ce] = known
    return known


def _encloser_wire(wz: WireZone, ce: bytes) -> tuple[int, Node | None, Node | None]:
    """:func:`_encloser` for the C lane, by the encloser's lower-case wire name: the
    provable encloser's label count (root included), its NSEC3 node, the wildcard's cover
    (memoised in ``wz.enclosers``)."""
    provable, match, wild, _size = _encloser(wz, _key_of(ce))
    out = (len(provable), match, wild)
    memo = _own(wz, "enclosers")
    if len(memo) >= WILDCARD_MEMO:
        memo.clear()
    memo[ce] = out
    return out


def _with_sigs(wz: WireZone, node: Node, rtype: int) -> tuple[bytes, int]:
    """The ``rtype`` RRset of ``node`` and its RRSIGs as wire, with the record count."""
    parts, count = [], 0
    for sigs in (False, True):
        got = _wire(node, sigs, rtype, wz.snap)
        if got is not None:
            parts.append(got[0])
            count += got[1]
    return b"".join(parts), count


def _nsec3_denial(wz: WireZone, node: Node) -> tuple[bytes, int]:
    """The NSEC3 RRset of ``node`` and its RRSIGs (memoised by node, bounded)."""
    out = _with_sigs(wz, node, NSEC3)
    memo = _own(wz, "nsec3_denial")
    if len(memo) >= DENIAL_MEMO:
        memo.clear()
    memo[id(node)] = out
    return out


def _nsec_denial(wz: WireZone, index: int) -> tuple[bytes, int]:
    """The NSEC RRset of the ``index``-th NSEC owner and its RRSIGs (memoised, bounded)."""
    out = _with_sigs(wz, wz.snap.nsec_nodes[index], NSEC)
    memo = _own(wz, "nsec_denial")
    if len(memo) >= DENIAL_MEMO:
        memo.clear()
    memo[index] = out
    return out


def _section(snap: ZoneSnapshot, rrsets: list[dns.rrset.RRset]) -> tuple[bytes, int]:
    """The RRsets' memoised wire (repeats dropped: the same NSEC can match and cover) and
    the record count."""
    parts = []
    count = 0
    seen: set[int] = set()
    for r in rrsets:
        if id(r) in seen:
            continue
        seen.add(id(r))
        data, c = rrset_wire(snap, r, True)
        parts.append(data)
        count += c
    return b"".join(parts), count


# What the C datagram loop's NXDOMAIN lane calls for proofs its memos do not hold yet, in
# the order dnsseal.server._udpfast.configure takes them after WireRRsets.
NATIVE_HELPERS = (_nsec_denial, _nsec3_denial, _encloser_wire)


def question_key(name: dns.name.Name) -> bytes:
    """The lower-case wire form of ``name`` (how :class:`WireTable` keys zones)."""
    return b"".join(bytes((len(label),)) + label.lower() for label in name.labels)
