"""Answers built from single cached, validated RRsets (resolver/rrcache.py) and an alias
target's denial taken from the same reply (issue #20: Unbound's val_cnameqtype,
val_dnameqtype and val_negcache_dssoa scenarios).  Fail-closed: only secure or proven
insecure RRsets are kept, an answer has the weakest verdict of what it used, and a denial in
the same reply is used only when it validates with the target zone's keys."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.resolver.cache import ENTRY_OVERHEAD
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.rrcache import RRsetCache
from dnsseal.validator import verdict as v
from dnsseal.validator.machine import Need, Result

from .authority import Authority, config_for, memory_transport
from .test_cache import no_reply_cache
from .test_failopen import forging_transport
from .zonebuild import NOW, SignedZone, sign_zone

S = v.Security
T = dns.rdatatype
N = dns.name.from_text


def _sig_broken(reply: dns.message.Message, owner: dns.name.Name, covers: int) -> None:
    for section in (reply.answer, reply.authority):
        for r in section:
            if r.rdtype == T.RRSIG and r.covers == covers and r.name == owner:
                sig = r[0]
                r.clear()
                r.add(sig.replace(signature=bytes(len(sig.signature))))


# --- a cached CNAME ------------------------------------------------------------------


def test_a_cached_cname_answers_qtype_cname(authority: Authority) -> None:
    """The CNAME an A query brought answers QTYPE CNAME (with its RRSIG, TTL counted down,
    AD), no upstream query (Unbound: val_cnameqtype step 40)."""
    now = [NOW]
    res = Resolver(config_for(authority), memory_transport(authority), lambda: now[0])
    first = asyncio.run(res.resolve("alias.example.", "A"))
    assert first.verdict.security is S.SECURE
    now[0] += 7
    before = len(authority.queries)
    r = asyncio.run(res.resolve("alias.example.", "CNAME"))
    assert authority.queries[before:] == []
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    cname = next(x for x in r.answer if x.rdtype == T.CNAME)
    assert cname[0].target == N("www.a.example.")
    assert any(x.rdtype == T.RRSIG and x.covers == T.CNAME for x in r.answer)
    assert cname.ttl == next(x for x in first.answer if x.rdtype == T.CNAME).ttl - 7


def test_a_cached_cname_is_followed_for_other_types(authority: Authority) -> None:
    """A question of another type for the CNAME's owner follows the cached CNAME: only the
    target is asked."""
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    assert asyncio.run(res.resolve("alias.example.", "A")).verdict.security is S.SECURE
    before = len(authority.queries)
    r = asyncio.run(res.resolve("alias.example.", "AAAA"))
    asked = authority.queries[before:]
    assert ("alias.example.", "AAAA") not in asked and ("www.a.example.", "AAAA") in asked
    assert r.answer[0].rdtype == T.CNAME and r.verdict.security is S.SECURE, r.verdict


def test_a_cname_from_a_bogus_answer_is_not_kept(authority: Authority) -> None:
    """A CNAME whose signature does not verify answers nothing later: QTYPE CNAME is asked
    of the servers again and judged on its own."""
    alias = N("alias.example.")

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        _sig_broken(reply, alias, T.CNAME)
        return reply

    res = Resolver(config_for(authority), forging_transport(authority, forge), lambda: NOW)
    assert asyncio.run(res.resolve(alias, "A")).verdict.security is S.BOGUS
    assert len(res.rrsets) == 0
    before = len(authority.queries)
    r = asyncio.run(res.resolve(alias, "CNAME"))
    assert ("alias.example.", "CNAME") in authority.queries[before:]
    assert r.verdict.security is S.BOGUS


def _cname_result(verdict: v.Verdict) -> Result:
    cname = dns.rrset.from_text("x.example.", 300, "IN", "CNAME", "y.example.")
    return Result(N("x.example."), int(T.A), dns.rcode.NOERROR, (cname,), (), verdict, (), {})


@pytest.mark.parametrize(
    ("verdict", "kept"),
    [
        (v.secure("ok"), S.SECURE),
        (v.insecure("unsigned"), S.INSECURE),
        (v.bogus("forged"), None),
        (v.indeterminate("no anchor"), None),
    ],
)
def test_only_secure_or_insecure_rrsets_are_kept_with_their_verdict(
    verdict: v.Verdict, kept: v.Security | None
) -> None:
    cache = RRsetCache(1 << 20)
    cache.learn(_cname_result(verdict), NOW)
    hit = cache.get(N("x.example."), int(T.CNAME), NOW)
    assert (hit[1].security if hit is not None else None) == kept


def test_an_answer_through_a_cached_cname_has_the_weakest_verdict(authority: Authority) -> None:
    """A CNAME kept as insecure, followed to a secure target: the answer is insecure (no
    AD); the cache never makes an answer stronger than its weakest RRset."""
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    cname = dns.rrset.from_text("alias.example.", 300, "IN", "CNAME", "www.a.example.")
    res.rrsets.put(cname, [], v.insecure("kept as insecure"), NOW)
    r = asyncio.run(res.resolve("alias.example.", "A"))
    assert any(x.rdtype == T.A for x in r.answer)
    assert r.verdict.security is S.INSECURE, r.verdict


# --- a DS denial from the negative cache -----------------------------------------------


def test_a_ds_question_is_denied_from_the_cached_nsec_and_soa(authority: Authority) -> None:
    """The root's NSEC that proved insec. an insecure delegation, with the root SOA a
    negative answer brought, answers insec. DS: NOERROR, SOA and NSEC with their RRSIGs,
    AD, and no upstream query (Unbound: val_negcache_dssoa).  No upstream reply is kept,
    so only the RRset cache can answer."""
    res = Resolver(
        config_for(authority), memory_transport(authority), lambda: NOW, no_reply_cache()
    )
    assert asyncio.run(res.resolve("www.insec.", "A")).verdict.security is S.INSECURE
    nx = asyncio.run(res.resolve("nonexistent.", "A"))
    assert (nx.rcode, nx.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE)
    before = len(authority.queries)
    r = asyncio.run(res.resolve("insec.", "DS"))
    assert authority.queries[before:] == []
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    assert not r.answer
    kinds = {(x.name, x.rdtype, x.covers) for x in r.authority}
    assert (dns.name.root, T.SOA, T.NONE) in kinds and (N("insec."), T.NSEC, T.NONE) in kinds
    assert (dns.name.root, T.RRSIG, T.SOA) in kinds and (N("insec."), T.RRSIG, T.NSEC) in kinds


def test_no_ds_denial_without_the_parents_soa(authority: Authority) -> None:
    """The NSEC alone is not a negative answer (RFC 2308 s3: the SOA goes with it): the
    parent is asked."""
    res = Resolver(
        config_for(authority), memory_transport(authority), lambda: NOW, no_reply_cache()
    )
    assert asyncio.run(res.resolve("www.insec.", "A")).verdict.security is S.INSECURE
    before = len(authority.queries)
    r = asyncio.run(res.resolve("insec.", "DS"))
    assert ("insec.", "DS") in authority.queries[before:]
    assert r.verdict.security is S.SECURE and r.rcode == dns.rcode.NOERROR


# --- an alias target's denial in the same reply ------------------------------------------

TWO_ZONE_ROOT = """
@ 3600 SOA ns.root. h 1 3600 300 3600000 3600
@ NS ns.root.
ns.root. A 127.0.0.1
example. NS ns.example.
ns.example. A 127.0.0.1
other. NS ns.example.
"""


@pytest.fixture(scope="module")
def two_zones() -> list[SignedZone]:
    """example. and other. (both NSEC-signed, served by one server): www.example. is a
    CNAME to gone.other., which does not exist."""
    other = sign_zone(
        "@ 3600 SOA ns.example. h 1 3600 300 3600000 3600\n@ NS ns.example.\nb A 192.0.2.2\n",
        "other",
    )
    example = sign_zone(
        "@ 3600 SOA ns h 1 3600 300 3600000 3600\n@ NS ns\nns A 127.0.0.1\nwww CNAME gone.other.\n",
        "example",
    )
    ds = "\n".join(
        f"{z.origin.to_text()} DS {d.to_text()}" for z in (example, other) for d in z.ds()
    )
    root = sign_zone(TWO_ZONE_ROOT + ds, ".")
    return [root, example, other]


def _chasing_server(auth: Authority, break_target_proof: bool) -> object:
    """The server of both zones answers www.example. A with the CNAME and gone.other.'s
    NXDOMAIN proof from its other zone; asked directly for gone.other. it is silent."""

    target = Authority(list(auth.zones.values())).answer(N("gone.other."), int(T.A))

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == N("gone.other."):
            return None
        if need.qname == N("www.example.") and need.rdtype == T.A:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority = [r.copy() for r in target.authority]
            if break_target_proof:
                _sig_broken(reply, N("other."), T.SOA)
        return reply

    return forge


def test_the_targets_denial_in_the_same_reply_is_used(two_zones: list[SignedZone]) -> None:
    """Validated with other.'s keys, the in-packet NXDOMAIN proof answers: NXDOMAIN with AD,
    the CNAME and the proof, gone.other. never asked (Unbound: val_cnameqtype step 140)."""
    auth = Authority(two_zones)
    forge = _chasing_server(auth, break_target_proof=False)
    res = Resolver(config_for(auth), forging_transport(auth, forge), lambda: NOW)  # type: ignore[arg-type]
    r = asyncio.run(res.resolve("www.example.", "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE), r.verdict
    assert r.answer[0].rdtype == T.CNAME
    assert any(x.rdtype == T.SOA and x.name == N("other.") for x in r.authority)
    assert any(x.rdtype == T.NSEC for x in r.authority)
    assert ("gone.other.", "A") not in auth.queries
    # The target's NXDOMAIN is kept for the target itself, and QTYPE CNAME is answered
    # from the cached CNAME.
    before = len(auth.queries)
    assert asyncio.run(res.resolve("gone.other.", "AAAA")).rcode == dns.rcode.NXDOMAIN
    cname = asyncio.run(res.resolve("www.example.", "CNAME"))
    assert auth.queries[before:] == []
    assert (cname.rcode, cname.verdict.security) == (dns.rcode.NOERROR, S.SECURE)


def test_a_broken_denial_in_the_same_reply_is_not_used(two_zones: list[SignedZone]) -> None:
    """The in-packet proof does not verify: the target's own servers are asked (here
    silent), so the answer is SERVFAIL, never NXDOMAIN."""
    auth = Authority(two_zones)
    forge = _chasing_server(auth, break_target_proof=True)
    res = Resolver(config_for(auth), forging_transport(auth, forge), lambda: NOW)  # type: ignore[arg-type]
    r = asyncio.run(res.resolve("www.example.", "A"))
    assert r.rcode == dns.rcode.SERVFAIL and r.verdict.security is not S.SECURE, r
    assert ("gone.other.", "A") in auth.queries


# --- memory ---------------------------------------------------------------------------


def test_rrset_cache_entries_are_under_a_kilobyte_and_accounted() -> None:
    """Measured with tracemalloc over 500 signed CNAME RRsets (a 64-octet ECDSA RRSIG each,
    ~170 octets of wire)."""
    cache = RRsetCache(64 << 20)
    sig = (
        "CNAME 13 3 3600 20300101000000 20200101000000 12345 example. "
        + "A" * 86
        + "=="  # 64 octets of signature in base64
    )
    results = []
    for i in range(500):
        owner = f"n{i}.z.example."
        cname = dns.rrset.from_text(owner, 300, "IN", "CNAME", f"t{i}.example.")
        rrsig = dns.rrset.from_text(owner, 300, "IN", "RRSIG", sig)
        results.append(Result(N(owner), int(T.A), 0, (cname, rrsig), (), v.secure("ok"), (), {}))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for r in results:
            cache.learn(r, NOW)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == 500
    per_entry = grown / 500
    assert per_entry < 1024, per_entry
    assert cache.bytes / 500 >= per_entry * 0.9, (cache.bytes / 500, per_entry)
    assert cache.bytes / 500 <= ENTRY_OVERHEAD + 250


def test_an_unproven_nxdomain_rcode_is_not_kept_for_the_target(authority: Authority) -> None:
    """The rcode is not signed: a reply to QTYPE CNAME with NXDOMAIN set on the path and no
    proof for the target must not make the target nonexistent for later questions."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("alias.example.") and need.rdtype == T.CNAME:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply

    res = Resolver(config_for(authority), forging_transport(authority, forge), lambda: NOW)
    first = asyncio.run(res.resolve("alias.example.", "CNAME"))
    # Regression: this came back NXDOMAIN and secure (AD) though only the CNAME was proven
    assert (first.rcode, first.verdict.security) == (dns.rcode.NOERROR, S.SECURE)
    assert any(x.rdtype == T.CNAME for x in first.answer)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    assert any(x.rdtype == T.A for x in r.answer)
