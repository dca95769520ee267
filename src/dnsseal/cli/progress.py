"""Progress for long work, on a terminal only: a rich spinner with what is being done and
the time taken so far, for inputs over :data:`THRESHOLD` bytes.  Nothing at all when
stderr is not a terminal (logs, pipes, systemd) or the input is small.  (signzone draws a
real bar from its signing counts; see ``signcmds._ProgressBar``.)"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

THRESHOLD = 1 << 20  # bytes of input before progress is worth showing


def total_size(paths: list[Path]) -> int:
    size = 0
    for p in paths:
        with contextlib.suppress(OSError):
            size += p.stat().st_size
    return size


@contextlib.contextmanager
def activity(message: str, size: int) -> Iterator[None]:
    """Show ``message`` with a spinner while the block runs (terminal, ``size`` over the
    threshold); else nothing."""
    if size < THRESHOLD or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(f"{message} ({size / (1 << 20):.1f} MiB)"):
        yield
