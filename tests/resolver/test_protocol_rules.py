"""Protocol rules of the validating resolver (issue #20, point 5): CNAME below a DNAME,
aliases met during the DS walk, wildcard proofs for downstream validators, CD/DO/OPT in
responses, opt-out wildcards, lame delegations and referral loops, responses never answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import itertools
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from conftest import free_port, require_tool, run_tool, stop
from dnsseal.resolver.engine import (
    ATTEMPTS,
    DEMOTE_FOR,
    KIND_STRIKES,
    MAX_SENDS,
    STRIKES,
    Resolver,
)
from dnsseal.resolver.service import ResolverService
from dnsseal.resolver.transport import Transport, network_transport
from dnsseal.validator import verdict as v
from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.machine import Config, Need

from .authority import Authority, config_for, memory_transport, primed
from .test_failopen import Forger, forging_transport, run
from .zonebuild import NOW, SignedZone

S = v.Security
T = dns.rdatatype
N = dns.name.from_text


def ask(
    auth: Authority, query: dns.message.Message, forge: Forger | None = None
) -> dns.message.Message:
    transport = memory_transport(auth) if forge is None else forging_transport(auth, forge)
    res = Resolver(config_for(auth), transport, lambda: NOW)
    out = asyncio.run(ResolverService(res).handle(query.to_wire(), False))
    assert out is not None
    return dns.message.from_wire(out)


# --- aliases -------------------------------------------------------------------------


def test_cname_query_below_a_dname_is_the_synthesized_cname(authority: Authority) -> None:
    r = run(authority, "www.old.example.", "CNAME")
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    cname = [x for x in r.answer if x.rdtype == T.CNAME]
    assert [x.rdtype for x in r.answer if x.rdtype != T.RRSIG] == [T.DNAME, T.CNAME]
    assert cname[0][0].target == N("www.a.example.")
    # The chain is not followed for a CNAME query: nothing was asked of a.example.
    reply = ask(authority, dns.message.make_query("www.old.example.", "CNAME", want_dnssec=True))
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD


def _forged_under_alias(auth: Authority, alias_signed: bool) -> Forger:
    """DS alias.example. is answered with alias.example.'s CNAME (with or without its
    RRSIG); x.alias.example. A with forged data whose RRSIG names x.alias.example. as
    signer, so the walk must go through the alias."""
    example = auth.zones[N("example.")]
    alias, x = N("alias.example."), N("x.alias.example.")
    cname = example.rrset(alias, T.CNAME)
    sigs = example.zone.get_rdataset(alias, T.RRSIG, T.CNAME)
    assert cname is not None and sigs is not None
    sig = dns.rrset.RRset(alias, 1, T.RRSIG, T.CNAME)
    sig.update(sigs)
    fake = base64.b64encode(os.urandom(64)).decode()

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        out = dns.message.make_response(dns.message.make_query(need.qname, need.rdtype))
        out.flags |= dns.flags.AA
        if need.qname == alias and need.rdtype == T.DS:
            out.answer = [cname, sig] if alias_signed else [cname]
            return out
        if need.qname == x and need.rdtype == T.A:
            out.answer = [
                dns.rrset.from_text(x, 300, "IN", "A", "192.0.2.66"),
                dns.rrset.from_text(
                    x, 300, "IN", "RRSIG", f"A 13 3 300 20300101000000 20200101000000 1 {x} {fake}"
                ),
            ]
            return out
        return reply

    return forge


def test_signed_cname_in_reply_to_a_ds_query_lets_the_walk_go_on(
    hierarchy_no_optout: dict[str, SignedZone],
) -> None:
    """A CNAME answering DS at alias.example. proves no zone cut there once it verifies
    (Unbound's rule): the walk goes on to x.alias.example. instead of stopping at the
    parent; an unsigned one makes the chain bogus.  (Without opt-out: with it, the NXDOMAIN
    for x.alias.example. could hide an unsigned delegation and the answer is insecure.)"""
    authority = Authority(list(hierarchy_no_optout.values()))
    r = run(authority, "x.alias.example.", "A", _forged_under_alias(authority, True))
    assert r.verdict.security is S.BOGUS, r.verdict
    assert ("x.alias.example.", "DS") in authority.queries  # the walk went past the alias
    assert any(link.kind == "DS" and "CNAME at alias.example." in link.text for link in r.links), (
        r.links
    )
    r = run(authority, "x.alias.example.", "A", _forged_under_alias(authority, False))
    assert r.verdict.security is S.BOGUS, r.verdict
    assert "CNAME in reply to alias.example. DS" in r.verdict.reason, r.verdict


# --- what the service sends ------------------------------------------------------------


def test_cd_is_copied_do_echoed_and_payload_1232(authority: Authority) -> None:
    q = dns.message.make_query("www.a.example.", "A", want_dnssec=True, payload=4096)
    q.flags |= dns.flags.CD
    reply = ask(authority, q)
    assert reply.flags & dns.flags.CD  # RFC 4035 s3.2.2
    assert reply.ednsflags & dns.flags.DO  # RFC 3225 s3
    assert reply.payload == 1232
    plain = ask(authority, dns.message.make_query("www.a.example.", "A", use_edns=0))
    assert not plain.flags & dns.flags.CD and not plain.ednsflags & dns.flags.DO
    assert plain.payload == 1232
    noedns = ask(authority, dns.message.make_query("www.a.example.", "A", use_edns=False))
    assert noedns.edns < 0  # no OPT to a client that sent none
    nx = dns.message.make_query("nope.", "A", want_dnssec=True)
    nx.flags |= dns.flags.CD
    reply = ask(authority, nx)
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.flags & dns.flags.CD


def test_wildcard_answer_carries_its_proof_to_do_clients(
    hierarchy_no_optout: dict[str, SignedZone],
) -> None:
    auth = Authority(list(hierarchy_no_optout.values()))
    reply = ask(auth, dns.message.make_query("a.z.w.example.", "MX", want_dnssec=True))
    assert reply.flags & dns.flags.AD
    assert {x.rdtype for x in reply.authority} == {T.NSEC3, T.RRSIG}
    plain = ask(auth, dns.message.make_query("a.z.w.example.", "MX"))
    assert plain.answer and not plain.authority  # no DNSSEC records without DO


def test_wildcard_in_an_opt_out_span_gets_no_ad(authority: Authority) -> None:
    """RFC 5155 s9.2: the next closer name z.w.example. is covered by an opt-out NSEC3."""
    reply = ask(authority, dns.message.make_query("a.z.w.example.", "MX", want_dnssec=True))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert not reply.flags & dns.flags.AD


@pytest.mark.parametrize("how", ["recursive", "sideways", "upward"])
def test_lame_delegations_and_referral_loops_are_servfail_and_not_cached(
    authority: Authority, how: str
) -> None:
    """insec. is unsigned, so validation cannot catch these: a non-authoritative empty
    reply from a recursive server (RA set), a referral to the zone asked again, or a
    referral back up to the root (Unbound's REC_LAME and LAME)."""
    www = N("www.insec.")

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname != www or need.rdtype != T.A:
            return reply
        out = dns.message.make_response(dns.message.make_query(www, "A"))
        if how == "recursive":
            out.flags |= dns.flags.RA
        elif how == "sideways":
            out.authority = [dns.rrset.from_text("insec.", 300, "IN", "NS", "ns.insec.")]
            out.additional = [dns.rrset.from_text("ns.insec.", 300, "IN", "A", "127.0.0.1")]
        elif how == "upward":
            out.authority = [dns.rrset.from_text(".", 300, "IN", "NS", "ns.root.")]
        return out

    r = run(authority, "www.insec.", "A", forge)
    assert r.rcode == dns.rcode.SERVFAIL, (r.rcode, r.verdict)
    res = Resolver(config_for(authority), forging_transport(authority, forge), lambda: NOW)
    service = ResolverService(res)
    q = dns.message.make_query("www.insec.", "A").to_wire()
    for _ in range(2):
        out = asyncio.run(service.handle(q, False))
        assert out is not None and dns.message.from_wire(out).rcode() == dns.rcode.SERVFAIL
    assert len(res.results) == 0


def test_responses_are_never_answered(authority: Authority) -> None:
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    service = ResolverService(res)
    q = dns.message.make_query("www.a.example.", "A")
    response = dns.message.make_response(q).to_wire()
    assert asyncio.run(service.handle(response, False)) is None
    garbage = bytearray(os.urandom(40))
    garbage[2] |= 0x80  # QR=1, unparsable
    garbage[4:12] = b"\x00\x05\x00\x05\x00\x05\x00\x05"
    assert asyncio.run(service.handle(bytes(garbage), False)) is None
    garbage[2] &= 0x7F  # the same bytes as a query: FORMERR
    formerr = asyncio.run(service.handle(bytes(garbage), False))
    assert formerr is not None and dns.message.from_wire(formerr).rcode() == dns.rcode.FORMERR
    assert authority.queries == []


# --- the driver: dead servers, cache size ------------------------------------------------


def test_a_silent_server_goes_after_the_others(authority: Authority) -> None:
    """A root server that never answers, first in the list, is asked once; then, while
    another one answers, it goes after that one for DEMOTE_FOR seconds instead of costing
    a timeout on every question; after that it is asked first again, and once it answers
    it keeps its place.  (Its back-off when it is a zone's only server: the probe tests
    below.)"""
    dead = ("192.0.2.1", 53)
    asked: list[tuple[str, int]] = []
    alive = [False]
    inner = memory_transport(authority)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        asked.append(server)
        if server == dead and not alive[0]:
            raise TimeoutError("no answer")
        return await inner(server, wire, tcp)

    now = [NOW]
    config = dataclasses.replace(config_for(authority), root_servers=(dead, ("127.0.0.1", 53)))
    config = primed(config, NOW)  # both root servers, as a priming reply would name them
    res = Resolver(config, transport, lambda: now[0])
    assert asyncio.run(res.resolve("www.a.example.", "A")).verdict.security is S.SECURE
    first = asked.count(dead)
    assert first == 1  # asked first, silent: the other one answered, and from then on ...
    for i in range(STRIKES + 2):
        assert asyncio.run(res.resolve(f"nope{i}.", "A")).rcode == dns.rcode.NXDOMAIN
    assert asked.count(dead) == first  # ... it goes after the one that answers
    now[0] += DEMOTE_FOR
    asyncio.run(res.resolve("late1.", "A"))
    assert asked.count(dead) == first + 1  # forgotten: first in the list again, silent
    asyncio.run(res.resolve("late2.", "A"))
    assert asked.count(dead) == first + 1
    now[0] += DEMOTE_FOR
    alive[0] = True
    asyncio.run(res.resolve("late3.", "A"))
    asyncio.run(res.resolve("late4.", "A"))
    assert asked.count(dead) == first + 3  # it answers again: asked for every root question


def test_servers_that_just_missed_are_asked_after_the_others(authority: Authority) -> None:
    """A question goes to at most MAX_SERVERS_PER_NEED of a zone's servers; the ones that
    missed their last questions go after those that did not.  With thirteen root servers
    of which the first four in the hints are unreachable, the next question reaches the
    fifth instead of the same four again until they back off (Unbound's server selection
    by timeout does the same: a server that timed out has a larger retransmission
    timeout and is chosen after the others)."""
    dead = [(f"192.0.2.{i}", 53) for i in range(1, 5)]
    alive = ("127.0.0.1", 53)
    asked: list[tuple[str, int]] = []
    inner = memory_transport(authority)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        asked.append(server)
        if server in dead:
            raise TimeoutError("unreachable")
        return await inner(server, wire, tcp)

    config = dataclasses.replace(config_for(authority), root_servers=(*dead, alive))
    config = primed(dataclasses.replace(config, minimise=False), NOW)
    res = Resolver(config, transport, lambda: NOW)
    asyncio.run(res.resolve("nope1.", "A"))
    assert asked[:4] == dead  # the first four of the list, all silent
    before = len(asked)
    second = asyncio.run(res.resolve("nope2.", "A"))
    assert second.rcode == dns.rcode.NXDOMAIN, second.verdict
    assert asked[before:] == [alive]  # the one not known to be silent, first and only


def test_a_lost_reply_is_sent_again_and_does_not_silence_a_zone(authority: Authority) -> None:
    """A zone's only server that misses one question (a lost datagram) is asked it again
    at once (a retransmission, as Unbound's), and for the next questions: back-off starts
    only after STRIKES misses in a row (Unbound keeps asking until its RTO passes 12 s,
    about five losses)."""
    drop = [1]
    calls = [0]
    inner = memory_transport(authority)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        calls[0] += 1
        if drop[0]:
            drop[0] -= 1
            raise TimeoutError("lost")
        return await inner(server, wire, tcp)

    config = primed(config_for(authority, minimise=False), NOW)  # the lost one: not the prime
    res = Resolver(config, transport, lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert r.verdict.security is S.SECURE, r.verdict
    drop[0] = STRIKES - 1
    assert asyncio.run(res.resolve("www.a.example.", "MX")).rcode != dns.rcode.SERVFAIL


def test_a_silent_server_is_sent_a_question_at_most_attempts_times(authority: Authority) -> None:
    """Every server of a question silent: each is asked it again, at most ATTEMPTS times
    and MAX_SENDS in all, and no more once it backs off (STRIKES misses); then questions
    fail at once while every server backs off, for every kind of question."""
    calls: list[str] = []

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire).question[0]
        calls.append(f"{server[0]} {q.name} {dns.rdatatype.to_text(q.rdtype)}")
        raise TimeoutError("no answer")

    servers = (("127.0.0.1", 53), ("127.0.0.2", 53))
    config = primed(dataclasses.replace(config_for(authority), root_servers=servers), NOW)
    res = Resolver(dataclasses.replace(config, minimise=False), transport, lambda: NOW)
    assert asyncio.run(res.resolve("www0.a.example.", "A")).rcode == dns.rcode.SERVFAIL
    for server in servers:
        sent = calls.count(f"{server[0]} www0.a.example. A")
        assert 2 <= sent <= ATTEMPTS, calls
    assert sum(c.endswith(" www0.a.example. A") for c in calls) <= MAX_SENDS
    assert len(calls) <= 2 * len(servers) * ATTEMPTS
    before = len(calls)
    assert asyncio.run(res.resolve("www1.a.example.", "A")).rcode == dns.rcode.SERVFAIL
    assert len(calls) == before  # every server backs off for type A: failed at once
    for rdtype in ("AAAA", "TXT"):  # the other kinds: KIND_STRIKES misses each, at most
        for i in range(KIND_STRIKES + 1):
            asyncio.run(res.resolve(f"q{i}.", rdtype))
        assert len(calls) - before <= len(servers) * KIND_STRIKES, calls[before:]
        before = len(calls)
        assert asyncio.run(res.resolve("last.", rdtype)).rcode == dns.rcode.SERVFAIL
        assert len(calls) == before


def test_a_server_that_drops_aaaa_queries_still_answers_a(authority: Authority) -> None:
    """The back-off is kept per kind of question (A, AAAA, other: Unbound's timeout_A,
    timeout_AAAA, timeout_other; its iter_timeout_ra_aaaa): a zone's only server that never
    answers AAAA queries is skipped for them, and still asked A."""
    inner = memory_transport(authority)
    www = dns.name.from_text("www.a.example.")

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire).question[0]
        if q.rdtype == T.AAAA:
            raise TimeoutError("dropped")
        return await inner(server, wire, tcp)

    config = primed(config_for(authority, minimise=False), NOW)
    res = Resolver(config, transport, lambda: NOW)
    for i in range(6):  # past STRIKES misses in a row
        assert asyncio.run(res.resolve(f"h{i}.a.example.", "AAAA")).rcode == dns.rcode.SERVFAIL
    r = asyncio.run(res.resolve(www, "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict


def _aaaa_dropper(authority: Authority) -> tuple[Resolver, list[int], dict[str, list[int]]]:
    """A resolver whose zone servers never answer AAAA queries, with its clock (a list to
    move) and, per server, the times it was sent an AAAA query."""
    inner = memory_transport(authority)
    now = [NOW]
    sent: dict[str, list[int]] = {}

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire).question[0]
        if q.rdtype == T.AAAA:
            sent.setdefault(server[0], []).append(now[0])
            for _ in range(3):
                await asyncio.sleep(0)  # in flight for a moment
            raise TimeoutError("dropped")
        return await inner(server, wire, tcp)

    config = primed(config_for(authority, minimise=False), NOW)
    return Resolver(config, transport, lambda: now[0]), now, sent


def test_probes_of_a_silent_server_follow_its_retransmission_timeout(
    authority: Authority,
) -> None:
    """Once a server is skipped for a kind of question (STRIKES misses), it gets one probe
    at a time, and each probe holds it for its retransmission timeout plus one second, the
    timeout starting at PROBE_RTO (12 s) and doubling with every lost probe up to RTO_MAX
    (120 s): probes 13, 25, 49, 97, 121, 121 s apart (Unbound's infra cache: probedelay is
    the RTO at the probe plus a second, the RTO doubles per loss up to RTT_MAX_TIMEOUT;
    its iter_timeout_ra_aaaa).  A doubling from 5 s would probe again 10 s after the first
    probe."""
    res, now, sent = _aaaa_dropper(authority)
    for i in range(STRIKES + 1):
        assert asyncio.run(res.resolve(f"h{i}.a.example.", "AAAA")).rcode == dns.rcode.SERVFAIL
    first = {server: len(times) for server, times in sent.items()}
    assert first
    start = now[0]
    for t in range(start + 1, start + 450):
        now[0] = t
        asyncio.run(res.resolve(f"p{t}.a.example.", "AAAA"))
    for server, times in sent.items():
        probes = times[first[server] :]
        gaps = [b - a for a, b in itertools.pairwise(probes)]
        assert probes[0] - start <= 6, probes  # the first probe after the initial back-off
        assert gaps == [13, 25, 49, 97, 121, 121], (server, probes)
    www = asyncio.run(res.resolve("www.a.example.", "A"))  # A questions are still answered
    assert (www.rcode, www.verdict.security) == (dns.rcode.NOERROR, S.SECURE), www.verdict


def test_a_silent_server_gets_one_probe_at_a_time(authority: Authority) -> None:
    """Two questions at once when a silent server's back-off has run out: one probe goes to
    it, the other question does not wait on a second one (Unbound delays other queries
    while its probe is out)."""
    res, now, sent = _aaaa_dropper(authority)
    for i in range(STRIKES + 1):
        asyncio.run(res.resolve(f"h{i}.a.example.", "AAAA"))
    before = sum(len(times) for times in sent.values())
    now[0] += 6

    async def both() -> None:
        await asyncio.gather(
            res.resolve("c1.a.example.", "AAAA"), res.resolve("c2.a.example.", "AAAA")
        )

    asyncio.run(both())
    assert sum(len(times) for times in sent.values()) - before == len(sent)  # one each


def test_cached_results_are_compact_and_answer_the_same(
    hierarchy_no_optout: dict[str, SignedZone],
) -> None:
    auth = Authority(list(hierarchy_no_optout.values()))
    res = Resolver(config_for(auth), memory_transport(auth), lambda: NOW)
    fresh = asyncio.run(res.resolve("a.z.w.example.", "MX"))
    cached = asyncio.run(res.resolve("a.z.w.example.", "MX"))
    assert cached.verdict == fresh.verdict and cached.rcode == fresh.rcode
    assert [r.to_text() for r in cached.answer] == [r.to_text() for r in fresh.answer]
    assert sorted(r.to_text() for r in cached.authority) == sorted(
        r.to_text() for r in fresh.authority
    )
    assert fresh.links and not cached.links  # the chain is explained only when resolved
    # A few hundred octets of wire per result and per upstream reply, not ~10 KB of objects.
    sizes = [len(packed.sections) for _, (_, packed) in res.results._data.values()]  # type: ignore[misc]
    assert sizes and max(sizes) < 2000
    assert all(isinstance(v, bytes) for _, v in res.cache._data.values())


def test_bogus_results_are_cached_for_a_minute_at_most(authority: Authority) -> None:
    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("www.a.example.") and need.rdtype == T.A:
            reply.answer = [r for r in reply.answer if r.rdtype != T.RRSIG]
        return reply

    now = [NOW]
    res = Resolver(config_for(authority), forging_transport(authority, forge), lambda: now[0])
    assert asyncio.run(res.resolve("www.a.example.", "A")).verdict.security is S.BOGUS
    assert len(res.results) == 1
    now[0] += 61
    assert res.results.get((N("www.a.example."), int(T.A)), now[0]) is None


def test_negative_answers_carry_only_the_validated_proof(
    hierarchy_no_optout: dict[str, SignedZone],
) -> None:
    """Unsigned padding beside a good proof does not reach a DO client under AD."""
    authority = Authority(list(hierarchy_no_optout.values()))
    junk = dns.rrset.from_text(
        "00000000000000000000000000000000.example.",
        300,
        "IN",
        "NSEC3",
        "1 0 12 aabbccdd 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR A",
    )

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("nope.example.") and need.rdtype == T.A:
            reply.authority.insert(0, junk)
        return reply

    r = run(authority, "nope.example.", "A", forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE), r.verdict
    assert junk not in r.authority
    signed = {(x.name, x.covers) for x in r.authority if x.rdtype == T.RRSIG}
    assert all((x.name, x.rdtype) in signed for x in r.authority if x.rdtype != T.RRSIG)
    assert any(x.rdtype == T.SOA for x in r.authority)


# --- replies: truncation over TCP, the TTL of negative answers -------------------------


def _no_anchor_config(servers: tuple[tuple[str, int], ...]) -> Config:
    return primed(Config(servers, AnchorSet(()), minimise=False), NOW)


def _authoritative(wire: bytes, *, answer: str = "", soa: str = "") -> bytes:
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    name = q.question[0].name
    if answer:
        r.answer.append(dns.rrset.from_text(name, 300, "IN", "A", answer))
    if soa:
        r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority.append(dns.rrset.from_text(dns.name.root, 3600, "IN", "SOA", soa))
    return r.to_wire()


def test_a_truncated_tcp_reply_is_not_used() -> None:
    """RFC 2181 s9: a reply with TC is ignored; over TCP there is nothing larger to retry
    on, so the next server is asked (Unbound's iter_auth_tc: SERVFAIL when none is left)."""
    asked: list[tuple[tuple[str, int], bool]] = []
    honest = [False]

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        asked.append((server, tcp))
        out = dns.message.from_wire(_authoritative(wire, answer="192.0.2.7"))
        if server[0] == "192.0.2.1" or not honest[0]:
            out.flags |= dns.flags.TC
        return out.to_wire()

    servers = (("192.0.2.1", 53), ("192.0.2.2", 53))
    res = Resolver(_no_anchor_config(servers), transport, lambda: NOW)
    r = asyncio.run(res.resolve("www.x.", "A"))
    assert r.rcode == dns.rcode.SERVFAIL and not r.answer
    assert asked == [(s, tcp) for s in servers for tcp in (False, True)]
    honest[0] = True
    r = asyncio.run(res.resolve("www.y.", "A"))
    assert r.rcode == dns.rcode.NOERROR and r.answer[0][0].address == "192.0.2.7"


def test_a_negative_answer_passes_the_soa_on_with_at_most_its_minimum_ttl() -> None:
    """RFC 2308 s3 and s5: the SOA of a negative answer is passed on (and counted down) with
    min(SOA TTL, SOA MINIMUM); Unbound's iter_domain_sale checks exactly this."""

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        return _authoritative(wire, soa=". h. 1 2 3 4 5")

    res = Resolver(_no_anchor_config((("192.0.2.1", 53),)), transport, lambda: NOW)
    r = asyncio.run(res.resolve("nx.", "A"))
    assert r.rcode == dns.rcode.NXDOMAIN
    assert [(x.rdtype, x.ttl) for x in r.authority] == [(T.SOA, 5)]


# --- lame and dnssec-lame servers --------------------------------------------------------


def _stripping_transport(auth: Authority, lame: set[str]) -> Transport:
    """The in-memory authority; the servers in ``lame`` answer without RRSIGs (a server
    that serves the zone unsigned: Unbound's dnssec-lame)."""
    inner = memory_transport(auth)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        reply = dns.message.from_wire(await inner(server, wire, tcp))
        if server[0] in lame:
            for section in (reply.answer, reply.authority, reply.additional):
                section[:] = [r for r in section if r.rdtype != T.RRSIG]
        return reply.to_wire()

    return transport


def test_a_dnssec_lame_server_makes_the_resolver_ask_another(authority: Authority) -> None:
    """Unsigned keys or data from one server of a signed zone: the next server is asked
    and its signed answer validates (Unbound's iter_dnsseclame_ds/_ta); when every server
    strips the signatures the answer stays bogus."""
    servers = (("127.0.0.2", 53), ("127.0.0.1", 53))
    config = primed(dataclasses.replace(config_for(authority), root_servers=servers), NOW)
    res = Resolver(config, _stripping_transport(authority, {"127.0.0.2"}), lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    res = Resolver(config, _stripping_transport(authority, {"127.0.0.2", "127.0.0.1"}), lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert r.verdict.security is S.BOGUS, r.verdict  # the client gets SERVFAIL


def test_a_lame_server_makes_the_resolver_ask_another(authority: Authority) -> None:
    """A server that answers like a recursive one (RA, no AA, nothing) is lame for the
    zone: the next server is asked (Unbound's REC_LAME)."""
    inner = memory_transport(authority)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        if server[0] == "127.0.0.2":
            q = dns.message.from_wire(wire)
            lame = dns.message.make_response(q)
            lame.flags |= dns.flags.RA
            return lame.to_wire()
        return await inner(server, wire, tcp)

    servers = (("127.0.0.2", 53), ("127.0.0.1", 53))
    config = primed(dataclasses.replace(config_for(authority), root_servers=servers), NOW)
    res = Resolver(config, transport, lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict


def test_a_recursive_servers_cached_answer_is_not_the_zones(authority: Authority) -> None:
    """Data without AA from a server that offers recursion (RA) comes from its cache, not
    from the zone: the next server is asked (Unbound's iter_ranoaa_lame); when every
    server answers so, that answer is used (iter_reclame_two), validated as any other."""
    www = dns.name.from_text("www.insec.")
    recursing = {"127.0.0.2"}
    inner = memory_transport(authority)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        if server[0] in recursing and q.question[0].name == www:
            out = dns.message.make_response(q)
            out.flags |= dns.flags.RA
            out.answer.append(dns.rrset.from_text(www, 300, "IN", "A", "192.0.2.66"))
            return out.to_wire()
        return await inner(server, wire, tcp)

    servers = (("127.0.0.2", 53), ("127.0.0.1", 53))
    config = primed(dataclasses.replace(config_for(authority), root_servers=servers), NOW)
    r = asyncio.run(Resolver(config, transport, lambda: NOW).resolve(www, "A"))
    assert [rd.address for rd in r.answer[0]] == ["192.0.2.1"]
    recursing.add("127.0.0.1")
    r = asyncio.run(Resolver(config, transport, lambda: NOW).resolve(www, "A"))
    assert [rd.address for rd in r.answer[0]] == ["192.0.2.66"]
    assert r.verdict.security is S.INSECURE  # insec. has no DS: proven unsigned


def test_a_bare_empty_answer_is_believed_only_when_no_server_says_more(
    authority: Authority,
) -> None:
    """An authoritative NOERROR with nothing in it (no SOA, no NS: RFC 2308's NODATA type
    3) makes the resolver ask the zone's next server (Unbound's iter_ignore_empty); when
    every server answers so, it is the NODATA it claims to be."""
    www = dns.name.from_text("www.insec.")
    empty = {"127.0.0.2"}
    inner = memory_transport(authority)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        if server[0] in empty and q.question[0].name == www:
            out = dns.message.make_response(q)
            out.flags |= dns.flags.AA
            return out.to_wire()
        return await inner(server, wire, tcp)

    servers = (("127.0.0.2", 53), ("127.0.0.1", 53))
    config = primed(dataclasses.replace(config_for(authority), root_servers=servers), NOW)
    r = asyncio.run(Resolver(config, transport, lambda: NOW).resolve(www, "A"))
    assert [rd.address for rd in r.answer[0]] == ["192.0.2.1"]
    empty.add("127.0.0.1")
    r = asyncio.run(Resolver(config, transport, lambda: NOW).resolve(www, "A"))
    assert (r.rcode, r.answer, r.verdict.security) == (dns.rcode.NOERROR, (), S.INSECURE)


def test_a_dname_owned_outside_the_zone_that_answers_is_not_followed() -> None:
    """example.com.'s server answers with the DNAME com. -> z.example.com.: it has no
    authority for com., so the DNAME is dropped (Unbound's scrubber:
    iter_scrub_dname_out_of_zone) and the answer is the NODATA that remains; nothing under
    the DNAME's target is asked."""
    asked: list[str] = []
    root, child = ("192.0.2.1", 53), ("192.0.2.2", 53)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        name = q.question[0].name
        asked.append(f"{server[0]} {name}")
        r = dns.message.make_response(q)
        if server == root:
            r.authority.append(
                dns.rrset.from_text("example.com.", 300, "IN", "NS", "ns.example.com.")
            )
            r.additional.append(dns.rrset.from_text("ns.example.com.", 300, "IN", "A", child[0]))
            return r.to_wire()
        r.flags |= dns.flags.AA
        if name == dns.name.from_text("x.y.example.com."):
            r.answer.append(dns.rrset.from_text("com.", 300, "IN", "DNAME", "z.example.com."))
        else:
            r.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.99"))
        r.authority.append(dns.rrset.from_text("example.com.", 300, "IN", "NS", "ns.example.com."))
        return r.to_wire()

    res = Resolver(_no_anchor_config((root,)), transport, lambda: NOW)
    r = asyncio.run(res.resolve("x.y.example.com.", "A"))
    assert (r.rcode, r.answer) == (dns.rcode.NOERROR, ()), r
    assert not any("z.example.com." in a for a in asked), asked


@pytest.mark.interop
@pytest.mark.slow
def test_unbound_and_dnsseal_both_retransmit_to_a_silent_server(tmp_path: Path) -> None:
    """The outside truth for ATTEMPTS: a real Unbound with a stub zone served by one server
    that answers SERVFAIL and one that never answers sends the silent one the question
    again and again (9 datagrams over 11 s with Unbound 1.17), at least ATTEMPTS times;
    dnsseal sends it exactly ATTEMPTS (and asks the SERVFAIL one once: its answer is an
    answer, not a loss)."""
    port = free_port()
    seen: list[tuple[str, str]] = []
    socks = []
    for addr in ("127.0.0.2", "127.0.0.3"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((addr, port))
        sock.settimeout(0.2)
        socks.append(sock)
    stopping = threading.Event()

    def serve(sock: socket.socket) -> None:
        while not stopping.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = dns.message.from_wire(data)
            seen.append((sock.getsockname()[0], q.question[0].name.to_text()))
            if sock.getsockname()[0] == "127.0.0.2":
                r = dns.message.make_response(q)
                r.set_rcode(dns.rcode.SERVFAIL)
                sock.sendto(r.to_wire(), peer)

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in socks]
    for t in threads:
        t.start()
    www = "www.example.com."
    try:
        uport = free_port()
        conf = tmp_path / "unbound.conf"
        conf.write_text(
            "server:\n"
            f"  interface: 127.0.0.1\n  port: {uport}\n  do-ip6: no\n"
            '  username: ""\n  chroot: ""\n'
            f'  directory: "{tmp_path}"\n  pidfile: "{tmp_path}/unbound.pid"\n  use-syslog: no\n'
            f'  logfile: "{tmp_path}/unbound.log"\n  do-not-query-localhost: no\n'
            '  module-config: "iterator"\n  qname-minimisation: no\n'
            "remote-control:\n  control-enable: no\n"
            f'stub-zone:\n  name: "example.com"\n  stub-addr: 127.0.0.2@{port}\n'
            f"  stub-addr: 127.0.0.3@{port}\n"
        )
        run_tool(["unbound-checkconf", conf])
        proc = subprocess.Popen(
            [require_tool("unbound"), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(50):  # started: it answers (REFUSED or not) a local question
                try:
                    dns.query.udp(
                        dns.message.make_query("localhost.", "A"),
                        "127.0.0.1",
                        timeout=0.2,
                        port=uport,
                    )
                    break
                except (OSError, dns.exception.Timeout):
                    time.sleep(0.1)
            # Unbound may still be trying at the timeout: what it sent so far is what counts.
            with contextlib.suppress(dns.exception.Timeout):
                dns.query.udp(dns.message.make_query(www, "A"), "127.0.0.1", timeout=13, port=uport)
        finally:
            stop(proc)
        theirs = seen.count(("127.0.0.3", www))
        assert theirs >= ATTEMPTS, seen
        assert seen.count(("127.0.0.2", www)) >= 1
        seen.clear()
        servers = (("127.0.0.2", port), ("127.0.0.3", port))
        config = Config(((("127.0.0.1", 9)),), AnchorSet(()), minimise=False, port=port)
        config = dataclasses.replace(config, stubs=((dns.name.from_text("example.com."), servers),))
        res = Resolver(config, network_transport(0.3))
        assert asyncio.run(res.resolve(www, "A")).rcode == dns.rcode.SERVFAIL
        assert seen.count(("127.0.0.3", www)) == ATTEMPTS, seen
        assert seen.count(("127.0.0.2", www)) == 1, seen
    finally:
        stopping.set()
        for t in threads:
            t.join()
        for s in socks:
            s.close()


def test_an_ns_name_with_only_ipv6_glue_is_looked_up_when_that_address_is_silent() -> None:
    """example.com.'s only NS name came with an IPv6 address alone, and nothing answers
    there: its IPv4 address is looked up and asked (Unbound fetches the missing address of
    an NS name once the known ones fail: iter_failreply)."""
    root, v4 = ("192.0.2.1", 53), ("192.0.2.5", 53)
    asked: list[str] = []

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        name, rdtype = q.question[0].name, q.question[0].rdtype
        asked.append(f"{server[0]} {name} {dns.rdatatype.to_text(rdtype)}")
        r = dns.message.make_response(q)
        if server == root and name == dns.name.from_text("ns.example.net.") and rdtype == T.A:
            r.flags |= dns.flags.AA
            r.answer.append(dns.rrset.from_text(name, 300, "IN", "A", v4[0]))
        elif server == root:
            r.authority.append(
                dns.rrset.from_text("example.com.", 300, "IN", "NS", "ns.example.net.")
            )
            r.additional.append(
                dns.rrset.from_text("ns.example.net.", 300, "IN", "AAAA", "2001:db8::1")
            )
        elif server == v4:
            r.flags |= dns.flags.AA
            r.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.80"))
        else:
            raise TimeoutError("nothing answers there")
        return r.to_wire()

    res = Resolver(_no_anchor_config((root,)), transport, lambda: NOW)
    r = asyncio.run(res.resolve("www.example.com.", "A"))
    assert (r.rcode, [rd.address for x in r.answer for rd in x]) == (0, ["192.0.2.80"]), asked
    assert "192.0.2.1 ns.example.net. A" in asked
