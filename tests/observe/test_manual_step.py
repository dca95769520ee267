"""manual-mode's pending step where an operator looks: the JSON API (as `ctl --json`), the
status page in headless Chromium, and ``dnsseal_zone_pending_step``; approving it with
`dnsseal ctl dnssec -step` takes it away."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from automation.conftest import FAST_POLICY, ctl, dnsseal_serve, write_config, zone_text
from conftest import free_port

from .conftest import Served, _up, wait_until, with_http
from .test_statuspage import Dom, chromium

ZONE = "step.example."


def pending_gauge(s: Served) -> str | None:
    for line in s.metrics().splitlines():
        if line.startswith(f'dnsseal_zone_pending_step{{zone="{ZONE}"}} '):
            return line.rsplit(" ", 1)[1]
    return None


@pytest.mark.interop
@pytest.mark.slow
def test_pending_step_in_api_page_and_metrics(tmp_path: Path) -> None:
    port, http = free_port(), free_port(socket.SOCK_STREAM)
    conf = write_config(tmp_path, port, {ZONE: zone_text(ZONE)}, policies={ZONE: "manual"})
    manual = FAST_POLICY % {
        "name": "manual", "ksk_lifetime": "unlimited", "zsk_lifetime": "unlimited",
        "nsec3": "manual-mode = true",
    }  # fmt: skip
    with (tmp_path / "policies.toml").open("a") as f:
        f.write(manual)
    with_http(conf, http)
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        s = Served(tmp_path, port, http)
        wait_until(lambda: _up(s), 15, "the HTTP listener")
        # a new zone: its first keys wait for the operator
        zone = wait_until(
            lambda: next((z for z in s.json("/api/v1/zones")["zones"] if z["pending-step"]), None),
            20,
            "the pending step in the API",
        )
        assert "new KSK: created (KSK, algorithm 13)" in zone["pending-step"]
        assert "new ZSK: created (ZSK, algorithm 13)" in zone["pending-step"]
        detail = s.json(f"/api/v1/zones/{ZONE}")
        step = f"`dnsseal ctl dnssec -step {ZONE.rstrip('.')}`"
        assert step in detail["next-step"]
        # the same document `ctl --json` prints
        data = json.loads(ctl(tmp_path, "--json", "zones"))["data"]
        assert [z["pending-step"] for z in data["zones"]] == [zone["pending-step"]]
        assert pending_gauge(s) == "1"
        # the page shows it, as a browser renders it
        dom_text = chromium(tmp_path, "--dump-dom", f"http://127.0.0.1:{http}/").stdout
        dom = Dom()
        dom.feed(dom_text)
        assert "pending-step" in dom.having("div", "class")
        assert dom.having("span", "data-pending-step") == ["1"]  # in the zone list too
        text = " ".join(dom.text)
        assert "new KSK: created" in text and f"dnsseal ctl dnssec -step {ZONE.rstrip('.')}" in text
        shot = tmp_path / "pending-step.png"
        chromium(
            tmp_path, "--window-size=1200,1000", f"--screenshot={shot}", f"http://127.0.0.1:{http}/"
        )
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        keep = os.environ.get("DNSSEAL_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / "status-page-pending-step.png")
        # approved: that step is gone (the next one, the CDS, comes seconds later)
        assert "step approved (manual-mode): done" in ctl(tmp_path, "dnssec", "-step", ZONE)
        (after,) = s.json("/api/v1/zones")["zones"]
        assert "new KSK: created (KSK, algorithm 13)" not in after["pending-step"]
        assert step not in s.json(f"/api/v1/zones/{ZONE}")["next-step"] or after["pending-step"]
