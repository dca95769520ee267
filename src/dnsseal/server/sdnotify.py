"""systemd's readiness protocol (``sd_notify``), spoken directly: one datagram of
``KEY=VALUE`` lines to the unix socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract
name written with a leading ``@``).  No dependency: this is the whole protocol.

The server says ``READY=1`` once its sockets are bound and its zones loaded,
``RELOADING=1`` (with ``MONOTONIC_USEC``) when SIGHUP starts a reload and ``READY=1`` again
when it is done (``Type=notify-reload`` waits for it; ``Type=notify`` takes it too), and
``STOPPING=1`` on the way out.  Without ``$NOTIFY_SOCKET`` (not started by systemd) every
call does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

log = logging.getLogger(__name__)


def notify(*lines: str) -> bool:
    """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) to systemd.  Returns whether a
    datagram was sent; never raises (a missing or broken socket is logged once, at
    debug level: the server runs the same without systemd)."""
    where = os.environ.get("NOTIFY_SOCKET")
    if not where:
        return False
    address = "\0" + where[1:] if where.startswith("@") else where
    payload = "\n".join(lines).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(address)
            s.sendall(payload)
        except OSError as e:
            log.debug("[server] sd_notify to %s: %s", where, e)
            return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")


def reloading() -> bool:
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", "STATUS=reloading", f"MONOTONIC_USEC={usec}")


def stopping() -> bool:
    with contextlib.suppress(Exception):
        return notify("STOPPING=1", "STATUS=stopping")
    return False


def status(server: RunningServer, problems: Sequence[str] = ()) -> str:
    """The STATUS= line: zones served, zones with a problem (not loaded, or a source file
    not taken), and a configuration that was not reloaded."""
    zones = server.zones.values()
    served = len([z for z in zones if z.served is not None])
    troubled = len(
        [z for z in zones if z.error or (z.inline is not None and z.inline.source_problem)]
    )
    text = f"serving {served} of {len(server.zones)} zone(s)"
    if troubled:
        text += f"; {troubled} with a problem (dnsseal ctl zones)"
    if any(p.startswith("config: ") for p in problems):
        text += "; configuration not reloaded (see the log)"
    return text
