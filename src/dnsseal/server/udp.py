"""UDP serving: one thread per socket, blocked in the kernel until datagrams arrive.

The thread answers what the byte-level path (:class:`dnsseal.proto.wiretable.WireTable`)
can answer, with a response cache in front, and hands every other datagram to the event
loop thread, so the engine's general path never runs in two threads at once.

Where the C extension :mod:`dnsseal.server._udpfast` is built (it is, by ``pip install``
with a C compiler), the thread runs its datagram loop: batches of datagrams through
``recvmmsg``/``sendmmsg``, the response cache and the byte path's "name seen before" lane
answered in C, everything else handed back here and answered as before.  Otherwise, or with
``DNSSEAL_UDP_LOOP=python`` in the environment, a pure-Python loop does the same one
datagram at a time with ``recvfrom``/``sendto``; both give the same answers
(tests/server/test_udpfast.py).

Every response is counted in :data:`dnsseal.server.counters.QUERIES` (this process's slot):
by the C loop itself for what it sends, by the Python loop per datagram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from types import ModuleType

from dnsseal.proto.engine import Engine
from dnsseal.proto.wiretable import NATIVE_HELPERS
from dnsseal.server import counters
from dnsseal.storage.serverconfig import Endpoint

log = logging.getLogger(__name__)

UDP_CACHE_LIMIT = 100_000  # byte-path responses kept per process (dropped whole when full)
# (query, response, client address) -> what to send instead (None: nothing)
ResponseFilter = Callable[[bytes, bytes, tuple[str, int]], bytes | None]
LOOP_ENV = "DNSSEAL_UDP_LOOP"  # "python": the pure-Python loop even where the C one is built

_udpfast: ModuleType | None
try:
    from dnsseal.server import _udpfast as _built

    _built.configure(*NATIVE_HELPERS)
    if (getattr(_built, "SLOT_WORDS", None), getattr(_built, "TRUNC_WORD", None)) != (
        counters.SLOT_WORDS,
        counters.TRUNC_WORD,
    ):  # built from another version of the counter layout: it would count wrong
        log.warning("[server] _udpfast was built for another query counter layout: "
                    "the Python UDP loop answers (rebuild it: pip install .)")  # fmt: skip
        raise ImportError("_udpfast: query counter layout differs")
    if getattr(_built, "EXIST_SLOTS", 0) != 1:  # built before WireTable.exist held slots
        log.warning("[server] _udpfast was built for another answer table layout: "
                    "the Python UDP loop answers (rebuild it: pip install .)")  # fmt: skip
        raise ImportError("_udpfast: answer table layout differs")
    _udpfast = _built
except ImportError:  # not built (no C compiler at install time): the Python loop answers
    _udpfast = None


def native_loop() -> bool:
    """Whether listeners run the C datagram loop (built, and not switched off)."""
    return _udpfast is not None and os.environ.get(LOOP_ENV, "") != "python"


class UdpListener:
    """Answers UDP queries on one socket from a thread doing blocking ``recvfrom`` and
    ``sendto``: no event loop round per datagram, and when worker processes share the
    socket the kernel hands each datagram to one waiting process (even load, unlike
    per-process SO_REUSEPORT sockets, which hash a few client ports unevenly).

    The thread runs only the byte-level answer path (:class:`WireTable`, which reads the
    engine's current zone set); every other datagram is passed to the event loop thread
    (``slow``), so the general path never runs in two threads at once."""

    def __init__(
        self,
        sock: socket.socket,
        engine: Engine,
        loop: asyncio.AbstractEventLoop,
        slow: Callable[[bytes, tuple[str, int]], None],
        owner: bool,
        limit: ResponseFilter | None = None,
    ) -> None:
        """``owner``: this process made the socket and shuts it down on stop (a worker
        leaves a shared socket alone: it exits with its thread).  ``limit`` (response rate
        limiting): every response passes through it, and it says what to send instead
        (None: nothing); with it the Python loop runs, since the C loop answers from its
        caches without asking."""
        self.sock = sock
        self.engine = engine
        self.loop = loop
        self.slow = slow
        self.owner = owner
        self.limit = limit
        self.dropped_replies = 0
        self.stopping = False
        run = self._run_native if native_loop() and limit is None else self._run
        self.thread = threading.Thread(target=run, name="dnsseal-udp", daemon=True)

    def start(self) -> None:
        self.sock.setblocking(True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        if self.owner:
            # Wakes the blocked recvfrom (Linux: it returns b"", None); ENOTCONN is normal.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.thread.join(5)
            self.sock.close()

    def _run_native(self) -> None:
        """The C loop: it answers from the names lane, the response cache and the byte
        path and sends those; what it returns (the general path's) is answered here exactly
        as :meth:`_run` answers it."""
        assert _udpfast is not None
        loop = _udpfast.Loop(self.sock.fileno(), UDP_CACHE_LIMIT, counters.QUERIES.buffer())
        engine = self.engine
        handoff, slow = self.loop.call_soon_threadsafe, self.slow
        stats = engine.stats
        by_rcode = stats.by_rcode
        while True:
            try:
                # It reads engine.udp_cache, engine.wire and engine.udp_payload once the
                # datagrams are in (a reload may have swapped them while it waited).
                misses, hits, fast, nx, bytepath, eof = loop.serve(engine)
            except OSError as e:
                if self.stopping:
                    return
                log.debug("[server] UDP receive error: %s", e)
                continue
            stats.queries += hits + fast + nx + bytepath
            if fast:  # the byte path counts its own; the lanes are NOERROR and NXDOMAIN
                by_rcode[0] = by_rcode.get(0, 0) + fast
            if nx:
                by_rcode[3] = by_rcode.get(3, 0) + nx
            self.dropped_replies = loop.dropped
            if self.stopping:
                return
            if eof and not misses:
                continue
            replies: list[tuple[bytes, bytes]] = []
            for data, addr, raw in misses:
                # None from the byte path again (the general path's), unless it raised
                try:
                    wire = engine.wire.answer(data, False, engine.udp_payload)
                except Exception:  # a bug must not kill the listener: log, drop the packet
                    log.exception("[server] error answering a UDP query from %s", addr[0])
                    continue
                if wire is not None:  # the zone set changed in between
                    stats.queries += 1
                    replies.append((wire, raw))
                    continue
                try:
                    handoff(slow, data, addr)
                except RuntimeError:  # the loop is closed: we are stopping
                    return
            if replies:
                loop.send(replies)

    def _run(self) -> None:
        sock, engine = self.sock, self.engine
        recv, send = sock.recvfrom, sock.sendto
        handoff, slow = self.loop.call_soon_threadsafe, self.slow
        stats = engine.stats
        limit = self.limit
        count = counters.QUERIES.count
        region = counters.UDP_THREAD
        while True:
            try:
                data, addr = recv(65535)
            except OSError as e:  # e.g. an ICMP error queued for an earlier reply
                if self.stopping:
                    return
                log.debug("[server] UDP receive error: %s", e)
                continue
            if addr is None or self.stopping:
                if self.stopping:
                    return
                continue
            stats.queries += 1
            key = data[2:]
            cache = engine.udp_cache
            hit = cache.get(key)
            wire: bytes | None
            if hit is not None:
                wire = data[:2] + hit
            else:
                try:
                    wire = engine.wire.answer(data, False, engine.udp_payload)
                except Exception:  # a bug must not kill the listener: log, drop the packet
                    log.exception("[server] error answering a UDP query from %s", addr[0])
                    continue
                if wire is None:
                    stats.queries -= 1  # counted by engine.handle
                    try:
                        handoff(slow, data, addr)
                    except RuntimeError:  # the loop is closed: we are stopping
                        return
                    continue
                if len(cache) >= UDP_CACHE_LIMIT:
                    cache.clear()
                cache[key] = wire[2:]
            count(region, data, wire)  # the answer given (rate limiting is counted apart)
            if limit is not None:
                limited = limit(data, wire, addr)
                if limited is None:
                    continue
                wire = limited
            try:
                send(wire, addr)
            except OSError:  # send buffer full or peer gone: UDP may drop
                self.dropped_replies += 1


def udp_socket(ep: Endpoint, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # Bursts must queue in the kernel, not be dropped, while the loop is busy; the
        # kernel caps this at net.core.rmem_max.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind((ep.host, ep.port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
