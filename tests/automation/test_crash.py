"""kill -9 during a burst of dynamic updates: after a restart every update that was
answered NOERROR is there and the zone verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from conftest import free_port, wait_for_dns

from .conftest import DNSSEAL, TSIG_SECRET, axfr_verify, stop, write_config, zone_text

ZONE = "crash.example."
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})


def _start(d: Path, port: int) -> subprocess.Popen[bytes]:
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    wait_for_dns(port, ZONE, proc, timeout=20)
    return proc


@pytest.mark.interop
@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_update(tmp_path: Path) -> None:
    port = free_port()
    write_config(
        tmp_path,
        port,
        {ZONE: zone_text(ZONE)},
        zone_options={ZONE: 'allow-update = ["key ddns"]'},
    )
    proc = _start(tmp_path, port)
    acked: list[int] = []
    stop_flag = threading.Event()

    def burst() -> None:
        for i in range(10_000):
            if stop_flag.is_set():
                return
            u = dns.update.UpdateMessage(ZONE, keyring=KEYRING, keyname="ddns")
            u.add(f"h{i}.{ZONE}", 60, "A", f"192.0.2.{i % 250 + 1}")
            try:
                r = dns.query.tcp(u, "127.0.0.1", port=port, timeout=5)
            except (dns.exception.DNSException, OSError, EOFError):
                return  # the server is gone (killed mid-answer: EOF)
            if r.rcode() == dns.rcode.NOERROR:
                acked.append(i)

    try:
        worker = threading.Thread(target=burst)
        worker.start()
        deadline = time.monotonic() + 20
        while len(acked) < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop_flag.set()
        worker.join(timeout=10)
        assert len(acked) >= 15
        proc = _start(tmp_path, port)
        for i in acked:
            q = dns.message.make_query(f"h{i}.{ZONE}", "A", want_dnssec=True)
            r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
            assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 2, (i, r)
        axfr_verify(tmp_path, ZONE, port)
    finally:
        stop_flag.set()
        stop(proc)
