"""`dnsseal ctl` DNSSEC commands against a running server (rndc's dnssec commands)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import dns.message
import dns.query

from conftest import free_port

from .conftest import axfr_verify, ctl, dnsseal_serve, write_config, zone_text

ZONE = "ctl.example."


def _serial(port: int) -> int:
    r = dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=port, timeout=3)
    return int(r.answer[0][0].serial)


def _tags(status: str, role: str) -> list[int]:
    return [int(t) for t in re.findall(rf"key: (\d+) \(\w+\), {role}", status)]


def test_dnssec_status_checkds_sign_signing_list_zone_status(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, port, {ZONE: zone_text(ZONE)})
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        status = ctl(tmp_path, "dnssec", "-status", ZONE)
        assert "dnssec-policy: fast" in status
        (ksk,) = _tags(status, "KSK")
        (zsk,) = _tags(status, "ZSK")
        assert "waiting: " in status
        # Once the DNSKEY is in every cache the KSK waits for its DS, until told (checkds
        # explicit: no parental agents).
        deadline = time.monotonic() + 15
        while "not yet seen" not in status and time.monotonic() < deadline:
            time.sleep(0.5)
            status = ctl(tmp_path, "dnssec", "-status", ZONE)
        assert re.search(rf"waiting: .*DS for {ksk} not yet seen", status), status
        assert f"`dnsseal ctl dnssec -checkds -key {ksk} published {ZONE.rstrip('.')}`" in status
        out = ctl(tmp_path, "dnssec", "-checkds", "-key", str(ksk), "published", ZONE)
        assert "done" in out
        listing = ctl(tmp_path, "signing", "-list", ZONE)
        assert f"Done signing with key {ksk}/ECDSAP256SHA256" in listing
        assert f"Done signing with key {zsk}/ECDSAP256SHA256" in listing
        before = _serial(port)
        out = ctl(tmp_path, "sign", ZONE)
        assert "re-signed" in out
        assert _serial(port) > before
        zs = ctl(tmp_path, "zone-status", ZONE)
        for field in ("signed-serial", "next-signing", "next-key-event", "signature-expiry"):
            assert field in zs
        assert "loadkeys" not in ctl(tmp_path, "loadkeys", ZONE)
        axfr_verify(tmp_path, ZONE, port)
        bad = ctl(tmp_path, "dnssec", "-rollover", "-key", "1", ZONE, ok=False)
        assert "no single key with tag 1" in bad
        assert "usage" in ctl(tmp_path, "dnssec", "-bogus", ZONE, ok=False)


def test_rollover_command_rolls_the_zsk(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, port, {ZONE: zone_text(ZONE)})
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        (zsk,) = _tags(ctl(tmp_path, "dnssec", "-status", ZONE), "ZSK")
        out = ctl(tmp_path, "dnssec", "-rollover", "-key", str(zsk), ZONE)
        assert "done" in out
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            status = ctl(tmp_path, "dnssec", "-status", ZONE)
            zsks = _tags(status, "ZSK")
            if len(zsks) == 2:
                break
            time.sleep(0.5)
        assert len(zsks) == 2 and zsk in zsks, status
        axfr_verify(tmp_path, ZONE, port)


def test_signatures_are_refreshed_on_the_timer(tmp_path: Path) -> None:
    """validity 30 s, refresh 20 s: within ~10 s the server re-signs on its own, with a new
    serial, and the signature horizon moves forward."""
    port = free_port()
    write_config(tmp_path, port, {ZONE: zone_text(ZONE)})
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):

        def horizon() -> str:
            out = ctl(tmp_path, "zone-status", ZONE)
            m = re.search(r"signature-expiry-horizon: (.+)", out)
            assert m, out
            return m.group(1)

        h0, s0 = horizon(), _serial(port)
        deadline = time.monotonic() + 25
        while horizon() == h0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert horizon() != h0
        assert _serial(port) > s0
        axfr_verify(tmp_path, ZONE, port)
