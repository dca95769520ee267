"""`dnsseal ctl` for operators (issue #17): reload with per-zone failures and exit codes,
JSON with real structure and ISO 8601 UTC times, the next step, freeze / thaw / sync,
notify saying what it sent, retransfer."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

from automation.conftest import (
    DNSSEAL,
    TSIG_SECRET,
    dnsseal_serve,
    write_config,
    zone_text,
)
from conftest import free_port

GOOD = "good.example."
BAD = "bad.example."
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def ctl(d: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DNSSEAL), "ctl", "-c", str(d / "dnsseal.toml"), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ctl_json(d: Path, *args: str) -> dict[str, Any]:
    proc = ctl(d, "--json", *args)
    reply: dict[str, Any] = json.loads(proc.stdout)
    assert (proc.returncode == 0) == bool(reply["ok"]), (proc, reply)
    return reply


def check_times(doc: Any, path: str = "") -> int:
    """Every time-like field is ISO 8601 UTC text (or null); returns how many were seen."""
    seen = 0
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("now", "since", "started-at", "loaded-at") or k.endswith("-time"):
                assert v is None or (isinstance(v, str) and ISO.match(v)), (path + k, v)
                seen += v is not None
            seen += check_times(v, f"{path}{k}.")
    elif isinstance(doc, list):
        for v in doc:
            seen += check_times(v, path)
    return seen


def update(port: int, zone: str, *adds: str) -> int:
    ring = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})
    u = dns.update.UpdateMessage(zone, keyring=ring, keyalgorithm="hmac-sha256")
    for rr in adds:
        name, ttl, rtype, data = rr.split(maxsplit=3)
        u.add(name, int(ttl), rtype, data)
    return int(dns.query.tcp(u, "127.0.0.1", port=port, timeout=10).rcode())


def ask(port: int, name: str, rtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rtype)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def test_reload_failures_json_next_step_freeze_thaw_sync(tmp_path: Path) -> None:
    port = free_port()
    write_config(
        tmp_path,
        port,
        {GOOD: zone_text(GOOD), BAD: zone_text(BAD)},
        zone_options={GOOD: 'allow-update = ["key ddns"]'},
    )
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], GOOD, port):
        # status: real structure, ISO times, units in the names
        status = ctl_json(tmp_path, "status")["data"]
        assert isinstance(status["uptime-seconds"], int)
        assert ISO.match(status["started-at"]) and ISO.match(status["now"])
        assert status["listen"] == [f"127.0.0.1@{port}"]
        assert set(status["zone-conditions"]) == {"ok", "waiting", "problem"}
        text = ctl(tmp_path, "status").stdout
        assert f"listen: 127.0.0.1@{port}" in text and "['" not in text and "None" not in text

        # zone-status: ISO times, keys as objects, and what to do next: the KSK waits for
        # its DS (checkds explicit: nobody is asked)
        deadline = time.monotonic() + 30
        while True:
            zone = ctl_json(tmp_path, "zone-status", GOOD)["data"]
            if "submit DS" in zone["next-step"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert check_times(zone) >= 3, zone
        for k in ("last-signed", "next-signing", "signature-expiry-horizon"):
            assert ISO.match(zone[k]), (k, zone[k])
        assert all(isinstance(k["tag"], int) and k["role"] in ("ksk", "zsk") for k in zone["keys"])
        (ksk,) = [k["tag"] for k in zone["keys"] if k["role"] == "ksk"]
        assert zone["next-step"] == (
            f"submit DS {ksk} to the parent, then "
            f"`dnsseal ctl dnssec -checkds -key {ksk} published good.example`"
        )
        human = ctl(tmp_path, "zone-status", GOOD).stdout
        assert f"next-step: submit DS {ksk}" in human and "None" not in human

        # dnssec -status --json (the flag where an rndc user types it)
        dstat = ctl_json(tmp_path, "dnssec", "-status", GOOD)["data"]
        again = json.loads(ctl(tmp_path, "dnssec", "-status", GOOD, "--json").stdout)["data"]
        assert again["keys"] == dstat["keys"]
        assert dstat["dnssec-policy"] == "fast" and check_times(dstat) >= 1
        roles = [(k["role"], k["tag"]) for k in dstat["keys"]]
        assert roles == sorted(roles)  # stable order
        for k in dstat["keys"]:
            assert isinstance(k["tag"], int) and isinstance(k["states"], dict)
            assert ISO.match(k["timings"]["publish"]), k

        # reload: a zone that fails makes the reload fail, named, with exit status 1
        (tmp_path / "zones" / f"{BAD}zone").write_text("$ORIGIN bad.example.\n@ SOA oops\n")
        proc = ctl(tmp_path, "reload")
        assert proc.returncode == 1, proc
        assert "reloaded 1 of 2 zone(s); 1 failed" in proc.stdout
        assert f"problem: {BAD}: " in proc.stderr and "error: reload failed" in proc.stderr
        reply = ctl_json(tmp_path, "reload")
        assert [(z["zone"], z["ok"]) for z in reply["data"]["zones"]] == [
            (BAD, False),
            (GOOD, True),
        ]
        assert ctl(tmp_path, "reload", GOOD).returncode == 0
        one = ctl(tmp_path, "reload", BAD)
        assert one.returncode == 1 and f"problem: {BAD}: " in one.stderr
        assert ctl(tmp_path, "reload", "nothere.example").returncode == 1
        (tmp_path / "zones" / f"{BAD}zone").write_text(zone_text(BAD, serial=2))
        fixed = ctl(tmp_path, "reload")
        assert fixed.returncode == 0 and "reloaded 2 of 2 zone(s)" in fixed.stdout, fixed

        # an update, then sync writes it into the zone file
        assert update(port, GOOD, "dyn1 2 A 192.0.2.1") == dns.rcode.NOERROR
        assert ctl(tmp_path, "sync", GOOD).returncode == 0
        source = tmp_path / "zones" / f"{GOOD}zone"
        assert re.search(
            r"^dyn1\.good\.example\.\s+2\s+IN\s+A\s+192\.0\.2\.1", source.read_text(), re.M
        )

        # freeze: updates refused; the operator edits the file; thaw loads it
        frozen = ctl(tmp_path, "freeze", GOOD)
        assert frozen.returncode == 0, frozen
        assert ctl_json(tmp_path, "zone-status", GOOD)["data"]["frozen"] is True
        assert update(port, GOOD, "dyn2 2 A 192.0.2.2") == dns.rcode.REFUSED
        source.write_text(source.read_text() + "edited 2 IN A 192.0.2.9\n")
        thawed = ctl(tmp_path, "thaw", GOOD)
        assert thawed.returncode == 0 and "thawed" in thawed.stdout, thawed
        r = ask(port, f"edited.{GOOD}")
        assert r.rcode() == dns.rcode.NOERROR and r.answer, r
        assert ask(port, f"dyn1.{GOOD}").answer  # the update was not lost nor doubled
        assert update(port, GOOD, "dyn2 2 A 192.0.2.2") == dns.rcode.NOERROR
        assert ctl(tmp_path, "thaw", GOOD).returncode == 1  # not frozen

        # notify without targets says so; retransfer of a zone without primaries fails
        out = ctl(tmp_path, "notify", GOOD)
        assert out.returncode == 0 and "no also-notify targets" in out.stdout
        bad = ctl(tmp_path, "retransfer", GOOD)
        assert bad.returncode == 1 and "not a secondary zone" in bad.stderr


class _Acker:
    """A UDP socket on loopback that acknowledges NOTIFY (and counts them)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = dns.message.from_wire(data, ignore_trailing=True, keyring=None)
            if msg.opcode() == dns.opcode.NOTIFY:
                self.seen.append(msg.question[0].name.to_text())
                self.sock.sendto(dns.message.make_response(msg).to_wire(), addr)

    def close(self) -> None:
        self.done = True
        self.thread.join()
        self.sock.close()


