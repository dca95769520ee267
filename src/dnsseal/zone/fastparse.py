"""A fast path for reading plain master files: one record per line, no parentheses, class
IN, the directives $TTL and $ORIGIN.  Owner, TTL, class and type are split here; the
RDATA of the common types (A, AAAA, NS, CNAME, PTR, DNAME, MX) is converted here and every
other type goes through dnspython's per-record parser.

:func:`parse` returns None whenever a file uses anything else (or has any error), and the
caller then reads the whole file with dnspython's reader, which also produces the error
messages.  Both paths give the same records; tests compare them.
"""

from __future__ import annotations

import ipaddress
import struct

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from dnsseal.zone import canonical

T = dns.rdatatype
IN = dns.rdataclass.IN
Record = tuple[dns.name.Name, int, int, bytes]
_NAME_RDATA = frozenset({T.NS, T.CNAME, T.PTR, T.DNAME})
_DNSSEC_TYPES = frozenset({T.RRSIG, T.NSEC, T.NSEC3, T.DS, T.DNSKEY})


class _Unsupported(Exception):
    """The line needs the full parser."""


class _Names:
    """Owner and target names relative to the current origin, cached by text."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, dns.name.Name], dns.name.Name] = {}

    def get(self, text: str, origin: dns.name.Name) -> dns.name.Name:
        key = (text, origin)
        name = self._cache.get(key)
        if name is None:
            name = origin if text == "@" else dns.name.from_text(text, origin)
            self._cache[key] = name
        return name


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


def _rdata(rtype: int, fields: list[str], rest: str, origin: dns.name.Name,
           names: _Names) -> bytes:  # fmt: skip
    if rtype == T.A and len(fields) == 1:
        return ipaddress.IPv4Address(fields[0]).packed
    if rtype == T.AAAA and len(fields) == 1:
        return ipaddress.IPv6Address(fields[0]).packed
    if rtype in _NAME_RDATA and len(fields) == 1:
        return canonical.name_wire(names.get(fields[0], origin))
    if rtype == T.MX and len(fields) == 2 and fields[0].isdigit():
        pref = int(fields[0])
        if pref > 0xFFFF:
            raise _Unsupported
        return struct.pack("!H", pref) + canonical.name_wire(names.get(fields[1], origin))
    rd = dns.rdata.from_text(IN, T.RdataType(rtype), rest, origin=origin, relativize=False)
    return canonical.rdata_wire(rd)


def parse(text: str, origin: dns.name.Name) -> list[Record] | None:
    """The records of a plain master file, or None when the full parser is needed."""
    try:
        return _parse(text, origin)
    except (_Unsupported, dns.exception.DNSException, ValueError, IndexError, KeyError):
        return None


def _parse(text: str, zone_origin: dns.name.Name) -> list[Record]:
    if "(" in text or ")" in text or "\\ " in text or "\\\t" in text:
        raise _Unsupported  # multi-line records, escaped blanks in names
    names = _Names()
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
                rtype = T.from_text(tok)
        if ttl is None:
            ttl = default_ttl
            if ttl is None:
                raise _Unsupported  # RFC 2308 / last-TTL defaults: leave them to dnspython
        if not owner.is_subdomain(zone_origin):
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
