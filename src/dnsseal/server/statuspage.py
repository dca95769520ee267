"""The status page (``/`` on the HTTP listener): server-rendered HTML, no script, no
external assets.

Every zone with its condition at a glance (ok / waiting on the parent / problem, from
:mod:`dnsseal.server.views`), and per zone signed here: its keys with their record states
and what they wait for, the key timeline (the ``keys timeline`` drawing, with a "now" line:
left of it each record's states as the audit log recorded its transitions, right of it the
key manager simulated forward, as ``dnsseal keys timeline`` does), the parent's DS per
agent and the recent audit entries.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dnsseal.durations import format_human_time
from dnsseal.keymgr import simulate
from dnsseal.keymgr import timeline as tline
from dnsseal.keymgr.simulate import Timeline
from dnsseal.keymgr.timeline import ROWS, Bar
from dnsseal.keys.model import Key, KeyId, KeyState, RecordState
from dnsseal.server import views
from dnsseal.server.zones import ZoneState

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

PAST = 30 * 86400  # the timeline shows this much before now
FUTURE = 400 * 86400  # and this much after (a year of ZSK rolls, most KSK events)
DS_DELAY = 3600  # the simulation assumes the parent follows the CDS this much later
AUDIT_ROWS = 15
AUDIT_PAST = 20_000  # audit rows read for the timeline's past
MAX_SECTIONS = 50  # zones shown in detail on the main page (then: the ones not OK)
REFRESH = 60  # seconds: the page reloads itself (no script)
LABELS = {
    views.OK: "OK",
    views.WAITING: "waiting on parent",
    views.PROBLEM: "problem",
}

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; background: #fff; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em;
         vertical-align: top; }
th { background: #f0f0f0; }
.cond { font-weight: bold; padding: 0.1em 0.5em; border-radius: 0.3em; white-space: nowrap; }
.ok { background: #3c9a48; color: #fff; }
.waiting { background: #f5c542; color: #222; }
.problem { background: #c0392b; color: #fff; }
.muted { color: #777; font-size: 0.85em; }
.audit td:first-child, td.t { white-space: nowrap; }
table.keys { display: block; max-width: 100%; overflow-x: auto; }
table.keys td, table.keys th { font-size: 0.82em; padding: 0.2em 0.45em; }
.timeline { background: #fff; border: 1px solid #ddd; margin: 0.5em 0; overflow-x: auto; }
.pending-step { background: #fff4d6; border-left: 0.3em solid #f5c542; padding: 0.2em 0.8em; }
"""


# manual-mode: the key manager holds a step for the operator (the zone's section says which)
PENDING = ' <span class="cond waiting" data-pending-step="1">step to approve</span>'


def _t(ts: int | None) -> str:
    return escape(format_human_time(ts)) if ts is not None else "-"


