"""Signing with worker processes: a :data:`~dnsseal.signer.sign.BatchSigner` that spreads
the queued data over a process pool.

Each worker builds its key signers once (from the picklable key list) and signs chunks of
data; results come back in order.  No files, sockets or clock are touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from dnsseal.crypto import software
from dnsseal.signer.keysel import SigningKey

_WORKER_SIGNERS: dict[int, software.SoftwareSigner] = {}
_WORKER_KEYS: list[SigningKey] = []
CHUNK = 2000


def _init(keys: list[SigningKey]) -> None:
    _WORKER_KEYS[:] = keys
    _WORKER_SIGNERS.clear()


def _sign_chunk(jobs: list[tuple[int, bytes]]) -> list[bytes]:
    out = []
    for idx, data in jobs:
        s = _WORKER_SIGNERS.get(idx)
        if s is None:
            s = _WORKER_SIGNERS[idx] = software.signer_for(_WORKER_KEYS[idx].key)
        out.append(s.sign(data))
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
