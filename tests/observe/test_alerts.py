"""Alerts on accelerated time: a KSK roll whose new DS reaches the parent late.

A parent and a child zone are served by one dnsseal; the child's parental agent is the
server itself (checkds yes), and the test plays a slow registrar that copies the child's
CDS into the parent's DS by dynamic update only when told to.  The "waiting on parent" alert
(``parent-slow``) must fire once while the DS is missing and clear once the DS is there; each
alert goes to both the command and the webhook, once per condition, and to the audit log.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.message
import dns.query
import dns.rdatatype
import pytest

from automation.conftest import ctl, zone_text
from automation.test_e2e import CHILD, PARENT, registrar_step
from conftest import free_port
from dnsseal.server.alerts import zone_conditions
from dnsseal.server.views import parent_views
from dnsseal.server.zones import ZoneState
from dnsseal.storage.serverconfig import ZoneConfig

from .conftest import observed, wait_until


@contextmanager
def webhook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """An HTTP server on loopback collecting the JSON bodies POSTed to it."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], got
    finally:
        srv.shutdown()
        srv.server_close()


def read_alerts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def find(alerts: list[dict[str, Any]], alert: str, status: str, key: int | None) -> list[int]:
    return [
        i
        for i, a in enumerate(alerts)
        if a["alert"] == alert and a["status"] == status and a["key"] == key
        and a["zone"] == CHILD
    ]  # fmt: skip


def ksk_tags(status: str) -> list[int]:
    return [int(t) for t in re.findall(r"key: (\d+) \(\w+\), KSK", status)]


def cds_texts(port: int) -> set[str]:
    q = dns.message.make_query(CHILD, "CDS")
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
    return {rd.to_text().upper() for rr in r.answer if rr.rdtype == dns.rdatatype.CDS for rd in rr}


@pytest.mark.slow
def test_waiting_on_parent_alert_fires_and_clears_when_the_ds_appears(tmp_path: Path) -> None:
    sink = tmp_path / "alerts.jsonl"
    script = tmp_path / "alert.sh"
    script.write_text(f'#!/bin/sh\n{{ cat; echo; }} >> "{sink}"\n')
    script.chmod(0o755)
    parent_text = zone_text(PARENT, extra="kid NS ns.kid\nns.kid A 127.0.0.1\n")
    with webhook() as (hook_port, posted):
        port = free_port()
        extra = f'[alerts]\ncommand = ["{script}"]\nwebhook = "http://127.0.0.1:{hook_port}/x"\n'
        with observed(
            tmp_path,
            {CHILD: zone_text(CHILD), PARENT: parent_text},
            extra=extra,
            port=port,
            policies={PARENT: "fast", CHILD: "fast"},
            zone_options={
                PARENT: 'allow-update = ["key ddns"]',
                CHILD: f'parental-agents = ["127.0.0.1@{port}"]\ncheckds = "yes"',
            },
        ) as s:
            # 1. the first KSK: its DS is ready for the parent; the registrar copies it
            status = wait_until(
                lambda: (x := ctl(tmp_path, "dnssec", "-status", CHILD)) and "not yet seen" in x
                and x, 30, "the first KSK to wait for its DS")  # fmt: skip
            (first,) = ksk_tags(status)
            wait_until(lambda: find(read_alerts(sink), "ds-ready", "firing", first), 15, "ds-ready")
            ready = read_alerts(sink)[find(read_alerts(sink), "ds-ready", "firing", first)[0]]
            ds_text = re.search(r"IN DS ([^`]+)`", ready["next_step"])
            assert ds_text is not None and ds_text.group(1).upper() in cds_texts(s.port)
            registrar_step(s.port)
            wait_until(lambda: find(read_alerts(sink), "ds-ready", "resolved", first), 30,
                       "ds-ready to clear once the parent has the DS")  # fmt: skip

            # 2. roll the KSK; the registrar is late this time
            ctl(tmp_path, "dnssec", "-rollover", "-key", str(first), CHILD)

            def new_ksk() -> int | None:
                tags = ksk_tags(ctl(tmp_path, "dnssec", "-status", CHILD))
                return next((t for t in tags if t != first), None)

            second = wait_until(new_ksk, 30, "the successor KSK")
            wait_until(
                lambda: find(read_alerts(sink), "parent-slow", "firing", second),
                40,
                "the waiting-on-parent alert for the new KSK",
            )
            m = s.metrics()
            assert (
                f'dnsseal_key_waiting{{zone="{CHILD}",tag="{second}",reason="ds-publish"}} 1' in m
            )
            zones = {z["zone"]: z for z in s.json("/api/v1/zones")["zones"]}
            assert zones[CHILD]["condition"] == "waiting"
            time.sleep(3)  # once per condition: no repeat while it holds
            assert len(find(read_alerts(sink), "parent-slow", "firing", second)) == 1
            assert not find(read_alerts(sink), "parent-slow", "resolved", second)

            # 3. the DS appears at the parent: checkds sees it and the alert clears
            registrar_step(s.port)
            wait_until(
                lambda: find(read_alerts(sink), "parent-slow", "resolved", second),
                30,
                "the alert to clear once the DS is at the parent",
            )
            assert f'dnsseal_parent_ds_match{{zone="{CHILD}",agent="parental agent' in s.metrics()
            audit = s.json(f"/api/v1/audit?zone={CHILD}")["audit"]
            msgs = [e["message"] for e in audit if e["event"] == "alert"]
            assert any(m.startswith("parent-slow raised: key " + str(second)) for m in msgs)
            assert "parent-slow cleared" in msgs
            # the DS appearing at the agent is an audit row of its own
            seen = [e for e in audit if e["event"] == "checkds" and e["key"] == str(second)]
            assert seen and seen[0]["message"].startswith("DS seen at parental agent")
        # every alert went to the webhook too, the same JSON
        wait_until(lambda: len(posted) >= len(read_alerts(sink)), 10, "the webhook")
        key = lambda a: (a["alert"], a["status"], a["key"], a["time"])  # noqa: E731
        assert sorted(map(key, posted)) == sorted(map(key, read_alerts(sink)))


