"""The server's counters: event counters by label set (:class:`Counters`) and the query
counters every process shares (:class:`QueryCounts`); :mod:`dnsseal.server.metrics` reads
them at scrape time.

This module imports nothing of the server, so the code that counts (the listeners, the
signer's driver, zone transfers in) can import it without an import cycle.

Event counters of a worker process (a zone transfer it served) go to the main process, one
datagram per event on a socket pair made before the fork (:func:`forward_to`); the main
process adds them to its own when it drains the socket (:func:`drain`: at every scrape
and every second).

Query counts are plain arrays of unsigned 64-bit words in one anonymous shared memory map
(``mmap``, ``MAP_SHARED``) made before the worker processes are forked.  Each process owns
one slot of :data:`SLOT_WORDS` words and only ever writes its own; the main process sums all
slots for ``/metrics``.  A slot holds one table per writer (:data:`REGIONS`), each table a
count per (query type, response code), so that no two threads add to the same word without
the GIL between them:

* region 0: the C datagram loop (``_udpfast.c``, which adds to the words itself, no Python
  call per datagram; the GIL is held while it counts);
* region 1: the pure-Python UDP loop threads;
* region 2: the event loop thread's UDP answers (the general path);
* region 3: the event loop thread's TCP answers.

In a table, the query type is its number for 0..263 (every type with a mnemonic but the
private and DNSSEC-lookaside ones), :data:`QT_OTHER` above that and :data:`QT_NONE` for a
message without a question; the rcode is the header's 0..15, or :data:`RC_DROPPED` when no
response was sent.  After the tables, one word per region counts responses sent with the
TC bit.  ``_udpfast.c`` repeats these numbers (``QT_SLOTS``, ``RC_SLOTS``, ``SLOT_WORDS``,
checked when the module is loaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mmap
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import ParamSpec, TypeVar

import dns.exception
import dns.name
import dns.rcode

log = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]
P = ParamSpec("P")
R = TypeVar("R")


class Counters:
    """Monotonic event counters of this process, by metric name and label set.  Increments
    come from the event loop thread and its helper threads; a lock keeps them whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {}
        self.forward: socket.socket | None = None  # a worker's: to the main process

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        if self.forward is not None:
            event = json.dumps([name, amount, labels]).encode()
            with contextlib.suppress(OSError):  # full (main process busy): not counted
                self.forward.send(event)
            return
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values.setdefault(name, {})
            series[key] = series.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values.setdefault(name, {})[key] = value

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        with self._lock:
            series = dict(self._values.get(name, {}))
        return [(dict(k), v) for k, v in sorted(series.items())]


COUNTERS = Counters()  # this process's event counters (the main process serves /metrics)
_INBOX: list[socket.socket] = []  # the main process's ends of the workers' event sockets


def event_sockets() -> tuple[socket.socket, socket.socket]:
    """(main's end, workers' end) of the event socket, made before the fork."""
    inbox, outbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    inbox.setblocking(False)
    outbox.setblocking(False)
    return inbox, outbox


def forward_to(outbox: socket.socket) -> None:
    """In a worker: send this process's counted events to the main process."""
    COUNTERS.forward = outbox


def receive_from(inbox: socket.socket) -> None:
    """In the main process: :func:`drain` reads the workers' events from ``inbox``."""
    _INBOX.append(inbox)


def drain() -> None:
    """Add the events the workers sent since the last call (never blocks)."""
    for sock in _INBOX:
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                _INBOX.remove(sock)
                return
            try:
                name, amount, labels = json.loads(data)
                COUNTERS.inc(
                    str(name), float(amount), **{str(k): str(v) for k, v in labels.items()}
                )
            except (ValueError, TypeError, AttributeError):
                log.warning("[server] a malformed counter event from a worker: dropped")


UPDATES = "dnsseal_updates_total"
XFR = "dnsseal_xfr_total"
NOTIFY_SENT = "dnsseal_notify_sent_total"
SIGN_DURATION = "dnsseal_zone_sign_duration_seconds"

