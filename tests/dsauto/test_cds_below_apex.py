"""CDS/CDNSKEY records below a zone's apex are ordinary data (a signaling zone holds them at
``_dsboot.<child>._signal.<host>``): the inline signer keeps them from the source file, from
an UPDATE and across a restart (the journal restore must not strip them; only the apex key
set is the server's own)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from automation.conftest import TSIG_SECRET, write_config
from conftest import free_port, stop, wait_for_dns

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
ZONE = "_signal.ns1.provider.test."  # a signaling zone
PLAIN = "_signal.ns2.provider.test."  # an ordinary zone, CDS/CDNSKEY below its apex
CHILD = "kid.parent.test."
FROM_FILE = f"_dsboot.kid.example.{PLAIN}"
FROM_SIGNALING = f"_dsboot.{CHILD}{ZONE}"
CDS = "12345 13 2 1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F809"
CDNSKEY = (
    "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
    "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
)
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _serve(d: Path, port: int) -> subprocess.Popen[bytes]:
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    wait_for_dns(port, ZONE, proc, timeout=30)
    return proc


def _rdatas(port: int, name: str, rtype: str) -> tuple[set[str], bool]:
    """The RDATA texts served for (name, rtype) and whether an RRSIG covers them."""
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
    t = dns.rdatatype.from_text(rtype)
    data = {rd.to_text().upper().replace(" ", "") for rr in r.answer if rr.rdtype == t for rd in rr}
    signed = any(rr.rdtype == dns.rdatatype.RRSIG and rr.covers == t for rr in r.answer)
    return data, signed


def _update(port: int, zone: str, name: str) -> None:
    u = dns.update.UpdateMessage(zone, keyring=KEYRING, keyname="ddns")
    u.add(name, 60, "A", "192.0.2.1")
    r = dns.query.tcp(u, "127.0.0.1", port=port, timeout=10)
    assert r.rcode() == dns.rcode.NOERROR, r


def _check_file(port: int) -> None:
    for rtype, text in (("CDS", CDS), ("CDNSKEY", CDNSKEY)):
        data, signed = _rdatas(port, FROM_FILE, rtype)
        assert data == {text.upper().replace(" ", "")}, (FROM_FILE, rtype, data)
        assert signed, (FROM_FILE, rtype)


def _check_signaling(port: int, timeout: float = 0) -> None:
    """The signaling name holds the child's apex CDS/CDNSKEY (waits up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for rtype in ("CDS", "CDNSKEY"):
                apex, _ = _rdatas(port, CHILD, rtype)
                data, signed = _rdatas(port, FROM_SIGNALING, rtype)
                assert apex and data == apex, (FROM_SIGNALING, rtype, data, apex)
                assert signed, (FROM_SIGNALING, rtype)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_cds_below_apex_survive_update_and_restart(tmp_path: Path) -> None:
    d = tmp_path
    port = free_port()
    plain = (
        f"$ORIGIN {PLAIN}\n$TTL 60\n@ SOA ns1.provider.test. h 1 60 30 600 60\n"
        f"@ NS ns1.provider.test.\n{FROM_FILE} CDS {CDS}\n{FROM_FILE} CDNSKEY {CDNSKEY}\n"
    )
    signal = (
        f"$ORIGIN {ZONE}\n$TTL 60\n@ SOA ns1.provider.test. h 1 60 30 600 60\n"
        "@ NS ns1.provider.test.\n"
    )
    # The child waits for its first DS, so the signaling zone copies its apex CDS/CDNSKEY.
    child = (
        f"$ORIGIN {CHILD}\n$TTL 60\n@ SOA ns1.provider.test. h 1 60 30 600 60\n"
        "@ NS ns1.provider.test.\nwww A 192.0.2.80\n"
    )
    ddns = 'allow-update = ["key ddns"]'
    write_config(
        d,
        port,
        {PLAIN: plain, ZONE: signal, CHILD: child},
        zone_options={PLAIN: ddns, ZONE: f"{ddns}\nsignaling = true\nds-interval = 1"},
    )
    proc = _serve(d, port)
    try:
        _check_file(port)
        _check_signaling(port, timeout=30)
    finally:
        stop(proc)
    proc = _serve(d, port)
    try:
        _check_file(port)
        _check_signaling(port)
        # The next versions are signed from the restored unsigned data: still there.
        _update(port, PLAIN, f"www.{PLAIN}")
        _update(port, ZONE, f"www.{ZONE}")
        _check_file(port)
        _check_signaling(port)
    finally:
        stop(proc)
