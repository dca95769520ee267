"""Dynamic update (RFC 2136) of an inline-signed zone, driven by BIND's nsupdate with TSIG,
followed by a Knot secondary over IXFR; `dnsseal verify` on an AXFR after every step."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from conftest import free_port, require_tool, run_tool, wait_for_dns

from .conftest import TSIG_SECRET, axfr_verify, dnsseal_serve, stop, write_config
from .conftest import zone_text as make_zone

ZONE = "upd.example."


def nsupdate(port: int, script: str, key: bool = True) -> subprocess.CompletedProcess[str]:
    args = [require_tool("nsupdate")]
    if key:
        args += ["-y", f"hmac-sha256:ddns:{TSIG_SECRET}"]
    body = f"server 127.0.0.1 {port}\nzone {ZONE}\n{script}\nsend\n"
    return subprocess.run(args, input=body, capture_output=True, text=True, timeout=30, check=False)


def query(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def serial(port: int) -> int:
    return int(query(port, ZONE, "SOA").answer[0][0].serial)


@contextmanager
def knot_secondary(d: Path, primary: int, kport: int) -> Iterator[Path]:
    """Knot as a secondary of ``ZONE`` on ``kport`` (NOTIFY from 127.0.0.1); its log."""
    knotd = require_tool("knotd")
    kdir = d / "knot"
    kdir.mkdir()
    conf = kdir / "knot.conf"
    conf.write_text(
        f"""server:
    listen: 127.0.0.1@{kport}
    rundir: "{kdir}"
log:
  - target: "{kdir}/knot.log"
    any: info
database:
    storage: "{kdir}"
remote:
  - id: primary
    address: 127.0.0.1@{primary}
acl:
  - id: notify_from_primary
    address: 127.0.0.1
    action: notify
template:
  - id: default
    storage: "{kdir}"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {ZONE}
    master: primary
    acl: [notify_from_primary]