# name -> (type, help): the event counters other modules increment through COUNTERS
EVENT_METRICS: dict[str, tuple[str, str]] = {
    "dnsseal_signatures_created_total": (
        "counter",
        "RRSIG records made by the signer for the zone's published versions.",
    ),
    "dnsseal_alerts_fired_total": ("counter", "Alerts raised, by zone and alert name."),
    UPDATES: (
        "counter",
        "Dynamic updates (RFC 2136) answered, by zone and result (the response's rcode; "
        'zone "" for a zone not served here).',
    ),
    XFR: (
        "counter",
        "Zone transfers: served to secondaries (direction out, result: success or the "
        "rcode) and taken from primaries (direction in, result: success or failure).",
    ),
    NOTIFY_SENT: ("counter", "NOTIFY messages sent to the zone's also-notify targets."),
    SIGN_DURATION: (
        "gauge",
        "How long the zone's last signing took, by kind: full (every RRset walked) or "
        "incremental (a change re-signed).",
    ),
}

# -- query counts ----------------------------------------------------------------------

QT_DIRECT = 264  # query types 0..263 are counted by number
QT_OTHER = QT_DIRECT
QT_NONE = QT_DIRECT + 1
QT_SLOTS = QT_DIRECT + 2
RC_DROPPED = 16
RC_SLOTS = 17
TABLE_WORDS = QT_SLOTS * RC_SLOTS
C_LOOP, UDP_THREAD, UDP_LOOP, TCP = 0, 1, 2, 3  # regions (writers)
REGIONS = 4
REGION_PROTO = ("udp", "udp", "udp", "tcp")
TRUNC_WORD = REGIONS * TABLE_WORDS  # + region
SLOT_WORDS = (TRUNC_WORD + REGIONS + 7) // 8 * 8  # whole 64-byte lines per process
SLOT_BYTES = SLOT_WORDS * 8
XFR_QTYPES = {251: "IXFR", 252: "AXFR"}
_RCODES = frozenset(int(r) for r in dns.rcode.Rcode if int(r) < 16)


def qtype_slot(wire: bytes) -> int:
    """The table row of a message's question type (QT_NONE: no question, or cut short)."""
    n = len(wire)
    if n < 12 or not (wire[4] or wire[5]):
        return QT_NONE
    pos = 12
    while True:
        if pos >= n:
            return QT_NONE
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length >= 0xC0:  # a pointer ends the name
            pos += 2
            break
        pos += length + 1
    if pos + 2 > n:
        return QT_NONE
    qtype = wire[pos] << 8 | wire[pos + 1]
    return qtype if qtype < QT_DIRECT else QT_OTHER


