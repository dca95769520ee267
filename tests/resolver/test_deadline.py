"""resolver-query-timeout (BIND's option): one client question is worked on for at most that
long, its CNAME targets included; then the answer is SERVFAIL with EDE 22 (No Reachable
Authority) and nothing is cached for it.  Without it, silent servers cost a question one
transport timeout per send, up to eight sends per upstream question, and a question may ask
several (priming, then the question itself).

The transport is injected and the clock fake: every send to a silent server moves the clock
by the transport's timeout (2 s) and raises TimeoutError, as the network transport would.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from conftest import free_port
from dnsseal.errors import OptionError
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.service import ResolverService
from dnsseal.resolver.settings import ResolverSettings, parse_settings
from dnsseal.resolver.transport import Expired, network_transport, start_deadline, udp_exchange
from dnsseal.storage import options
from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.iterator import Config
from dnsseal.validator.machine import Result
from dnsseal.validator.verdict import EDE_NO_REACHABLE_AUTHORITY

START = 1_800_000_000
SEND_TIMEOUT = 2  # seconds: network_transport's default
SILENT = tuple((f"127.0.0.{i}", 53) for i in range(10, 14))  # four dead root servers
ALIAS = ("127.0.0.2", 53)  # serves a.example.: www.a.example. CNAME www.b.example.


class Net:
    """Silent servers (each send costs SEND_TIMEOUT seconds of the fake clock) and one that
    answers at once; records every send with the time it was made."""

    def __init__(self) -> None:
        self.now = START
        self.sends: list[tuple[int, tuple[str, int], str]] = []

    def clock(self) -> int:
        return self.now

    async def __call__(self, server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        self.sends.append((self.now, server, q.name.to_text()))
        if server == ALIAS:
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            reply.flags &= ~dns.flags.RA
            reply.answer.append(dns.rrset.from_text(q.name, 300, "IN", "CNAME", "www.b.example."))
            return reply.to_wire()
        self.now += SEND_TIMEOUT
        raise TimeoutError

    def silent_sends(self) -> int:
        return sum(server != ALIAS for _, server, _ in self.sends)


def _resolver(net: Net, timeout: float, stubs: bool = False) -> Resolver:
    zones = ()
    if stubs:
        zones = (
            (dns.name.from_text("a.example."), (ALIAS,)),
            (dns.name.from_text("b.example."), SILENT),
        )
    config = Config(
        root_servers=SILENT,
        anchors=AnchorSet(),
        minimise=False,
        stubs=zones,
        query_timeout=timeout,
    )
    return Resolver(config, transport=net, clock_fn=net.clock)


def test_silent_servers_cost_a_question_at_most_the_deadline() -> None:
    net = Net()
    resolver = _resolver(net, 10.0)
    result = asyncio.run(resolver.resolve("www.example.", "A"))
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.verdict.ede == EDE_NO_REACHABLE_AUTHORITY
    assert "resolver-query-timeout (10000 ms)" in result.verdict.reason
    # Sends at 0, 2, 4, 6 and 8 s; none at 10 s, when the question is given up.
    assert [t - START for t, _, _ in net.sends] == [0, 2, 4, 6, 8]
    assert net.now - START == 10
    assert not resolver.is_cached(dns.name.from_text("www.example."), 1, net.now)


def test_without_the_deadline_the_same_question_takes_far_longer() -> None:
    # What the deadline bounds: the same silent servers, a deadline too far to matter.
    net = Net()
    result = asyncio.run(_resolver(net, 1000.0).resolve("www.example.", "A"))
    assert result.rcode == dns.rcode.SERVFAIL
    assert "resolver-query-timeout" not in result.verdict.reason
    assert net.now - START > 20
    assert len(net.sends) > 10


def test_the_deadline_covers_the_alias_target() -> None:
    # www.a.example. is a CNAME (answered at once); its target's servers are silent.  The
    # target's resolution shares the question's deadline, and nothing is cached.
    net = Net()
    resolver = _resolver(net, 10.0, stubs=True)
    result = asyncio.run(resolver.resolve("www.a.example.", "A"))
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.verdict.ede == EDE_NO_REACHABLE_AUTHORITY
    assert net.now - START == 10
    assert net.silent_sends() == 5
    for name in ("www.a.example.", "www.b.example."):
        assert not resolver.is_cached(dns.name.from_text(name), 1, net.now)


def test_the_client_gets_servfail_with_ede_22() -> None:
    net = Net()
    service = ResolverService(_resolver(net, 10.0))
    query = dns.message.make_query("www.example.", "A", use_edns=0)
    wire = asyncio.run(service.handle(query.to_wire(), False))
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.rcode() == dns.rcode.SERVFAIL
    codes = [o.code for o in reply.options if isinstance(o, dns.edns.EDEOption)]
    assert codes == [EDE_NO_REACHABLE_AUTHORITY]
    assert net.now - START == 10


def test_the_option_defaults_to_bind_s_and_reaches_the_config() -> None:
    row = options.option("resolver", "resolver-query-timeout")
    assert row.default == ResolverSettings().query_timeout_ms == 10000
    assert Config(root_servers=(), anchors=AnchorSet()).query_timeout * 1000 == row.default
    text = "[resolver]\nresolver-query-timeout = 30000\n"
    assert parse_settings(text, "r.toml").query_timeout_ms == 30000


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("9999", "integer 9999"),
        ("30001", "integer 30001"),
        ("10", "integer 10"),  # BIND reads values up to 300 as seconds; not here
        ("0", "integer 0"),  # BIND's "the default"
        ('"10s"', "string '10s'"),
        ("true", "boolean true"),
    ],
)
def test_a_value_out_of_bind_s_range_is_one_line_naming_the_option(value: str, got: str) -> None:
    with pytest.raises(OptionError) as e:
        parse_settings(f"[resolver]\nresolver-query-timeout = {value}\n", "r.toml")
    assert str(e.value) == (
        f"resolver.resolver-query-timeout: expected an integer in 10000..30000, got {got}"
    )


# The network transport: the wait for a reply ends at the question's deadline, not at the
# send's own timeout (named's fetch is cancelled then, too).


@pytest.fixture
def silent_udp() -> Iterator[tuple[str, int]]:
    """A loopback UDP port that reads every datagram and never answers."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        yield ("127.0.0.1", port)


