"""What the running server shows about itself, as JSON-ready data: one function per view.

The same functions feed ``dnsseal ctl --json`` (the control socket), the HTTP API
(``/api/v1/...``), the Prometheus metrics and the status page, so the four never disagree.
Every time is an absolute POSIX timestamp (seconds); people-readable forms are added next to
it (``*-text``) where a person reads the output.

A zone is in one of three conditions (:func:`condition`):

* ``ok``: served, signed (or presigned) and nothing waits on someone else;
* ``waiting``: a key waits for the parent's DS to appear or go (an operator may have to
  submit or withdraw it);
* ``problem``: not served, the source or the signing failed, or its signatures expire
  before the next re-signing can refresh them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dnsseal.findings import Severity
from dnsseal.keys import algorithms
from dnsseal.keys.model import Key
from dnsseal.proto.snapshot import (
    ZoneSnapshot,
    name_wire_len,
    rrset_wires,
    wire_expirations,
)
from dnsseal.server.checkds import waiting_keys
from dnsseal.server.dnssecctl import server_hint
from dnsseal.server.zones import ZoneState
from dnsseal.storage.journal import AuditEvent, Journal

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

OK, WAITING, PROBLEM = "ok", "waiting", "problem"
CONDITIONS = (OK, WAITING, PROBLEM)

# Why a key waits (the ``reason`` of ``dnsseal_key_waiting``): on the parent to publish
# or withdraw its DS, or on caches (TTLs and propagation delays: time alone fixes those).
DS_PUBLISH, DS_WITHDRAW, PROPAGATION = "ds-publish", "ds-withdraw", "propagation"

TIMING_FIELDS = (
    "created",
    "publish",
    "activate",
    "inactive",
    "delete",
    "ds_publish",
    "ds_delete",
    "sync_publish",
    "sync_delete",
)
STATE_FIELDS = ("goal", "dnskey", "krrsig", "zrrsig", "ds")

# checkds writes one line per server asked: "LABEL: DS expected for [TAGS], seen: TAGS"
_PARENT_LINE = re.compile(
    r"^(?P<agent>.*): DS expected for (?P<want>\[[^\]]*\]|none), seen: (?P<seen>.*)$"
)


# Presigned zones: the earliest RRSIG expiration of the version served, per zone, computed
# once per version (off the event loop, see :func:`fill_presigned_horizons`).
# zone -> ((id, serial) of the snapshot, horizon)
_PRESIGNED: dict[str, tuple[tuple[int, int], int | None]] = {}


def snapshot_horizon(snap: ZoneSnapshot) -> int | None:
    """The earliest RRSIG expiration in ``snap`` (None: it has no signature).  Walks the
    whole zone: blocking.  Reads the expirations from the stored wire: parsing every RRSIG
    into dnspython objects (kept by the snapshot) cost a 100k-name zone ~340 MiB."""
    earliest: int | None = None
    for nodes in (snap.nodes, snap.nsec3_nodes):
        for node in nodes.values():
            owner = name_wire_len(node.name)
            # (the wires, not node.sigs.values(): that would make and keep an RRset object
            # per signed RRset, ~100 MiB for 100k names)
            for _, wire in rrset_wires(node.sigs):
                for exp in wire_expirations(wire, owner):
                    if earliest is None or exp < earliest:
                        earliest = exp
    return earliest


def presigned_snapshots(server: RunningServer) -> list[tuple[str, ZoneSnapshot]]:
    """The presigned zones' versions served whose horizon is not known yet (call on the
    event loop; the snapshots are immutable, the walk can then run in a thread)."""
    out = []
    for s in server.zones.values():
        if s.inline is None and s.served is not None:
            snap = s.served.snapshot
            known = _PRESIGNED.get(s.name)
            if known is None or known[0] != (id(snap), snap.serial):
                out.append((s.name, snap))
    return out


def fill_presigned_horizons(todo: Sequence[tuple[str, ZoneSnapshot]]) -> None:
    for name, snap in todo:
        _PRESIGNED[name] = ((id(snap), snap.serial), snapshot_horizon(snap))


def sig_horizon(state: ZoneState) -> int | None:
    """The earliest signature expiration of the version served: the signer's for a zone
    signed here, the walked one for a presigned zone (None until walked)."""
    if state.inline is not None:
        return state.inline.sig_horizon
    known = _PRESIGNED.get(state.name)
    if state.served is None or known is None:
        return None
    snap = state.served.snapshot
    if known[0] != (id(snap), snap.serial):
        return None
    return known[1]


def _text(t: int | None) -> str | None:
    return iso_time(t) if t is not None else None


@dataclass(frozen=True, slots=True)
class ParentView:
    """What one parental agent (or parent name server) showed at the last checkds."""

    agent: str
    expected: tuple[int, ...]
    seen: tuple[int, ...] | None  # None: it did not answer

    @property
    def match(self) -> bool:
        return self.seen is not None and set(self.seen) == set(self.expected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "expected": list(self.expected),
            "seen": None if self.seen is None else list(self.seen),
            "match": self.match,
        }


def _tags(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in re.findall(r"\d+", text))


def parent_views(state: ZoneState) -> list[ParentView]:
    """Per agent asked at the last checkds: the DS key tags expected and seen."""
    out = []
    for line in state.parent_log:
        m = _PARENT_LINE.match(line)
        if m is None:
            continue
        seen_text = m["seen"]
        seen = None if seen_text == "no answer" else _tags(seen_text)
        out.append(ParentView(m["agent"], _tags(m["want"]), seen))
    return out


def key_waiting(key: Key, waiting: str | None) -> str | None:
    """The reason label for a key that waits (None: it does not)."""
    w = waiting_keys([key])
    if w.publish:
        return DS_PUBLISH
    if w.withdraw:
        return DS_WITHDRAW
    return PROPAGATION if waiting else None


def key_view(key: Key, waiting: str | None, missing_private: bool = False) -> dict[str, Any]:
    """One key: identity, role, the goal and the four record states, every timing, and
    what it waits for."""
    alg = algorithms.ALGORITHMS.get(key.algorithm)
    st = key.state
    states = {
        f: (getattr(st, f).value if st is not None and getattr(st, f) is not None else None)
        for f in STATE_FIELDS
    }
    timings = {f: getattr(key.timings, f) for f in TIMING_FIELDS}
    reason = key_waiting(key, waiting)
    return {
        "tag": key.tag,
        "role": key.role,
        "algorithm": key.algorithm,
        "algorithm-name": alg.mnemonic if alg else str(key.algorithm),
        "file": key.basename,
        "states": states,
        "timings": timings,
        "ds-change": st.ds_change if st is not None else None,
        "waiting": server_hint(waiting) if waiting else None,
        "waiting-reason": reason,
        "private-key-missing": missing_private,
    }


def keys_view(server: RunningServer, zone: str) -> dict[str, Any]:
    """``/api/v1/zones/<zone>/keys``: the zone's keys after the key manager's last step."""
    state = server.find_state(zone)
    out: dict[str, Any] = {"zone": state.name, "keys": []}
    inline = state.inline
    if inline is None or inline.plan is None:
        return out
    out["policy"] = inline.policy.name
    out["keys"] = [
        key_view(r.key, r.waiting, r.missing_private) for r in inline.plan.keys if not r.purge
    ]
    out["parent"] = [p.to_dict() for p in parent_views(state)]
    return out


def expiring(state: ZoneState, now: int) -> bool:
    """Do the zone's signatures expire before (or within the refresh margin of) the next
    re-signing?  True also when they expired already."""
    inline = state.inline
    if inline is None or inline.sig_horizon is None:
        return False
    if inline.sig_horizon <= now:
        return True
    resign = inline.next_resign
    return resign is not None and resign >= inline.sig_horizon


def problems(state: ZoneState, now: int) -> list[str]:
    """Why the zone is in trouble (empty: it is not)."""
    out = []
    if state.error:
        out.append(state.error)
    if state.served is None and not state.error:
        out.append("not served")
    inline = state.inline
    if inline is not None:
        if inline.source_problem:
            out.append(f"source not taken: {inline.source_problem}")
        if inline.plan is not None:
            out += [f.message for f in inline.plan.problems if f.severity is Severity.ERROR]
        if expiring(state, now):
            out.append(f"signatures expire at {_text(inline.sig_horizon)}, before the next signing")
    return out


def waiting_on_parent(state: ZoneState) -> list[dict[str, Any]]:
    """Keys waiting for the parent's DS: tag, which way, since when (the DS state's last
    change), what to do."""
    inline = state.inline
    if inline is None or inline.plan is None:
        return []
    out = []
    for r in inline.plan.keys:
        if r.purge:
            continue
        reason = key_waiting(r.key, r.waiting)
        if reason in (DS_PUBLISH, DS_WITHDRAW):
            st = r.key.state
            out.append(
                {
                    "tag": r.key.tag,
                    "reason": reason,
                    "since": st.ds_change if st is not None else None,
                    "waiting": server_hint(r.waiting) if r.waiting else None,
                }
            )
    return out


def condition(state: ZoneState, now: int) -> str:
    if problems(state, now):
        return PROBLEM
    if waiting_on_parent(state):
        return WAITING
    return OK


def zone_summary(state: ZoneState, now: int) -> dict[str, Any]:
    """One zone in the zone list: its condition at a glance and its next events."""
    inline = state.inline
    plan = inline.plan if inline is not None else None
    snap = state.served.snapshot if state.served is not None else None
    next_key = plan.next_event if plan is not None else None
    next_resign = inline.next_resign if inline is not None else None
    horizon = sig_horizon(state)
    return {
        "zone": state.name,
        "condition": condition(state, now),
        "problems": problems(state, now),
        "waiting-on-parent": waiting_on_parent(state),
        "serial": snap.serial if snap is not None else None,
        "signed-by-server": inline is not None,
        "presigned": state.config.presigned,
        "dnssec-policy": state.config.policy,
        "loaded-at": state.loaded_at or None,
        "last-signed-time": inline.last_signed if inline is not None else None,
        "next-resign-time": next_resign,
        "next-key-event-time": next_key,
        "rrsig-earliest-expiry-time": horizon,
        "key-count": len([r for r in plan.keys if not r.purge]) if plan is not None else 0,
        "pending-step": list(plan.pending) if plan is not None else [],  # manual-mode
    }


def zones_view(server: RunningServer, now: int) -> dict[str, Any]:
    """``/api/v1/zones`` and ``ctl zones``: every configured zone, in name order."""
    zones = [zone_summary(s, now) for s in sorted(server.zones.values(), key=lambda z: z.name)]
    return {"now": now, "zones": zones}


def _keys_brief(state: ZoneState) -> list[dict[str, Any]]:
    inline = state.inline
    if inline is None:
        return []
    keys = sorted(inline.keys, key=lambda k: (k.role, k.tag))
    return [{"tag": k.tag, "role": k.role} for k in keys]


def _transfer(state: ZoneState) -> dict[str, Any]:
    """The transfer side of a zone with primaries (empty for the others)."""
    sec = state.secondary
    if sec is None:
        return {}
    st = sec.status
    return {
        "primaries": [str(p) for p in state.config.primaries],
        "primary-serial": st.primary_serial,
        "primary": st.primary,
        "transferred-serial": sec.copy.soa().serial if sec.copy is not None else None,
        "last-refresh-check": st.last_check,
        "last-transfer": st.last_transfer,
        "last-transfer-result": st.last_result,
        "next-refresh": st.next_refresh,
        "expired": st.expired,
    }


def next_step(state: ZoneState, now: int) -> str:
    """What the operator must do next for this zone, in one sentence (or that nothing is
    needed, and when the server acts next on its own)."""
    zone = state.name.rstrip(".") or "."
    inline = state.inline
    if state.frozen:
        return f"edit {state.config.file}, then `dnsseal ctl thaw {zone}` (updates are held)"
    if inline is not None and inline.source_problem:
        return (
            f"fix {state.config.file} ({inline.source_problem}), then `dnsseal ctl reload {zone}`"
        )
    trouble = problems(state, now)
    if trouble:
        if state.served is None and state.config.primaries:
            return f"check that a primary answers ({trouble[0]}); `dnsseal ctl retransfer {zone}`"
        return f"fix: {trouble[0]}; then `dnsseal ctl reload {zone}`"
    for w in waiting_on_parent(state):
        tag = w["tag"]
        if w["reason"] == DS_PUBLISH:
            if state.config.checkds == "yes":
                return f"submit DS {tag} to the parent; checkds will see it"
            return (
                f"submit DS {tag} to the parent, then "
                f"`dnsseal ctl dnssec -checkds -key {tag} published {zone}`"
            )
        if state.config.checkds == "yes":
            return f"remove DS {tag} from the parent; checkds will see it"
        return (
            f"remove DS {tag} from the parent, then "
            f"`dnsseal ctl dnssec -checkds -key {tag} withdrawn {zone}`"
        )
    if inline is not None and inline.plan is not None and inline.plan.pending:  # manual-mode
        return f"approve the key manager's pending step: `dnsseal ctl dnssec -step {zone}`"
    if inline is not None and inline.offline.running_out:
        return f"{inline.offline.status} (`dnsseal ksr import`, then `dnsseal ctl loadkeys {zone}`)"
    plan = inline.plan if inline is not None else None
    if plan is not None and plan.next_event is not None:
        return f"nothing; the next key event is at {iso_time(plan.next_event)}"
    return "nothing"


def zone_view(server: RunningServer, zone: str, now: int) -> dict[str, Any]:
    """``/api/v1/zones/<zone>`` and ``ctl zone-status``: the zone's summary, its source,
    what is served (serial, names, denial, versions kept for IXFR), signing, transfers,
    NOTIFY, the parent per agent and the operator's next step."""
    state = server.find_state(zone)
    out = zone_summary(state, now)
    snap = state.served.snapshot if state.served is not None else None
    out.update(
        {
            "file": str(state.config.file),
            "error": state.error,
            "frozen": state.frozen,
            "names": len(snap.nodes) if snap is not None else None,
            "denial": (
                ("NSEC3" if snap.nsec3 else ("NSEC" if snap.nsec_names else None))
                if snap is not None
                else None
            ),
            "ixfr-versions": (
                [s.serial for s in state.served.history] if state.served is not None else []
            ),
            "also-notify": [str(e) for e in state.config.also_notify],
            "last-notify": list(state.notify_log),
        }
    )
    inline = state.inline
    if inline is not None:
        plan = inline.plan
        out.update(
            {
                "source-serial": inline.unsigned.soa().serial if inline.unsigned else None,
                "source-problem": inline.source_problem,
                # offline-KSK zones: the signed key response's state (None otherwise)
                "offline-ksk": inline.offline.status,
                "signed-serial": inline.signed_serial,
                "last-signed": inline.last_signed,
                "next-signing": inline.next_resign,
                "next-key-event": plan.next_event if plan else None,
                "signature-expiry-horizon": inline.sig_horizon,
                "keys": _keys_brief(state),
                "waiting": [
                    {"tag": r.key.tag, "waiting": server_hint(r.waiting)}
                    for r in sorted(plan.keys if plan else (), key=lambda r: r.key.tag)
                    if r.waiting
                ],
            }
        )
    out.update(_transfer(state))
    out["parent"] = [p.to_dict() for p in parent_views(state)]
    out["next-step"] = next_step(state, now)
    out["now"] = now
    return out


