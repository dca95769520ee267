"""``/metrics``: the server's state and counters in the Prometheus text format (0.0.4).

Written by hand (:mod:`dnsseal.exposition`, shared with the resolver's ``/metrics``, says
why): the authoritative server keeps to its four dependencies.  The tests parse the output
with ``prometheus_client``'s own parser (the ``test`` extra).

Times are absolute POSIX timestamps (``*_timestamp_seconds``), never "days left": an alert
rule compares them with ``time()``.  The values come from :mod:`dnsseal.server.views`, the
same functions that feed the JSON API and ``dnsseal ctl``.

The counters live in :mod:`dnsseal.server.counters`: event counters (:class:`Counters`),
incremented by the main process where the event happens, and the query counters of every
process (:class:`~dnsseal.server.counters.QueryCounts`), one shared memory slot per process,
the C datagram loop adding to its words from C; a scrape sums the slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dns.rcode
import dns.rdatatype

from dnsseal import clock
from dnsseal.exposition import CONTENT_TYPE, Exposition, process_families
from dnsseal.server import counters, views
from dnsseal.server.checkds import waiting_keys
from dnsseal.server.counters import COUNTERS, EVENT_METRICS, Counters

__all__ = ["CONTENT_TYPE", "COUNTERS", "EVENT_METRICS", "Counters", "Exposition", "render"]

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer


def _zone_gauges(ex: Exposition, server: RunningServer, now: int) -> None:
    states = sorted(server.zones.values(), key=lambda s: s.name)
    serial, expiry, key_event, resign, load_errors, cond = [], [], [], [], [], []
    key_info, key_wait, parent, wait_since, refresh, wait_limit = [], [], [], [], [], []
    pending = []
    for s in states:
        z = {"zone": s.name}
        if s.served is not None:
            serial.append((z, s.served.snapshot.serial))
        load_errors.append((z, 1 if s.error else 0))
        c = views.condition(s, now)
        cond += [({"zone": s.name, "condition": k}, 1 if k == c else 0) for k in views.CONDITIONS]
        horizon = views.sig_horizon(s)
        if horizon is not None:
            expiry.append((z, horizon))
        inline = s.inline
        if inline is None:
            continue
        pol = inline.policy
        refresh.append((z, pol.signatures_refresh))
        wait_limit.append((z, pol.parent_propagation_delay + pol.parent_ds_ttl))
        if inline.next_resign is not None:
            resign.append((z, inline.next_resign))
        plan = inline.plan
        if plan is None:
            continue
        if plan.next_event is not None:
            key_event.append((z, plan.next_event))
        if pol.manual_mode:
            pending.append((z, 1 if plan.pending else 0))
        for r in plan.keys:
            if r.purge:
                continue
            k = r.key
            st = k.state

            def val(f: str, st: object = st) -> str:
                v = getattr(st, f, None) if st is not None else None
                return "" if v is None else str(v.value)

            key_info.append(
                (
                    {
                        "zone": s.name,
                        "tag": str(k.tag),
                        "role": k.role,
                        "algorithm": str(k.algorithm),
                        "goal": val("goal"),
                        "dnskey": val("dnskey"),
                        "krrsig": val("krrsig"),
                        "zrrsig": val("zrrsig"),
                        "ds": val("ds"),
                    },
                    1,
                )
            )
            reason = views.key_waiting(k, r.waiting)
            if reason is not None:
                labels = {"zone": s.name, "tag": str(k.tag), "reason": reason}
                key_wait.append((labels, 1))
                if reason != views.PROPAGATION and st is not None and st.ds_change is not None:
                    wait_since.append((labels, st.ds_change))
        if waiting_keys(inline.keys) or s.parent_log:
            for p in views.parent_views(s):
                parent.append(({"zone": s.name, "agent": p.agent}, 1 if p.match else 0))
    ex.family("dnsseal_zone_serial", "gauge", "SOA serial of the version served.", serial)
    ex.family(
        "dnsseal_zone_rrsig_earliest_expiry_timestamp_seconds",
        "gauge",
        "When the first signature of the served version expires.",
        expiry,
    )
    ex.family(
        "dnsseal_zone_next_key_event_timestamp_seconds",
        "gauge",
        "When the key manager runs next for the zone (its next key state change).",
        key_event,
    )
    ex.family(
        "dnsseal_zone_next_resign_timestamp_seconds",
        "gauge",
        "When the zone's signatures are refreshed next.",
        resign,
    )
    ex.family(
        "dnsseal_zone_load_errors",
        "gauge",
        "1 while the zone's last load, transfer or signing failed (it keeps its old version).",
        load_errors,
    )
    ex.family(
        "dnsseal_zone_condition",
        "gauge",
        "1 for the zone's condition now: ok, waiting (on the parent's DS) or problem.",
        cond,
    )
    ex.family(
        "dnsseal_key_info",
        "gauge",
        "One series per key with its role, algorithm, goal and record states (value 1).",
        key_info,
    )
    ex.family(
        "dnsseal_key_waiting",
        "gauge",
        "1 while the key waits: on the parent (ds-publish, ds-withdraw) or on caches "
        "(propagation).",
        key_wait,
    )
    ex.family(
        "dnsseal_key_waiting_since_timestamp_seconds",
        "gauge",
        "Since when a key waits on the parent (its DS state's last change).",
        wait_since,
    )
    ex.family(
        "dnsseal_zone_signatures_refresh_seconds",
        "gauge",
        "The zone's signatures-refresh: signatures are renewed this long before they expire.",
        refresh,
    )
    ex.family(
        "dnsseal_zone_parent_wait_limit_seconds",
        "gauge",
        "parent-propagation-delay + parent-ds-ttl: a key waiting on the parent longer is late.",
        wait_limit,
    )
    ex.family(
        "dnsseal_zone_pending_step",
        "gauge",
        "manual-mode zones: 1 while the key manager's next step waits for the operator "
        "(`dnsseal ctl dnssec -step ZONE`).",
        pending,
    )
    ex.family(
        "dnsseal_parent_ds_match",
        "gauge",
        "1 when the agent's DS set (key tags) is the one expected at the last checkds.",
        parent,
    )


def _qtype_label(row: int) -> str:
    if row == counters.QT_OTHER:
        return "other"
    if row == counters.QT_NONE:
        return "none"
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(row))


def _rcode_label(column: int) -> str:
    return "dropped" if column == counters.RC_DROPPED else counters.rcode_text(column)


def _query_counters(ex: Exposition, server: RunningServer) -> None:
    table, truncated = counters.QUERIES.totals()
    ex.family(
        "dnsseal_queries_total",
        "counter",
        "Queries received, by transport, question type and the response's rcode (every "
        'process and every answer path; rcode "dropped": no response sent, qtype "none": '
        'no question, "other": a type above 263).',
        [
            ({"proto": proto, "qtype": _qtype_label(qt), "rcode": _rcode_label(rc)}, n)
            for (proto, qt, rc), n in sorted(table.items())
        ],
    )
    ex.family(
        "dnsseal_responses_truncated_total",
        "counter",
        "Responses sent with the TC bit (too large for UDP, or slipped by rate limiting).",
        [({}, truncated)],
    )
    ex.family(
        "dnsseal_queries_cached_total",
        "counter",
        "Queries answered from the response cache of the general path (main process only).",
        [({}, server.engine.stats.cache_hits)],
    )


def _process(ex: Exposition, server: RunningServer, now: int) -> None:
    process_families(ex, server.started_at)
    ex.family(
        "dnsseal_worker_processes",
        "gauge",
        "Processes answering on the ports (dnsseal_queries_total sums them all).",
        [({}, 1 + len(server.worker_pids))],
    )
    ex.family("dnsseal_reloads_total", "counter", "Configuration reloads.", [({}, server.reloads)])


def render(server: RunningServer, now: int | None = None) -> str:
    """One scrape of ``server`` (``now``: the time the views are computed at)."""
    when = clock.now() if now is None else now
    counters.drain()  # the workers' events up to now
    ex = Exposition()
    _zone_gauges(ex, server, when)
    for name, (kind, help_text) in EVENT_METRICS.items():
        ex.family(name, kind, help_text, COUNTERS.samples(name))
    _query_counters(ex, server)
    _process(ex, server, when)
    return ex.text()
