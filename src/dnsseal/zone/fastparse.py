"""A fast path for reading master files in the common forms: class IN, the directives $TTL
and $ORIGIN, comments, and records written over several lines in parentheses (as BIND's
``dnssec-signzone`` and ``named-compilezone`` write them).  :func:`logical_lines` joins the
lines of each record; owner, TTL, class and type are split here with dnspython's defaulting
rules (last TTL, $TTL, SOA MINIMUM); the RDATA of the common types (A, AAAA, NS, CNAME, PTR,
DNAME, MX, TXT and the DNSSEC types) is converted here and every other type goes through
dnspython's per-record parser.

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
from collections.abc import Callable, Iterator

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
    joined = b"".join(labels)
    if joined == joined.lower():
        return OwnerName.trusted(labels)  # checked above
    return dns.name.Name(labels)


class _Names:
    """Owner and target names relative to the current origin, cached by text (one cache
    per origin, so a lookup hashes only the text), with their wire forms; and other
    per-file caches of the record parsers."""

    def __init__(self, zone_origin: dns.name.Name) -> None:
        self.origin = zone_origin
        self._caches: dict[tuple[bytes, ...], dict[str, dns.name.Name]] = {}
        self._wires: dict[tuple[bytes, ...], dict[str, bytes]] = {}
        self._zone = tuple(label.lower() for label in zone_origin.labels)
        self._in_zone: dict[tuple[bytes, ...], bool] = {}
        # RRSIG RDATA up to the signature, by origin and the texts of its eight fields.
        self.rrsig_heads: dict[tuple[object, ...], bytes] = {}
        self.bitmaps: dict[tuple[str, ...], bytes] = {}
        # The apex SOA's RDATA once read: a different one in any piece is a second SOA.
        self.soa: bytes | None = None

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

    def wire(self, text: str, origin: dns.name.Name) -> bytes:
        """The canonical (lower-case) wire form of the name ``text``."""
        cache = self._wires.get(origin.labels)
        if cache is None:
            cache = self._wires[origin.labels] = {}
        wire = cache.get(text)
        if wire is None:
            wire = cache[text] = canonical.name_wire(self.get(text, origin))
        return wire

    def in_zone(self, name: dns.name.Name) -> bool:
        """Whether ``name`` is at or below the zone's origin."""
        got = self._in_zone.get(name.labels)
        if got is None:
            n = len(self._zone)
            tail = name.labels[-n:] if len(name.labels) >= n else ()
            got = self._in_zone[name.labels] = tuple(x.lower() for x in tail) == self._zone
        return got


_CACHE_LIMIT = 65536
Cache = _Names


def _split1(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


_SIGTIME_CACHE: dict[str, int] = {}


def _sigtime(text: str) -> int:
    """RFC 4034 3.2: YYYYMMDDHHmmSS (UTC) or seconds (cached: a zone repeats a few)."""
    got = _SIGTIME_CACHE.get(text)
    if got is None:
        got = _sigtime_uncached(text)
        if len(_SIGTIME_CACHE) < 4096:
            _SIGTIME_CACHE[text] = got
    return got


def _sigtime_uncached(text: str) -> int:
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
    key = (origin.labels, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7])
    head = names.rrsig_heads.get(key)
    if head is None:
        head = struct.pack("!HBBIIIH", _type(f[0]), _u8(f[1]), _u8(f[2]), _ttl(f[3]),
                           _sigtime(f[4]), _sigtime(f[5]), _u16(f[6])) + names.wire(
                               f[7], origin)  # fmt: skip
        if len(names.rrsig_heads) < _CACHE_LIMIT:
            names.rrsig_heads[key] = head
    return head + _b64(f[8:])


def _bitmap(types: list[str], names: _Names) -> bytes:
    key = tuple(types)
    got = names.bitmaps.get(key)
    if got is None:
        got = type_bitmap(_type(t) for t in types)
        if len(names.bitmaps) < _CACHE_LIMIT:
            names.bitmaps[key] = got
    return got


