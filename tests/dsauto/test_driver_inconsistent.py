"""The parental agent in the server (dsdriver) when one name server of a secure child serves a
different CDS (RFC 9975): the DS set does not change, and the decision log (``dnsseal ctl
ds-log``) names the server that differs.  Once both agree, the same driver changes the DS.

Two dnsseal instances serve the child with the same keys (B gets a copy of A's key files):
A on 127.0.0.1 (it is also the parent, with ``ds-automation``), B on ::1.  B's policy asks
for CDS digests SHA-256 and SHA-384, A's for SHA-256 only, so their CDS RRsets differ while
both are validly signed by the key the parent's DS points at.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from automation.conftest import FAST_POLICY, TSIG_SECRET
from conftest import free_port, stop, wait_for_dns

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
PARENT = "parent.test."
CHILD = "kid.parent.test."
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PARENT_ZONE = """$ORIGIN parent.test.
$TTL 2
@ SOA ns hostmaster 1 60 30 600 2
@ NS ns
ns A 127.0.0.1
kid NS ns1.kid
kid NS ns2.kid
ns1.kid A 127.0.0.1
ns2.kid AAAA ::1
"""
CHILD_ZONE = """$ORIGIN kid.parent.test.
$TTL 2
@ SOA ns1 hostmaster 1 60 30 600 2
@ NS ns1
@ NS ns2
ns1 A 127.0.0.1
ns2 AAAA ::1
www A 192.0.2.80
"""


def _policies() -> str:
    base = {"ksk_lifetime": "unlimited", "zsk_lifetime": "unlimited"}
    return FAST_POLICY % {"name": "fast", "nsec3": "", **base} + FAST_POLICY % {
        "name": "fast2",
        "nsec3": 'cds-digest-types = ["SHA-256", "SHA-384"]',
        **base,
    }


def _setup(d: Path, listen: str, port: int, zones: dict[str, tuple[str, str]]) -> None:
    """dnsseal.toml in ``d``: ``zones`` origin -> (policy, extra options)."""
    (d / "zones").mkdir(parents=True, exist_ok=True)
    (d / "policies.toml").write_text(_policies())
    lines = [
        "[server]",
        f'listen = ["{listen}@{port}"]',
        'control = "dnsseal.sock"',
        'state-dir = "state"',
        'key-directory = "keys"',
        'policies = "policies.toml"',
        f"query-port = {port}",
        "",
        "[key.ddns]",
        'algorithm = "hmac-sha256"',
        f'secret = "{TSIG_SECRET}"',
        "",
    ]
    for origin, (policy, extra) in zones.items():
        text = PARENT_ZONE if origin == PARENT else CHILD_ZONE
        (d / "zones" / f"{origin}zone").write_text(text)
        lines += [
            f'[zone."{origin}"]',
            f'file = "zones/{origin}zone"',
            f'dnssec-policy = "{policy}"',
            extra,
            "",
        ]
    (d / "dnsseal.toml").write_text("\n".join(lines))


@contextmanager
def _serve(d: Path, addr: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        _wait_soa(addr, port, proc)
        yield proc
    finally:
        stop(proc)


def _wait_soa(addr: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    if addr == "127.0.0.1":
        wait_for_dns(port, CHILD, proc, timeout=30)
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            q = dns.message.make_query(CHILD, "SOA")
            if dns.query.udp(q, addr, port=port, timeout=0.5).answer:
                return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.2)
    raise AssertionError(f"no answer from {addr}@{port}")


def _ask(addr: str, port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    return dns.query.udp(q, addr, port=port, timeout=3)


def _rdata_texts(r: dns.message.Message, rtype: str) -> set[str]:
    t = dns.rdatatype.from_text(rtype)
    return {rd.to_text().upper() for rr in r.answer if rr.rdtype == t for rd in rr}


def _ksk_ds(port: int, digest: str) -> str:
    r = _ask("127.0.0.1", port, CHILD, "DNSKEY")
    (ds,) = [
        dns.dnssec.make_ds(CHILD, rd, digest).to_text()
        for rr in r.answer
        if rr.rdtype == dns.rdatatype.DNSKEY
        for rd in rr
        if rd.flags & 1
    ]
    return ds


def _wait(what: str, cond: Callable[[], bool], timeout: float, d: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (dns.exception.DNSException, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{(d / 'out.txt').read_text()[-5000:]}")


def _ds_log(d: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [*DNSSEAL, "ctl", "-c", str(d / "dnsseal.toml"), "ds-log", PARENT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(x) for x in proc.stdout.splitlines()]


def test_one_server_with_a_different_cds_blocks_the_change(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    port = free_port()
    parent_opts = 'ds-automation = true\nds-interval = 1\nds-ttl = 2\nallow-update = ["key ddns"]'
    _setup(a, "127.0.0.1", port, {PARENT: ("fast", parent_opts), CHILD: ("fast", "")})
    with _serve(a, "127.0.0.1", port):
        _wait("child signed", lambda: bool(_ksk_ds(port, "SHA256")), 30, a)
        _wait(
            "A serves its CDS",
            lambda: len(_rdata_texts(_ask("127.0.0.1", port, CHILD, "CDS"), "CDS")) == 1,
            30,
            a,
        )
        # The parent holds the SHA-384 DS of the child's KSK: the child is secure, and
        # a CDS with SHA-256 alone asks for a change.
        ds384 = _ksk_ds(port, "SHA384")
        u = dns.update.UpdateMessage(PARENT, keyring=KEYRING, keyname="ddns")
        u.add(CHILD, 2, "DS", ds384)
        r = dns.query.tcp(u, "127.0.0.1", port=port, timeout=10)
        assert r.rcode() == dns.rcode.NOERROR, r
        (b / "keys").mkdir(parents=True)
        for f in (a / "keys").glob(f"K{CHILD}*"):
            shutil.copy2(f, b / "keys" / f.name)
        _setup(b, "::1", port, {CHILD: ("fast2", "")})
        with _serve(b, "::1", port):
            _wait(
                "B serves its CDS",
                lambda: len(_rdata_texts(_ask("::1", port, CHILD, "CDS"), "CDS")) == 2,
                30,
                b,
            )
            assert len(_rdata_texts(_ask("127.0.0.1", port, CHILD, "CDS"), "CDS")) == 1

            def blocked() -> bool:
                return any("RFC 9975" in e["reason"] for e in _ds_log(a))

            _wait("a decision naming the server that differs", blocked, 30, a)
            time.sleep(3)  # more scans: still no change
            entry = next(e for e in _ds_log(a) if "RFC 9975" in e["reason"])
            assert entry["action"] == "keep", entry
            assert "ns2.kid.parent.test." in entry["reason"], entry
            assert "::1" in entry["reason"], entry
            assert {s["server"] for s in entry["servers"]} >= {
                f"ns1.kid.parent.test. 127.0.0.1@{port}",
                f"ns2.kid.parent.test. ::1@{port}",
            }, entry
            assert _rdata_texts(_ask("127.0.0.1", port, CHILD, "DS"), "DS") == {
                " ".join(ds384.split()).upper()
            }
            assert not any(e["action"] != "keep" for e in _ds_log(a))
        # B now serves the same CDS as A: the same driver follows it.
        _setup(b, "::1", port, {CHILD: ("fast", "")})
        with _serve(b, "::1", port):
            ds256 = _ksk_ds(port, "SHA256").upper()
            _wait(
                "the DS follows the agreeing CDS",
                lambda: _rdata_texts(_ask("127.0.0.1", port, CHILD, "DS"), "DS") == {ds256},
                60,
                a,
            )
        assert any(e["action"] == "set" for e in _ds_log(a))
