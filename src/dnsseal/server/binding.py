"""Everything a server must own before it writes anything: its sockets and its state lock.

``dnsseal serve`` binds every UDP and TCP listener, the control socket and the lock on the
state directory first, in that order, and only then creates zones, keys and state.  So a
start that fails (port in use, an address not on this host, a control socket in a missing
directory, another server using the same state directory) says so in one line naming the
option, exits non-zero and leaves the disk as it was.

The listeners are bound once, before worker processes are forked, and shared by every
process (for UDP each datagram goes to one waiting process; for TCP each connection to one
process calling ``accept``).  No socket uses SO_REUSEPORT, so a second, unrelated server on
the same port fails with "address in use" instead of silently sharing the port.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from dnsseal.errors import OptionError
from dnsseal.server.udp import udp_socket
from dnsseal.storage.serverconfig import Endpoint, ServerConfig

log = logging.getLogger(__name__)

LOCK_NAME = "dnsseal.lock"  # in the state directory; holds the pid of the server using it
TCP_BACKLOG = 1024

# errno -> what an operator should read next to the system's message
_HINTS = {
    errno.EADDRINUSE: "another server is using this port",
    errno.EADDRNOTAVAIL: "not an address of this host",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EAFNOSUPPORT: "this host has no such address family",
}


@dataclass
class Bound:
    """The sockets and the state lock of one server, in listen order."""

    udp: list[socket.socket] = field(default_factory=list)
    tcp: list[socket.socket] = field(default_factory=list)
    control: socket.socket | None = None
    control_path: Path | None = None
    lock_fd: int | None = None

    def drop_control(self) -> None:
        """Close this process's copy of the control socket, leaving the file (a forked
        worker: the main process serves it)."""
        if self.control is not None:
            self.control.close()
            self.control = None

    def close(self) -> None:
        """Close everything (the process that made the control socket removes it)."""
        for s in (*self.udp, *self.tcp):
            s.close()
        self.udp, self.tcp = [], []
        if self.control is not None:
            self.control.close()
            self.control = None
            if self.control_path is not None:
                with contextlib.suppress(OSError):
                    self.control_path.unlink()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _listen_error(option: str, ep: Endpoint, proto: str, e: OSError | OverflowError) -> OptionError:
    if isinstance(e, OverflowError):
        return OptionError(option, f"port {ep.port} out of range (1..65535)")
    reason = e.strerror or str(e)
    hint = _HINTS.get(e.errno or 0)
    return OptionError(
        option, f"cannot listen on {ep} ({proto}): {reason}" + (f": {hint}" if hint else "")
    )


def tcp_socket(ep: Endpoint) -> socket.socket:
    """A listening TCP socket on ``ep`` (SO_REUSEADDR only: TIME_WAIT never blocks a restart,
    another live listener still does).  Raises OSError."""
    family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ep.host, ep.port))
        sock.listen(TCP_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_listeners(config: ServerConfig, option: str, bound: Bound) -> None:
    """Bind UDP and TCP on every ``config.listen`` endpoint into ``bound``.  ``option`` names
    what the user set (``server.listen`` or ``-p``).  Raises OptionError."""
    for i, ep in enumerate(config.listen):
        where = f"{option}[{i}]" if option == "server.listen" else option
        for proto, make, out in (
            ("UDP", lambda e: udp_socket(e, False), bound.udp),
            ("TCP", tcp_socket, bound.tcp),
        ):
            try:
                out.append(make(ep))
            except (OSError, OverflowError) as e:
                raise _listen_error(where, ep, proto, e) from None


def bind_control(path: Path) -> socket.socket:
    """The control socket at ``path``, listening, mode 0600.  A stale socket left by a
    killed server is replaced; a live one, or anything that is not a socket, is an error.
    Raises OptionError (server.control)."""
    option = "server.control"
    if not path.parent.is_dir():
        raise OptionError(option, f"{path}: directory {path.parent} does not exist")
    if path.is_symlink() or path.exists():
        if not path.is_socket():
            raise OptionError(option, f"{path} exists and is not a socket: not replacing it")
        if _alive(path):
            raise OptionError(option, f"{path}: another server is using this control socket")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is born 0600: no window where others can connect
    try:
        sock.bind(str(path))
    except (OSError, ValueError) as e:
        sock.close()
        reason = getattr(e, "strerror", None) or str(e)
        raise OptionError(option, f"cannot create {path}: {reason}") from None
    finally:
        os.umask(old)
    try:
        os.chmod(path, 0o600)
        sock.listen(64)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        with contextlib.suppress(OSError):
            path.unlink()
        raise OptionError(option, f"cannot listen on {path}: {e.strerror or e}") from None
    return sock


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def lock_state_dir(state_dir: Path) -> int:
    """Create the state directory if missing (mode 0700) and lock it for this process
    (and the workers it forks); returns the lock's file descriptor.  Raises OptionError
    (server.state-dir) when another server holds it or it cannot be created."""
    option = "server.state-dir"
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise OptionError(option, f"{state_dir}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise OptionError(
            option, f"{state_dir} is in use by another dnsseal server (pid {holder})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def bind_all(config: ServerConfig, listen_option: str = "server.listen") -> Bound:
    """Bind the listeners, the control socket and the state lock of ``config`` (nothing
    else is created).  On any failure what was bound is released again and OptionError
    names the option."""
    bound = Bound()
    try:
        bind_listeners(config, listen_option, bound)
        if config.control is not None:
            bound.control = bind_control(config.control)
            bound.control_path = config.control
        if config.state_dir is not None:
            bound.lock_fd = lock_state_dir(config.state_dir)
    except BaseException:
        bound.close()
        raise
    return bound
