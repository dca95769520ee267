"""Alerts (``[alerts]``): tell the operator before things break, once per condition.

:func:`conditions` looks at the server's zones and returns every alert condition true now,
each with its zone, a sentence and the operator's next step (:data:`ALERTS` lists them).
:class:`Alerts` remembers which are active: a condition that appears is sent once
(``"status": "firing"``), one that goes away is sent once more (``"status": "resolved"``),
and both go to the audit log.  Sending runs the ``command`` (the alert as JSON on its
standard input) and POSTs the same JSON to the ``webhook``, in the background; a failure to
send is logged, never retried in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dnsseal import aio
from dnsseal.durations import format_duration, format_human_time
from dnsseal.keys.ds import make_ds
from dnsseal.server import views
from dnsseal.server.metrics import COUNTERS
from dnsseal.server.zones import ZoneState
from dnsseal.storage.journal import AuditEvent

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

log = logging.getLogger(__name__)

# an alert's audit row: "NAME raised: SUMMARY" or "NAME cleared"
_ALERT_ROW = re.compile(r"^(?P<alert>[a-z-]+) (?P<what>raised|cleared)(?:: (?P<rest>.*))?$")
RESIGN_GRACE = 300  # seconds a re-signing may take before its zone is "expiring"
# name -> what it means (docs/observability.md and contrib/ use the same names)
ALERTS: dict[str, str] = {
    "ds-ready": "a key's DS is ready to be submitted to the parent",
    "parent-slow": "a key has waited on the parent longer than "
    "parent-propagation-delay + parent-ds-ttl",
    "signatures-expiring": "the earliest signature expires within signatures-refresh",
    "zone-failing": "the zone failed to load, transfer or re-sign",
    "checkds-disagreement": "the parental agents disagree about the zone's DS set",
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One alert condition true now."""

    alert: str
    zone: str
    key: int | None
    summary: str
    next_step: str

    @property
    def ident(self) -> tuple[str, str, int | None]:
        return (self.alert, self.zone, self.key)

    def payload(self, status: str, now: int) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "status": status,
            "zone": self.zone,
            "key": self.key,
            "summary": self.summary,
            "next_step": self.next_step,
            "time": now,
            "time_text": format_human_time(now),
        }


def _checkds_step(state: ZoneState, tag: int, which: str) -> str:
    zone = state.name.rstrip(".") or "."
    if state.config.checkds == "yes":
        return "the server checks the parent by itself (checkds yes); nothing to run once done"
    return f"then run `dnsseal ctl dnssec -checkds -key {tag} {which} {zone}`"


