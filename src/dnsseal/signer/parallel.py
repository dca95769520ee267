"""Signing and verifying with worker processes: a :data:`~dnsseal.signer.sign.BatchSigner`
and a :data:`~dnsseal.signer.verify.BatchVerifier` that spread the work over a process pool.

Each worker builds its key signers once (from the picklable key list) and signs chunks of
data; results come back in order.  No files, sockets or clock are touched.  ``setup`` (a
picklable callable) runs first in every worker: the caller passes its parent watch
(:func:`dnsseal.signfile.watch_parent`), so that workers end when the process that started
them is killed instead of waiting on their pool's pipes for ever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from typing import TYPE_CHECKING

from dnsseal.crypto import wire
from dnsseal.crypto.keystore import sign_function
from dnsseal.crypto.software import SignFunction
from dnsseal.signer.keysel import SigningKey

if TYPE_CHECKING:
    from concurrent.futures import Future

_WORKER_SIGNERS: dict[int, SignFunction] = {}
_WORKER_KEYS: list[SigningKey] = []
CHUNK = 2000


def _init(keys: list[SigningKey], setup: Callable[[], object] | None = None) -> None:
    if setup is not None:
        setup()
    _WORKER_KEYS[:] = keys
    _WORKER_SIGNERS.clear()


def _sign_chunk(jobs: list[tuple[int, bytes]]) -> list[bytes]:
    out = []
    signers = _WORKER_SIGNERS
    for idx, data in jobs:
        s = signers.get(idx)
        if s is None:
            s = signers[idx] = sign_function(_WORKER_KEYS[idx].key)
        out.append(s(data))
    return out


def _chunks(jobs: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for job in jobs:
        chunk.append(job)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ProcessBatchSigner:
    """Sign with ``workers`` processes, each holding its own signing functions for the keys
    (made once per process).  Data goes out in chunks of :data:`CHUNK`, at most a few
    chunks per worker in flight, and signatures come back in order, so the caller builds
    the next data while the workers sign and no more than the window is held in memory.
    Falls back to in-process signing for small batches where starting processes costs more
    than it saves.  ``progress(done, total)`` is called after each chunk when given;
    ``setup`` runs first in each worker."""

    def __init__(
        self,
        workers: int,
        *,
        min_jobs: int = 4 * CHUNK,
        progress: Callable[[int, int], None] | None = None,
        setup: Callable[[], object] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.min_jobs = min_jobs
        self.progress = progress
        self.setup = setup

    def __call__(
        self, keys: Sequence[SigningKey], jobs: Iterable[tuple[int, bytes]]
    ) -> Iterator[bytes]:
        total = len(jobs) if isinstance(jobs, Sized) else 0
        done = 0
        if self.workers == 1 or total < self.min_jobs:
            _init(list(keys))
            for chunk in _chunks(jobs, CHUNK):
                yield from _sign_chunk(chunk)
                done += len(chunk)
                self._report(done, total)
            return
        window = 3 * self.workers
        from concurrent.futures import ProcessPoolExecutor  # only when there is work for it

        with ProcessPoolExecutor(
            self.workers, initializer=_init, initargs=(list(keys), self.setup)
        ) as ex:
            inflight: deque[Future[list[bytes]]] = deque()
            for chunk in _chunks(jobs, CHUNK):
                inflight.append(ex.submit(_sign_chunk, chunk))
                while len(inflight) >= window or (inflight and inflight[0].done()):
                    part = inflight.popleft().result()
                    done += len(part)
                    self._report(done, total)
                    yield from part
            while inflight:
                part = inflight.popleft().result()
                done += len(part)
                self._report(done, total)
                yield from part

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None and total:
            self.progress(done, total)


_WORKER_PUBLIC: dict[int, object] = {}
_WORKER_PUBLIC_KEYS: list[tuple[int, bytes]] = []


def _init_verify(keys: list[tuple[int, bytes]], setup: Callable[[], object] | None = None) -> None:
    if setup is not None:
        setup()
    _WORKER_PUBLIC_KEYS[:] = keys
    _WORKER_PUBLIC.clear()


def _verify_chunk(jobs: list[tuple[int, bytes, bytes]]) -> list[bool]:
    out = []
    for idx, sig, data in jobs:
        alg, raw = _WORKER_PUBLIC_KEYS[idx]
        pub = _WORKER_PUBLIC.get(idx)
        if pub is None:
            pub = _WORKER_PUBLIC[idx] = wire.public_key_object(alg, raw)
        out.append(wire.verify(alg, pub, sig, data))
    return out


class ProcessBatchVerifier:
    """A :data:`~dnsseal.signer.verify.BatchVerifier` over ``workers`` processes (in-process
    for small batches); ``setup`` runs first in each."""

    def __init__(
        self, workers: int, *, min_jobs: int = 4 * CHUNK, setup: Callable[[], object] | None = None
    ) -> None:
        self.workers = max(1, workers)
        self.min_jobs = min_jobs
        self.setup = setup

    def __call__(
        self, keys: Sequence[tuple[int, bytes]], jobs: Sequence[tuple[int, bytes, bytes]]
    ) -> list[bool]:
        if self.workers == 1 or len(jobs) < self.min_jobs:
            _init_verify(list(keys))
            return _verify_chunk(list(jobs))
        chunks = [list(jobs[i : i + CHUNK]) for i in range(0, len(jobs), CHUNK)]
        out: list[bool] = []
        from concurrent.futures import ProcessPoolExecutor  # only when there is work for it

        with ProcessPoolExecutor(
            self.workers, initializer=_init_verify, initargs=(list(keys), self.setup)
        ) as ex:
            for part in ex.map(_verify_chunk, chunks):
                out += part
        return out
