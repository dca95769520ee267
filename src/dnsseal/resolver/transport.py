"""The network transport: one DNS exchange over UDP or TCP (RFC 1035 s4.2, RFC 7766).

A transport is any ``async (server, wire_query, tcp) -> wire_response`` callable; tests pass
an in-memory one, the resolver uses :func:`network_transport`.

An exchange waits for its reply at most its own timeout, and never past the deadline of the
client question it works for (:func:`start_deadline`, BIND's resolver-query-timeout): named
ends the fetch under way when a question's time runs out, it does not let it run to its
own timeout.  The deadline is kept on the event loop's monotonic clock, in a context
variable, so every task a resolution starts (prefetches, alias targets) shares it; when the
wait is ended by the deadline rather than the timeout the exchange raises :class:`Expired`
(the server was not given its time: not a sign that it is dead).
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import struct
from collections.abc import Awaitable, Callable

Server = tuple[str, int]
Transport = Callable[[Server, bytes, bool], Awaitable[bytes]]

# When (asyncio loop time) the client question being resolved is given up; set by
# start_deadline, copied into every task the resolution starts.
_EXPIRES: contextvars.ContextVar[float] = contextvars.ContextVar("expires", default=float("inf"))


class Expired(TimeoutError):
    """No reply before the client question's deadline (which came before the exchange's own
    timeout, or had already passed)."""


def start_deadline(seconds: float) -> None:
    """The client question being resolved in this context (and the tasks it starts from
    now on) is given up ``seconds`` from now."""
    _EXPIRES.set(asyncio.get_running_loop().time() + seconds)


def time_left() -> float:
    """Seconds until this context's question is given up (inf: no deadline)."""
    expires = _EXPIRES.get()
    if expires == float("inf"):
        return expires
    return expires - asyncio.get_running_loop().time()


async def _bounded(exchange: Awaitable[bytes], timeout: float) -> bytes:
    """``exchange``'s reply, waited for at most ``timeout`` seconds and never past the
    question's deadline: TimeoutError when the timeout ends the wait, :class:`Expired`
    when the deadline does (it is not even started when no time is left)."""
    left = time_left()
    if left <= 0:
        if asyncio.iscoroutine(exchange):
            exchange.close()  # never started: no "never awaited" warning
        raise Expired("the question's deadline passed")
    try:
        async with asyncio.timeout(min(timeout, left)):  # a timer, no task of its own
            return await exchange
    except TimeoutError:
        if left < timeout:
            raise Expired(f"no reply within the question's last {left:.3f} s") from None
        raise


async def _udp(server: Server, wire: bytes) -> bytes:
    """Send ``wire`` from a fresh socket (a new random source port per question) and wait
    for the reply with the same ID; the socket is connected, so the kernel drops datagrams
    from any other address (and reports ICMP errors as OSError)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(server)
        await loop.sock_sendall(sock, wire)
        while True:
            data = await loop.sock_recv(sock, 65535)
            # Ignore datagrams that are not replies to this query (ID mismatch).
            if len(data) >= 2 and data[:2] == wire[:2]:
                return data
    finally:
        sock.close()


async def _tcp(server: Server, wire: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server[0], server[1])
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        return await reader.readexactly(length)
    finally:
        writer.close()


async def udp_exchange(server: Server, wire: bytes, timeout: float) -> bytes:
    """One exchange over UDP (see :func:`_udp`), bounded as :func:`_bounded` says."""
    return await _bounded(_udp(server, wire), timeout)


async def tcp_exchange(server: Server, wire: bytes, timeout: float) -> bytes:
    """One exchange over TCP (connect, query, reply), bounded as :func:`_bounded` says."""
    return await _bounded(_tcp(server, wire), timeout)


def network_transport(timeout: float = 2.0) -> Transport:
    """UDP or TCP to the server, with ``timeout`` seconds per exchange at most (less when
    the question's deadline comes first)."""

    async def exchange(server: Server, wire: bytes, tcp: bool) -> bytes:
        if tcp:
            return await tcp_exchange(server, wire, timeout)
        return await udp_exchange(server, wire, timeout)

    return exchange
