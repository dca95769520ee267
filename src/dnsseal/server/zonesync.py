"""Keeping worker processes in step with the main process (``server.workers`` > 1).

Only the main process signs, takes dynamic updates and writes the journal.  Each worker is
joined to it by a unix socket pair made before the fork, carrying length-prefixed frames:

* main -> worker ``Z``: new versions of inline-signed zones, each with a sequence number:
  the signed zone model in a compact form (owners as label tuples, RRsets as wire RDATA;
  for a small zone the main process keeps packed between changes, that packed form
  itself: :func:`dnsseal.server.versions.pack_version`), or, when the worker has the
  version before it and little changed (an UPDATE), only the records removed and added,
  which the worker applies to the snapshot it serves in O(change) (it keeps no zone
  model: the snapshot is the one form of a zone it holds); the versions pushed while the
  previous frame went out travel together (at most :data:`FRAME_ZONES`), so bringing up
  many zones costs a frame and a thread hop per batch, not per zone;
* worker -> main ``N``: the worker could not apply a change (it lacks the version it
  applies to): the main process sends the zone's latest version whole;
* worker -> main ``A``: the versions of a frame are now served (its last sequence number);
* worker -> main ``U``: an UPDATE (or another message only the main process may answer)
  the kernel handed to the worker, with a request number and the client's address;
* main -> worker ``R``: the reply to send back to the client, from the worker's socket (the
  same address and port the client used).

The main process answers an UPDATE only once every worker has acknowledged the version it
made (:meth:`MainLinks.wait_current`), so any query after the NOERROR, whichever process the
kernel gives it to, sees the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
import struct
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import dns.name

from dnsseal import aio
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, update_from_diff
from dnsseal.server.versions import unpack_own
from dnsseal.zone import model
from dnsseal.zone.diff import ZoneDiff, diff_at

log = logging.getLogger(__name__)

FRAME = struct.Struct("!IB")  # payload length, kind
ZONE, ACK, UPDATE, REPLY, NEED = b"Z", b"A", b"U", b"R", b"N"
ACK_TIMEOUT = 10.0  # seconds the main process waits for workers to take a new version
RELAY_TIMEOUT = 30.0  # seconds a worker waits for the main process to answer an UPDATE
FRAME_ZONES = 100  # zone versions sent in one frame at most
DIFF_RECORDS = 2000  # a version changing more records than this is sent whole

Packed = tuple[tuple[bytes, ...], list[Any], list[Any]]


def pack_zone(zone: model.Zone) -> bytes:
    """``zone`` as bytes for :func:`unpack_zone`: plain tuples of bytes and ints, which
    pickle in C (dnspython names would each go through ``__reduce__``)."""
    rrsets = [
        (name.labels, [(m.rtype, m.ttl, m.rdatas) for m in node.values()])
        for name, node in zone.rrsets.items()
    ]
    sigs = [
        (name.labels, [(t, m.ttl, m.rdatas) for t, m in node.items()])
        for name, node in zone.rrsigs.items()
    ]
    packed: Packed = (zone.origin.labels, rrsets, sigs)
    return pickle.dumps((packed, zone.rdclass), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_zone(data: bytes) -> model.Zone:
    """The zone :func:`pack_zone` packed.  Its owners are taken as they come (the main
    process packed them from its zone model, whose owners are checked and lower-case, and
    sent them on the socket pair it made): no dnspython conversion, validation or
    hashing, which were half of a worker's cost of a new zone."""
    (origin_labels, rrsets, sigs), rdclass = pickle.loads(data)
    names: dict[tuple[bytes, ...], dns.name.Name] = {}

    def name_of(labels: tuple[bytes, ...]) -> dns.name.Name:
        got = names.get(labels)
        if got is None:
            got = names[labels] = model.OwnerName.trusted(labels)
        return got

    data_out = {}
    for labels, sets in rrsets:
        owner = name_of(labels)
        data_out[owner] = {t: model.RRset(owner, t, ttl, rd) for t, ttl, rd in sets}
    sigs_out = {}
    for labels, sets in sigs:
        owner = name_of(labels)
        sigs_out[owner] = {t: model.RRset(owner, model.T.RRSIG, ttl, rd) for t, ttl, rd in sets}
    return model.Zone(name_of(origin_labels), data_out, sigs_out, rdclass)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readexactly(FRAME.size)
    length, kind = FRAME.unpack(head)
    return bytes((kind,)), await reader.readexactly(length)


def _frame(kind: bytes, payload: bytes) -> bytes:
    return FRAME.pack(len(payload), kind[0]) + payload


