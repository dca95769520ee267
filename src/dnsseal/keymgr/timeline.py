"""The what-if timeline: the engine's steps turned into dated events an operator reads,
as text rows, JSON-ready dicts, or an SVG with one lane per key."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from dnsseal.durations import format_bind_time, format_human_time
from dnsseal.keymgr.simulate import Timeline
from dnsseal.keys.model import KeyId, RecordState

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
ROWS = ("dnskey", "zrrsig", "krrsig", "ds")


def svg(tl: Timeline, width: int = 1000) -> str:
    """One lane per key; four thin bars (DNSKEY, ZRRSIG, KRRSIG, DS) coloured by state."""
    span = max(1, tl.until - tl.start)
    order: list[KeyId] = []
    states: dict[KeyId, list[tuple[int, tuple[RecordState | None, ...]]]] = {}
    for plan in tl.plans:
        for r in plan.keys:
            st = r.key.state
            if st is None:
                continue
            now = tuple(getattr(st, a) for a in ROWS)
            hist = states.setdefault(r.key.id, [])
            if r.key.id not in order:
                order.append(r.key.id)
            if not hist or hist[-1][1] != now:
                hist.append((plan.now, now))
    left, lane, bar = 150, 44, 9
    height = 40 + lane * len(order) + 30

    def x(t: int) -> float:
        return left + (max(tl.start, min(t, tl.until)) - tl.start) * (width - left - 10) / span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="4" y="16">{escape(tl.policy.name)}: {format_bind_time(tl.start)} .. '
        f"{format_bind_time(tl.until)}</text>",
    ]
    for n, kid in enumerate(order):
        y0 = 30 + n * lane
        key = tl.keys[kid]
        parts.append(
            f'<text x="4" y="{y0 + 20}">{key.tag} {key.role.upper()} alg {kid.algorithm}</text>'
        )
        hist = states[kid]
        for i, (t, row_states) in enumerate(hist):
            end = hist[i + 1][0] if i + 1 < len(hist) else tl.until
            w = max(0.5, x(end) - x(t))
            for row, s in enumerate(row_states):
                if s is None:
                    continue
                colour = COLOURS.get(s, "#ffffff")
                parts.append(
                    f'<rect x="{x(t):.1f}" y="{y0 + row * bar}" width="{w:.1f}" '
                    f'height="{bar - 1}" fill="{colour}"><title>{ROWS[row].upper()} {s.value} from '
                    f"{format_bind_time(t)}</title></rect>"
                )
    ly = height - 12
    for i, (s, colour) in enumerate(COLOURS.items()):
        parts.append(
            f'<rect x="{left + i * 120}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
        )
        parts.append(f'<text x="{left + i * 120 + 14}" y="{ly}">{s.value}</text>')
    parts.append(f'<text x="4" y="{ly}">bars: DNSKEY ZRRSIG KRRSIG DS</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
