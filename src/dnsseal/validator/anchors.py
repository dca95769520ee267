"""Trust anchors: the built-in root anchors, BIND ``trust-anchors`` clauses (static-key,
initial-key, static-ds, initial-ds; also the older ``trusted-keys`` and ``managed-keys``
forms) and negative trust anchors with an expiry (RFC 7646).

Parsing takes text (the caller reads the file) and reports errors with the source name
and line.  ``initial-*`` anchors are marked for RFC 5011 maintenance (see :mod:`.rfc5011`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS

from dnsseal.errors import FileFormatError
from dnsseal.validator.names import is_subdomain
from dnsseal.validator.rrsig import key_tag

# IANA root-anchors (https://data.iana.org/root-anchors/root-anchors.xml), as in BIND's
# bind.keys: KSK-2017 and KSK-2024, SHA-256 digests.
ROOT_DS_TEXT = (
    "20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
    "38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
)

KINDS = ("static-key", "initial-key", "static-ds", "initial-ds")


def _ds(text: str) -> DS:
    out = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, text)
    assert isinstance(out, DS)
    return out


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """The anchors configured for one zone: DS records and/or DNSKEYs.  ``managed`` is True
    for ``initial-*`` anchors, which RFC 5011 keeps up to date."""

    zone: dns.name.Name
    ds: tuple[DS, ...] = ()
    keys: tuple[DNSKEY, ...] = ()
    managed: bool = False

    def describe(self) -> str:
        parts = [f"DS {d.key_tag}/{d.algorithm}/{d.digest_type}" for d in self.ds]
        parts += [f"DNSKEY {key_tag(k)}" for k in self.keys]  # dns.dnssec.key_id, cached
        return f"{self.zone}: " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class NegativeAnchor:
    """RFC 7646: validation is off for ``zone`` and below until ``expires`` (epoch)."""

    zone: dns.name.Name
    expires: int


@dataclass(frozen=True, slots=True)
class AnchorSet:
    """All trust anchors, one entry per zone, and the negative trust anchors."""

    anchors: tuple[TrustAnchor, ...] = ()
    negative: tuple[NegativeAnchor, ...] = field(default=())

    def closest(self, name: dns.name.Name) -> TrustAnchor | None:
        """The deepest anchor at or above ``name``."""
        best: TrustAnchor | None = None
        for a in self.anchors:
            # names.is_subdomain: dnspython's answer without its per-label lower() loop
            if is_subdomain(name, a.zone) and (best is None or len(a.zone) > len(best.zone)):
                best = a
        return best

    def negative_for(self, name: dns.name.Name, now: int) -> NegativeAnchor | None:
        for n in self.negative:
            if now < n.expires and is_subdomain(name, n.zone):
                return n
        return None

    def with_negative(self, zone: dns.name.Name, expires: int) -> AnchorSet:
        kept = tuple(n for n in self.negative if n.zone != zone)
        return replace(self, negative=(*kept, NegativeAnchor(zone, expires)))

    def merged(self, other: AnchorSet) -> AnchorSet:
        """Anchors of both sets; for a zone in both, ``other`` wins."""
        zones = {a.zone for a in other.anchors}
        kept = tuple(a for a in self.anchors if a.zone not in zones)
        return AnchorSet((*kept, *other.anchors), (*self.negative, *other.negative))


def root_anchors() -> AnchorSet:
    """The IANA root trust anchors (KSK-2017 and KSK-2024), managed per RFC 5011."""
    return AnchorSet(
        (TrustAnchor(dns.name.root, tuple(_ds(t) for t in ROOT_DS_TEXT), managed=True),)
    )


# --- parsing BIND's named.conf syntax for trust anchors -------------------------------

_TOKEN = re.compile(
    r"(?P<ws>[ \t\r]+)|(?P<nl>\n)|(?P<comment>#[^\n]*|//[^\n]*|/\*.*?\*/)"
    r'|(?P<str>"[^"]*")|(?P<punct>[{};])|(?P<word>[^\s{};"#]+)',
    re.S,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    text: str
    line: int
    quoted: bool = False


def _tokens(text: str, source: str) -> Iterator[_Tok]:
    line = 1
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FileFormatError(source, line, f"unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group()
        if kind == "str":
            yield _Tok(value[1:-1], line, True)
        elif kind in ("punct", "word"):
            yield _Tok(value, line)
        line += value.count("\n")


_CLAUSES = {"trust-anchors", "managed-keys", "trusted-keys"}


def parse_trust_anchors(text: str, source: str = "<anchors>") -> AnchorSet:
    """Anchors from named.conf-style text: one or more ``trust-anchors { ... };`` clauses
    (or the older ``managed-keys`` / ``trusted-keys``).  Raises :class:`FileFormatError`
    naming ``source`` and the line of the first problem."""
    toks = list(_tokens(text, source))
    i = 0
    by_zone: dict[dns.name.Name, TrustAnchor] = {}

    def need(n: int) -> list[_Tok]:
        if i + n > len(toks):
            last = toks[-1].line if toks else 1
            raise FileFormatError(source, last, "unexpected end of file")
        return toks[i : i + n]

    while i < len(toks):
        (clause,) = need(1)
        if clause.text not in _CLAUSES:
            raise FileFormatError(
                source, clause.line, f"expected trust-anchors {{ ... }}; not {clause.text!r}"
            )
        (brace,) = need(2)[1:]
        if brace.text != "{":
            raise FileFormatError(source, brace.line, "expected '{'")
        i += 2
        while True:
            (tok,) = need(1)
            if tok.text == "}":
                i += 1
                (semi,) = need(1)
                if semi.text != ";":
                    raise FileFormatError(source, semi.line, "expected ';' after '}'")
                i += 1
                break
            if clause.text == "trusted-keys":
                kind = "static-key"
                entry = need(6)
                i += 6
            else:
                entry = need(7)
                kind = entry[1].text
                entry = [entry[0], *entry[2:]]
                i += 7
            anchor = _entry(entry, kind, source)
            prev = by_zone.get(anchor.zone)
            if prev is not None:
                anchor = TrustAnchor(
                    anchor.zone,
                    prev.ds + anchor.ds,
                    prev.keys + anchor.keys,
                    prev.managed or anchor.managed,
                )
            by_zone[anchor.zone] = anchor
    if not by_zone:
        raise FileFormatError(source, None, "no trust anchors found")
    return AnchorSet(tuple(by_zone.values()))


def _entry(entry: list[_Tok], kind: str, source: str) -> TrustAnchor:
    name_tok, a, b, c, data, semi = entry
    line = name_tok.line
    if kind not in KINDS:
        raise FileFormatError(
            source, line, f"unknown anchor type {kind!r} (use {', '.join(KINDS)})"
        )
    if semi.text != ";":
        raise FileFormatError(source, semi.line, "expected ';' after the anchor")
    try:
        zone = dns.name.from_text(name_tok.text)
        nums = [int(t.text) for t in (a, b, c)]
    except (dns.exception.DNSException, ValueError) as e:
        raise FileFormatError(source, line, f"bad anchor for {name_tok.text}: {e}") from None
    compact = "".join(data.text.split())
    managed = kind.startswith("initial")
    try:
        if kind.endswith("-key"):
            key = DNSKEY(  # type: ignore[no-untyped-call]
                dns.rdataclass.IN,
                dns.rdatatype.DNSKEY,
                nums[0],
                nums[1],
                nums[2],
                base64.b64decode(compact, validate=True),
            )
            return TrustAnchor(zone, keys=(key,), managed=managed)
        ds = DS(  # type: ignore[no-untyped-call]
            dns.rdataclass.IN,
            dns.rdatatype.DS,
            nums[0],
            nums[1],
            nums[2],
            binascii.unhexlify(compact),
        )
    except (ValueError, binascii.Error, dns.exception.DNSException) as e:
        raise FileFormatError(source, line, f"bad {kind} data for {zone}: {e}") from None
    return TrustAnchor(zone, ds=(ds,), managed=managed)


def format_trust_anchors(anchors: AnchorSet) -> str:
    """A ``trust-anchors { ... };`` clause that :func:`parse_trust_anchors` reads back
    (negative anchors are runtime state and are not written)."""
    lines = ["trust-anchors {"]
    for a in anchors.anchors:
        zone = a.zone.to_text()
        ds_kind, key_kind = (
            ("initial-ds", "initial-key") if a.managed else ("static-ds", "static-key")
        )
        for d in a.ds:
            digest = d.digest.hex().upper()
            lines.append(
                f'\t{zone} {ds_kind} {d.key_tag} {d.algorithm} {d.digest_type} "{digest}";'
            )
        for k in a.keys:
            data = base64.b64encode(k.key).decode()
            lines.append(f'\t{zone} {key_kind} {k.flags} {k.protocol} {k.algorithm} "{data}";')
    lines.append("};")
    return "\n".join(lines) + "\n"


def anchors_from_records(zone: dns.name.Name, records: Iterable[DS | DNSKEY]) -> TrustAnchor:
    """An anchor from DS/DNSKEY rdatas (for tests and for RFC 5011 state)."""
    ds = tuple(r for r in records if isinstance(r, DS))
    keys = tuple(r for r in records if isinstance(r, DNSKEY))
    return TrustAnchor(zone, ds, keys)
