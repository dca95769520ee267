"""The fast RDATA formatter reads back (through dnspython's parser) to the same wire."""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.zone import canonical, rdtext

IN = dns.rdataclass.IN
SAMPLES = [
    ("A", "192.0.2.1"),
    ("AAAA", "2001:db8::1"),
    ("AAAA", "::ffff:192.0.2.1"),
    ("AAAA", "::"),
    ("NS", "ns.Example.com."),
    ("CNAME", "a\\.b.example."),
    ("PTR", "\\000\\255x.example."),
    ("DNAME", 'odd\\(\\)\\;\\@\\$\\".example.'),
    ("MX", "10 ."),
    ("TXT", '"plain" "with \\"quote\\" and \\\\" "\\000\\255 é"'),
    ("TXT", '""'),
    ("DS", "12345 13 2 " + "AB" * 32),
    ("DNSKEY", "257 3 13 " + "A" * 86 + "=="),
    ("CDNSKEY", "0 3 0 AA=="),
    ("CDS", "0 0 0 00"),
    ("RRSIG", "NSEC3 13 3 300 20260101000000 20251201000000 1234 example. AAAA"),
    ("RRSIG", "TYPE65000 8 0 0 20380119031408 19700101000000 0 . AAAA"),
    ("NSEC", "next.Example. A NS SOA RRSIG NSEC DNSKEY TYPE1234"),
    ("NSEC", "next.example."),
    ("NSEC3", "1 1 0 - 0P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM A RRSIG"),
    ("NSEC3", "1 0 12 AABBCCDD 0P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM"),
    ("NSEC3PARAM", "1 0 0 -"),
    ("NSEC3PARAM", "1 0 5 C0FFEE"),
]


def round_trip(rtype: str, wire: bytes) -> None:
    t = dns.rdatatype.from_text(rtype)
    text = rdtext.rdata_text(t, wire)
    back = dns.rdata.from_text(IN, t, text, origin=dns.name.root, relativize=False)
    assert canonical.rdata_wire(back) == wire, text


@pytest.mark.parametrize(("rtype", "text"), SAMPLES)
def test_samples_round_trip(rtype: str, text: str) -> None:
    rd = dns.rdata.from_text(IN, rtype, text, origin=dns.name.root, relativize=False)
    round_trip(rtype, canonical.rdata_wire(rd))


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=4))
def test_any_label_bytes_round_trip_in_names(labels: list[bytes]) -> None:
    labels = [lab for lab in labels if lab] or [b"x"]
    round_trip("NS", canonical.name_wire(dns.name.Name([*labels, b""])))


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=255), min_size=1, max_size=3))
def test_any_txt_round_trips(strings: list[bytes]) -> None:
    round_trip("TXT", b"".join(bytes((len(s),)) + s for s in strings))


@given(st.binary(min_size=16, max_size=16))
def test_any_aaaa_round_trips(addr: bytes) -> None:
    round_trip("AAAA", addr)


def test_malformed_fast_path_falls_back_to_dnspython() -> None:
    # A 3-octet "A" is not valid; the fallback produces dnspython's answer or its error.
    with pytest.raises(dns.exception.DNSException):
        rdtext.rdata_text(dns.rdatatype.A, b"\x01\x02\x03")


@settings(max_examples=500)
@given(st.lists(st.sampled_from([0, 0, 0, 1, 0x10, 0xABCD, 0xFFFF]), min_size=8, max_size=8))
def test_aaaa_text_is_ipaddress_text(groups: list[int]) -> None:
    """The text written for AAAA is what ipaddress gives (the form dnsseal has always
    written: signed files and their snapshots depend on it), zero runs included."""
    wire = b"".join(g.to_bytes(2, "big") for g in groups)
    assert rdtext.rdata_text(dns.rdatatype.AAAA, wire) == str(ipaddress.IPv6Address(wire))


@given(st.binary(min_size=16, max_size=16))
def test_any_aaaa_text_is_ipaddress_text(addr: bytes) -> None:
    assert rdtext.rdata_text(dns.rdatatype.AAAA, addr) == str(ipaddress.IPv6Address(addr))
