"""The fast master-file path gives exactly what dnspython's full reader gives, and defers
to it for everything it does not handle."""

from __future__ import annotations

import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        "$TTL 1\n@ SOA ns h ( 1 2 3 4 5 )\n@ NS ns\n",  # parentheses
        "@ 1 SOA ns h 1 2 3 4 5\n@ 1 NS ns\n$INCLUDE other\n",
        "@ 1 SOA ns h 1 2 3 4 5\n@ 1 NS ns\nx 1 CH A 1.2.3.4\n",
        "@ 1 SOA ns h 1 2 3 4 5\n@ 1 NS ns\nx A 1.2.3.4\n",  # TTL from SOA minimum
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


def test_out_of_zone_data_ignored_like_dnspython() -> None:
    same("$TTL 5\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nfoo.other. A 192.0.2.1\n")


@settings(max_examples=100)
@given(st.lists(st.tuples(NAMES, ROLES), min_size=1, max_size=12))
def test_random_zones_parse_the_same(entries: list[tuple[str, str]]) -> None:
    same(zone_text(entries))
    assert dns.name.from_text("example.com.") == ORIGIN
