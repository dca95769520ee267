"""The complete master-file reader: dnspython's, with the checks BIND makes while it loads a
zone, each problem reported with its line and a reason a person can act on.

dnspython reads every form of RFC 1035 master file but accepts things a zone must not hold
and reports some errors in its own words.  :func:`read_records` adds, per record:

- out-of-zone owner names are an error (BIND and dnspython only drop them, with a warning
  in BIND's case: a typo in an owner would silently lose the record);
- an SOA record below the apex (BIND: "not at top of zone"), a second, different SOA at the
  apex (BIND: "multiple RRs of singleton type"), an NS RRset at a wildcard name (BIND:
  "invalid NS owner name (wildcard)", RFC 4592 section 4.2);
- TTLs above 2^31 - 1 (RFC 2181 section 8; BIND warns and uses 0, dnsseal refuses: such a
  TTL is always a typo);
- ``$GENERATE`` makes at most :data:`GENERATE_LIMIT` records per directive (BIND has no
  limit: ``named-checkzone`` 9.18 spends minutes on ``$GENERATE 1-100000000``; the limit is
  that of miekg/dns, the Go library behind CoreDNS).

The line reported is that of the record's first line (dnspython's own is often the line
after the record), and the reason is reworded where dnspython's is misleading ("unknown
rdatatype '4294967296'" for a TTL out of range, "Text input is malformed" for a bad
address).  Everything raised is a :class:`~dnsseal.errors.FileFormatError`.
"""

from __future__ import annotations

import re
from typing import Any

import dns.exception
import dns.grange
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.ttl
import dns.zone
import dns.zonefile

from dnsseal.errors import FileFormatError

T = dns.rdatatype
MAX_TTL = 0x7FFFFFFF  # RFC 2181 section 8
GENERATE_LIMIT = 65536  # records per $GENERATE (miekg/dns: (stop - start) / step <= 65535)

_WHERE_RE = re.compile(r"^(?:.*?):(\d+):\s*(.*)$", re.DOTALL)
_CAUGHT_RE = re.compile(r"^caught exception <class '[\w.]+'>: (.*)$", re.DOTALL)
_UNKNOWN_TYPE_RE = re.compile(r"^unknown rdatatype '(.*)'$", re.DOTALL)
_EXTRA_RE = re.compile(r'^expected EOL or EOF, got \d+ "(.*)"$', re.DOTALL)
_DEFAULT_SYNTAX = "Text input is malformed."  # dns.exception.SyntaxError without a message


class _LineError(Exception):
    """A problem found on a line: passes through dnspython's reader untouched."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def ttl_problem(ttl: int) -> str | None:
    """Why ``ttl`` cannot be used, or None."""
    if ttl > MAX_TTL:
        return f"TTL {ttl} out of range (0..{MAX_TTL}, RFC 2181 section 8)"
    return None


def _reason(detail: str, line_text: str) -> str:
    """dnspython's message for an error on ``line_text``, in words that say what is wrong."""
    m = _CAUGHT_RE.match(detail)
    if m:
        detail = m.group(1)
    m = _UNKNOWN_TYPE_RE.match(detail)
    if m and not m.group(1).strip():
        return "unexpected end of line"
    if m and m.group(1).isdigit():
        # A number where the TTL or type goes: dnspython tried it as a TTL first.
        return f"TTL {m.group(1)} out of range (0..{MAX_TTL}, RFC 2181 section 8)"
    m = _EXTRA_RE.match(detail)
    if m:
        return f"unexpected {m.group(1)!r} after the record data"
    if detail in (
        "expecting an identifier",
        "expecting a string",
        "Text input ended unexpectedly.",
    ):
        rtype = _type_of(line_text)
        what = f"the {rtype} record" if rtype else "the record"
        return f"{what} ends too early (missing fields)"
    if detail.startswith("TTL should be between"):
        return f"TTL out of range (0..{MAX_TTL}, RFC 2181 section 8)"
    if detail in ("", _DEFAULT_SYNTAX, "syntax error") or "IPv4" in detail or "IPv6" in detail:
        fields = line_text.split(";", 1)[0].split()
        for i, f in enumerate(fields[:-1]):
            if f.upper() == "A":
                return f"bad dotted quad {fields[i + 1]!r}"
            if f.upper() == "AAAA":
                return f"bad IPv6 address {fields[i + 1]!r}"
        rtype = _type_of(line_text)
        if rtype:
            return f"malformed {rtype} record"
        return "syntax error (no record type, or an unknown one)"
    return detail


def _type_of(line_text: str) -> str | None:
    """The record type a master-file line names (a guess for messages: the first field after
    the owner that is a type mnemonic), or None."""
    fields = line_text.split(";", 1)[0].split()
    if line_text[:1] not in (" ", "\t"):
        fields = fields[1:]  # the owner
    for f in fields:
        if f.isdigit():
            continue
        try:
            return T.to_text(T.from_text(f))
        except dns.exception.DNSException:
            continue
    return None


