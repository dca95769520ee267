"""One served zone and the one path by which a new version of it is served.

A :class:`ZoneHandle` holds what the server knows about one zone (its config, the version
served with its IXFR history, its inline signer, its one-writer lock) and
:meth:`ZoneHandle.commit`, the one path to serving a new version: journal first
(committed, fsync'd), then the signed copy in the state directory, then this zone's answer
tables, then the workers, then NOTIFY.  What the handle needs from the server around it
(the zone table whose swap serves this zone's tables and tells the workers, NOTIFY, the
online answers of a signaling zone, the journal's history) comes in as a
:class:`ServerPort`, which :mod:`dnsseal.server.service` gives each handle; the handle
imports no driver and not the server.  Nothing else swaps the table: a reload's zone set
goes through :func:`commit_zone_set` (one swap for all), a worker's pushed version
through :meth:`ZoneHandle.install_pushed`, a secondary's expiry through
:meth:`ZoneHandle.commit_expired` (tests/test_server_layers.py checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import dns.name
import dns.rdatatype
import dns.tsig

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.proto.acl import Acl
from dnsseal.proto.answer import Answer
from dnsseal.proto.engine import ServedZone
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, update_from_model
from dnsseal.proto.xfr import Retained
from dnsseal.server import signpool
from dnsseal.server.counters import COUNTERS
from dnsseal.server.history import JournalHistory, retain
from dnsseal.server.versions import Version, pack_version, record_line
from dnsseal.storage import zonefile
from dnsseal.storage.journal import AuditEvent, Journal, Transaction
from dnsseal.storage.serverconfig import ServerConfig, ZoneConfig
from dnsseal.zone.diff import records
from dnsseal.zone.model import Zone
from dnsseal.zone.text import header_text

if TYPE_CHECKING:
    from dnsseal.server.inline import InlineZone

log = logging.getLogger(__name__)

MAX_CHANGES = 100  # journal transactions kept per zone before rebasing (bounded IXFR tail)
# An UPDATE's commit does not rebase (writing a 100k-name zone's text takes seconds): the
# rebase waits for the zone's delayed copy write (_dump, at most DUMP_DELAY later), unless
# the journal holds this many changes (a bound however the dumps are put off).
MAX_UPDATE_CHANGES = 10 * MAX_CHANGES
# The signed copy (STATE/ZONE.signed) after dynamic updates is written this long after the
# first one not in it (like named's journal dump): an UPDATE is committed by the journal,
# and writing a 100k-name zone per UPDATE would cost seconds each.  Maintenance versions
# and shutdown write it at once.
DUMP_DELAY = 60
# A version whose diff has at most this many records updates the previous version's answer
# snapshot at the names it changed instead of building one from the whole zone.
SMALL_CHANGE = 2000
RRSIG = int(dns.rdatatype.RRSIG)
# How the engine answers a zone online (a signaling zone: server.dsdriver.online).
OnlineHook = Callable[[ZoneSnapshot, dns.name.Name, int, bool, Answer], Answer]


class Tables(Protocol):
    """Every served zone's answer tables (``server.zonetable.ZoneTable``).  Only a zone
    handle swaps them (:meth:`ZoneHandle.install` and the rest of the commit path,
    :func:`serve_installed` for a batch,
    :func:`commit_zone_set` for a reload)."""

    def swap_zones(self, everything: bool = False) -> None:
        """Hand the engine (and the workers) the versions set since the last swap, one
        zone's cost each; ``everything``: the whole zone set (after a reload)."""


class ServerPort(Protocol):
    """What a zone handle needs from the server that serves it (``service.AuthServer``)."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def table(self) -> Tables:
        """The answer tables the handle's versions go to (its zone's and the workers')."""

    def send_notify(self, handle: ZoneHandle) -> None:
        """Send NOTIFY for the version ``handle`` serves now (when this process sends)."""

    def online(self, handle: ZoneHandle) -> OnlineHook | None:
        """How the engine answers ``handle``'s zone online (a signaling zone), or None."""

    def record(self, snap: ZoneSnapshot, now: int) -> None:
        """Record ``snap``, a version read from a file or transferred in, in the journal's
        history (IXFR onward, across restarts); in a worker thread.  Raises DnssealError."""


class ServerHost(Protocol):
    """What the drivers need from the process around the zone table (``AuthServer``)."""

    @property
    def worker(self) -> bool: ...

    @property
    def history(self) -> JournalHistory | None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    def reload_workers(self) -> None: ...

    async def notify(self, zone: str) -> list[str]: ...


