"""The resolver's caches (issue #20, "a resolver people would run"): the delegation cache
(a new name starts at its closest known zone, its chain of trust reused), negative caching
(RFC 2308), replies that led to bogus not kept, aggressive use of validated NSEC (RFC 8198,
``aggressive-nsec``), and memory bounds measured with tracemalloc."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import tracemalloc

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.resolver.cache import ENTRY_OVERHEAD, Cache
from dnsseal.resolver.engine import Resolver
from dnsseal.validator import verdict as v
from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.machine import Need, Query, negative_ttl

from .authority import Authority, config_for, memory_transport
from .conftest import INSEC
from .test_failopen import forging_transport
from .zonebuild import NOW, SignedZone, sign_zone

S = v.Security
T = dns.rdatatype
N = dns.name.from_text


def no_reply_cache() -> Cache:
    """A reply cache that keeps nothing, so only the delegation cache can help."""
    return Cache(max_entries=0)


def resolve(res: Resolver, name: str, rdtype: str) -> tuple[v.Verdict, int]:
    r = asyncio.run(res.resolve(name, rdtype))
    return r.verdict, r.rcode


# --- the delegation cache -------------------------------------------------------------


def test_a_second_name_in_a_zone_does_not_start_at_the_root(authority: Authority) -> None:
    res = Resolver(
        config_for(authority), memory_transport(authority), lambda: NOW, no_reply_cache()
    )
    assert resolve(res, "www.a.example.", "A")[0].security is S.SECURE
    before = len(authority.queries)
    verdict, rcode = resolve(res, "ns1.a.example.", "A")
    assert (verdict.security, rcode) == (S.SECURE, dns.rcode.NOERROR), verdict
    # One question, to a.example's server; no root, no example., no DS or DNSKEY again.
    assert authority.queries[before:] == [("ns1.a.example.", "A")]


def test_the_machine_starts_from_shared_zone_cuts_and_chain_states(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    resolve(res, "www.a.example.", "A")
    query = Query("nothere.a.example.", "A", res.config, NOW)
    step = query.start()
    zones = []
    while isinstance(step, Need):
        zones.append(step.zone)
        reply = authority.answer(step.qname, step.rdtype)
        step = query.feed(dns.message.from_wire(reply.to_wire()))
    assert (step.rcode, step.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE), step.verdict
    assert zones == [N("a.example.")]
    assert (
        step.spent["signature_verifications"] <= 3
    )  # the denial's own checks; the chain was reused
    assert any("validated earlier" in link.text for link in step.links)


def test_an_insecure_delegation_is_remembered(authority: Authority) -> None:
    res = Resolver(
        config_for(authority), memory_transport(authority), lambda: NOW, no_reply_cache()
    )
    assert resolve(res, "mc.c.example.", "MX")[0].security is S.INSECURE
    before = len(authority.queries)
    assert resolve(res, "ns1.c.example.", "A")[0].security is S.INSECURE
    assert authority.queries[before:] == [("ns1.c.example.", "A")]


def test_delegations_expire_with_the_ns_ttl(authority: Authority) -> None:
    now = [NOW]
    res = Resolver(
        config_for(authority), memory_transport(authority), lambda: now[0], no_reply_cache()
    )
    resolve(res, "www.a.example.", "A")
    now[0] += 3601  # past every TTL of the test zones
    before = len(authority.queries)
    assert resolve(res, "ns1.a.example.", "A")[0].security is S.SECURE
    assert ("example.", "A") in authority.queries[before:]  # asked the root again


def test_new_anchors_drop_the_chain_states(authority: Authority) -> None:
    from dnsseal.validator.anchors import AnchorSet

    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    resolve(res, "www.a.example.", "A")
    res.with_config(config_for(authority, anchors=AnchorSet(())))
    # Without anchors nothing validated under the old ones may be used.
    assert resolve(res, "ns1.a.example.", "A")[0].security is S.INDETERMINATE


# --- negative caching -------------------------------------------------------------------


def test_an_nxdomain_answers_every_type_of_the_name(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    first = resolve(res, "nope.example.", "A")
    assert first[1] == dns.rcode.NXDOMAIN
    before = res.upstream_queries
    assert resolve(res, "nope.example.", "TXT") == first
    assert res.upstream_queries == before


def test_negative_answers_live_for_the_soa_minimum(hierarchy: dict[str, SignedZone]) -> None:
    """RFC 2308 s5: min(SOA TTL, SOA MINIMUM); the unsigned zone's SOA has TTL 3600 and
    MINIMUM 60."""
    insec = sign_zone(INSEC.replace("3600000 3600", "3600000 60"), "insec", unsigned=True)
    auth = Authority([*(z for k, z in hierarchy.items() if k != "insec"), insec])
    inner = memory_transport(auth)
    soa = insec.rrset(N("insec."), T.SOA)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        if q.question[0].name != N("nope.insec."):
            return await inner(server, wire, tcp)
        r = dns.message.make_response(q)  # the unsigned zone's NXDOMAIN: just the SOA
        r.flags |= dns.flags.AA
        r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority = [soa]
        return r.to_wire()

    now = [NOW]
    res = Resolver(config_for(auth), transport, lambda: now[0])
    verdict, rcode = resolve(res, "nope.insec.", "A")
    assert (verdict.security, rcode) == (S.INSECURE, dns.rcode.NXDOMAIN), verdict
    before = res.upstream_queries
    now[0] += 59
    resolve(res, "nope.insec.", "A")
    assert res.upstream_queries == before
    now[0] += 2
    resolve(res, "nope.insec.", "A")
    assert res.upstream_queries > before


def test_negative_ttl_takes_the_soa_minimum() -> None:
    soa = dns.rrset.from_text("x.", 3600, "IN", "SOA", "ns h 1 2 3 4 60")
    nsec = dns.rrset.from_text("x.", 120, "IN", "NSEC", "a.x. A")
    assert negative_ttl([soa, nsec]) == 60
    assert negative_ttl([]) == 0


# --- bogus -----------------------------------------------------------------------------


def test_a_forged_reply_that_led_to_bogus_is_not_kept(authority: Authority) -> None:
    """The forged DNSKEY reply (signatures stripped) made the name bogus; once the bogus
    result expires (60 s) the next resolution asks again and gets the real keys, instead
    of reusing the forgery for the DNSKEY TTL (an hour)."""
    forging = [True]

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if forging[0] and need.qname == N("a.example.") and need.rdtype == T.DNSKEY:
            reply.answer = [r for r in reply.answer if r.rdtype != T.RRSIG]
        return reply

    now = [NOW]
    res = Resolver(config_for(authority), forging_transport(authority, forge), lambda: now[0])
    assert resolve(res, "www.a.example.", "A")[0].security is S.BOGUS
    forging[0] = False
    now[0] += 61
    verdict, _ = resolve(res, "www.a.example.", "A")
    assert verdict.security is S.SECURE, verdict


# --- aggressive NSEC (RFC 8198) ------------------------------------------------------------


def aggressive(auth: Authority, on: bool) -> Resolver:
    return Resolver(config_for(auth), memory_transport(auth), lambda: NOW, aggressive_nsec=on)


@pytest.mark.parametrize("on", [True, False])
def test_nxdomain_synthesized_from_a_cached_nsec_span(authority: Authority, on: bool) -> None:
    """The root is NSEC-signed: nosuch1. and nosuch2. both fall in the insec. -> ns.root.
    span, and *. in the . -> example. span."""
    res = aggressive(authority, on)
    first = asyncio.run(res.resolve("nosuch1.", "A"))
    assert (first.rcode, first.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE)
    before = res.upstream_queries
    second = asyncio.run(res.resolve("nosuch2.", "MX"))
    assert (second.rcode, second.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE)
    if on:
        assert res.upstream_queries == before  # answered from the validated NSEC records
        assert "RFC 8198" in second.verdict.reason
        assert any(r.rdtype == T.NSEC for r in second.authority)
        assert any(r.rdtype == T.SOA for r in second.authority)
    else:
        assert res.upstream_queries > before  # off by default: asked upstream


def test_nodata_synthesized_from_a_matching_nsec(authority: Authority) -> None:
    res = aggressive(authority, True)
    assert resolve(res, "ns.root.", "TXT") == (resolve(res, "ns.root.", "TXT")[0], 0)
    before = res.upstream_queries
    r = asyncio.run(res.resolve("ns.root.", "MX"))
    assert (r.rcode, r.verdict.security, r.answer) == (dns.rcode.NOERROR, S.SECURE, ())
    assert res.upstream_queries == before
    # The type the NSEC lists is not denied: asked upstream, answered.
    a = asyncio.run(res.resolve("ns.root.", "A"))
    assert a.answer and a.verdict.security is S.SECURE


def test_no_synthesis_below_a_delegation(authority: Authority) -> None:
    """example0. is denied by the NSEC example. -> insec., which lies at a delegation: it
    says nothing about names below example. (RFC 4035 s5.4, RFC 8198 s5.1)."""
    res = aggressive(authority, True)
    assert resolve(res, "example0.", "A")[1] == dns.rcode.NXDOMAIN
    before = res.upstream_queries
    r = asyncio.run(res.resolve("zzz.example.", "A"))
    assert r.rcode == dns.rcode.NXDOMAIN  # from example.'s own servers (opt-out: insecure)
    assert res.upstream_queries > before
    assert "RFC 8198" not in r.verdict.reason
    # A delegation's own NSEC (NS, no SOA) does not deny other types there either.
    assert resolve(res, "insec.", "DS")[0].security is S.SECURE
    txt = asyncio.run(res.resolve("insec.", "TXT"))
    assert "RFC 8198" not in txt.verdict.reason


def test_no_synthesis_under_a_negative_trust_anchor(authority: Authority) -> None:
    """Below a negative trust anchor (RFC 7646 s2.1, domain-insecure) nothing is validated,
    so a secure denial synthesized from the parent's NSEC must not answer for it
    (Unbound's val_negcache_nta): nosuch2. is asked upstream."""
    config = config_for(authority)
    config = dataclasses.replace(
        config, anchors=config.anchors.with_negative(N("nosuch2."), NOW + 86400)
    )
    res = Resolver(config, memory_transport(authority), lambda: NOW, aggressive_nsec=True)
    assert resolve(res, "nosuch1.", "A") == (resolve(res, "nosuch1.", "A")[0], 3)
    before = res.upstream_queries
    r = asyncio.run(res.resolve("nosuch2.", "MX"))
    assert res.upstream_queries > before
    assert "RFC 8198" not in r.verdict.reason


def test_synthesized_answers_expire_with_the_nsec_ttl(authority: Authority) -> None:
    now = [NOW]
    res = Resolver(
        config_for(authority), memory_transport(authority), lambda: now[0], aggressive_nsec=True
    )
    resolve(res, "nosuch1.", "A")
    now[0] += 3601
    before = res.upstream_queries
    resolve(res, "nosuch3.", "A")
    assert res.upstream_queries > before


# --- memory -----------------------------------------------------------------------------


def _fill(res: Resolver, names: list[str]) -> None:
    async def go() -> None:
        for n in names:
            await res.resolve(n, "MX")

    asyncio.run(go())


def test_cache_memory_per_name_is_about_a_kilobyte(
    hierarchy_no_optout: dict[str, SignedZone],
) -> None:
    """Measured with tracemalloc over 300 wildcard names (each result carries an MX, its
    RRSIG and the NSEC3 proof, ~340 octets of wire)."""
    auth = Authority(list(hierarchy_no_optout.values()))
    res = Resolver(config_for(auth), memory_transport(auth), lambda: NOW)
    _fill(res, [f"warm{i}.z.w.example." for i in range(10)])
    auth.queries = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        entries = len(res.results) + len(res.cache) + len(res.rrsets)
        payload = res.results.bytes + res.cache.bytes + res.rrsets.bytes
        _fill(res, [f"n{i}.z.w.example." for i in range(300)])
        auth.queries = []  # the test authority's log is not the resolver's memory
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    added = len(res.results) + len(res.cache) + len(res.rrsets) - entries
    # One result per name; the final replies are not kept twice, and an MX answer brings
    # no RRset the RRset cache keeps (CNAME, SOA, NSEC).
    assert added == 300
    per_entry = grown / added
    accounted = (res.results.bytes + res.cache.bytes + res.rrsets.bytes - payload) / added
    assert per_entry < 1400, per_entry
    # The account the bound is enforced with does not undercount what was measured.
    assert accounted >= per_entry * 0.9, (accounted, per_entry)
    assert accounted <= ENTRY_OVERHEAD + 400
    assert grown / added - (accounted - ENTRY_OVERHEAD) < 1024  # overhead under 1 KB


def test_the_caches_stay_within_their_byte_bound(
    hierarchy_no_optout: dict[str, SignedZone],
) -> None:
    auth = Authority(list(hierarchy_no_optout.values()))
    res = Resolver(config_for(auth), memory_transport(auth), lambda: NOW, cache_bytes=200_000)
    _fill(res, [f"n{i}.z.w.example." for i in range(400)])
    assert res.results.bytes <= 100_000 and res.cache.bytes <= 100_000
    assert res.results.evicted > 0
    assert len(res.results) < 400
    # Least recently used go first: the last names are still there, the first are not.
    assert res.results.get((N("n399.z.w.example."), int(T.MX)), NOW) is not None
    assert res.results.get((N("n0.z.w.example."), int(T.MX)), NOW) is None


def test_cache_accounting_follows_puts_and_drops() -> None:
    c = Cache(max_bytes=3 * (ENTRY_OVERHEAD + 10))
    for i in range(5):
        c.put(i, b"x" * 10, 60, NOW)
    assert len(c) == 3 and c.bytes == 3 * (ENTRY_OVERHEAD + 10)
    c.put(4, b"y" * 10, 60, NOW)  # replacing an entry does not count it twice
    assert c.bytes == 3 * (ENTRY_OVERHEAD + 10)
    c.drop(4)
    assert c.bytes == 2 * (ENTRY_OVERHEAD + 10)
    assert c.get(3, NOW + 60) is None and c.bytes == ENTRY_OVERHEAD + 10


def test_glue_from_outside_the_referring_zone_is_not_trusted(authority: Authority) -> None:
    """example.'s servers refer a.example. to ns.evil. with "glue" for it: example. cannot
    vouch for evil.'s addresses, so the address is never asked (and never cached)."""
    evil = ("192.0.2.66", 53)
    asked: list[tuple[str, int]] = []

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        # The referral to a.example. (or, from this one-address authority, its NS answer).
        section = reply.answer or reply.authority
        a_ns = [r for r in section if r.rdtype == T.NS and r.name == N("a.example.")]
        if a_ns:
            a_ns[0].clear()
            a_ns[0].add(dns.rdata.from_text("IN", "NS", "ns.evil."))
            reply.additional = [dns.rrset.from_text("ns.evil.", 300, "IN", "A", evil[0])]
        return reply

    inner = forging_transport(authority, forge)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        asked.append(server)
        return await inner(server, wire, tcp)

    res = Resolver(config_for(authority), transport, lambda: NOW)
    asyncio.run(res.resolve("www.a.example.", "A"))
    assert evil not in asked


# --- the DS of a referral ----------------------------------------------------------------


def _split_authority(
    fake_sig: bool = False, root: str | None = None, own_ns1: str = "127.0.0.1"
) -> tuple[Authority, Authority]:
    """root and example. at 127.0.0.1, a.example. alone at 127.0.0.2 (its glue), so
    example.'s servers send a real referral, with a.example.'s signed DS.  ``root``: the
    root zone's text; ``own_ns1``: the address a.example. itself gives ns1.a.example."""
    from .conftest import A_EXAMPLE, EXAMPLE, ROOT
    from .zonebuild import Nsec3Params, make_key

    a = sign_zone(A_EXAMPLE.replace("ns1 A 127.0.0.1", f"ns1 A {own_ns1}"), "a.example")
    ds_a = "\n".join(f"a DS {d.to_text()}" for d in a.ds())
    example = sign_zone(
        EXAMPLE.replace("ns1.a A 127.0.0.1", "ns1.a A 127.0.0.2") + ds_a,
        "example",
        keys=[make_key(True), make_key(False)],
        nsec3=Nsec3Params(bytes.fromhex("aabbccdd"), 12, True),
    )
    ds_ex = "\n".join(f"example. DS {d.to_text()}" for d in example.ds())
    signed_root = sign_zone((ROOT if root is None else root) + ds_ex, ".")
    return Authority([signed_root, example]), Authority([a])


def _split_transport(parents: Authority, child: Authority, forge: bool = False) -> object:
    async def exchange(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        auth = child if server[0] == "127.0.0.2" else parents
        r = auth.answer(q.question[0].name, q.question[0].rdtype)
        r.id = q.id
        if forge:  # the parent's DS signature broken, in referrals and in DS answers
            for rrset in [*r.authority, *r.answer]:
                if rrset.rdtype == T.RRSIG and rrset.covers == T.DS:
                    sig = rrset[0]
                    bad = sig.replace(signature=bytes(len(sig.signature)))
                    rrset.clear()
                    rrset.add(bad)
        return r.to_wire(max_size=65535)

    return exchange


def test_the_ds_of_a_referral_is_used_not_asked_again() -> None:
    parents, child = _split_authority()
    config = config_for(parents)
    res = Resolver(config, _split_transport(parents, child), lambda: NOW)  # type: ignore[arg-type]
    verdict, rcode = resolve(res, "www.a.example.", "A")
    assert (verdict.security, rcode) == (S.SECURE, dns.rcode.NOERROR), verdict
    assert ("a.example.", "A") in parents.queries  # the referral came from example.
    assert ("a.example.", "DS") not in parents.queries  # its DS was in it


def test_a_referral_with_a_broken_ds_signature_is_bogus() -> None:
    """A broken DS signature in the referral makes the walk ask the parent itself (the
    referral is used once); broken there too, the answer is bogus."""
    parents, child = _split_authority()
    res = Resolver(
        config_for(parents),
        _split_transport(parents, child, forge=True),  # type: ignore[arg-type]
        lambda: NOW,
    )
    assert resolve(res, "www.a.example.", "A")[0].security is S.BOGUS


def test_servers_that_answer_for_the_child_are_kept_without_ns_lookups(
    authority: Authority,
) -> None:
    """example.'s server answers for a.example. itself, with authority (it serves both, like
    one named for a whole tree): asked the minimised a.example. A, it answers with
    a.example.'s SOA (the apex), so the cut is learnt with the same server, which is asked
    for the child's names directly, not after looking the child's NS names up."""
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    assert resolve(res, "www.a.example.", "A")[0].security is S.SECURE
    assert ("a.example.", "A") in authority.queries  # the minimised question: SOA a.example.
    assert not any(name.startswith("ns1.") for name, _ in authority.queries)
    assert res.config.delegations is not None
    hit = res.config.delegations.closest(N("www.a.example."), NOW)
    assert hit is not None and hit[0] == N("a.example.")


# --- DNAME synthesis from the cache (RFC 6672 s3.2) ----------------------------------------


def test_a_cached_dname_synthesizes_names_below_its_owner(authority: Authority) -> None:
    """A validated DNAME (old.example. -> a.example.) answers every later name below its
    owner without asking example.'s servers: the DNAME, the synthesized CNAME (TTL of the
    DNAME, counted down) and the target's own resolution (Unbound's iter_dname_ttl)."""
    now = [NOW]
    res = Resolver(config_for(authority), memory_transport(authority), lambda: now[0])
    first = asyncio.run(res.resolve("www.old.example.", "A"))
    assert first.verdict.security is S.SECURE
    now[0] += 10
    before = len(authority.queries)
    r = asyncio.run(res.resolve("nope.old.example.", "A"))
    asked = authority.queries[before:]
    assert ("nope.old.example.", "A") not in asked and ("nope.a.example.", "A") in asked
    assert (r.rcode, r.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE), r.verdict
    dname, cname = r.answer[0], next(x for x in r.answer if x.rdtype == T.CNAME)
    assert dname.rdtype == T.DNAME and dname.ttl == first.answer[0].ttl - 10
    assert cname[0].target == N("nope.a.example.") and cname.ttl == dname.ttl
    before = len(authority.queries)
    r = asyncio.run(res.resolve("x.y.old.example.", "CNAME"))
    assert authority.queries[before:] == []
    assert [x.rdtype for x in r.answer if x.rdtype != T.RRSIG] == [T.DNAME, T.CNAME]
    assert r.answer[-1][0].target == N("x.y.a.example.") and r.verdict.security is S.SECURE


def test_a_dname_from_a_bogus_answer_synthesizes_nothing(authority: Authority) -> None:
    """A DNAME whose answer did not validate is not kept: the next name below its owner is
    asked of the servers again (and judged on its own)."""
    old = N("old.example.")

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        for r in reply.answer:
            if r.rdtype == T.RRSIG and r.covers == T.DNAME and r.name == old:
                sig = r[0]
                r.clear()
                r.add(sig.replace(signature=bytes(len(sig.signature))))
        return reply

    res = Resolver(config_for(authority), forging_transport(authority, forge), lambda: NOW)
    assert asyncio.run(res.resolve("www.old.example.", "A")).verdict.security is S.BOGUS
    before = len(authority.queries)
    assert asyncio.run(res.resolve("nope.old.example.", "A")).verdict.security is S.BOGUS
    assert ("nope.old.example.", "A") in authority.queries[before:]


def test_an_unvalidated_dname_synthesizes_nothing(authority: Authority) -> None:
    """iter_dname_insec: only a validated DNAME is synthesized from (Unbound: "normally, only
    secure DNAMEs allowed from cache"); one no trust anchor covers is passed on with its
    answer but the next name below its owner is asked of the servers again (the zone may
    have changed below the owner since, RFC 6672 s3.4)."""
    res = Resolver(
        config_for(authority, anchors=AnchorSet(())), memory_transport(authority), lambda: NOW
    )
    first = asyncio.run(res.resolve("www.old.example.", "A"))
    assert first.verdict.security is S.INDETERMINATE
    assert any(x.rdtype == T.DNAME for x in first.answer)
    before = len(authority.queries)
    r = asyncio.run(res.resolve("nope.old.example.", "A"))
    assert ("nope.old.example.", "A") in authority.queries[before:]
    assert any(x.rdtype == T.DNAME for x in r.answer)


def test_a_name_servers_address_from_earlier_glue_needs_no_lookup() -> None:
    """insec. is delegated to ns1.a.example. without glue (the root cannot vouch for it);
    its address came as glue with example.'s referral to a.example. an earlier query
    followed, so it is used, not looked up again (Unbound answers it from its RRset
    cache: val_cnameqtype, val_dnameqtype)."""
    from .conftest import ROOT

    moved = ROOT.replace(
        "insec. NS ns.insec.\nns.insec. A 127.0.0.1\n", "insec. NS ns1.a.example.\n"
    )
    assert moved != ROOT
    parents, child = _split_authority(root=moved, own_ns1="127.0.0.2")
    child = Authority([child.zones[N("a.example.")], sign_zone(INSEC, "insec", unsigned=True)])
    res = Resolver(config_for(parents), _split_transport(parents, child), lambda: NOW)  # type: ignore[arg-type]
    assert resolve(res, "www.a.example.", "A")[0].security is S.SECURE
    verdict, rcode = resolve(res, "www.insec.", "A")
    assert (verdict.security, rcode) == (S.INSECURE, dns.rcode.NOERROR), verdict
    assert ("www.insec.", "A") in child.queries
    assert ("ns1.a.example.", "A") not in child.queries + parents.queries


def _insec_behind(ns_lines: str, own_ns1: str, dead: set[str]) -> tuple[Resolver, Authority]:
    """root delegates insec. with ``ns_lines``; a.example. (glue 127.0.0.2) gives its
    ns1 the address ``own_ns1``; insec. is served at 127.0.0.2; ``dead`` servers answer
    SERVFAIL."""
    from .conftest import ROOT

    moved = ROOT.replace("insec. NS ns.insec.\nns.insec. A 127.0.0.1\n", ns_lines)
    assert moved != ROOT
    parents, child = _split_authority(root=moved, own_ns1=own_ns1)
    child = Authority([child.zones[N("a.example.")], sign_zone(INSEC, "insec", unsigned=True)])
    inner = _split_transport(parents, child)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        if server[0] in dead:
            q = dns.message.from_wire(wire)
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.SERVFAIL)
            return r.to_wire()
        return await inner(server, wire, tcp)  # type: ignore[operator,no-any-return]

    return Resolver(config_for(parents), transport, lambda: NOW), child


def test_the_parents_glue_is_the_fallback_for_a_wrong_child_address() -> None:
    """ns1.a.example. serves insec.; the parent's glue for it is right (127.0.0.2), the
    child's own A record names a dead address: after it fails, the glue is asked
    (Unbound's iter_pcdiff)."""
    res, child = _insec_behind("insec. NS ns1.a.example.\n", "127.0.0.7", {"127.0.0.7"})
    verdict, rcode = resolve(res, "www.insec.", "A")
    assert (verdict.security, rcode) == (S.INSECURE, dns.rcode.NOERROR), verdict
    assert ("www.insec.", "A") in child.queries


def test_a_name_server_without_glue_is_tried_when_the_glued_ones_fail() -> None:
    """insec. has two NS names: ns.insec. with glue (a server that fails) and ns1.a.example.
    without: when the glued one fails, the other is looked up and asked, and later queries
    use it too (Unbound's iter_pcname)."""
    ns = "insec. NS ns.insec.\ninsec. NS ns1.a.example.\nns.insec. A 127.0.0.9\n"
    res, child = _insec_behind(ns, "127.0.0.2", {"127.0.0.9"})
    for name in ("www.insec.", "ns.insec."):
        verdict, rcode = resolve(res, name, "A")
        assert verdict.security is S.INSECURE and rcode != dns.rcode.SERVFAIL, (name, verdict)
        assert (name, "A") in child.queries
