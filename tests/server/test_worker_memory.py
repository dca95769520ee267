"""Forked workers share the loaded zone instead of copying it (issue #15).

``server.workers = 2`` loads the zone once and forks: the worker shares the main process's
pages copy-on-write as long as neither process writes to them.  Writing an object's
reference count is a write, so a walk over every node after the fork (the worker building
its own answer table, the main process's watcher walking every RRSIG for the signature
horizon) copied most of the zone into both processes: a 100k-name presigned zone served
with 827 MiB of PSS where one copy is ~500 MiB.  Measured here from the kernel's own
accounting (``/proc/PID/smaps_rollup``) on a zone signed by dnssec-signzone, after both
processes answered queries and the main process's watcher ran.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import free_port, require_tool, stop

DNSSEAL = Path(sys.executable).parent / "dnsseal"  # the console script next to python
ORIGIN = "mem.example."
HOSTS = 20_000


def _signed_zone(d: Path, hosts: int) -> Path:
    d.mkdir(exist_ok=True)
    lines = ["$TTL 3600", "@ SOA ns1 hostmaster 1 7200 3600 1209600 300", "@ NS ns1"]
    lines.append("ns1 A 127.0.0.1")
    for i in range(hosts):
        lines += [f"host{i} A 192.0.{(i >> 8) & 255}.{i & 255}", f'host{i} TXT "host {i}"']
    (d / "zone.db").write_text("\n".join(lines) + "\n")
    for extra in (["-f", "KSK"], []):
        subprocess.run(
            [require_tool("dnssec-keygen"), "-q", "-a", "ECDSAP256SHA256", *extra, ORIGIN],
            cwd=d,
            check=True,
            capture_output=True,
            timeout=60,
        )
    subprocess.run(
        [require_tool("dnssec-signzone"), "-q", "-S", "-K", ".", "-o", ORIGIN, "-f",
         "zone.signed", "-e", "now+30d", "zone.db"],
        cwd=d,
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return d / "zone.signed"


def _memory(pid: int) -> dict[str, int]:
    """The kernel's memory accounting of ``pid`` (kB)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":")
        out[key.strip()] = int(value.split()[0])
    return out


def _ask(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    for _ in range(5):
        try:
            return dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"no answer for {name} {rtype}")


def _start(
    d: Path, signed: Path, state_dir: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``dnsseal serve`` of ``signed`` with two processes (and ``state_dir``), once both
    answer."""
    port = free_port()
    conf = d / "dnsseal.toml"
    state = f'state-dir = "{state_dir}"\n' if state_dir is not None else ""
    conf.write_text(
        f'[server]\nlisten = ["127.0.0.1@{port}"]\nworkers = 2\n{state}\n'
        f'[zone."{ORIGIN}"]\nfile = "{signed}"\npresigned = true\n'
    )
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen([str(DNSSEAL), "serve", "-c", str(conf)], stdout=out, stderr=out)
    deadline = time.monotonic() + 120
    while True:  # both processes answer: several answers in a row
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc, timeout=15)
            raise AssertionError((d / "out.txt").read_text())
        if all(_ask(port, ORIGIN, "SOA").answer for _ in range(20)):
            return proc, port
        time.sleep(0.2)


@pytest.mark.interop
@pytest.mark.slow
def test_the_worker_shares_the_zone_after_answering(tmp_path: Path) -> None:
    signed = _signed_zone(tmp_path, HOSTS)
    proc, port = _start(tmp_path, signed)
    try:
        for i in range(0, HOSTS, 50):  # names, NODATA and NXDOMAIN, spread over both
            assert _ask(port, f"host{i}.{ORIGIN}", "TXT").answer
            assert _ask(port, f"nohost{i}.{ORIGIN}", "A").rcode() == dns.rcode.NXDOMAIN
        time.sleep(3)  # the main process's watcher looks every second
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        for pid in (proc.pid, int(children[0])):
            m = _memory(pid)
            private = m["Private_Clean"] + m["Private_Dirty"]
            # Before: 46% of the main process (20k names); 60-70% of each at 100k.
            assert private < 0.25 * m["Rss"], (pid, m)
        loaded = _memory(proc.pid)["Rss"]
    finally:
        stop(proc, timeout=15)
    # The main process after loading, over the same server with a one-name zone: the
    # snapshot without the parser's leftovers (20k names, a 13 MiB file: 57 MiB before,
    # when the file was parsed in this process; 42 MiB after).
    proc, _ = _start(tmp_path / "small", _signed_zone(tmp_path / "small", 1))
    try:
        base = _memory(proc.pid)["Rss"]
    finally:
        stop(proc, timeout=15)
    assert loaded - base < 3.7 * signed.stat().st_size / 1024, (loaded, base)


def _journaled(state_dir: Path) -> int | None:
    """The serial of the zone's base version in the journal, or None."""
    path = state_dir / "journal.sqlite"
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT serial FROM base WHERE zone = ?", (ORIGIN,)).fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:  # (its tables not made yet)
        return None
    return None if row is None else int(row[0])


@pytest.mark.interop
@pytest.mark.slow
def test_journaling_the_loaded_zone_does_not_copy_it(tmp_path: Path) -> None:
    """With a state-dir the main process journals the loaded zone (every record read, as
    lines); done after the fork, that walk wrote the reference count of every object of the
    zone and copied its pages into the main process (and so out of the worker's share):
    20k names, before: main 52% private (51 of 99 MiB), worker 55% (43 of 77 MiB)."""
    signed = _signed_zone(tmp_path, HOSTS)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    proc, port = _start(tmp_path, signed, state_dir)
    try:
        deadline = time.monotonic() + 120
        while _journaled(state_dir) != 1:
            assert time.monotonic() < deadline, "the zone was not journaled"
            time.sleep(0.2)
        for i in range(0, HOSTS, 200):
            assert _ask(port, f"host{i}.{ORIGIN}", "TXT").answer
        time.sleep(3)  # the start's commit path (the journal's record) and the watcher ran
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        shares = []  # (pid, private kB, RSS kB)
        for pid in (proc.pid, int(children[0])):
            m = _memory(pid)
            shares.append((pid, m["Private_Clean"] + m["Private_Dirty"], m["Rss"]))
        assert all(private < 0.25 * rss for _, private, rss in shares), shares
    finally:
        stop(proc, timeout=15)