@dataclass(slots=True)
class TransferState:
    """What ``zone-status`` shows about the transfers of one zone."""

    primary_serial: int | None = None  # the serial a primary answered last
    primary: str | None = None  # the primary that answered it
    last_check: int | None = None  # last SOA check (successful or not)
    last_success: int | None = None  # last time a primary answered (refresh done)
    last_transfer: int | None = None  # last time a transfer changed our copy
    last_result: str | None = None  # how the last check or transfer went
    next_refresh: int | None = None
    expired: bool = False


class Transfers(Protocol):
    """A zone's transfers in from its primaries (``server.xfrin.Secondary``)."""

    copy: Zone | None  # the copy transferred last (None: the next refresh takes it all)
    status: TransferState

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def notify(self) -> None:
        """A primary said the zone changed: check the primaries now."""

    async def refresh(self) -> bool:
        """Check the primaries now (transfer if newer); whether one answered."""

    def describe(self) -> dict[str, object]:
        """For ``zone-status``: the primaries, serials, last transfer, next refresh."""


def keyring_of(config: ServerConfig) -> dict[dns.name.Name, dns.tsig.Key]:
    keys = (k.to_dnspython() for k in config.keys.values())
    return {k.name: k for k in keys}


def transfer_acl(cfg: ZoneConfig) -> Acl:
    return Acl.parse(f'zone."{cfg.name}".allow-transfer', list(cfg.allow_transfer))


def is_signed(snap: ZoneSnapshot) -> bool:
    apex = snap.apex
    return dns.rdatatype.DNSKEY in apex.rrsets and dns.rdatatype.SOA in apex.sigs


# -- the journal ---------------------------------------------------------------------------


def journal_version(j: Journal, version: Version, now: int) -> None:
    """Record ``version`` in the journal: as a change when it continues the journal's
    history, else as a new base; and, but for an UPDATE's (its signed copy is written
    later too, coalesced), packed for the next restart (:func:`pack_version`).  Raises
    StorageError."""
    zone, serial = version.zone.origin.to_text(), version.serial  # (each made once)
    made = signpool.made_of(version.zone)  # (a first signing in the helper: made there)
    _journal_version(j, version, zone, serial, now, made.lines if made is not None else None)
    if version.reason != "update":
        j.set_packed(zone, serial, made.packed if made is not None else pack_version(version.zone))


def _journal_version(
    j: Journal, version: Version, zone: str, serial: int, now: int, lines: list[str] | None
) -> None:
    """``lines``: the version's journal lines, sorted, when already made."""
    current = j.current_serial(zone)
    if version.serial_from is not None and current == version.serial_from:
        j.append(
            Transaction(
                zone,
                version.serial_from,
                serial,
                now,
                version.reason,
                tuple(record_line(r) for r in version.diff.removed),
                tuple(record_line(r) for r in version.diff.added),
            )
        )
        limit = MAX_UPDATE_CHANGES if version.reason == "update" else MAX_CHANGES
        if j.transaction_count(zone) <= limit:
            return
    _rebase(j, version.zone, zone, serial, now, lines)


def _rebase(
    j: Journal, zone: Zone, name: str, serial: int, now: int, lines: list[str] | None = None
) -> None:
    """``zone`` (the journal's current version, ``serial``) as the journal's new base: the
    changes before it are dropped.  ``lines``: its journal lines, sorted, if made."""
    if lines is None:
        lines = sorted(record_line(r) for r in records(zone))
    j.set_base(name, serial, lines, now)


def compact(j: Journal, zone: Zone, now: int) -> bool:
    """Rebase the journal on ``zone`` when it holds more than :data:`MAX_CHANGES` changes
    and ``zone`` is its current version (the rebase an UPDATE's commit put off).  Whether
    it did."""
    name, serial = zone.origin.to_text(), zone.soa().serial
    if j.transaction_count(name) <= MAX_CHANGES or j.current_serial(name) != serial:
        return False
    _rebase(j, zone, name, serial, now)
    return True


def write_copy(inline: InlineZone, zone: Zone) -> None:
    """Write the signed copy of ``zone`` (STATE/ZONE.signed).  Raises StorageError."""
    header = [f"; {inline.name} serial {zone.soa().serial}, signed by dnsseal"]
    made = signpool.made_of(zone)  # (a first signing in the helper: its text made there)
    if made is None:
        zonefile.write_zone(inline.signed_path, zone, header=header)
        return
    zonefile.write_text_chunks(inline.signed_path, (header_text(header), made.text))
    signpool.written(zone)


