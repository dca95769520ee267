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
        raise _out_of_time(left, timeout) from None


def _out_of_time(left: float, timeout: float) -> TimeoutError:
    """The error of a wait for a reply that ended: :class:`Expired` when the question's
    deadline (``left`` seconds away when it started) ended it, else the timeout did."""
    if left < timeout:
        return Expired(f"no reply within the question's last {left:.3f} s")
    return TimeoutError()


def _udp_socket(server: Server, wire: bytes) -> socket.socket:
    """A fresh non-blocking socket connected to ``server`` (so a new random source port
    per question, RFC 5452 s9.2, and the kernel drops datagrams from any other address and
    reports ICMP errors as OSError), ``wire`` already sent on it when the send did not
    block (a datagram is sent whole or not at all)."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(server)  # an address literal: no name resolution
    except BaseException:
        sock.close()
        raise
    return sock


async def _tcp(server: Server, wire: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server[0], server[1])
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        return await reader.readexactly(length)
    finally:
        writer.close()


def _reply(sock: socket.socket, ident: bytes) -> bytes | None:
    """The first datagram waiting on ``sock`` whose ID is ``ident`` (others, not replies to
    this query, are read and dropped); None when none is waiting; OSError for an ICMP
    error (port unreachable and the like)."""
    while True:
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return None
        if data[:2] == ident:
            return data


async def udp_exchange(server: Server, wire: bytes, timeout: float) -> bytes:
    """One exchange over UDP: ``wire`` sent from a fresh socket (:func:`_udp_socket`), and
    the first reply with the same ID returned, waited for as :func:`_bounded` says.

    The reply is read at once if it is already there (a server on the same host often
    answers within the send); else one future that a reader callback completes and one
    timer wait for it: no sock_recv/asyncio.timeout, so no timeout context manager and no
    task cancel/uncancel when the timer fires (docs/resolver-benchmarks.md, "Helper
    resxport")."""
    left = time_left()
    if left <= 0:
        raise Expired("the question's deadline passed")
    ident = wire[:2]
    sock = _udp_socket(server, wire)
    try:
        try:
            sock.send(wire)
        except BlockingIOError:  # the socket's send buffer is full: wait for room
            await asyncio.get_running_loop().sock_sendall(sock, wire)
        data = _reply(sock, ident)
        if data is not None:
            return data
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            if reply.done():
                return
            try:
                data = _reply(sock, ident)
            except OSError as exc:
                reply.set_exception(exc)
                return
            if data is not None:
                reply.set_result(data)

        def expired() -> None:
            if not reply.done():
                reply.set_exception(_out_of_time(left, timeout))

        fd = sock.fileno()
        loop.add_reader(fd, readable)
        timer = loop.call_later(min(timeout, left), expired)
        try:
            return await reply
        finally:
            timer.cancel()
            loop.remove_reader(fd)
    finally:
        sock.close()


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
