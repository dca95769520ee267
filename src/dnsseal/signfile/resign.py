"""Re-signing an edited signed zone file from its snapshot, reading only what changed: the
command line's smart re-sign (``dnsseal signzone`` on its own output, edited in place).

The careful path reads every record of the file, signs the whole zone (keeping the
signatures its ledger vouches for) and writes every record again.  With the snapshot of the
file (:mod:`dnsseal.signfile.filesnapshot`) most of that work has been done before and its
result is still in the file, byte for byte:

1. :func:`~dnsseal.signfile.blockmatch.match_blocks` finds the blocks (one per owner) that
   are unchanged, by their digests; the rest is *changed text*;
2. the changed text is read with the careful parser (:mod:`dnsseal.signfile.resignread`),
   with the line before it for context where it needs one; the owners it names, the names
   whose blocks are gone and the apex are *affected*.  A block whose lines are all still
   in dnsseal's form and where only RRset data changed is a *lane*
   (:mod:`dnsseal.signfile.resignlane`): only its changed groups of lines are read and
   signed, the others copied;
3. their new data decides, with the snapshot's record of every other name's types, their
   place in the zone (:class:`~dnsseal.zone.model.NameKind`) and what changes in the NSEC or
   NSEC3 chain: names entering or leaving it touch their predecessor, a changed type set
   touches the name's chain record; blocks whose signatures are due for refresh are
   touched too;
4. the affected and touched names (their blocks read from the file) go through the same
   signing step as a full run (:func:`~dnsseal.signer.sign.sign_rrsets`), so every keep or
   re-sign decision is the careful path's; signatures the changed text shows to be ours
   (their lines as written, see :meth:`~dnsseal.signfile.resignread.ChangedText.known_groups`)
   are taken on trust or known not to fit without a check, as the ledger would;
5. the output is the unchanged blocks' text, copied, with the touched names' blocks written
   anew in their places, and the snapshot of that output.

The result is the careful path's output for the same file, keys, options and time (tests
compare them byte for byte).  Whenever that is not certain the run raises
:class:`Fallback` saying why, and the caller takes the careful path: another key set or
option, a damaged or foreign snapshot, directives or unparseable text among the changes, a
change of zone cut or DNAME above unchanged names, a new TTL for the chain, data at an
NSEC3 owner name, or a file that is mostly new.  Pure: bytes in, bytes out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype

from dnsseal.signer.keysel import SigningKey
from dnsseal.signer.rrsig import labels_field
from dnsseal.signer.sign import (
    SignParams,
    SignStats,
    check_keys,
    prepare_zone,
    sign_rrsets,
    signable,
    validity,
)
from dnsseal.signfile.blockmatch import BlockMatch, RowIndex, match_blocks
from dnsseal.signfile.filesnapshot import (
    Snapshot,
    SnapshotBuilder,
    SnapshotError,
    block_digest,
    chain_text,
    decode,
    mac_key,
)
from dnsseal.signfile.ledger import DIGEST_SIZE, LedgerFile, SignatureLedger
from dnsseal.signfile.resignchain import ChainPlan, FallbackError, name_key
from dnsseal.signfile.resignlane import Lane, find_lanes
from dnsseal.signfile.resignread import ChangedText, Fallback
from dnsseal.zone import canonical, rdtext
from dnsseal.zone.model import NameKind, OwnerName, RRset, Zone, ZoneBuilder
from dnsseal.zone.text import format_rrset, header_text, name_block

__all__ = ["Fallback", "ResignOutput", "ResignReport", "resign_file"]
log = logging.getLogger(__name__)
T = dns.rdatatype
Record = tuple[dns.name.Name, int, int, bytes]


@dataclass(frozen=True, slots=True)
class ResignReport:
    """What a fast re-sign read and reused: snapshot rows (``rows``), blocks copied without
    being read (``reused``), blocks read from the file (``parsed``: unchanged blocks of
    touched names, plus the changed regions; ``lanes`` of the regions only in the groups
    that changed, see :mod:`dnsseal.signfile.resignlane`), changed text (``regions``,
    ``octets``),
    names added and removed, blocks re-signed because their signatures were due
    (``refreshed``)."""

    rows: int
    reused: int
    parsed: int
    regions: int
    octets: int
    added: int
    removed: int
    refreshed: int
    lanes: int = 0

    def __str__(self) -> str:
        return (
            f"{self.reused} of {self.rows} blocks reused unread, {self.parsed} read "
            f"({self.lanes} of them group by group); "
            f"{self.regions} changed regions ({self.octets} octets); {self.added} names "
            f"added, {self.removed} removed; {self.refreshed} blocks due for refresh"
        )


@dataclass(frozen=True, slots=True)
class ResignOutput:
    """The new file as pieces to write in order, the new ledger file's digests and
    snapshot (for :func:`~dnsseal.signfile.ledger.pack_ledger`), statistics and a report."""

    pieces: list[bytes | memoryview]
    digests: bytes
    snapshot: bytes
    stats: SignStats
    report: ResignReport


def resign_file(
    buf: bytes,
    ledger_file: LedgerFile,
    keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
    origin: dns.name.Name,
    *,
    header: Iterable[str] = (),
    max_share: float = 0.5,
) -> ResignOutput:
    """Re-sign the zone file ``buf`` (an edit of the file ``ledger_file`` describes) with
    ``keys`` at ``now``; see the module docstring.  ``max_share``: the share of blocks that
    may be touched before the careful path is the better one.  ``params.ledger`` is not
    used (the ledger comes from ``ledger_file``).  Raises :class:`Fallback`, and what
    :func:`~dnsseal.signer.sign.sign_zone` raises for unusable keys or times."""
    origin = origin.canonicalize()
    check_keys(Zone(origin, {}), keys, params)
    validity(params, now)  # bad times fail as they do on the careful path
    if not ledger_file.snapshot:
        raise Fallback("the ledger file holds no snapshot")
    key = mac_key(keys, origin, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    if not ledger_file.authentic(key):
        raise Fallback("the snapshot was written with other keys or key options, or is damaged")
    try:
        snap = decode(ledger_file.snapshot)
    except SnapshotError as e:
        raise Fallback(str(e)) from None
    if snap.origin_wire != canonical.name_wire(origin) or snap.rdclass != dns.rdataclass.IN:
        raise Fallback("the snapshot is of another zone")
    if snap.chain_text != chain_text(params.nsec3):
        raise Fallback(
            f"the chain changes ({snap.chain_text.decode()} -> {chain_text(params.nsec3).decode()})"
        )
    if abs(now - snap.written_at) >= 2**30:
        raise Fallback("the snapshot's time is too far from now")
    if not len(snap):
        raise Fallback("the snapshot is empty")
    live = sum(snap.cols.sigs)
    entries = len(ledger_file.digests) // DIGEST_SIZE
    if entries > 2 * live + 1024:
        raise Fallback(f"the ledger holds {entries} entries for {live} signatures: compacting")
    index = RowIndex(snap)
    match = match_blocks(buf, snap, index)
    if match.matched * 2 < len(buf):
        raise Fallback(
            f"only {match.matched} of {len(buf)} octets of the file are blocks of the snapshot"
        )
    head = header_text(header).encode()
    not_lanes: set[int] = set()
    try:
        while True:
            run = _Run(buf, snap, index, match, list(keys), params, now, origin, ledger_file)
            try:
                return run.execute(head, max_share, not_lanes=frozenset(not_lanes))
            except _NoLanes as e:  # rare: the chain touches a lane's block too
                log.info("[%s] %d changed blocks are not lanes after all: reading them whole",
                         origin, len(e.rows))  # fmt: skip
                not_lanes |= e.rows
    except FallbackError as e:
        raise Fallback(str(e)) from None


class _NoLanes(Exception):
    """Some lanes are not lanes after all (see :mod:`dnsseal.signfile.resignlane`): run again
    with those blocks (``rows``) read whole."""

    def __init__(self, rows: set[int]) -> None:
        super().__init__(f"{len(rows)} rows")
        self.rows = rows


class _Run(ChangedText):
    """One fast re-sign: the state its steps share."""

    def __init__(self, buf: bytes, snap: Snapshot, index: RowIndex, match: BlockMatch,
                 keys: list[SigningKey], params: SignParams, now: int, origin: dns.name.Name,
                 ledger_file: LedgerFile) -> None:  # fmt: skip
        super().__init__(buf, snap, match, origin)
        self.index = index
        self.keys = keys
        self.params = params
        self.now = now
        self.ledger_file = ledger_file

    def _lane_rrsets(self, lanes: Mapping[int, Lane],
                     to_sign: list[tuple[RRset, bytes, int]]) -> tuple[
        dict[tuple[int, int], tuple[RRset, bytes, bool]], int
    ]:  # fmt: skip
        """The RRsets of the lanes' changed groups, read, written anew and compared with
        what was written: ``(row, type) -> (RRset, its lines, kept)`` where ``kept`` says
        its signatures stay (the RRset is as written); the others are added to
        ``to_sign``.  Also the number of signatures the lanes keep."""
        if not lanes:
            return {}, 0
        texts = [x.text[g.start : g.sigs_at] for x in lanes.values() for g in x.groups if g.changed]
        built = ZoneBuilder(self.origin)
        built.add_many(self.parse_own(b"".join(texts)))
        zone = built.build()
        out: dict[tuple[int, int], tuple[RRset, bytes, bool]] = {}
        kept = 0
        for j, x in lanes.items():
            name = self.row_name(j)
            owner = rdtext.labels_text(name.labels)
            for g in x.groups:
                if not g.changed:
                    kept += x.text.count(b"\tRRSIG\t", g.sigs_at, g.end)
                    continue
                rrset = zone.get(name, g.rtype)
                if rrset is None:  # pragma: no cover - a group's lines make its RRset
                    raise _NoLanes({j})
                lines = ("\n".join(format_rrset(rrset, owner)) + "\n").encode()
                same = block_digest(lines) == g.old_data
                out[(j, g.rtype)] = (rrset, lines, same)
                if same:
                    kept += x.text.count(b"\tRRSIG\t", g.sigs_at, g.end)
                else:
                    to_sign.append((rrset, canonical.name_wire(name), labels_field(name)))
        return out, kept

    def execute(self, header: bytes, max_share: float, *,
                not_lanes: frozenset[int] = frozenset()) -> ResignOutput:  # fmt: skip
        snap, match, origin, at = self.snap, self.match, self.origin, self.match.at
        n = len(snap)
        _, _, refresh = validity(self.params, self.now)
        lane = find_lanes(self.buf, snap, match, self.now, refresh)
        for j in not_lanes:
            lane.pop(j, None)
        changes = self.parse_changes(frozenset(x.at for x in lane.values()))

        # Affected names: the owners of changed text, the names whose blocks are gone,
        # and the apex.  owner_row: their rows in the snapshot (when they had one).
        builder = ZoneBuilder(origin)
        by_owner: dict[OwnerName, int] = {}
        for rec in changes:
            name = builder.owner(rec[0])
            by_owner[name] = by_owner.get(name, 0) + 1
        # A hashed owner's block that changed (or changed text at such an owner) is made
        # anew from the snapshot's record of its chain: touched, but not an affected name.
        is_chain_row = self.snap.is_chain_row
        extra_rows = {j for j in match.missing if is_chain_row(j)}
        owner_row: dict[dns.name.Name, int] = {
            self.row_name(j): j for j in match.missing if not is_chain_row(j) and j not in lane
        }
        lane_names: dict[dns.name.Name, int] = {self.row_name(j): j for j in lane}
        clash = {j for name, j in lane_names.items() if name in by_owner}
        if clash:
            raise _NoLanes(clash)  # the name has other changed text too
        chain_types = {T.NSEC3, T.RRSIG}
        at_hashed: set[dns.name.Name] = set()  # owners of changed text that are hashed names
        for name in by_owner:
            if name not in owner_row:
                j = self.index.find(name_key(name))
                if j >= 0 and is_chain_row(j):
                    if any(r[1] not in chain_types for r in changes if r[0] == name):
                        raise Fallback(f"data at the NSEC3 owner name {name}")
                    extra_rows.add(j)
                    at_hashed.add(name)
                elif j >= 0:
                    owner_row[name] = j
        apex = builder.owner(origin)
        if self.row_name(0) != apex:
            raise Fallback("the snapshot's first block is not the apex")
        owner_row[apex] = 0
        affected: set[dns.name.Name] = {builder.owner(x) for x in owner_row}
        affected |= by_owner.keys() - at_hashed
        if len(owner_row) + len(by_owner) > max(64, max_share * n):
            raise Fallback(f"{len(owner_row) + len(by_owner)} of {n} blocks change")

        # Their new data: the changed records and their unchanged blocks.
        rows_read = {j for j in {*owner_row.values(), *extra_rows} if at[j] >= 0}
        zone = self.build(changes, rows_read)
        data = prepare_zone(zone, self.keys, self.params, self.now)
        if data.get(origin, T.NS) is None:
            raise Fallback("no NS records at the apex")
        if data.soa().negative_ttl != snap.chain_ttl:
            raise Fallback("the SOA's TTL or minimum changes the TTL of every chain record")
        plan = ChainPlan(snap, self.index, at, self.row_name, self.parse_row, origin,
                         self.params, self.now, refresh, data, affected, owner_row,
                         extra_rows, lane_names)  # fmt: skip
        if len(plan.touched_rows) + len(affected) > max(64, max_share * n):
            raise Fallback(f"{len(plan.touched_rows) + len(affected)} of {n} blocks change")
        clash = (plan.touched_rows | plan.removed_rows) & lane.keys()
        clash |= {j for name, j in lane_names.items() if plan.kind(name) is not NameKind.AUTH}
        if clash:
            raise _NoLanes(clash)
        more = {j for j in plan.touched_rows if at[j] >= 0} - rows_read
        if more:  # neighbours and blocks due for refresh: read them too
            rows_read |= more
            zone = self.build(changes, rows_read)
            data = prepare_zone(zone, self.keys, self.params, self.now)

        # Sign the touched names' RRsets and chain records, as a full run does.
        kinds = {name: plan.kind(name) for name in data.rrsets}
        to_sign = signable(data, kinds)
        chain: dict[dns.name.Name, RRset] = {}
        for rrset in plan.chain_records(data, kinds):
            to_sign.append((rrset, canonical.name_wire(rrset.name), labels_field(rrset.name)))
            chain[rrset.name] = rrset
        lane_rrsets, kept_here = self._lane_rrsets(lane, to_sign)
        signed_here = len(to_sign)
        own, stale = self.known_groups(data, chain)
        previous = self.build(own, rows_read)
        old_sigs, total_in = _old_signatures(zone, previous, data, chain, by_owner)
        for (owner, rtype), rds in stale.items():
            node = dict(old_sigs.get(owner) or {})
            sig = node.pop(rtype, None)
            left = tuple(rd for rd in sig.rdatas if rd not in rds) if sig is not None else ()
            if sig is not None and left:
                node[rtype] = RRset(sig.name, sig.rtype, sig.ttl, left)
            old_sigs[owner] = node
        ledger = SignatureLedger(self.keys)  # nothing known: what is not ours is checked
        done = sign_rrsets(to_sign, old_sigs, self.keys, replace(self.params, ledger=ledger),
                           self.now, origin, dns.rdataclass.IN, previous=previous)  # fmt: skip

        # The output: unchanged blocks copied, touched names written, in canonical order.
        nodes: dict[dns.name.Name, dict[int, RRset]] = {x: dict(v) for x, v in
                                                        data.rrsets.items()}  # fmt: skip
        for rrset in chain.values():
            nodes.setdefault(rrset.name, {})[rrset.rtype] = rrset
        lane_texts = {j: _lane_text(x, lane_rrsets, done.sigs) for j, x in lane.items()}
        rewrite = set(owner_row.values()) | plan.touched_rows | lane.keys()
        skip = rewrite | plan.removed_rows
        with_rows = set(owner_row) | {self.row_name(j) for j in plan.touched_rows}
        with_rows |= lane_names.keys()
        new_names = sorted((x for x in {*nodes, *done.sigs} if x not in with_rows), key=name_key)
        pieces, out, reused = self._assemble(header, rewrite, skip, new_names, nodes, done.sigs,
                                             lane_texts)  # fmt: skip

        unread = sum(snap.cols.sigs) - sum(snap.cols.sigs[j] for j in skip)
        # Signatures of unchanged blocks dropped unread (hashed owners leaving the chain).
        total_in += sum(
            snap.cols.sigs[j] for j in plan.removed_rows if at[j] >= 0 and j not in rows_read
        )
        total_in += sum(x.signatures() for x in lane.values())
        retained = unread + done.retained + kept_here
        stats = SignStats(
            generated=done.generated,
            retained=retained,
            dropped=unread + total_in - retained,
            rrsets_signed=signed_here,
            chain_records=len(chain),
            by_key=tuple((self.keys[i].key.basename, c) for i, c in sorted(done.per_key.items())),
        )
        # The ledger: its entries so far (those of the unchanged blocks among them), and
        # the signatures made now (sign_rrsets adds the kept ones first, then the new).
        fresh = bytes(self.ledger_file.digests) + bytes(ledger.made[done.retained * DIGEST_SIZE :])
        report = ResignReport(
            rows=n,
            reused=reused,
            parsed=len(rows_read) + len(match.changed),
            regions=len(match.changed),
            octets=sum(e - s for s, e in match.changed),
            added=sum(1 for x in new_names if x in data.rrsets),
            removed=sum(1 for x in affected if x not in data.rrsets),
            refreshed=len(plan.due_rows),
            lanes=len(lane),
        )
        log.info("[%s] re-signed from the snapshot: %s", origin, report)
        return ResignOutput(pieces, fresh, out.to_bytes(), stats, report)

    def _assemble(
        self,
        header: bytes,
        rewrite: set[int],
        skip: set[int],
        new_names: list[dns.name.Name],
        nodes: Mapping[dns.name.Name, Mapping[int, RRset]],
        sigs: Mapping[dns.name.Name, Mapping[int, RRset]],
        lane_texts: Mapping[int, bytes],
    ) -> tuple[list[bytes | memoryview], SnapshotBuilder, int]:
        """The pieces of the new file and its snapshot: runs of rows not in ``skip`` are
        copied (text and rows), rows in ``rewrite`` and ``new_names`` are written from
        ``nodes`` and ``sigs``."""
        snap, at, view = self.snap, self.match.at, self.view
        lens = snap.cols.lens
        n = len(snap)
        out = SnapshotBuilder(self.origin, dns.rdataclass.IN, self.params.nsec3, snap.chain_ttl,
                              self.now, header)  # fmt: skip
        out.adopt_tables(snap)  # copied rows keep their type-set and bitmap numbers
        pieces: list[bytes | memoryview] = [header]
        inserts: dict[int, list[dns.name.Name]] = {}
        for name in new_names:
            inserts.setdefault(self.index.position(name_key(name)), []).append(name)
        empty: dict[int, RRset] = {}

        def copy(a: int, b: int) -> None:  # rows a..b-1, contiguous in the file
            text = view[at[a] : at[b - 1] + lens[b - 1]]
            out.copy_rows(snap, a, b, text)
            pieces.append(text)

        def write(name: dns.name.Name) -> None:
            node = nodes.get(name, empty)
            name_sigs = sigs.get(name, empty)
            if node or name_sigs:
                owner = rdtext.labels_text(name.labels)
                text = name_block(node, name_sigs, owner, dns.rdataclass.IN).encode()
                out.add_text(text)
                pieces.append(text)

        # Rows where a run of copied rows must stop: rewritten or skipped rows, new names
        # before a row, and rows the file does not hold right after the row before them.
        stops = sorted(skip | set(inserts) | set(self.match.resumed) | {n})
        reused = 0
        j = 0
        for stop in stops:
            if j < stop:
                copy(j, stop)
                reused += stop - j
            for name in inserts.get(stop, ()):
                write(name)
            if stop in lane_texts:
                out.add_text(lane_texts[stop])
                pieces.append(lane_texts[stop])
            elif stop < n and stop in rewrite:
                write(self.row_name(stop))
            j = stop + 1 if stop in skip else stop
        return pieces, out, reused


def _lane_text(lane: Lane, rrsets: Mapping[tuple[int, int], tuple[RRset, bytes, bool]],
               sigs: Mapping[dns.name.Name, Mapping[int, RRset]]) -> bytes:  # fmt: skip
    """A lane's block: its groups as written, or their RRsets written anew with the
    signatures as written (kept) or made now."""
    parts: list[bytes] = []
    text = lane.text
    owner = lane.owner.decode("ascii")
    for g in lane.groups:
        if not g.changed:
            parts.append(text[g.start : g.end])
            continue
        rrset, lines, kept = rrsets[(lane.row, g.rtype)]
        parts.append(lines)
        if kept:
            parts.append(text[g.sigs_at : g.end])
        else:
            sig = sigs[rrset.name][g.rtype]
            parts.append(("\n".join(format_rrset(sig, owner)) + "\n").encode())
    return b"".join(parts)


def _old_signatures(
    zone: Zone,
    previous: Zone,
    data: Zone,
    chain: Mapping[dns.name.Name, RRset],
    by_owner: Mapping[OwnerName, int],
) -> tuple[dict[dns.name.Name, Mapping[int, RRset]], int]:
    """The signatures read (owner -> covered type -> RRSIG RRset) and how many there are.
    Where a name's text is all unchanged blocks, a signature over an RRset that now
    differs was made over other data and cannot be valid: it is left out here rather than
    verified (the careful path verifies it and drops it)."""
    total = 0
    out: dict[dns.name.Name, Mapping[int, RRset]] = {}
    for name, node in zone.rrsigs.items():
        total += sum(len(r.rdatas) for r in node.values())
        if name in by_owner:
            out[name] = node
            continue
        kept = {}
        now_node = data.rrsets.get(name) or {}
        for rtype, sig in node.items():
            rrset = now_node.get(rtype)
            if rrset is None and name in chain and chain[name].rtype == rtype:
                rrset = chain[name]
            before = previous.get(name, rtype)
            if (
                rrset is not None
                and before is not None
                and before.ttl == rrset.ttl
                and (before.rdatas == rrset.rdatas)
            ):
                kept[rtype] = sig
        if kept:
            out[name] = kept
    return out, total
