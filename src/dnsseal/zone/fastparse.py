"""A fast path for reading plain master files: one record per line, no parentheses, class
IN, the directives $TTL and $ORIGIN.  Owner, TTL, class and type are split here; the
RDATA of the common types (A, AAAA, NS, CNAME, PTR, DNAME, MX) is converted here and every
other type goes through dnspython's per-record parser.

:func:`parse` returns None whenever a file uses anything else (or has any error), and the
caller then reads the whole file with dnspython's reader, which also produces the error
messages.  Both paths give the same records; tests compare them.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import ipaddress
import re
import struct
from collections.abc import Callable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from dnsseal.zone import canonical
from dnsseal.zone.bitmap import type_bitmap
from dnsseal.zone.model import OwnerName

T = dns.rdatatype
IN = dns.rdataclass.IN
Record = tuple[dns.name.Name, int, int, bytes]
_NAME_RDATA = frozenset({T.NS, T.CNAME, T.PTR, T.DNAME})
_DNSSEC_TYPES = frozenset({T.RRSIG, T.NSEC, T.NSEC3, T.DS, T.DNSKEY})


class _Unsupported(Exception):
    """The line needs the full parser."""


def _fast_name(text: str, origin: dns.name.Name) -> dns.name.Name | None:
    """A plain ASCII name without escapes, as dnspython reads it, or None (use dnspython).
    All-lower-case names come back as :class:`OwnerName` (hash computed once)."""
    if "\\" in text or not text.isascii():
        return None
    if text == ".":
        labels: tuple[bytes, ...] = (b"",)
    else:
        parts = text.encode("ascii").split(b".")
        if text[-1] == ".":
            parts.pop()
            labels = (*parts, b"")
        else:
            labels = (*parts, *origin.labels)
        if not origin.is_absolute() and text[-1] != ".":
            return None
        for label in parts:
            if not 0 < len(label) < 64:
                return None
        if sum(map(len, labels)) + len(labels) > 255:
            return None
    if labels == tuple(label.lower() for label in labels):
        return OwnerName(labels)
    return dns.name.Name(labels)


class _Names:
    """Owner and target names relative to the current origin, cached by text (one cache
    per origin, so a lookup hashes only the text)."""

    def __init__(self, zone_origin: dns.name.Name) -> None:
        self._caches: dict[tuple[bytes, ...], dict[str, dns.name.Name]] = {}
        self._zone = tuple(label.lower() for label in zone_origin.labels)
        self._in_zone: dict[tuple[bytes, ...], bool] = {}

    def get(self, text: str, origin: dns.name.Name) -> dns.name.Name:
        cache = self._caches.get(origin.labels)
        if cache is None:
            cache = self._caches[origin.labels] = {}
        name = cache.get(text)
        if name is None:
            if text == "@":
                name = origin
            else:
                name = _fast_name(text, origin) or dns.name.from_text(text, origin)
            cache[text] = name
        return name

    def in_zone(self, name: dns.name.Name) -> bool:
        """Whether ``name`` is at or below the zone's origin."""
        got = self._in_zone.get(name.labels)
        if got is None:
            n = len(self._zone)
            tail = name.labels[-n:] if len(name.labels) >= n else ()
            got = self._in_zone[name.labels] = tuple(x.lower() for x in tail) == self._zone
        return got


def _strip_comment(line: str) -> str:
    if ";" not in line:
        return line
    if '"' not in line:
        return line[: line.index(";")]
    out = []
    quoted = False
    escaped = False
    for ch in line:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            break
        out.append(ch)
    return "".join(out)


def _split1(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _sigtime(text: str) -> int:
    """RFC 4034 3.2: YYYYMMDDHHmmSS (UTC) or seconds."""
    if len(text) == 14 and text.isdigit():
        y, mo, d = int(text[:4]), int(text[4:6]), int(text[6:8])
        h, mi, sec = int(text[8:10]), int(text[10:12]), int(text[12:14])
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and sec < 61):
            raise _Unsupported
        return calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) & 0xFFFFFFFF
    if text.isdigit() and int(text) <= 0xFFFFFFFF:
        return int(text)
    raise _Unsupported


