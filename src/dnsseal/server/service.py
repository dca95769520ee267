"""The running server: UDP and TCP listeners, reloads, NOTIFY, the control socket.

:class:`AuthServer` owns one :class:`dnsseal.proto.engine.Engine` and the sockets.  Every
packet goes through ``engine.handle``; this module only frames bytes (2-byte length prefix on
TCP), bounds what a TCP client may take (slots per address, idle and write timeouts, queued
bytes: :mod:`dnsseal.server.tcpclients`), passes UDP responses through the response rate
limit when it is on (:mod:`dnsseal.proto.rrl`), swaps zone sets on reload and sends NOTIFY
with retries.  Its sockets come bound (:mod:`dnsseal.server.binding`).  Log lines carry the
zone (``[example.com] ...``) or ``[server]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import signal
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig

from dnsseal import aio, clock
from dnsseal.crypto import pkcs11
from dnsseal.durations import format_human_time
from dnsseal.proto.engine import Engine
from dnsseal.proto.fastpath import question_type
from dnsseal.proto.notify import RETRY_TIMEOUTS, is_ack, make_notify
from dnsseal.proto.rrl import RateLimitConfig, RateLimiter, Verdict, classify, slip_response
from dnsseal.proto.snapshot import ZoneSnapshot
from dnsseal.server import counters, dsdriver, sdnotify
from dnsseal.server.binding import TCP_BACKLOG, Bound, bind_listeners
from dnsseal.server.control import ControlServer
from dnsseal.server.history import JournalHistory
from dnsseal.server.maintenance import Maintenance
from dnsseal.server.observe import Observability
from dnsseal.server.tcpclients import Abortable, TcpClients, reset, unsent
from dnsseal.server.udp import ResponseFilter, UdpListener
from dnsseal.server.update import Updates, is_update
from dnsseal.server.xfrin import Secondary
from dnsseal.server.zonehandle import OnlineHook, ZoneHandle, serve_installed
from dnsseal.server.zones import (
    ZoneState,
)
from dnsseal.server.zonesync import MainLinks, WorkerLink
from dnsseal.server.zonetable import ZoneTable
from dnsseal.storage.serverconfig import Endpoint, ServerConfig, ensure_dir, load_config

log = logging.getLogger(__name__)

RRL_LOG_EVERY = 10.0  # seconds between two "rate limit" log lines
TCP_WRITE_BUFFER = 64 * 1024  # bytes of responses queued per connection before waiting
XFR_QTYPES = {int(dns.rdatatype.AXFR), int(dns.rdatatype.IXFR)}


class _Stuck(Exception):
    """A TCP client that does not read its responses."""


class _NotifyReply(asyncio.DatagramProtocol):
    """Resolves ``fut`` with the first datagram acknowledging ``msg``."""

    def __init__(self, msg: dns.message.Message, fut: asyncio.Future[bytes]) -> None:
        self.msg = msg
        self.fut = fut

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.fut.done() and is_ack(self.msg, data):
            self.fut.set_result(data)


class AuthServer:
    """An authoritative server for the zones of ``config``.  Use :meth:`run` (until stop)
    or :meth:`start` / :meth:`stop` from an existing event loop (tests)."""

    def __init__(
        self,
        config: ServerConfig,
        config_path: Path | None = None,
        worker: bool = False,
        zones: dict[str, ZoneState] | None = None,
        worker_pids: list[int] | None = None,
        links: list[tuple[int, socket.socket]] | None = None,
        link: socket.socket | None = None,
        bound: Bound | None = None,
    ) -> None:
        """``worker``: an extra process sharing the ports (no control socket, no NOTIFY, no
        journal writes; reloads on SIGHUP from the main process).  ``zones``: zones already
        loaded (before forking workers).  ``worker_pids``, in the main process: the workers
        to signal on reload and stop.  ``links`` (main: worker pid and socket) and ``link``
        (worker: its socket to the main process) carry inline-signed zone versions and
        relayed UPDATEs (:mod:`dnsseal.server.zonesync`).  ``bound``: the listeners (and, in
        the main process, the control socket) bound before anything was written and before
        the fork, shared by every process (:mod:`dnsseal.server.binding`); without it
        :meth:`start` binds them."""
        self.config_path = config_path
        self.worker = worker
        self.worker_pids: list[int] = list(worker_pids or [])
        self.engine = Engine(udp_payload=config.udp_payload, clock=clock.now)
        self.history: JournalHistory | None = None
        if config.state_dir is not None:
            ensure_dir(config.state_dir)
            self.history = JournalHistory(config.state_dir, writer=not worker)
            self.engine.older_versions = self.history.ixfr
        self.table = ZoneTable(config, self.engine, zones, port=self)
        self.started_at = 0
        self.reloads = 0
        self._udp: list[UdpListener] = []
        self.bound = bound
        self._tcp_servers: list[asyncio.Server] = []
        self._control: ControlServer | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tcp = TcpClients()
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._rrl: RateLimiter | None = None
        self._rrl_logged_at = float("-inf")
        self._rrl_unlogged = 0
        self._reload_lock = asyncio.Lock()
        self.automation = Maintenance(self.table, self)  # inline signing, the zones' drivers
        self.updates = Updates(self.table)
        self.links = MainLinks(links, self._update_reply) if links else None
        self.table.links = self.links
        if self.links is not None:
            self.links.current = self.table.current_model
        self.link = (
            WorkerLink(link, self._install, functools.partial(serve_installed, self.table))
            if link is not None
            else None
        )
        self.observe = Observability(self)  # HTTP listener, alerts, audit of reloads

    @property
    def config(self) -> ServerConfig:
        return self.table.config

    @config.setter
    def config(self, config: ServerConfig) -> None:
        self.table.config = config

    @property
    def zones(self) -> dict[str, ZoneHandle]:
        return self.table.zones

    @zones.setter
    def zones(self, zones: dict[str, ZoneHandle]) -> None:
        self.table.zones = zones

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the zones, bind every listener and the control socket."""
        self.started_at = clock.now()
        if self.links is not None:
            await self.links.start()
        if self.link is not None:
            await self.link.start()
        await self.reload(initial=True)
        loop = asyncio.get_running_loop()
        # The signals are ours before any listener answers: a SIGTERM sent once the server
        # answers (a supervisor, a test) stops it cleanly, never by the default action.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._spawn_reload)
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
        bound = self.bound
        if bound is None:  # tests and embedders: bind now (the CLI binds before writing)
            bound = Bound()
            try:
                bind_listeners(self.config, "server.listen", bound)
            except BaseException:
                bound.close()
                raise
        rate_limit = self.config.limits.rate_limit
        limit: ResponseFilter | None = None
        if rate_limit is not None:
            self._rrl = RateLimiter(RateLimitConfig(**dict(rate_limit)))
            limit = self._rate_limit_filter(self._rrl)
            log.info("[server] response rate limiting on: %s", self._rrl.config)
        for ep, usock, tsock in zip(self.config.listen, bound.udp, bound.tcp, strict=True):
            # A worker leaves the shared UDP socket alone on stop: it exits with its thread.
            listener = UdpListener(
                usock, self.engine, loop, self._udp_slow(usock, limit), not self.worker, limit
            )
            listener.start()
            self._udp.append(listener)
            server = await asyncio.start_server(self._tcp_client, sock=tsock, backlog=TCP_BACKLOG)
            self._tcp_servers.append(server)
            log.info("[server] listening on %s (UDP and TCP)", ep)
        if self.config.control is not None and not self.worker:
            self._control = ControlServer(self, self.config.control)
            await self._control.start(bound.control)
            bound.control = None  # the control server owns it now (and removes it on stop)
        await self.observe.start()
        if self.worker_pids:
            log.info("[server] %d worker processes share the ports", len(self.worker_pids))

    async def run(self) -> None:
        """Start, serve until stopped (SIGTERM, SIGINT, ``dnsseal ctl stop``), clean up."""
        await self.start()
        try:
            await self.wait_stopped()
        finally:
            await self.stop()

    async def wait_stopped(self) -> None:
        """Return once a stop was requested."""
        await self._stopped.wait()

    def request_stop(self) -> None:
        log.info("[server] stopping")
        if not self.worker:
            sdnotify.stopping()
        self._stopped.set()

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        await self._stop_workers()
        await self.automation.stop()
        for link in (self.links, self.link):
            if link is not None:
                await link.stop()
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        if self._control is not None:
            await self._control.stop()
        await self.observe.stop()
        for listener in self._udp:
            listener.stop()
        self._udp.clear()
        for s in self._tcp_servers:
            s.close()
        self._tcp.abort_all()
        if self._tcp_tasks:  # let them see the reset and end, rather than be cancelled
            await asyncio.wait(list(self._tcp_tasks), timeout=2)
        for s in self._tcp_servers:
            await s.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        self._tcp_servers.clear()

    def spawn(self, coro: object) -> None:
        """Run ``coro`` as a task the server cancels when it stops."""
        self._spawn(coro)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reload_workers(self) -> None:
        """Have the worker processes reload (SIGHUP): a secondary's copy expired or is
        live again, which they read from the copy's file (server.zones.expire_by_copy)."""
        self._signal_workers(signal.SIGHUP)

    def _signal_workers(self, sig: int) -> None:
        for pid in self.worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    async def _stop_workers(self, timeout: float = 10) -> None:
        """SIGTERM every worker, wait for it (SIGKILL after ``timeout``), reap it."""
        self._signal_workers(signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + timeout
        for pid in self.worker_pids:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if asyncio.get_running_loop().time() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
                    break
                await asyncio.sleep(0.05)
        self.worker_pids = []

    def _spawn_reload(self) -> None:
        log.info("[server] SIGHUP: reloading")
        self._spawn(self._sighup_reload())

    async def _sighup_reload(self) -> None:
        """A reload systemd can follow (RELOADING=1, then READY=1 with the outcome)."""
        if not self.worker:
            sdnotify.reloading()
        problems = await self.reload()
        if not self.worker:
            sdnotify.ready(sdnotify.status(self, problems))

    # -- zones ----------------------------------------------------------------------------

    async def reload(self, initial: bool = False) -> list[str]:
        """Re-read the config (if from a file) and every zone; swap the new zone set in and
        send NOTIFY for zones with a new serial.  Returns the problems (a zone with a
        problem keeps its previous version, or is not served if it never loaded)."""
        async with self._reload_lock:
            problems: list[str] = []
            if not initial and self.config_path is not None:
                try:
                    new_config = await asyncio.to_thread(load_config, self.config_path)
                except Exception as e:
                    log.error("[server] config not reloaded: %s", e)
                    return [f"config: {e}"]
                for option in ("listen", "control", "workers", "state_dir", "limits"):
                    if getattr(new_config, option) != getattr(self.config, option):
                        log.warning(
                            "[server] server.%s changed: takes effect at the next restart",
                            option.replace("_", "-"),
                        )
                        new_config = dataclasses.replace(
                            new_config, **{option: getattr(self.config, option)}
                        )
                self.config = new_config
            if self.config.pkcs11_module is not None:
                pkcs11.set_default_module(str(self.config.pkcs11_module))
            _, inline = await self.table.reload(self, initial, problems)
            self.engine.udp_payload = self.config.udp_payload
            # restored and maintained in batches (one worker-thread call each), timers started
            problems += await self.automation.start_many(inline, "load" if initial else "reload")
            if not self.worker:
                self._start_secondaries()
            if not initial:
                self.reloads += 1
            if not initial:
                self._signal_workers(signal.SIGHUP)  # workers reload the same files
            return problems

    def _start_secondaries(self) -> None:
        """Keep every plain secondary's copy current (server.xfrin): a refresh loop per
        zone, started once and kept across reloads."""
        for state in self.zones.values():
            if not state.config.secondary:
                continue
            if state.secondary is None:
                state.secondary = Secondary(self.automation, state)
            state.secondary.start()

    # -- what a zone handle needs from the server (zonehandle.ServerPort) -------------------

    def send_notify(self, handle: ZoneHandle) -> None:
        """NOTIFY ``handle``'s also-notify targets of its new version (not from a worker)."""
        if not self.worker:
            self._spawn(self.notify(handle.name))

    def online(self, handle: ZoneHandle) -> OnlineHook | None:
        return dsdriver.online(handle)

    def record(self, snap: ZoneSnapshot, now: int) -> None:
        if self.history is not None:
            self.history.record(snap, now)

    def _install(self, zone: str, snap: ZoneSnapshot) -> None:
        """In a worker: serve ``snap``, a version of ``zone`` made by the main process."""
        state = self.zones.get(zone)
        if state is None:
            log.warning("[%s] worker: version %d of an unknown zone", zone, snap.serial)
            return
        state.install_pushed(snap, dsdriver.worker_online(state, self.config, snap), swap=False)
        log.debug("[%s] worker: serving serial %d", zone, snap.serial)

    async def _update_reply(self, wire: bytes, client: str) -> bytes:
        """In the main process: the reply to an UPDATE (from a client or relayed by a
        worker), sent only once every worker serves the version it made."""
        reply = await self.updates.handle_update(wire, client)
        counters.update_answered(self.zones, wire, reply)
        if self.links is not None:
            await self.links.wait_current()
        return reply

    async def _answer_update(self, wire: bytes, client: str) -> bytes:
        """The reply to an UPDATE received by this process (a worker relays it)."""
        if self.link is not None:
            return await self.link.relay(wire, client)
        if self.worker:  # no link to the main process: the engine says no
            out = self.engine.handle(wire, False, client)
            return out[0] if out else b""
        return await self._update_reply(wire, client)

    async def notify(self, zone: str) -> list[str]:
        """Send NOTIFY for ``zone`` to its also-notify targets, retrying unanswered ones
        (RFC 1996 3.6).  Returns one line per target saying how it went."""
        state = self.zones.get(zone)
        if state is None or state.served is None:
            return [f"{zone}: not served"]
        snap = state.served.snapshot
        key = None
        if state.config.notify_key:
            key = self.config.keys[state.config.notify_key].to_dnspython()
        results = await asyncio.gather(
            *(self._notify_one(zone, snap, target, key) for target in state.config.also_notify)
        )
        state.notify_log = list(results)
        return list(results)

    async def _notify_one(
        self, zone: str, snap: ZoneSnapshot, target: Endpoint, key: dns.tsig.Key | None
    ) -> str:
        # An unpredictable ID: the acknowledgement is matched by it.
        msg = make_notify(snap, secrets.randbelow(65536), key)
        wire = msg.to_wire()
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        for attempt, timeout in enumerate(RETRY_TIMEOUTS, 1):
            fut: asyncio.Future[bytes] = loop.create_future()
            transport, _ = await loop.create_datagram_endpoint(
                lambda f=fut: _NotifyReply(msg, f),  # type: ignore[misc]
                remote_addr=(target.host, target.port),
                family=family,
            )
            try:
                transport.sendto(wire)
                counters.notify_sent(zone)
                await aio.wait_for(fut, timeout)
            except TimeoutError:
                log.info(
                    "[%s] NOTIFY serial %d to %s: no answer (try %d)",
                    zone,
                    snap.serial,
                    target,
                    attempt,
                )
                continue
            finally:
                transport.close()
            log.info("[%s] NOTIFY serial %d to %s acknowledged", zone, snap.serial, target)
            return f"{target}: acknowledged serial {snap.serial}"
        log.warning("[%s] NOTIFY serial %d to %s: gave up", zone, snap.serial, target)
        return f"{target}: no answer after {len(RETRY_TIMEOUTS)} tries"

    def _rate_limit_filter(self, limiter: RateLimiter) -> ResponseFilter:
        """The UDP listeners' response filter for ``limiter``: the response, its slipped
        (TC) form or None (drop).  Called from the UDP thread and the event loop."""
        lock = threading.Lock()

        def check(query: bytes, response: bytes, addr: tuple[str, int]) -> bytes | None:
            kind, name, qtype = classify(query, response)
            now = clock.now()  # whole seconds of the wall clock, as BIND
            with lock:
                before = limiter.limited
                verdict = limiter.decide(addr[0], kind, name, qtype, now)
                if limiter.limited == before:
                    return response
                self._rrl_unlogged += 1
                due = now - self._rrl_logged_at >= RRL_LOG_EVERY
                if due:
                    count, self._rrl_unlogged, self._rrl_logged_at = self._rrl_unlogged, 0, now
            if due:
                log.warning(
                    "[server] rate limit: %d response(s) %s in the last %.0f s; last: %s to %s",
                    count,
                    "would have been limited (log-only)"
                    if limiter.config.log_only
                    else "dropped or slipped",
                    RRL_LOG_EVERY,
                    kind.name,
                    addr[0],
                )
            if verdict == Verdict.SEND:
                return response
            return slip_response(response) if verdict == Verdict.SLIP else None

        return check

    def _udp_slow(
        self, sock: socket.socket, limit: ResponseFilter | None = None
    ) -> Callable[[bytes, tuple[str, int]], None]:
        """What the event loop does with a UDP datagram the byte path left: UPDATEs are
        answered in a task, everything else by the engine's general path at once (then
        through ``limit``, the rate limit, when on)."""

        def answer(data: bytes, addr: tuple[str, int]) -> None:
            if is_update(data):
                self._spawn(self._udp_update(sock, data, addr))
                return
            try:
                out = self.engine.handle(data, False, addr[0])
            except Exception:  # a bug must not stop the server: log it, drop the packet
                log.exception("[server] error answering a UDP query from %s", addr[0])
                return
            counters.QUERIES.answered(counters.UDP_LOOP, data, out, self.zones)
            for response in out:
                wire = response if limit is None else limit(data, response, addr)
                if wire is None:
                    continue
                with contextlib.suppress(OSError):  # UDP may drop
                    sock.sendto(wire, addr)

        return answer

    async def _udp_update(self, sock: socket.socket, wire: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = await self._answer_update(wire, addr[0])
        except Exception:
            log.exception("[server] error answering an UPDATE from %s", addr[0])
            return
        if reply:
            with contextlib.suppress(OSError):
                sock.sendto(reply, addr)

    # -- TCP ------------------------------------------------------------------------------

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer pipelined queries on one connection until EOF, the idle timeout, a
        response the client does not read within the write timeout or a framing error
        (RFC 7766).  Never raises: a client resetting mid-answer just ends it."""
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        transport = writer.transport
        loop = asyncio.get_running_loop()
        limits = self.config.limits
        conn = self._tcp.admit(
            transport, client, loop.time(), limits.tcp_clients, limits.tcp_clients_per_address
        )
        line = self._tcp.log_line(loop.time())
        if line is not None:
            log.warning("[server] %s", line)
        if conn is None:
            reset(transport)
            return
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
            task.add_done_callback(self._tcp_tasks.discard)
        # Responses wait in our buffer only up to TCP_WRITE_BUFFER: beyond it the loop
        # waits (at most tcp-write-timeout) for the client to read before answering more,
        # so a client that never reads costs a bounded buffer, then its connection.
        transport.set_write_buffer_limits(high=TCP_WRITE_BUFFER)
        write_timeout = limits.tcp_write_timeout
        stuck = False  # the client stopped reading: reset, do not wait to deliver
        try:
            while True:
                conn.idle_since = loop.time()
                try:
                    head = await self._tcp_read(reader, transport, 2, conn.idle_since)
                    (length,) = struct.unpack("!H", head)
                    wire = await self._tcp_read(reader, transport, length, conn.idle_since)
                except _Stuck:
                    stuck = True
                    return
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
                    return
                conn.idle_since = None
                # One loop turn per query: a client's pipelined burst, already in the reader's
                # buffer, must not hold the loop while it is answered whole (the other
                # clients, their write timeouts and the memory their queued answers hold:
                # tests/hostile/test_tcp.py).  asyncio.wait_for gave this turn as a side
                # effect (a task per read); aio.wait_for reads in this task.
                await asyncio.sleep(0)
                try:
                    if is_update(wire) and (self.link is not None or not self.worker):
                        out = [await self._answer_update(wire, client)]
                    elif question_type(wire) in XFR_QTYPES:
                        # A whole-zone transfer takes a while to build: not on the loop.
                        out = await asyncio.to_thread(self.engine.handle, wire, True, client)
                    else:
                        out = self.engine.handle(wire, True, client)
                except Exception:
                    log.exception("[server] error answering a TCP query from %s", client)
                    return
                counters.QUERIES.answered(counters.TCP, wire, out, self.zones)
                for msg in out:
                    if transport.is_closing():
                        return
                    writer.write(struct.pack("!H", len(msg)) + msg)
                    if transport.get_write_buffer_size() > TCP_WRITE_BUFFER:
                        try:
                            await aio.wait_for(writer.drain(), write_timeout)
                        except TimeoutError:
                            log.info(
                                "[server] TCP client %s read nothing for %.0f s: closed",
                                client,
                                write_timeout,
                            )
                            stuck = True
                            return
                        except (ConnectionError, OSError):
                            return
        finally:
            self._tcp.drop(conn)
            if stuck or transport.get_write_buffer_size():
                reset(transport)  # close() would wait forever for a client that never reads
            else:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                    await aio.wait_for(writer.wait_closed(), 1)

    async def _tcp_read(
        self, reader: asyncio.StreamReader, transport: Abortable, n: int, since: float
    ) -> bytes:
        """``n`` bytes of the next query, waiting at most tcp-idle-timeout from ``since``.
        While responses sit unread in the kernel, the client must take some of them every
        tcp-write-timeout: the idle clock runs while we wait to send, and a client that
        reads nothing at all is cut off (raises _Stuck, after one to two write timeouts)
        rather than kept until idle.  The kernel is asked only when a wait times out, never
        on the pipelined fast path.  Raises TimeoutError (idle), IncompleteReadError,
        ConnectionError."""
        loop = asyncio.get_running_loop()
        deadline = since + self.config.tcp_idle_timeout
        write_timeout = self.config.limits.tcp_write_timeout
        last = 0  # unsent bytes at the previous timeout (0: none, or not looked yet)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if unsent(transport):
                    raise _Stuck
                raise TimeoutError
            try:
                return await aio.wait_for(reader.readexactly(n), min(remaining, write_timeout))
            except TimeoutError:
                pending = unsent(transport)
                if pending and last and pending >= last:
                    raise _Stuck from None
                last = pending

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        s = self.engine.stats
        return {
            "uptime": clock.now() - self.started_at,
            "zones": len([z for z in self.zones.values() if z.served is not None]),
            "zones-with-errors": sorted(z.name for z in self.zones.values() if z.error),
            "listen": [str(e) for e in self.config.listen],
            "tcp-clients": len(self._tcp),
            "tcp-refused": self._tcp.refused,
            "tcp-evicted": self._tcp.evicted,
            "rate-limited": self._rrl.limited if self._rrl else 0,
            "rate-limit-slipped": self._rrl.slipped if self._rrl else 0,
            "reloads": self.reloads,
            "processes": 1 + len(self.worker_pids),
            "queries": s.queries,
            "cache-hits": s.cache_hits,
            "formerr": s.formerr,
            "refused": s.refused,
            "transfers": s.transfers,
            "rcodes": {
                dns.rcode.to_text(dns.rcode.Rcode(r)): n for r, n in sorted(s.by_rcode.items())
            },
        }

    def find_state(self, zone: str) -> ZoneHandle:
        """The zone called ``zone`` (any case, final dot or not); raises LookupError."""
        return self.table.find_state(zone)

    def parent_lines(self, state: ZoneState) -> list[str]:
        """Per parental agent: the DS set expected and the set seen (last check)."""
        return list(state.parent_log)

    def zone_status(self, zone: str) -> dict[str, object]:
        state = self.find_state(zone)
        out: dict[str, object] = {
            "zone": state.name,
            "file": str(state.config.file),
            "presigned": state.config.presigned,
            "dnssec-policy": state.config.policy,
            "error": state.error,
            "also-notify": [str(e) for e in state.config.also_notify],
            "last-notify": state.notify_log,
        }
        if state.served is not None:
            snap = state.served.snapshot
            out.update(
                {
                    "serial": snap.serial,
                    "loaded-at": state.loaded_at,
                    "names": len(snap.nodes),
                    "denial": "NSEC3" if snap.nsec3 else ("NSEC" if snap.nsec_names else None),
                    "ixfr-versions": [s.serial for s in state.served.history],
                }
            )
        inline = state.inline
        if inline is not None:

            def when(t: int | None) -> str | None:
                return format_human_time(t) if t is not None else None

            plan = inline.plan
            out.update(
                {
                    "source-serial": inline.unsigned.soa().serial if inline.unsigned else None,
                    "source-problem": inline.source_problem,
                    "offline-ksk": inline.offline.status,
                    "signed-serial": inline.signed_serial,
                    "last-signed": when(inline.last_signed),
                    "next-signing": when(inline.next_resign),
                    "next-key-event": when(plan.next_event if plan else None),
                    "signature-expiry-horizon": when(inline.sig_horizon),
                    "keys": [f"{k.tag} ({k.role.upper()})" for k in inline.keys],
                    "waiting": [
                        f"{r.key.tag}: {r.waiting}"
                        for r in (plan.keys if plan else ())
                        if r.waiting
                    ],
                }
            )
        out.update(self.automation.transfer_status(state))  # bump in the wire: primaries
        return out
