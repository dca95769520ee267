"""The what-if timeline: the engine's steps turned into dated events an operator reads,
as text rows, JSON-ready dicts, or an SVG with one lane per key.

The SVG (``keys timeline --svg`` and the status page) has a date axis with ticks, one lane
per key with a labelled bar per record (DNSKEY, KRRSIG, ZRRSIG, DS) coloured by state, keys
the simulation made up hatched, markers where the DS must be submitted to (or withdrawn
from) the parent and where checkds saw it happen, an optional "now" line and a legend
below the lanes.  Its elements carry ``class`` and ``data-*`` attributes so a test can
check the drawing by its structure."""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from dnsseal.durations import format_bind_time, format_human_time
from dnsseal.keymgr.simulate import Timeline
from dnsseal.keys.model import Key, KeyId, RecordState

# change-log prefix -> event, in the words of the issue and BIND's docs
EVENT_TABLE: tuple[tuple[str, str], ...] = (
    ("created", "key created"),
    ("selected", "key selected from the key directory"),
    ("DNSKEY hidden -> rumoured", "published: DNSKEY in the zone"),
    ("DNSKEY rumoured -> omnipresent", "DNSKEY in every cache"),
    ("ZRRSIG hidden -> rumoured", "active: signs the zone"),
    ("KRRSIG hidden -> rumoured", "active: signs the DNSKEY RRset"),
    ("DS hidden -> rumoured", "CDS/CDNSKEY published: the parent may add the DS"),
    ("ds_publish set", "DS expected at the parent"),
    ("DS rumoured -> omnipresent", "DS in every cache"),
    ("ZRRSIG omnipresent -> unretentive", "retired: stops signing the zone"),
    ("KRRSIG omnipresent -> unretentive", "retired: stops signing the DNSKEY RRset"),
    ("DS omnipresent -> unretentive", "CDS withdrawn: the parent may remove the DS"),
    ("ds_delete set", "DS expected gone from the parent"),
    ("DNSKEY omnipresent -> unretentive", "removed: DNSKEY out of the zone"),
    ("DNSKEY unretentive -> hidden", "DNSKEY gone from every cache"),
    ("purged", "purged: key files deleted"),
)


APPROVED = "the operator approves the pending step (manual-mode)"


@dataclass(frozen=True, slots=True)
class Event:
    at: int
    tag: int
    role: str
    what: str
    simulated: bool = False  # the key does not exist yet: the simulation made it up

    def to_dict(self) -> dict[str, object]:
        return {
            "time": format_bind_time(self.at),
            "epoch": self.at,
            "key": self.tag,
            "role": self.role,
            "event": self.what,
            "simulated_key": self.simulated,
        }


def events(tl: Timeline, *, since: int | None = None) -> list[Event]:
    """Every operator-visible event of the simulation, in time order."""
    out: list[Event] = []
    for plan in tl.plans:
        if since is not None and plan.now < since:
            continue
        for r in plan.keys:
            for change in r.changes:
                for prefix, what in EVENT_TABLE:
                    if change.startswith(prefix):
                        sim = r.key.id not in tl.initial
                        out.append(Event(plan.now, r.key.tag, r.key.role, what, sim))
                        break
    for t in tl.approvals:
        if since is None or t >= since:
            out.append(Event(t, 0, "zone", APPROVED))
    refresh = _next_refresh(tl)
    if refresh is not None:
        out.append(Event(refresh, 0, "zone", "next signature refresh"))
    return sorted(out, key=lambda e: (e.at, e.tag))


def _next_refresh(tl: Timeline) -> int | None:
    delay = tl.policy.sign_delay
    if not delay:
        return None
    for v in tl.zone:
        if v.zsk_signers:
            first = max(v.at, tl.start)
            return first + delay if first + delay <= tl.until else None
    return None