def zone_conditions(state: ZoneState, now: int) -> list[Condition]:
    """The alert conditions of one zone at ``now``."""
    out: list[Condition] = []
    zone = state.name
    trouble = views.problems(state, now)
    inline = state.inline
    sig_expiring = views.expiring(state, now)
    failing = [p for p in trouble if not (sig_expiring and p.startswith("signatures expire"))]
    if failing:
        out.append(
            Condition(
                "zone-failing",
                zone,
                None,
                "; ".join(failing),
                "fix the zone file, the key files or the transfer named above; the previous "
                "version stays served meanwhile (`dnsseal ctl zone-status` shows the detail)",
            )
        )
    answered = [p for p in views.parent_views(state) if p.seen is not None]
    if len({tuple(sorted(set(p.seen or ()))) for p in answered}) > 1:
        detail = "; ".join(f"{p.agent}: {list(p.seen or ()) or 'none'}" for p in answered)
        out.append(
            Condition(
                "checkds-disagreement",
                zone,
                None,
                f"the parent's servers show different DS sets ({detail})",
                "wait for the parent's servers to converge; if one stays behind, tell the "
                "parent's operator",
            )
        )
    if inline is None:
        return out
    pol = inline.policy
    # Signatures are refreshed signatures-refresh before they expire: a horizon inside that
    # window (less a grace for a re-signing under way) means the refresh did not happen.
    grace = min(pol.signatures_refresh // 4, RESIGN_GRACE)
    if inline.sig_horizon is not None and inline.sig_horizon - now < pol.signatures_refresh - grace:
        out.append(
            Condition(
                "signatures-expiring",
                zone,
                None,
                f"the earliest signature expires at {format_human_time(inline.sig_horizon)} "
                f"(within signatures-refresh, {format_duration(pol.signatures_refresh)})",
                f"re-sign now: `dnsseal ctl sign {zone.rstrip('.') or '.'}`; if that fails, "
                "see the server log for why signing stopped",
            )
        )
    plan = inline.plan
    keys = {r.key.tag: r.key for r in plan.keys} if plan is not None else {}
    for w in views.waiting_on_parent(state):
        tag, reason, since = w["tag"], w["reason"], w["since"]
        key = keys.get(tag)
        if reason == views.DS_PUBLISH and key is not None:
            ds = make_ds(key, 2)
            out.append(
                Condition(
                    "ds-ready",
                    zone,
                    tag,
                    f"the DS for key {tag} can go to the parent (CDS/CDNSKEY published)",
                    f"submit `{zone} IN DS {ds.rdata_text()}` to the parent (registrar); "
                    + _checkds_step(state, tag, "published"),
                )
            )
        limit = pol.parent_propagation_delay + pol.parent_ds_ttl
        if since is not None and now - since > limit:
            which = "published" if reason == views.DS_PUBLISH else "withdrawn"
            verb = "appear at" if reason == views.DS_PUBLISH else "leave"
            out.append(
                Condition(
                    "parent-slow",
                    zone,
                    tag,
                    f"key {tag} has waited {format_duration(now - since)} for its DS to {verb} "
                    f"the parent (more than parent-propagation-delay + parent-ds-ttl, "
                    f"{format_duration(limit)})",
                    "check at the registrar that the DS change was submitted and accepted; "
                    + _checkds_step(state, tag, which),
                )
            )
    return out


def conditions(server: RunningServer, now: int) -> list[Condition]:
    out: list[Condition] = []
    for state in sorted(server.zones.values(), key=lambda s: s.name):
        out += zone_conditions(state, now)
    return out


class Alerts:
    """Which alerts are active, and sending the changes."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.active: dict[tuple[str, str, int | None], Condition] = {}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    def restore(self, log_rows: Sequence[AuditEvent]) -> None:
        """Take the alerts the audit log says were raised and not cleared as active (a
        restart does not send them again; one that ended meanwhile is sent resolved)."""
        for e in log_rows:
            if e.event != "alert":
                continue
            m = _ALERT_ROW.match(e.message)
            if m is None:
                continue
            key = None if e.key == "-" else int(e.key) if e.key.isdigit() else None
            ident = (m["alert"], e.zone, key)
            if m["what"] == "raised":
                summary = m["rest"] or ""
                self.active[ident] = Condition(m["alert"], e.zone, key, summary, "see the log")
            else:
                self.active.pop(ident, None)

    async def evaluate(self, now: int) -> list[AuditEvent]:
        """Compare the conditions now with the active ones: send what started and what
        ended; return the audit rows for both."""
        current = {c.ident: c for c in conditions(self.server, now)}
        events: list[AuditEvent] = []
        changes: list[dict[str, Any]] = []
        for ident, c in current.items():
            if ident not in self.active:
                changes.append(c.payload("firing", now))
                COUNTERS.inc("dnsseal_alerts_fired_total", zone=c.zone, alert=c.alert)
                log.warning("[%s] alert %s: %s; next: %s", c.zone, c.alert, c.summary, c.next_step)
                events.append(
                    AuditEvent(now, c.zone, _key(c), "alert", f"{c.alert} raised: {c.summary}")
                )
        for ident, c in self.active.items():
            if ident not in current:
                changes.append(c.payload("resolved", now))
                log.info("[%s] alert %s resolved", c.zone, c.alert)
                events.append(AuditEvent(now, c.zone, _key(c), "alert", f"{c.alert} cleared"))
        self.active = current
        for p in changes:
            self._queue.put_nowait(p)
        if changes and (self._sender is None or self._sender.done()):
            self._sender = asyncio.ensure_future(self._send_all())
        return events

    async def _send_all(self) -> None:
        """One alert at a time, in the order they happened (a "resolved" never overtakes
        its "firing"; two commands never write at once)."""
        while True:
            payload = await self._queue.get()
            try:
                await self._send(payload)
            except Exception:  # one bad send must not stop the others
                log.exception("[%s] alert %s: not sent", payload["zone"], payload["alert"])
            finally:
                self._queue.task_done()

    async def stop(self, timeout: float = 5) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop."""
        if self._sender is None:
            return
        with contextlib.suppress(TimeoutError):
            await aio.wait_for(self._queue.join(), timeout)
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        self._sender = None

    async def _send(self, payload: dict[str, Any]) -> None:
        cfg = self.server.config.alerts
        body = json.dumps(payload).encode()
        if cfg.command:
            await self._run(cfg.command, body, cfg.timeout, payload)
        if cfg.webhook:
            try:
                await asyncio.to_thread(_post, cfg.webhook, body, cfg.timeout)
            except (OSError, urllib.error.URLError, ValueError) as e:
                log.error("[%s] alert %s: webhook %s failed: %s", payload["zone"],
                          payload["alert"], cfg.webhook, e)  # fmt: skip

    async def _run(
        self, argv: tuple[str, ...], body: bytes, timeout: float, payload: dict[str, Any]
    ) -> None:
        where = f"[{payload['zone']}] alert {payload['alert']}"
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            log.error("%s: cannot run %s: %s", where, argv[0], e.strerror or e)
            return
        try:
            _, err = await aio.wait_for(proc.communicate(body), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.error("%s: %s still running after %gs: killed", where, argv[0], timeout)
            return
        if proc.returncode:
            log.error("%s: %s exited %d: %s", where, argv[0], proc.returncode,
                      err.decode(errors="replace").strip()[:200])  # fmt: skip


def _key(c: Condition) -> str:
    return "-" if c.key is None else str(c.key)


def _post(url: str, body: bytes, timeout: float) -> None:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()