# -- main process side -------------------------------------------------------------------


class _WorkerLink:
    """The main process's end of one worker's socket pair."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.acked = 0
        self.alive = True
        self.writer: asyncio.StreamWriter | None = None
        self.changed = asyncio.Event()


class MainLinks:
    """The main process's links to its workers: pushes new zone versions, waits for the
    workers to serve them, answers the UPDATEs they relay."""

    def __init__(
        self,
        links: list[tuple[int, socket.socket]],
        on_update: Callable[[bytes, str], Awaitable[bytes]],
    ) -> None:
        """``links``: (worker pid, our end of its socket pair); ``on_update(wire,
        client)``: the reply to a relayed UPDATE."""
        self.links = [_WorkerLink(pid, sock) for pid, sock in links]
        self.on_update = on_update
        self.seq = 0
        self._queue: asyncio.Queue[Pushed] = asyncio.Queue()
        # zone -> the last version queued: the next one is sent as the change from it.  A
        # zone of more than KEEP_OWNERS owners keeps it here (its holder has replaced it by
        # the time the next version comes: an UPDATE; sending that whole costs O(zone) in
        # every worker); a smaller one only while its holder keeps it (a small inline zone
        # keeps its model packed between changes, InlineZone.park, and its next version
        # goes whole, cheaply)
        self._sent: dict[str, weakref.ref[model.Zone] | model.Zone] = {}
        # zone -> its version served now, for a worker that asks for it whole (set by the
        # server: ZoneTable.current_model)
        self.current: Callable[[str], model.Zone | None] = lambda name: None
        self._tasks: list[asyncio.Task[None]] = []
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for link in self.links:
            reader, link.writer = await asyncio.open_connection(sock=link.sock)
            self._tasks.append(asyncio.ensure_future(self._read(link, reader)))
        self._tasks.append(asyncio.ensure_future(self._send()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for link in self.links:
            if link.writer is not None:
                link.writer.close()

    def push(
        self,
        zone_name: str,
        serial: int,
        zone: model.Zone | bytes,
        changed: Iterable[tuple[bytes, ...]] | None = None,
    ) -> None:
        """Send a new version of ``zone_name`` to every worker (in order, in the
        background); :meth:`wait_current` waits for it to be served everywhere.
        ``zone``: the version's model, or its packed form (:func:`~dnsseal.server.versions.
        pack_version`, made in this process: the form a small inline zone is kept in, sent
        as it is, and whole).  ``changed``: the owners (lower-case labels) where ``zone``
        differs from the version pushed before it, when the caller knows them (a
        snapshot's ``changed``); else they are found by comparing the two versions.

        The queue holds only what the caller keeps anyway (its model, or its packed
        bytes): the versions a start pushes while a frame goes out (up to a batch of
        zones) are not each a model unpacked for the push."""
        self.seq += 1
        if isinstance(zone, bytes):
            self._sent.pop(zone_name, None)  # (no model: the next version goes whole too)
            self._queue.put_nowait((self.seq, zone_name, serial, zone, None, None))
            return
        prev = self._last(zone_name)
        big = len(zone.rrsets) > KEEP_OWNERS
        self._sent[zone_name] = zone if big else weakref.ref(zone)
        names = frozenset(changed) if changed is not None and prev is not None else None
        self._queue.put_nowait((self.seq, zone_name, serial, zone, prev, names))

    def _last(self, zone_name: str) -> model.Zone | None:
        kept = self._sent.get(zone_name)
        return kept() if isinstance(kept, weakref.ref) else kept

    def _send_whole(self, zone_name: str) -> None:
        """A worker lacks the version a change applies to: send the latest one whole."""
        zone = self._last(zone_name)
        if zone is None:
            zone = self.current(zone_name)
        if zone is not None:
            log.warning("[%s] a worker asked for the whole zone: sending it", zone_name)
            self.seq += 1
            self._queue.put_nowait((self.seq, zone_name, zone.soa().serial, zone, None, None))

    async def wait_current(self, timeout: float = ACK_TIMEOUT) -> None:
        """Return once every live worker serves every version pushed so far (or after
        ``timeout``, logging the workers that lag: a worker may have died)."""
        target = self.seq
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for link in self.links:
            while link.alive and link.acked < target:
                link.changed.clear()
                left = deadline - loop.time()
                if left <= 0:
                    log.warning("[server] worker %d has not taken the new zone version", link.pid)
                    break
                with contextlib.suppress(TimeoutError):
                    await aio.wait_for(link.changed.wait(), left)

    async def _send(self) -> None:
        while True:
            items = [await self._queue.get()]
            while len(items) < FRAME_ZONES and not self._queue.empty():
                items.append(self._queue.get_nowait())  # pushed meanwhile: the same frame
            frame = _frame(ZONE, await asyncio.to_thread(_pack_versions, items))
            del items  # (not kept while the next frame is awaited: up to FRAME_ZONES models)
            for link in self.links:
                if link.writer is None or not link.alive:
                    continue
                try:
                    link.writer.write(frame)
                    await link.writer.drain()
                except (ConnectionError, OSError) as e:
                    log.warning("[server] worker %d unreachable: %s", link.pid, e)
                    link.alive = False
                    link.changed.set()
            del frame

    async def _read(self, link: _WorkerLink, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                kind, payload = await _read_frame(reader)
                if kind == ACK:
                    link.acked = max(link.acked, int(payload))
                    link.changed.set()
                elif kind == NEED:
                    self._send_whole(payload.decode())
                elif kind == UPDATE:
                    task = asyncio.ensure_future(self._relayed(link, payload))
                    self._relays.add(task)
                    task.add_done_callback(self._relays.discard)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            log.info("[server] worker %d link closed", link.pid)
        finally:
            link.alive = False
            link.changed.set()

    async def _relayed(self, link: _WorkerLink, payload: bytes) -> None:
        req, client, wire = pickle.loads(payload)
        try:
            reply = await self.on_update(wire, client)
        except Exception:
            log.exception("[server] error answering an UPDATE relayed by worker %d", link.pid)
            reply = b""
        if link.writer is not None and link.alive:
            with contextlib.suppress(ConnectionError, OSError):
                link.writer.write(_frame(REPLY, pickle.dumps((req, reply))))
                await link.writer.drain()


# A zone of more owners than this keeps its last version queued (MainLinks._sent): the
# size above which an inline zone keeps its models unpacked (inline.PARK_NAMES).
KEEP_OWNERS = 200

# (sequence number, zone name, serial, the version (its model or packed form), the version
# queued before it or None, the owners where the two differ when known)
Pushed = tuple[
    int, str, int, model.Zone | bytes, model.Zone | None, frozenset[tuple[bytes, ...]] | None
]


def version_change(
    prev: model.Zone, zone: model.Zone, changed: Iterable[tuple[bytes, ...]] | None = None
) -> ZoneDiff | None:
    """The records removed from and added to ``prev`` to make ``zone``, or None when they
    are more than :data:`DIFF_RECORDS`.  ``changed``: the owners (lower-case labels) where
    the two differ, when known (O(those owners)).  Else finds them by identity: a version
    made by :func:`dnsseal.zone.diff.apply` shares every unchanged node with the one before
    (one pass over the owners, no record compared)."""
    if prev.origin != zone.origin:
        return None
    names: set[dns.name.Name] | list[model.OwnerName]
    if changed is not None:
        names = [model.OwnerName.trusted(labels) for labels in changed]
    else:
        names = set()
        for before, after in ((prev.rrsets, zone.rrsets), (prev.rrsigs, zone.rrsigs)):
            if before is after:
                continue
            for name, node in after.items():
                if before.get(name) is not node:
                    names.add(name)
                    if len(names) > DIFF_RECORDS:  # (two unrelated models: every node differs)
                        return None
            names.update(before.keys() - after.keys())
    if len(names) > DIFF_RECORDS:
        return None
    change = diff_at(prev, zone, names)
    if len(change.removed) + len(change.added) > DIFF_RECORDS:
        return None
    return change


def _pack_versions(items: list[Pushed]) -> bytes:
    """A ``Z`` frame's payload: (sequence number, zone name, serial, the version) each, the
    version either ``(b"F", packed zone)``, ``(b"P", pack_version's bytes)`` or ``(b"D",
    serial before, removed, added)``."""
    out: list[tuple[int, str, int, tuple[Any, ...]]] = []
    for seq, name, serial, zone, prev, changed in items:
        if isinstance(zone, bytes):
            out.append((seq, name, serial, (b"P", zone)))
            continue
        change = version_change(prev, zone, changed) if prev is not None else None
        if prev is None or change is None:
            out.append((seq, name, serial, (b"F", pack_zone(zone))))
        else:
            removed = [(n.labels, t, ttl, rd) for n, t, ttl, rd in change.removed]
            added = [(n.labels, t, ttl, rd) for n, t, ttl, rd in change.added]
            out.append((seq, name, serial, (b"D", prev.soa().serial, removed, added)))
    return pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)


# zone name, serial, the new snapshot (None: not built), whether it lacked a base
Built = tuple[str, int, ZoneSnapshot | None, bool]


def _build_versions(payload: bytes, snaps: dict[str, ZoneSnapshot]) -> tuple[int, list[Built]]:
    """The snapshots of a ``Z`` frame's versions (None for one that could not be built:
    logged), and its last sequence number.  ``snaps``: the versions this worker serves,
    which a change applies to (read only: a change to a version earlier in the same frame
    applies to that one).  A change is applied to the snapshot itself
    (:func:`dnsseal.proto.snapshot.update_from_diff`): the worker keeps no zone model."""
    out: list[Built] = []
    last = 0
    snaps = dict(snaps)
    for seq, name, serial, version in pickle.loads(payload):
        last = max(last, seq)
        try:
            if version[0] == b"F":
                snap = build_from_model(unpack_zone(version[1]))
            elif version[0] == b"P":  # (packed by the main process: versions.pack_version)
                snap = build_from_model(unpack_own(version[1]))
            else:
                _, before, removed, added = version
                old = snaps.get(name)
                if old is None or old.serial != before:
                    log.warning("[%s] worker: no version %d to apply %d to", name, before, serial)
                    out.append((name, serial, None, True))
                    continue
                change = ZoneDiff(
                    tuple((dns.name.Name(n), t, ttl, rd) for n, t, ttl, rd in removed),
                    tuple((dns.name.Name(n), t, ttl, rd) for n, t, ttl, rd in added),
                )
                snap = update_from_diff(old, change)  # O(change)
            snaps[name] = snap
            out.append((name, serial, snap, False))
        except Exception:
            log.exception("[%s] worker: new version %d not served", name, serial)
            snaps.pop(name, None)
            out.append((name, serial, None, False))
    return last, out


# -- worker side ---------------------------------------------------------------------------


class WorkerLink:
    """A worker's end: installs the zone versions the main process sends, relays UPDATEs."""

    def __init__(
        self,
        sock: socket.socket,
        install: Callable[[str, ZoneSnapshot], None],
        swap: Callable[[], None] | None = None,
    ) -> None:
        """``install(zone_name, snapshot)``: make this version the one to serve (called in
        the event loop); ``swap()``: serve the versions installed since the last call,
        called once after a frame's versions are installed and before they are
        acknowledged (None: ``install`` serves each itself)."""
        self.sock = sock
        self.install = install
        self.swap = swap
        self.writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        # the versions served here, which the main process's changes apply to
        self.snaps: dict[str, ZoneSnapshot] = {}

    async def start(self) -> None:
        reader, self.writer = await asyncio.open_connection(sock=self.sock)
        self._task = asyncio.ensure_future(self._read(reader))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.writer is not None:
            self.writer.close()

    async def relay(self, wire: bytes, client: str) -> bytes:
        """The main process's reply to ``wire`` (empty: send nothing)."""
        if self.writer is None:
            return b""
        req = next(self._ids)
        log.info("[server] worker: UPDATE from %s relayed to the main process", client)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        try:
            self.writer.write(_frame(UPDATE, pickle.dumps((req, client, wire))))
            await self.writer.drain()
            return await aio.wait_for(fut, RELAY_TIMEOUT)
        except (TimeoutError, ConnectionError, OSError) as e:
            log.warning("[server] UPDATE from %s not answered by the main process: %s", client, e)
            return b""
        finally:
            self._pending.pop(req, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                kind, payload = await _read_frame(reader)
                if kind == ZONE:
                    seq, built = await asyncio.to_thread(_build_versions, payload, self.snaps)
                    payload = b""  # (the frame is not kept while the next is awaited)
                    lacking = set()
                    for name, serial, snap, lacked in built:
                        if lacked:
                            lacking.add(name)
                        if snap is None:
                            self.snaps.pop(name, None)  # a later change cannot apply
                            continue
                        try:
                            self.install(name, snap)
                        except Exception:
                            log.exception("[%s] worker: new version %d not served", name, serial)
                            self.snaps.pop(name, None)
                            continue
                        self.snaps[name] = snap
                    if self.swap is not None:  # (the cached answers filtered once a frame)
                        self.swap()
                    if self.writer is None:
                        continue
                    for name in sorted(lacking):
                        self.writer.write(_frame(NEED, name.encode()))
                    if not lacking:  # (else the whole version, sent later, is acknowledged)
                        self.writer.write(_frame(ACK, str(seq).encode()))
                elif kind == REPLY:
                    req, reply = pickle.loads(payload)
                    fut = self._pending.get(req)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            log.info("[server] worker: link to the main process closed")
