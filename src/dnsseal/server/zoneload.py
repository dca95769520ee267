"""Reading a large zone file in a child process, so that the server holds only the snapshot.

Parsing a zone makes its model (every record as Python objects), then the snapshot; the
model is then let go, but the allocator keeps the memory it used wherever a kept object
landed among its freed ones: for a 100k-name signed zone (146 MB of text) the server held
~470 MiB after loading for ~250 MiB of live data, and every forked worker maps it all.  A
file of at least :data:`APART_MIN_SIZE` is instead parsed by a forked child, which sends
each owner's response wire back in parts (:func:`dnsseal.proto.snapshot.pack_owners`,
pickles of bytes and dicts, ~100 MB for that zone); this process builds the snapshot from
the parts as they come, while the child makes the next ones
(:func:`dnsseal.proto.snapshot.unpack_snapshot`), and keeps only that.

A fork is safe only while this process runs one thread (a lock held by another thread at
the fork would stay held in the child): the server's start, before its event loop and
listeners.  With more threads (a reload), a smaller file, no ``fork`` or a child that did
not finish, the file is parsed here as before.
"""

from __future__ import annotations

import logging
import os
import signal
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

from dnsseal.errors import DnssealError, InputError
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, pack_owners, unpack_snapshot
from dnsseal.server import libc
from dnsseal.storage.zonefile import read_zone
from dnsseal.zone.text import paused_gc

log = logging.getLogger(__name__)

APART_MIN_SIZE = 8 << 20  # bytes of zone file; smaller files are read here (a fork each)
# The child's frames: a kind and a length (8 octets), then that many octets.
_PART, _ERROR, _DONE = b"P", b"E", b"D"  # a part of the packed zone, an error's message, the end
_FRAME = struct.Struct("!cQ")


class ZoneFileError(InputError):
    """The child's :class:`DnssealError` reading the zone file, by its message."""


class _ChildFailed(Exception):
    """The child ended without sending the whole zone."""


def read_snapshot(path: Path, origin: str, size: int | None = None) -> ZoneSnapshot:
    """``build_from_model(read_zone(path, origin))``, a large file read in a child process
    when this process runs one thread (see the module docstring); ``size``: the file's, when
    the caller knows it.  Raises what they raise (a :class:`DnssealError`; from the child,
    a :class:`ZoneFileError` with its message)."""
    if size is None:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
    if size >= APART_MIN_SIZE and hasattr(os, "fork") and threading.active_count() == 1:
        got = _in_child(path, origin)
        if got is not None:
            return got
        log.warning("[%s] reading %s in a child process failed: reading it here", origin, path)
    with paused_gc():
        return build_from_model(read_zone(path, origin))


def _in_child(path: Path, origin: str) -> ZoneSnapshot | None:
    """The snapshot of the zone file read by a forked child, built here from its parts as
    they come (while the child makes the next ones); None when the child did not send it
    whole (killed, out of memory, an unexpected error)."""
    parent = os.getpid()
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: never returns
        os.close(r)
        _child(path, origin, w, parent)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as inp:
            try:
                with paused_gc():
                    return unpack_snapshot(_parts(inp))
            except _ChildFailed:
                return None
    finally:
        os.waitpid(pid, 0)  # (closing our end first ends a child still writing)


def _child(path: Path, origin: str, fd: int, parent: int) -> NoReturn:
    code = 0
    try:
        # Ends with the server: it holds the server's listening sockets (bound before the
        # zones load), which would keep the ports taken for a restart while it parsed on.
        _die_with(parent)
        logging.disable(logging.CRITICAL)  # (its records would come twice, or never)
        with os.fdopen(fd, "wb") as out, paused_gc():
            try:
                zone = read_zone(path, origin)
            except DnssealError as e:
                message = str(e).encode()
                out.write(_FRAME.pack(_ERROR, len(message)) + message)
            else:
                for part in pack_owners(zone):
                    out.write(_FRAME.pack(_PART, len(part)))
                    out.write(part)
                out.write(_FRAME.pack(_DONE, 0))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent ends; exit now if the parent already ended."""
    libc.die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _parts(inp: BinaryIO) -> Iterator[bytes]:
    """The parts the child sends on ``inp`` until its end frame; raises
    :class:`ZoneFileError` for its error frame, :class:`_ChildFailed` when it stops short."""
    while True:
        head = inp.read(_FRAME.size)
        if len(head) < _FRAME.size:
            raise _ChildFailed
        kind, size = _FRAME.unpack(head)
        body = inp.read(size)
        if len(body) < size:
            raise _ChildFailed
        if kind == _DONE:
            return
        if kind == _ERROR:
            raise ZoneFileError(body.decode(errors="replace"))
        yield body
