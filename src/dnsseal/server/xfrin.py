"""Bump in the wire: a zone's unsigned data transferred in from hidden primaries.

For a zone with ``primaries``, a :class:`Secondary` keeps the transferred copy in the state
directory (``state/<zone>.xfr``, written atomically) and the zone's InlineZone reads that
file as its source, so every transfer goes the inline path: a diff against the copy applied
last, incremental re-signing, our own serial, the journal, IXFR and NOTIFY downstream.

The copy is checked on the SOA's refresh timer (its retry after a failure) and at once on a
NOTIFY from a primary: SOA query over UDP (TCP when truncated), then IXFR from our serial
(AXFR when we have no copy, and as the fallback when an IXFR fails), TSIG-signed with the
primary's key when one is configured.  Primaries are tried in order until one answers.  A
transfer that fails or is malformed changes nothing: the previous data stays served, and the
reason is logged with the zone and shown by ``zone-status``.  Past the SOA's expire time
without a successful check the zone is still served (its signatures are ours and kept fresh)
but the status says ``expired``.  The wire work is :mod:`dnsseal.proto.xfrin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import struct
from typing import TYPE_CHECKING

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.tsig

from dnsseal import aio, clock
from dnsseal.durations import format_human_time
from dnsseal.errors import DnssealError
from dnsseal.proto.xfrin import (
    Inbound,
    Kind,
    TransferError,
    apply_transfer,
    read_soa_serial,
    serial_gt,
    soa_query,
    transfer_query,
)
from dnsseal.server import counters
from dnsseal.server.zonehandle import TransferState, ZoneHandle
from dnsseal.server.zones import EXPIRED, read_copy, refreshed_at
from dnsseal.storage import zonefile
from dnsseal.storage.remotes import Primary
from dnsseal.storage.serverconfig import file_signature
from dnsseal.zone.model import Zone

if TYPE_CHECKING:
    from dnsseal.server.zonetable import Maintainer

log = logging.getLogger(__name__)

UDP_TIMEOUT = 2.0  # seconds per SOA query try
UDP_TRIES = 2
TCP_TIMEOUT = 10.0  # seconds without progress before a transfer is given up
NO_COPY_RETRY = 30  # seconds between tries while we have no copy (no SOA to take it from)
MIN_INTERVAL = 1  # never check more often than this (a zero refresh in a SOA)


class Secondary:
    """Keeps one zone's transferred copy current (see the module docstring)."""

    def __init__(self, automation: Maintainer, state: ZoneHandle) -> None:
        self.automation = automation
        self.state = state
        self.origin = dns.name.from_text(state.name)
        self.copy: Zone | None = None
        self.status = TransferState()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.started_at = clock.now()
        self._expiry: asyncio.TimerHandle | None = None

    # -- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None

    def notify(self) -> None:
        """A primary said the zone changed: check now."""
        self.wake.set()

    def _active(self) -> bool:
        """Is this still the zone's secondary (not reloaded away)?"""
        servers = self.automation.table.zones
        return servers.get(self.state.name) is self.state and bool(self.state.config.primaries)

    async def _run(self) -> None:
        path = self.state.config.file
        if path.exists():
            try:
                self.copy = await asyncio.to_thread(zonefile.read_zone, path, self.origin)
            except DnssealError as e:
                log.error("[%s] stored transfer copy unreadable, transferring anew: %s",
                          self.state.name, e)  # fmt: skip
            if self.copy is not None and self.state.config.secondary:
                # A restart keeps the expire time left when we stopped (BIND does the same
                # with the zone file's modification time).
                self.started_at = refreshed_at(self.state) or self.started_at
        self._arm_expire()
        while self._active():
            self._check_expire()
            if self.wake.is_set() or clock.now() >= (self.status.next_refresh or 0):
                self.wake.clear()
                try:
                    await self.refresh()
                except Exception:  # a bug must not end the zone's refreshes for good
                    log.exception("[%s] refresh failed", self.state.name)
                    self.status.next_refresh = clock.now() + NO_COPY_RETRY
            self._arm_expire()
            delay = max((self.status.next_refresh or 0) - clock.now(), MIN_INTERVAL)
            with contextlib.suppress(TimeoutError):  # (not wait_for: see maintenance._schedule)
                async with asyncio.timeout(delay):
                    await self.wake.wait()

    def _expire_at(self) -> int | None:
        """When the copy expires unless a primary answers before (None: no copy)."""
        if self.copy is None:
            return None
        _, _, expire = self._timers()
        return (self.status.last_success or self.started_at) + expire

    def _arm_expire(self) -> None:
        """Check for expiry at the copy's expire time, whatever a refresh is waiting for
        (a primary that does not answer holds a refresh for several seconds)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        end = self._expire_at()
        if end is None or self.status.expired:
            return
        delay = max(end - clock.now(), 0) + 0.05

        def fire() -> None:
            self._expiry = None
            self._check_expire()
            if not self.status.expired:
                self._arm_expire()  # a primary answered meanwhile: the new expire time

        self._expiry = asyncio.get_running_loop().call_later(delay, fire)

    def _check_expire(self) -> None:
        """Past the SOA expire time without a primary answering: a plain secondary stops
        answering (SERVFAIL, as BIND); a zone signed here is still served (its signatures
        are ours) and only says ``expired``."""
        st = self.status
        end = self._expire_at()
        if self.copy is None or end is None or st.expired or clock.now() < end:
            return
        st.expired = True
        name, serial = self.state.name, self.copy.soa().serial
        _, _, expire = self._timers()
        if not self.state.config.secondary:
            log.error("[%s] no primary answered for %d s (SOA expire): still serving the "
                      "signed copy of serial %d", name, expire, serial)  # fmt: skip
            return
        log.error("[%s] no primary answered for %d s (SOA expire): serial %d expired, "
                  "answering SERVFAIL until a primary answers", name, expire, serial)  # fmt: skip
        self.state.error = EXPIRED
        if self.state.commit_expired(True):
            self.automation.host.reload_workers()

    # -- one refresh ----------------------------------------------------------------------

    def _timers(self) -> tuple[int, int, int]:
        """(refresh, retry, expire) from our copy's SOA."""
        if self.copy is None:
            return NO_COPY_RETRY, NO_COPY_RETRY, 0
        soa = self.copy.soa()
        return soa.refresh, soa.retry, soa.expire

    async def refresh(self) -> bool:
        """Check the primaries once and transfer when one has a newer serial.  Returns
        whether a primary answered (the copy is current)."""
        st = self.status
        name = self.state.name
        now = clock.now()
        st.last_check = now
        refresh, retry, _ = self._timers()
        problems = []
        for primary in self.state.config.primaries:
            try:
                await self._refresh_from(primary)
            except (TransferError, OSError, dns.exception.DNSException, TimeoutError) as e:
                why = str(e) or type(e).__name__
                problems.append(f"{primary.endpoint}: {why}")
                log.warning("[%s] refresh from %s failed: %s", name, primary.endpoint, why)
                continue
            st.last_success = clock.now()
            if st.expired:
                st.expired = False
                if self.state.config.secondary:
                    log.info("[%s] a primary answered: serving serial %d again",
                             name, self.copy.soa().serial if self.copy else 0)  # fmt: skip
                    self.state.error = None
                    if self.state.commit_expired(False):
                        self.automation.host.reload_workers()
            refresh, _, _ = self._timers()  # a transfer may have brought a new SOA
            st.next_refresh = st.last_success + max(refresh, MIN_INTERVAL)
            return True
        st.last_result = "failed: " + "; ".join(problems)
        st.next_refresh = clock.now() + max(retry, MIN_INTERVAL)
        self._check_expire()
        log.info("[%s] next refresh at %s", name, format_human_time(st.next_refresh))
        return False

    async def _refresh_from(self, primary: Primary) -> None:
        st = self.status
        key = self._key(primary)
        serial = await self._soa_serial(primary, key)
        st.primary_serial, st.primary = serial, str(primary.endpoint)
        ours = self.copy.soa().serial if self.copy is not None else None
        if ours is not None and not serial_gt(serial, ours):
            if serial != ours:
                log.warning("[%s] primary %s has serial %d, older than our %d: not transferred",
                            self.state.name, primary.endpoint, serial, ours)  # fmt: skip
            st.last_result = f"up to date at serial {ours} ({primary.endpoint})"
            if self.state.config.secondary:
                await asyncio.to_thread(self._touch)
            return
        try:
            new, kind = await counters.xfr_in(
                self.state.name, ours is not None, self._transfer(primary, key, ours)
            )
        except TransferError as e:
            if ours is None:
                raise
            log.warning("[%s] IXFR from %s failed (%s): trying AXFR",
                        self.state.name, primary.endpoint, e)  # fmt: skip
            new, kind = await counters.xfr_in(
                self.state.name, False, self._transfer(primary, key, None)
            )
        await self._store(new)
        now = clock.now()
        st.last_transfer = now
        st.last_result = f"{kind.value} of serial {new.soa().serial} from {primary.endpoint}"
        log.info("[%s] transferred serial %d from %s (%s)",
                 self.state.name, new.soa().serial, primary.endpoint, kind.value)  # fmt: skip
        if self.state.config.secondary:
            await self._install(new)
            return
        # The InlineZone sees the new file: a diff, re-signed, published under our serial.
        problem = await self.automation.maintain(self.state, "transfer")
        if problem:
            st.last_result += f"; not signed yet: {problem}"

    async def _install(self, zone: Zone) -> None:
        """A plain secondary: serve the new copy as it came (no signing of ours), record it
        in the journal (IXFR onward, across restarts), NOTIFY the also-notify targets."""
        now = clock.now()
        versions = self.automation.table.config.ixfr_versions
        snap = await asyncio.to_thread(read_copy, self.state, zone)
        self.state.serve_loaded(snap, versions, now)
        self.state.error = None
        await self.state.commit_served(now)

    def _touch(self) -> None:
        """Record on the copy that a primary answered (its modification time: see
        :func:`~dnsseal.server.zones.refreshed_at`), keeping the served signature."""
        path = self.state.config.file
        with contextlib.suppress(OSError):
            os.utime(path)
            if self.state.signature is not None:
                self.state.signature = file_signature(path)

    def _key(self, primary: Primary) -> dns.tsig.Key | None:
        if primary.key is None:
            return None
        return self.automation.table.config.keys[primary.key].to_dnspython()

    async def _store(self, zone: Zone) -> None:
        path = self.state.config.file
        header = [f"; {self.state.name} serial {zone.soa().serial}, transferred by dnsseal"]
        await asyncio.to_thread(zonefile.write_zone, path, zone, header=header)
        self.copy = zone

    # -- the wire -------------------------------------------------------------------------

    async def _soa_serial(self, primary: Primary, key: dns.tsig.Key | None) -> int:
        q = soa_query(self.origin, secrets.randbelow(65536), key)
        wire = q.to_wire()
        ep = primary.endpoint
        reply = None
        for _ in range(UDP_TRIES):
            reply = await _udp_exchange(ep.host, ep.port, wire, q.id, UDP_TIMEOUT)
            if reply is not None:
                break
        if reply is None:
            raise TransferError(f"no answer to the SOA query ({UDP_TRIES} tries)")
        if len(reply) > 2 and reply[2] & 0x02:  # TC: ask again over TCP
            q = soa_query(self.origin, secrets.randbelow(65536), key)
            reader, writer = await _connect(ep.host, ep.port)
            try:
                await _send(writer, q.to_wire())
                reply = await _read_message(reader)
            finally:
                writer.close()
        return read_soa_serial(q, reply)

    async def _transfer(
        self, primary: Primary, key: dns.tsig.Key | None, ours: int | None
    ) -> tuple[Zone, Kind]:
        q = transfer_query(self.origin, secrets.randbelow(65536), ours, key)
        inbound = Inbound(q, ours)
        ep = primary.endpoint
        reader, writer = await _connect(ep.host, ep.port)
        try:
            await _send(writer, q.to_wire())
            while not inbound.feed(await _read_message(reader)):
                pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        result = inbound.result
        assert result is not None
        new = await asyncio.to_thread(apply_transfer, self.origin, self.copy, result)
        return new, result.kind

    # -- status ---------------------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        """The transfer part of ``zone-status``."""
        st = self.status

        def when(t: int | None) -> str | None:
            return format_human_time(t) if t is not None else None

        return {
            "primaries": [str(p) for p in self.state.config.primaries],
            "primary-serial": st.primary_serial,
            "primary": st.primary,
            "transferred-serial": self.copy.soa().serial if self.copy is not None else None,
            "last-refresh-check": when(st.last_check),
            "last-transfer": when(st.last_transfer),
            "last-transfer-result": st.last_result,
            "next-refresh": when(st.next_refresh),
            "expired": st.expired,
        }