def count_signatures(zone: str, version: Version) -> None:
    """A new version of ``zone`` went out: count the RRSIGs it added (all of them for the
    first version, which has no diff)."""
    if version.serial_from is None:
        z = version.zone
        n = sum(len(rr.rdatas) for node in z.rrsigs.values() for rr in node.values())
    else:
        n = sum(1 for r in version.diff.added if r[1] == RRSIG)
    if n:
        COUNTERS.inc("dnsseal_signatures_created_total", n, zone=zone)


# -- the handle ----------------------------------------------------------------------------


@dataclass(slots=True)
class ZoneHandle:
    """What the server knows about one zone between reloads, and its commit path."""

    config: ZoneConfig
    _served: ServedZone | None = None  # the version served (see ``served``)
    signature: tuple[int, int] | None = None
    loaded_at: int = 0
    error: str | None = None
    notify_pending: bool = False
    # (each replaced whole, never changed in place: a shared empty tuple until then)
    notify_log: Sequence[str] = ()
    # Inline signing (zones with a dnssec-policy), driven by server.maintenance:
    inline: InlineZone | None = None
    _lock: asyncio.Lock | None = field(default=None, repr=False)  # see ``lock``
    # The maintenance the server's one scheduler runs for this zone now (None between
    # runs: a sleeping zone is an entry in that scheduler's heap, not a task of its own;
    # see server.maintenance); cancelled when the zone goes.
    timer: asyncio.Task[None] | None = None
    checkds_task: asyncio.Task[None] | None = None  # server.checkds (parental agents)
    retry_at: int = 0  # after a failed maintenance: not before this
    parent_log: Sequence[str] = ()  # checkds: per agent, DS expected/seen
    secondary: Transfers | None = None  # zones with primaries: server.xfrin (bump in the wire)
    frozen: bool = False  # `dnsseal ctl freeze`: dynamic updates refused until thawed
    # Called with this handle whenever ``served`` is set: the server notes which zones to
    # hand to the engine at its next swap, so a swap costs the zones that changed.
    on_served: Callable[[ZoneHandle], None] | None = field(default=None, repr=False)
    # The server serving this zone (set by the server when it takes the zone set).
    port: ServerPort | None = field(default=None, repr=False)
    # The delayed write of the signed copy after dynamic updates (see DUMP_DELAY).
    dump_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def lock(self) -> asyncio.Lock:
        """One change at a time (made when first taken: most zones of a worker process
        never take it)."""
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        return lock

    @property
    def served(self) -> ServedZone | None:
        """The version to serve (with its IXFR history and transfer ACL)."""
        return self._served

    @served.setter
    def served(self, value: ServedZone | None) -> None:
        self._served = value
        if self.on_served is not None:
            self.on_served(self)

    def _port(self) -> ServerPort:
        assert self.port is not None, f"{self.name}: not taken by a server"
        return self.port

    # -- the one place a version becomes the served one -------------------------------

    def serve(
        self,
        snap: ZoneSnapshot,
        history: tuple[Retained, ...],
        now: int,
        online: OnlineHook | None = None,
    ) -> None:
        """Make ``snap`` (with ``history``) the version served, under the config's
        allow-transfer.  The caller hands it to the engine (a swap of ``port.table``),
        for one zone or, after a reload, for the zone set at once."""
        self.served = ServedZone(snap, history, transfer_acl(self.config), online)
        self.loaded_at = now

    def set_expired(self, expired: bool) -> bool:
        """Mark the served copy expired (SERVFAIL to every query, as BIND) or live again.
        Returns whether that changed anything."""
        served = self.served
        if served is None or served.expired == expired:
            return False
        self.served = dataclasses.replace(served, expired=expired)
        return True

    def commit_expired(self, expired: bool) -> bool:
        """:meth:`set_expired` and, when that changed anything, serve it now (this zone's
        answer tables, the workers).  Returns whether it changed anything."""
        if not self.set_expired(expired):
            return False
        self._port().table.swap_zones()
        return True

    def serve_loaded(self, snap: ZoneSnapshot, versions: int, now: int) -> bool:
        """Make ``snap``, read from the zone's file or transferred in, the version served,
        the one served until now going into the IXFR history (at most ``versions``).  The
        caller finishes the commit (:meth:`commit_served`, or :func:`commit_zone_set` for
        a reload's zones).  Returns whether the serial moved."""
        old = self.served
        history: tuple[Retained, ...] = ()
        new_serial = old is None or old.snapshot.serial != snap.serial
        if old is not None:
            history = old.history
            if new_serial:
                history = (*history, old.snapshot)[-versions:] if versions else ()
            else:
                log.warning(
                    "[%s] file changed but serial %d did not: secondaries will not see the change",
                    self.name,
                    snap.serial,
                )
        self.serve(snap, history, now)
        return new_serial

    def install_pushed(
        self, snap: ZoneSnapshot, online: OnlineHook | None, swap: bool = True
    ) -> None:
        """In a worker process: serve ``snap``, a version the main process committed (and
        pushed), answered online by ``online``: this zone's answer tables (``swap``
        False: the caller swaps them, once for the versions of a frame, before it
        acknowledges them)."""
        old = self.served
        versions = self._port().config.ixfr_versions
        history: tuple[Retained, ...] = ()
        if old is not None and old.snapshot.serial != snap.serial:
            history = retain(old.history, old.snapshot, snap)[-versions:] if versions else ()
        elif old is not None:
            history = old.history
        self.serve(snap, history, clock.now(), online)
        if swap:
            self._port().table.swap_zones()

    def sync_acl(self) -> None:
        """Serve the version served now under the config's allow-transfer: a reload that
        changed only the config (a secondary added to a catalog's ACL) takes effect at
        once, not at the zone's next new version."""
        acl = transfer_acl(self.config)
        if self.served is not None and acl != self.served.allow_transfer:
            self.served = dataclasses.replace(self.served, allow_transfer=acl)
            log.info("[%s] allow-transfer changed", self.name)

    def install(
        self, zone: Zone, keep_history: bool, version: Version | None = None, swap: bool = True
    ) -> None:
        """Serve ``zone`` (``version``'s, when known: a small change updates the answer
        snapshot at the names it changed) in this process: its answer tables, then the
        workers (``swap`` False: the caller swaps them, for many zones at once, before it
        yields to the event loop).  The last steps of :meth:`commit`; on its own only for a
        version already durable (the journal's version at a start, a version a worker
        got)."""
        port = self._port()
        old = self.served
        snap = None
        if version is not None and old is not None and version.serial_from == old.snapshot.serial:
            change = version.diff
            if len(change.removed) + len(change.added) <= SMALL_CHANGE:
                names = {r[0] for r in (*change.removed, *change.added)}
                snap = update_from_model(old.snapshot, zone, names)  # O(change)
        if snap is None:
            snap = build_from_model(zone)  # straight from the model's wire RDATA
        versions = port.config.ixfr_versions
        history: tuple[Retained, ...] = ()
        if old is not None and keep_history and old.snapshot.serial != snap.serial and versions:
            known = None  # what changed since the version served until now, when known
            if version is not None and version.serial_from == old.snapshot.serial:
                known = (version.diff.removed, version.diff.added)
            history = retain(old.history, old.snapshot, snap, known)[-versions:]
        self.serve(snap, history, clock.now(), port.online(self))
        if swap:
            port.table.swap_zones()

    # -- commit ---------------------------------------------------------------------------

    async def commit(
        self,
        version: Version,
        now: int,
        events: Sequence[AuditEvent] = (),
        started: float | None = None,
    ) -> None:
        """Serve ``version`` (of :attr:`inline`): journal it with ``events`` (durably),
        write the signed copy, serve it (:meth:`install`), send NOTIFY.  The caller holds
        :attr:`lock`.  ``started`` (monotonic clock): when the work that made it began
        (for the log).  Raises DnssealError (nothing served then)."""
        state_dir = self._port().config.state_dir
        inline = self.inline
        assert state_dir is not None and inline is not None
        # An UPDATE is committed by the journal alone; the signed copy follows later.
        copy_now = version.reason != "update"

        def persist() -> None:
            with Journal(state_dir) as j, j.batch():  # the version and its events: one commit
                journal_version(j, version, now)
                for e in events:
                    j.audit(e)
            if copy_now:
                write_copy(inline, version.zone)
            count_signatures(self.name, version)  # counts RRSIGs: off the event loop

        if copy_now:
            self.cancel_dump()
        await asyncio.to_thread(persist)
        if not copy_now and self.dump_task is None:
            self.dump_task = asyncio.get_running_loop().create_task(self._dump_later())
        self.committed(version, started)

    async def change(self, make: Callable[[int], Version | None]) -> Version | None:
        """Take the lock, make a version (``make(now)``, in a worker thread) and
        :meth:`commit` it.  The version committed, or None (``make`` had nothing to
        change).  Raises DnssealError."""
        async with self.lock:
            now = clock.now()
            started = time.monotonic()
            version = await asyncio.to_thread(make, now)
            if version is not None:
                await self.commit(version, now, (), started)
            return version

    def committed(self, version: Version, started: float | None, swap: bool = True) -> None:
        """The end of :meth:`commit`, once ``version`` is journaled and its copy written:
        serve it, log it, send NOTIFY (``swap`` False: as :meth:`install`; the NOTIFY
        goes out from the event loop, after the caller's swap)."""
        self.install(version.zone, keep_history=True, version=version, swap=swap)
        took = f" in {time.monotonic() - started:.2f} s" if started is not None else ""
        log.info(
            "[%s] DNSSEC: serial %d signed and served%s (%s, %d records out, %d in)",
            self.name,
            version.serial,
            took,
            version.reason,
            len(version.diff.removed),
            len(version.diff.added),
        )
        if self.config.also_notify:
            self._port().send_notify(self)

    async def commit_served(self, now: int) -> None:
        """The commit path's end for a version :meth:`serve` made the served one, read
        from the zone's file or transferred in (durable as that file): this zone's answer
        tables and the workers, the journal's history, NOTIFY."""
        port = self._port()
        served = self.served
        assert served is not None
        port.table.swap_zones()
        try:
            await asyncio.to_thread(port.record, served.snapshot, now)
        except DnssealError as e:
            log.error("[%s] journal not updated: %s", self.name, e)
        if self.config.also_notify:
            port.send_notify(self)

    def audit(self, events: Sequence[AuditEvent]) -> None:
        """Journal key events that came without a new version (in a worker thread)."""
        state_dir = self._port().config.state_dir
        assert state_dir is not None
        with Journal(state_dir) as j, j.batch():  # one commit for them all
            for e in events:
                j.audit(e)

    # -- the signed copy after dynamic updates ---------------------------------------------

    def cancel_dump(self) -> None:
        """The delayed copy write is not needed: a newer copy is being written."""
        pending, self.dump_task = self.dump_task, None
        if pending is not None:
            pending.cancel()

    async def _dump_later(self) -> None:
        """Write the signed copy :data:`DUMP_DELAY` seconds from now (the version served
        then: every UPDATE in between is in it)."""
        await asyncio.sleep(DUMP_DELAY)
        if self.dump_task is asyncio.current_task():
            self.dump_task = None  # from here on a newer version needs a new dump
        async with self.lock:  # (commit writes under it too: one writer at a time)
            await self._dump()

    async def _dump(self) -> None:
        inline = self.inline
        if inline is None or inline.signed is None:
            return
        signed = inline.signed
        try:
            await asyncio.to_thread(write_copy, inline, signed)
        except DnssealError as e:
            log.error("[%s] signed copy not written: %s", self.name, e)
        try:
            await asyncio.to_thread(self._pack, signed)
        except DnssealError as e:  # the next restart reads the journal's text instead
            log.warning("[%s] packed version not written: %s", self.name, e)

    def _pack(self, zone: Zone) -> None:
        """Keep ``zone`` packed in the journal for the next restart (when it is still the
        journal's current version), rebasing the journal on it first when the UPDATEs
        since the last rebase put it off (:func:`compact`)."""
        state_dir = self._port().config.state_dir
        assert state_dir is not None
        with Journal(state_dir) as j:
            compact(j, zone, clock.now())
            j.set_packed(zone.origin.to_text(), zone.soa().serial, pack_version(zone))

    async def dump_now(self) -> None:
        """Write the signed copy now if it is behind its journal (at shutdown)."""
        task, self.dump_task = self.dump_task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        async with self.lock:
            await self._dump()


