"""Automated DNSSEC in the running server: inline-signed zones on timers.

For every zone with a dnssec-policy, :class:`Maintenance` keeps an
:class:`~dnsseal.server.inline.InlineZone` and runs its maintenance (key manager step +
re-signing) at the next key event or signature refresh, or at once when woken (reload,
``dnsseal ctl``, a checkds result).  One scheduler serves every zone: a heap of wake-up
times and one task, not a task, an event and a timeout per zone (10,000 zones held 10,000
sleeping tasks).  Every new version goes through the zone's
:meth:`~dnsseal.server.zonehandle.ZoneHandle.commit`, the one path to serving: journal first
(committed, fsync'd), then the signed copy in the state directory, then the swap into the
query engine, then NOTIFY.  At a start or reload, the zones' first versions take the same
steps a batch of zones at a time (:meth:`Maintenance.start_many`: one journal transaction
for the batch, then the copies, then each zone served).  One change per zone at a time (the
zone's lock).  It starts each zone's drivers (xfrin, checkds, DS automation), which see it
as a :class:`~dnsseal.server.zonetable.Maintainer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeGuard

from dnsseal import clock
from dnsseal.durations import format_human_time
from dnsseal.errors import DnssealError
from dnsseal.policy.build import lookup
from dnsseal.server import checkds, dsdriver, signpool
from dnsseal.server.inline import InlineZone
from dnsseal.server.versions import Version, unpack_version
from dnsseal.server.xfrin import Secondary
from dnsseal.server.zonehandle import (
    ServerHost,
    ZoneHandle,
    count_signatures,
    journal_version,
    serve_installed,
    write_copy,
)
from dnsseal.server.zonetable import ZoneTable
from dnsseal.storage import atomic
from dnsseal.storage.journal import AuditEvent, Journal
from dnsseal.zone.model import Zone

log = logging.getLogger(__name__)

RETRY = 60  # seconds before a failed maintenance is tried again
MAX_SLEEP = 3600  # a timer re-checks at least this often


START_BATCH = 100  # zones attached and maintained per worker-thread call (start_many)
START_THREADS = 8  # zones of a batch maintained (and their copies written) at once
START_BATCH_SECONDS = 0.2  # ... or fewer, once a batch took this long (zones come up sooner)
# A start logs a zone's key events and its "signed and served" line (BIND: "loaded serial"),
# its next maintenance only at debug (``dnsseal ctl zone-status`` shows it): one line a
# zone of thousands is routine, not news.
START_LOG_NEXT = logging.DEBUG


def _submit(
    pool: ThreadPoolExecutor, fn: Callable[..., _Outcome], *args: object
) -> Future[_Outcome]:
    """``fn(*args)`` in ``pool``, or here when the pool is shut down (the start that made
    it was cancelled while this batch ran: the batch is finished as it was begun)."""
    try:
        return pool.submit(fn, *args)
    except RuntimeError:
        done: Future[_Outcome] = Future()
        done.set_result(fn(*args))
        return done


def _waits_for_transfer(state: ZoneHandle, inline: InlineZone) -> bool:
    return (
        bool(state.config.primaries)
        and inline.unsigned is None
        and not (state.config.file.exists())
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _AttachFailed:
    problem: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Waiting:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class _Maintained:
    now: int
    started: float
    version: Version | None  # to publish
    events: list[AuditEvent]  # to journal with it
    error: DnssealError | None
    # The version and events are journaled and the copies written (_persist_batch): what
    # is left of publishing it is serving it.  False: publish it on its own.
    persisted: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class _Crashed:
    error: Exception


_Outcome = _AttachFailed | _Waiting | _Maintained | _Crashed


def _ready_to_serve(outcome: _Outcome) -> TypeGuard[_Maintained]:
    """A new version journaled and copied in its batch: what is left is serving it."""
    return (
        isinstance(outcome, _Maintained)
        and outcome.error is None
        and outcome.persisted
        and outcome.version is not None
    )


def _keep_started() -> None:
    """After each batch of a start: its garbage collected, what it made (versions, keys,
    snapshots: kept until the zones change) frozen out of the collector's sight.  Without
    this every full collection walks all the zones started so far again (about a fifth of
    a restart's CPU at 4,000 zones: 1.2 s in 9 full collections); with it a collection
    walks only what is younger than the last batch.  Objects frozen are still freed when
    their last reference goes; only a cycle among them would not be, and the start makes
    none that outlive it (the collection just before the freeze takes those it left)."""
    gc.collect()
    gc.freeze()


_PAUSE = {"starts": 0, "was_on": False}  # (event loop only)


@contextlib.contextmanager
def _collections_paused() -> Iterator[None]:
    """The automatic collections off while a start runs: :func:`_keep_started` collects
    after each batch anyway, and the generation 0 and 1 collections a batch's allocations
    set off walk the same young objects again (0.2 s of 1,500 zones' 0.5 s collecting).
    Garbage left between two batches waits for the next batch's end.  Back on when the
    last start under way ends, if it was on when the first began."""
    if _PAUSE["starts"] == 0:
        _PAUSE["was_on"] = gc.isenabled()
        gc.disable()
    _PAUSE["starts"] += 1
    try:
        yield
    finally:
        _PAUSE["starts"] -= 1
        if _PAUSE["starts"] == 0 and _PAUSE["was_on"]:
            gc.enable()


class Maintenance:
    """Inline signing for the zones of ``table`` (main process only); ``host``: the
    process around it, for the drivers it starts (transfers in, checkds, DS automation)."""

    def __init__(self, table: ZoneTable, host: ServerHost) -> None:
        self.table = table
        self.host = host
        # The maintenance schedule: (when, sequence, zone) in a heap; a zone's live entry is
        # the one ``_planned`` names (a later plan leaves the old entry to be skipped).
        self._due: list[tuple[int, int, str]] = []
        self._planned: dict[str, tuple[int, int]] = {}
        self._seq = itertools.count()
        self._again: set[str] = set()  # woken while its maintenance ran: run it once more
        self._kick: asyncio.Event | None = None  # an entry earlier than the scheduler's sleep
        self._scheduler: asyncio.Task[None] | None = None

    # -- setup ----------------------------------------------------------------------------

    def attach(self, state: ZoneHandle, journal: Journal | None = None) -> None:
        """Give ``state`` its InlineZone (restored from the journal) or update its policy.
        ``journal``: one already open (many zones attached in a row share it)."""
        cfg = self.table.config
        zcfg = state.config
        assert zcfg.policy is not None and cfg.state_dir is not None and cfg.key_dir is not None
        policy = lookup(zcfg.policy, cfg.policies)
        if state.inline is not None:
            state.inline.policy = policy
            state.inline.source = zcfg.file
            state.inline.serial_method = zcfg.serial_method
            return
        inline = InlineZone(
            zcfg.name,
            zcfg.file,
            policy,
            cfg.key_dir,
            cfg.state_dir,
            serial_method=zcfg.serial_method,
        )
        current: Zone | set[str] | None = None  # the journal's version: packed, or its text
        with contextlib.ExitStack() as opened:
            j = journal if journal is not None else opened.enter_context(Journal(cfg.state_dir))
            packed = j.packed(inline.name)  # (no text to parse)
            if packed is not None:
                current = unpack_version(packed[1], inline.origin)
            if current is None:
                replayed = j.replay(inline.name)
                current = replayed[1] if replayed is not None else None
        inline.restore(current)
        state.inline = inline
        # Not served yet: the first maintenance refreshes what expired while we were down;
        # only if it fails is the journal's version served as it is.

    def start_timer(self, state: ZoneHandle) -> None:
        """Schedule the zone's maintenance, start its checkds loop (``checkds = "yes"``) and,
        for a zone with primaries, its refresh loop."""
        if state.name in self._planned or state.timer is not None:
            self.wake(state)  # a reload may have moved the next event earlier: re-plan
        else:
            self._plan(state)
        wants_checkds = state.config.checkds == "yes"
        if wants_checkds and (state.checkds_task is None or state.checkds_task.done()):
            state.checkds_task = asyncio.ensure_future(checkds.run(self, state))
        dsdriver.start(self, state)
        if state.config.primaries:
            if state.secondary is None:
                state.secondary = Secondary(self, state)
            state.secondary.start()

    async def stop(self) -> None:
        for state in self.table.zones.values():  # signed copies still behind the journal
            await state.dump_now()
        await dsdriver.stop_all()
        scheduler, self._scheduler = self._scheduler, None
        self._due, self._planned = [], {}
        if scheduler is not None:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await scheduler
        for state in self.table.zones.values():
            for task in (state.timer, state.checkds_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            state.timer = state.checkds_task = None
            if state.secondary is not None:
                await state.secondary.stop()

    def transfer_status(self, state: ZoneHandle) -> dict[str, object]:
        """For ``zone-status``: the primaries, the serial they have, the last transfer and
        its result, the next refresh (empty for a zone without primaries)."""
        return state.secondary.describe() if state.secondary is not None else {}

    # -- maintenance ----------------------------------------------------------------------

    async def maintain(self, state: ZoneHandle, reason: str, force: bool = False) -> str | None:
        """Run the zone's maintenance now and publish what it produces.  Returns the
        problem (the zone keeps its version) or None."""
        inline = state.inline
        assert inline is not None
        if _waits_for_transfer(state, inline):
            state.error = "waiting for the first transfer from the primaries"
            return state.error
        async with state.lock:
            now = clock.now()
            started = time.monotonic()
            try:
                version = await asyncio.to_thread(inline.maintain, now, reason=reason, force=force)
                events = inline.take_events()
                if version is not None:
                    await state.commit(version, now, events, started)
                elif events:
                    await asyncio.to_thread(state.audit, events)
                await asyncio.to_thread(inline.save_source_copy)
            except DnssealError as e:
                return self._failed(state, now, e)
            self._maintained(state)
        self._log_next(state)
        return None

    def _failed(self, state: ZoneHandle, now: int, e: DnssealError) -> str:
        """A maintenance failed: retry later; serve the journal's version meanwhile."""
        assert state.inline is not None
        state.error = str(e)
        state.retry_at = now + RETRY
        log.error("[%s] DNSSEC: %s", state.name, e)
        if state.served is None and state.inline.signed is not None:
            state.install(state.inline.signed, keep_history=False)
        return str(e)

    def _maintained(self, state: ZoneHandle) -> None:
        assert state.inline is not None
        state.error = None
        state.retry_at = 0
        if state.served is None and state.inline.signed is not None:
            state.install(state.inline.signed, keep_history=False)

    @staticmethod
    def _log_next(state: ZoneHandle, level: int = logging.INFO) -> None:
        assert state.inline is not None
        if not log.isEnabledFor(level):
            return
        nxt = state.inline.next_wakeup()
        if nxt is not None:
            log.log(
                level, "[%s] DNSSEC: next maintenance at %s", state.name, format_human_time(nxt)
            )

    # -- many zones at once (start, reload) ---------------------------------------------

    async def start_many(self, states: Sequence[ZoneHandle], reason: str) -> list[str]:
        """Attach every zone of ``states`` (restore it from the journal), run its first
        maintenance (as :meth:`maintain` does) and start its timer; returns the problems
        ("zone: why").  The work off the event loop is done for a batch of zones per
        worker-thread call (:func:`_start_batch`: at most :data:`START_BATCH` zones or
        :data:`START_BATCH_SECONDS`) sharing one journal connection, not three thread hops
        and a journal opening per zone; what a zone's maintenance made is published (its
        own commit path) once its batch is back.  A zone whose attach failed gets no timer."""
        problems: list[str] = []
        todo = list(states)
        # one pool for every batch (its threads made once, not START_THREADS per batch)
        pool = ThreadPoolExecutor(START_THREADS, thread_name_prefix="zone-start")
        signpool.enter()  # new zones' first signing may go to a helper process (till leave)
        try:
            with _collections_paused():
                while todo:
                    batch = todo[:START_BATCH]
                    async with contextlib.AsyncExitStack() as locks:
                        for state in batch:  # each zone's one-change-at-a-time lock, as maintain
                            await locks.enter_async_context(state.lock)
                        after = len(todo) - len(batch)  # (zones of the start after the batch)
                        done = await asyncio.to_thread(
                            self._start_batch, batch, reason, pool, after
                        )
                        for state, outcome in zip(batch, done, strict=False):
                            if _ready_to_serve(outcome):  # served at the batch's one swap below
                                problem = self._serve_started(state, outcome)
                            else:  # (may yield to the event loop: what is installed served first)
                                serve_installed(self.table)
                                problem = await self._started(state, outcome)
                            if problem is not None:
                                problems.append(f"{state.name}: {problem}")
                            if not isinstance(outcome, _AttachFailed):
                                self.start_timer(state)  # (its task waits for the lock we hold)
                        # One swap for the batch's zones: each swap filters the cached answers
                        # (the cache's size: up to FILTER_LIMIT entries) and makes a push.
                        serve_installed(self.table)
                    del todo[: len(done)]
                    _keep_started()
        finally:
            pool.shutdown(wait=False)  # (idle: its threads end on their own)
            signpool.leave()
        return problems

    def _start_batch(
        self, batch: Sequence[ZoneHandle], reason: str, pool: ThreadPoolExecutor, after: int = 0
    ) -> list[_Outcome]:
        """In a worker thread: attach the zones of ``batch`` in order and maintain them;
        those signed for the first time :data:`START_THREADS` at a time in parallel
        threads (each one's key files are written and fsync'd while the others' are: the
        file system commits overlapping fsyncs together), for at most START_BATCH_SECONDS
        (at least one group); then make the names of the key files they made durable
        (one fsync of the key directory for the batch, not one per key) and persist what
        they made (:meth:`_persist_batch`): no version signed with a key is journaled or
        served before its files' names are durable.  The outcome of each zone done, in
        order; after a bug (_Crashed) none.  ``after``: how many zones of the start follow
        ``batch`` (the helper of first signings is started when many are to come)."""
        state_dir = self.table.config.state_dir
        assert state_dir is not None
        out: list[_Outcome] = []
        deadline = time.monotonic() + START_BATCH_SECONDS
        todo = list(batch)
        syncs = atomic.DirSyncs()  # the key files' names: durable before the journal
        submitted: list[Future[_Outcome]] = []
        with Journal(state_dir) as j:
            try:
                while todo and not (out and time.monotonic() > deadline):
                    group, todo = todo[:START_THREADS], todo[START_THREADS:]
                    slots: list[_Outcome | Future[_Outcome]] = []
                    for state in group:  # the journal connection is this thread's
                        try:
                            self.attach(state, j)
                        except DnssealError as e:
                            slots.append(_AttachFailed(str(e)))
                            continue
                        assert state.inline is not None
                        if _waits_for_transfer(state, state.inline):
                            slots.append(_Waiting())
                            continue
                        if state.inline.signed is None:  # signed for the first time: writes
                            submitted.append(
                                _submit(pool, self._maintain_one, state.inline, reason, syncs)
                            )
                            slots.append(submitted[-1])
                        else:  # (restored: mostly nothing to write; threads only add GIL waits)
                            slots.append(self._maintain_one(state.inline, reason, syncs))
                    if firsts := sum(isinstance(s, Future) for s in slots):
                        # as many first signings to come in the rest of the start, in
                        # proportion: a cold start's helper is started from its first group
                        signpool.expect(firsts * (len(todo) + after) // len(group))
                    done = [s.result() if isinstance(s, Future) else s for s in slots]
                    crash = next((i for i, o in enumerate(done) if isinstance(o, _Crashed)), None)
                    if crash is not None:  # raised once the zones before are published
                        out += done[: crash + 1]
                        break
                    out += done
            finally:  # (also after a bug: the zones before it are published)
                wait(submitted)  # (returned already, but after a bug)
                syncs.sync()
            self._persist_batch(j, batch, out, pool)
        return out

    @staticmethod
    def _maintain_one(inline: InlineZone, reason: str, syncs: atomic.DirSyncs) -> _Outcome:
        """One zone's first maintenance (in a pool thread).  The names of its new key
        files are made durable by ``syncs.sync()``, once for the batch's zones, before
        any version is journaled or served (each .private's name is durable before its
        .key names the key: :meth:`KeyDirectory.create` syncs the directory between)."""
        now = clock.now()
        started = time.monotonic()
        try:
            with atomic.deferred_dir_sync(into=syncs):
                version = inline.maintain(now, reason=reason)
            events = inline.take_events()
        except DnssealError as e:
            return _Maintained(now, started, None, [], e)
        except Exception as e:  # a bug
            return _Crashed(e)
        return _Maintained(now, started, version, events, None)

    def _persist_batch(
        self,
        j: Journal,
        batch: Sequence[ZoneHandle],
        out: list[_Outcome],
        pool: ThreadPoolExecutor,
    ) -> None:
        """What :meth:`publish` does before serving, for every zone of ``batch`` maintained
        without error: journal the versions and key events, all in one transaction (one
        commit, one fsync, for the batch), then write each zone's signed copy and its copy
        of the source (in ``pool``'s threads: their fsyncs overlap).  Marks each done
        zone's outcome ``persisted``, or gives it the error its copy met.  When the
        journal cannot be written, nothing is marked: each zone is then published on its
        own (and fails on its own)."""
        done = [
            (i, state, o)
            for i, (state, o) in enumerate(zip(batch, out, strict=False))
            if isinstance(o, _Maintained) and o.error is None
        ]
        if any(o.version is not None or o.events for _, _, o in done):
            try:
                with j.batch():
                    for _, _, o in done:
                        if o.version is not None:
                            journal_version(j, o.version, o.now)
                        for e in o.events:
                            j.audit(e)
            except DnssealError:
                return
        copies = [  # (the zones with files to write; the rest have none: no thread)
            _submit(pool, self._copies, state, o)
            if o.version is not None or (state.inline and state.inline.source_copy_due())
            else None
            for _, state, o in done
        ]
        try:
            for (i, state, o), copied in zip(done, copies, strict=True):
                out[i] = copied.result() if copied is not None else self._copies(state, o)
        finally:  # (all returned already, but after a bug)
            wait([c for c in copies if c is not None])

    def _copies(self, state: ZoneHandle, o: _Maintained) -> _Maintained:
        """Write the signed copy of ``o``'s version and the copy of the source (after the
        journal); ``o`` persisted, or failed with why."""
        inline = state.inline
        assert inline is not None
        try:
            if o.version is not None:
                write_copy(inline, o.version.zone)
                count_signatures(state.name, o.version)
            inline.save_source_copy()
        except DnssealError as e:
            return _Maintained(o.now, o.started, None, [], e)
        return dataclasses.replace(o, persisted=True)

    def _serve_started(self, state: ZoneHandle, outcome: _Maintained) -> str | None:
        """:meth:`_started` for a version journaled and copied in its batch
        (:func:`_ready_to_serve`): installed, not swapped (the caller swaps once for the
        batch, before it yields to the event loop)."""
        assert outcome.version is not None
        state.cancel_dump()  # (its copy is written)
        try:
            state.committed(outcome.version, outcome.started, swap=False)
        except DnssealError as e:
            return self._failed(state, outcome.now, e)
        self._maintained(state)
        self._log_next(state, START_LOG_NEXT)
        return None

    async def _started(self, state: ZoneHandle, outcome: _Outcome) -> str | None:
        """On the event loop, with the zone's lock held: finish what _start_batch did."""
        if isinstance(outcome, _Crashed):
            raise outcome.error  # as maintain() would have, the zones before published
        if isinstance(outcome, _AttachFailed):
            state.error = outcome.problem
            log.error("[%s] not loaded: %s", state.name, outcome.problem)
            return outcome.problem
        if isinstance(outcome, _Waiting):
            state.error = "waiting for the first transfer from the primaries"
            return state.error
        assert state.inline is not None
        if outcome.error is not None:
            return self._failed(state, outcome.now, outcome.error)
        version = outcome.version
        try:
            if outcome.persisted:  # journaled and copied in its batch: serve it
                if version is not None:
                    state.cancel_dump()  # (its copy is written)
                    state.committed(version, outcome.started)
            elif version is not None:  # the batch's journal write failed: on its own
                await state.commit(version, outcome.now, outcome.events, outcome.started)
                await asyncio.to_thread(state.inline.save_source_copy)
            else:
                if outcome.events:
                    await asyncio.to_thread(state.audit, outcome.events)
                await asyncio.to_thread(state.inline.save_source_copy)
        except DnssealError as e:
            return self._failed(state, outcome.now, e)
        self._maintained(state)
        self._log_next(state, START_LOG_NEXT)
        return None

    # -- the maintenance schedule -------------------------------------------------------

    def wake(self, state: ZoneHandle) -> None:
        """Run the zone's maintenance now (once more after the one running now, if any)."""
        if state.timer is not None:
            self._again.add(state.name)
        else:
            self._put(state.name, clock.now())

    def _plan(self, state: ZoneHandle) -> None:
        """Schedule the zone's next maintenance: its next key event or signature refresh,
        not before a failed one's retry time, and within MAX_SLEEP."""
        assert state.inline is not None
        now = clock.now()
        wake = state.inline.next_wakeup()
        if state.retry_at:
            wake = state.retry_at if wake is None else max(wake, state.retry_at)
        self._put(state.name, now + (MAX_SLEEP if wake is None else min(max(wake - now, 0),
                                                                         MAX_SLEEP)))  # fmt: skip

    def _put(self, name: str, when: int) -> None:
        entry = (when, next(self._seq))
        self._planned[name] = entry
        heapq.heappush(self._due, (*entry, name))
        if self._scheduler is None or self._scheduler.done():
            self._kick = asyncio.Event()
            self._scheduler = asyncio.ensure_future(self._schedule())
        elif self._due[0][1] == entry[1] and self._kick is not None:
            self._kick.set()  # earlier than the scheduler sleeps until

    async def _schedule(self) -> None:
        """The one scheduler: start the maintenance of every zone that is due (each in a
        task of its own while it runs), then sleep until the next one."""
        kick = self._kick
        assert kick is not None
        while True:
            now = clock.now()
            due = self._due
            while due and due[0][0] <= now:
                when, seq, name = heapq.heappop(due)
                if self._planned.get(name) != (when, seq):
                    continue  # planned again since: a later entry is the live one
                del self._planned[name]
                state = self.table.zones.get(name)
                if state is None or state.inline is None or state.timer is not None:
                    continue  # gone, or its maintenance runs (and plans the next)
                state.timer = asyncio.ensure_future(self._run(state))
            delay = MAX_SLEEP if not due else min(max(due[0][0] - now, 0), MAX_SLEEP)
            kick.clear()
            # (not wait_for: on Python 3.11 it loses a cancellation that comes just after
            # the kick, and a stop waited for this task until its next zone was due)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await kick.wait()

    async def _run(self, state: ZoneHandle) -> None:
        """One scheduled maintenance, then the zone's next one planned (unless the zone is
        gone or the server stopping: then this task was cancelled)."""
        try:
            await self.maintain(state, "resign")
        except Exception:  # a bug must not end the zone's maintenance for good
            log.exception("[%s] DNSSEC: maintenance failed", state.name)
            state.retry_at = clock.now() + RETRY
        finally:
            if state.timer is asyncio.current_task():
                state.timer = None
        if self.table.zones.get(state.name) is not state:
            self._again.discard(state.name)
            return
        if state.name in self._again:
            self._again.discard(state.name)
            self._put(state.name, clock.now())
        else:
            self._plan(state)