class _Tokenizer(dns.tokenizer.Tokenizer):
    """dnspython's tokenizer, with :meth:`where` on the line of the token just read: the
    newline that ended it is read (and counted) before it is put back."""

    def where(self) -> tuple[str, int]:
        filename, line = super().where()
        return filename, line - 1 if self.ungotten_char == "\n" else line


class _CheckedTxn:
    """The transaction the reader adds to, with each record checked first."""

    def __init__(self, txn: Any, reader: _CheckedReader) -> None:
        self._txn = txn
        self._reader = reader

    def add(self, name: dns.name.Name, ttl: int, rd: dns.rdata.Rdata) -> None:
        self._reader.check(name, ttl, rd)
        self._txn.add(name, ttl, rd)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._txn, attr)


class _CheckedReader(dns.zonefile.Reader):
    def __init__(self, tok: dns.tokenizer.Tokenizer, txn: Any, lines: list[str]) -> None:
        super().__init__(tok, dns.rdataclass.IN, txn, allow_include=False)
        self.txn = _CheckedTxn(txn, self)  # type: ignore[assignment]
        self.lines = lines
        self.line = 0
        self.soa: dns.rdata.Rdata | None = None

    def _text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""

    def check(self, name: dns.name.Name, ttl: int, rd: dns.rdata.Rdata) -> None:
        problem = ttl_problem(ttl)
        if problem is not None:
            raise _LineError(self.line, problem)
        if rd.rdtype == T.SOA:
            if name != self.zone_origin:
                raise _LineError(
                    self.line, f"SOA record at {name}, below the zone apex {self.zone_origin}"
                )
            if self.soa is not None and rd != self.soa:
                raise _LineError(self.line, "a second SOA record at the zone apex")
            self.soa = rd
        elif rd.rdtype == T.NS and name.is_wild():
            raise _LineError(
                self.line, f"NS record at the wildcard name {name} (RFC 4592 section 4.2)"
            )

    def _in_zone(self) -> None:
        assert self.zone_origin is not None
        name = self.last_name
        if name is not None and not name.is_subdomain(self.zone_origin):
            raise _LineError(
                self.line, f"out-of-zone record {name} (the zone is {self.zone_origin})"
            )

    def _rr_line(self) -> None:
        self.line = self.tok.where()[1]
        try:
            super()._rr_line()
        except dns.exception.DNSException as e:
            raise _LineError(self.line, _reason(str(e), self._text(self.line))) from None
        self._in_zone()

    def _generate_line(self) -> None:
        self.line = self.tok.where()[1]
        token = self.tok.get()
        self.tok.unget(token)
        try:
            start, stop, step = dns.grange.from_text(token.value)
        except (dns.exception.DNSException, ValueError, AssertionError):
            start, stop, step = 1, 0, 0
        if step < 1 or stop < start:  # as BIND: "invalid range"
            raise _LineError(self.line, f"bad $GENERATE range {token.value!r}") from None
        count = (stop - start) // step + 1
        if count > GENERATE_LIMIT:
            raise _LineError(
                self.line,
                f"$GENERATE range {token.value} makes {count} records (at most "
                f"{GENERATE_LIMIT} per $GENERATE)",
            )
        try:
            super()._generate_line()  # type: ignore[no-untyped-call]
        except dns.exception.DNSException as e:
            raise _LineError(self.line, _reason(str(e), "") or "bad $GENERATE line") from None
        self._in_zone()


def read_records(text: str, origin: dns.name.Name, path: str) -> dns.zone.Zone:
    """Read master-file ``text`` (``$INCLUDE`` already expanded) for the zone ``origin`` into
    a dnspython zone (absolute names).  Raises :class:`FileFormatError` naming ``path`` and
    the line; also when the apex has no SOA or no NS RRset."""
    zone = dns.zone.Zone(origin, dns.rdataclass.IN, relativize=False)
    lines = text.split("\n")
    try:
        with zone.writer(True) as txn:
            tok = _Tokenizer(text, path)
            _CheckedReader(tok, txn, lines).read()
    except _LineError as e:
        raise FileFormatError(path, e.line, e.reason) from None
    except dns.exception.DNSException as e:  # directives: dnspython says "file:line: detail"
        m = _WHERE_RE.match(str(e))
        if m is None:
            raise FileFormatError(path, None, str(e) or type(e).__name__) from None
        line = int(m.group(1))
        text_line = lines[line - 1] if 0 < line <= len(lines) else ""
        raise FileFormatError(path, line, _reason(m.group(2), text_line)) from None
    try:
        zone.check_origin()
    except dns.zone.NoSOA:
        raise FileFormatError(path, None, f"no SOA record at the zone apex {origin}") from None
    except dns.zone.NoNS:
        raise FileFormatError(path, None, f"no NS records at the zone apex {origin}") from None
    return zone
