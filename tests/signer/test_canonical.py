"""Canonical forms (RFC 4034 6, RFC 6840 5.1) and RRSIGs built on bytes, checked against
dnspython's independent implementation (dns.dnssec.validate) as an oracle."""

from __future__ import annotations

from typing import Any

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.signer import SignParams, sign_zone
from dnsseal.signer.rrsig import Rrsig, absolute_time, labels_field, serial_lt
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import bitmap_types, type_bitmap
from dnsseal.zone.model import Zone
from dnsseal.zone.text import parse_zone_text

from .conftest import NOW, ORIGIN, ksk_zsk, make_key, zone_from

IN = dns.rdataclass.IN


def rd(rtype: str, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, rtype, text, origin=ORIGIN, relativize=False)


@pytest.mark.parametrize(
    ("rtype", "text", "expect_lower"),
    [
        ("NS", "NS1.Example.COM.", True),
        ("CNAME", "Target.Example.COM.", True),
        ("MX", "10 MAIL.Example.COM.", True),
        ("SRV", "0 5 5060 SIP.Example.COM.", True),
        ("PTR", "Host.Example.COM.", True),
        ("DNAME", "Other.NET.", True),
        ("SOA", "NS.Example.COM. Host.Example.COM. 1 2 3 4 5", True),
        ("RP", "Mbox.Example.COM. Txt.Example.COM.", True),
        ("NAPTR", '100 10 "S" "SIP+D2U" "" _Sip._udp.Example.COM.', True),
        ("KX", "10 KX.Example.COM.", True),
        ("AFSDB", "1 AFS.Example.COM.", True),
        ("RT", "10 Relay.Example.COM.", True),
        # dnspython knows MINFO only as generic data: the signer lower-cases it itself.
        ("MINFO", r"\# 30 0152074578616d706c6503434f4d00 01450745" "78616d706c6503434f4d00", True),
        # RFC 6840 5.1: NSEC's next name keeps its case.
        ("NSEC", "Next.Example.COM. A RRSIG NSEC", False),
        # Newer types are not in the RFC 4034 list: names keep their case.
        ("SVCB", "1 Svc.Example.COM. alpn=h2", False),
        ("HTTPS", "1 Svc.Example.COM.", False),
    ],
)
def test_embedded_names_lowercased_only_for_old_types(
    rtype: str, text: str, expect_lower: bool
) -> None:
    r = rd(rtype, text)
    wire = canonical.rdata_wire(r)
    original = r.to_wire()
    assert original is not None
    if expect_lower:
        assert wire != original
        assert b"Example" not in wire and b"COM" not in wire
        assert len(wire) == len(original)
    else:
        assert wire == original


def test_rrsig_signer_name_lowercased() -> None:
    r = rd("RRSIG", "A 13 2 300 20260101000000 20251201000000 1234 Example.COM. AAAA")
    assert b"Example" not in canonical.rdata_wire(r)


def test_name_order_is_rfc4034_example() -> None:
    # RFC 4034 6.1's example list, in canonical order.
    ordered = [
        "example.",
        "a.example.",
        "yljkjljk.a.example.",
        "Z.a.example.",
        "zABC.a.EXAMPLE.",
        "z.example.",
        "\\001.z.example.",
        "*.z.example.",
        "\\200.z.example.",
    ]
    names = [dns.name.from_text(t) for t in ordered]
    shuffled = list(reversed(names))
    assert sorted(shuffled, key=canonical.sort_key) == names
    wires = [canonical.name_wire(n) for n in shuffled]
    assert sorted(wires, key=canonical.wire_sort_key) == [canonical.name_wire(n) for n in names]


def test_duplicates_removed_and_rdata_sorted() -> None:
    z = parse_zone_text(
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 10.0.0.2\nns A 10.0.0.1\nns A 10.0.0.2\n"
        "ns A 9.0.0.1\n",
        "example.com.",
    )
    rr = z.get(dns.name.from_text("ns.example.com."), dns.rdatatype.A)
    assert rr is not None
    assert rr.rdatas == (bytes([9, 0, 0, 1]), bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))


def test_type_bitmap_round_trip_and_rfc4034_example() -> None:
    # RFC 4034 4.3: A MX RRSIG NSEC TYPE1234
    bm = type_bitmap([1, 15, 46, 47, 1234])
    # RFC 4034 4.3's octets: window 0 (6 octets), window 4 (27 octets, type 1234 = 4*256+210)
    assert bm == bytes.fromhex("0006400100000003041b") + bytes(26) + b"\x20"
    assert bitmap_types(bm) == {1, 15, 46, 47, 1234}
    with pytest.raises(ValueError):
        bitmap_types(b"\x00\x00")


def test_labels_and_serial_arithmetic() -> None:
    assert labels_field(dns.name.from_text("*.a.example.com.")) == 3
    assert labels_field(dns.name.from_text("a.example.com.")) == 3
    assert labels_field(dns.name.root) == 0
    assert serial_lt(0xFFFFFFF0, 5)
    assert not serial_lt(5, 0xFFFFFFF0)
    assert absolute_time(5, 2**32 - 10) == 2**32 + 5