class QueryCounts:
    """The query counters of ``processes`` processes (slot 0: the main process)."""

    def __init__(self, processes: int = 1) -> None:
        self.share(processes)

    def share(self, processes: int) -> None:
        """Start over with ``processes`` zeroed slots (before the processes are forked);
        this process counts in slot 0."""
        self.processes = processes
        self._map = mmap.mmap(-1, processes * SLOT_BYTES)  # MAP_SHARED: seen after fork
        self._all = memoryview(self._map).cast("Q")
        self.index = 0
        self.slot = self._all[:SLOT_WORDS]

    def attach(self, index: int) -> None:
        """This process counts in slot ``index`` from now on (a worker, after the fork)."""
        if not 0 <= index < self.processes:
            raise ValueError(f"slot {index} of {self.processes}")
        self.index = index
        self.slot = self._all[index * SLOT_WORDS : (index + 1) * SLOT_WORDS]

    def buffer(self) -> memoryview:
        """This process's slot as bytes, for the C loop (which adds to region 0)."""
        return self.slot.cast("B")

    def count(self, region: int, query: bytes, response: bytes | None) -> None:
        """One query answered with ``response`` (None: nothing sent)."""
        words = self.slot
        if response is None or len(response) < 4:
            words[region * TABLE_WORDS + qtype_slot(query) * RC_SLOTS + RC_DROPPED] += 1
            return
        words[region * TABLE_WORDS + qtype_slot(response) * RC_SLOTS + (response[3] & 0xF)] += 1
        if response[2] & 0x02:
            words[TRUNC_WORD + region] += 1

    def answered(
        self,
        region: int,
        query: bytes,
        responses: Sequence[bytes],
        zones: Iterable[str] = (),
    ) -> None:
        """One query answered with ``responses`` (a transfer: several messages, counted
        once; empty: nothing sent).  A zone transfer is also counted in
        ``dnsseal_xfr_total`` (``zones``: the zones served, for its zone label)."""
        if len(query) > 2 and (query[2] >> 3) & 0xF in (4, 5):
            return  # NOTIFY and UPDATE: counted as such, not as queries
        first = responses[0] if responses else None
        self.count(region, query, first)
        qtype = qtype_slot(query)
        if qtype in XFR_QTYPES:
            ok = first is not None and len(first) > 3 and first[3] & 0xF == 0
            rcode = "dropped" if first is None or len(first) < 4 else rcode_text(first[3] & 0xF)
            COUNTERS.inc(
                XFR,
                zone=served_zone(query, zones),
                type=XFR_QTYPES[qtype],
                direction="out",
                result="success" if ok else rcode,
            )

    def totals(self) -> tuple[dict[tuple[str, int, int], int], int]:
        """Every slot summed: (proto, qtype row, rcode column) -> count, and responses
        sent truncated."""
        out: dict[tuple[str, int, int], int] = {}
        truncated = 0
        for p in range(self.processes):
            words = self._all[p * SLOT_WORDS : (p + 1) * SLOT_WORDS].tolist()
            for region in range(REGIONS):
                proto = REGION_PROTO[region]
                base = region * TABLE_WORDS
                for i, v in enumerate(words[base : base + TABLE_WORDS]):
                    if v:
                        key = (proto, i // RC_SLOTS, i % RC_SLOTS)
                        out[key] = out.get(key, 0) + v
                truncated += words[TRUNC_WORD + region]
        return out, truncated


QUERIES = QueryCounts()  # shared anew by workers.serve before the fork (a slot per process)


def rcode_text(rcode: int) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode(rcode)) if rcode in _RCODES else str(rcode)


def served_zone(wire: bytes, zones: Iterable[str]) -> str:
    """The zone (as configured) a message's question names, or "" when it is not one of
    ``zones``: a label never takes a name a client made up."""
    try:
        name, _ = dns.name.from_wire(wire, 12)
    except (dns.exception.DNSException, IndexError, ValueError):
        return ""
    text = name.to_text().rstrip(".").lower()
    for z in zones:
        if z.rstrip(".").lower() == text:
            return z
    return ""


def update_answered(zones: Mapping[str, object], query: bytes, reply: bytes) -> None:
    """An UPDATE (or a NOTIFY, not counted here) answered with ``reply``."""
    if len(query) < 4 or (query[2] >> 3) & 0xF != 5:  # opcode UPDATE
        return
    result = rcode_text(reply[3] & 0xF) if len(reply) > 3 else "dropped"
    COUNTERS.inc(UPDATES, zone=served_zone(query, zones), result=result)


def notify_sent(zone: str) -> None:
    COUNTERS.inc(NOTIFY_SENT, zone=zone)


async def xfr_in(zone: str, ixfr: bool, transfer: Awaitable[R]) -> R:
    """Await ``transfer`` (a zone transfer from a primary), counting how it went."""
    kind = "IXFR" if ixfr else "AXFR"
    try:
        result = await transfer
    except BaseException as e:
        if not isinstance(e, asyncio.CancelledError):
            COUNTERS.inc(XFR, zone=zone, type=kind, direction="in", result="failure")
        raise
    COUNTERS.inc(XFR, zone=zone, type=kind, direction="in", result="success")
    return result


def timed_sign(zone: str, kind: str, sign: Callable[P, R], *args: P.args, **kw: P.kwargs) -> R:
    """``sign(*args, **kw)``, its duration kept as the zone's last ``kind`` signing."""
    started = time.perf_counter()
    result = sign(*args, **kw)
    COUNTERS.set(SIGN_DURATION, time.perf_counter() - started, zone=zone, kind=kind)
    return result