def _nsec(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    nxt = names.get(f[0], origin).to_wire()  # RFC 6840 5.1: NSEC keeps the name's case
    assert nxt is not None
    return nxt + _bitmap(f[1:], names)


def _nsec3(f: list[str], origin: dns.name.Name, names: _Names) -> bytes:
    if len(f) < 5:
        raise _Unsupported
    salt = _salt(f[3])
    nxt = base64.b32hexdecode(f[4].upper())
    head = struct.pack("!BBHB", _u8(f[0]), _u8(f[1]), _u16(f[2]), len(salt)) + salt
    return head + bytes((len(nxt),)) + nxt + _bitmap(f[5:], names)


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


_TXT_RE = re.compile(r'"([^"]*)"|([^\s"]+)')


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


def _rdata(rtype: int, fields: list[str], rest: str | None, origin: dns.name.Name,
           names: _Names) -> bytes:  # fmt: skip
    """The canonical RDATA of one record from its fields; ``rest`` is the RDATA text when
    it holds quoted strings (only TXT reads those here; other types go to dnspython)."""
    try:
        if rest is None or rtype == T.TXT:
            return _fast_rdata(rtype, fields, rest, origin, names)
    except (_Unsupported, ValueError, binascii.Error, struct.error):
        pass
    text = " ".join(fields) if rest is None else rest
    rd = dns.rdata.from_text(IN, T.RdataType(rtype), text, origin=origin, relativize=False)
    return canonical.rdata_wire(rd)


# A dotted quad without leading zeros, each part 0..255.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\Z")


def _ipv4(text: str) -> bytes:
    m = _IPV4_RE.match(text)
    if m is not None:
        return bytes(map(int, m.groups()))
    return ipaddress.IPv4Address(text).packed  # odd forms: its checks and errors


_HEX_COLON = frozenset("0123456789abcdefABCDEF:")


def _ipv6(text: str) -> bytes:
    """An IPv6 address in hex groups (with at most one "::"); other forms (embedded IPv4,
    anything odd) go to :mod:`ipaddress`, which also gives the errors."""
    if not _HEX_COLON.issuperset(text):
        return ipaddress.IPv6Address(text).packed
    head, sep, tail = text.partition("::")
    groups = head.split(":") if head else []
    if sep:
        back = tail.split(":") if tail else []
        missing = 8 - len(groups) - len(back)
        if missing < 1 or "::" in tail:
            return ipaddress.IPv6Address(text).packed
        groups += ["0"] * missing + back
    if len(groups) != 8 or "" in groups or max(map(len, groups)) > 4:
        return ipaddress.IPv6Address(text).packed
    return bytes.fromhex("".join([g.zfill(4) for g in groups]))


def _fast_rdata(rtype: int, fields: list[str], rest: str | None, origin: dns.name.Name,
                names: _Names) -> bytes:  # fmt: skip
    parser = _FIELD_PARSERS.get(rtype)
    if parser is not None:
        return parser(fields, origin, names)
    if rtype == T.TXT:
        return _txt(" ".join(fields) if rest is None else rest)
    if rtype == T.A and len(fields) == 1:
        return _ipv4(fields[0])
    if rtype == T.AAAA and len(fields) == 1:
        return _ipv6(fields[0])
    if rtype in _NAME_RDATA and len(fields) == 1:
        return names.wire(fields[0], origin)
    if rtype == T.MX and len(fields) == 2 and fields[0].isdigit():
        pref = int(fields[0])
        if pref > 0xFFFF:
            raise _Unsupported
        return struct.pack("!H", pref) + names.wire(fields[1], origin)
    raise _Unsupported


def parse(text: str, origin: dns.name.Name, cache: Cache | None = None) -> list[Record] | None:
    """The records of a plain master file, or None when the full parser is needed.
    ``cache``: the caches of names and RDATA parts (:func:`new_cache` for this origin) to
    share between calls that read many small pieces of one zone's text."""
    try:
        return _parse(text, origin, cache)
    except (_Unsupported, dns.exception.DNSException, ValueError, IndexError, KeyError):
        return None


# A backslash escape, a quote, a comment or a parenthesis: what ends or joins a line.
_SPECIAL_RE = re.compile(r'\\.|["();]', re.DOTALL)
# One record or directive, up to and including its newline: plain text, quoted strings,
# escapes and parenthesized groups (which may hold newlines and comments), then an optional
# comment.  Possessive quantifiers: a line that does not fit fails without backtracking.
_QUOTED = r'"(?:[^"\\\n]|\\.)*+"'
_RECORD_RE = re.compile(
    rf"""((?: [^\n;()"\\]++ | {_QUOTED} | \\[^\n]
          | \( (?: [^()"\\;]++ | {_QUOTED} | \\[^\n] | ;[^\n]*+ )*+ \) )*+)
        (?: ;[^\n]*+ )? (?: \n | \Z )""",
    re.VERBOSE,
)
_GROUP_JUNK_RE = re.compile(r";[^\n]*|[()\n]")
_BLANK_GROUPS = str.maketrans("()\n", "   ")


def _careful_line(raw: str, depth: int) -> tuple[str, int]:
    """One physical line with quotes or escapes: (the line without its comment and with
    the parentheses outside quotes blanked, the parenthesis depth after it)."""
    out: list[str] = []
    pos = 0
    quoted = False
    for m in _SPECIAL_RE.finditer(raw):
        ch = m.group()
        if quoted:
            if ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == ";":
            out.append(raw[pos : m.start()])
            return "".join(out), depth
        elif ch in "()":
            depth += 1 if ch == "(" else -1
            if depth < 0:
                raise _Unsupported  # unbalanced: dnspython reports it
            out.append(raw[pos : m.start()])
            out.append(" ")
            pos = m.end()
    if quoted:
        raise _Unsupported  # newline in a quoted string: dnspython reports it
    out.append(raw[pos:])
    return "".join(out), depth


def _flatten(record: str) -> str:
    """A record that holds parenthesized groups, on one line: the parentheses, newlines and
    comments inside the groups blanked (quoted strings left as they are)."""
    if '"' not in record and "\\" not in record:
        if ";" in record:
            return _GROUP_JUNK_RE.sub(" ", record)
        return record.translate(_BLANK_GROUPS)
    depth = 0
    parts = []
    for piece in record.split("\n"):
        line, depth = _careful_line(piece, depth)
        parts.append(line)
    return " ".join(parts)


def logical_lines(text: str) -> Iterator[str]:
    """The records and directives of master-file ``text``, one string each: comments
    removed, and the lines of a record written in parentheses (RFC 1035 5.1) joined, with
    the parentheses outside quoted strings blanked.  Blank results are left out.  Raises
    :class:`_Unsupported` for unbalanced or nested parentheses, a quoted string that runs
    past the end of its line, a carriage return, or a record opening with a parenthesis
    (cases left to dnspython)."""
    if "\r" in text:
        raise _Unsupported
    if "(" not in text and ")" not in text:  # one record per line: no regex needed
        for raw in text.split("\n"):
            line = raw
            if '"' in raw or "\\" in raw:
                line = _careful_line(raw, 0)[0]
            elif ";" in raw:
                line = raw[: raw.index(";")]
            if line and not line.isspace():
                yield line
        return
    match = _RECORD_RE.match
    pos = 0
    end = len(text)
    while pos < end:
        m = match(text, pos)
        if m is None or m.end() == pos:
            raise _Unsupported
        pos = m.end()
        record = m.group(1)
        if "(" in record:
            if record[0] == "(":
                raise _Unsupported  # owner semantics of a leading "(": dnspython's
            record = _flatten(record)
        if record and not record.isspace():
            yield record


class _Ttls:
    """dnspython's TTL defaults: ``$TTL`` wins; else the last TTL given (RFC 1035 5.1);
    else the SOA MINIMUM of a SOA read before any ``$TTL`` (RFC 2308 4)."""

    __slots__ = ("default", "from_soa", "last")

    def __init__(self) -> None:
        self.last: int | None = None
        self.default: int | None = None
        self.from_soa = False

    def implicit(self) -> int | None:
        if self.last is not None and (self.default is None or self.from_soa):
            return self.last
        return self.default


_TTL_CACHE: dict[str, int] = {}
_MAX_TTL = 0x7FFFFFFF


def _ttl(text: str) -> int:
    got = _TTL_CACHE.get(text)
    if got is None:
        got = dns.ttl.from_text(text)
        if got > _MAX_TTL:
            raise _Unsupported  # RFC 2181 8: the full reader reports it
        if len(_TTL_CACHE) < 4096:
            _TTL_CACHE[text] = got
    return got


_OTHER_CLASSES = frozenset({"CH", "CHAOS", "HS", "HESIOD", "NONE", "ANY"})


def _head(fields: list[str], i: int, ttls: _Ttls) -> tuple[int, int | None, int]:
    """Read ``[TTL] [IN] [TTL] TYPE`` from ``fields[i:]`` in dnspython's order: (type, TTL or
    None when only the SOA can tell, index of the first RDATA field)."""
    tok = fields[i]
    ttl: int | None = None
    if tok[0].isdigit():
        ttl = ttls.last = _ttl(tok)
        i += 1
        tok = fields[i]
    upper = tok.upper()
    if upper == "IN":
        i += 1
        tok = fields[i]
    elif upper in _OTHER_CLASSES or upper.startswith("CLASS"):
        raise _Unsupported
    if ttl is None:
        if tok[0].isdigit():
            ttl = ttls.last = _ttl(tok)
            i += 1
            tok = fields[i]
        else:
            ttl = ttls.implicit()
    return _type(tok), ttl, i + 1


def new_cache(origin: dns.name.Name) -> Cache:
    """Caches for :func:`parse` of pieces of the zone ``origin``."""
    return _Names(origin)


def _parse(text: str, zone_origin: dns.name.Name, cache: Cache | None = None) -> list[Record]:
    if "\\ " in text or "\\\t" in text:
        raise _Unsupported  # escaped blanks in names
    names = cache if cache is not None and cache.origin == zone_origin else _Names(zone_origin)
    origin = zone_origin
    ttls = _Ttls()
    owner: dns.name.Name | None = None
    owner_text = ""  # the last owner field and origin: records of one owner come together
    owner_origin = origin
    in_zone = False
    out: list[Record] = []
    append = out.append
    soa = int(T.SOA)
    ns = int(T.NS)
    for line in logical_lines(text):
        first = line[0]
        if first == "$":
            parts = line.split()
            directive = parts[0].upper()
            if directive == "$TTL" and len(parts) == 2:
                ttls.default = _ttl(parts[1])
                ttls.from_soa = False
            elif directive == "$ORIGIN" and len(parts) == 2:
                origin = dns.name.from_text(parts[1], origin)
            else:
                raise _Unsupported
            continue
        fields = line.split()
        if first in " \t":
            if owner is None:
                raise _Unsupported
            i = 0
        else:
            if fields[0] != owner_text or origin is not owner_origin:
                owner_text, owner_origin = fields[0], origin
                owner = names.get(owner_text, origin)
                in_zone = names.in_zone(owner)
            i = 1
        if not in_zone:
            raise _Unsupported  # out-of-zone data: the full reader reports it with its line
        rtype, ttl, i = _head(fields, i, ttls)
        rest: str | None = None
        if '"' in line:  # quoted strings keep their blanks: RDATA from the line's text
            if any('"' in f for f in fields[:i]):
                raise _Unsupported
            parts = line.split(None, i)
            rest = parts[i] if len(parts) > i else ""
        rd = _rdata(rtype, fields[i:], rest, origin, names)
        if rtype == soa:
            # Below the apex, or a second one: the full reader reports it with its line.
            if owner != zone_origin or (names.soa is not None and names.soa != rd):
                raise _Unsupported
            names.soa = rd
            if ttls.default is None:
                ttls.default = struct.unpack_from("!I", rd, len(rd) - 4)[0]
                ttls.from_soa = True
                if ttl is None:
                    ttl = ttls.implicit()
        elif rtype == ns and owner is not None and owner.labels[0] == b"*":
            raise _Unsupported  # NS at a wildcard: the full reader reports it
        if ttl is None or owner is None:
            raise _Unsupported  # no TTL known: dnspython reports it
        append((owner, rtype, ttl, rd))
    _check_cname(out)
    return out


def _check_cname(records: list[Record]) -> None:
    """CNAME beside other data is an error dnspython resolves its own way: let it."""
    cname = int(T.CNAME)
    owners = {name for name, rtype, _, _ in records if rtype == cname}
    if not owners:
        return
    types: dict[dns.name.Name, set[int]] = {}
    for name, rtype, _, _ in records:
        if name in owners:
            types.setdefault(name, set()).add(rtype)
    for ts in types.values():
        if ts - _DNSSEC_TYPES - {T.CNAME}:
            raise _Unsupported
