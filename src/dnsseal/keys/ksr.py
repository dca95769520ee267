"""Offline-KSK bundles: Key Signing Requests and Signed Key Responses, as text.

The format is Knot DNS's (``keymgr generate-ksr`` / ``sign-ksr``), which BIND 9.20's
``dnssec-ksr`` also reads: bundles, each opened by a header line with the time from which it
applies, followed by records in zone-file syntax::

    ;; KeySigningRequest 1.0 1796638063 (2026-12-07T10:07:43Z) =========
    example.com. 3600 DNSKEY 256 3 13 r8wk...
    ;; KeySigningRequest 1.0 generated at 2026-12-07T10:07:43Z by Knot DNS 3.2.6

A request holds the ZSKs' DNSKEY records per period; a response holds, per bundle, the whole
DNSKEY RRset (ZSKs and KSKs) with its RRSIGs, and CDS/CDNSKEY RRsets when published.  The
trailing ``generated at`` line is a comment.  No I/O here: text in, bundles out, and back.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import dns.exception
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zonefile

from dnsseal.errors import FileFormatError

KSR = "KeySigningRequest"
SKR = "SignedKeyResponse"
VERSION = "1.0"
_HEADER = re.compile(r"^;;\s*(KeySigningRequest|SignedKeyResponse)\s+(\S+)\s+(.*)$")


@dataclass(frozen=True, slots=True)
class Bundle:
    """The records that apply from ``time`` (seconds since the epoch) to the next bundle's."""

    time: int
    rrsets: tuple[dns.rrset.RRset, ...]

    def rrset(self, rtype: int, covers: int = 0) -> dns.rrset.RRset | None:
        for rr in self.rrsets:
            if rr.rdtype == rtype and rr.covers == covers:
                return rr
        return None


def parse(text: str, kind: str, path: str = "<bundle>") -> list[Bundle]:
    """The bundles of a request (``kind`` :data:`KSR`) or response (:data:`SKR`) file, in file
    order.  Raises :class:`FileFormatError` naming the line for a bad header, a bundle of the
    other kind, records before the first header or records dnspython cannot read."""
    bundles: list[Bundle] = []
    current: tuple[int, int, list[str]] | None = None  # time, header line, record lines

    def close() -> None:
        if current is None:
            return
        time, line, body = current
        try:
            rrsets = dns.zonefile.read_rrsets("\n".join(body), rdclass=None, relativize=False)
        except (dns.exception.DNSException, ValueError) as e:
            # dnspython says "<input>:N: why", N counting from the bundle's first record line.
            m = re.match(r"<input>:(\d+): (.*)", str(e))
            where, why = (line + int(m.group(1)), m.group(2)) if m else (line, str(e))
            raise FileFormatError(path, where, f"bad record: {why}") from None
        bundles.append(Bundle(time, tuple(rrsets)))

    for lineno, raw in enumerate(text.splitlines(), 1):
        m = _HEADER.match(raw.strip())
        if m is None:
            if current is None:
                if raw.strip() and not raw.lstrip().startswith(";"):
                    raise FileFormatError(path, lineno, f"record before the first ;; {kind} line")
                continue
            current[2].append(raw)
            continue
        found, version, rest = m.groups()
        if found != kind:
            raise FileFormatError(path, lineno, f"expected a {kind}, found a {found}")
        if version != VERSION:
            raise FileFormatError(path, lineno, f"unsupported {kind} version {version}")
        close()
        word = rest.split(maxsplit=1)[0] if rest.split() else ""
        if not word.isdigit():  # the closing "generated at ... by ..." line
            current = None
            continue
        current = (int(word), lineno, [])
    close()
    if not bundles:
        raise FileFormatError(path, None, f"no ;; {kind} {VERSION} bundles found")
    for a, b in itertools.pairwise(bundles):
        if b.time < a.time:
            raise FileFormatError(path, None, f"bundle times go backwards ({b.time} < {a.time})")
    return bundles


def _iso(time: int) -> str:
    return datetime.fromtimestamp(time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_bundles(kind: str, bundles: list[Bundle], generated: int, by: str) -> str:
    """The file text for ``bundles`` (``generated``: the time written in the closing line)."""
    out: list[str] = []
    for b in bundles:
        out.append(f";; {kind} {VERSION} {b.time} ({_iso(b.time)}) =========")
        for rr in b.rrsets:
            out.append(rr.to_text())
    out.append(f";; {kind} {VERSION} generated at {_iso(generated)} by {by}")
    return "\n".join(out) + "\n"


def zone_of(bundles: list[Bundle], path: str = "<bundle>") -> dns.name.Name:
    """The one owner name of every record (the zone apex)."""
    names = {rr.name for b in bundles for rr in b.rrsets}
    if len(names) != 1:
        raise FileFormatError(path, None, f"records of {len(names)} owners; expected one zone")
    return names.pop()


def skr_filename(zone: dns.name.Name) -> str:
    """The name of a zone's imported response in its key directory (``example.com.skr``)."""
    return f"{zone.to_text().rstrip('.') or 'root'}.skr"


def merge(old: list[Bundle], new: list[Bundle]) -> list[Bundle]:
    """An imported response over the one held: the old bundles before the new response's
    first, then the new ones (as Knot's ``import-skr`` replaces from the first bundle on)."""
    if not new:
        return list(old)
    return [b for b in old if b.time < new[0].time] + list(new)


def dnskey_rrset(bundle: Bundle) -> dns.rrset.RRset | None:
    return bundle.rrset(dns.rdatatype.DNSKEY)
