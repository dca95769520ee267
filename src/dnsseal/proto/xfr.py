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

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset

from dnsseal.proto.snapshot import SOA, ZoneSnapshot

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


def ixfr_diffs(
    current: ZoneSnapshot, history: Sequence[ZoneSnapshot], client_serial: int
) -> list[dns.rrset.RRset] | None:
    """The IXFR answer body from ``client_serial`` to ``current`` using ``history`` (older
    versions, oldest first), or None if ``client_serial`` is not retained (AXFR fallback)."""
    versions = [*history, current]
    start = next((i for i, s in enumerate(versions) if s.serial == client_serial), None)
    if start is None or start == len(versions) - 1:
        return None
    soa_now = current.apex.rrsets[SOA]
    body: list[dns.rrset.RRset] = [soa_now]
    old_records = records_of(versions[start])
    for snap in versions[start + 1 :]:
        new_records = records_of(snap)
        old_soa = [r for r in old_records if r[3].rdtype == SOA and r[0] == snap.origin]
        new_soa = [r for r in new_records if r[3].rdtype == SOA and r[0] == snap.origin]
        deleted = old_records - new_records - set(old_soa)
        added = new_records - old_records - set(new_soa)
        body += _rrsets(old_soa) + _rrsets(deleted) + _rrsets(new_soa) + _rrsets(added)
        old_records = new_records
    body.append(soa_now)
    return body


def axfr_body(snap: ZoneSnapshot) -> list[dns.rrset.RRset]:
    """SOA, every other RRset, SOA (RFC 5936 2.2)."""
    records = list(snap.records())
    return [*records, records[0]]


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
    history: Sequence[ZoneSnapshot],
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
    return render_transfer(query, axfr_body(current))


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
