"""Seeing into the running server: the HTTP listener, the alerts, and audit rows for what
no driver records itself (configuration reloads, signing-policy changes, control commands
with who gave them).

:class:`Observability` is started and stopped by the server (main process only).  Its
watcher wakes every :data:`TICK` seconds, compares what it sees with what it saw last, and
writes one audit row per change; :mod:`dnsseal.server.alerts` decides from the same look
which alerts start or end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pwd
import socket
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dnsseal import clock
from dnsseal.durations import parse_duration, parse_when
from dnsseal.errors import DnssealError, InputError
from dnsseal.policy.model import Policy
from dnsseal.server import counters, http, views
from dnsseal.server.alerts import Alerts
from dnsseal.storage.journal import AuditEvent, Journal

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between looks
ALERT_HISTORY = 10_000  # alert rows read at start to find the alerts still active
# Control commands that change something: each is audited with who sent it.
# (freeze, thaw, sync and retransfer change a zone's state too, as rndc's do.)
CHANGING_COMMANDS = frozenset(
    {"reload", "notify", "stop", "sign", "loadkeys", "dnssec", "signing"}
    | {"freeze", "thaw", "sync", "retransfer"}
)
# Every other control command only reads; tests/ops/test_ctl_table.py holds the two lists
# to the command table, so a new command must be put in one of them.
READ_ONLY_COMMANDS = frozenset({"status", "zones", "zone-status", "keys", "audit", "ds-log"})
READ_ONLY_FORMS = {"dnssec": ("-status",), "signing": ("-list",)}


def is_changing(command: str, args: Sequence[str]) -> bool:
    """Does this control command change state (and so belong in the audit log)?"""
    if command not in CHANGING_COMMANDS:
        return False
    return not (args and args[0] in READ_ONLY_FORMS.get(command, ()))


class Observability:
    """The server's HTTP listener, alerts and watcher."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.http: http.HttpListener | None = None
        self.alerts = Alerts(server)
        self._task: asyncio.Task[None] | None = None
        self._reloads = 0
        self._policies: dict[str, Policy] = {}
        self._parent: dict[tuple[str, str], tuple[int, ...]] = {}  # (zone, agent) -> DS tags

    async def start(self) -> None:
        srv = self.server
        if srv.worker:
            return
        self.http = await http.start(srv)
        self._reloads = srv.reloads
        self._policies = self._current_policies()
        self.alerts.restore(await asyncio.to_thread(self._alert_rows))
        self._task = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.http is not None:
            await self.http.stop()
            self.http = None
        await self.alerts.stop()

    def _current_policies(self) -> dict[str, Policy]:
        return {s.name: s.inline.policy for s in self.server.zones.values() if s.inline is not None}

    def _alert_rows(self) -> list[AuditEvent]:
        """The audit log's latest alert rows (they tell which alerts are active)."""
        state_dir = self.server.config.state_dir
        if state_dir is None:
            return []
        try:
            with Journal(state_dir) as j:
                return j.audit_log(limit=ALERT_HISTORY, event="alert")
        except DnssealError as e:
            log.error("[server] audit log not read: %s", e)
            return []

    def audit(self, events: Sequence[AuditEvent]) -> None:
        """Write ``events`` (blocking: call it in a thread)."""
        state_dir = self.server.config.state_dir
        if state_dir is None or not events:
            return
        try:
            with Journal(state_dir) as j, j.batch():  # one commit for them all
                for e in events:
                    j.audit(e)
        except DnssealError as e:
            log.error("[server] audit log not written: %s", e)

    async def request_done(self, who: str, line: bytes, reply: dict[str, Any]) -> None:
        """Audit a control request (``line``, answered with ``reply``) that changes state."""
        try:
            request = json.loads(line)
            command, args = request["command"], request.get("args", [])
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(command, str) and isinstance(args, list):
            await self.command(who, command, [str(a) for a in args], bool(reply.get("ok")))

    async def command(self, who: str, command: str, args: Sequence[str], ok: bool) -> None:
        """Audit a control command that changes state, with who sent it."""
        if not is_changing(command, args):
            return
        line = " ".join([command, *args])
        zone = ""  # the zone it names (its last argument), if any
        if args and not args[-1].startswith("-"):
            with contextlib.suppress(LookupError):
                zone = self.server.find_state(args[-1]).name
        outcome = "done" if ok else "failed"
        event = AuditEvent(clock.now(), zone, "-", "command", f"{who}: {line} ({outcome})")
        await asyncio.to_thread(self.audit, [event])

    def look(self, now: int) -> list[AuditEvent]:
        """The audit rows for what changed since the last look."""
        srv = self.server
        events = []
        if srv.reloads != self._reloads:
            self._reloads = srv.reloads
            zones = len(srv.zones)
            errors = sorted(s.name for s in srv.zones.values() if s.error)
            what = f"configuration reloaded: {zones} zone(s)"
            if errors:
                what += f", not loaded: {', '.join(errors)}"
            events.append(AuditEvent(now, "", "-", "reload", what))
        policies = self._current_policies()
        for zone, pol in sorted(policies.items()):
            old = self._policies.get(zone)
            if old is None or old == pol:
                continue
            if old.name != pol.name:
                what = f"dnssec-policy {old.name} -> {pol.name}"
            else:
                what = f"dnssec-policy {pol.name}: options changed"
            events.append(AuditEvent(now, zone, "-", "policy", what))
        self._policies = policies
        events += self._parent_changes(now)
        return events

    def _parent_changes(self, now: int) -> list[AuditEvent]:
        """A DS that appeared at or left a parental agent (or parent name server) since the
        last checkds: one row per key and agent."""
        events = []
        for state in sorted(self.server.zones.values(), key=lambda s: s.name):
            for p in views.parent_views(state):
                if p.seen is None:  # no answer: nothing learnt
                    continue
                ident = (state.name, p.agent)
                old = self._parent.get(ident)
                self._parent[ident] = p.seen
                if old is None and not p.seen:
                    continue
                before = set(old or ())
                for tag in sorted(set(p.seen) - before):
                    events.append(
                        AuditEvent(now, state.name, str(tag), "checkds", f"DS seen at {p.agent}")
                    )
                for tag in sorted(before - set(p.seen)):
                    events.append(
                        AuditEvent(
                            now, state.name, str(tag), "checkds", f"DS withdrawn from {p.agent}"
                        )
                    )
        return events

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                counters.drain()  # the workers' counted events (their socket stays short)
                await http.presigned(self.server)
                now = clock.now()
                events = self.look(now)
                events += await self.alerts.evaluate(now)
                if events:
                    await asyncio.to_thread(self.audit, events)
            except Exception:  # the watcher must outlive a bug in one look
                log.exception("[server] observer failed")


