"""NXNSAttack (CVE-2020-12662): a delegation to many NS names without glue must not make one
client question send unbounded queries.  The resolver looks the names up one at a time (A,
then AAAA) and stops after :data:`MAX_TARGET_NX` names that fail both, after
:data:`MAX_DP_TARGET_COUNT` lookups for one zone and :data:`MAX_TARGET_COUNT` in all, as
Unbound does (iterator.h); the names it did not try are kept with the delegation and tried by
the next question in the zone (Unbound's iter_nxns_cached scenario).

The upstream servers are an injected transport that counts what is sent; the clock is fixed.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.resolver.engine import Resolver
from dnsseal.validator import iterator
from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.iterator import MAX_DP_TARGET_COUNT, MAX_TARGET_NX, Config

NOW = 1_800_000_000
PARENT = ("127.0.0.2", 53)  # serves attack.example., delegates victim.attack.example.
TARGETS = ("127.0.0.3", 53)  # serves nx.example., where the NS names (do not) live
GOOD = ("127.0.0.4", 53)  # a server of victim.attack.example. that answers
VICTIM = dns.name.from_text("victim.attack.example.")
NAMES = 50


class Upstream:
    """The attacker's parent zone (a referral to ``NAMES`` NS names without glue) and the
    zone of those names (NXDOMAIN for all, or NODATA with ``nodata``); counts queries."""

    def __init__(self, nodata: bool = False) -> None:
        self.nodata = nodata
        self.fixed = False  # the parent delegates to GOOD, with glue, instead
        self.sent: list[tuple[tuple[str, int], str, str]] = []

    async def __call__(self, server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        self.sent.append((server, q.name.to_text(), dns.rdatatype.to_text(q.rdtype)))
        reply = dns.message.make_response(query)
        reply.flags &= ~dns.flags.RA
        if server == GOOD:
            reply.flags |= dns.flags.AA
            reply.answer.append(dns.rrset.from_text(q.name, 300, "IN", "A", "192.0.2.1"))
            return reply.to_wire()
        if server == PARENT and q.name.is_subdomain(VICTIM) and self.fixed:
            glue = dns.name.from_text("ns.victim.attack.example.")
            reply.authority.append(dns.rrset.from_text(VICTIM, 3600, "IN", "NS", glue.to_text()))
            reply.additional.append(dns.rrset.from_text(glue, 3600, "IN", "A", GOOD[0]))
            return reply.to_wire()
        if server == PARENT and q.name.is_subdomain(VICTIM):
            ns = dns.rrset.from_text_list(
                VICTIM, 3600, "IN", "NS", [f"ns{i}.nx.example." for i in range(1, NAMES + 1)]
            )
            reply.authority.append(ns)
            return reply.to_wire()
        if server == TARGETS:
            reply.flags |= dns.flags.AA
            if not self.nodata:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(
                dns.rrset.from_text(
                    "nx.example.", 300, "IN", "SOA", "ns.nx.example. h. 1 3600 300 86400 300"
                )
            )
            return reply.to_wire()
        raise OSError(f"unexpected query to {server}")

    def lookups(self) -> list[tuple[str, str]]:
        return [(name, t) for server, name, t in self.sent if server == TARGETS]

    def to_parent(self) -> int:
        return sum(server == PARENT for server, _, _ in self.sent)


def _resolver(upstream: Upstream) -> Resolver:
    config = Config(
        root_servers=(("127.0.0.9", 53),),
        anchors=AnchorSet(),
        minimise=False,
        stubs=(
            (dns.name.from_text("attack.example."), (PARENT,)),
            (dns.name.from_text("nx.example."), (TARGETS,)),
        ),
    )
    return Resolver(config, transport=upstream, clock_fn=lambda: NOW)


def _ask(resolver: Resolver, name: str) -> int:
    return asyncio.run(resolver.resolve(name, "A")).rcode


def test_fifty_names_that_do_not_exist_cost_six_lookups_of_each_type() -> None:
    upstream = Upstream()
    assert _ask(_resolver(upstream), "www.victim.attack.example.") == dns.rcode.SERVFAIL
    lookups = upstream.lookups()
    # MAX_TARGET_NX + 1 names, A and AAAA each (Unbound: steps 2-13 of iter_nxns_cached),
    # then no more: 13 queries in all, not 101.
    tried = list(dict.fromkeys(name for name, _ in lookups))
    assert len(tried) == MAX_TARGET_NX + 1
    assert lookups == [(n, t) for n in tried for t in ("A", "AAAA")]
    assert upstream.to_parent() == 1
    assert len(upstream.sent) == 1 + 2 * (MAX_TARGET_NX + 1)


def test_the_next_question_tries_the_names_not_tried_before_asking_the_parent() -> None:
    upstream = Upstream()
    resolver = _resolver(upstream)
    assert _ask(resolver, "www.victim.attack.example.") == dns.rcode.SERVFAIL
    first = set(upstream.lookups())
    upstream.sent.clear()
    assert _ask(resolver, "mail.victim.attack.example.") == dns.rcode.SERVFAIL
    second = upstream.lookups()
    # The kept delegation: six other names, bounded again; then the parent once more (its
    # referral is the same: no more lookups).
    assert len(second) == 2 * (MAX_TARGET_NX + 1)
    assert upstream.sent[-1][0] == PARENT and upstream.to_parent() == 1
    assert not {name for name, _ in first} & {name for name, _ in second}


def test_names_without_addresses_are_bounded_per_zone() -> None:
    # NODATA is no failure (Unbound counts only failed lookups as NX): the bound per zone
    # stops these.
    upstream = Upstream(nodata=True)
    assert _ask(_resolver(upstream), "www.victim.attack.example.") == dns.rcode.SERVFAIL
    assert len(upstream.lookups()) == MAX_DP_TARGET_COUNT
    assert len(upstream.sent) == 1 + MAX_DP_TARGET_COUNT


def test_without_the_bounds_every_name_would_be_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the tests above guard against: with the bounds lifted, the same delegation costs
    # both lookups of all fifty names for one client question.
    monkeypatch.setattr(iterator, "MAX_TARGET_NX", 10_000)
    monkeypatch.setattr(iterator, "MAX_TARGET_COUNT", 10_000)
    monkeypatch.setattr(iterator, "MAX_DP_TARGET_COUNT", 10_000)
    upstream = Upstream()
    assert _ask(_resolver(upstream), "www.victim.attack.example.") == dns.rcode.SERVFAIL
    assert Counter(t for _, t in upstream.lookups()) == {"A": NAMES, "AAAA": NAMES}


def test_a_kept_delegation_whose_names_fail_does_not_hide_the_parent_s_new_one() -> None:
    # The names kept from the first question fail too; the parent, asked again, now
    # delegates to a server with glue that answers.
    upstream = Upstream()
    resolver = _resolver(upstream)
    assert _ask(resolver, "www.victim.attack.example.") == dns.rcode.SERVFAIL
    upstream.fixed = True
    upstream.sent.clear()
    assert _ask(resolver, "mail.victim.attack.example.") == dns.rcode.NOERROR
    assert len(upstream.lookups()) == 2 * (MAX_TARGET_NX + 1)  # the kept names, bounded
    assert upstream.to_parent() == 1