"""
    )
    run_tool(["knotc", "-c", conf, "conf-check"])
    with (kdir / "stderr").open("wb") as err:
        proc = subprocess.Popen([knotd, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for_dns(kport, ZONE, proc, timeout=30)
        yield kdir / "knot.log"
    finally:
        stop(proc)


def wait_serial(port: int, wanted: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while serial(port) != wanted:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("nsec3", [False, True], ids=["nsec", "nsec3"])
def test_nsupdate_adds_deletes_signed_and_knot_follows_by_ixfr(tmp_path: Path, nsec3: bool) -> None:
    port = free_port()
    kport = free_port()
    write_config(
        tmp_path,
        port,
        {ZONE: make_zone(ZONE)},
        nsec3=nsec3,
        zone_options={ZONE: f'allow-update = ["key ddns"]\nalso-notify = ["127.0.0.1@{kport}"]'},
    )
    with (
        dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port),
        knot_secondary(tmp_path, port, kport) as knot_log,
    ):
        s0 = serial(port)
        # add
        r = nsupdate(port, f"update add new.{ZONE} 60 A 192.0.2.77")
        assert r.returncode == 0, r.stderr
        ans = query(port, f"new.{ZONE}", "A")
        assert ans.rcode() == dns.rcode.NOERROR
        assert {rr.rdtype for rr in ans.answer} == {dns.rdatatype.A, dns.rdatatype.RRSIG}
        assert serial(port) > s0
        axfr_verify(tmp_path, ZONE, port, "after-add.zone")
        # delete
        r = nsupdate(port, f"update delete www.{ZONE} A")
        assert r.returncode == 0, r.stderr
        gone = query(port, f"www.{ZONE}", "A")
        assert gone.rcode() == dns.rcode.NXDOMAIN
        proof = dns.rdatatype.NSEC3 if nsec3 else dns.rdatatype.NSEC
        assert proof in {rr.rdtype for rr in gone.authority}
        axfr_verify(tmp_path, ZONE, port, "after-delete.zone")
        # refused: no key, managed records; prerequisites fail
        assert "REFUSED" in nsupdate(port, f"update add x.{ZONE} 60 A 192.0.2.1", False).stderr
        bad = nsupdate(port, f"update delete {ZONE} RRSIG")
        assert "REFUSED" in bad.stdout + bad.stderr
        pre = nsupdate(port, f"prereq nxdomain mail.{ZONE}\nupdate add y.{ZONE} 60 A 192.0.2.2")
        assert "YXDOMAIN" in pre.stdout + pre.stderr
        assert query(port, f"y.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN
        # the secondary follows, told by NOTIFY, by IXFR
        wait_serial(kport, serial(port), knot_log)
        assert "IXFR" in knot_log.read_text()
        a = query(kport, f"new.{ZONE}", "A")
        b = query(port, f"new.{ZONE}", "A")
        assert a.answer == b.answer and a.answer
        assert query(kport, f"www.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.interop
def test_reload_applies_source_edits_as_a_diff_and_keeps_updates(tmp_path: Path) -> None:
    port = free_port()
    conf_zones = {ZONE: make_zone(ZONE)}
    write_config(tmp_path, port, conf_zones, zone_options={ZONE: 'allow-update = ["key ddns"]'})
    src = tmp_path / "zones" / f"{ZONE}zone"
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        r = nsupdate(port, f"update add dyn.{ZONE} 60 TXT dynamic")
        assert r.returncode == 0, r.stderr
        before = serial(port)
        # the operator edits the file (serial unchanged): one record out, one in
        text = src.read_text().replace("mail A 192.0.2.25\n", "") + "edited A 192.0.2.50\n"
        src.write_text(text)
        from .conftest import ctl

        ctl(tmp_path, "reload")
        after = serial(port)
        assert after > before
        assert query(port, f"edited.{ZONE}", "A").answer
        assert query(port, f"mail.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN
        assert query(port, f"dyn.{ZONE}", "TXT").answer  # the update survived the reload
        assert src.read_text() == text  # the source is never written
        assert "1 records out, 1 in, signed incrementally" in (tmp_path / "out.txt").read_text()
        # IXFR from the previous serial carries only the edit and its signatures/chain
        ixfr = dns.message.make_query(ZONE, "IXFR")
        ixfr.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", f". . {before} 0 0 0 0"))
        resp = dns.query.tcp(ixfr, "127.0.0.1", port=port, timeout=5, one_rr_per_rrset=True)
        soas = [rr for rr in resp.answer if rr.rdtype == dns.rdatatype.SOA]
        assert len(soas) == 4, resp  # an incremental answer, not a whole zone
        owners = {rr.name.to_text() for rr in resp.answer}
        assert f"edited.{ZONE}" in owners and f"www.{ZONE}" not in owners
        axfr_verify(tmp_path, ZONE, port)
        # a broken edit: the zone keeps its data and stays signed; the problem is reported
        src.write_text(text + "broken IN A not-an-address\n")
        ctl(tmp_path, "reload", ok=False)
        assert "source-problem: " in ctl(tmp_path, "zone-status", ZONE)
        assert query(port, f"edited.{ZONE}", "A").answer
        assert "source-problem: None" not in ctl(tmp_path, "zone-status", ZONE)
        axfr_verify(tmp_path, ZONE, port, "after-broken-edit.zone")


@pytest.mark.interop
def test_peer_dnskey_by_update_is_kept_in_the_published_set(tmp_path: Path) -> None:
    """RFC 8901 model 2: a multi-signer peer's DNSKEY added by update stays published
    (signed by our KSK) through re-signing; a DNSKEY below the apex is refused.  The key set
    is the policy's: only an update-policy rule naming DNSKEY lets the peer add one."""
    port = free_port()
    grants = f'update-policy = ["grant ddns zonesub ANY", "grant ddns name {ZONE} DNSKEY"]'
    write_config(tmp_path, port, {ZONE: make_zone(ZONE)}, zone_options={ZONE: grants})
    peer = tmp_path / "peer"
    peer.mkdir()
    run_tool(["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", ZONE], cwd=peer)
    line = next(
        ln
        for f in peer.glob("K*.key")
        for ln in f.read_text().splitlines()
        if ln and not ln.startswith(";")
    )
    rdata = line.split("DNSKEY", 1)[1].strip()
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        r = nsupdate(port, f"update add {ZONE} 2 DNSKEY {rdata}")
        assert r.returncode == 0, r.stderr
        from .conftest import ctl

        for step in ("after update", "after sign"):
            ans = query(port, ZONE, "DNSKEY")
            keys = next(rr for rr in ans.answer if rr.rdtype == dns.rdatatype.DNSKEY)
            assert len(keys) == 3, (step, ans)  # our KSK and ZSK, and the peer's key
            assert any(rr.rdtype == dns.rdatatype.RRSIG for rr in ans.answer), step
            ctl(tmp_path, "sign", ZONE)
        bad = nsupdate(port, f"update add www.{ZONE} 2 DNSKEY {rdata}")
        assert "REFUSED" in bad.stdout + bad.stderr


@pytest.mark.interop
def test_source_edited_while_down_is_applied_at_start_and_updates_kept(tmp_path: Path) -> None:
    port = free_port()
    write_config(
        tmp_path, port, {ZONE: make_zone(ZONE)}, zone_options={ZONE: 'allow-update = ["key ddns"]'}
    )
    src = tmp_path / "zones" / f"{ZONE}zone"
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        assert nsupdate(port, f"update add dyn.{ZONE} 60 TXT kept").returncode == 0
        before = serial(port)
    src.write_text(src.read_text() + "offline A 192.0.2.60\n")
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        assert serial(port) > before
        assert query(port, f"offline.{ZONE}", "A").answer
        assert query(port, f"dyn.{ZONE}", "TXT").answer
        axfr_verify(tmp_path, ZONE, port)