def test_notify_says_what_it_sent(tmp_path: Path) -> None:
    port = free_port()
    acker = _Acker()
    dead = free_port()
    try:
        write_config(
            tmp_path,
            port,
            {GOOD: zone_text(GOOD)},
            zone_options={GOOD: f'also-notify = ["127.0.0.1@{acker.port}"]'},
        )
        with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], GOOD, port):
            reply = ctl_json(tmp_path, "notify", GOOD)
            data = reply["data"]
            assert data["zone"] == GOOD and isinstance(data["serial"], int)
            assert data["targets"] == [
                {
                    "target": f"127.0.0.1@{acker.port}",
                    "acknowledged": True,
                    "result": f"acknowledged serial {data['serial']}",
                }
            ]
            assert GOOD in acker.seen
            text = ctl(tmp_path, "notify", GOOD).stdout
            # The key manager may publish a new version between the two commands (on a busy
            # machine it does): the text names the serial it sent and its acknowledgement.
            sent = re.search(r"NOTIFY serial (\d+) sent to 1 target\(s\)", text)
            assert sent is not None and int(sent[1]) >= data["serial"], text
            assert f"127.0.0.1@{acker.port}: acknowledged serial {sent[1]}" in text
    finally:
        acker.close()
    assert dead  # (a second port was reserved so the acker's never collides)


def test_reload_of_a_broken_signed_zone_exits_non_zero(tmp_path: Path) -> None:
    """Regression: a zone signed here whose file no longer parses kept serving its old
    data (right) but `ctl reload` said "reloaded" and exited 0 (wrong)."""
    port = free_port()
    write_config(tmp_path, port, {GOOD: zone_text(GOOD)})
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], GOOD, port):
        (tmp_path / "zones" / f"{GOOD}zone").write_text("$ORIGIN good.example.\n@ SOA x\n")
        proc = ctl(tmp_path, "reload")
        assert proc.returncode == 1, proc
        assert GOOD in proc.stderr, proc
        assert ask(port, f"www.{GOOD}").answer  # still served from the previous data
