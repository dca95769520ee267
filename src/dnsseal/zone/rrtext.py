"""One record as the journal's presentation line, straight from its RDATA wire.

The journal removes records by matching text, so :func:`record_text` must give exactly what
dnspython 2.9 gives for ``f"{name} {ttl} IN {type} {rdata.to_text()}"`` (absolute names,
default style: base64 in chunks of 32 separated by spaces, hex in lower case in chunks of
128, NSEC3 next hashes in lower-case unpadded base32hex).  The types that make up nearly all
of a signed zone are formatted here without building an Rdata object; every other type, and
any RDATA the fast path is not sure of (malformed, non-canonical, unusual digest types),
goes through dnspython, so the result is dnspython's (or dnspython's exception) either way.
Tests compare the two on random RDATA of every formatted type.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable, Iterator

import dns.ipv6
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dnsseal.zone.rdtext import label_text, time_text

T = dns.rdatatype
IN = dns.rdataclass.IN
_RR_FIXED = struct.Struct("!HHIH")

# dns.name escapes these in labels with a backslash, bytes outside 0x21-0x7e as \DDD.

_NAME_CACHE: dict[bytes, str] = {}
# Repeated names (RRSIG signers, NS/MX targets) hit; the caches are emptied when full, so
# a server formatting thousands of zones keeps the current zone's names, not the first's.
_NAME_CACHE_MAX = 4096
_TYPE_TEXT: dict[int, str] = {}
_BITMAP_TEXT: dict[bytes, str] = {}


class _Unsure(Exception):
    """The fast path does not format this RDATA: dnspython does."""


def _name(wire: bytes, offset: int) -> tuple[str, int]:
    """The uncompressed wire name at ``offset`` as text, and the offset after it."""
    end = offset
    n = wire[end]
    while n:
        if n > 63:  # a compression pointer or an extended label type
            raise _Unsure
        end += n + 1
        n = wire[end]
    end += 1
    if end - offset > 255:
        raise _Unsure
    key = wire[offset:end]
    text = _NAME_CACHE.get(key)
    if text is None:
        labels = []
        i = 0
        while key[i]:
            labels.append(label_text(key[i + 1 : i + 1 + key[i]]))
            i += key[i] + 1
        text = ".".join(labels) + "." if labels else "."
        if len(_NAME_CACHE) >= _NAME_CACHE_MAX:
            _NAME_CACHE.clear()
        _NAME_CACHE[key] = text
    return text, end


def type_text(rtype: int) -> str:
    """``dns.rdatatype.to_text(rtype)``, cached."""
    s = _TYPE_TEXT.get(rtype)
    if s is None:
        s = _TYPE_TEXT[rtype] = T.to_text(T.RdataType.make(rtype))
    return s


def _b64(data: bytes) -> str:
    if not data:
        raise _Unsure
    s = base64.b64encode(data).decode("ascii")
    if len(s) <= 32:
        return s
    return " ".join([s[i : i + 32] for i in range(0, len(s), 32)])


def _hex(data: bytes) -> str:
    s = binascii.hexlify(data).decode("ascii")
    if len(s) <= 128:
        return s
    return " ".join([s[i : i + 128] for i in range(0, len(s), 128)])


def _bitmap(wire: bytes) -> str:
    """The type bitmap as dnspython's ``Bitmap.to_text()`` (each window: a space, then its
    types; strictly canonical windows only)."""
    s = _BITMAP_TEXT.get(wire)
    if s is not None:
        return s
    parts = []
    i, end, last = 0, len(wire), -1
    while i < end:
        if i + 2 > end:
            raise _Unsure
        win, n = wire[i], wire[i + 1]
        block = wire[i + 2 : i + 2 + n]
        if win <= last or not 1 <= n <= 32 or len(block) != n or block[-1] == 0:
            raise _Unsure
        last = win
        base = win * 256
        types = [
            type_text(base + j * 8 + b)
            for j, byte in enumerate(block)
            if byte
            for b in range(8)
            if byte & (0x80 >> b)
        ]
        parts.append(" " + " ".join(types))
        i += 2 + n
    s = "".join(parts)
    if len(_BITMAP_TEXT) >= 4096:  # zones have few distinct bitmaps
        _BITMAP_TEXT.clear()
    _BITMAP_TEXT[wire] = s
    return s


def _a(w: bytes) -> str:
    if len(w) != 4:
        raise _Unsure
    return f"{w[0]}.{w[1]}.{w[2]}.{w[3]}"


def _aaaa(w: bytes) -> str:
    if len(w) != 16:
        raise _Unsure
    return dns.ipv6.inet_ntoa(w)


def _one_name(w: bytes) -> str:
    text, end = _name(w, 0)
    if end != len(w):
        raise _Unsure
    return text


def _mx(w: bytes) -> str:
    if len(w) < 3:
        raise _Unsure
    text, end = _name(w, 2)
    if end != len(w):
        raise _Unsure
    return f"{(w[0] << 8) | w[1]} {text}"


def _soa(w: bytes) -> str:
    mname, i = _name(w, 0)
    rname, i = _name(w, i)
    if len(w) != i + 20:
        raise _Unsure
    serial, refresh, retry, expire, minimum = struct.unpack_from("!5I", w, i)
    return f"{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"


def _txt(w: bytes) -> str:
    if not w:
        raise _Unsure
    parts = []
    i, end = 0, len(w)
    while i < end:
        n = w[i]
        chunk = w[i + 1 : i + 1 + n]
        if len(chunk) != n:
            raise _Unsure
        if chunk.translate(None, _TXT_PLAIN):
            text = "".join(
                "\\" + chr(c) if c in (0x22, 0x5C) else chr(c) if 0x20 <= c < 0x7F else f"\\{c:03d}"
                for c in chunk
            )
        else:
            text = chunk.decode("ascii")
        parts.append('"' + text + '"')
        i += 1 + n
    return " ".join(parts)


_TXT_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C))
# Digest lengths dnspython checks (DSBase._digest_length_by_type); other types: dnspython.
_DS_LENGTHS = {1: 20, 2: 32, 4: 48}


def _ds(w: bytes) -> str:
    if len(w) < 5 or _DS_LENGTHS.get(w[3]) != len(w) - 4:
        raise _Unsure
    return f"{(w[0] << 8) | w[1]} {w[2]} {w[3]} {_hex(w[4:])}"


def _dnskey(w: bytes) -> str:
    if len(w) < 5:
        raise _Unsure
    return f"{(w[0] << 8) | w[1]} {w[2]} {w[3]} {_b64(w[4:])}"


_RRSIG_FIXED = struct.Struct("!HBBIIIH")


def _rrsig(w: bytes) -> str:
    if len(w) < 20:
        raise _Unsure
    covered, alg, labels, ttl, exp, inc, tag = _RRSIG_FIXED.unpack_from(w)
    signer, i = _name(w, 18)
    return (
        f"{type_text(covered)} {alg} {labels} {ttl} {time_text(exp)} {time_text(inc)} "
        f"{tag} {signer} {_b64(w[i:])}"
    )


def _nsec(w: bytes) -> str:
    nxt, i = _name(w, 0)
    return nxt + _bitmap(w[i:])


def _nsec3(w: bytes) -> str:
    if len(w) < 6:
        raise _Unsure
    slen = w[4]
    salt = w[5 : 5 + slen]
    if len(salt) != slen or len(w) < 6 + slen:
        raise _Unsure
    hlen = w[5 + slen]
    nxt = w[6 + slen : 6 + slen + hlen]
    if not hlen or len(nxt) != hlen:
        raise _Unsure
    next_text = base64.b32hexencode(nxt).decode("ascii").rstrip("=").lower()
    salt_text = binascii.hexlify(salt).decode("ascii") if slen else "-"
    head = f"{w[0]} {w[1]} {(w[2] << 8) | w[3]} {salt_text} {next_text}"
    return head + _bitmap(w[6 + slen + hlen :])


def _nsec3param(w: bytes) -> str:
    if len(w) < 5 or len(w) != 5 + w[4]:
        raise _Unsure
    salt_text = binascii.hexlify(w[5:]).decode("ascii") if w[4] else "-"
    return f"{w[0]} {w[1]} {(w[2] << 8) | w[3]} {salt_text}"


FORMATTERS: dict[int, Callable[[bytes], str]] = {
    T.A: _a,
    T.AAAA: _aaaa,
    T.NS: _one_name,
    T.CNAME: _one_name,
    T.SOA: _soa,
    T.MX: _mx,
    T.TXT: _txt,
    T.DS: _ds,
    T.CDS: _ds,
    T.DNSKEY: _dnskey,
    T.CDNSKEY: _dnskey,
    T.RRSIG: _rrsig,
    T.NSEC: _nsec,
    T.NSEC3: _nsec3,
    T.NSEC3PARAM: _nsec3param,
}


def rdata_text(rtype: int, wire: bytes) -> str:
    """dnspython's ``to_text()`` of the IN-class RDATA ``wire`` of type ``rtype`` (raises
    what dnspython raises when the RDATA is malformed)."""
    fmt = FORMATTERS.get(rtype)
    if fmt is not None:
        try:
            return fmt(wire)
        except (_Unsure, IndexError, struct.error):
            pass
    rd = dns.rdata.from_wire(IN, T.RdataType.make(rtype), wire, 0, len(wire))
    text: str = rd.to_text()
    return text


def record_text(owner_text: str, rtype: int, ttl: int, wire: bytes) -> str:
    """One record as the journal's line: ``owner TTL IN TYPE RDATA`` (``owner_text``: the
    absolute owner as dnspython writes it)."""
    return f"{owner_text} {ttl} IN {type_text(rtype)} {rdata_text(rtype, wire)}"


def rrset_wire_lines(owner_text: str, owner_len: int, wire: bytes) -> Iterator[str]:
    """The lines of the records of one RRset given as uncompressed wire records (each:
    owner of ``owner_len`` octets, type, class, TTL, RDATA), all with the first record's
    TTL (the TTL of the RRset they make)."""
    pos, end = 0, len(wire)
    ttl = -1
    while pos < end:
        pos += owner_len
        rtype, _, rttl, rdlen = _RR_FIXED.unpack_from(wire, pos)
        pos += 10
        if ttl < 0:
            ttl = rttl
        yield record_text(owner_text, rtype, ttl, wire[pos : pos + rdlen])
        pos += rdlen
