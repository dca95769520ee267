"""Presentation format of RDATA straight from canonical wire bytes, for the types that make
up nearly all of a signed zone (A, AAAA, NS, CNAME, PTR, MX, TXT, DS, DNSKEY, RRSIG, NSEC,
NSEC3, NSEC3PARAM).  Other types go through dnspython.  Output matches dnspython's text
forms (tests compare the two), so a zone reads back identically either way.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from collections.abc import Callable

import dns.rdatatype

from dnsseal.zone import canonical
from dnsseal.zone.bitmap import bitmap_types

T = dns.rdatatype
_SPECIAL = frozenset(b'"().;\\@$')
_NAME_CACHE: dict[bytes, str] = {}
# Names repeated across records (RRSIG signer, NS/MX targets) are cached; a zone's owner
# and NSEC next names occur once each, so the cache stays small instead of holding them.
_NAME_CACHE_MAX = 4096


_PLAIN = bytes(c for c in range(0x21, 0x7F) if c not in _SPECIAL)


def label_text(label: bytes) -> str:
    """One label as presentation text, escaped as dnspython escapes it."""
    if not label.translate(None, _PLAIN):  # nothing to escape: the common case
        return label.decode("ascii")
    out = []
    for c in label:
        if c in _SPECIAL:
            out.append("\\" + chr(c))
        elif 0x20 < c < 0x7F:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


def name_text(wire: bytes, offset: int = 0) -> tuple[str, int]:
    """An uncompressed wire name as absolute text, and the offset after it."""
    end = offset
    while wire[end]:
        end += wire[end] + 1
    end += 1
    key = wire[offset:end]
    text = _NAME_CACHE.get(key)
    if text is None:
        labels = []
        i = 0
        while key[i]:
            labels.append(label_text(key[i + 1 : i + 1 + key[i]]))
            i += key[i] + 1
        text = ".".join(labels) + "." if labels else "."
        if len(_NAME_CACHE) < _NAME_CACHE_MAX:
            _NAME_CACHE[key] = text
    return text, end


def labels_text(labels: tuple[bytes, ...]) -> str:
    """An absolute name given as its labels (root label last) as text, as :func:`name_text`
    gives it."""
    if len(labels) <= 1:
        return "."
    return ".".join([label_text(label) for label in labels[:-1]]) + "."


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_TYPE_TEXT: dict[int, str] = {}


def _type_text(t: int) -> str:
    s = _TYPE_TEXT.get(t)
    if s is None:
        s = _TYPE_TEXT[t] = T.to_text(T.RdataType(t))
    return s


_BITMAP_CACHE: dict[bytes, str] = {}


def _bitmap_text(wire: bytes) -> str:
    text = _BITMAP_CACHE.get(wire)
    if text is None:
        text = " ".join(_type_text(t) for t in sorted(bitmap_types(wire)))
        if len(_BITMAP_CACHE) < 4096:  # zones have few distinct bitmaps
            _BITMAP_CACHE[wire] = text
    return text


_MINUTE_TEXT: dict[int, str] = {}  # minute number -> "YYYYMMDDHHMM"
_MINUTE_TEXT_MAX = 4096  # (then started again: about 0.5 MiB at most)
_SECOND_TEXT = tuple(f"{s:02d}" for s in range(60))


def time_text(t: int) -> str:
    """``t`` (epoch seconds) as RRSIG presentation, YYYYMMDDHHMMSS (UTC): what
    ``time.strftime("%Y%m%d%H%M%S", time.gmtime(t))`` gives, from the minute's text kept
    (a cache of each second's text held tens of thousands of entries, about 8 MiB, once
    many zones were signed: their signatures' times are spread over the seconds of days)."""
    minute, sec = divmod(t, 60)
    head = _MINUTE_TEXT.get(minute)
    if head is None:
        head = time.strftime("%Y%m%d%H%M", time.gmtime(minute * 60))
        if len(_MINUTE_TEXT) >= _MINUTE_TEXT_MAX:
            _MINUTE_TEXT.clear()
        _MINUTE_TEXT[minute] = head
    return head + _SECOND_TEXT[sec]


def _a(w: bytes) -> str:
    if len(w) != 4:
        raise ValueError("bad A")
    return f"{w[0]}.{w[1]}.{w[2]}.{w[3]}"


_HEXTETS = struct.Struct("!8H")
# Two or more zero groups in a row (an address's text is its groups in hex joined by ":").
_ZERO_RUN = re.compile(r"\b0(?::0)+\b")


def _aaaa(w: bytes) -> str:
    """What ``str(ipaddress.IPv6Address(w))`` gives (the text dnsseal has always written:
    groups in lower-case hex, the first longest run of two or more zero groups as "::"),
    without its per-group Python loops."""
    if len(w) != 16:
        raise ValueError("bad AAAA")
    text = "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}".format(*_HEXTETS.unpack(w))
    best: re.Match[str] | None = None
    for m in _ZERO_RUN.finditer(text):
        if best is None or m.end() - m.start() > best.end() - best.start():
            best = m
    if best is None:
        return text
    start, end = best.span()
    return text[: max(start - 1, 0)] + "::" + text[end + 1 :]


def _name(w: bytes) -> str:
    text, end = name_text(w)
    if end != len(w):
        raise ValueError("trailing data")
    return text


def _mx(w: bytes) -> str:
    return f"{struct.unpack_from('!H', w)[0]} {_name(w[2:])}"


def _txt(w: bytes) -> str:
    parts = []
    i = 0
    while i < len(w):
        n = w[i]
        chunk = w[i + 1 : i + 1 + n]
        if len(chunk) != n:
            raise ValueError("truncated TXT")
        s = []
        for c in chunk:
            if c in (0x22, 0x5C):
                s.append("\\" + chr(c))
            elif 0x20 <= c < 0x7F:
                s.append(chr(c))
            else:
                s.append(f"\\{c:03d}")
        parts.append('"' + "".join(s) + '"')
        i += 1 + n
    return " ".join(parts)


def _ds(w: bytes) -> str:
    tag, alg, dt = struct.unpack_from("!HBB", w)
    return f"{tag} {alg} {dt} {w[4:].hex().upper()}"


def _dnskey(w: bytes) -> str:
    flags, proto, alg = struct.unpack_from("!HBB", w)
    return f"{flags} {proto} {alg} {_b64(w[4:])}"


def _rrsig(w: bytes) -> str:
    covered, alg, labels, ttl, exp, inc, tag = struct.unpack_from("!HBBIIIH", w)
    signer, off = name_text(w, 18)
    return (
        f"{_type_text(covered)} {alg} {labels} {ttl} {time_text(exp)} {time_text(inc)} "
        f"{tag} {signer} {_b64(w[off:])}"
    )


def _nsec(w: bytes) -> str:
    nxt, off = name_text(w)
    types = _bitmap_text(w[off:])
    return f"{nxt} {types}" if types else nxt


def _nsec3(w: bytes) -> str:
    alg, flags, iters, slen = struct.unpack_from("!BBHB", w)
    salt = w[5 : 5 + slen].hex().upper() or "-"
    hlen = w[5 + slen]
    nxt = w[6 + slen : 6 + slen + hlen]
    if len(nxt) != hlen:
        raise ValueError("truncated NSEC3")
    owner = base64.b32hexencode(nxt).decode("ascii").upper()
    types = _bitmap_text(w[6 + slen + hlen :])
    head = f"{alg} {flags} {iters} {salt} {owner}"
    return f"{head} {types}" if types else head


def _nsec3param(w: bytes) -> str:
    alg, flags, iters, slen = struct.unpack_from("!BBHB", w)
    if len(w) != 5 + slen:
        raise ValueError("bad NSEC3PARAM")
    return f"{alg} {flags} {iters} {w[5:].hex().upper() or '-'}"


FORMATTERS: dict[int, Callable[[bytes], str]] = {
    T.A: _a,
    T.AAAA: _aaaa,
    T.NS: _name,
    T.CNAME: _name,
    T.PTR: _name,
    T.DNAME: _name,
    T.MX: _mx,
    T.TXT: _txt,
    T.DS: _ds,
    T.DNSKEY: _dnskey,
    T.CDNSKEY: _dnskey,
    T.CDS: _ds,
    T.RRSIG: _rrsig,
    T.NSEC: _nsec,
    T.NSEC3: _nsec3,
    T.NSEC3PARAM: _nsec3param,
}


def rdata_text(rtype: int, wire: bytes, rdclass: int = 1) -> str:
    """The presentation form of canonical RDATA ``wire`` of type ``rtype``."""
    fmt = FORMATTERS.get(rtype)
    if fmt is not None:
        try:
            return fmt(wire)
        except (ValueError, IndexError, struct.error):
            pass  # malformed for the fast path: let dnspython say what it makes of it
    text: str = canonical.rdata_from_wire(rtype, wire, rdclass).to_text()
    return text
