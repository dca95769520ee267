"""The table of open TCP connections: who may connect, who makes room, what gets logged.

A server has ``tcp-clients`` connection slots; one client (an IPv4 address, an IPv6 /64) may
hold ``tcp-clients-per-address`` of them.  A connection over either limit makes room by
closing the longest-idle connection (one waiting for its next query) of that client, or of
everyone when the server is full; when every connection is busy answering, the newcomer is
refused.  So one client can never lock the others out, and a busy client is never cut off
mid-answer.  Refusals and evictions are counted and logged at most once per
:data:`LOG_EVERY` seconds, never once per connection.

Time is an argument (``now``, the event loop's clock).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
import termios
from dataclasses import dataclass
from typing import Any, Protocol

LOG_EVERY = 10.0  # seconds between two "connections refused" log lines


class Abortable(Protocol):
    def abort(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def reset(transport: Abortable) -> None:
    """Close a connection at once with a RST, dropping whatever is queued for it.  A
    plain close would leave the kernel trying to deliver responses to a client that does
    not read (an orphan socket holding its send buffer until TCP gives up)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def unsent(transport: Abortable) -> int:
    """Bytes the kernel still holds for the peer (sent but not acknowledged, or not sent
    because the peer's window is shut): a client that does not read keeps this above 0."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", buf)[0])


@dataclass(eq=False, slots=True)
class Conn:
    """One open connection.  ``idle_since``: when it started waiting for a query (None
    while a query is being answered)."""

    transport: Abortable
    client: str
    key: str
    idle_since: float | None


def client_key(client: str) -> str:
    """What the per-address limit counts: the IPv4 address, or the IPv6 /64 (one host
    usually holds a whole /64)."""
    try:
        addr = ipaddress.ip_address(client)
    except ValueError:
        return client
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return client


class TcpClients:
    """The open connections of one process."""

    def __init__(self) -> None:
        self.conns: dict[Conn, None] = {}  # an ordered set
        self.per_key: dict[str, int] = {}
        self.refused = 0  # since start
        self.evicted = 0
        self._unlogged = 0  # refusals and evictions not yet logged
        self._last_client = ""
        self._logged_at = float("-inf")

    def __len__(self) -> int:
        return len(self.conns)

    def admit(
        self, transport: Abortable, client: str, now: float, limit: int, per_client: int
    ) -> Conn | None:
        """A slot for a new connection from ``client`` (None: refused; the caller closes
        it).  May abort the longest-idle connection to make room."""
        key = client_key(client)
        full = (self.per_key.get(key, 0) >= per_client and not self._evict_oldest_idle(key)) or (
            len(self.conns) >= limit and not self._evict_oldest_idle(None)
        )
        if full:
            self.refused += 1
            self._unlogged += 1
            self._last_client = client
            return None
        conn = Conn(transport, client, key, now)
        self.conns[conn] = None
        self.per_key[key] = self.per_key.get(key, 0) + 1
        return conn

    def drop(self, conn: Conn) -> None:
        """Forget ``conn`` (closed); dropping twice is harmless."""
        if self.conns.pop(conn, 0) is None:
            left = self.per_key[conn.key] - 1
            if left:
                self.per_key[conn.key] = left
            else:
                del self.per_key[conn.key]

    def abort_all(self) -> None:
        for conn in list(self.conns):
            reset(conn.transport)
            self.drop(conn)

    def _evict_oldest_idle(self, key: str | None) -> bool:
        oldest: Conn | None = None
        for conn in self.conns:
            if conn.idle_since is None or (key is not None and conn.key != key):
                continue
            if oldest is None or conn.idle_since < (oldest.idle_since or 0.0):
                oldest = conn
        if oldest is None:
            return False
        reset(oldest.transport)
        self.drop(oldest)
        self.evicted += 1
        self._unlogged += 1
        self._last_client = oldest.client
        return True

    def _refuse(self, client: str) -> None:
        self.refused += 1
        self._unlogged += 1
        self._last_client = client

    def log_line(self, now: float) -> str | None:
        """A line to log about refusals and evictions, at most once per LOG_EVERY
        seconds (None: nothing new, or logged too recently)."""
        if not self._unlogged or now - self._logged_at < LOG_EVERY:
            return None
        line = (
            f"{self._unlogged} TCP connection(s) refused or closed to make room "
            f"(tcp-clients, tcp-clients-per-address); last client {self._last_client}; "
            f"{len(self.conns)} open"
        )
        self._unlogged = 0
        self._logged_at = now
        return line
