"""Canonical DNSSEC forms on bytes (RFC 4034 section 6, RFC 6840 section 5.1).

* Names: lower-case ASCII letters, uncompressed wire form.
* Name ordering: compare label by label from the root, each label as lower-cased octets.
* RDATA: uncompressed wire form; embedded domain names are lower-cased only for the "old"
  types listed in :data:`LOWERCASE_NAME_TYPES` (RFC 4034 6.2 item 3 as corrected by RFC 6840
  5.1: NSEC is *not* lower-cased, RRSIG is).
* An RRset in canonical form has no duplicate RDATA and its RDATA sorted as left-justified
  unsigned octet strings (which is Python's ``bytes`` ordering).

The signer computes these once per record and then works on the bytes.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

T = dns.rdatatype
# RFC 4034 6.2 item 3, minus NSEC (RFC 6840 5.1).  HINFO is in the RFC list but holds no
# names.  Types not listed here keep the case of their embedded names.
LOWERCASE_NAME_TYPES: frozenset[int] = frozenset(
    {
        T.NS,
        T.MD,
        T.MF,
        T.CNAME,
        T.SOA,
        T.MB,
        T.MG,
        T.MR,
        T.PTR,
        T.HINFO,
        T.MINFO,
        T.MX,
        T.RP,
        T.AFSDB,
        T.RT,
        T.SIG,
        T.PX,
        T.NXT,
        T.NAPTR,
        T.KX,
        T.SRV,
        T.DNAME,
        T.A6,
        T.RRSIG,
    }
)

_RR_HEAD = struct.Struct("!HHIH")
# Old types dnspython only knows as generic data: how many names lead their RDATA, so we can
# lower-case them ourselves.  (A6's name follows a variable prefix and NXT's is followed by
# a bitmap; both are obsolete and left as they are.)
_LEADING_NAMES: dict[int, int] = {T.MD: 1, T.MF: 1, T.MB: 1, T.MG: 1, T.MR: 1, T.MINFO: 2}


_LENGTH_OCTETS = [bytes((n,)) for n in range(256)]
# Wire forms of the parents of names seen (a zone's names share a few: the apex, a few
# subdomains), so a name costs one label's work.  Bounded: deep zones only miss it.
_PARENT_WIRES: dict[tuple[bytes, ...], bytes] = {}
_PARENT_WIRES_MAX = 4096


def name_wire(name: dns.name.Name) -> bytes:
    """The canonical (lower-case, uncompressed) wire form of an absolute name."""
    labels = name.labels
    if len(labels) > 1 and not labels[-1]:
        parent = labels[1:]
        rest = _PARENT_WIRES.get(parent)
        if rest is None:
            rest = _labels_wire(parent)
            if len(_PARENT_WIRES) < _PARENT_WIRES_MAX:
                _PARENT_WIRES[parent] = rest
        first = labels[0]
        return (_LENGTH_OCTETS[len(first)] + first).lower() + rest
    if labels and not labels[-1]:
        return b"\0"
    got = name.to_wire()  # relative: let dnspython raise its error
    assert got is not None
    return got.lower()


def _labels_wire(labels: tuple[bytes, ...]) -> bytes:
    # Length octets are at most 63, below b"A", so lower() only touches label letters.
    return b"".join([_LENGTH_OCTETS[len(label)] + label for label in labels]).lower()


def sort_key(name: dns.name.Name) -> tuple[bytes, ...]:
    """Key ordering names canonically (RFC 4034 6.1): labels from the root, lower-cased."""
    return tuple(label.lower() for label in reversed(name.labels))


def wire_sort_key(wire: bytes) -> tuple[bytes, ...]:
    """:func:`sort_key` for an uncompressed wire-format name."""
    labels = []
    i = 0
    while wire[i]:
        n = wire[i]
        labels.append(wire[i + 1 : i + 1 + n].lower())
        i += 1 + n
    labels.reverse()
    return tuple(labels)


def rdata_wire(rdata: dns.rdata.Rdata) -> bytes:
    """The canonical RDATA wire form of one record (names lower-cased only where RFC 4034 and
    RFC 6840 say so)."""
    wire = rdata.to_wire(canonicalize=rdata.rdtype in LOWERCASE_NAME_TYPES)
    assert wire is not None
    count = _LEADING_NAMES.get(rdata.rdtype)
    if count and isinstance(rdata, dns.rdata.GenericRdata):
        return _lower_leading_names(wire, count)
    return wire


def _lower_leading_names(wire: bytes, count: int) -> bytes:
    out = bytearray(wire)
    i = 0
    for _ in range(count):
        while i < len(out) and out[i]:
            n = out[i]
            out[i + 1 : i + 1 + n] = bytes(out[i + 1 : i + 1 + n]).lower()
            i += 1 + n
        i += 1
    return bytes(out)


def canonical_rdatas(wires: Iterable[bytes]) -> tuple[bytes, ...]:
    """RDATA wires without duplicates, in canonical order."""
    return tuple(sorted(set(wires)))


def rrset_wire(owner: bytes, rtype: int, rdclass: int, ttl: int, rdatas: Iterable[bytes]) -> bytes:
    """The RRs of an RRset as they enter a signature: owner, type, class, TTL (the RRSIG's
    original TTL), RDLENGTH, RDATA, for RDATA already canonical and sorted."""
    return b"".join(owner + _RR_HEAD.pack(rtype, rdclass, ttl, len(rd)) + rd for rd in rdatas)


def rdata_from_wire(rtype: int, wire: bytes, rdclass: int = dns.rdataclass.IN) -> dns.rdata.Rdata:
    """A dnspython rdata object back from canonical wire (for text output and checks)."""
    return dns.rdata.from_wire(
        dns.rdataclass.RdataClass(rdclass), dns.rdatatype.RdataType(rtype), wire, 0, len(wire)
    )


def name_from_wire(wire: bytes, offset: int = 0) -> tuple[dns.name.Name, int]:
    """An uncompressed name at ``offset``: (name, offset after it).  Raises ValueError."""
    labels = []
    i = offset
    while True:
        if i >= len(wire):
            raise ValueError("truncated name")
        n = wire[i]
        if n == 0:
            i += 1
            break
        if n > 63:
            raise ValueError("compressed or bad label in name")
        labels.append(wire[i + 1 : i + 1 + n])
        i += 1 + n
    labels.append(b"")
    return dns.name.Name(labels), i


# Base32hex (RFC 4648 section 7) of SHA-1 digests, the labels of NSEC3 owner names.  A digest
# is 160 bits, 32 digits of 5 bits; the digits are spread one per octet by five rounds of
# masks and shifts on one big integer holding every digest (each in a 256-bit slot), then
# mapped to digits by one bytes.translate.  Round r splits each value of 160 >> r bits, kept
# in the low end of a unit of 256 >> r bits, into two halves, one per half unit.
_B32HEX_DIGITS = bytes.maketrans(bytes(range(32)), b"0123456789abcdefghijklmnopqrstuv")
_SLOT = 32  # octets per digest slot
_SPREAD_ROUNDS = [(256 >> r, 160 >> r) for r in range(5)]  # (unit bits, value bits)


def _repeat(unit_bits: int, pattern: int, slots: int) -> int:
    unit = pattern.to_bytes(unit_bits // 8, "big")
    return int.from_bytes(unit * (slots * 256 // unit_bits), "big")


def base32hex_digests(digests: list[bytes]) -> list[bytes]:
    """Lower-case base32hex of each digest (no padding): what
    ``base64.b32hexencode(d).lower()`` gives, 4096 at a time for 20-octet digests (the NSEC3
    SHA-1 hashes of a zone) instead of 32 Python-level steps per digest.  Digests of any
    other length are encoded one by one."""
    if any(len(d) != 20 for d in digests):
        return [base64.b32hexencode(d).lower() for d in digests]
    out: list[bytes] = []
    for start in range(0, len(digests), _B32_CHUNK):  # big integers of 128 KiB at most
        out += _base32hex_chunk(digests[start : start + _B32_CHUNK])
    return out


_B32_CHUNK = 4096


def _base32hex_chunk(digests: list[bytes]) -> list[bytes]:
    n = len(digests)
    pad = bytes(_SLOT - 20)
    x = int.from_bytes(pad + pad.join(digests), "big")
    for unit, width in _SPREAD_ROUNDS:
        half = width // 2
        low = _repeat(unit, (1 << half) - 1, n)
        high = _repeat(unit, ((1 << width) - 1) ^ ((1 << half) - 1), n)
        x = (x & low) | ((x & high) << (unit // 2 - half))
    text = x.to_bytes(_SLOT * n, "big").translate(_B32HEX_DIGITS)
    return [text[i : i + _SLOT] for i in range(0, _SLOT * n, _SLOT)]
