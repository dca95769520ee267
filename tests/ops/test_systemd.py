"""systemd integration (issue #17): the unit in contrib/ passes systemd-analyze verify, and
the server speaks sd_notify to a fake $NOTIFY_SOCKET: READY=1 once it answers, RELOADING=1
then READY=1 around a SIGHUP reload (which serves the new serial), STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from automation.conftest import DNSSEAL, write_config, zone_text
from conftest import free_port, require_tool, stop
from dnsseal.server import sdnotify

ROOT = Path(__file__).resolve().parents[2]
ZONE = "sd.example."


def messages(sock: socket.socket, until: str, timeout: float = 30) -> list[dict[str, str]]:
    """Datagrams received until one holds ``until`` (a KEY=VALUE line)."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            break
        fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        out.append(fields)
        key, value = until.split("=", 1)
        if fields.get(key) == value:
            return out
    raise AssertionError(f"no {until} from the server; got {out}")


def serial(port: int) -> int:
    r = dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=port, timeout=3)
    return int(r.answer[0][0].serial)


def test_unit_file_verifies(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    unit = (ROOT / "contrib" / "dnsseal.service").read_text()
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # the binary where this checkout has it (the unit names the installed one)
    (tmp_path / "dnsseal.service").write_text(unit.replace("/usr/bin/dnsseal", str(DNSSEAL)))
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "dnsseal.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_ready_reload_stop_notifications(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, port, {ZONE: zone_text(ZONE)}, policy="fast")
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    with (tmp_path / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "serve", "-c", "dnsseal.toml"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        ready = messages(sock, "READY=1")[-1]
        assert ready["MAINPID"] == str(proc.pid)
        assert ready["STATUS"] == "serving 1 of 1 zone(s)"
        before = serial(port)  # answering once READY=1 arrived
        (tmp_path / "zones" / f"{ZONE}zone").write_text(
            zone_text(ZONE, serial=7, extra="new A 192.0.2.7\n")
        )
        proc.send_signal(signal.SIGHUP)
        got = messages(sock, "READY=1")
        assert got[0]["RELOADING"] == "1" and int(got[0]["MONOTONIC_USEC"]) > 0
        assert got[-1]["STATUS"] == "serving 1 of 1 zone(s)"
        assert serial(port) > before
        # a reload with a broken zone: READY=1 again, the status says there was a problem
        (tmp_path / "zones" / f"{ZONE}zone").write_text("garbage\n")
        proc.send_signal(signal.SIGHUP)
        got = messages(sock, "READY=1")
        assert got[-1]["STATUS"] == "serving 1 of 1 zone(s); 1 with a problem (dnsseal ctl zones)"
        proc.send_signal(signal.SIGTERM)
        assert messages(sock, "STOPPING=1")
        assert proc.wait(timeout=20) == 0
    finally:
        stop(proc)
        sock.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify.sock")
    assert sdnotify.notify("READY=1") is False  # logged, never raised
