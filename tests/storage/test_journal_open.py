"""Opening a new journal from several threads at once (the server's startup does)."""

from __future__ import annotations

import threading
from pathlib import Path

from dnsseal.storage.journal import Journal


def test_threads_opening_a_new_journal_at_once_all_succeed(tmp_path: Path) -> None:
    """Regression: `PRAGMA journal_mode=WAL` does not wait on SQLite's busy timeout, so
    one of several threads opening a fresh journal.sqlite together failed with "database
    is locked" (about one start in ten with four threads)."""
    failures: list[str] = []

    def open_it(d: Path) -> None:
        try:
            Journal(d).close()
        except Exception as e:  # every failure is the finding
            failures.append(str(e))

    for i in range(40):
        d = tmp_path / str(i)
        d.mkdir()
        threads = [threading.Thread(target=open_it, args=(d,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
