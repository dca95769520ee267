"""Helper processes of a signing run from a file: the snapshot of the signed file's text
made beside the writing (:class:`ProcessSnapshot`), and the parent watch every worker
process of the run starts with (:func:`watch_parent`).

A pool's worker blocks reading its call queue; forked, it holds that pipe's write end
itself, so when its parent is killed (``kill -9``: no chance to shut the pool down) the
read never ends and the worker would live on, holding its memory.  :func:`watch_parent`
ends it once its parent is gone.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dnsseal.signfile.filesnapshot import SnapshotBuilder

if TYPE_CHECKING:
    from concurrent.futures import Future

WATCH_INTERVAL = 0.5  # seconds between two looks at the parent


def watch_parent(parent: int) -> None:
    """Run first in a worker process forked by ``parent`` (a pool initializer): a daemon
    thread ends the process once ``parent`` is gone (the worker is then re-parented, so its
    parent process id changes).  The exit skips clean-up on purpose: there is no one left
    to hand results to, and a clean exit would wait for the pool's pipes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        os._exit(1)

    if os.getppid() != parent:  # gone already, before the thread could start
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def helper_setup(parent: int) -> None:
    """Run first in the snapshot helper process: a lower priority (it should take an idle
    core, not the writer's), and :func:`watch_parent`."""
    os.nice(10)
    watch_parent(parent)


_SNAPSHOT: list[SnapshotBuilder] = []


def _snapshot_init(args: tuple[Any, ...], setup: Callable[[], object] | None) -> None:
    if setup is not None:
        setup()
    _SNAPSHOT[:] = [SnapshotBuilder(*args)]


def _snapshot_feed(batch: bytes, lengths: bytes) -> None:
    _SNAPSHOT[0].feed(batch, lengths)


def _snapshot_bytes(chain_ttl: int | None) -> bytes:
    return _SNAPSHOT[0].to_bytes(chain_ttl)


class ProcessSnapshot:
    """A :class:`~dnsseal.signfile.filesnapshot.SnapshotBuilder` in a helper process: the
    blocks of a file's text go to it as they are written (:meth:`feed`, which does not wait)
    and it hashes and reads them there, on a core the main process, busy formatting the
    text, does not use.  :meth:`to_bytes` waits for it and returns the snapshot.

    The process starts when this object is made: make it early, while the caller is still
    small (a forked child keeps its parent's pages; forked from a process holding a zone it
    would keep them too).  ``setup`` runs in it first (the caller lowers its priority
    there: it should take an idle core, not the writer's).  At most ``window`` batches are
    queued."""

    def __init__(self, *args: Any, window: int = 4,
                 setup: Callable[[], object] | None = None) -> None:  # fmt: skip
        from concurrent.futures import ProcessPoolExecutor

        self._ex = ProcessPoolExecutor(1, initializer=_snapshot_init, initargs=(args, setup))
        self._pending: deque[Future[None]] = deque()
        self._window = window
        self._ex.submit(int).result()  # start the process now

    def feed(self, batch: bytes, lengths: bytes) -> None:
        self._pending.append(self._ex.submit(_snapshot_feed, batch, lengths))
        while len(self._pending) > self._window:
            self._pending.popleft().result()

    def to_bytes(self, chain_ttl: int | None = None) -> bytes:
        try:
            while self._pending:
                self._pending.popleft().result()
            return self._ex.submit(_snapshot_bytes, chain_ttl).result()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the helper process (also when the run fails before :meth:`to_bytes`)."""
        self._ex.shutdown(cancel_futures=True)
