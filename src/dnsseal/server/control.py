"""The control channel: `dnsseal ctl` talks to a running server over a unix socket.

One JSON object per line each way: ``{"command": "zone-status", "args": ["example.com"]}``
-> ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.  The socket is
created with mode 0600: whoever can use it can stop the server.  The commands are the rows of
:data:`COMMANDS` (name -> number of arguments, help).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnsseal.errors import DnssealError, StorageError
from dnsseal.server import dsdriver
from dnsseal.server.dnssecctl import DnssecControl

if TYPE_CHECKING:
    from dnsseal.server.service import AuthServer

log = logging.getLogger(__name__)

# name -> (arguments, help); "ARGS..." takes any number (the handler checks them)
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "status": ((), "Server status: uptime, zones, query counters."),
    "reload": ((), "Re-read the configuration and every zone file (like SIGHUP)."),
    "zone-status": (
        ("ZONE",),
        "Serials, load time, denial type, retained versions; for a signed zone the next "
        "signing, the next key event and the signature expiry horizon.",
    ),
    "notify": (("ZONE",), "Send NOTIFY for ZONE to its also-notify targets now."),
    "stop": ((), "Stop the server."),
    "dnssec": (
        ("ARGS...",),
        "dnssec -status ZONE | dnssec -rollover -key TAG [-when TIME] ZONE | "
        "dnssec -checkds [-key TAG] [-when TIME] published|withdrawn ZONE",
    ),
    "sign": (("ZONE",), "Re-sign every RRset of ZONE now."),
    "loadkeys": (("ZONE",), "Re-read ZONE's key directory and run the key manager now."),
    "signing": (
        ("ARGS...",),
        "signing -list ZONE | signing -clear all|KEYID/ALGORITHM ZONE: the signing-state "
        "records (TYPE65534), as rndc signing.",
    ),
    "ds-log": (("ZONE",), "DS automation decisions for ZONE's children (JSON, newest last)."),
}
VARIADIC = "ARGS..."
MAX_REQUEST = 64 * 1024


class ControlServer:
    """Serves control requests for ``server`` on the unix socket ``path``."""

    def __init__(self, server: AuthServer, path: Path) -> None:
        self.server = server
        self.path = path
        self._srv: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if _alive(self.path):
                raise StorageError(str(self.path), "another server is using this control socket")
            self.path.unlink()
        old = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            self._srv = await asyncio.start_unix_server(self._client, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("[server] control socket %s", self.path)

    async def stop(self) -> None:
        if self._srv is not None:
            self._srv.close()
            await self._srv.wait_closed()
            self._srv = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            reply = await self.execute(line[:MAX_REQUEST])
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def execute(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            command = request["command"]
            args = list(request.get("args", []))
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "bad request: expected a JSON object with 'command'"}
        if command not in COMMANDS:
            return {"ok": False, "error": f"unknown command {command!r}"}
        wanted = COMMANDS[command][0]
        if VARIADIC not in wanted and len(args) != len(wanted):
            usage = " ".join([command, *wanted])
            return {"ok": False, "error": f"usage: {usage}"}
        if not all(isinstance(a, str) for a in args):
            return {"ok": False, "error": "bad request: arguments must be strings"}
        srv = self.server
        ctl = DnssecControl(srv)
        try:
            if command == "dnssec":
                return {"ok": True, "result": await ctl.dnssec(args)}
            if command == "sign":
                return {"ok": True, "result": await ctl.sign(args[0])}
            if command == "loadkeys":
                return {"ok": True, "result": await ctl.loadkeys(args[0])}
            if command == "signing":
                return {"ok": True, "result": ctl.signing(args)}
            if command == "ds-log":
                return {"ok": True, "result": dsdriver.show(srv.config.state_dir, args[0])}
            if command == "status":
                return {"ok": True, "result": srv.status()}
            if command == "reload":
                problems = await srv.reload()
                return {"ok": not problems, "result": "reloaded", "problems": problems}
            if command == "zone-status":
                return {"ok": True, "result": srv.zone_status(args[0])}
            if command == "notify":
                state = srv.zone_status(args[0])
                return {"ok": True, "result": await srv.notify(str(state["zone"]))}
            srv.request_stop()
            return {"ok": True, "result": "stopping"}
        except LookupError as e:
            return {"ok": False, "error": str(e.args[0])}
        except DnssealError as e:
            return {"ok": False, "error": str(e)}


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def request(path: Path, command: str, args: list[str], timeout: float = 60) -> dict[str, Any]:
    """Send one control request and return the decoded reply.  Raises StorageError when
    the socket cannot be reached."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            s.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            raise StorageError(str(path), f"cannot reach the server: {e.strerror or e}") from None
    try:
        reply: dict[str, Any] = json.loads(data)
    except ValueError:
        raise StorageError(str(path), "the server sent no valid reply") from None
    return reply
