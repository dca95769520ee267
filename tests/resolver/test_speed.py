"""The resolver's answer cache: repeated questions answered by the UDP listener thread (in
C with the server's datagram loop) from rendered responses, TTLs counted down by
re-rendering once per second, never past the access list."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from conftest import stop
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.listener import DatagramLoop, fast_path_safe
from dnsseal.resolver.service import ResolverService
from dnsseal.server import udp as server_udp

from .authority import Authority, config_for, memory_transport
from .bindtree import start_named
from .zonebuild import NOW

NATIVE: DatagramLoop | None = server_udp._udpfast.Loop if server_udp._udpfast else None
LOOPS = {"c": NATIVE, "python": None}


def _udp(port: int, q: dns.message.Message, source: str = "127.0.0.1") -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(5)
        s.sendto(q.to_wire(), ("127.0.0.1", port))
        data, _ = s.recvfrom(65535)
    return dns.message.from_wire(data)


async def _serve(
    res: Resolver,
    native: DatagramLoop | None,
    body: Callable[[ResolverService, int], object],
    allow: tuple[str, ...] = ("127.0.0.0/8",),
) -> ResolverService:
    service = ResolverService(res, allow, native)
    _, port = await service.start("127.0.0.1", 0)
    try:
        await asyncio.get_running_loop().run_in_executor(None, body, service, port)
    finally:
        await service.close()
    return service


def test_the_c_loop_is_built() -> None:
    assert NATIVE is not None  # setup.py build_ext: the fast path is the product


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_repeated_questions_are_answered_from_rendered_responses(
    authority: Authority, kind: str
) -> None:
    now = [NOW]
    res = Resolver(config_for(authority), memory_transport(authority), lambda: now[0])
    calls = []

    def body(service: ResolverService, port: int) -> None:
        handle = service.handle

        async def counting(wire: bytes, tcp: bool, client: str = "127.0.0.1") -> bytes | None:
            calls.append(wire)
            return await handle(wire, tcp, client)

        service.handle = counting  # type: ignore[method-assign]
        q = dns.message.make_query("www.a.example.", "A", want_dnssec=True)
        first = _udp(port, q)
        assert first.flags & dns.flags.AD and first.answer
        for i in range(20):
            q.id = i + 1
            again = _udp(port, q)
            assert again.id == q.id
            assert again.to_wire()[2:] == first.to_wire()[2:]
        # The C loop counts a hit after its reply has gone out: give the last one a moment.
        for _ in range(50):
            if service.answers.hits >= 20:
                break
            time.sleep(0.01)
        assert len(calls) == 1 and service.answers.hits == 20
        # Another question (here: without DO) is another entry.
        plain = _udp(port, dns.message.make_query("www.a.example.", "A"))
        assert not plain.answer[0].to_text().count("RRSIG") and len(calls) == 2
        # The clock moves on: rendered again, TTLs counted down.
        ttl = first.answer[0].ttl
        now[0] += 7
        deadline = 50
        while service.answers.second != now[0] and deadline:
            deadline -= 1
            asyncio.run(asyncio.sleep(0.02))
        later = _udp(port, q)
        assert later.answer[0].ttl == ttl - 7
        assert len(calls) == 3

    asyncio.run(_serve(res, LOOPS[kind], body))


def test_uncached_results_are_not_kept_rendered(authority: Authority) -> None:
    """A resolution failure (SERVFAIL) is never kept as a rendered wire answer (the
    resolver's own SERVFAIL cache, servfail-ttl, answers a repeat for a second)."""

    async def dead(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        raise TimeoutError

    res = Resolver(config_for(authority), dead, lambda: NOW)

    def body(service: ResolverService, port: int) -> None:
        r = _udp(port, dns.message.make_query("www.a.example.", "A"))
        assert r.rcode() == dns.rcode.SERVFAIL
        assert service.answers.udp_cache == {}

    asyncio.run(_serve(res, NATIVE, body))


def test_cached_answers_never_bypass_the_access_list(authority: Authority) -> None:
    """The rendered response exists (an allowed client asked); a client outside the allow
    list still gets REFUSED, because on such an address the Python loop answers."""
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)
    q = dns.message.make_query("www.a.example.", "A")

    def body(service: ResolverService, port: int) -> None:
        out = asyncio.run(service.handle(q.to_wire(), False, "10.1.2.3"))
        assert out is not None and dns.message.from_wire(out).answer
        assert q.to_wire()[2:] in service.answers.udp_cache
        r = _udp(port, q)
        assert r.rcode() == dns.rcode.REFUSED and not r.answer

    asyncio.run(_serve(res, NATIVE, body, allow=("10.0.0.0/8",)))


@pytest.mark.parametrize(
    ("host", "allow", "safe"),
    [
        ("127.0.0.1", ["127.0.0.0/8", "::1/128"], True),
        ("::1", ["127.0.0.0/8", "::1/128"], True),
        ("::1", ["127.0.0.0/8"], False),
        ("127.0.0.1", ["10.0.0.0/8"], False),
        ("127.0.0.1", ["127.0.0.1/32"], False),  # 127.0.0.2 can send to it too
        ("127.0.0.1", ["0.0.0.0/0"], True),
        ("192.0.2.1", ["127.0.0.0/8", "::1/128"], False),
        ("192.0.2.1", ["0.0.0.0/0"], True),
        ("2001:db8::1", ["0.0.0.0/0"], False),
    ],
)
def test_the_c_loop_only_where_every_client_is_allowed(
    host: str, allow: list[str], safe: bool
) -> None:
    nets = [ipaddress.ip_network(n) for n in allow]
    assert fast_path_safe(host, nets) is safe


def test_the_warm_up_validates_through_every_layer() -> None:
    """Four client questions (an answer through a signed delegation, an NSEC NXDOMAIN, a
    NODATA, a DS) answered with AD through the service, or it raises.  What it saves, the
    first resolution's first-use costs, is not timed here: the machine is shared."""
    from dnsseal.resolver.warmup import warm_up

    assert asyncio.run(warm_up()) > 0


@pytest.mark.interop
def test_the_warm_up_authority_copies_cd_as_a_server_does(tmp_path: Path) -> None:
    """The warm-up's in-memory authority sets the header bits a real server sets for the
    resolver's queries: named, asked with CD (as every upstream query is), copies it
    (RFC 4035 s3.1.6), and so does the warm-up's tree; without CD neither sets it."""
    import dns.query

    from dnsseal import clock
    from dnsseal.resolver.warmup import _Tree

    zone = tmp_path / "test.zone"
    zone.write_text(
        "$ORIGIN test.\n$TTL 300\n@ SOA ns h. 1 3600 600 86400 300\n@ NS ns\n"
        "ns A 192.0.2.1\nwww A 192.0.2.2\n"
    )
    proc, port = start_named(tmp_path, {"test.": zone})
    try:
        tree = _Tree(clock.now())
        bits = dns.flags.CD | dns.flags.QR | dns.flags.AA
        for cd in (True, False):
            ours = dns.message.make_query("www.test.", "A", want_dnssec=True)
            q = dns.message.make_query("www.warm-up.", "A", want_dnssec=True)
            if cd:
                ours.flags |= dns.flags.CD
                q.flags |= dns.flags.CD
            named = dns.query.udp(ours, "127.0.0.1", port=port, timeout=10)
            warm = dns.message.from_wire(tree.answer(q.to_wire()))
            assert bool(named.flags & dns.flags.CD) is cd, named
            assert warm.flags & bits == named.flags & bits, (warm, named)
    finally:
        stop(proc)


def test_upstream_queries_are_what_dnspython_would_send() -> None:
    """The hand-built query: random ID, CD, RD only for forwarders, EDNS0 DO 1232."""
    import dns.name

    from dnsseal.resolver.engine import answers, query_wire
    from dnsseal.validator.machine import Need

    need = Need(dns.name.from_text("www.Example."), 28, (("127.0.0.1", 53),), dns.name.root)
    q = dns.message.from_wire(query_wire(need))
    assert (q.question[0].name, q.question[0].rdtype) == (need.qname, 28)
    assert q.flags & dns.flags.CD and not q.flags & dns.flags.RD
    assert q.edns == 0 and q.payload == 1232 and q.ednsflags & dns.flags.DO
    fwd = dns.message.from_wire(query_wire(Need(need.qname, 1, need.servers, need.zone, True)))
    assert fwd.flags & dns.flags.RD
    reply = dns.message.make_response(q)
    qid = q.id.to_bytes(2, "big")
    assert answers(reply, qid, need)
    assert not answers(reply, (q.id ^ 1).to_bytes(2, "big"), need)
    other = dns.message.make_response(dns.message.make_query("www.example.", "A"))
    other.id = q.id
    assert not answers(other, qid, need)  # a different question
    ids = {dns.message.from_wire(query_wire(need)).id for _ in range(50)}
    assert len(ids) > 40  # random IDs


def test_a_listen_host_name_is_served(authority: Authority) -> None:
    """--listen localhost: the C loop is chosen by the address the socket got."""
    res = Resolver(config_for(authority), memory_transport(authority), lambda: NOW)

    async def go() -> None:
        service = ResolverService(res, native=NATIVE)
        _, port = await service.start("localhost", 0)
        try:
            loop = asyncio.get_running_loop()
            q = dns.message.make_query("www.a.example.", "A")
            r = await loop.run_in_executor(None, _udp, port, q)
            assert r.answer
        finally:
            await service.close()

    asyncio.run(go())