def _short(ts: int | None) -> str:
    """A key timing in a table cell: ``2026-12-07 10:17`` (UTC)."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _cond(c: str) -> str:
    return f'<span class="cond {c}">{escape(LABELS[c])}</span>'


# A key manager audit row for a record state transition: "DNSKEY rumoured -> omnipresent"
_TRANSITION = re.compile(r"^(DNSKEY|ZRRSIG|KRRSIG|DS) (\w+) -> (\w+)$")
Past = dict[str, dict[int, list[tuple[int, RecordState, RecordState]]]]


def past_transitions(entries: Sequence[dict[str, Any]]) -> Past:
    """Key file name -> record row -> (time, from, to), oldest first, from the audit log."""
    out: Past = {}
    for e in entries:
        m = _TRANSITION.match(e["message"]) if e["event"] == "keymgr" else None
        if m is None:
            continue
        try:
            old, new = RecordState(m[2]), RecordState(m[3])
        except ValueError:
            continue
        row = ROWS.index(m[1].lower())
        out.setdefault(e["key"], {}).setdefault(row, []).append((e["time"], old, new))
    return out


def _past_bars(key: Key, st: KeyState, now: int, since: int, past: Past) -> list[Bar]:
    """Each record's states from ``since`` to ``now``: from the audit log's transitions
    where it has them, else the current state since it was entered (the state file)."""
    bars: list[Bar] = []
    rows = past.get(key.basename, {})
    for row, name in enumerate(ROWS):
        moves = [m for m in rows.get(row, []) if since <= m[0] <= now]
        if moves:
            start, state = since, moves[0][1]
            for t, _, new in moves:
                bars.append((start, t, row, state))
                start, state = t, new
            bars.append((start, now, row, state))
            continue
        s, changed = getattr(st, name), getattr(st, f"{name}_change")
        if s is not None and changed is not None and changed < now:
            bars.append((changed, now, row, s))
    return bars


def timeline_svg(
    tl: Timeline, now: int, since: int, width: int = 1000, past: Past | None = None
) -> str:
    """The ``keys timeline`` drawing over ``since`` .. ``tl.until`` with a "now" line.
    Before now each record's states from the audit log's transitions (``past``), or its
    current state since it entered it (the key state file keeps that time); from now on,
    the simulated steps of ``tl``."""
    before: dict[KeyId, list[Bar]] = {}
    if tl.plans:
        first = tl.plans[0]
        for r in first.keys:
            if r.key.state is not None:
                before[r.key.id] = _past_bars(r.key, r.key.state, first.now, since, past or {})
    return tline.svg(tl, width, now=now, since=since, before=before)


def zone_timeline(server: RunningServer, state: ZoneState, now: int) -> str | None:
    """The zone's key timeline (None: not signed here, or no key manager run yet)."""
    inline = state.inline
    if inline is None or inline.plan is None or not inline.keys:
        return None
    pol = inline.policy
    tl = simulate.simulate(pol, inline.keys, now, now + FUTURE, zone=inline.origin,
                           ds_delay=DS_DELAY)  # fmt: skip
    # The window fits the policy's pace: a few of its slowest steps at least, up to the last
    # simulated event, at most FUTURE ahead and PAST back (a lab policy steps in seconds).
    least = 10 * (pol.dnskey_ttl + pol.publish_safety + pol.zone_propagation_delay)
    last = max((p.now for p in tl.plans), default=now)
    ahead = min(FUTURE, max(least, int((last - now) * 1.1)))
    born = min((k.timings.created or now for k in inline.keys), default=now)
    back = min(PAST, max(least // 4, now - born), ahead)
    tl.until = now + ahead
    entries = views.audit_view(server, state.name, since=now - back, limit=AUDIT_PAST)
    return timeline_svg(tl, now, now - back, past=past_transitions(entries))


def _keys_table(keys: list[dict[str, Any]]) -> str:
    rows = []
    for k in keys:
        st = k["states"]
        waiting = k["waiting"] or ""
        rows.append(
            f'<tr class="key" data-tag="{k["tag"]}"><td>{k["tag"]}</td>'
            f"<td>{escape(k['role'].upper())}</td><td>{escape(k['algorithm-name'])}</td>"
            + "".join(f"<td>{escape(st[f] or '-')}</td>" for f in views.STATE_FIELDS)
            + f'<td class="t">{_short(k["timings"]["publish"])}</td>'
            f'<td class="t">{_short(k["timings"]["activate"])}</td>'
            f'<td class="t">{_short(k["timings"]["inactive"])}</td>'
            f'<td title="{escape(waiting)}">{escape(k["waiting-reason"] or "-")}</td></tr>'
        )
    head = (
        "<tr><th>tag</th><th>role</th><th>algorithm</th><th>goal</th><th>DNSKEY</th>"
        "<th>KRRSIG</th><th>ZRRSIG</th><th>DS</th><th>published</th><th>active</th>"
        "<th>retires</th><th>waits for</th></tr>"
    )
    return f'<table class="keys">{head}{"".join(rows)}</table>'


def _audit_table(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return '<p class="muted">no audit entries</p>'
    rows = "".join(
        f"<tr><td>{escape(e['time-text'])}</td><td>{escape(e['key'])}</td>"
        f"<td>{escape(e['event'])}</td><td>{escape(e['message'])}</td></tr>"
        for e in reversed(entries)
    )
    return (
        '<table class="audit"><tr><th>time</th><th>key</th><th>event</th><th>what</th></tr>'
        f"{rows}</table>"
    )


def _zone_section(server: RunningServer, state: ZoneState, now: int) -> str:
    s = views.zone_summary(state, now)
    anchor = escape(state.name.rstrip(".") or "root")
    out = [
        f'<section class="zone" id="zone-{anchor}" data-zone="{escape(state.name)}">',
        f"<h2>{escape(state.name)} {_cond(s['condition'])}</h2>",
    ]
    for p in s["problems"]:
        out.append(f'<p class="problem-text">problem: {escape(p)}</p>')
    for w in s["waiting-on-parent"]:
        out.append(f"<p>key {w['tag']}: {escape(w['waiting'] or w['reason'])}</p>")
    if s["pending-step"]:  # manual-mode: the key manager waits for the operator
        zone = escape(state.name.rstrip(".") or ".")
        steps = "".join(f"<li>{escape(p)}</li>" for p in s["pending-step"])
        out.append(
            f'<div class="pending-step"><p>pending step (manual-mode), approve with '
            f"<code>dnsseal ctl dnssec -step {zone}</code>:</p><ul>{steps}</ul></div>"
        )
    out.append(
        f"<p>serial {s['serial'] if s['serial'] is not None else '-'} · next key event "
        f"{_t(s['next-key-event-time'])} · next signing {_t(s['next-resign-time'])} · "
        f"earliest signature expiry {_t(s['rrsig-earliest-expiry-time'])}</p>"
    )
    if state.inline is not None:
        keys = views.keys_view(server, state.name)
        out.append(_keys_table(keys["keys"]))
        for p in keys.get("parent", []):
            seen = "no answer" if p["seen"] is None else (", ".join(map(str, p["seen"])) or "none")
            mark = "match" if p["match"] else "differs"
            out.append(
                f"<p>{escape(p['agent'])}: expected {', '.join(map(str, p['expected'])) or 'none'},"
                f" seen {escape(seen)} ({mark})</p>"
            )
        svg = zone_timeline(server, state, now)
        if svg is not None:
            out.append(
                f'<div class="timeline">{svg}</div><p class="muted">Left of the red line: the '
                "record states the audit log recorded. Right: the key manager simulated "
                f"forward, assuming the parent follows the CDS within {DS_DELAY // 3600} hour "
                "(* marks a key the simulation made up).</p>"
            )
    out.append(_audit_table(views.audit_view(server, state.name, limit=AUDIT_ROWS)))
    out.append("</section>")
    return "\n".join(out)


def _detailed(states: list[ZoneState], now: int) -> list[ZoneState]:
    """The zones shown in detail on the main page: all of them up to MAX_SECTIONS, else
    those not OK (the others have their own page, ``/zone/NAME``)."""
    if len(states) <= MAX_SECTIONS:
        return states
    return [s for s in states if views.condition(s, now) != views.OK][:MAX_SECTIONS]


def _page(title: str, body: list[str], refresh: bool = True) -> str:
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH}">' if refresh else "",
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    return "\n".join([*head, *body, "</body></html>"]) + "\n"


def _zone_link(state: ZoneState, detailed: bool) -> str:
    name = state.name.rstrip(".") or "root"
    href = f"#zone-{name}" if detailed else f"/zone/{quote(state.name)}"
    return f'<a href="{escape(href)}">{escape(state.name)}</a>'


def render(server: RunningServer, now: int) -> str:
    """The whole page.  Blocking (audit log, simulation): call it in a thread."""
    states = sorted(server.zones.values(), key=lambda z: z.name)
    detailed = _detailed(states, now)
    shown = {s.name for s in detailed}
    summary_rows = []
    for state in states:
        s = views.zone_summary(state, now)
        summary_rows.append(
            f'<tr class="zone-row" data-zone="{escape(state.name)}" '
            f'data-condition="{s["condition"]}"><td>{_zone_link(state, state.name in shown)}'
            f"</td><td>{_cond(s['condition'])}{PENDING if s['pending-step'] else ''}</td>"
            f"<td>{s['serial'] if s['serial'] is not None else '-'}</td>"
            f"<td>{_t(s['next-key-event-time'])}</td>"
            f"<td>{_t(s['rrsig-earliest-expiry-time'])}</td><td>{s['key-count']}</td></tr>"
        )
    counts = views.state_counts(server, now)
    more = len(states) - len(detailed)
    return _page(
        "dnsseal status",
        [
            "<h1>dnsseal</h1>",
            f'<p class="muted">{_t(now)} UTC · up since {_t(server.started_at)} · '
            f"{counts[views.OK]} ok, {counts[views.WAITING]} waiting on parent, "
            f"{counts[views.PROBLEM]} with problems</p>",
            '<table class="zones"><tr><th>zone</th><th>state</th><th>serial</th>'
            "<th>next key event</th><th>earliest signature expiry</th><th>keys</th></tr>",
            *summary_rows,
            "</table>",
            f'<p class="muted">{more} more zone(s) in detail on their own pages</p>'
            if more
            else "",
            *(_zone_section(server, s, now) for s in detailed),
        ],
    )


def render_zone(server: RunningServer, zone: str, now: int) -> str:
    """One zone's page (``/zone/NAME``).  Raises LookupError for an unknown zone."""
    state = server.find_state(zone)
    return _page(
        f"dnsseal: {state.name}",
        ['<p><a href="/">all zones</a></p>', _zone_section(server, state, now)],
    )
