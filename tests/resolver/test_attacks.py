"""Zones built to exhaust validators stay within the per-query budget and answer fast:
colliding DNSKEY tags with many RRSIGs, NSEC3 with 51/150/2500 iterations, negative answers
padded with NSEC3 records, very long names against the NSEC3 hash budget."""

from __future__ import annotations

import os
import time

import dns.dnssec
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest
from dns.rdtypes.ANY.DNSKEY import DNSKEY

from dnsseal.validator import verdict as v
from dnsseal.validator.limits import Limits
from dnsseal.validator.machine import Need, Query, Result

from .authority import Authority, config_for, drive
from .zonebuild import NOW, Nsec3Params, SignedZone, b32, make_key, sign_zone

S = v.Security
LIMITS = Limits()
ZONE_TEXT = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
"""
T = dns.rdatatype


def _tree(child: SignedZone) -> Authority:
    ds = "\n".join(f"{child.origin} DS {d.to_text()}" for d in child.ds())
    root = sign_zone(
        "@ 3600 SOA ns.root. h 1 3600 300 3600000 3600\n@ NS ns.root.\nns.root. A 127.0.0.1\n"
        f"{child.origin} NS ns.{child.origin}\nns.{child.origin} A 127.0.0.1\n{ds}\n",
        ".",
    )
    return Authority([root, child])


def _timed(
    auth: Authority, name: str, rdtype: str, mutate=None, **kw: object
) -> tuple[Result, float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    r = drive(Query(name, rdtype, config_for(auth, **kw), NOW), auth, mutate)
    return r, time.perf_counter() - start


def _within_budget(r: Result, limits: Limits = LIMITS) -> None:
    for kind, spent in r.spent.items():
        # A limit is "hit" by the one attempt that exceeds it, never more.
        assert spent <= getattr(limits, kind) + 1, (kind, spent)


def _tag(wire: bytes) -> int:
    ac = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(wire))
    return (ac + (ac >> 16)) & 0xFFFF


def _colliding_keys(tag: int, n: int) -> list[DNSKEY]:
    """Ed25519 DNSKEYs (random points) whose key tag is ``tag`` (last 16-bit word tuned)."""
    out: list[DNSKEY] = []
    while len(out) < n:
        head = b"\x01\x00\x03\x0f" + os.urandom(30)
        base = _tag(head + b"\x00\x00")
        for w in ((tag - base) % 65536, (tag - base - 1) % 65536):
            wire = head + w.to_bytes(2, "big")
            if _tag(wire) == tag:
                rd = dns.rdata.from_wire("IN", "DNSKEY", wire, 0, len(wire))
                assert dns.dnssec.key_id(rd) == tag
                out.append(rd)  # type: ignore[arg-type]
                break
    return out


def test_colliding_key_tags_with_many_rrsigs() -> None:
    real = make_key(True, algorithm=15)
    fakes = _colliding_keys(real.tag, 40)
    child = sign_zone(ZONE_TEXT, "attack", keys=[real], extra_dnskeys=fakes)
    auth = _tree(child)
    template = child.zone.get_rdataset(dns.name.from_text("www.attack."), T.RRSIG, T.A)[0]

    def mutate(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == dns.name.from_text("www.attack.") and need.rdtype == T.A:
            sigs = dns.rrset.RRset(need.qname, 1, T.RRSIG, T.A)
            for _ in range(60):  # forged RRSIGs first, with the colliding tag
                sigs.add(template.replace(signature=os.urandom(64)))
            reply.answer = [r for r in reply.answer if r.rdtype != T.RRSIG] + [sigs]
        return reply

    r, elapsed = _timed(auth, "www.attack.", "A", mutate)
    assert r.verdict.security is S.BOGUS
    _within_budget(r)
    assert r.spent["signature_verifications"] <= LIMITS.signature_verifications + 1
    assert elapsed < 3
    # Without the forged RRSIGs the same zone validates: the limits do not break honest data
    # whose key shares its tag with a few others.
    few = sign_zone(ZONE_TEXT, "attack", keys=[real], extra_dnskeys=fakes[:2])
    r, _ = _timed(_tree(few), "www.attack.", "A")
    assert r.verdict.security is S.SECURE, r.verdict


@pytest.mark.parametrize("iterations", [51, 150, 2500])
def test_nsec3_iterations_above_50_are_insecure_ede27(iterations: int) -> None:
    child = sign_zone(ZONE_TEXT, "iter", nsec3=Nsec3Params(b"\xab\xcd", iterations))
    auth = _tree(child)
    r, elapsed = _timed(auth, "nx.iter.", "A")
    assert (r.verdict.security, r.verdict.ede) == (S.INSECURE, v.EDE_UNSUPPORTED_NSEC3_ITERATIONS)
    assert r.spent["nsec3_hashes"] == 0  # no hash was computed at all
    assert elapsed < 2
    _within_budget(r)


def test_high_iteration_nsec3_with_bad_signature_stays_bogus() -> None:
    child = sign_zone(ZONE_TEXT, "iter", nsec3=Nsec3Params(b"", 150))

    def mutate(need: Need, reply: dns.message.Message) -> dns.message.Message:
        for i, rrset in enumerate(reply.authority):
            if rrset.rdtype == T.RRSIG and rrset.covers == T.NSEC3:
                new = dns.rrset.RRset(rrset.name, 1, T.RRSIG, T.NSEC3)
                new.add(rrset[0].replace(signature=os.urandom(64)), rrset.ttl)
                reply.authority[i] = new
        return reply

    r, _ = _timed(_tree(child), "nx.iter.", "A", mutate)
    assert r.verdict.security is S.BOGUS, r.verdict


def _padding(zone: dns.name.Name, n: int) -> list[dns.rrset.RRset]:
    out = []
    for _ in range(n):
        owner = dns.name.from_text(b32(os.urandom(20)), zone)
        out.append(
            dns.rrset.from_text(
                owner, 300, "IN", "NSEC3", f"1 0 0 - {b32(os.urandom(20)).upper()} A"
            )
        )
    return out


def test_negative_answer_padded_with_many_nsec3() -> None:
    child = sign_zone(ZONE_TEXT, "pad", nsec3=Nsec3Params())
    zone = child.origin

    def pad(n: int):  # type: ignore[no-untyped-def]
        def mutate(need: Need, reply: dns.message.Message) -> dns.message.Message:
            if need.qname == dns.name.from_text("nx.pad.") and need.rdtype == T.A:
                reply.authority = _padding(zone, n) + reply.authority
            return reply

        return mutate

    r, elapsed = _timed(_tree(child), "nx.pad.", "A", pad(500))
    assert r.verdict.security is S.BOGUS
    assert "NSEC3 RRsets in one answer" in r.verdict.reason
    assert elapsed < 2
    _within_budget(r)
    # A little unsigned padding costs nothing: only the records the proof uses are verified.
    r, _ = _timed(_tree(child), "nx.pad.", "A", pad(3))
    assert r.verdict.security is S.SECURE, r.verdict


def test_long_names_hit_the_nsec3_hash_budget() -> None:
    child = sign_zone(ZONE_TEXT, "deep", nsec3=Nsec3Params(b"\x01", 50))
    name = ".".join(["a"] * 100) + ".deep."
    r, elapsed = _timed(_tree(child), name, "A", minimise=False)
    assert r.verdict.security is S.BOGUS
    assert r.spent["nsec3_hashes"] <= LIMITS.nsec3_hashes + 1
    assert elapsed < 2


def test_hostile_referrals_without_glue_are_bounded() -> None:
    """Every reply is a glueless referral to fresh out-of-bailiwick NS names: iteration,
    NS resolution and the query budget must all stop it."""
    counter = [0]

    def hostile(need: Need) -> dns.message.Message:
        counter[0] += 1
        q = dns.message.make_query(need.qname, need.rdtype)
        r = dns.message.make_response(q)
        child = need.qname if need.qname != dns.name.root else dns.name.from_text("com.")
        ns = dns.rrset.from_text(
            child,
            300,
            "IN",
            "NS",
            *[f"ns{counter[0]}-{i}.elsewhere{counter[0]}.net." for i in range(5)],
        )
        r.authority.append(ns)
        return r

    root = sign_zone("@ 3600 SOA ns.root. h 1 3600 300 3600000 3600\n@ NS ns.root.\n", ".")
    auth = Authority([root])
    query = Query("a.b.c.d.e.f.example.", "A", config_for(auth), NOW)
    start = time.perf_counter()
    step = query.start()
    while isinstance(step, Need):
        step = query.feed(dns.message.from_wire(hostile(step).to_wire()))
    assert time.perf_counter() - start < 3
    assert step.spent["queries"] <= LIMITS.queries + 1
    assert step.verdict.security in (S.INDETERMINATE, S.BOGUS)


@pytest.mark.parametrize("nsec3", [None, Nsec3Params()], ids=["nsec", "nsec3"])
def test_wildcard_replayed_below_an_existing_name_is_bogus(nsec3: Nsec3Params | None) -> None:
    """*.w.wc. must not answer a.b.w.wc. when b.w.wc. exists (RFC 4035 5.3.4): an attacker
    replays the wildcard's signed data with a genuine NSEC that covers a.b.w.wc."""
    child = sign_zone(ZONE_TEXT + "*.w A 192.0.2.1\nb.w TXT here\n", "wc", nsec3=nsec3)
    auth = _tree(child)
    qname = dns.name.from_text("a.b.w.wc.")
    wild = dns.name.from_text("*.w.wc.")

    def replay(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname != qname or need.rdtype != T.A:
            return reply
        forged = dns.message.make_response(dns.message.make_query(qname, "A"))
        a = child.rrset(wild, T.A)
        sigs = child.zone.get_rdataset(wild, T.RRSIG, T.A)
        assert a is not None and sigs is not None
        forged.answer = [
            dns.rrset.from_rdata_list(qname, 300, list(a)),
            dns.rrset.from_rdata_list(qname, 300, list(sigs)),
        ]
        forged.authority = [r for r in reply.authority if r.rdtype in (T.NSEC, T.NSEC3, T.RRSIG)]
        return forged

    legit, _ = _timed(auth, "a.b.w.wc.", "A")
    assert legit.verdict.security is S.SECURE and legit.rcode == 3  # NXDOMAIN
    r, _ = _timed(auth, "a.b.w.wc.", "A", replay)
    assert r.verdict.security is S.BOGUS, (nsec3, r.verdict)


def test_nsec3_with_unknown_hash_or_flags_is_ignored() -> None:
    child = sign_zone(ZONE_TEXT, "h3", nsec3=Nsec3Params())

    def rewrite(alg: int, flags: int):  # type: ignore[no-untyped-def]
        def mutate(need: Need, reply: dns.message.Message) -> dns.message.Message:
            out = []
            for r in reply.authority:
                if r.rdtype == T.NSEC3:
                    rds = [rd.replace(algorithm=alg, flags=flags) for rd in r]
                    out.append(dns.rrset.from_rdata_list(r.name, r.ttl, rds))
                else:
                    out.append(r)
            reply.authority = out
            return reply

        return mutate

    for alg, flags in ((2, 0), (1, 0x80)):
        r, _ = _timed(_tree(child), "nx.h3.", "A", rewrite(alg, flags))
        # RFC 5155 s8.1/8.2: such records are ignored, so nothing proves the denial.
        assert (r.verdict.security, r.verdict.ede) == (S.BOGUS, v.EDE_NSEC_MISSING), r.verdict
