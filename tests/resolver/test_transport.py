"""The network transport over real loopback sockets: a dead server is skipped, truncated
UDP answers are retried over TCP, replies with the wrong ID are ignored."""

from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message

from conftest import free_port
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.transport import network_transport
from dnsseal.validator import verdict as v
from dnsseal.validator.machine import Config

from .authority import Authority, config_for
from .zonebuild import NOW


class LoopbackAuthority:
    """Serves an in-memory Authority on 127.0.0.1 over UDP and TCP; UDP answers for names
    in ``truncate`` come back with TC set and no records."""

    def __init__(self, auth: Authority, truncate: set[str], spoof_first: bool = False) -> None:
        self.auth = auth
        self.truncate = truncate
        self.spoof_first = spoof_first
        self.tcp_queries = 0

    def _answer(self, wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        r = self.auth.answer(q.question[0].name, q.question[0].rdtype)
        r.id = q.id
        if not tcp and q.question[0].name.to_text() in self.truncate:
            r.flags |= dns.flags.TC
            r.answer, r.authority, r.additional = [], [], []
        return r.to_wire(max_size=65535)

    async def start(self) -> tuple[int, list[asyncio.BaseTransport | asyncio.AbstractServer]]:
        port = free_port()
        loop = asyncio.get_running_loop()
        outer = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.t = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                out = outer._answer(data, False)
                if outer.spoof_first:
                    # A reply with another ID first: the transport must keep waiting.
                    self.t.sendto(
                        struct.pack("!H", (out[0] << 8 | out[1]) ^ 0xFFFF) + out[2:], addr
                    )  # type: ignore[attr-defined]
                self.t.sendto(out, addr)  # type: ignore[attr-defined]

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            self.tcp_queries += 1
            out = self._answer(await reader.readexactly(n), True)
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
            writer.close()

        udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", port))
        server = await asyncio.start_server(tcp, "127.0.0.1", port)
        return port, [udp, server]


def _run(authority: Authority, truncate: set[str], spoof: bool = False) -> tuple[v.Verdict, int]:
    async def go() -> tuple[v.Verdict, int]:
        served = LoopbackAuthority(authority, truncate, spoof)
        port, closers = await served.start()
        dead = free_port()  # nothing listens there: ICMP port unreachable or timeout
        base = config_for(authority)
        config = Config((("127.0.0.1", dead), ("127.0.0.1", port)), base.anchors, port=port)
        try:
            res = Resolver(config, network_transport(timeout=1.0), lambda: NOW)
            result = await res.resolve("www.a.example.", "A")
            return result.verdict, served.tcp_queries
        finally:
            for c in closers:
                c.close()

    return asyncio.run(go())


def test_dead_server_skipped_and_tc_retried_over_tcp(authority: Authority) -> None:
    verdict, tcp = _run(authority, {"www.a.example.", "a.example."})
    assert verdict.security is v.Security.SECURE, verdict
    assert tcp >= 2


def test_reply_with_wrong_id_is_ignored(authority: Authority) -> None:
    verdict, _ = _run(authority, set(), spoof=True)
    assert verdict.security is v.Security.SECURE, verdict


def test_udp_exchange_cancelled_or_refused_leaves_nothing_behind() -> None:
    # A cancelled wait (the resolution given up) and an ICMP port unreachable both end the
    # exchange with its socket closed and the event loop no longer watching it.
    import socket

    from dnsseal.resolver.transport import udp_exchange

    wire = dns.message.make_query("www.example.", "A").to_wire()

    async def go() -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            task = asyncio.ensure_future(udp_exchange(silent.getsockname(), wire, 5.0))
            await asyncio.sleep(0.05)
            assert not task.done()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            else:
                raise AssertionError("the exchange was not cancelled")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
            closed.bind(("127.0.0.1", 0))
            dead = closed.getsockname()
        try:
            await udp_exchange(dead, wire, 5.0)
        except ConnectionRefusedError:
            pass
        else:
            raise AssertionError("no reply from a closed port")
        selector = loop._selector  # type: ignore[attr-defined]
        assert [k.fd for k in selector.get_map().values() if k.fd > 2] == [loop._ssock.fileno()]  # type: ignore[attr-defined]

    asyncio.run(go())
