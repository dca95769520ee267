"""Validated DNSKEY sets are shared between queries, and only while they stay the same."""

from __future__ import annotations

import asyncio

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

from dnsseal.resolver.engine import Resolver
from dnsseal.validator import verdict as v
from dnsseal.validator.machine import Need, Query
from dnsseal.validator.trustcache import TrustCache

from .authority import Authority, config_for, drive, memory_transport
from .zonebuild import NOW, make_key


def test_second_query_reuses_trusted_keys(authority: Authority) -> None:
    cache = TrustCache()
    config = config_for(authority, trust_cache=cache)
    first = drive(Query("www.a.example.", "A", config, NOW), authority)
    second = drive(Query("nope.a.example.", "A", config, NOW), authority)
    assert first.verdict.security is second.verdict.security is v.Security.SECURE
    assert cache.hits == 3  # ., example., a.example.
    # Only the DS records and the answer's proof are checked again.
    assert second.spent["signature_verifications"] < first.spent["signature_verifications"]
    assert any("validated earlier" in link.text for link in second.links)


def test_changed_dnskey_set_misses_and_is_checked(authority: Authority) -> None:
    cache = TrustCache()
    config = config_for(authority, trust_cache=cache)
    drive(Query("www.a.example.", "A", config, NOW), authority)
    intruder = make_key()

    def add_key(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.rdtype == dns.rdatatype.DNSKEY and need.qname == dns.name.from_text("a.example."):
            rrset = reply.answer[0]
            reply.answer[0] = dns.rrset.from_rdata_list(
                rrset.name, rrset.ttl, [*rrset, intruder.dnskey]
            )
        return reply

    r = drive(Query("www.a.example.", "A", config, NOW), authority, add_key)
    assert r.verdict.security is v.Security.BOGUS  # the changed set's signature fails
    assert cache.hits == 2  # the root and example. keys were still reused


def test_entries_expire_with_ttl(authority: Authority) -> None:
    now = [NOW]
    res = Resolver(config_for(authority), memory_transport(authority), lambda: now[0])
    asyncio.run(res.resolve("www.a.example.", "A"))
    cache = res.config.trust_cache
    assert cache is not None
    now[0] += 3600 + 1  # DNSKEY TTL is 3600
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert r.verdict.security is v.Security.SECURE
    assert cache.hits == 0
