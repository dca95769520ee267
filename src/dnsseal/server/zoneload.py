"""Reading a large zone file in a child process, so that the server holds only the snapshot.

Parsing a zone makes its model (every record as Python objects), then the snapshot; the
model is then let go, but the allocator keeps the memory it used wherever a kept object
landed among its freed ones: for a 100k-name signed zone (146 MB of text) the server held
~470 MiB after loading for ~250 MiB of live data, and every forked worker maps it all.  A
file of at least :data:`APART_MIN_SIZE` is instead parsed by a forked child, which sends
each owner's response wire back (:func:`dnsseal.proto.snapshot.pack_owners`, a pickle
of bytes and dicts, ~100 MB for that zone); this process builds the snapshot from it in one
pass (:func:`dnsseal.proto.snapshot.unpack_snapshot`) and keeps only that.

A fork is safe only while this process runs one thread (a lock held by another thread at
the fork would stay held in the child): the server's start, before its event loop and
listeners.  With more threads (a reload), a smaller file, no ``fork`` or a child that did
not finish, the file is parsed here as before.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from dnsseal.errors import DnssealError, InputError
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, pack_owners, unpack_snapshot
from dnsseal.storage.zonefile import read_zone
from dnsseal.zone.text import paused_gc

log = logging.getLogger(__name__)

APART_MIN_SIZE = 8 << 20  # bytes of zone file; smaller files are read here (a fork each)
_ZONE, _ERROR = b"Z", b"E"  # the child's answer: a packed zone, or an error's message


class ZoneFileError(InputError):
    """The child's :class:`DnssealError` reading the zone file, by its message."""


def read_snapshot(path: Path, origin: str) -> ZoneSnapshot:
    """``build_from_model(read_zone(path, origin))``, a large file read in a child process
    when this process runs one thread (see the module docstring).  Raises what they raise
    (a :class:`DnssealError`; from the child, a :class:`ZoneFileError` with its message)."""
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
    """The snapshot of the zone file read by a forked child; None when the child did not
    answer (killed, out of memory, an unexpected error)."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(r)
            logging.disable(logging.CRITICAL)  # (its records would come twice, or never)
            try:
                with paused_gc():
                    answer = _ZONE + pack_owners(read_zone(path, origin))
            except DnssealError as e:
                answer = _ERROR + str(e).encode()
            with os.fdopen(w, "wb") as out:
                out.write(answer)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not data:
        return None
    if data[:1] == _ERROR:
        raise ZoneFileError(data[1:].decode(errors="replace"))
    with paused_gc(), memoryview(data) as view:
        return unpack_snapshot(view[1:])