def text_rows(evs: list[Event]) -> list[str]:
    """One line per event; a key the simulation made up is marked with ``*``."""
    return [
        f"{format_human_time(e.at)}  {e.tag:5d}{'*' if e.simulated else ' '} "
        f"{e.role.upper():4s} {e.what}"
        for e in evs
    ]


# ----------------------------------------------------------------------------- SVG

COLOURS = {
    RecordState.HIDDEN: "#eeeeee",
    RecordState.RUMOURED: "#f5c542",
    RecordState.OMNIPRESENT: "#3c9a48",
    RecordState.UNRETENTIVE: "#d9822b",
}
ROWS = ("dnskey", "krrsig", "zrrsig", "ds")
Bar = tuple[int, int, int, RecordState]  # start, end, row (index into ROWS), state

# change-log prefix -> DS marker kind; the parent side of a KSK's life
MARKERS: tuple[tuple[str, str, str], ...] = (
    ("DS hidden -> rumoured", "ds-submit", "submit the DS to the parent"),
    ("ds_publish set", "ds-seen", "checkds: DS seen at the parent"),
    ("DS omnipresent -> unretentive", "ds-withdraw", "remove the DS at the parent"),
    ("ds_delete set", "ds-gone", "checkds: DS gone from the parent"),
)
_MARKER_SHAPES = {
    "ds-submit": ("polygon", "#1f5fbf"),  # down triangle: act
    "ds-seen": ("circle", "#1f5fbf"),  # dot: confirmed
    "ds-withdraw": ("polygon", "#8e44ad"),
    "ds-gone": ("circle", "#8e44ad"),
}
_HOUR, _DAY = 3600, 86400
# tick steps: (seconds, label format); months and years are calendar steps
_STEPS: tuple[tuple[int, str], ...] = (
    (_HOUR, "%m-%d %H:%M"),
    (3 * _HOUR, "%m-%d %H:%M"),
    (6 * _HOUR, "%m-%d %H:%M"),
    (12 * _HOUR, "%m-%d %H:%M"),
    (_DAY, "%Y-%m-%d"),
    (2 * _DAY, "%Y-%m-%d"),
    (7 * _DAY, "%Y-%m-%d"),
    (30 * _DAY, "%Y-%m"),
    (61 * _DAY, "%Y-%m"),
    (91 * _DAY, "%Y-%m"),
    (182 * _DAY, "%Y-%m"),
    (365 * _DAY, "%Y"),
)
_MONTHS = {30 * _DAY: 1, 61 * _DAY: 2, 91 * _DAY: 3, 182 * _DAY: 6}
CHAR = 6.2  # average glyph width of the 11px sans-serif font, for layout


