"""`dnsseal ctl` DNSSEC commands against a running server (rndc's dnssec commands)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from conftest import free_port
from dnsseal.policy.build import lookup
from dnsseal.server.dnssecctl import server_hint, status_lines
from dnsseal.server.inline import InlineZone

from .conftest import axfr_verify, ctl, dnsseal_serve, write_config, zone_text

ZONE = "ctl.example."
DAY = 86400
START = 1_800_000_000


def _serial(port: int) -> int:
    r = dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=port, timeout=3)
    return int(r.answer[0][0].serial)


def _private(port: int) -> list[str]:
    """The TYPE65534 records served at the apex."""
    q = dns.message.make_query(ZONE, 65534)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
    return sorted(rd.to_text() for rrset in r.answer for rd in rrset)


def _ixfr_added(port: int, serial: int, rdtype: int) -> list[list[str]]:
    """Per version after ``serial``, oldest first, the ``rdtype`` records it added (IXFR,
    RFC 1995)."""
    rrsets = [
        rrset
        for msg in dns.query.xfr(
            "127.0.0.1", ZONE, rdtype="IXFR", serial=serial, port=port, timeout=10, lifetime=30
        )
        for rrset in msg.answer
    ]
    soas = [i for i, r in enumerate(rrsets) if r.rdtype == dns.rdatatype.SOA]
    # new SOA, then per version: old SOA, deleted..., new SOA, added..., next old SOA
    # (the last one: the closing new SOA)
    assert len(soas) >= 4 and len(soas) % 2 == 0, rrsets
    return [
        [rd.to_text() for r in rrsets[soas[i] + 1 : soas[i + 1]] if r.rdtype == rdtype for rd in r]
        for i in range(2, len(soas) - 1, 2)
    ]


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
        # The first signing's TYPE65534 records go by themselves once the keys'
        # signatures are omnipresent (the signing is done).
        deadline = time.monotonic() + 20
        while _private(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _private(port) == []
        assert ctl(tmp_path, "signing", "-list", ZONE).strip() == "No signing records found"
        before = _serial(port)
        out = ctl(tmp_path, "sign", ZONE)
        assert "re-signed" in out
        assert _serial(port) > before
        # a full re-sign is a signing pass with every key, like rndc sign (its version
        # adds one TYPE65534 record per key: the journal's IXFR says so whatever came
        # after); signing -list prints the TYPE65534 records served, as rndc signing -list
        # does.  On a busy machine the key manager may already have removed them again
        # (every key's signatures omnipresent): then the list is empty and so is the apex.
        # A scheduled re-sign may also have been published between `before` and the
        # sign: the sign's version is one of those after `before`, not always the first.
        added = _ixfr_added(port, before, 65534)
        assert [len(a) for a in added if a] == [2], added
        done = {f"Done signing with key {t}/ECDSAP256SHA256" for t in (ksk, zsk)}
        listed = set(ctl(tmp_path, "signing", "-list", ZONE).splitlines())
        if listed != done:
            assert listed == {"No signing records found"} and _private(port) == [], listed
        assert ctl(tmp_path, "signing", "-clear", "all", ZONE).strip() == "request queued"
        deadline = time.monotonic() + 10
        while _private(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _private(port) == []
        assert ctl(tmp_path, "signing", "-list", ZONE).strip() == "No signing records found"
        axfr_verify(tmp_path, ZONE, port, "cleared.zone")  # the apex NSEC lost TYPE65534
        bad = ctl(tmp_path, "signing", "-clear", "12345", ZONE, ok=False)
        assert "expected 'all' or KEYID/ALGORITHM" in bad
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


def test_status_names_the_server_commands_not_the_offline_ones(tmp_path: Path) -> None:
    """The key manager's waiting sentences name `dnsseal keys checkds ... --key TAG`; the
    server's dnssec -status names `dnsseal ctl dnssec -checkds -key TAG ... ZONE`."""
    policy = lookup("default", {}).replace(name="hint")
    src = tmp_path / "hint.zone"
    src.write_text(zone_text("hint.example.").replace("$TTL 2", "$TTL 300"))
    (tmp_path / "state").mkdir()
    z = InlineZone("hint.example.", src, policy, tmp_path / "keys", tmp_path / "state")
    now = START
    while now < START + 10 * DAY:  # until the KSK waits for its DS
        z.maintain(now)
        nxt = z.next_wakeup()
        assert z.plan is not None
        if nxt is None or any("not yet seen" in (r.waiting or "") for r in z.plan.keys):
            break
        now = nxt
    assert z.plan is not None
    raw = " ".join(r.waiting or "" for r in z.plan.keys)
    assert "`dnsseal keys checkds hint.example --key" in raw
    text = "\n".join(status_lines(z, now))
    assert "dnsseal keys" not in text and "--key" not in text
    (ksk,) = (k.tag for k in z.keys if k.role in ("ksk", "csk"))  # the default: one CSK
    assert f"`dnsseal ctl dnssec -checkds -key {ksk} published hint.example`" in text
    # every form the key manager writes
    assert server_hint("run `dnsseal keys checkds . --key 7 withdrawn` when it is gone") == (
        "run `dnsseal ctl dnssec -checkds -key 7 withdrawn .` when it is gone"
    )
    assert server_hint("links and `--key TAG` are ambiguous") == (
        "links and `-key TAG` are ambiguous"
    )