def _as_dnspython(zone: Zone) -> dict[tuple[dns.name.Name, int], dns.rrset.RRset]:
    out = {}
    for node in zone.rrsets.values():
        for r in node.values():
            rs = dns.rrset.RRset(r.name, IN, dns.rdatatype.RdataType(r.rtype))
            for w in r.rdatas:
                rs.add(canonical.rdata_from_wire(r.rtype, w), r.ttl)
            out[(r.name, r.rtype)] = rs
    return out


@pytest.mark.parametrize("alg", [8, 13, 15])
def test_every_signature_validates_with_dnspython(alg: int) -> None:
    signed = sign_zone(zone_from(), ksk_zsk(alg), SignParams(), NOW).zone
    data = _as_dnspython(signed)
    keys = {ORIGIN: data[(ORIGIN, dns.rdatatype.DNSKEY)]}
    checked = 0
    for name, sigs in signed.rrsigs.items():
        for covered, sigset in sigs.items():
            rrset = data[(name, covered)]
            rs = dns.rrset.RRset(name, IN, dns.rdatatype.RRSIG, dns.rdatatype.RdataType(covered))
            for w in sigset.rdatas:
                rs.add(canonical.rdata_from_wire(dns.rdatatype.RRSIG, w), sigset.ttl)
                assert Rrsig.from_wire(w).labels == labels_field(name)
            dns.dnssec.validate(rrset, rs, keys, now=NOW)  # raises when invalid
            checked += 1
    assert checked > 20


def test_tampered_rdata_fails_the_oracle() -> None:
    signed = sign_zone(zone_from(), ksk_zsk(13), SignParams(), NOW).zone
    data = _as_dnspython(signed)
    name = dns.name.from_text("mail.example.com.")
    bad = dns.rrset.from_text(name, 300, IN, "A", "192.0.2.200")
    sigset = signed.rrsigs[name][dns.rdatatype.A]
    rs = dns.rrset.RRset(name, IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
    for w in sigset.rdatas:
        rs.add(canonical.rdata_from_wire(dns.rdatatype.RRSIG, w), 300)
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(bad, rs, {ORIGIN: data[(ORIGIN, dns.rdatatype.DNSKEY)]}, now=NOW)
    assert make_key(13).tag == Rrsig.from_wire(sigset.rdatas[0]).key_tag


def test_a_zones_soa_is_parsed_once_and_is_what_its_rdata_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Zone.soa()`` is asked for about 8 times per zone and pass: parsed once per RDATA
    and TTL (the memo), each field still the RDATA's and the TTL the RRset's."""
    from dnsseal.zone import model

    origin = dns.name.from_text("memo.test.")
    text = "ns.memo.test. host.memo.test. 2026120701 3600 600 86400 300"
    wire = canonical.rdata_wire(dns.rdata.from_text("IN", "SOA", text))
    made = [0]
    real = canonical.name_from_wire

    def counting(*args: Any) -> Any:
        made[0] += 1
        return real(*args)

    monkeypatch.setattr(canonical, "name_from_wire", counting)
    monkeypatch.setattr(model, "_SOA_MEMO", {}, raising=False)
    soas = []
    for ttl in (300, 300, 60, 300):
        rr = model.RRset(origin, 6, ttl, (wire,))
        soas.append(model.Zone(origin, {origin: {6: rr}}).soa())
    assert made[0] == 4  # two names per (RDATA, TTL): 300 and 60, not 4 times
    assert soas[0] is soas[1] is soas[3] and soas[2].ttl == 60 and soas[0].ttl == 300
    assert (soas[0].serial, soas[0].minimum, soas[0].mname.to_text()) == (
        2026120701, 300, "ns.memo.test.",
    )  # fmt: skip
    assert soas[0].rdata_wire() == wire


def test_soa_memo_is_bounded_and_keeps_the_latest_when_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The memo holds a bounded number of SOAs (it was 4,096: 3.2 MiB in the main process,
    for hits that only came with fewer than 2,000 zones); full, it drops the older half,
    so the SOA just asked for is still there when asked again (it was cleared whole)."""
    from dnsseal.zone import model

    origin = dns.name.from_text("memo.test.")
    monkeypatch.setattr(model, "_SOA_MEMO", {})
    monkeypatch.setattr(model, "_SOA_MEMO_MAX", 8)

    def soa(serial: int) -> model.Soa:
        text = f"ns.memo.test. host.memo.test. {serial} 3600 600 86400 300"
        wire = canonical.rdata_wire(dns.rdata.from_text("IN", "SOA", text))
        return model.Zone(origin, {origin: {6: model.RRset(origin, 6, 300, (wire,))}}).soa()

    made = [soa(i) for i in range(8)]
    assert soa(8).serial == 8  # the memo is full: the older half goes
    assert len(model._SOA_MEMO) == 5
    assert soa(7) is made[7] and soa(0) is not made[0]
    for i in range(100):
        soa(100 + i)
        assert len(model._SOA_MEMO) <= 8