def test_checkds_disagreement_between_agents() -> None:
    state = ZoneState(ZoneConfig("dis.example.", Path("/nonexistent"), False))
    state.parent_log = [
        "parental agent 127.0.0.1@5301: DS expected for [111], seen: 111",
        "parental agent 127.0.0.1@5302: DS expected for [111], seen: none",
        "parental agent 127.0.0.1@5303: DS expected for [111], seen: no answer",
    ]
    views = parent_views(state)
    assert [(v.agent, v.match) for v in views] == [
        ("parental agent 127.0.0.1@5301", True),
        ("parental agent 127.0.0.1@5302", False),
        ("parental agent 127.0.0.1@5303", False),
    ]
    alerts = {c.alert for c in zone_conditions(state, 1_800_000_000)}
    assert "checkds-disagreement" in alerts
    state.parent_log = state.parent_log[:1]
    alerts = {c.alert for c in zone_conditions(state, 1_800_000_000)}
    assert "checkds-disagreement" not in alerts


def test_zone_failing_alert_names_the_file_and_clears_when_fixed(tmp_path: Path) -> None:
    sink = tmp_path / "alerts.jsonl"
    script = tmp_path / "alert.sh"
    script.write_text(f'#!/bin/sh\n{{ cat; echo; }} >> "{sink}"\n')
    script.chmod(0o755)
    zone = "broken.example."
    with observed(
        tmp_path, {zone: zone_text(zone)}, extra=f'[alerts]\ncommand = ["{script}"]\n'
    ) as s:
        source = tmp_path / "zones" / f"{zone}zone"
        good = source.read_text()
        source.write_text(good.replace("www A 192.0.2.80", "www A 192.0.2.800"))
        ctl(tmp_path, "reload", ok=False)

        def failing() -> list[dict[str, Any]]:
            return [a for a in read_alerts(sink) if a["alert"] == "zone-failing"]

        (fired,) = wait_until(failing, 20, "the zone-failing alert")
        assert fired["status"] == "firing" and fired["zone"] == zone
        assert str(source.name) in fired["summary"], fired
        (row,) = [z for z in s.json("/api/v1/zones")["zones"] if z["zone"] == zone]
        assert row["condition"] == "problem"
        assert 'dnsseal_zone_condition{zone="broken.example.",condition="problem"} 1' in (
            s.metrics()
        )
        source.write_text(good.replace("@ SOA ns1 hostmaster 1 ", "@ SOA ns1 hostmaster 2 "))
        ctl(tmp_path, "reload")
        wait_until(lambda: len(failing()) == 2, 20, "the alert to clear")
        assert [a["status"] for a in failing()] == ["firing", "resolved"]


def test_a_restart_does_not_send_an_active_alert_again(tmp_path: Path) -> None:
    sink = tmp_path / "alerts.jsonl"
    script = tmp_path / "alert.sh"
    script.write_text(f'#!/bin/sh\n{{ cat; echo; }} >> "{sink}"\n')
    script.chmod(0o755)
    zone = "again.example."
    extra = f'[alerts]\ncommand = ["{script}"]\n'

    def ready(status: str) -> list[dict[str, Any]]:
        return [a for a in read_alerts(sink) if a["alert"] == "ds-ready" and a["status"] == status]

    with observed(tmp_path, {zone: zone_text(zone)}, extra=extra):
        (fired,) = wait_until(lambda: ready("firing"), 30, "ds-ready")
    with observed(tmp_path, {zone: zone_text(zone)}, extra=extra) as s:
        wait_until(lambda: s.json("/api/v1/zones")["zones"][0]["condition"] == "waiting", 20,
                   "the KSK to wait again")  # fmt: skip
        time.sleep(3)  # a few looks of the watcher
        assert len(ready("firing")) == 1  # not again after the restart
        ctl(tmp_path, "dnssec", "-checkds", "-key", str(fired["key"]), "published", zone)
        wait_until(lambda: ready("resolved"), 20, "ds-ready to clear")
        assert len(ready("firing")) == 1