def status_view(server: RunningServer, now: int) -> dict[str, Any]:
    """``ctl status``: the server as a whole: start time, uptime, zones by condition,
    listeners, clients and query counters (counts since the start)."""
    st = server.status()
    started = server.started_at
    out: dict[str, Any] = {
        "now": now,
        "started-at": started,
        "uptime-seconds": max(now - started, 0),
        "zones": st["zones"],
        "zones-configured": len(server.zones),
        "zone-conditions": state_counts(server, now),
        "zones-with-errors": st["zones-with-errors"],
    }
    out.update({k: v for k, v in st.items() if k not in out and k != "uptime"})
    return out


def dnssec_status_view(server: RunningServer, zone: str, now: int) -> dict[str, Any]:
    """``ctl dnssec -status ZONE --json``: the policy, every key (states, timings, what it
    waits for), the CDS/CDNSKEY published, the key manager's findings, the parent and the
    next key event."""
    state = server.find_state(zone)
    inline = state.inline
    if inline is None:
        raise LookupError(f"{state.name}: not signed by this server (no dnssec-policy)")
    plan = inline.plan
    keys = keys_view(server, zone)
    return {
        "zone": state.name,
        "dnssec-policy": inline.policy.name,
        "now": now,
        "keys": sorted(keys["keys"], key=lambda k: (k["role"], k["tag"])),
        "cds": sorted(k.tag for k in plan.cds) if plan is not None else [],
        "cds-delete": bool(plan.cds_delete) if plan is not None else False,
        "problems": [server_hint(str(f)) for f in plan.problems] if plan is not None else [],
        "parent": keys.get("parent", []),
        "next-key-event-time": plan.next_event if plan is not None else None,
        "next-step": next_step(state, now),
    }


