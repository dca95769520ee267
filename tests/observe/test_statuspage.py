"""The status page in a real browser: headless Chromium (Debian's `chromium`) loads `/` from
a running `dnsseal serve`, the zones and the keys the DNS serves are in its DOM, and a
screenshot is taken (kept in the test's directory, and copied to $DNSSEAL_SCREENSHOTS when
set)."""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
from pathlib import Path

import dns.dnssec
import dns.message
import dns.query
import dns.rdatatype
import pytest

from automation.conftest import zone_text
from conftest import require_tool

from .conftest import observed, wait_until

ZONES = ("page.example.", "other.example.")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = require_tool("chromium")
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


class Dom(html.parser.HTMLParser):
    """The attributes of every element of the DOM Chromium dumped, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, attr: str) -> list[str]:
        return [str(a[attr]) for t, a in self.elements if t == tag and a.get(attr) is not None]


def dnskey_tags(port: int, zone: str) -> set[int]:
    r = dns.query.udp(dns.message.make_query(zone, "DNSKEY"), "127.0.0.1", port=port, timeout=3)
    return {
        dns.dnssec.key_id(k) for rr in r.answer if rr.rdtype == dns.rdatatype.DNSKEY for k in rr
    }


@pytest.mark.interop
@pytest.mark.slow
def test_status_page_in_headless_chromium(tmp_path: Path) -> None:
    zones = {z: zone_text(z) for z in ZONES}
    with observed(tmp_path, zones) as s:

        def all_waiting() -> bool:
            got = s.json("/api/v1/zones")["zones"]
            return len(got) == 2 and all(z["condition"] == "waiting" for z in got)

        wait_until(all_waiting, 30, "both zones to wait on the parent")
        url = f"http://127.0.0.1:{s.http}/"
        dom_text = chromium(tmp_path, "--dump-dom", url).stdout
        dom = Dom()
        dom.feed(dom_text)
        # every zone, with its condition at a glance
        rows = {a["data-zone"]: a.get("data-condition") for t, a in dom.elements
                if t == "tr" and a.get("class") == "zone-row"}  # fmt: skip
        assert rows == dict.fromkeys(ZONES, "waiting")
        assert set(dom.having("section", "data-zone")) == set(ZONES)
        # every key the DNS serves is on the page
        tags = {int(t) for t in dom.having("tr", "data-tag")}
        served = set().union(*(dnskey_tags(s.port, z) for z in ZONES))
        assert served and served <= tags
        # the timelines are drawn, with their "now" line, and the audit rows are there
        assert dom_text.count("<svg") == 2
        assert "now</text>" in dom_text
        # left of it, the past from the audit log: the DNSKEYs were rumoured before they
        # were omnipresent (the simulation, right of it, has no such step for these keys)
        assert "DNSKEY rumoured from" in dom_text
        text = " ".join(dom.text)
        assert "waiting on parent" in text
        assert "DS hidden -> rumoured" in text  # the step that made the KSK wait
        shot = tmp_path / "status.png"
        chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", url)
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
        keep = os.environ.get("DNSSEAL_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / "status-page.png")
