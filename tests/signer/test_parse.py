"""The fast master-file path gives exactly what dnspython's full reader gives, and defers
to it for everything it does not handle."""

from __future__ import annotations

import random
import re
from pathlib import Path

import dns.exception
import dns.ipv6
import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_tool
from dnsseal.errors import FileFormatError
from dnsseal.zone import fastparse
from dnsseal.zone.text import format_zone, parse_zone_text, parse_zone_text_full

from .conftest import FEATURE_ZONE, ORIGIN, ksk_zsk
from .test_property import NAMES, ROLES, zone_text

EXTRA = r"""$ORIGIN sub.example.com.
rel 600 IN A 192.0.2.50 ; comment
	IN 700 TXT "semi;colon" "x\"y" ; trailing
@ 1h MX 0 .
$TTL 2d
caa CAA 0 issue "ca.example.net"
uri NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp
TYPE1234 TYPE1234 \# 2 abcd
mixed.CASE cname Target
"""


def same(text: str) -> None:
    assert fastparse.parse(text, ORIGIN) is not None, "fast path not taken"
    fast = parse_zone_text(text, ORIGIN)
    full = parse_zone_text_full(text, ORIGIN)
    assert fast == full


def test_feature_zone_and_directives() -> None:
    same(FEATURE_ZONE)
    same(FEATURE_ZONE + EXTRA)


B64A = "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJx"
B64B = "pVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
DNSSEC_LINES = r"""$TTL 300
@ SOA ns h 1 2 3 4 5
@ NS ns
@ DNSKEY 257 3 13 B64A B64B
@ DNSKEY 256 3 ECDSAP256SHA256 B64AB64B
@ CDS 60485 5 1 2BB183AF5F22588179A53B0A 98631FAD1A292118
@ DS 60485 RSASHA1 1 2BB183AF5F22588179A53B0A98631FAD1A292118
@ NSEC3PARAM 1 0 0 -
@ NSEC3PARAM 1 0 10 AABBCCDD
x RRSIG A 13 2 300 1767225600 20251201000000 12345 Example.COM. AAAA BBBB
x RRSIG TYPE65534 13 2 1h 20260101000000 20251201000000 12345 example.com. AAAA
x NSEC Next.Example.COM. A NS SOA RRSIG NSEC DNSKEY TYPE1234
y NSEC y.example.com.
0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 1 12 AABBCCDD 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR NS SOA MX
35mthgpgcu1qg68fab165klnsnk3dpvl NSEC3 1 0 0 - B4UM86EGHHDS6NEA196SMVMLO4ORS995
t TXT "hello world" unquoted "café" "" "a;b"
t TXT "esc\"aped" "\065"
""".replace("B64A", B64A).replace("B64B", B64B)


def test_dnssec_types_and_txt_match_the_full_reader() -> None:
    same(DNSSEC_LINES)


def test_signed_output_reads_back_on_the_fast_path() -> None:
    from dnsseal.signer import Nsec3Params, SignParams, sign_zone

    for nsec3 in (None, Nsec3Params(salt=b"\x01", opt_out=True)):
        signed = sign_zone(parse_zone_text(FEATURE_ZONE, ORIGIN), ksk_zsk(), SignParams(
            nsec3=nsec3), 1_767_225_600).zone  # fmt: skip
        same(format_zone(signed))
        assert parse_zone_text(format_zone(signed), ORIGIN) == signed


@pytest.mark.parametrize(
    "text",
    [
        "$TTL 1\n@ SOA ns h ( 1 2 3 4 5 \n@ NS ns\n",  # unbalanced parentheses
        "$TTL 1\n@ SOA ns h 1 2 3 4 5 )\n@ NS ns\n",
        "$TTL 1\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n( x A 1.2.3.4 )\n",  # leading "("
        '$TTL 1\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nx TXT "a\nb"\n',  # newline in quotes
        "x A 1.2.3.4\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n",  # no TTL yet: dnspython's error
        "@ 1 SOA ns h 1 2 3 4 5\n@ 1 NS ns\n$INCLUDE other\n",
        "@ 1 SOA ns h 1 2 3 4 5\n@ 1 NS ns\nx 1 CH A 1.2.3.4\n",
        "@ 1 SOA ns h 1 2 3 4 5\n@ 1 NS ns\nx 1 A 1.2.3\n",  # error: dnspython reports it
        "@ 1 SOA ns h 1 2 3 4 5\n@ 1 NS ns\nx 1 CNAME y\nx 1 A 1.2.3.4\n",
        "$TTL 1\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nesc\\ aped A 1.2.3.4\n",
    ],
)
def test_falls_back_to_the_full_reader(text: str) -> None:
    assert fastparse.parse(text, ORIGIN) is None


def test_errors_name_file_and_line() -> None:
    with pytest.raises(FileFormatError) as e:
        parse_zone_text("$TTL 5\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nx A 1.2.3\n", ORIGIN, path="f")
    assert e.value.path == "f" and e.value.line in (4, 5)
    with pytest.raises(FileFormatError, match="no NS"):
        parse_zone_text("$TTL 5\n@ SOA ns h 1 2 3 4 5\n", ORIGIN, path="f")


def test_out_of_zone_data_is_an_error_with_its_line() -> None:
    # dnspython and BIND drop it (BIND with a warning); dnsseal refuses it (issue #13): a
    # typo in an owner name would silently lose the record.
    text = "$TTL 5\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nfoo.other. A 192.0.2.1\n"
    assert fastparse.parse(text, ORIGIN) is None
    with pytest.raises(FileFormatError, match="out-of-zone") as e:
        parse_zone_text(text, ORIGIN, path="f")
    assert (e.value.path, e.value.line) == ("f", 4)


