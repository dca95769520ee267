"""Signaling records (proto.signaling) and the parent driver's zone helpers (server.dsdriver)."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from dnsseal.proto import signaling
from dnsseal.proto.answer import Answer, lookup
from dnsseal.proto.signaling import OnlineSign
from dnsseal.proto.snapshot import ZoneSnapshot, build
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


# -- online answers (proto.signaling.online_answer), signed with dnspython here ----------

ONLINE = f"""$ORIGIN _signal.ns1.provider.test.
$TTL 60
@ SOA ns1.provider.test. h 1 60 30 600 30
@ NS ns1.provider.test.
_dsboot.a.example CDS {CDS}
alias CNAME nowhere
"""


def _online_snapshot() -> tuple[ZoneSnapshot, OnlineSign, dns.rrset.RRset]:
    priv = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(priv.public_key(), 13, 257)
    z = dns.zone.from_text(ONLINE, SIGNAL, relativize=False)
    with z.writer() as txn:
        txn.add(SIGNAL, 60, dnskey)
        dns.dnssec.sign_zone(z, txn, keys=[(priv, dnskey)], lifetime=3600)

    def sign(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        out = dns.rrset.RRset(rrset.name, rrset.rdclass, T.RRSIG, rrset.rdtype)
        out.add(dns.dnssec.sign(rrset, priv, SIGNAL, dnskey, lifetime=3600), rrset.ttl)
        return out

    keys = dns.rrset.from_rdata(SIGNAL, 60, dnskey)
    return build(z), sign, keys


def _online(qname: str, qtype: str, do: bool = True, tcp: bool = False) -> Answer:
    snap, sign, _ = ONLINE_SNAP
    name = dns.name.from_text(qname, SIGNAL)
    t = T.from_text(qtype)
    return signaling.online_answer(snap, name, t, do, lookup(snap, name, t, do, tcp), sign)


ONLINE_SNAP = _online_snapshot()


def _nsecs(ans: Answer) -> list[dns.rrset.RRset]:
    return [r for r in (*ans.answer, *ans.authority) if r.rdtype in (T.NSEC, T.NSEC3)]


@pytest.mark.parametrize(
    ("qname", "qtype"),
    [("_dsboot.a.example", "A"), ("a.example", "CDS"), ("nothere", "CDS"), ("@", "TXT")],
)
def test_online_denial_is_one_minimal_nsec_signed_now(qname: str, qtype: str) -> None:
    ans = _online(qname, qtype)
    owner = dns.name.from_text(qname, SIGNAL)
    assert ans.rcode == 0 and not ans.answer
    (nsec,) = _nsecs(ans)
    assert nsec.name == owner and nsec[0].next == dns.name.Name((b"\x00", *owner.labels))
    (sig,) = [r for r in ans.authority if r.rdtype == T.RRSIG and r.covers == T.NSEC]
    dns.dnssec.validate(nsec, sig, {SIGNAL: ONLINE_SNAP[2]})  # raises when it does not verify
    assert id(nsec) in ans.fresh and id(sig) in ans.fresh  # never memoised by the fast path


def test_online_keeps_positive_answers_and_answers_without_do() -> None:
    pos = _online("_dsboot.a.example", "CDS")
    assert [r.rdtype for r in pos.answer] == [T.CDS, T.RRSIG] and not pos.authority
    plain = _online("nothere", "CDS", do=False)  # as Knot: NXDOMAIN without DO
    assert plain.rcode == dns.rcode.NXDOMAIN and not _nsecs(plain)


def test_online_cname_to_nowhere_denies_the_target() -> None:
    ans = _online("alias", "A")
    assert ans.answer[0].rdtype == T.CNAME
    (nsec,) = _nsecs(ans)
    assert nsec.name == dns.name.from_text("nowhere", SIGNAL)


def test_online_nsec_query_and_the_longest_names() -> None:
    ans = _online("_dsboot.a.example", "NSEC")
    (nsec,) = [r for r in ans.answer if r.rdtype == T.NSEC]
    assert nsec.name == dns.name.from_text("_dsboot.a.example", SIGNAL)
    assert not any(r.rdtype == T.SOA for r in ans.authority)
    long = "b" * 34 + "." + ".".join(["a" * 63] * 3)  # 254 octets: no room for \000
    assert signaling.next_name(dns.name.from_text(long, SIGNAL)) is None
    kept = _online(long, "A")  # the zone's own proof is left as it was
    assert kept.rcode == dns.rcode.NXDOMAIN and _nsecs(kept)


def test_online_any_never_shows_the_chain() -> None:
    for qname in ("_dsboot.a.example", "@"):
        ans = _online(qname, "ANY", tcp=True)  # over TCP ANY has every RRset, NSEC too
        assert _nsecs(ans)
        for r in _nsecs(ans):
            owner = dns.name.from_text(qname, SIGNAL)
            assert r.name == owner and r[0].next == dns.name.Name((b"\x00", *owner.labels))