def serve_installed(table: Tables) -> None:
    """Serve the versions installed without a swap (``install(swap=False)``,
    ``install_pushed(swap=False)``) since the last swap: one swap for them all (a start's
    batch of zones, the versions of a worker's frame), so one filtering of the cached
    answers, which costs the cache's size whatever the number of zones."""
    table.swap_zones()


async def commit_zone_set(
    table: Tables, port: ServerPort | None, changed: Sequence[ZoneHandle], now: int
) -> None:
    """The commit path's end for a (re)load, every zone at once: the journal's history of
    the zones of ``changed`` (a version :meth:`ZoneHandle.serve_loaded` made the served
    one, durable as its file; one worker-thread call for them all), then ONE swap of the
    table's whole zone set (a start of 10,000 zones is one swap, not 10,000), then NOTIFY
    for each of ``changed``."""
    if port is not None and changed:
        await asyncio.to_thread(_record_all, port, changed, now)
    table.swap_zones(everything=True)
    if port is None:
        return
    for handle in changed:
        if handle.config.also_notify:
            port.send_notify(handle)


def _record_all(port: ServerPort, handles: Sequence[ZoneHandle], now: int) -> None:
    for handle in handles:
        served = handle.served
        if served is None:
            continue
        try:
            port.record(served.snapshot, now)
        except DnssealError as e:
            log.error("[%s] journal not updated: %s", handle.name, e)


ZoneState = ZoneHandle  # (its name before it had the commit path)
