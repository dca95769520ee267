"""Signing new zones in a helper process while a start of many zones goes on.

A cold start of thousands of zones spends nearly all its CPU in the main process (reading
the sources, keys, signing, the journal, the copies, the answer tables) while the other
core idles.  Between :func:`enter` and :func:`leave` (the server's start of many zones),
the first signing pass of each new zone (:func:`sign`) goes to one helper process once it
is up: the zone, its signing keys and the parameters go there through the pool's pipe, and
the signed zone comes back packed (:func:`~dnsseal.server.versions.pack_version`, the form
a restart reads from the journal).  The keys' private material crosses only that pipe, in
memory: it is never written anywhere but the key directory.

The helper signs with :func:`~dnsseal.signer.sign.sign_zone`, what the main process would
have run, with the same keys, parameters and time: the result is the same zone (ECDSA
signatures differ, being randomized, as two runs in one process do).  Anything going wrong
there (the process gone, an error from the signer) makes the caller sign in the main
process, which then raises what the signer raises.  The helper is started only once a
start has asked or announced (:func:`expect`) more than :data:`WARM_AFTER` first signings
(a start of a few zones does not pay for a process), and until it has imported what it
needs the zones are signed here as before;
it ends when the start does (and when the server's process is gone).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import dns.name

from dnsseal.server.versions import pack_version, record_line, unpack_version
from dnsseal.signer.keysel import SigningKey
from dnsseal.signer.sign import SignParams, sign_zone
from dnsseal.zone.diff import records
from dnsseal.zone.model import Zone
from dnsseal.zone.text import iter_zone_text

log = logging.getLogger(__name__)

WARM_AFTER = 100  # first signings of one start done here before the helper is started
WATCH_INTERVAL = 1.0  # seconds between the helper's looks at its parent


def _watch_parent(parent: int) -> None:
    """The helper's initializer: a daemon thread ends it once ``parent`` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready() -> bool:
    return True


def sign_packed(
    data: bytes, origin: str, keys: Sequence[SigningKey], params: SignParams, now: int
) -> tuple[bytes, list[str], str]:
    """In the helper: the zone packed in ``data`` signed, packed, with what the main
    process writes of it (see :class:`Made`): its journal lines and its copy's text."""
    zone = unpack_version(data, dns.name.from_text(origin))
    if zone is None:
        raise ValueError("not a packed zone")
    signed = sign_zone(zone, keys, params, now).zone
    lines = sorted(record_line(r) for r in records(signed))
    return pack_version(signed), lines, "".join(iter_zone_text(signed))


@dataclass(frozen=True, slots=True)
class Made:
    """What the helper made of a signed zone besides the zone, each what the main process
    would have made of it: its packed form (:func:`pack_version`, kept in the journal for
    the next restart), its records' journal lines, sorted (the journal's base), and its
    text as a master file without header (the signed copy's body,
    :func:`~dnsseal.zone.text.iter_zone_text`)."""

    zone: Zone
    packed: bytes
    lines: list[str]
    text: str


class _Pool:
    """The helper of the starts under way (made on the first signing past WARM_AFTER)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0  # starts under way
        self.seen = 0  # first signings asked since the pool was last closed
        self.executor: ProcessPoolExecutor | None = None
        self.warm: Future[bool] | None = None
        self.signed = 0  # zones the helper signed (tests count them)
        # id(zone) -> what the helper made of it, until the main process wrote it (or the
        # start ends); the entry holds the zone, so the id cannot be another zone's
        self.made: dict[int, Made] = {}

    def _start(self) -> None:
        """Start the helper (the lock held) once the first signings asked or announced
        are more than WARM_AFTER."""
        if self.executor is not None or self.seen <= WARM_AFTER:
            return
        self.executor = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),  # (threads run here)
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
        self.warm = self.executor.submit(_ready)

    def expect(self, count: int) -> None:
        with self.lock:
            if self.users:
                self.seen += count
                self._start()

    def ready(self) -> ProcessPoolExecutor | None:
        """The helper when it is up; started here once enough zones asked."""
        with self.lock:
            if self.users == 0:
                return None
            self.seen += 1
            if self.executor is None:
                self._start()
                return None
            warm = self.warm
            if warm is None or not warm.done() or warm.exception() is not None:
                return None
            return self.executor

    def enter(self) -> None:
        with self.lock:
            self.users += 1

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users > 0:
                return
            executor, self.executor, self.warm, self.seen = self.executor, None, None, 0
            self.made = {}
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


_POOL = _Pool()


def enter() -> None:
    """A start of many zones begins: until its :func:`leave`, :func:`sign` may sign in the
    helper process."""
    _POOL.enter()


def leave() -> None:
    """The start is over: the helper ends once no other start uses it."""
    _POOL.leave()


@contextmanager
def first_signings() -> Iterator[None]:
    """:func:`enter` ... :func:`leave`."""
    enter()
    try:
        yield
    finally:
        leave()


def expect(count: int) -> None:
    """About ``count`` more new zones are to be signed for the first time in the start
    under way (the caller's estimate): the helper is started as soon as those announced
    and asked are more than WARM_AFTER, so that it is up when they come rather than after
    WARM_AFTER were signed here (its start takes a second or two)."""
    _POOL.expect(count)


def signed_count() -> int:
    """How many zones the helper signed in this process's life (for tests)."""
    return _POOL.signed


def sign(zone: Zone, keys: Sequence[SigningKey], params: SignParams, now: int) -> Zone | None:
    """``sign_zone(zone, keys, params, now).zone`` made in the helper process, or None
    (no start under way, the helper not up yet, a key not in software, or anything went
    wrong there): the caller signs here."""
    if any(k.key.private is None or k.key.private.label is not None for k in keys):
        return None  # (a key in an HSM signs through this process's session)
    if params.batch is not None or params.verify_batch is not None or params.ledger is not None:
        return None
    executor = _POOL.ready()
    if executor is None:
        return None
    try:
        data = pack_version(zone)
        made = executor.submit(sign_packed, data, zone.origin.to_text(), list(keys), params, now)
        packed, lines, text = made.result()
        signed = unpack_version(packed, zone.origin)
    except Exception as e:  # the process gone, or the signer's error: signed here again
        log.debug("[%s] first signing in the helper process failed: %s", zone.origin, e)
        return None
    if signed is None:
        return None
    with _POOL.lock:
        _POOL.signed += 1
        if _POOL.users:
            _POOL.made[id(signed)] = Made(signed, packed, lines, text)
    return signed


def made_of(zone: Zone) -> Made | None:
    """What the helper made of ``zone`` (a zone :func:`sign` returned, during its start),
    or None: the caller makes it."""
    made = _POOL.made.get(id(zone))
    return made if made is not None and made.zone is zone else None


def written(zone: Zone) -> None:
    """The main process has written all it writes of ``zone`` (its signed copy, last):
    what the helper made of it is dropped."""
    with _POOL.lock:
        made = _POOL.made.get(id(zone))
        if made is not None and made.zone is zone:
            del _POOL.made[id(zone)]
