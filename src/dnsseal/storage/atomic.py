"""Atomic file writes: a temp file in the same directory, fsync, then rename (or link).

A reader never sees a half-written file, and a crash leaves either the old file or the new
one.  :func:`create` never replaces an existing file: it links the finished temp file into
place, which fails if the name is taken, so two writers cannot both "create" one key.

A temp file is named ``.NAME.PID.XXXXXXXX.tmp`` after the file it becomes and the process
writing it.  A writer killed on the way (``kill -9``, power loss) leaves its temp file
behind; the next process to write NAME removes those whose process is gone
(:func:`remove_stale_temps`), so repeated crashes do not fill the disk.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from dnsseal import clock
from dnsseal.errors import KeyExists, StorageError

log = logging.getLogger(__name__)
# Temp files named before the PID was part of the name count as stale after this long.
UNNAMED_STALE_AFTER = 3600
# Temp files seen in a directory (read once per process) by the output name they may be
# for: ``.NAME.PID.XXXXXXXX.tmp`` under every NAME its dots allow.  An output's list is
# popped when it is cleaned up after, which is what makes that once per output: no set of
# the outputs done is kept (it grew by one path per zone file and key file written, ~0.8
# KiB a zone with 10,000 zones, for nothing the popped lists do not already say).
_temps: dict[Path, dict[str, list[os.DirEntry[str]]]] = {}


def temp_prefix(path: Path) -> str:
    """The name prefix of this process's temp files for ``path`` (mkstemp adds the rest)."""
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the temp files of ``path`` that writers killed on the way left behind: those
    whose process is gone (and, from before the PID was in the name, those untouched for
    :data:`UNNAMED_STALE_AFTER` seconds).  Runs once per output and process, on one read of
    the directory per process (leftovers of a crash after that read are the next process's
    to remove).  Returns the files removed; never raises."""
    path = Path(os.path.abspath(path))
    removed: list[Path] = []
    # The directory is read once per process: thousands of outputs in one directory (zones'
    # signed copies, key files) then cost one scan, not one each.
    temps = _temps.get(path.parent)
    if temps is None:
        temps = {}
        try:
            with os.scandir(path.parent) as scan:
                for entry in scan:
                    name = entry.name
                    if not (name.startswith(".") and name.endswith(".tmp")):
                        continue
                    dot = name.find(".", 1)
                    while dot != -1:  # NAME may hold dots: under each possible NAME
                        temps.setdefault(name[1:dot], []).append(entry)
                        dot = name.find(".", dot + 1)
        except OSError:
            pass  # (unreadable: nothing to clean there, and not tried again for each file)
        _temps[path.parent] = temps
    entries = temps.pop(path.name, None)
    if not entries:  # (the usual case: no pattern compiled, one per output name)
        return removed
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp\Z")
    now = clock.now()
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None:
            continue
        try:
            if m.group(1) is not None:
                if _alive(int(m.group(1))):
                    continue
            elif now - entry.stat().st_mtime < UNNAMED_STALE_AFTER:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info(
            "%s: removed %d temp file(s) left by an interrupted write: %s",
            path,
            len(removed),
            ", ".join(p.name for p in removed),
        )
    return removed


_deferred = threading.local()  # .dirs: the directories this thread's writes left unsynced


class DirSyncs:
    """Directories whose new names are not durable yet, handed over by the
    :func:`deferred_dir_sync` blocks of any number of threads; :meth:`sync` makes them
    durable, one fsync per directory for all of them (a start's batch of zones: one for
    the key directory, not one per key)."""

    def __init__(self) -> None:
        self._dirs: set[Path] = set()
        self._lock = threading.Lock()

    def add(self, dirs: set[Path]) -> None:
        with self._lock:
            self._dirs |= dirs

    def pending(self) -> list[Path]:
        with self._lock:
            return sorted(self._dirs)

    def sync(self) -> None:
        """fsync every directory handed over so far (raises OSError as fsync does)."""
        with self._lock:
            dirs, self._dirs = sorted(self._dirs), set()
        for d in dirs:
            fsync_dir(d)


@contextlib.contextmanager
def deferred_dir_sync(into: DirSyncs | None = None) -> Iterator[None]:
    """Inside the block, this thread's :func:`create` and :func:`replace` leave the fsync
    of the directory (what makes a new name durable) to the end of the block: one per
    directory, not one per file, when many files are written in a row (the key files and
    copies of many zones at a start).  Each file's data is still fsync'd before its
    rename; the names are durable once the block is left (normally or by an exception),
    not one by one, or, with ``into``, once ``into.sync()`` ran (the caller's to call,
    before anything relies on the names).  Nested blocks sync at the end of the
    outermost."""
    if getattr(_deferred, "dirs", None) is not None:
        yield
        return
    dirs: set[Path] = set()
    _deferred.dirs = dirs
    try:
        yield
    finally:
        _deferred.dirs = None
        if into is not None:
            into.add(dirs)
        else:
            for d in sorted(dirs):
                fsync_dir(d)


def _sync_dir(directory: Path) -> None:
    dirs: set[Path] | None = getattr(_deferred, "dirs", None)
    if dirs is not None:
        dirs.add(directory)
    else:
        fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    fd, tmp = open_temp(path)
    return fill_temp(fd, tmp, path, data, mode)


# What tempfile.mkstemp opens with, and its names' letters (remove_stale_temps knows them)
_TEMP_FLAGS = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)
_TEMP_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_temp_names = random.Random()  # (names, not secrets: O_EXCL makes each file ours)


def open_temp(path: Path) -> tuple[int, Path]:
    """A new temp file beside ``path``, ``.NAME.PID.XXXXXXXX.tmp``, mode 0600 (its
    descriptor and name): the first step of :func:`create`, the one that changes the
    directory.  What tempfile.mkstemp does, without its per-call overhead (a start makes
    five files per zone).  Raises StorageError."""
    directory = path.parent
    prefix = temp_prefix(path)
    for _ in range(100):
        tmp = directory / f"{prefix}{''.join(_temp_names.choices(_TEMP_LETTERS, k=8))}.tmp"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise StorageError(str(directory), f"cannot create a file here: {e.strerror}") from None
    raise StorageError(str(directory), "cannot create a file here: no free temp file name")


def discard_temp(fd: int, tmp: Path) -> None:
    """Close and remove a temp file :func:`open_temp` made (never raises)."""
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def fill_temp(fd: int, tmp: Path, path: Path, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to the temp file :func:`open_temp` made for ``path``, fsync and close
    it (the slow step, which changes no directory: it needs no lock); :func:`link_new`
    puts it in place.  On an error it is removed.  Returns ``tmp``; raises StorageError."""
    try:
        try:  # (no file object: these are small files, written in one or a few calls)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(str(path), f"write failed: {e.strerror}") from None
    return tmp


def create(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a new file atomically; raise :class:`KeyExists` if ``path`` exists."""
    link_new(_write_temp(path, data, mode), path)


def link_new(tmp: Path, path: Path) -> None:
    """The second half of :func:`create`: the finished temp file ``tmp`` becomes ``path``,
    never over an existing file (raises :class:`KeyExists`); ``tmp`` is gone after."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise KeyExists(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as e:
        if e.errno == errno.EPERM:  # file systems without hard links: best effort
            if path.exists():
                raise KeyExists(f"{path}: already exists; refusing to overwrite it") from None
            os.rename(tmp, path)
            _sync_dir(path.parent)
            return
        raise StorageError(str(path), f"cannot create: {e.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _sync_dir(path.parent)


def replace(path: Path, data: bytes, mode: int | None = None) -> None:
    """Atomically replace (or create) ``path``; keeps the old file's mode unless given."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    remove_stale_temps(path)
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(str(path), f"cannot replace: {e.strerror}") from None
    _sync_dir(path.parent)
