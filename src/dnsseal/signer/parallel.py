"""Signing and verifying with worker processes: a :data:`~dnsseal.signer.sign.BatchSigner`
and a :data:`~dnsseal.signer.verify.BatchVerifier` that spread the work over a process pool.

Each worker builds its key signers once (from the picklable key list) and signs chunks of
data; results come back in order.  No files, sockets or clock are touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from dnsseal.crypto import wire
from dnsseal.signer.fastsign import SignFunction, sign_function
from dnsseal.signer.keysel import SigningKey

_WORKER_SIGNERS: dict[int, SignFunction] = {}
_WORKER_KEYS: list[SigningKey] = []
CHUNK = 2000


def _init(keys: list[SigningKey]) -> None:
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


class ProcessBatchSigner:
    """Sign with ``workers`` processes; falls back to in-process signing for small batches
    where starting processes costs more than it saves.  ``progress(done, total)`` is
    called after each chunk when given."""

    def __init__(
        self,
        workers: int,
        *,
        min_jobs: int = 4 * CHUNK,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.min_jobs = min_jobs
        self.progress = progress

    def __call__(
        self, keys: Sequence[SigningKey], jobs: Sequence[tuple[int, bytes]]
    ) -> list[bytes]:
        chunks = [list(jobs[i : i + CHUNK]) for i in range(0, len(jobs), CHUNK)]
        out: list[bytes] = []
        if self.workers == 1 or len(jobs) < self.min_jobs:
            _init(list(keys))
            for chunk in chunks:
                out += _sign_chunk(chunk)
                self._report(len(out), len(jobs))
            return out
        with ProcessPoolExecutor(self.workers, initializer=_init, initargs=(list(keys),)) as ex:
            for part in ex.map(_sign_chunk, chunks):
                out += part
                self._report(len(out), len(jobs))
        return out

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


_WORKER_PUBLIC: dict[int, object] = {}
_WORKER_PUBLIC_KEYS: list[tuple[int, bytes]] = []


def _init_verify(keys: list[tuple[int, bytes]]) -> None:
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
    for small batches)."""

    def __init__(self, workers: int, *, min_jobs: int = 4 * CHUNK) -> None:
        self.workers = max(1, workers)
        self.min_jobs = min_jobs

    def __call__(
        self, keys: Sequence[tuple[int, bytes]], jobs: Sequence[tuple[int, bytes, bytes]]
    ) -> list[bool]:
        if self.workers == 1 or len(jobs) < self.min_jobs:
            _init_verify(list(keys))
            return _verify_chunk(list(jobs))
        chunks = [list(jobs[i : i + CHUNK]) for i in range(0, len(jobs), CHUNK)]
        out: list[bool] = []
        with ProcessPoolExecutor(
            self.workers, initializer=_init_verify, initargs=(list(keys),)
        ) as ex:
            for part in ex.map(_verify_chunk, chunks):
                out += part
        return out