_TYPE_CACHE: dict[str, int] = {}


def _type(text: str) -> int:
    t = _TYPE_CACHE.get(text)
    if t is None:
        t = _TYPE_CACHE[text] = int(T.from_text(text))
    return t


def _u8(text: str) -> int:
    if not text.isdigit() or int(text) > 255:
        raise _Unsupported  # mnemonics and odd forms: dnspython
    return int(text)


def _u16(text: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFF:
        raise _Unsupported
    return int(text)


def _b64(parts: list[str]) -> bytes:
    return base64.b64decode("".join(parts), validate=True)


def _salt(text: str) -> bytes:
    salt = b"" if text == "-" else bytes.fromhex(text)
    if len(salt) > 255:
        raise _Unsupported
    return salt


def _rrsig(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    if len(f) < 9:
        raise _Unsupported
    head = struct.pack("!HBBIIIH", _type(f[0]), _u8(f[1]), _u8(f[2]), dns.ttl.from_text(f[3]),
                       _sigtime(f[4]), _sigtime(f[5]), _u16(f[6]))  # fmt: skip
    return head + canonical.name_wire(names.get(f[7], origin)) + _b64(f[8:])


def _nsec(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    nxt = names.get(f[0], origin).to_wire()  # RFC 6840 5.1: NSEC keeps the name's case
    assert nxt is not None
    return nxt + type_bitmap(_type(t) for t in f[1:])


def _nsec3(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    if len(f) < 5:
        raise _Unsupported
    salt = _salt(f[3])
    nxt = base64.b32hexdecode(f[4].upper())
    head = struct.pack("!BBHB", _u8(f[0]), _u8(f[1]), _u16(f[2]), len(salt)) + salt
    return head + bytes((len(nxt),)) + nxt + type_bitmap(_type(t) for t in f[5:])


def _nsec3param(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    if len(f) != 4:
        raise _Unsupported
    salt = _salt(f[3])
    return struct.pack("!BBHB", _u8(f[0]), _u8(f[1]), _u16(f[2]), len(salt)) + salt


def _dnskey(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    if len(f) < 4:
        raise _Unsupported
    return struct.pack("!HBB", _u16(f[0]), _u8(f[1]), _u8(f[2])) + _b64(f[3:])


def _ds(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    if len(f) < 4:
        raise _Unsupported
    return struct.pack("!HBB", _u16(f[0]), _u8(f[1]), _u8(f[2])) + bytes.fromhex("".join(f[3:]))


_TXT_RE = re.compile(r'"([^"]*)"|(\S+)')


def _txt(rest: str) -> bytes:
    if "\\" in rest:
        raise _Unsupported  # escapes: dnspython
    out = bytearray()
    pos = 0
    for m in _TXT_RE.finditer(rest):
        if rest[pos : m.start()].strip():
            raise _Unsupported
        pos = m.end()
        raw = (m.group(1) if m.group(1) is not None else m.group(2)).encode()
        if len(raw) > 255:
            raise _Unsupported
        out.append(len(raw))
        out += raw
    if rest[pos:].strip() or not out:
        raise _Unsupported
    return bytes(out)


_FIELD_PARSERS: dict[int, Callable[[list[str], dns.name.Name, _Names], bytes]] = {
    T.RRSIG: _rrsig,
    T.NSEC: _nsec,
    T.NSEC3: _nsec3,
    T.NSEC3PARAM: _nsec3param,
    T.DNSKEY: _dnskey,
    T.CDNSKEY: _dnskey,
    T.DS: _ds,
    T.CDS: _ds,
}


def _rdata(rtype: int, fields: list[str], rest: str, origin: dns.name.Name,
           names: _Names) -> bytes:  # fmt: skip
    try:
        return _fast_rdata(rtype, fields, rest, origin, names)
    except (_Unsupported, ValueError, binascii.Error, struct.error):
        rd = dns.rdata.from_text(IN, T.RdataType(rtype), rest, origin=origin, relativize=False)
        return canonical.rdata_wire(rd)


def _ipv4(text: str) -> bytes:
    parts = text.split(".")
    if len(parts) == 4 and text.isascii():
        try:
            octets = bytes(int(p) for p in parts)  # ValueError above 255
        except ValueError:
            octets = b""
        if octets and all(p.isdigit() and (p == "0" or p[0] != "0") for p in parts):
            return octets
    return ipaddress.IPv4Address(text).packed  # odd forms: its checks and errors


def _fast_rdata(rtype: int, fields: list[str], rest: str, origin: dns.name.Name,
                names: _Names) -> bytes:  # fmt: skip
    parser = _FIELD_PARSERS.get(rtype)
    if parser is not None:
        return parser(fields, origin, names)
    if rtype == T.TXT:
        return _txt(rest)
    if rtype == T.A and len(fields) == 1:
        return _ipv4(fields[0])
    if rtype == T.AAAA and len(fields) == 1:
        return ipaddress.IPv6Address(fields[0]).packed
    if rtype in _NAME_RDATA and len(fields) == 1:
        return canonical.name_wire(names.get(fields[0], origin))
    if rtype == T.MX and len(fields) == 2 and fields[0].isdigit():
        pref = int(fields[0])
        if pref > 0xFFFF:
            raise _Unsupported
        return struct.pack("!H", pref) + canonical.name_wire(names.get(fields[1], origin))
    raise _Unsupported


def parse(text: str, origin: dns.name.Name) -> list[Record] | None:
    """The records of a plain master file, or None when the full parser is needed."""
    try:
        return _parse(text, origin)
    except (_Unsupported, dns.exception.DNSException, ValueError, IndexError, KeyError):
        return None


def _parse(text: str, zone_origin: dns.name.Name) -> list[Record]:
    if "(" in text or ")" in text or "\\ " in text or "\\\t" in text:
        raise _Unsupported  # multi-line records, escaped blanks in names
    names = _Names(zone_origin)
    origin = zone_origin
    default_ttl: int | None = None
    owner: dns.name.Name | None = None
    out: list[Record] = []
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line.strip():
            continue
        if line.startswith("$"):
            parts = line.split()
            directive = parts[0].upper()
            if directive == "$TTL" and len(parts) == 2:
                default_ttl = dns.ttl.from_text(parts[1])
            elif directive == "$ORIGIN" and len(parts) == 2:
                origin = dns.name.from_text(parts[1], origin)
            else:
                raise _Unsupported
            continue
        if line[0] in " \t":
            if owner is None:
                raise _Unsupported
            rest = line.lstrip()
        else:
            tok, rest = _split1(line)
            owner = names.get(tok, origin)
        ttl: int | None = None
        rtype: int | None = None
        while rtype is None:
            tok, rest = _split1(rest)
            if not tok:
                raise _Unsupported
            if tok[0].isdigit() and ttl is None:
                ttl = dns.ttl.from_text(tok)
            elif tok.upper() == "IN":
                continue
            elif tok.upper() in ("CH", "HS", "CS", "ANY", "NONE") or tok.upper().startswith(
                "CLASS"
            ):
                raise _Unsupported
            else:
                rtype = _type(tok)
        if ttl is None:
            ttl = default_ttl
            if ttl is None:
                raise _Unsupported  # RFC 2308 / last-TTL defaults: leave them to dnspython
        if not names.in_zone(owner):
            continue  # out-of-zone data is ignored, as dnspython and BIND do
        fields = rest.split()
        if not fields and rtype not in (T.NSEC3PARAM,):
            raise _Unsupported
        out.append((owner, rtype, ttl, _rdata(rtype, fields, rest, origin, names)))
    _check_cname(out)
    return out


def _check_cname(records: list[Record]) -> None:
    """CNAME beside other data is an error dnspython resolves its own way: let it."""
    types: dict[dns.name.Name, set[int]] = {}
    for name, rtype, _, _ in records:
        types.setdefault(name, set()).add(rtype)
    for ts in types.values():
        if T.CNAME in ts and ts - _DNSSEC_TYPES - {T.CNAME}:
            raise _Unsupported
