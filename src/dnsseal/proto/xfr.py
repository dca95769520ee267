"""Outgoing zone transfers: AXFR (RFC 5936) and IXFR (RFC 1995) from retained versions.

:func:`transfer` turns a transfer query into the sequence of response messages.  An IXFR
whose client serial is one of the retained versions gets the differences, version by version
(``SOA new, [SOA old, deletions, SOA next, additions]..., SOA new``); an up-to-date client gets
the single current SOA; anything else falls back to a full AXFR-style answer.  Messages are
TSIG-signed as one multi-message sequence when the query was signed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsseal.proto.snapshot import (
    IN,
    RRSIG,
    SOA,
    Node,
    ZoneSnapshot,
    name_wire_len,
    rdata_spans,
    wire_equal,
)

# Keep messages well below 64 KiB: compression makes real messages smaller than our estimate.
MESSAGE_BUDGET = 16000

Record = tuple[dns.name.Name, int, int, dns.rdata.Rdata]  # owner, ttl, covers, rdata


def records_of(snap: ZoneSnapshot) -> set[Record]:
    """Every record of the snapshot as a hashable tuple (for computing differences)."""
    out: set[Record] = set()
    for rrset in snap.records():
        for rd in rrset:
            out.add((rrset.name, rrset.ttl, rrset.covers, rd))
    return out


def group_records(records: Iterable[Record]) -> list[dns.rrset.RRset]:
    """Records grouped into RRsets (sorted by owner and type)."""
    return _rrsets(records)


def _rrsets(records: Iterable[Record]) -> list[dns.rrset.RRset]:
    grouped: dict[tuple[dns.name.Name, int, int, int], dns.rrset.RRset] = {}
    for name, ttl, covers, rd in sorted(records, key=lambda r: (r[0], r[3].rdtype, r[2])):
        k = (name, rd.rdtype, covers, ttl)
        rrset = grouped.get(k)
        if rrset is None:
            rrset = grouped[k] = dns.rrset.RRset(
                name, rd.rdclass, rd.rdtype, dns.rdatatype.RdataType(covers)
            )
        rrset.add(rd, ttl)
    return list(grouped.values())


WireRecord = tuple[dns.name.Name, int, int, bytes]  # owner, type, TTL, RDATA wire


@dataclass(frozen=True, slots=True, eq=False)
class VersionStep:
    """An older version in a zone's IXFR history kept as the change from it to the next
    version, not whole: a small zone re-signed shares no node with its successor, so a
    snapshot kept for IXFR cost about 20 KiB a version, its change a few.  ``serial``: the
    older version's; ``removed`` and ``added``: its records the next version lacks and the
    next version's it lacks, the two SOAs among them (make it with :func:`version_step`)."""

    serial: int
    removed: tuple[WireRecord, ...]
    added: tuple[WireRecord, ...]


Retained = ZoneSnapshot | VersionStep  # an entry of a zone's IXFR history


def version_step(
    old: ZoneSnapshot, new: ZoneSnapshot, change: tuple[Iterable[WireRecord], ...] | None = None
) -> VersionStep:
    """``old`` as the step to ``new``: ``change`` (removed, added records), when the caller
    knows it, else computed (:func:`version_diff`).  Only the older SOA is checked to be
    among the removed records and the newer among the added (IXFR needs each)."""
    if change is None:
        gone, came = version_diff(old, new)
        removed = tuple(_wire_record(r) for r in gone)
        added = tuple(_wire_record(r) for r in came)
    else:
        removed, added = tuple(change[0]), tuple(change[1])
    return VersionStep(old.serial, removed, added)


def _wire_record(r: Record) -> WireRecord:
    name, ttl, _, rd = r
    wire = rd.to_wire()  # (as served: no case folding)
    assert wire is not None  # (to_wire without a file returns the bytes)
    return (name, int(rd.rdtype), ttl, wire)


def _step_records(records: Iterable[WireRecord]) -> set[Record]:
    out: set[Record] = set()
    for name, rtype, ttl, wire in records:
        rd = dns.rdata.from_wire(IN, dns.rdatatype.RdataType(rtype), wire, 0, len(wire))
        covers = int.from_bytes(wire[:2], "big") if rtype == RRSIG else 0
        out.add((name, ttl, covers, rd))
    return out


def _step_body(step: VersionStep, origin: dns.name.Name) -> list[dns.rrset.RRset] | None:
    gone, came = _step_records(step.removed), _step_records(step.added)
    old_soa = {r for r in gone if r[3].rdtype == SOA and r[0] == origin}
    new_soa = {r for r in came if r[3].rdtype == SOA and r[0] == origin}
    if len(old_soa) != 1 or len(new_soa) != 1:
        return None  # every step of an IXFR starts with exactly one SOA
    return _rrsets(old_soa) + _rrsets(gone - old_soa) + _rrsets(new_soa) + _rrsets(came - new_soa)


