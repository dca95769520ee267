"""Signaling records (proto.signaling) and the parent driver's zone helpers (server.dsdriver)."""

from __future__ import annotations

import dns.name
import dns.rdatatype

from dnsseal.proto import signaling
from dnsseal.server.dsdriver import delegations, ds_change, ds_records
from dnsseal.zone.diff import apply
from dnsseal.zone.text import parse_zone_text

T = dns.rdatatype
CDS = "12345 13 2 1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F809"
CHILD = """$TTL 300
@ SOA ns1.provider.test. h 1 60 30 600 60
@ NS ns1.provider.test.
@ NS {ns2}
@ 0 CDS {cds}
"""
SIGNAL = dns.name.from_text("_signal.ns1.provider.test.")


def _child(origin: str, ns2: str = "ns2.provider.test.", cds: str = CDS) -> signaling.ChildApex:
    z = parse_zone_text(CHILD.format(ns2=ns2, cds=cds), origin)
    return signaling.child_apex(z, waiting=True)


def test_host_of() -> None:
    assert signaling.host_of(SIGNAL) == dns.name.from_text("ns1.provider.test.")
    assert signaling.host_of(dns.name.from_text("ns1.provider.test.")) is None


def test_wanted_copies_only_waiting_children_naming_the_host() -> None:
    a = _child("a.example.")
    b = _child("b.example.", ns2="ns9.other.test.")  # still names ns1: included
    c = _child("c.example.")
    c = signaling.ChildApex(c.origin, c.ns, c.rrsets, waiting=False)  # DS is in: gone
    other = signaling.wanted(dns.name.from_text("_signal.ns9.other.test."), [a, b, c])
    want = signaling.wanted(SIGNAL, [a, b, c])
    owners = {r[0].to_text() for r in want}
    assert owners == {
        "_dsboot.a.example._signal.ns1.provider.test.",
        "_dsboot.b.example._signal.ns1.provider.test.",
    }
    assert {r[0].to_text() for r in other} == {"_dsboot.b.example._signal.ns9.other.test."}
    assert all(r[1] == T.CDS and r[2] == 0 for r in want)


def test_diff_adds_then_removes() -> None:
    zone = parse_zone_text("$TTL 60\n@ SOA a. b. 1 1 1 1 1\n@ NS ns1.provider.test.\n", SIGNAL)
    want = signaling.wanted(SIGNAL, [_child("a.example.")])
    add = signaling.signaling_diff(zone, want)
    assert len(add.added) == 1 and not add.removed
    zone2 = apply(zone, add)
    assert signaling.signaling_diff(zone2, want).added == ()
    gone = signaling.signaling_diff(zone2, set())
    assert len(gone.removed) == 1 and not gone.added
    assert signaling.current(apply(zone2, gone)) == set()


def test_zone_text_round_trips() -> None:
    want = signaling.wanted(SIGNAL, [_child("a.example.")])
    text = signaling.zone_text(SIGNAL, want)
    assert text == f"_dsboot.a.example._signal.ns1.provider.test. 0 IN CDS {CDS.lower()}\n"


PARENT = """$TTL 60
@ SOA ns h 1 60 30 600 60
@ NS ns
ns A 127.0.0.1
kid NS ns1.kid
kid NS ns.other.test.
ns1.kid A 192.0.2.1
kid 120 DS 1 13 2 {d}
""".format(d="AB" * 32)


def test_delegations_and_ds_change() -> None:
    zone = parse_zone_text(PARENT, "parent.test.")
    ((child, names, glue),) = delegations(zone)
    assert child.to_text() == "kid.parent.test."
    assert [n.to_text() for n in names] == ["ns.other.test.", "ns1.kid.parent.test."]
    assert {k.to_text(): v for k, v in glue.items()} == {"ns1.kid.parent.test.": ["192.0.2.1"]}
    current = ds_records(zone, child)
    assert [(d.key_tag, ttl) for d, ttl in current] == [(1, 120)]
    new = [d for d, _ in current]
    after = apply(zone, ds_change(child, current, new, 2))
    assert [(d.key_tag, ttl) for d, ttl in ds_records(after, child)] == [(1, 2)]
    assert ds_records(apply(zone, ds_change(child, current, [], 2)), child) == []
