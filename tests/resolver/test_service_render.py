"""The service's byte renderer for plain queries against dnspython's: the same response
(header, question, sections, EDNS) for answers, denials, wildcards, delegations to unsigned
zones, bogus data under CD, with and without EDNS/DO/AD/RD, aged TTLs and mixed case; and
it stands aside (general path) where dnspython must compress, truncate or carry an EDE."""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import dns.rcode
import pytest

from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.service import ResolverService, build_response, plain_query, render_plain

from .authority import Authority, config_for, memory_transport
from .zonebuild import EXPIRATION, NOW

QUESTIONS = [
    ("www.a.example.", "A"),
    ("WwW.A.eXample.", "A"),
    ("www.a.example.", "TXT"),  # NODATA, NSEC3-signed parent? (a.example is NSEC)
    ("nope.a.example.", "A"),  # NXDOMAIN
    ("nope.", "A"),  # NXDOMAIN, NSEC root
    ("ai.example.", "AAAA"),
    ("x.w.example.", "MX"),  # wildcard expansion
    ("example.", "MX"),
    ("mc.c.example.", "MX"),  # insecure delegation
    ("www.insec.", "A"),
    ("a.example.", "NS"),
    ("example.", "DNSKEY"),
]


def _queries(name: str, rdtype: str) -> list[dns.message.Message]:
    out = []
    for edns, do, ad, cd, rd in [
        (-1, False, False, False, True),
        (0, False, False, False, True),
        (0, True, False, False, True),
        (0, False, True, False, True),
        (0, True, False, True, True),
        (0, True, False, False, False),
    ]:
        q = dns.message.make_query(name, rdtype, use_edns=edns, want_dnssec=do)
        if ad:
            q.flags |= dns.flags.AD
        if cd:
            q.flags |= dns.flags.CD
        if not rd:
            q.flags &= ~dns.flags.RD
        out.append(q)
    return out


def _same(fast: bytes, slow: bytes) -> None:
    a, b = dns.message.from_wire(fast), dns.message.from_wire(slow)
    assert a == b  # id, flags, every section's RRsets
    assert a.rcode() == b.rcode()
    assert (
        fast[12 : 12 + len(a.question[0].name.to_wire()) + 4]
        == slow[12 : 12 + len(b.question[0].name.to_wire()) + 4]
    )
    assert (a.edns, a.ednsflags, a.payload, a.options) == (
        b.edns,
        b.ednsflags,
        b.payload,
        b.options,
    )
    for sa, sb in zip(a.sections, b.sections, strict=True):
        assert [
            (r.name.to_text(), r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in sa
        ] == [(r.name.to_text(), r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in sb]


@pytest.mark.parametrize("when", [NOW, EXPIRATION + 3600])
def test_plain_rendering_matches_dnspython(authority: Authority, when: int) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: when)
    rendered = 0
    for name, rdtype in QUESTIONS:
        for query in _queries(name, rdtype):
            wire = query.to_wire()
            plain = plain_query(wire)
            assert plain is not None
            result, _ = asyncio.run(res.resolve_aged(plain.qname, plain.qtype))
            for age in (0, 100, 10**6):
                for tcp in (False, True):
                    fast = render_plain(wire, plain, result, age, tcp)
                    slow_msg = build_response(query, result, age)
                    limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
                    try:
                        slow = slow_msg.to_wire(max_size=limit)
                    except dns.exception.TooBig:
                        assert fast is None
                        continue
                    if fast is None:
                        # only where the general path has something to add or must compress
                        assert (
                            result.verdict.ede is not None
                            or slow_msg.rcode() == dns.rcode.SERVFAIL
                            or len(slow) > 400
                        ), (name, rdtype, result.verdict)
                        continue
                    rendered += 1
                    _same(fast, slow)
    assert rendered > 100 or when != NOW  # (everything is bogus, with an EDE, later)


def test_queries_with_options_or_any_take_the_general_path() -> None:
    q = dns.message.make_query(
        "www.a.example.", "A", use_edns=0, options=[dns.edns.GenericOption(65001, b"x")]
    )
    assert plain_query(q.to_wire()) is None
    assert plain_query(dns.message.make_query("www.a.example.", "ANY").to_wire()) is None
    padded = dns.message.make_query("www.a.example.", "A", use_edns=0, pad=128)
    assert plain_query(padded.to_wire()) is None
    assert plain_query(dns.message.make_query("www.a.example.", "A").to_wire()) is not None


def test_service_answers_plain_and_general_queries_alike(authority: Authority) -> None:
    """Through ResolverService.handle: a plain query (byte path) and the same question with
    an unknown EDNS option (dnspython's path) get the same answer."""
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    service = ResolverService(res)
    plain = dns.message.make_query("x.w.example.", "MX", want_dnssec=True)
    other = dns.message.make_query(
        "x.w.example.", "MX", want_dnssec=True, options=[dns.edns.GenericOption(65001, b"")]
    )
    other.id = plain.id
    a = asyncio.run(service.handle(plain.to_wire(), False))
    b = asyncio.run(service.handle(other.to_wire(), False))
    assert a is not None and b is not None
    ma, mb = dns.message.from_wire(a), dns.message.from_wire(b)
    assert ma == mb and ma.flags & dns.flags.AD
    assert (
        service.metrics.validation[res.cached(plain.question[0].name, 15, NOW)[0].verdict.security]
        == 2
    )
