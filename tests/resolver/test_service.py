"""The resolver driver (TCP fallback, TTL cache, pinned clock) and the recursive service
(AD, SERVFAIL + EDE, CD, DO) over an in-memory transport; clients use real sockets."""

from __future__ import annotations

import asyncio

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.service import ResolverService
from dnsseal.validator import verdict as v

from .authority import Authority, config_for, memory_transport
from .zonebuild import EXPIRATION, NOW


def test_truncated_udp_falls_back_to_tcp(authority: Authority) -> None:
    log: list[bool] = []
    res = Resolver(config_for(authority), memory_transport(authority, True, log), lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert r.verdict.security is v.Security.SECURE
    assert log[:2] == [False, True]
    assert log.count(True) == log.count(False)


def test_cache_honours_ttl_with_pinned_clock(authority: Authority) -> None:
    now = [NOW]
    res = Resolver(config_for(authority), memory_transport(authority), lambda: now[0])
    asyncio.run(res.resolve("www.a.example.", "A"))
    first = len(authority.queries)
    assert first > 0
    asyncio.run(res.resolve("www.a.example.", "A"))
    asyncio.run(res.resolve("a.example.", "DS"))  # cut/keys already cached
    cached = len(authority.queries) - first
    assert cached <= 1
    now[0] += 4000  # past every TTL (3600 at most)
    asyncio.run(res.resolve("www.a.example.", "A"))
    assert len(authority.queries) - first - cached >= first


async def _serve_and_ask(
    res: Resolver, queries: list[tuple[dns.message.Message, bool]]
) -> list[dns.message.Message]:
    service = ResolverService(res)
    _, port = await service.start("127.0.0.1", 0)
    try:
        out = []
        for q, tcp in queries:
            if tcp:
                out.append(await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=5))
            else:
                out.append(await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=5))
        return out
    finally:
        await service.close()


def _ede(msg: dns.message.Message) -> list[int]:
    return [int(o.code) for o in msg.options if isinstance(o, dns.edns.EDEOption)]


