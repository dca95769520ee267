"""Every malformed zone file gets one :class:`FileFormatError` naming the file and the line
of the broken record, with a reason in words (issue #13): never another exception (a
traceback for the operator), never a message over several lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.errors import FileFormatError, StorageError
from dnsseal.storage.zonefile import read_zone
from dnsseal.zone.text import parse_zone_text

GOOD = """\
$TTL 300
@       SOA   ns1 hostmaster 1 3600 900 604800 300
        NS    ns1
ns1     A     192.0.2.1
www     A     192.0.2.80
"""

# A bad line appended as line 6, and what the message must say.
BAD_LINES = [
    ("x", r"syntax error"),
    ("x 300 IN", r"syntax error"),
    ("x A", r"the A record ends too early \(missing fields\)"),
    ("\tMX 10", r"the MX record ends too early"),
    ("x CAA 0 issue", r"the CAA record ends too early"),
    ("x A 192.0.2.1 extra", r"unexpected 'extra' after the record data"),
    ("x MX 70000 a", r"70000 is not an unsigned 16-bit integer"),
    ('x TXT "unterminated', r"newline in quoted string"),
    ("x AAAA ::g", r"bad IPv6 address '::g'"),
    ("x A 300.0.0.1", r"bad dotted quad '300\.0\.0\.1'"),
    ("x 4294967296 A 192.0.2.1", r"TTL 4294967296 out of range"),
    ("x 2147483648 A 192.0.2.1", r"TTL 2147483648 out of range"),
    ("x 300 CH A 192.0.2.1", r"RR class is not zone's class"),
    ("$TTL x", r"TTL value is not well-formed"),
    ("$TTL 4294967296", r"TTL out of range"),
    ("$ORIGIN a..b", r"label is empty"),
    ("$FOO", r"'\$FOO' is not allowed"),
    ("$GENERATE 10-1 h$ A 192.0.2.1", r"bad \$GENERATE range '10-1'"),
    ("$GENERATE 1-3/0 h$ A 192.0.2.1", r"bad \$GENERATE range '1-3/0'"),
    ("$GENERATE x h$ A 192.0.2.1", r"bad \$GENERATE range 'x'"),
    ("$GENERATE 1-2 h$ A", r"unexpected end of line"),
    ("$GENERATE 0-65536 h$ A 192.0.2.1", r"makes 65537 records \(at most 65536"),
    ("$GENERATE 1-2 h$.example.org. A 192.0.2.1", r"out-of-zone record h1\.example\.org\."),
    ("x DS 1 2 3 zz", r"Non-hexadecimal digit"),
    ("x RRSIG A 13 2 300 bad bad 1 x. AAAA", r"Time in DNS SIG or RRSIG"),
    ("x" * 70 + " A 192.0.2.1", r"label is > 63 octets"),
    ("www CNAME ns1", r"not compatible with a regular data node"),
    ("other.net. A 192.0.2.1", r"out-of-zone record other\.net\."),
    ("sub SOA ns1 hostmaster 1 3600 900 604800 300", r"below the zone apex"),
    ("*.w NS ns1", r"NS record at the wildcard name \*\.w\.example\.com\."),
    ("@ SOA ns1 hostmaster 2 3600 900 604800 300", r"a second SOA record at the zone apex"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[b[0][:30] for b in BAD_LINES])
def test_bad_line_message(line: str, reason: str) -> None:
    with pytest.raises(FileFormatError) as e:
        parse_zone_text(GOOD + line + "\n", "example.com.", path="z.zone")
    assert (e.value.path, e.value.line) == ("z.zone", 6), str(e.value)
    assert re.search(reason, e.value.message), str(e.value)
    assert "\n" not in str(e.value)


def test_the_same_soa_twice_is_a_duplicate_not_an_error() -> None:
    # BIND and dnspython merge identical records; only a different second SOA is refused.
    zone = parse_zone_text(GOOD + "@ SOA ns1 hostmaster 1 3600 900 604800 300\n", "example.com.")
    soa = zone.get(zone.origin, 6)
    assert soa is not None and len(soa.rdatas) == 1


def test_a_multi_line_record_is_reported_at_its_first_line() -> None:
    text = GOOD + "x SOA ns1 hostmaster (\n 1 3600\n 900 604800 300 )\n"
    with pytest.raises(FileFormatError) as e:
        parse_zone_text(text, "example.com.", path="z")
    assert e.value.line == 6


PIECES = [line for line, _ in BAD_LINES] + [
    "(",
    ")",
    '"',
    ";",
    "\\",
    "$INCLUDE x",
    "@ DNAME x",
    "\tA 192.0.2.9",
    "x IN IN A 192.0.2.9",
    "x 1 2 A 192.0.2.9",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(PIECES), st.booleans()), max_size=4))
def test_mangled_zones_raise_only_file_format_errors(edits: list[tuple[int, str, bool]]) -> None:
    lines = GOOD.splitlines()
    for where, piece, insert in edits:
        pos = min(where, len(lines))
        if insert or pos == len(lines):
            lines.insert(pos, piece)
        else:
            lines[pos] = lines[pos] + " " + piece
    try:
        parse_zone_text("\n".join(lines) + "\n", "example.com.", path="z")
    except FileFormatError as e:
        assert str(e).startswith("z:") or str(e).startswith("z: "), str(e)
        assert "\n" not in str(e), repr(str(e))


def test_nested_includes_name_the_innermost_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.zone").write_text(GOOD + "$INCLUDE sub/a.inc hosts\nmail A 192.0.2.25\n")
    (tmp_path / "sub" / "a.inc").write_text("a A 192.0.2.10\n$INCLUDE b.inc\nc A 192.0.2.12\n")
    (tmp_path / "sub" / "b.inc").write_text("; b\n\nb A 192.0.2.11\nbad A 192.0.2.256\n")
    with pytest.raises(FileFormatError) as e:
        read_zone(tmp_path / "main.zone", "example.com.")
    assert (e.value.path, e.value.line) == (str(tmp_path / "sub" / "b.inc"), 4)
    assert e.value.message == "bad dotted quad '192.0.2.256'"
    # fixed, the names are relative to the $INCLUDE's origin and the file reads back
    (tmp_path / "sub" / "b.inc").write_text("b A 192.0.2.11\n")
    zone = read_zone(tmp_path / "main.zone", "example.com.")
    names = {n.to_text() for n in zone.rrsets}
    assert {"a.hosts.example.com.", "b.hosts.example.com.", "mail.example.com."} <= names


def test_a_defect_after_an_include_is_reported_in_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "main.zone").write_text(GOOD + "$INCLUDE a.inc\nwww.example.org. A 192.0.2.1\n")
    (tmp_path / "a.inc").write_text("a A 192.0.2.10\nb A 192.0.2.11\n")
    with pytest.raises(FileFormatError) as e:
        read_zone(tmp_path / "main.zone", "example.com.")
    assert (e.value.path, e.value.line) == (str(tmp_path / "main.zone"), 7)


def test_a_missing_include_names_the_including_line(tmp_path: Path) -> None:
    (tmp_path / "main.zone").write_text(GOOD + "$INCLUDE nowhere.inc\n")
    with pytest.raises(StorageError) as e:
        read_zone(tmp_path / "main.zone", "example.com.")
    assert e.value.path == str(tmp_path / "nowhere.inc")
    assert f"$INCLUDE at {tmp_path / 'main.zone'}:6" in e.value.message


def test_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    (tmp_path / "z").write_text("\ufeff" + GOOD)  # BIND: "unexpected end of input"
    with pytest.raises(FileFormatError, match=r"z:1: the file starts with a byte order mark"):
        read_zone(tmp_path / "z", "example.com.")


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "z").write_bytes(GOOD.encode() + b'x TXT "caf\xe9"\n')  # Latin-1
    with pytest.raises(FileFormatError, match=r"z:6: not UTF-8 text \(octet 0xe9"):
        read_zone(tmp_path / "z", "example.com.")
