"""The control channel: `dnsseal ctl` talks to a running server over a unix socket.

One JSON object per line each way: ``{"command": "zone-status", "args": ["example.com"]}``
-> ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.  The socket is
created with mode 0600: whoever can use it can stop the server.  The commands are the rows of
:data:`COMMANDS`, one :class:`Command` (name, arguments, handler, help) each: the server runs
the handler, ``dnsseal ctl`` takes its usage and help, and docs/operations.md lists the same
names (tests/ops/test_ctl_table.py).  A reply may carry ``data``: the command's result as
structure, times in ISO 8601 UTC (what ``dnsseal ctl --json`` is for).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnsseal import aio, clock
from dnsseal.errors import DnssealError, StorageError
from dnsseal.server import dsdriver, views, zonectl
from dnsseal.server.binding import bind_control
from dnsseal.server.dnssecctl import DnssecControl
from dnsseal.server.observe import audit_command, peer_user

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer
    from dnsseal.server.zones import ZoneState

log = logging.getLogger(__name__)

Reply = dict[str, Any]
# (the running server, the request's arguments, arity already checked) -> the reply;
# raises LookupError or DnssealError, which become {"ok": false, "error": ...}
Handler = Callable[["RunningServer", list[str]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Command:
    """One control command: ``arguments`` as the usage line shows them (``[X]``: optional,
    :data:`VARIADIC`: any number, the handler checks them)."""

    name: str
    arguments: tuple[str, ...]
    handler: Handler
    help: str


VARIADIC = "ARGS..."


def _on_zone(action: Callable[[RunningServer, ZoneState], Awaitable[Reply]]) -> Handler:
    """A handler for ``COMMAND ZONE``: ``action`` on the zone named by the first argument."""

    async def handler(server: RunningServer, args: list[str]) -> Reply:
        return await action(server, server.find_state(args[0]))

    return handler


async def _status(server: RunningServer, args: list[str]) -> Reply:
    status = views.iso_times(views.status_view(server, clock.now()))
    return {"ok": True, "result": status, "data": status}


async def _reload(server: RunningServer, args: list[str]) -> Reply:
    if args:
        return await zonectl.reload_zone(server, server.find_state(args[0]))
    return await zonectl.reload_all(server)


async def _zone_status(server: RunningServer, args: list[str]) -> Reply:
    zone = views.iso_times(views.zone_view(server, args[0], clock.now()))
    return {"ok": True, "result": zone, "data": zone}


async def _stop(server: RunningServer, args: list[str]) -> Reply:
    server.request_stop()
    return {"ok": True, "result": "stopping"}


async def _dnssec(server: RunningServer, args: list[str]) -> Reply:
    reply: Reply = {"ok": True, "result": await DnssecControl(server).dnssec(args)}
    if args[:1] == ["-status"]:
        doc = views.dnssec_status_view(server, args[-1], clock.now())
        reply["data"] = views.iso_times(doc)
    return reply


async def _sign(server: RunningServer, args: list[str]) -> Reply:
    return {"ok": True, "result": await DnssecControl(server).sign(args[0])}


async def _loadkeys(server: RunningServer, args: list[str]) -> Reply:
    return {"ok": True, "result": await DnssecControl(server).loadkeys(args[0])}


async def _signing(server: RunningServer, args: list[str]) -> Reply:
    return {"ok": True, "result": DnssecControl(server).signing(args)}


# result: for people; data: the API's document (ISO 8601 times)
async def _zones(server: RunningServer, args: list[str]) -> Reply:
    doc = views.zones_view(server, clock.now())
    return {"ok": True, "result": views.zones_lines(doc), "data": views.iso_times(doc)}


async def _keys(server: RunningServer, args: list[str]) -> Reply:
    doc = views.keys_view(server, args[0])
    return {"ok": True, "result": views.keys_lines(doc), "data": views.iso_times(doc)}


async def _audit(server: RunningServer, args: list[str]) -> Reply:
    return await audit_command(server, args)


async def _ds_log(server: RunningServer, args: list[str]) -> Reply:
    return {"ok": True, "result": dsdriver.show(server.config.state_dir, args[0])}


_TABLE = (
    Command(
        "status",
        (),
        _status,
        "Server status: start time, uptime, zones by condition, query counters.",
    ),
    Command(
        "reload",
        ("[ZONE]",),
        _reload,
        "Re-read the configuration and every zone file (like SIGHUP), or only ZONE's file; "
        "every zone that failed is listed and the exit status is 1.",
    ),
    Command(
        "zone-status",
        ("ZONE",),
        _zone_status,
        "Serials, load time, denial type, retained versions; for a signed zone the next "
        "signing, the next key event and the signature expiry horizon; what to do next.",
    ),
    Command(
        "notify",
        ("ZONE",),
        _on_zone(zonectl.notify),
        "Send NOTIFY for ZONE to its also-notify targets now; say how each answered.",
    ),
    Command(
        "retransfer",
        ("ZONE",),
        _on_zone(zonectl.retransfer),
        "Transfer ZONE anew from its primaries (AXFR), as rndc retransfer.",
    ),
    Command(
        "freeze",
        ("ZONE",),
        _on_zone(zonectl.freeze),
        "Refuse dynamic updates to ZONE and write its data (file + updates) to its file, "
        "for an operator to edit.",
    ),
    Command(
        "thaw",
        ("ZONE",),
        _on_zone(zonectl.thaw),
        "Load ZONE's edited file and take dynamic updates again.",
    ),
    Command(
        "sync",
        ("ZONE",),
        _on_zone(zonectl.sync),
        "Write ZONE's data (file + dynamic updates) to its file now.",
    ),
    Command("stop", (), _stop, "Stop the server."),
    Command(
        "dnssec",
        (VARIADIC,),
        _dnssec,
        "dnssec -status ZONE | dnssec -rollover -key TAG [-when TIME] ZONE | "
        "dnssec -checkds [-key TAG] [-when TIME] published|withdrawn ZONE",
    ),
    Command("sign", ("ZONE",), _sign, "Re-sign every RRset of ZONE now."),
    Command(
        "loadkeys",
        ("ZONE",),
        _loadkeys,
        "Re-read ZONE's key directory and run the key manager now.",
    ),
    Command(
        "signing",
        (VARIADIC,),
        _signing,
        "signing -list ZONE | signing -clear all|KEYID/ALGORITHM ZONE: the signing-state "
        "records (TYPE65534), as rndc signing.",
    ),
    Command(
        "zones",
        (),
        _zones,
        "Every zone: ok / waiting on the parent / problem, serial, next events.",
    ),
    Command("keys", ("ZONE",), _keys, "ZONE's keys: record states, timings, what each waits for."),
    Command(
        "audit",
        (VARIADIC,),
        _audit,
        "audit [ZONE] [--since TIME] [--limit N] [--json]: the audit log (key events, "
        "commands, reloads, policy changes, alerts), oldest first.",
    ),
    Command(
        "ds-log",
        ("ZONE",),
        _ds_log,
        "DS automation decisions for ZONE's children (JSON, newest last).",
    ),
)
COMMANDS: dict[str, Command] = {c.name: c for c in _TABLE}


def arity_ok(command: str, args: list[str] | tuple[str, ...]) -> bool:
    """Does ``args`` fit the command's arguments (``[X]``: optional)?"""
    wanted = COMMANDS[command].arguments
    if VARIADIC in wanted:
        return True
    needed = [w for w in wanted if not w.startswith("[")]
    return len(needed) <= len(args) <= len(wanted)


def usage(command: str) -> str:
    """``COMMAND ARGUMENTS...`` as the usage errors print it."""
    return " ".join([command, *COMMANDS[command].arguments])


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
            line = await aio.wait_for(reader.readline(), 10)
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
            if not isinstance(command, str):
                raise TypeError(command)  # ([] or {} could not even be looked up)
        except (ValueError, KeyError, TypeError, AttributeError):
            return {"ok": False, "error": "bad request: expected a JSON object with 'command'"}
        if command not in COMMANDS:
            return {"ok": False, "error": f"unknown command {command!r}"}
        if not arity_ok(command, args):
            return {"ok": False, "error": f"usage: {usage(command)}"}
        if not all(isinstance(a, str) for a in args):
            return {"ok": False, "error": "bad request: arguments must be strings"}
        try:
            return await COMMANDS[command].handler(self.server, args)
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