# -- times for people and for `ctl --json` ----------------------------------------------

# Keys whose integer value is a point in time (besides the "-time" and "-at" suffixes).
TIME_KEYS = frozenset(
    {
        "now",
        "since",
        "time",
        "ds-change",
        "last-signed",
        "next-signing",
        "next-key-event",
        "signature-expiry-horizon",
        "last-refresh-check",
        "last-transfer",
        "next-refresh",
        *TIMING_FIELDS,
    }
)


def iso_time(t: int) -> str:
    """``t`` (POSIX seconds) as ISO 8601 in UTC: ``2026-12-07T10:35:47Z``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_time_key(key: str) -> bool:
    return key in TIME_KEYS or key.endswith(("-time", "-at"))


def iso_times(doc: Any) -> Any:
    """``doc`` with every point in time (an integer under a time key, see
    :data:`TIME_KEYS`) given as ISO 8601 UTC text; the rest as it is.  What the HTTP API
    and ``ctl --json`` return (the metrics keep POSIX seconds, for alert arithmetic)."""
    if isinstance(doc, dict):
        return {
            k: (
                iso_time(v)
                if is_time_key(k) and isinstance(v, int) and not isinstance(v, bool)
                else iso_times(v)
            )
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [iso_times(v) for v in doc]
    return doc


def audit_entry(e: AuditEvent) -> dict[str, Any]:
    return {
        "time": e.time,
        "time-text": iso_time(e.time),
        "zone": e.zone,
        "key": e.key,
        "event": e.event,
        "message": e.message,
    }


def audit_view(
    server: RunningServer, zone: str | None = None, since: int | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """``/api/v1/audit`` and ``ctl audit``: the audit log, oldest first (of ``zone``, from
    ``since``, the latest ``limit``).  Blocking (SQLite): call it in a thread."""
    state_dir = server.config.state_dir
    if state_dir is None:
        return []
    name = server.find_state(zone).name if zone is not None else None
    with Journal(state_dir) as j:
        events = j.audit_log(name, limit=limit, since=since)
    return [audit_entry(e) for e in events]


def audit_lines(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The audit log for people: time, zone, key, event, message."""
    return [
        f"{e['time-text']}  {e['zone']}  {e['key']}  {e['event']}: {e['message']}" for e in entries
    ]