# -- NOTIFY from a primary (RFC 1996) ---------------------------------------------------


# -- sockets ----------------------------------------------------------------------------


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, qid: int, fut: asyncio.Future[bytes]) -> None:
        self.qid = qid
        self.fut = fut

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.fut.done() and len(data) >= 12 and int.from_bytes(data[:2]) == self.qid:
            self.fut.set_result(data)


async def _udp_exchange(
    host: str, port: int, wire: bytes, qid: int, timeout: float
) -> bytes | None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bytes] = loop.create_future()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Reply(qid, fut), remote_addr=(host, port), family=family
    )
    try:
        transport.sendto(wire)
        return await aio.wait_for(fut, timeout)
    except TimeoutError:
        return None
    finally:
        transport.close()


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await aio.wait_for(asyncio.open_connection(host, port), TCP_TIMEOUT)
    except TimeoutError:
        raise TransferError(f"TCP connection to {host}@{port} timed out") from None


async def _send(writer: asyncio.StreamWriter, wire: bytes) -> None:
    writer.write(struct.pack("!H", len(wire)) + wire)
    await writer.drain()


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    try:
        head = await aio.wait_for(reader.readexactly(2), TCP_TIMEOUT)
        return await aio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_TIMEOUT)
    except asyncio.IncompleteReadError:
        raise TransferError("the primary closed the connection mid-transfer") from None
    except TimeoutError:
        raise TransferError(f"no data for {TCP_TIMEOUT:g} s") from None