def peer_user(writer: asyncio.StreamWriter) -> str:
    """Who is at the other end of a control connection: ``user NAME (uid N, pid P)`` from
    the unix socket's peer credentials, or ``unknown`` where the system does not tell."""
    sock = writer.get_extra_info("socket")
    peercred = getattr(socket, "SO_PEERCRED", None)
    if sock is None or peercred is None:
        return "unknown"
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", raw)
    except OSError:
        return "unknown"
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return f"user {name} (uid {uid}, pid {pid})"


AUDIT_USAGE = "audit [ZONE] [--since TIME] [--limit N] [--json]"


def _since(text: str, now: int) -> int:
    """``--since``: a BIND time (``-1d``, ``now-2h``, ``20260101``, epoch) or a duration
    back from now (``1d``, ``PT6H``)."""
    try:
        when = parse_when(text, now)
    except InputError:
        try:
            return now - parse_duration(text)
        except InputError:
            raise LookupError(f"--since: bad time {text!r}; usage: {AUDIT_USAGE}") from None
    if when is None:
        raise LookupError(f"--since: bad time {text!r}; usage: {AUDIT_USAGE}")
    return when


async def audit_command(server: RunningServer, args: Sequence[str]) -> dict[str, Any]:
    """``dnsseal ctl audit``: the reply's ``result`` is one line per entry (a JSON object
    per line with ``--json``), ``entries`` the entries as data (what ``/api/v1/audit``
    returns)."""
    zone: str | None = None
    since: int | None = None
    limit = 1000
    as_json = False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--since", "--limit"):
            if i + 1 >= len(args):
                raise LookupError(f"{a} needs a value; usage: {AUDIT_USAGE}")
            value = args[i + 1]
            if a == "--since":
                since = _since(value, clock.now())
            elif value.isdigit() and int(value) > 0:
                limit = int(value)
            else:
                raise LookupError(f"--limit: a positive number, got {value!r}")
            i += 2
            continue
        if a == "--json":
            as_json = True
        elif a.startswith("-") and len(a) > 1:
            raise LookupError(f"unknown option {a}; usage: {AUDIT_USAGE}")
        elif zone is None:
            zone = a
        else:
            raise LookupError(f"one zone at most; usage: {AUDIT_USAGE}")
        i += 1
    entries = views.iso_times(await asyncio.to_thread(views.audit_view, server, zone, since, limit))
    lines = [json.dumps(e) for e in entries] if as_json else views.audit_lines(entries)
    return {"ok": True, "result": lines, "entries": entries}
