"""Keeping worker processes in step with the main process (``server.workers`` > 1).

Only the main process signs, takes dynamic updates and writes the journal.  Each worker is
joined to it by a unix socket pair made before the fork, carrying length-prefixed frames:

* main -> worker ``Z``: new versions of inline-signed zones (each the signed zone model in
  a compact form: owners as label tuples, RRsets as wire RDATA), each with a sequence
  number; the versions pushed while the previous frame went out travel together (at most
  :data:`FRAME_ZONES`), so bringing up many zones costs a frame and a thread hop per
  batch, not per zone;
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
from collections.abc import Awaitable, Callable
from typing import Any

import dns.name

from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model
from dnsseal.zone import model

log = logging.getLogger(__name__)

FRAME = struct.Struct("!IB")  # payload length, kind
ZONE, ACK, UPDATE, REPLY = b"Z", b"A", b"U", b"R"
ACK_TIMEOUT = 10.0  # seconds the main process waits for workers to take a new version
RELAY_TIMEOUT = 30.0  # seconds a worker waits for the main process to answer an UPDATE
FRAME_ZONES = 100  # zone versions sent in one frame at most

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
    """The zone :func:`pack_zone` packed."""
    (origin_labels, rrsets, sigs), rdclass = pickle.loads(data)
    names: dict[tuple[bytes, ...], dns.name.Name] = {}

    def name_of(labels: tuple[bytes, ...]) -> dns.name.Name:
        got = names.get(labels)
        if got is None:
            got = names[labels] = dns.name.Name(labels)
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
        self._queue: asyncio.Queue[tuple[int, str, int, model.Zone]] = asyncio.Queue()
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

    def push(self, zone_name: str, serial: int, zone: model.Zone) -> None:
        """Send a new version of ``zone_name`` to every worker (in order, in the
        background); :meth:`wait_current` waits for it to be served everywhere."""
        self.seq += 1
        self._queue.put_nowait((self.seq, zone_name, serial, zone))

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
                    await asyncio.wait_for(link.changed.wait(), left)

    async def _send(self) -> None:
        while True:
            items = [await self._queue.get()]
            while len(items) < FRAME_ZONES and not self._queue.empty():
                items.append(self._queue.get_nowait())  # pushed meanwhile: the same frame
            frame = _frame(ZONE, await asyncio.to_thread(_pack_versions, items))
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

    async def _read(self, link: _WorkerLink, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                kind, payload = await _read_frame(reader)
                if kind == ACK:
                    link.acked = max(link.acked, int(payload))
                    link.changed.set()
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


def _pack_versions(items: list[tuple[int, str, int, model.Zone]]) -> bytes:
    """A ``Z`` frame's payload: (sequence number, zone name, serial, packed zone) each."""
    return pickle.dumps([(seq, name, serial, pack_zone(zone)) for seq, name, serial, zone in items])


Built = tuple[str, int, ZoneSnapshot | None]


def _build_versions(payload: bytes) -> tuple[int, list[Built]]:
    """The snapshots of a ``Z`` frame's versions (None for one that could not be built:
    logged), and its last sequence number."""
    out: list[Built] = []
    last = 0
    for seq, name, serial, packed in pickle.loads(payload):
        last = max(last, seq)
        try:
            out.append((name, serial, build_from_model(unpack_zone(packed))))
        except Exception:
            log.exception("[%s] worker: new version %d not served", name, serial)
            out.append((name, serial, None))
    return last, out


# -- worker side ---------------------------------------------------------------------------


class WorkerLink:
    """A worker's end: installs the zone versions the main process sends, relays UPDATEs."""

    def __init__(self, sock: socket.socket, install: Callable[[str, ZoneSnapshot], None]) -> None:
        """``install(zone_name, snapshot)``: serve this version (called in the event loop)."""
        self.sock = sock
        self.install = install
        self.writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

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
            return await asyncio.wait_for(fut, RELAY_TIMEOUT)
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
                    seq, built = await asyncio.to_thread(_build_versions, payload)
                    for name, serial, snap in built:
                        if snap is None:
                            continue
                        try:
                            self.install(name, snap)
                        except Exception:
                            log.exception("[%s] worker: new version %d not served", name, serial)
                    if self.writer is not None:
                        self.writer.write(_frame(ACK, str(seq).encode()))
                elif kind == REPLY:
                    req, reply = pickle.loads(payload)
                    fut = self._pending.get(req)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            log.info("[server] worker: link to the main process closed")