def ixfr_diffs(
    current: ZoneSnapshot, history: Sequence[Retained], client_serial: int
) -> list[dns.rrset.RRset] | None:
    """The IXFR answer body from ``client_serial`` to ``current`` using ``history`` (older
    versions, oldest first: snapshots, or steps to the next entry), or None if
    ``client_serial`` is not retained (AXFR fallback)."""
    versions: list[Retained] = [*history, current]
    start = next((i for i, s in enumerate(versions) if s.serial == client_serial), None)
    if start is None or start == len(versions) - 1:
        return None
    soa_now = current.apex.rrsets[SOA]
    body: list[dns.rrset.RRset] = [soa_now]
    for old, snap in zip(versions[start:-1], versions[start + 1 :], strict=True):
        if isinstance(old, VersionStep):
            step = _step_body(old, current.origin)
            if step is None:
                return None
            body += step
            continue
        if not isinstance(snap, ZoneSnapshot):
            return None  # (a whole version is never kept before a step: see version_step)
        gone, came = version_diff(old, snap)
        old_soa = _records(old.apex.rrsets[SOA])
        new_soa = _records(snap.apex.rrsets[SOA])
        body += _rrsets(old_soa) + _rrsets(gone - old_soa)
        body += _rrsets(new_soa) + _rrsets(came - new_soa)
    body.append(soa_now)
    return body


def version_diff(old: ZoneSnapshot, new: ZoneSnapshot) -> tuple[set[Record], set[Record]]:
    """The records only in ``old`` and only in ``new`` (what :func:`records_of` of each
    would give, subtracted), looking only at the nodes the two versions do not share (the
    versions an UPDATE makes share every unchanged node) and there only at the RRsets whose
    stored wire differs: no record of an unchanged RRset is parsed."""
    gone: set[Record] = set()
    came: set[Record] = set()
    for olds, news in ((old.nodes, new.nodes), (old.nsec3_nodes, new.nsec3_nodes)):
        if olds is news:
            continue
        for k, was in olds.items():
            now = news.get(k)
            if now is not was:
                _node_diff(was, now, gone, came)
        for k in news.keys() - olds.keys():
            _node_diff(None, news[k], gone, came)
    return gone, came


def _node_diff(was: Node | None, now: Node | None, gone: set[Record], came: set[Record]) -> None:
    empty: dict[int, dns.rrset.RRset] = {}
    for old_t, new_t in (
        (was.rrsets if was else empty, now.rrsets if now else empty),
        (was.sigs if was else empty, now.sigs if now else empty),
    ):
        for key in {*old_t, *new_t}:
            if key in old_t and key in new_t and wire_equal(old_t, new_t, key):
                continue
            a = _records(old_t[key]) if key in old_t else set()
            b = _records(new_t[key]) if key in new_t else set()
            gone |= a - b
            came |= b - a


def _records(rrset: dns.rrset.RRset) -> set[Record]:
    return {(rrset.name, rrset.ttl, rrset.covers, rd) for rd in rrset}


def axfr_body(snap: ZoneSnapshot) -> list[dns.rrset.RRset]:
    """SOA, every other RRset, SOA (RFC 5936 2.2), as RRset objects (:func:`render_axfr`
    sends the same records without making them)."""
    records = list(snap.records())
    return [*records, records[0]]


class _WireRecords(dns.rrset.RRset):
    """Records already in wire form, put in a message's answer section and written as they
    are (their owners already compressed against the question name)."""

    __slots__ = ("_count", "_wire")

    def __init__(self, wire: bytes, count: int) -> None:
        super().__init__(dns.name.root, dns.rdataclass.IN, dns.rdatatype.NONE)
        self._wire = wire
        self._count = count

    def to_wire(  # type: ignore[override]
        self,
        file: Any,
        compress: dict[dns.name.Name, int] | None = None,
        origin: dns.name.Name | None = None,
        **kw: Any,
    ) -> int:
        file.write(self._wire)
        return self._count


def _split_records(wire: bytes, owner: int) -> list[bytes]:
    """The records of one RRset's uncompressed wire (owners ``owner`` octets long), each
    without its owner: type, class, TTL, RDLENGTH and RDATA."""
    return [wire[pos - 10 : pos + n] for pos, n in rdata_spans(wire, owner)]


