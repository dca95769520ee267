"""The control channel: `dnsseal ctl` talks to a running server over a unix socket.

One JSON object per line each way: ``{"command": "zone-status", "args": ["example.com"]}``
-> ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.  The socket is
created with mode 0600: whoever can use it can stop the server.  The commands are the rows of
:data:`COMMANDS` (name -> arguments, help).  A reply may carry ``data``: the command's
result as structure, times in ISO 8601 UTC (what ``dnsseal ctl --json`` is for).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnsseal import clock
from dnsseal.errors import DnssealError, StorageError
from dnsseal.server import dsdriver, views, zonectl
from dnsseal.server.binding import bind_control
from dnsseal.server.dnssecctl import DnssecControl
from dnsseal.server.observe import audit_command, peer_user

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

log = logging.getLogger(__name__)

# name -> (arguments, help); "ARGS..." takes any number (the handler checks them)
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "status": ((), "Server status: start time, uptime, zones by condition, query counters."),
    "reload": (
        ("[ZONE]",),
        "Re-read the configuration and every zone file (like SIGHUP), or only ZONE's file; "
        "every zone that failed is listed and the exit status is 1.",
    ),
    "zone-status": (
        ("ZONE",),
        "Serials, load time, denial type, retained versions; for a signed zone the next "
        "signing, the next key event and the signature expiry horizon; what to do next.",
    ),
    "notify": (
        ("ZONE",),
        "Send NOTIFY for ZONE to its also-notify targets now; say how each answered.",
    ),
    "retransfer": (("ZONE",), "Transfer ZONE anew from its primaries (AXFR), as rndc retransfer."),
    "freeze": (
        ("ZONE",),
        "Refuse dynamic updates to ZONE and write its data (file + updates) to its file, "
        "for an operator to edit.",
    ),
    "thaw": (("ZONE",), "Load ZONE's edited file and take dynamic updates again."),
    "sync": (("ZONE",), "Write ZONE's data (file + dynamic updates) to its file now."),
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
    "zones": ((), "Every zone: ok / waiting on the parent / problem, serial, next events."),
    "keys": (("ZONE",), "ZONE's keys: record states, timings, what each waits for."),
    "audit": (
        ("ARGS...",),
        "audit [ZONE] [--since TIME] [--limit N] [--json]: the audit log (key events, "
        "commands, reloads, policy changes, alerts), oldest first.",
    ),
    "ds-log": (("ZONE",), "DS automation decisions for ZONE's children (JSON, newest last)."),
}
VARIADIC = "ARGS..."


def arity_ok(command: str, args: list[str] | tuple[str, ...]) -> bool:
    """Does ``args`` fit the command's arguments (``[X]``: optional)?"""
    wanted = COMMANDS[command][0]
    if VARIADIC in wanted:
        return True
    needed = [w for w in wanted if not w.startswith("[")]
    return len(needed) <= len(args) <= len(wanted)


MAX_REQUEST = 64 * 1024


class ControlServer:
    """Serves control requests for ``server`` on the unix socket ``path``."""

    def __init__(self, server: RunningServer, path: Path) -> None:
        self.server = server
        self.path = path
        self._srv: asyncio.AbstractServer | None = None

    async def start(self, sock: socket.socket | None = None) -> None:
        """Serve on ``sock`` (bound by :func:`dnsseal.server.binding.bind_control`), or bind
        ``path`` now.  Raises OptionError (server.control)."""
        if sock is None:
            sock = bind_control(self.path)
        self._srv = await asyncio.start_unix_server(self._client, sock=sock)
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
            who = peer_user(writer)
            reply = await self.execute(line[:MAX_REQUEST])
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
            await self.server.observe.request_done(who, line[:MAX_REQUEST], reply)  # audit
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
        if not arity_ok(command, args):
            usage = " ".join([command, *wanted])
            return {"ok": False, "error": f"usage: {usage}"}
        if not all(isinstance(a, str) for a in args):
            return {"ok": False, "error": "bad request: arguments must be strings"}
        srv = self.server
        ctl = DnssecControl(srv)
        try:
            if command in zonectl.ZONE_COMMANDS:
                return await zonectl.ZONE_COMMANDS[command](srv, srv.find_state(args[0]))
            if command == "dnssec":
                reply: dict[str, Any] = {"ok": True, "result": await ctl.dnssec(args)}
                if args[:1] == ["-status"]:
                    doc = views.dnssec_status_view(srv, args[-1], clock.now())
                    reply["data"] = views.iso_times(doc)
                return reply
            if command == "sign":
                return {"ok": True, "result": await ctl.sign(args[0])}
            if command == "loadkeys":
                return {"ok": True, "result": await ctl.loadkeys(args[0])}
            if command == "signing":
                return {"ok": True, "result": ctl.signing(args)}
            if command == "ds-log":
                return {"ok": True, "result": dsdriver.show(srv.config.state_dir, args[0])}
            if command == "status":
                status = views.iso_times(views.status_view(srv, clock.now()))
                return {"ok": True, "result": status, "data": status}
            if command == "reload":
                if args:
                    return await zonectl.reload_zone(srv, srv.find_state(args[0]))
                return await zonectl.reload_all(srv)
            if command == "zone-status":
                zone = views.iso_times(views.zone_view(srv, args[0], clock.now()))
                return {"ok": True, "result": zone, "data": zone}
            # result: for people; data: the API's document (ISO 8601 times)
            if command == "zones":
                doc = views.zones_view(srv, clock.now())
                return {
                    "ok": True,
                    "result": views.zones_lines(doc),
                    "data": views.iso_times(doc),
                }
            if command == "keys":
                doc = views.keys_view(srv, args[0])
                return {
                    "ok": True,
                    "result": views.keys_lines(doc),
                    "data": views.iso_times(doc),
                }
            if command == "audit":
                return await audit_command(srv, args)
            srv.request_stop()
            return {"ok": True, "result": "stopping"}
        except LookupError as e:
            return {"ok": False, "error": str(e.args[0])}
        except DnssealError as e:
            return {"ok": False, "error": str(e)}


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
