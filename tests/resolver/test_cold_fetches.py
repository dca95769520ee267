"""Cold resolution (issue #20's cold-latency target): how many upstream questions a fresh
resolver sends, and how many round trips deep they are.  Unbound fetches a signed zone's
DNSKEY RRset as soon as it knows the zone's servers, in parallel with the question it asks
them; the chain walk then finds its keys already there.  Counted, not timed: a transport
that holds every question until the resolver can send no more without a reply, then
answers all of them at once, so each release is one round trip on the critical path.

A fresh resolver first primes the root (RFC 8109: ``. NS`` to a hint, alone, since every
later question goes to the servers it names): one more question and one more round trip, once
per root NS TTL, not per resolution (the warm-chain test sees none).  A service primes when
it starts (``Resolver.prime``), so its first question finds the root's servers known: the
same questions without ``. NS``, one round trip fewer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import dns.message
import dns.rcode
import dns.rdatatype

from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.transport import Transport
from dnsseal.validator import verdict as v
from dnsseal.validator.machine import Result

from .authority import Authority, config_for, memory_transport
from .test_cache import _split_authority, _split_transport
from .zonebuild import NOW

SETTLE = 200  # event-loop turns with nothing released: every question that can go has gone


class Waves:
    """A transport that answers from ``auth`` in waves (see the module docstring)."""

    def __init__(self, auth: Authority, inner: Transport | None = None) -> None:
        self.inner = inner or memory_transport(auth)
        self.held: list[tuple[asyncio.Future[None], str]] = []
        self.waves: list[list[str]] = []

    async def __call__(self, server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire).question[0]
        gate = asyncio.get_running_loop().create_future()
        self.held.append((gate, f"{q.name} {dns.rdatatype.to_text(q.rdtype)}"))
        await gate
        return await self.inner(server, wire, tcp)

    async def run(self, resolution: Awaitable[Result]) -> Result:
        task = asyncio.ensure_future(resolution)
        while not task.done():
            for _ in range(SETTLE):
                await asyncio.sleep(0)
            if not self.held:
                continue
            batch, self.held = self.held, []
            self.waves.append(sorted(question for _, question in batch))
            for gate, _ in batch:
                gate.set_result(None)
        return task.result()

    @property
    def questions(self) -> list[str]:
        return sorted(q for wave in self.waves for q in wave)


def cold(authority: Authority, name: str, rdtype: str) -> tuple[Result, Waves]:
    waves = Waves(authority)
    res = Resolver(config_for(authority), waves, lambda: NOW)
    result = asyncio.run(waves.run(res.resolve(name, rdtype)))
    return result, waves


def test_a_cold_resolution_fetches_the_chain_alongside_the_iteration(
    authority: Authority,
) -> None:
    """One server for the whole tree (like the benchmark's named): the minimised questions
    find example. and a.example. by their signed SOAs; each zone's DNSKEY (and the DS from
    the zone above) goes out with the next question to its servers.  Eight questions, as
    before, in three round trips instead of eight, after the priming query."""
    result, waves = cold(authority, "www.a.example.", "A")
    assert (result.verdict.security, result.rcode) == (v.Security.SECURE, dns.rcode.NOERROR)
    assert waves.questions == sorted(
        [
            ". NS",
            "example. A",
            "a.example. A",
            "www.a.example. A",
            ". DNSKEY",
            "example. DS",
            "example. DNSKEY",
            "a.example. DS",
            "a.example. DNSKEY",
        ]
    )
    assert waves.waves == [
        [". NS"],
        [". DNSKEY", "example. A"],
        ["a.example. A", "example. DNSKEY", "example. DS"],
        ["a.example. DNSKEY", "a.example. DS", "www.a.example. A"],
    ]


def test_primed_at_start_the_first_question_takes_three_round_trips(
    authority: Authority,
) -> None:
    """After the start-up (``. NS``, then ``. DNSKEY`` for the root's trust anchor, before
    any question), the cold resolution is the other seven questions in three round trips."""
    waves = Waves(authority)
    res = Resolver(config_for(authority), waves, lambda: NOW)

    async def started() -> Result:
        priming = res.prime()
        while not priming.done():
            await asyncio.sleep(0)
            for gate, _ in waves.held:
                gate.set_result(None)
            waves.held.clear()
        return await waves.run(res.resolve("www.a.example.", "A"))

    result = asyncio.run(started())
    assert (result.verdict.security, result.rcode) == (v.Security.SECURE, dns.rcode.NOERROR)
    assert waves.waves == [
        ["example. A"],
        ["a.example. A", "example. DNSKEY", "example. DS"],
        ["a.example. DNSKEY", "a.example. DS", "www.a.example. A"],
    ]


def test_a_signed_referral_brings_the_ds_and_the_dnskey_goes_with_the_question() -> None:
    """a.example. on its own server: example.'s referral carries its signed DS, so no DS
    question is asked; its DNSKEY goes out with the first question to its server."""
    parents, child = _split_authority()
    waves = Waves(parents, _split_transport(parents, child))  # type: ignore[arg-type]
    res = Resolver(config_for(parents), waves, lambda: NOW)
    result = asyncio.run(waves.run(res.resolve("www.a.example.", "A")))
    assert result.verdict.security is v.Security.SECURE, result.verdict
    assert waves.waves == [
        [". NS"],
        [". DNSKEY", "example. A"],
        ["a.example. A", "example. DNSKEY", "example. DS"],
        ["a.example. DNSKEY", "www.a.example. A"],
    ]


def test_nothing_is_fetched_ahead_for_an_unsigned_zone(authority: Authority) -> None:
    """insec. is unsigned (no DS at the root, no signature of its own): its DNSKEY is not
    asked; the DS the walk needs to prove it unsigned goes out with the question."""
    result, waves = cold(authority, "www.insec.", "A")
    assert result.verdict.security is v.Security.INSECURE, result.verdict
    assert waves.waves == [[". NS"], [". DNSKEY", "insec. A"], ["insec. DS", "www.insec. A"]]


def test_a_warm_chain_fetches_nothing_ahead(authority: Authority) -> None:
    """A new name in a zone whose chain is validated: one question, one round trip."""
    waves = Waves(authority)
    res = Resolver(config_for(authority), waves, lambda: NOW)

    async def both() -> Result:
        await waves.run(res.resolve("www.a.example.", "A"))
        waves.waves.clear()
        return await waves.run(res.resolve("ns1.a.example.", "A"))

    result = asyncio.run(both())
    assert result.verdict.security is v.Security.SECURE
    assert waves.waves == [["ns1.a.example. A"]]
