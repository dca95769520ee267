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


def test_signed_output_reads_back_on_the_fast_path() -> None:
    from dnsseal.signer import Nsec3Params, SignParams, sign_zone

    signed = sign_zone(parse_zone_text(FEATURE_ZONE, ORIGIN), ksk_zsk(), SignParams(
        nsec3=Nsec3Params()), 1_767_225_600).zone  # fmt: skip
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
