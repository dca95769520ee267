"""manual-mode on a running server: the key manager proposes each step, `dnssec -status`
shows it, and nothing is published until `dnsseal ctl dnssec -step` approves it (BIND 9.21's
`rndc dnssec -step`)."""

from __future__ import annotations

import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from conftest import free_port

from .conftest import FAST_POLICY, axfr_verify, ctl, dnsseal_serve, write_config, zone_text

ZONE = "manual.example."


def _served(port: int, rdtype: str) -> list[str]:
    q = dns.message.make_query(ZONE, rdtype, want_dnssec=True)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
    want = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rrset in r.answer if rrset.rdtype == want for rd in rrset)


def _status_until(d: Path, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    status = ctl(d, "dnssec", "-status", ZONE)
    while text not in status and time.monotonic() < deadline:
        time.sleep(0.5)
        status = ctl(d, "dnssec", "-status", ZONE)
    assert text in status, status
    return status


def test_manual_mode_waits_for_each_step(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, port, {ZONE: zone_text(ZONE)}, policies={ZONE: "manual"})
    manual = FAST_POLICY % {
        "name": "manual", "ksk_lifetime": "unlimited", "zsk_lifetime": "unlimited",
        "nsec3": "manual-mode = true",
    }  # fmt: skip
    with (tmp_path / "policies.toml").open("a") as f:
        f.write(manual)
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        # a new zone: even its first keys wait for the operator
        status = _status_until(tmp_path, "pending step (manual-mode")
        assert f"`dnsseal ctl dnssec -step {ZONE}`" in status
        assert "new KSK: created" in status and "new ZSK: created" in status
        time.sleep(3)  # some seconds of a policy whose steps take seconds: still nothing
        assert _served(port, "DNSKEY") == [] and _served(port, "RRSIG") == []
        assert not list((tmp_path / "keys").glob(f"K{ZONE}*.key"))
        # approve: the keys are made and published, the zone signed
        out = ctl(tmp_path, "dnssec", "-step", ZONE)
        assert "step approved (manual-mode): done" in out, out
        assert len(list((tmp_path / "keys").glob(f"K{ZONE}*.key"))) == 2
        assert len(_served(port, "DNSKEY")) == 2 and _served(port, "RRSIG")
        # once the DNSKEYs are in every cache, the next step is the CDS: held too
        status = _status_until(tmp_path, "DS hidden -> rumoured")
        assert "pending step (manual-mode" in status
        time.sleep(2)
        assert _served(port, "CDS") == []
        ctl(tmp_path, "dnssec", "-step", ZONE)
        assert len(_served(port, "CDS")) == 1
        status = ctl(tmp_path, "dnssec", "-status", ZONE)
        assert "pending step" not in status, status
        axfr_verify(tmp_path, ZONE, port)
    log = (tmp_path / "out.txt").read_text()
    assert "manual-mode: step waiting for `dnsseal ctl dnssec -step" in log


def test_step_refused_without_manual_mode(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, port, {ZONE: zone_text(ZONE)})
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        out = ctl(tmp_path, "dnssec", "-step", ZONE, ok=False)
        assert "not in manual-mode" in out, out
        assert "usage: dnssec -step ZONE" in ctl(tmp_path, "dnssec", "-step", ok=False)
