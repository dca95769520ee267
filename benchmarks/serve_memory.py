"""Where `dnsseal serve`'s memory goes with one large presigned zone, per process.

Makes the zone as serve_bench.py does (N hosts, signed by dnssec-signzone, NSEC), starts
``dnsseal serve`` alone (``workers`` processes, no peer servers: compare trees of dnsseal
in alternating runs with ``--src``), and prints for each process the kernel's accounting
from ``/proc/PID/smaps_rollup`` (RSS, PSS, private and shared MiB) once it answers, then
again after a dnsperf run of each mix (which makes every process read its pages), with
the QPS of those runs and the load average.  Example::

    .venv/bin/python benchmarks/serve_memory.py --hosts 100000 --zone-dir /tmp/z100k
    .venv/bin/python benchmarks/serve_memory.py --zone-dir /tmp/z100k --src /tmp/old/src

Every process is started here and stopped by its PID.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchpeers import free_port, stop_process, tool
from serve_bench import ORIGIN, sign, write_queries

DNSSEAL = Path(sys.executable).parent / "dnsseal"  # the console script next to this python


def memory(pid: int) -> dict[str, int]:
    """smaps_rollup of ``pid`` in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":")
        out[key.strip()] = int(value.split()[0]) // 1024
    return out


def peak(pid: int) -> int:
    """The highest RSS of ``pid`` so far (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def journaled(path: Path) -> bool:
    """Whether the journal at ``path`` holds a version of the zone."""
    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute("SELECT COUNT(*) FROM base").fetchone()[0] > 0
    except sqlite3.OperationalError:  # (not made yet, or locked)
        return False


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def report(label: str, pid: int) -> None:
    total = 0
    for p in [pid, *children(pid)]:
        m = memory(p)
        total += m["Pss"]
        private = m["Private_Clean"] + m["Private_Dirty"]
        shared = m["Shared_Clean"] + m["Shared_Dirty"]
        print(f"  {label} pid {p}: RSS {m['Rss']} (peak {peak(p)})  PSS {m['Pss']}  "
              f"private {private}  shared {shared} MiB")  # fmt: skip
    print(f"  {label}: PSS summed {total} MiB (load {os.getloadavg()[0]:.2f})", flush=True)


def answers(port: int) -> bool:
    got = subprocess.run(
        [tool("kdig"), "+short", "+time=1", "+retry=0", "-p", str(port), "@127.0.0.1", ORIGIN,
         "SOA"],
        capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip
    return bool(got.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=100_000)
    ap.add_argument("--zone-dir", type=Path, help="keep (and reuse) the signed zone here")
    ap.add_argument("--src", type=Path, help="the dnsseal tree to run (PYTHONPATH)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=8, help="dnsperf run per mix")
    ap.add_argument(
        "--state-dir",
        action="store_true",
        help="serve with a new (empty) state-dir: the zone is journaled at the start",
    )
    ap.add_argument("--no-perf", action="store_true", help="only the ready numbers")
    args = ap.parse_args()
    zdir = args.zone_dir or Path(tempfile.mkdtemp(prefix="servemem"))
    zdir.mkdir(parents=True, exist_ok=True)
    signed = zdir / "zone.signed"
    if not signed.exists():
        sign(zdir, args.hosts, False)
    mixes = {"mixed": 0.1, "random-nxdomain": 1.0}
    for mix, share in mixes.items():
        if not (zdir / f"q-{mix}.txt").exists():
            write_queries(zdir / f"q-{mix}.txt", args.hosts, share, 1_000_000, 1)
    port = free_port()
    run = Path(tempfile.mkdtemp(prefix="servemem-run"))
    conf = run / "dnsseal.toml"
    state = f'state-dir = "{run / "state"}"\n' if args.state_dir else ""
    if args.state_dir:
        (run / "state").mkdir()
    conf.write_text(
        f'[server]\nlisten = ["127.0.0.1@{port}"]\nworkers = {args.workers}\n{state}\n'
        f'[zone."{ORIGIN}"]\nfile = "{signed}"\npresigned = true\n'
    )
    env = dict(os.environ)
    if args.src is not None:
        env["PYTHONPATH"] = str(args.src)
    started = time.monotonic()
    with (run / "dnsseal.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(DNSSEAL), "serve", "-c", str(conf)], env=env, stdout=log, stderr=log
        )
    try:
        while not answers(port):
            if proc.poll() is not None:
                sys.exit(f"dnsseal stopped: see {run / 'dnsseal.log'}")
            time.sleep(0.2)
        print(f"dnsseal ({args.src or 'installed'}), {args.hosts} hosts, workers = "
              f"{args.workers}: answers after {time.monotonic() - started:.1f} s")  # fmt: skip
        time.sleep(2)
        if args.state_dir:  # until the main process has journaled the zone
            while not journaled(run / "state" / "journal.sqlite"):
                time.sleep(0.5)
            print(f"  journaled after {time.monotonic() - started:.1f} s")
            time.sleep(2)
        report("ready", proc.pid)
        for mix in [] if args.no_perf else mixes:
            out = subprocess.run(
                [tool("dnsperf"), "-s", "127.0.0.1", "-p", str(port), "-d",
                 str(zdir / f"q-{mix}.txt"), "-l", str(args.seconds), "-c", "4", "-q", "200",
                 "-D", "-t", "2"],
                capture_output=True, text=True, check=False, timeout=args.seconds + 60,
            ).stdout  # fmt: skip
            lines = [x.strip() for x in out.splitlines() if "per second" in x or "lost" in x]
            print(f"  {mix}: " + " | ".join(lines))
        report("after the runs", proc.pid)
    finally:
        stop_process(proc)


if __name__ == "__main__":
    main()
