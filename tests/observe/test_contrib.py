"""contrib/: the Prometheus rules pass `promtool check rules` and their own `promtool test
rules` cases, and every metric the rules and the Grafana dashboard use is one a running
server exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from automation.conftest import zone_text
from conftest import require_tool

from .conftest import observed

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RULES = CONTRIB / "prometheus" / "dnsseal.rules.yml"
RULE_TESTS = CONTRIB / "prometheus" / "dnsseal.rules.test.yml"
DASHBOARD = CONTRIB / "grafana" / "dnsseal-dashboard.json"
METRIC = re.compile(r"\b((?:dnsseal|process)_[a-z0-9_]+)\b")


def promtool(*args: str) -> str:
    proc = subprocess.run(
        [require_tool("promtool"), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.interop
def test_alert_rules_check_and_pass_their_tests() -> None:
    assert "SUCCESS: 7 rules found" in promtool("check", "rules", RULES.name)
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name)


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_every_metric_of_the_dashboard_and_rules_is_exported(tmp_path: Path) -> None:
    wanted = {m for e in dashboard_exprs() for m in METRIC.findall(e)}
    wanted |= set(METRIC.findall(RULES.read_text())) - {"dnsseal_rules"}
    assert len(wanted) > 20
    zone = "contrib.example."
    with observed(tmp_path, {zone: zone_text(zone)}) as s:
        exported = set(re.findall(r"^# TYPE (\S+) ", s.metrics(), re.M))
    assert wanted - exported == set()