def ticks(start: int, until: int, most: int = 9) -> list[tuple[int, str]]:
    """Round dates between ``start`` and ``until`` (UTC), at most ``most`` of them."""
    span = max(1, until - start)
    if span < 4 * _HOUR:
        small = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800)
        step = next((s for s in small if span / s <= most), 3600)
        first = -(-start // step) * step
        fmt = "%H:%M" if step >= 60 else "%H:%M:%S"
        return [(t, time.strftime(fmt, time.gmtime(t))) for t in range(first, until + 1, step)]
    years = 365 * _DAY * -(-span // (365 * _DAY * most))
    seconds, fmt = next(((s, f) for s, f in _STEPS if span / s <= most), (years, "%Y"))
    if seconds < 30 * _DAY:
        first = -(-start // seconds) * seconds
        if seconds == 7 * _DAY:  # weeks start on Monday (1970-01-01 was a Thursday)
            first = -(-(start - 4 * _DAY) // seconds) * seconds + 4 * _DAY
        return [(t, time.strftime(fmt, time.gmtime(t))) for t in range(first, until + 1, seconds)]
    months = _MONTHS.get(seconds, 12 * (seconds // (365 * _DAY)))
    g = time.gmtime(start)
    y, m = g.tm_year, g.tm_mon
    out: list[tuple[int, str]] = []
    while True:
        t = calendar.timegm((y, m, 1, 0, 0, 0))
        if t > until:
            return out
        if t >= start and (y * 12 + m - 1) % months == 0:
            out.append((t, time.strftime(fmt, time.gmtime(t))))
        m += 1
        if m > 12:
            y, m = y + 1, 1


def _bars(tl: Timeline) -> tuple[list[KeyId], dict[KeyId, list[Bar]]]:
    """Every key in the order it appears, and its record states over the simulation,
    one bar per run of the same state."""
    order: list[KeyId] = []
    bars: dict[KeyId, list[Bar]] = {}
    open_: dict[tuple[KeyId, int], tuple[int, RecordState]] = {}
    for plan in tl.plans:
        seen: set[KeyId] = set()
        for r in plan.keys:
            st = r.key.state
            if st is None:
                continue
            kid = r.key.id
            seen.add(kid)
            if kid not in bars:
                order.append(kid)
                bars[kid] = []
            for row, name in enumerate(ROWS):
                s = getattr(st, name)
                cur = open_.get((kid, row))
                if cur is not None and cur[1] == s:
                    continue
                if cur is not None:
                    bars[kid].append((cur[0], plan.now, row, cur[1]))
                    del open_[(kid, row)]
                if s is not None:
                    open_[(kid, row)] = (plan.now, s)
            if r.purge:
                seen.discard(kid)
        for (kid, row), (t, s) in list(open_.items()):
            if kid not in seen:  # purged or gone from the key list
                bars[kid].append((t, plan.now, row, s))
                del open_[(kid, row)]
    for (kid, row), (t, s) in open_.items():
        bars[kid].append((t, tl.until, row, s))
    return order, bars


def current_bars(key: Key, now: int, since: int) -> list[Bar]:
    """A key's records before ``now`` as far as its state file tells: each record in its
    current state since it entered it (``*_change``), when that is after ``since``."""
    st = key.state
    out: list[Bar] = []
    if st is None:
        return out
    for row, name in enumerate(ROWS):
        s, changed = getattr(st, name), getattr(st, f"{name}_change")
        if s is not None and changed is not None and changed < now:
            out.append((max(since, changed), now, row, s))
    return out


def _markers(tl: Timeline) -> list[tuple[int, KeyId, str, str]]:
    """(time, key, kind, label) for each DS action the operator or checkds takes."""
    out: list[tuple[int, KeyId, str, str]] = []
    for plan in tl.plans:
        for r in plan.keys:
            for change in r.changes:
                for prefix, kind, label in MARKERS:
                    if change.startswith(prefix):
                        at = plan.now
                        if kind == "ds-seen" and r.key.timings.ds_publish is not None:
                            at = r.key.timings.ds_publish
                        if kind == "ds-gone" and r.key.timings.ds_delete is not None:
                            at = r.key.timings.ds_delete
                        out.append((at, r.key.id, kind, label))
    return out


def _marker(kind: str, cx: float, cy: float, extra: str = "") -> str:
    shape, colour = _MARKER_SHAPES[kind]
    if shape == "circle":
        return (
            f'<circle class="marker {kind}" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}" '
            f'stroke="#fff" stroke-width="1"{extra}'
        )
    pts = f"{cx - 5:.1f},{cy - 5:.1f} {cx + 5:.1f},{cy - 5:.1f} {cx:.1f},{cy + 4:.1f}"
    return (
        f'<polygon class="marker {kind}" points="{pts}" fill="{colour}" stroke="#fff" '
        f'stroke-width="1"{extra}'
    )


def _approval(cx: float, cy: float, extra: str = "") -> str:
    """A diamond on the date axis: the operator approved a step (manual-mode)."""
    pts = f"{cx:.1f},{cy - 5:.1f} {cx + 4:.1f},{cy:.1f} {cx:.1f},{cy + 5:.1f} {cx - 4:.1f},{cy:.1f}"
    return f'<polygon class="marker step-approved" points="{pts}" fill="#444444"{extra}'


def svg(
    tl: Timeline,
    width: int = 1000,
    *,
    now: int | None = None,
    since: int | None = None,
    before: Mapping[KeyId, Sequence[Bar]] | None = None,
) -> str:
    """Draw ``tl`` from ``since`` (default: its start) to its end; ``now`` adds a "now"
    line, ``before`` adds bars per key before the simulation (the status page's past,
    from the audit log)."""
    start = tl.start if since is None else since
    until = tl.until
    span = max(1, until - start)
    order, bars = _bars(tl)
    for kid, extra in (before or {}).items():
        if kid in bars:
            bars[kid] = list(extra) + bars[kid]
    marks = _markers(tl)
    left, right, bar, gap = 190, 16, 11, 16
    lane = len(ROWS) * (bar + 1) + gap
    axis_y = 44  # the date axis line; tick labels above it
    top = axis_y + 8
    lanes_end = top + lane * len(order)

    def x(t: int) -> float:
        return left + (max(start, min(t, until)) - start) * (width - left - right) / span

    # the legend: entries laid out left to right, wrapping, in a box below the lanes
    entries: list[tuple[str, str]] = [(s.value, f'fill="{c}"') for s, c in COLOURS.items()]
    entries.append(("future key (simulated)", 'fill="url(#future)"'))
    entries += [(label, kind) for _, kind, label in MARKERS]
    if tl.approvals:
        entries.append(("operator approves a step (manual-mode)", "approved"))
    if now is not None:
        entries.append(("now", "now"))
    leg_x, leg_y, leg_row = 8, lanes_end + 10, 18
    legend: list[str] = []
    cx, cy = leg_x + 8, leg_y + 8
    for label, how in entries:
        w = 18 + len(label) * CHAR + 18
        if cx + w > width - 8:
            cx, cy = leg_x + 8, cy + leg_row
        if how in _MARKER_SHAPES:
            legend.append(_marker(how, cx + 5, cy + 5) + "/>")
        elif how == "approved":
            legend.append(_approval(cx + 5, cy + 5) + "/>")
        elif how == "now":
            legend.append(
                f'<line x1="{cx + 5}" y1="{cy - 1}" x2="{cx + 5}" y2="{cy + 11}" '
                'stroke="#c0392b" stroke-width="1.5" stroke-dasharray="3 2"/>'
            )
        else:
            legend.append(
                f'<rect x="{cx}" y="{cy}" width="10" height="10" {how} stroke="#999" '
                'stroke-width="0.5"/>'
            )
        legend.append(f'<text x="{cx + 14}" y="{cy + 9}">{escape(label)}</text>')
        cx += int(w)
    leg_h = cy - leg_y + leg_row
    height = leg_y + leg_h + 6

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" '
        'role="img" aria-label="key timeline">',
        "<defs>"
        '<pattern id="future" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff" '
        'fill-opacity="0"/><line x1="0" y1="0" x2="0" y2="6" stroke="#333" '
        'stroke-width="1.6" stroke-opacity="0.45"/></pattern></defs>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="4" y="14" font-weight="bold" class="title">{escape(tl.policy.name)}: '
        f"{format_human_time(start)} .. {format_human_time(until)}</text>",
    ]
    # date axis: a line, ticks with labels, faint grid lines through the lanes
    parts.append('<g class="axis">')
    parts.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#555"/>'
    )
    for t, label in ticks(start, until):
        tx = x(t)
        parts.append(
            f'<line class="tick" data-epoch="{t}" x1="{tx:.1f}" y1="{axis_y - 4}" '
            f'x2="{tx:.1f}" y2="{axis_y}" stroke="#555"/>'
            f'<line class="grid" x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{lanes_end}" '
            'stroke="#dddddd" stroke-width="0.5"/>'
            f'<text class="tick-label" data-epoch="{t}" x="{tx:.1f}" y="{axis_y - 7}" '
            f'text-anchor="middle" font-size="10">{label}</text>'
        )
    for t in tl.approvals:
        if start <= t <= until:
            title = f"<title>{APPROVED}: {format_bind_time(t)}</title></polygon>"
            parts.append(_approval(x(t), axis_y, f' data-epoch="{t}">{title}'))
    parts.append("</g>")
    for n, kid in enumerate(order):
        y0 = top + n * lane
        key = tl.keys[kid]
        future = kid not in tl.initial
        star = "*" if future else ""
        parts.append(
            f'<g class="key{" future" if future else ""}" data-tag="{key.tag}" '
            f'data-role="{key.role}">'
        )
        parts.append(
            f'<text class="key-label" x="4" y="{y0 + 16}" font-weight="bold">{key.tag}{star} '
            f"{key.role.upper()}</text>"
            f'<text x="4" y="{y0 + 30}" fill="#666" font-size="10">alg {kid.algorithm}'
            f"{' (not yet created)' if future else ''}</text>"
        )
        for row, name in enumerate(ROWS):
            parts.append(
                f'<text class="row-label" x="{left - 6}" y="{y0 + row * (bar + 1) + bar - 2}" '
                f'text-anchor="end" font-size="9" fill="#444">{name.upper()}</text>'
            )
        for b_start, b_end, row, s in bars[kid]:
            if b_end <= start or b_start >= until:
                continue
            bx, w = x(b_start), max(0.5, x(b_end) - x(b_start))
            by = y0 + row * (bar + 1)
            title = f"{ROWS[row].upper()} {s.value} from {format_bind_time(b_start)}"
            attrs = (
                f'x="{bx:.1f}" y="{by}" width="{w:.1f}" height="{bar}" '
                f'data-record="{ROWS[row].upper()}" data-state="{s.value}" '
                f'data-start="{b_start}" data-end="{b_end}"'
            )
            parts.append(
                f'<rect class="bar" {attrs} fill="{COLOURS.get(s, "#ffffff")}">'
                f"<title>{title}</title></rect>"
            )
            if future:
                parts.append(f'<rect class="hatch" {attrs} fill="url(#future)"/>')
            if w > len(s.value) * 5 + 6:
                ink = "#ffffff" if s is RecordState.OMNIPRESENT else "#333333"
                parts.append(
                    f'<text x="{bx + 3:.1f}" y="{by + bar - 2}" font-size="8" fill="{ink}" '
                    f'pointer-events="none">{s.value}</text>'
                )
        ds_y = y0 + ROWS.index("ds") * (bar + 1) + bar / 2
        for at, mk, kind, label in marks:
            if mk == kid and start <= at <= until:
                shape = _MARKER_SHAPES[kind][0]
                title = f"<title>{label}: {format_bind_time(at)}</title></{shape}>"
                # a triangle points down at the DS bar, a dot sits on it
                my = ds_y - 3 if _MARKER_SHAPES[kind][0] == "polygon" else ds_y
                parts.append(_marker(kind, x(at), my, f' data-epoch="{at}">{title}'))
        parts.append("</g>")
    if now is not None and start <= now <= until:
        nx = x(now)
        parts.append(
            f'<line class="now" data-epoch="{now}" x1="{nx:.1f}" y1="{axis_y}" x2="{nx:.1f}" '
            f'y2="{lanes_end}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="4 2"/>'
        )
        parts.append(
            f'<text class="now-label" x="{nx + 3:.1f}" y="{axis_y - 19}" fill="#c0392b" '
            'font-size="10">now</text>'
        )
    parts.append(
        f'<g class="legend"><rect class="legend-box" x="{leg_x}" y="{leg_y}" '
        f'width="{width - 2 * leg_x}" height="{leg_h}" fill="#fafafa" stroke="#cccccc"/>'
    )
    parts += legend
    parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
