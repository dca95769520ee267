"""The common case on bytes: one plain question, at most an OPT record, no TSIG.

:func:`parse_simple` reads such a query without building a dnspython message (anything else
returns None and takes the general path).  :func:`render_simple` builds the response by
concatenating the query's own question bytes and the per-RRset wire forms memoised on the
snapshot (uncompressed: compression is optional, RFC 1035 4.1.4).  When that does not fit the
size limit it returns None and the caller uses the compressing renderer, which also handles
truncation.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.ipv4
import dns.ipv6
import dns.name
import dns.rdatatype
import dns.rrset

from dnsseal.proto.answer import Answer
from dnsseal.proto.snapshot import ZoneSnapshot

OPT_TYPE = 41
HEADER = struct.Struct("!HHHHHH")
OPT_FIXED = struct.Struct("!HHIH")
RR_FIXED = struct.Struct("!HHI")  # type, class, TTL
RDLEN = struct.Struct("!H")
RRSIG_FIXED = struct.Struct("!HBBIIIH")
QR_OPCODE = 0xF800  # QR bit and opcode: both zero in a plain query
# Plain ints: enum arithmetic costs microseconds per query on this path.
ECHO = int(dns.flags.RD | dns.flags.CD)
QR = int(dns.flags.QR)
AA = int(dns.flags.AA)
DO_BIT = 0x8000


@dataclass(frozen=True, slots=True)
class SimpleQuery:
    """A plain query: the question (and where it ends in the wire), EDNS facts."""

    flags: int
    qname: dns.name.Name
    qtype: int
    qclass: int
    question_end: int
    edns: bool
    payload: int
    do: bool


def parse_simple(wire: bytes) -> SimpleQuery | None:
    """Parse a plain QUERY (QDCOUNT 1, no answer/authority, at most one EDNS version 0 OPT,
    nothing trailing); None for anything else (the general path then decides)."""
    n = len(wire)
    if n < 17:
        return None
    _, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    if flags & QR_OPCODE or qd != 1 or an or ns or ar > 1:
        return None
    pos = 12
    labels: list[bytes] = []
    while True:
        if pos >= n:
            return None
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            return None  # compression or extended label types: general path
        labels.append(wire[pos + 1 : pos + 1 + length])
        pos += 1 + length
    if pos + 4 > n:
        return None
    qtype, qclass = struct.unpack_from("!HH", wire, pos)
    qend = pos + 4
    edns, payload, do = False, 0, False
    if ar:
        if qend + 11 > n or wire[qend] != 0:
            return None
        rtype, payload, ttl, rdlen = OPT_FIXED.unpack_from(wire, qend + 1)
        if rtype != OPT_TYPE or qend + 11 + rdlen != n or (ttl >> 16) & 0xFF != 0:
            return None  # not OPT, malformed, or EDNS version > 0 (BADVERS: general path)
        if rdlen and not options_ok(wire, qend + 11):
            return None  # FORMERR from the general path
        edns, do = True, bool(ttl & DO_BIT)
    elif qend != n:
        return None
    labels.append(b"")
    try:
        qname = dns.name.Name(labels)
    except dns.exception.DNSException:
        return None
    return SimpleQuery(flags, qname, qtype, qclass, qend, edns, payload, do)


COOKIE = 10


def options_ok(wire: bytes, pos: int) -> bool:
    """Are the EDNS options from ``pos`` to the end of ``wire`` well formed: every option
    header complete, its data inside the message, a COOKIE 8 or 16-40 octets (RFC 6891
    6.1.2, RFC 7873 5.2.2)?  A malformed OPT gets FORMERR, as from named and Knot; the
    byte paths leave it to the general path, whose parser refuses it."""
    n = len(wire)
    while pos < n:
        if pos + 4 > n:
            return False
        code = wire[pos] << 8 | wire[pos + 1]
        length = wire[pos + 2] << 8 | wire[pos + 3]
        pos += 4 + length
        if code == COOKIE and not (length == 8 or 16 <= length <= 40):
            return False
    return pos == n


def question_type(wire: bytes) -> int | None:
    """The QTYPE of the first question, if the name is plain labels (no compression)."""
    pos, n = 12, len(wire)
    while pos < n:
        length = wire[pos]
        if length == 0:
            return int.from_bytes(wire[pos + 1 : pos + 3], "big") if pos + 3 <= n else None
        if length > 63:
            return None
        pos += 1 + length
    return None


def name_wire(name: dns.name.Name) -> bytes:
    """Uncompressed wire form of an absolute name (dnspython's builds a Name per suffix)."""
    return b"".join(bytes((len(label),)) + label for label in name.labels)


def _names(*attrs: str) -> Callable[[Any], bytes]:
    def encode(rd: Any) -> bytes:
        return b"".join(name_wire(getattr(rd, a)) for a in attrs)

    return encode


# RDATA encoders for the types of nearly every answer (the others use dnspython's to_wire).
# Each must give exactly dnspython's uncompressed wire form (tests/server/test_snapshot.py).
RDATA_ENCODERS: dict[int, Callable[[Any], bytes]] = {
    dns.rdatatype.A: lambda rd: dns.ipv4.inet_aton(rd.address),
    dns.rdatatype.AAAA: lambda rd: dns.ipv6.inet_aton(rd.address),
    dns.rdatatype.RRSIG: lambda rd: (
        RRSIG_FIXED.pack(
            rd.type_covered,
            rd.algorithm,
            rd.labels,
            rd.original_ttl,
            rd.expiration,
            rd.inception,
            rd.key_tag,
        )
        + name_wire(rd.signer)
        + rd.signature
    ),
    dns.rdatatype.NSEC: lambda rd: (
        name_wire(rd.next) + b"".join(bytes((w, len(b))) + b for w, b in rd.windows)
    ),
    dns.rdatatype.MX: lambda rd: struct.pack("!H", rd.preference) + name_wire(rd.exchange),
    dns.rdatatype.NS: _names("target"),
    dns.rdatatype.CNAME: _names("target"),
    dns.rdatatype.DNAME: _names("target"),
    dns.rdatatype.PTR: _names("target"),
}
NAME_FIELDS = {
    dns.rdatatype.RRSIG: "signer",
    dns.rdatatype.NSEC: "next",
    dns.rdatatype.MX: "exchange",
    dns.rdatatype.NS: "target",
    dns.rdatatype.CNAME: "target",
    dns.rdatatype.DNAME: "target",
    dns.rdatatype.PTR: "target",
}


def rdata_wires(rrset: dns.rrset.RRset) -> list[bytes]:
    """Each record's rdata in uncompressed wire form, in the RRset's order: the encoders
    above for the usual types, dnspython's ``to_wire`` for the rest (and for relative
    names)."""
    encode = RDATA_ENCODERS.get(rrset.rdtype)
    field = NAME_FIELDS.get(rrset.rdtype)
    if encode is None:
        return [rd.to_wire() for rd in rrset]
    return [
        encode(rd) if field is None or getattr(rd, field).is_absolute() else rd.to_wire()
        for rd in rrset
    ]


def encode_rrset(
    rrset: dns.rrset.RRset, owner: bytes | None = None, ttl: int | None = None
) -> tuple[bytes, int]:
    """The RRset's records in uncompressed wire form, in a stable order, and their count.
    ``owner``: the owner's wire form to write instead of the name's (a pointer); ``ttl``:
    the TTL to write instead of the RRset's."""
    head = (name_wire(rrset.name) if owner is None else owner) + RR_FIXED.pack(
        rrset.rdtype, rrset.rdclass, rrset.ttl if ttl is None else ttl
    )
    parts = [head + RDLEN.pack(len(data)) + data for data in rdata_wires(rrset)]
    return b"".join(parts), len(parts)


def rrset_wire(snap: ZoneSnapshot, rrset: dns.rrset.RRset, memo: bool) -> tuple[bytes, int]:
    """The uncompressed wire form of ``rrset`` and its record count, memoised on ``snap``
    when ``memo`` (the RRset belongs to the snapshot, so its id is stable)."""
    key = id(rrset)
    if memo:
        hit = snap.wire_memo.get(key)
        if hit is not None and hit[0] is rrset:
            return hit[1], hit[2]
    data, count = encode_rrset(rrset)
    if memo:
        snap.wire_memo[key] = (rrset, data, count)
    return data, count


def render_simple(
    wire: bytes,
    q: SimpleQuery,
    snap: ZoneSnapshot,
    ans: Answer,
    sections: tuple[list[dns.rrset.RRset], list[dns.rrset.RRset], list[dns.rrset.RRset]],
    max_size: int,
    our_payload: int,
) -> bytes | None:
    """The response as bytes, or None if it does not fit ``max_size`` uncompressed."""
    flags = QR | (q.flags & ECHO) | (int(ans.rcode) & 0xF)
    if ans.aa:
        flags |= AA
    parts = [b"", wire[12 : q.question_end]]
    counts = [0, 0, 0]
    size = q.question_end + (11 if q.edns else 0)
    for i, rrsets in enumerate(sections):
        for rrset in rrsets:
            data, count = rrset_wire(snap, rrset, id(rrset) not in ans.fresh)
            parts.append(data)
            counts[i] += count
            size += len(data)
    if size > max_size:
        return None
    if q.edns:
        parts.append(b"\x00" + OPT_FIXED.pack(OPT_TYPE, our_payload, DO_BIT if q.do else 0, 0))
    parts[0] = HEADER.pack(
        struct.unpack_from("!H", wire)[0], flags, 1, counts[0], counts[1], counts[2] + q.edns
    )
    return b"".join(parts)