def axfr_chunks(snap: ZoneSnapshot) -> list[tuple[bytes, int]]:
    """The AXFR body of ``snap`` (SOA, every other RRset, SOA: RFC 5936 2.2) packed into
    message-sized pieces: (records in wire form, how many).  Built from the snapshot's
    stored wire, without an RRset object or a parsed record per RRset (a 100k-name zone took
    minutes and kept every record parsed).  Owners are compressed: the first record of an
    owner in a message points into the zone name, which is every message's question
    (offset 12), the owner's next records point at that first one; names inside RDATA are
    left as they are (RFC 4034 forbids compressing the RRSIG and NSEC ones)."""
    origin_len = name_wire_len(snap.origin)
    base = 12 + origin_len + 4  # header and question: where the answer section starts
    chunks: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    used = 0
    last: dns.name.Name | None = None  # the owner written last in this message, and where
    last_at = b""

    def flush() -> None:
        nonlocal parts, used, last
        if parts:
            chunks.append((b"".join(parts), len(parts)))
            parts, used, last = [], 0, None

    soa = b""
    for name, wire in snap.record_wires():
        owner = name_wire_len(name)
        full = wire[: owner - origin_len] + b"\xc0\x0c"
        bodies = _split_records(wire, owner)
        if not soa:
            soa = bodies[0]
        most = len(full) * len(bodies) + sum(map(len, bodies))
        if used + most > MESSAGE_BUDGET:
            flush()
        for body in bodies:
            if most > MESSAGE_BUDGET and used + len(full) + len(body) > MESSAGE_BUDGET:
                flush()  # one RRset bigger than a message: record by record
            if name is last:
                own = last_at
            else:
                own = full
                if len(full) > 2:
                    last, last_at = name, (0xC000 | (base + used)).to_bytes(2, "big")
            parts.append(own + body)
            used += len(own) + len(body)
    if used + 2 + len(soa) > MESSAGE_BUDGET:
        flush()
    parts.append(b"\xc0\x0c" + soa)
    flush()
    return chunks


def render_axfr(query: dns.message.Message, snap: ZoneSnapshot) -> list[bytes]:
    """The AXFR response messages for ``snap`` (TSIG-signed as one sequence when ``query``
    was signed): :func:`render_transfer` of :func:`axfr_body`, from the stored wire."""
    return _render(query, [[_WireRecords(w, n)] for w, n in axfr_chunks(snap)])


def _size(rrset: dns.rrset.RRset) -> int:
    f = io.BytesIO()
    rrset.to_wire(f)
    return f.tell()


def _split(rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
    """Split an RRset too large for one message into single-record RRsets."""
    if _size(rrset) <= MESSAGE_BUDGET or len(rrset) == 1:
        return [rrset]
    out = []
    for rd in rrset:
        one = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
        one.add(rd, rrset.ttl)
        out.append(one)
    return out


def render_transfer(query: dns.message.Message, body: list[dns.rrset.RRset]) -> list[bytes]:
    """Pack ``body`` into as many response messages as needed, TSIG-signed as one sequence
    when ``query`` was signed (dnspython keeps the key and request MAC on the response)."""
    chunks: list[list[dns.rrset.RRset]] = [[]]
    used = 0
    for big in body:
        for rrset in _split(big):
            size = _size(rrset)
            if chunks[-1] and used + size > MESSAGE_BUDGET:
                chunks.append([])
                used = 0
            chunks[-1].append(rrset)
            used += size
    return _render(query, chunks)


def _render(query: dns.message.Message, chunks: list[list[dns.rrset.RRset]]) -> list[bytes]:
    out: list[bytes] = []
    ctx = None
    for chunk in chunks:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer = chunk
        # max_size: without it dnspython caps a TCP message at the query's EDNS UDP size.
        if query.had_tsig:
            out.append(response.to_wire(max_size=65535, multi=True, tsig_ctx=ctx))
            ctx = response.tsig_ctx
        else:
            out.append(response.to_wire(max_size=65535))
    return out


# (current snapshot, client serial) -> IXFR answer body, or None: the older history kept
# outside memory (the journal), consulted when the retained versions do not reach back.
IxfrSource = Callable[[ZoneSnapshot, int], list[dns.rrset.RRset] | None]


def transfer(
    query: dns.message.Message,
    current: ZoneSnapshot,
    history: Sequence[Retained],
    older: IxfrSource | None = None,
) -> list[bytes]:
    """The response messages for an AXFR or IXFR ``query`` for ``current``'s zone."""
    qtype = query.question[0].rdtype
    if qtype == dns.rdatatype.IXFR:
        client_serial = _ixfr_serial(query)
        if client_serial is not None:
            if _serial_ge(client_serial, current.serial):
                return render_transfer(query, [current.apex.rrsets[SOA]])
            body = ixfr_diffs(current, history, client_serial)
            if body is None and older is not None:
                body = older(current, client_serial)
            if body is not None:
                return render_transfer(query, body)
    return render_axfr(query, current)


def _ixfr_serial(query: dns.message.Message) -> int | None:
    for rrset in query.authority:
        if rrset.rdtype == SOA and len(rrset):
            return int(rrset[0].serial)
    return None


def _serial_ge(a: int, b: int) -> bool:
    """RFC 1982 serial arithmetic: a >= b."""
    return a == b or 0 < ((a - b) % 2**32) < 2**31


def refused(query: dns.message.Message, rcode: int = dns.rcode.REFUSED) -> bytes:
    """A transfer refusal (still TSIG-signed when the query was)."""
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode(rcode))
    return response.to_wire(max_size=65535)
