"""``dnsseal signzone`` against a careless operator (issue #13): a key file renamed from
another zone, and runs killed with ``kill -9`` halfway through writing.

- A key file named for the zone that holds another zone's key was passed over by the key
  directory: ``-S`` then signed without it (the zone's only KSK, here) and said nothing.
  BIND's ``dnssec-signzone -S`` loads it and fails ("No self-signed KSK DNSKEY found");
  dnsseal refuses the file by name.
- A killed run leaves its temp file (tens of MB for a large zone) next to the output: the
  next run that writes the same output removes it (the temp file's name carries the PID of
  its writer; a live writer's file is left alone).  The snapshot helper process of a killed
  run exits by itself instead of waiting on its pipes for ever, and so do the signing
  workers of ``-n`` (issue #16: they used to live on, each holding its keys and memory).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_tool, stop

DNSSEAL = Path(sys.executable).parent / "dnsseal"  # the console script next to python
ORIGIN = "example.com"
ZONES = Path(__file__).parent / "zones"


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DNSSEAL), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=os.environ,
    )


def keygen(d: Path, zone: str, *flags: str) -> str:
    r = run("keygen", "-q", "-K", ".", *flags, zone, cwd=d)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.interop
def test_a_key_file_renamed_from_another_zone_is_refused(tmp_path: Path) -> None:
    keygen(tmp_path, ORIGIN)  # the ZSK
    other = keygen(tmp_path, "other.com", "-f", "KSK")  # Kother.com.+013+TAG
    renamed = "K" + ORIGIN + "." + other.removeprefix("Kother.com.")
    for suffix in (".key", ".private"):
        (tmp_path / (other + suffix)).rename(tmp_path / (renamed + suffix))
    (tmp_path / ORIGIN).write_text((ZONES / "good.zone").read_text())

    # BIND signs with what the files hold and fails the zone's verification.
    bind = run_tool(["dnssec-signzone", "-S", "-K", ".", "-o", ORIGIN, "-f", "bind.signed",
                     ORIGIN], cwd=tmp_path, check=False)  # fmt: skip
    assert bind.returncode != 0 and "No self-signed KSK" in bind.stderr, bind.stderr

    r = run("signzone", "-S", "-K", ".", "-o", ORIGIN, "-f", "out.signed", ORIGIN, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{renamed}.key: the key in this file is for other.com., not {ORIGIN}." in lines[0]
    assert not (tmp_path / "out.signed").exists()
    # the same without -S: the directory's keys are chosen by the zone's DNSKEYs then
    r = run("signzone", "-K", ".", "-o", ORIGIN, "-f", "out.signed", ORIGIN, cwd=tmp_path)
    assert r.returncode == 1 and "is for other.com." in r.stderr, r.stderr


def dead_pid() -> int:
    """The PID of a process that has exited (ours, reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_of_the_output_are_removed(tmp_path: Path) -> None:
    keygen(tmp_path, ORIGIN)
    keygen(tmp_path, ORIGIN, "-f", "KSK")
    (tmp_path / ORIGIN).write_text((ZONES / "good.zone").read_text())
    big = b"x" * (1 << 20)
    dead = tmp_path / f".out.signed.{dead_pid()}.abcd1234.tmp"
    dead_ledger = tmp_path / f".out.signed.ledger.{dead_pid()}.abcd1234.tmp"
    unnamed_old = tmp_path / ".out.signed.q1w2e3r4.tmp"  # as written before the PID was in it
    unnamed_new = tmp_path / ".out.signed.z9x8c7v6.tmp"
    live = tmp_path / f".out.signed.{os.getpid()}.abcd1234.tmp"  # a writer still at work
    other = tmp_path / f".other.signed.{dead_pid()}.abcd1234.tmp"  # another output's
    for f in (dead, dead_ledger, unnamed_old, unnamed_new, live, other):
        f.write_bytes(big)
    old = time.time() - 2 * 3600
    os.utime(unnamed_old, (old, old))

    r = run("signzone", "-S", "-K", ".", "-o", ORIGIN, "-f", "out.signed", ORIGIN, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.signed").exists() and (tmp_path / "out.signed.ledger").exists()
    assert not dead.exists() and not dead_ledger.exists() and not unnamed_old.exists()
    assert unnamed_new.exists() and live.exists() and other.exists()
    left = sorted(p.name for p in tmp_path.glob(".*.tmp"))
    assert left == sorted(p.name for p in (unnamed_new, live, other))


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_9_while_writing_then_run_again(tmp_path: Path) -> None:
    keygen(tmp_path, ORIGIN)
    keygen(tmp_path, ORIGIN, "-f", "KSK")
    text = (ZONES / "good.zone").read_text()
    # large enough (over 1 MiB) for the snapshot helper process, and for a write to catch
    text += "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(60000))
    (tmp_path / ORIGIN).write_text(text)
    args = [str(DNSSEAL), "signzone", "-q", "-S", "-K", ".", "-o", ORIGIN, "-f", "out.signed",
            ORIGIN]  # fmt: skip
    proc = subprocess.Popen(args, cwd=tmp_path)
    helpers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        temps: list[Path] = []
        while not temps and proc.poll() is None and time.monotonic() < deadline:
            temps = list(tmp_path.glob(".out.signed.*.tmp"))
            time.sleep(0.01)
        assert temps, "signzone finished (or hung) before its output was being written"
        helpers = children(proc.pid)
        assert helpers, "no snapshot helper process"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert all(p.exists() for p in temps) and not (tmp_path / "out.signed").exists()
        # the helper notices its parent is gone and exits
        deadline = time.monotonic() + 20
        while any(alive(h) for h in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(h) for h in helpers), "the helper process outlived signzone"
    finally:
        stop(proc)
        for h in helpers:
            if alive(h):
                os.kill(h, signal.SIGKILL)

    r = run("signzone", "-q", "-S", "-K", ".", "-o", ORIGIN, "-f", "out.signed", ORIGIN,
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not list(tmp_path.glob(".*.tmp"))
    assert run("verify", "-o", ORIGIN, "out.signed", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("sub.example.com. 300 IN SOA ns1.example.com. h.example.com. 1 2 3 4 5",
         "SOA record at sub.example.com., below the zone apex"),
        ("www.example.org. 300 IN A 192.0.2.1", "out-of-zone record www.example.org."),
        ("*.w.example.com. 300 IN NS ns1.example.com.", "NS record at the wildcard name"),
        ("example.com. 300 IN SOA ns2.example.com. h.example.com. 9 2 3 4 5",
         "a second SOA record at the zone apex"),
        ("x.example.com. 4294967296 IN A 192.0.2.1", "TTL 4294967296 out of range"),
    ],
    ids=["soa_below_apex", "out_of_zone", "ns_at_wildcard", "two_apex_soa", "ttl"],
)  # fmt: skip
def test_re_signing_an_edited_signed_file_refuses_the_same_defects(
    tmp_path: Path, line: str, reason: str
) -> None:
    """The re-sign from the ledger's snapshot reads only the changed lines, with the fast
    parser: a defect there sends it to the careful reader, which reports it."""
    keygen(tmp_path, ORIGIN)
    keygen(tmp_path, ORIGIN, "-f", "KSK")
    (tmp_path / ORIGIN).write_text((ZONES / "good.zone").read_text())
    signed = ("signzone", "-q", "-S", "-K", ".", "-o", ORIGIN)
    assert run(*signed, "-f", "s1", ORIGIN, cwd=tmp_path).returncode == 0
    text = (tmp_path / "s1").read_text()
    (tmp_path / "s1").write_text(text + line + "\n")
    n = text.count("\n") + 1
    r = run(*signed, "-f", "s2", "s1", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"Error: s1:{n}: " + r.stderr.split(f"s1:{n}: ")[1].strip()
    ]
    assert reason in r.stderr
    assert not (tmp_path / "s2").exists()


@pytest.mark.slow
def test_kill_9_while_signing_ends_the_worker_processes(tmp_path: Path) -> None:
    """``-n 2`` signs in a pool of two worker processes; ``kill -9`` of signzone gives it no
    chance to shut the pool down, and each worker, blocked on its pool's pipe (whose write
    end it holds itself), would wait for ever.  Each watches its parent and exits."""
    keygen(tmp_path, ORIGIN)
    keygen(tmp_path, ORIGIN, "-f", "KSK")
    text = (ZONES / "good.zone").read_text()
    text += "".join(f"w{i} A 192.0.2.{i % 250 + 1}\n" for i in range(40000))
    (tmp_path / ORIGIN).write_text(text)
    # --no-ledger: no snapshot helper, so the children are the signing workers
    args = [str(DNSSEAL), "signzone", "-q", "-S", "-K", ".", "-o", ORIGIN, "-f", "out.signed",
            "-n", "2", "--no-ledger", ORIGIN]  # fmt: skip
    proc = subprocess.Popen(args, cwd=tmp_path)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            workers = [w for w in children(proc.pid) if alive(w)]
            time.sleep(0.01)
        assert len(workers) == 2, "signzone finished (or hung) before its workers started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if alive(w)], "signing workers outlived signzone"
    finally:
        stop(proc)
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)
    assert not (tmp_path / "out.signed").exists()