def state_counts(server: RunningServer, now: int) -> dict[str, int]:
    counts = dict.fromkeys(CONDITIONS, 0)
    for s in server.zones.values():
        counts[condition(s, now)] += 1
    return counts


def zones_lines(doc: dict[str, Any]) -> list[str]:
    """``ctl zones`` for people: one line per zone, then what is wrong or awaited."""
    out = []
    for z in doc["zones"]:
        cond = {OK: "ok", WAITING: "waiting on parent", PROBLEM: "PROBLEM"}[z["condition"]]
        serial = z["serial"] if z["serial"] is not None else "-"
        expiry = _text(z["rrsig-earliest-expiry-time"]) or "-"
        out.append(f"{z['zone']}  {cond}  serial {serial}  signatures until {expiry}")
        out += [f"  problem: {p}" for p in z["problems"]]
        out += [f"  key {w['tag']}: {w['waiting'] or w['reason']}" for w in z["waiting-on-parent"]]
    return out


def keys_lines(doc: dict[str, Any]) -> list[str]:
    """``ctl keys ZONE`` for people: one line per key with its states, then why it waits."""
    out = []
    for k in doc["keys"]:
        st = k["states"]
        states = " ".join(f"{f}={st[f]}" for f in STATE_FIELDS if st[f] is not None)
        out.append(f"{k['tag']} {k['role'].upper()} {k['algorithm-name']}  {states}")
        if k["waiting"]:
            out.append(f"  waiting: {k['waiting']}")
    for p in doc.get("parent", []):
        seen = "no answer" if p["seen"] is None else (", ".join(map(str, p["seen"])) or "none")
        out.append(f"{p['agent']}: DS expected {p['expected'] or 'none'}, seen {seen}")
    return out or [f"{doc['zone']}: no keys (not signed here)"]