def test_the_wait_for_a_reply_ends_at_the_deadline(silent_udp: tuple[str, int]) -> None:
    wire = dns.message.make_query("www.example.", "A").to_wire()

    async def go() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        t = loop.time()
        with pytest.raises(TimeoutError) as own:  # no deadline: the send's own timeout
            await udp_exchange(silent_udp, wire, 0.4)
        assert not isinstance(own.value, Expired)
        without = loop.time() - t
        start_deadline(0.3)
        t = loop.time()
        with pytest.raises(Expired):
            await udp_exchange(silent_udp, wire, 5.0)
        with_deadline = loop.time() - t
        t = loop.time()
        with pytest.raises(Expired):  # nothing left: not even sent
            await udp_exchange(silent_udp, wire, 5.0)
        return without, with_deadline, loop.time() - t

    without, with_deadline, after = asyncio.run(go())
    assert 0.35 <= without <= 1.0
    assert 0.25 <= with_deadline <= 0.8
    assert after < 0.05


def test_a_silent_server_cut_at_the_deadline_is_not_struck(silent_udp: tuple[str, int]) -> None:
    # The real transport and clock: a question to a silent root, 2 s per send, given up
    # after 0.5 s; its one send ends then, and the server is not counted as having missed a
    # question (it did not get its 2 s).
    config = Config(root_servers=(silent_udp,), anchors=AnchorSet(), query_timeout=0.5)
    resolver = Resolver(config, network_transport(2.0))

    async def go() -> tuple[float, Result]:
        loop = asyncio.get_running_loop()
        t = loop.time()
        result = await resolver.resolve("www.example.", "A")
        return loop.time() - t, result

    took, result = asyncio.run(go())
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.verdict.ede == EDE_NO_REACHABLE_AUTHORITY
    assert 0.4 <= took <= 1.5, took
    assert resolver.upstream_queries == 1
    assert resolver.lost_replies == 0


def test_on_the_wall_clock_the_deadline_is_not_a_second_early() -> None:
    # The resolver's wall clock counts whole seconds; a question that starts late in a
    # second (0.7 s into it) must still get its whole resolver-query-timeout (2 s here), as
    # in named, not be given up when the clock's second changes over 1.3 s later.  The one
    # server is silent; every send costs 0.3 s of real time (priming's five sends, then the
    # question's, until the one under way at 2 s ends).
    sends: list[float] = []

    async def slow_silence(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        sends.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.3)
        raise TimeoutError

    config = Config(root_servers=SILENT[:1], anchors=AnchorSet(), query_timeout=2.0)
    resolver = Resolver(config, slow_silence)

    async def go() -> tuple[float, Result]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep((0.7 - time.time() % 1) % 1)
        t = loop.time()
        result = await resolver.resolve("www.example.", "A")
        return loop.time() - t, result

    took, result = asyncio.run(go())
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.verdict.ede == EDE_NO_REACHABLE_AUTHORITY
    assert 2.0 <= took <= 2.5, (took, sends)
