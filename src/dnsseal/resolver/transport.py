"""The network transport: one DNS exchange over UDP or TCP (RFC 1035 s4.2, RFC 7766).

A transport is any ``async (server, wire_query, tcp) -> wire_response`` callable; tests pass
an in-memory one, the resolver uses :func:`network_transport`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

Server = tuple[str, int]
Transport = Callable[[Server, bytes, bool], Awaitable[bytes]]


async def udp_exchange(server: Server, wire: bytes, timeout: float) -> bytes:
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
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(sock, 65535)
                # Ignore datagrams that are not replies to this query (ID mismatch).
                if len(data) >= 2 and data[:2] == wire[:2]:
                    return data
    finally:
        sock.close()


async def tcp_exchange(server: Server, wire: bytes, timeout: float) -> bytes:
    async def go() -> bytes:
        reader, writer = await asyncio.open_connection(server[0], server[1])
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()

    return await asyncio.wait_for(go(), timeout)


def network_transport(timeout: float = 2.0) -> Transport:
    """UDP or TCP to the server, with ``timeout`` seconds per exchange."""

    async def exchange(server: Server, wire: bytes, tcp: bool) -> bytes:
        if tcp:
            return await tcp_exchange(server, wire, timeout)
        return await udp_exchange(server, wire, timeout)

    return exchange