def test_service_sets_ad_and_honours_do(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    do = dns.message.make_query("www.a.example.", "A", want_dnssec=True)
    plain = dns.message.make_query("www.a.example.", "A", use_edns=0)
    nx = dns.message.make_query("nope.", "A", want_dnssec=True)  # NSEC-signed root
    r_do, r_plain, r_tcp, r_nx = asyncio.run(
        _serve_and_ask(res, [(do, False), (plain, False), (do, True), (nx, False)])
    )
    assert r_do.flags & dns.flags.AD and r_do.flags & dns.flags.RA
    assert any(x.rdtype == dns.rdatatype.RRSIG for x in r_do.answer)
    assert not r_plain.flags & dns.flags.AD
    assert [x.rdtype for x in r_plain.answer] == [dns.rdatatype.A]
    assert r_tcp.flags & dns.flags.AD
    assert r_nx.rcode() == dns.rcode.NXDOMAIN and r_nx.flags & dns.flags.AD
    assert any(x.rdtype == dns.rdatatype.NSEC for x in r_nx.authority)


def test_service_servfails_bogus_with_ede_unless_cd(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: EXPIRATION + 3600)
    q = dns.message.make_query("www.a.example.", "A", want_dnssec=True)
    cd = dns.message.make_query("www.a.example.", "A", want_dnssec=True)
    cd.flags |= dns.flags.CD
    bogus, checking_disabled = asyncio.run(_serve_and_ask(res, [(q, False), (cd, False)]))
    assert bogus.rcode() == dns.rcode.SERVFAIL
    assert _ede(bogus) == [v.EDE_SIGNATURE_EXPIRED]
    assert checking_disabled.rcode() == dns.rcode.NOERROR
    assert not checking_disabled.flags & dns.flags.AD
    assert any(x.rdtype == dns.rdatatype.A for x in checking_disabled.answer)


def test_concurrent_identical_questions_share_one_resolution(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)

    async def many() -> list[v.Verdict]:
        results = await asyncio.gather(*(res.resolve("www.a.example.", "A") for _ in range(20)))
        return [r.verdict for r in results]

    verdicts = asyncio.run(many())
    assert {x.security for x in verdicts} == {v.Security.SECURE}
    alone = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    before = len(authority.queries)
    asyncio.run(alone.resolve("www.a.example.", "A"))
    assert res.upstream_queries == len(authority.queries) - before


def test_cached_answers_count_ttl_down(authority: Authority) -> None:
    now = [NOW]
    res = Resolver(config_for(authority), memory_transport(authority), lambda: now[0])
    q = dns.message.make_query("www.a.example.", "A", want_dnssec=True)
    (first,) = asyncio.run(_serve_and_ask(res, [(q, False)]))
    now[0] += 100
    (second,) = asyncio.run(_serve_and_ask(res, [(q, False)]))
    assert second.answer[0].ttl == first.answer[0].ttl - 100
    assert second.flags & dns.flags.AD


def test_clients_outside_the_allow_list_are_refused(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    service = ResolverService(res, allow=("192.0.2.0/24",))
    q = dns.message.make_query("www.a.example.", "A").to_wire()
    refused = dns.message.from_wire(asyncio.run(service.handle(q, False, "127.0.0.1")) or b"")
    assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
    ok = dns.message.from_wire(asyncio.run(service.handle(q, False, "192.0.2.7")) or b"")
    assert ok.rcode() == dns.rcode.NOERROR and ok.answer
    assert not ResolverService(res).allowed("192.0.2.7")  # default: loopback only
    assert ResolverService(res).allowed("::1")


def test_any_gets_the_rfc8482_answer(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    q = dns.message.make_query("www.a.example.", "ANY")
    (r,) = asyncio.run(_serve_and_ask(res, [(q, False)]))
    assert r.rcode() == dns.rcode.NOERROR
    assert [x.rdtype for x in r.answer] == [dns.rdatatype.HINFO]
    assert authority.queries == []  # nothing asked upstream


def _handle(res: Resolver, query: dns.message.Message) -> dns.message.Message:
    out = asyncio.run(ResolverService(res).handle(query.to_wire(), False))
    assert out is not None
    return dns.message.from_wire(out)


def test_a_non_recursive_query_gets_the_cache_or_a_referral(authority: Authority) -> None:
    """RFC 1034 s4.3.1: with RD clear the service does not resolve the name; it answers
    from the cache or refers to the closest servers it knows, as the validated NS RRset of
    their zone (Unbound's val_referd: NOERROR, AD, the NS RRset and its RRSIG)."""
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    asyncio.run(res.resolve("www.a.example.", "A"))
    q = dns.message.make_query("new.a.example.", "A", want_dnssec=True)
    q.flags &= ~dns.flags.RD
    before = len(authority.queries)
    reply = _handle(res, q)
    assert ("new.a.example.", "A") not in authority.queries[before:]
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert reply.flags & dns.flags.AD and not reply.flags & dns.flags.RD
    assert {(r.name.to_text(), r.rdtype) for r in reply.authority} == {
        ("a.example.", dns.rdatatype.NS),
        ("a.example.", dns.rdatatype.RRSIG),
    }
    # A cached answer is given as it is.
    q = dns.message.make_query("www.a.example.", "A", want_dnssec=True)
    q.flags &= ~dns.flags.RD
    reply = _handle(res, q)
    assert reply.answer and reply.answer[0].rdtype == dns.rdatatype.A
    assert reply.flags & dns.flags.AD
    # Nothing known below the root: the root's servers.
    q = dns.message.make_query("x.insec.", "A")
    q.flags &= ~dns.flags.RD
    reply = _handle(res, q)
    assert [(r.name.to_text(), r.rdtype) for r in reply.authority] == [(".", dns.rdatatype.NS)]
    assert ("x.insec.", "A") not in authority.queries
