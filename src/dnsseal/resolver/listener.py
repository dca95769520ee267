"""UDP serving for the resolver: listener threads answering repeated questions from a cache
of rendered responses, everything else handed to the event loop.

The answer cache (:class:`AnswerCache`) maps a query's octets after the ID (flags, the
question, the OPT record: everything the response depends on) to the response's octets
after the ID, so a hit is the query's ID plus a copy.  It is filled by the service with
responses made from cached results, and emptied whenever the clock's second changes:
TTLs are counted down by re-rendering, at most once per second per question (a response
may show a TTL up to a second too high, never an expired record).

The threads block in the kernel.  Given a datagram loop (the authoritative server's C
extension, ``dnsseal.server._udpfast.Loop``, passed in by the command layer), each thread
runs it: batches through recvmmsg/sendmmsg, hits answered in C from
``AnswerCache.udp_cache`` (the attribute names it reads are the authoritative engine's;
its byte path is given nothing to answer, so every miss comes back here).  The C loop has
no access list, so it is used only when every client that can reach the socket is allowed
(a loopback address with loopback allowed, or an allow list covering every address);
otherwise, or without the extension, a Python loop checks the client first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

PAYLOAD = 1232
# Rendered responses kept at once (the dict is emptied when full).  They live a second at
# most, so this bounds distinct questions per second, and memory to ~20 MB.
CACHE_LIMIT = 20_000

DatagramLoop = Callable[[int, int], Any]  # (fd, cache limit) -> loop with serve()/send()
Slow = Callable[[bytes, tuple[Any, ...]], None]
Count = Callable[[bytes, bytes], None]  # (query, response): a rendered answer sent


class AnswerCache:
    """Rendered responses; the attributes are those the C datagram loop reads."""

    udp_payload = PAYLOAD

    def __init__(self) -> None:
        self.udp_cache: dict[bytes, bytes] = {}
        self.names: dict[bytes, object] = {}  # the byte path's lanes: nothing here
        self.exist: dict[bytes, object] = {}
        self.second = -1
        self.generation = 0
        self.hits = 0

    @property
    def wire(self) -> AnswerCache:
        return self

    @staticmethod
    def answer(query: bytes, tcp: bool, payload: int) -> bytes | None:
        """The byte path: answers nothing, so a miss goes back to Python."""
        return None

    def tick(self, now: int) -> None:
        """Drop every rendered response when the second changes (TTLs move on)."""
        if now != self.second:
            self.second = now
            self.generation += 1
            self.udp_cache = {}

    def put(self, query: bytes, response: bytes, generation: int) -> None:
        """Keep ``response`` to ``query`` if it was rendered in the current second."""
        if generation != self.generation or len(query) < 12 or len(response) < 12:
            return
        cache = self.udp_cache
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[query[2:]] = response[2:]


def fast_path_safe(
    host: str, allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether every client that can send to ``host`` is in ``allow`` (the C loop answers
    cache hits without asking)."""
    addr = ipaddress.ip_address(host)
    if any(net.version == addr.version and net.prefixlen == 0 for net in allow):
        return True
    if addr.is_loopback:
        # Only this host can reach a loopback address, from any loopback source address
        # (127.0.0.0/8 for IPv4; ::1 for IPv6): all of them must be allowed.
        sources = ipaddress.ip_network("127.0.0.0/8" if addr.version == 4 else "::1/128")
        return any(
            net.version == sources.version and sources.subnet_of(net)  # type: ignore[arg-type]
            for net in allow
        )
    return False


class UdpListener:
    """``threads`` threads answering one UDP socket (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        cache: AnswerCache,
        loop: asyncio.AbstractEventLoop,
        slow: Slow,
        allowed: Callable[[str], bool],
        native: DatagramLoop | None,
        threads: int = 1,
        count: Count | None = None,
    ) -> None:
        """``count``: called for each answer the Python loop sends (the C loop counts its
        own in the words it was given)."""
        self.sock = sock
        self.count = count
        self.cache = cache
        self.loop = loop
        self.slow = slow
        self.allowed = allowed
        self.native = native
        self.stopping = False
        self.dropped = 0
        run = self._run_native if native is not None else self._run
        self.threads = [
            threading.Thread(target=run, name=f"dnsseal-resolver-udp{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        self.sock.setblocking(True)
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):  # wakes the blocked receive; ENOTCONN is normal
            self.sock.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(5)
        self.sock.close()

    def _handoff(self, data: bytes, addr: tuple[Any, ...]) -> bool:
        try:
            self.loop.call_soon_threadsafe(self.slow, data, addr)
        except RuntimeError:  # the event loop is closed: we are stopping
            return False
        return True

    def _run_native(self) -> None:
        assert self.native is not None
        dl = self.native(self.sock.fileno(), CACHE_LIMIT)
        cache = self.cache
        while True:
            try:
                misses, hits, _, _, _, eof = dl.serve(cache)
            except OSError as e:
                if self.stopping:
                    return
                log.debug("[resolver] UDP receive error: %s", e)
                continue
            cache.hits += hits
            if self.stopping:
                return
            for data, addr, _ in misses:
                if not self._handoff(data, addr):
                    return
            if eof and not misses and self.stopping:
                return

    def _run(self) -> None:
        recv, send = self.sock.recvfrom, self.sock.sendto
        cache, count = self.cache, self.count
        verdicts: dict[str, bool] = {}
        while True:
            try:
                data, addr = recv(65535)
            except OSError as e:
                if self.stopping:
                    return
                log.debug("[resolver] UDP receive error: %s", e)
                continue
            if self.stopping:
                return
            if addr is None:
                continue
            ok = verdicts.get(addr[0])
            if ok is None:
                ok = self.allowed(addr[0])
                if len(verdicts) > 10000:
                    verdicts.clear()
                verdicts[addr[0]] = ok
            hit = cache.udp_cache.get(data[2:]) if ok and len(data) >= 12 else None
            if hit is None:
                if not self._handoff(data, addr):
                    return
                continue
            cache.hits += 1
            response = data[:2] + hit
            if count is not None:
                count(data, response)
            try:
                send(response, addr)
            except OSError:  # send buffer full or peer gone: UDP may drop
                self.dropped += 1


def udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        with contextlib.suppress(OSError):  # bursts queue in the kernel while we are busy
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
