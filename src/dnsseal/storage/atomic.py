"""Atomic file writes: a temp file in the same directory, fsync, then rename (or link).

A reader never sees a half-written file, and a crash leaves either the old file or the new
one.  :func:`create` never replaces an existing file: it links the finished temp file into
place, which fails if the name is taken, so two writers cannot both "create" one key.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from dnsseal.errors import KeyExists, StorageError


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    directory = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise StorageError(str(directory), f"cannot create a file here: {e.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(str(path), f"write failed: {e.strerror}") from None
    return Path(tmp)


def create(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a new file atomically; raise :class:`KeyExists` if ``path`` exists."""
    tmp = _write_temp(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise KeyExists(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as e:
        if e.errno == errno.EPERM:  # file systems without hard links: best effort
            if path.exists():
                raise KeyExists(f"{path}: already exists; refusing to overwrite it") from None
            os.rename(tmp, path)
            _fsync_dir(path.parent)
            return
        raise StorageError(str(path), f"cannot create: {e.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def replace(path: Path, data: bytes, mode: int | None = None) -> None:
    """Atomically replace (or create) ``path``; keeps the old file's mode unless given."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(str(path), f"cannot replace: {e.strerror}") from None
    _fsync_dir(path.parent)