@settings(max_examples=100)
@given(st.lists(st.tuples(NAMES, ROLES), min_size=1, max_size=12))
def test_random_zones_parse_the_same(entries: list[tuple[str, str]]) -> None:
    same(zone_text(entries))
    assert dns.name.from_text("example.com.") == ORIGIN


MULTI_LINE = r"""; a comment line
@ IN SOA ns1 hostmaster ( 2024 ; serial
        3600 ; refresh
   900 604800 60
        ) ; trailing
   NS ns1 ; owner, TTL and class inherited
ns1 600 A 192.0.2.1
  ( AAAA 2001:db8::1 )
  (
  TXT "in (parens) ; not a comment" x"y" )
mail IN 700 MX ( 10
  mail )
mail	A	192.0.2.2	; last TTL (700) applies: no $TTL
$TTL 2h
mail TXT ( "two" "strings" )
"""


def test_multi_line_records_comments_and_ttl_defaults() -> None:
    same(MULTI_LINE)
    same("@ SOA ns h 1 2 3 4 5\n@ NS ns\nx A 192.0.2.1\n")  # TTL from the SOA minimum
    same("@ SOA ns h 1 2 3 4 5\n@ 9 NS ns\nx A 192.0.2.1\n")  # last TTL beats SOA minimum
    same("$TTL 7\n@ SOA ns h 1 2 3 4 5\n@ 9 NS ns\nx A 192.0.2.1\n")  # $TTL beats last
    same(f"$TTL 1\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n@ DNSKEY 257 3 13 (\n {B64A}\n {B64B} )\n")


def _spread(text: str, rng: random.Random) -> str:
    """``text`` rewritten the way BIND writes zones: each record's fields spread over lines
    inside parentheses at random points, with comments, and repeated owners left blank."""
    out: list[str] = []
    last_owner = None
    for line in text.splitlines():
        if not line or line.startswith("$"):
            out.append(line)
            continue
        tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', line)
        owner, fields = tokens[0], tokens[1:]
        head = "\t" if owner == last_owner and rng.random() < 0.7 else owner + " "
        last_owner = owner
        if rng.random() < 0.3:
            out.append(head + " ".join(fields) + (" ; c" if rng.random() < 0.5 else ""))
            continue
        opened = rng.randrange(len(fields))
        pieces = [*fields[:opened], "("]
        for f in fields[opened:]:
            pieces.append(f)
            if rng.random() < 0.4:
                pieces.append(rng.choice(["\n\t\t", " ; note (x\n  ", "\n\n ; y\n\t"]))
        pieces.append(rng.choice([")", "\n)", ") ; end"]))
        out.append(head + " ".join(pieces))
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NAMES, ROLES), min_size=1, max_size=12), st.randoms())
def test_random_multi_line_zones_parse_the_same(entries: list[tuple[str, str]],
                                                rng: random.Random) -> None:  # fmt: skip
    dnssec = "\n".join(DNSSEC_LINES.splitlines()[3:])  # without $TTL, SOA and NS
    text = _spread(zone_text(entries) + dnssec + "\n", rng)
    same(text)


def test_signed_output_spread_over_lines_reads_back() -> None:
    from dnsseal.signer import Nsec3Params, SignParams, sign_zone

    rng = random.Random(4)
    for nsec3 in (None, Nsec3Params(salt=b"\x01", opt_out=True)):
        signed = sign_zone(parse_zone_text(FEATURE_ZONE, ORIGIN), ksk_zsk(), SignParams(
            nsec3=nsec3), 1_767_225_600).zone  # fmt: skip
        text = _spread(format_zone(signed), rng)
        same(text)
        assert parse_zone_text(text, ORIGIN) == signed


@pytest.mark.interop
@pytest.mark.parametrize("nsec3", [False, True])
def test_bind_output_reads_on_the_fast_path(nsec3: bool, tmp_path: Path) -> None:
    """What BIND really writes (dnssec-signzone's multi-line default, named-compilezone's
    ``-s full`` and ``-s relative``) takes the fast path and gives dnspython's records."""
    (tmp_path / "z").write_text(FEATURE_ZONE)
    for extra in (["-f", "KSK"], []):
        run_tool(["dnssec-keygen", "-q", "-K", tmp_path, "-a", "ECDSAP256SHA256", *extra,
                  "example.com"])  # fmt: skip
    n3 = ["-3", "-"] if nsec3 else []
    run_tool(["dnssec-signzone", "-q", "-S", "-K", tmp_path, "-o", "example.com", *n3,
              "-f", tmp_path / "signed", tmp_path / "z"], cwd=tmp_path)  # fmt: skip
    outputs = [(tmp_path / "signed").read_text()]
    for style in ("full", "relative"):
        out = tmp_path / style
        run_tool(["named-compilezone", "-q", "-k", "ignore", "-s", style, "-o", out, "example.com",
                  tmp_path / "signed"])  # fmt: skip
        outputs.append(out.read_text())
    assert "(" in outputs[0] and "$ORIGIN" in outputs[2]
    for text in outputs:
        same(text)
    first, *others = (parse_zone_text(t, ORIGIN) for t in outputs)
    assert all(other == first for other in others)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.ip_addresses(v=6).map(str), st.ip_addresses(v=6).map(lambda a: a.exploded),
                 st.text("0123456789abcdefABCDEF:.", max_size=45)))  # fmt: skip
def test_ipv6_fast_path_matches_dnspython(text: str) -> None:
    try:
        careful: bytes | None = dns.ipv6.inet_aton(text)
    except dns.exception.SyntaxError:
        careful = None
    try:
        fast: bytes | None = fastparse._ipv6(text)
    except ValueError:
        fast = None
    assert fast == careful
