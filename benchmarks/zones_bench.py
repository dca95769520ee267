"""Many small zones: how long `dnsseal serve` and Knot take until every zone answers signed.

Writes N small unsigned zones (SOA, NS, 5 names with A records each), then for each server,
in the same run and alternating (dnsseal, knot, dnsseal, knot, ...):

* **cold**: an empty key directory and state: the server generates the keys of every zone
  under the default policy (ECDSA P-256 CSK, NSEC) and signs every zone;
* **restart**: the same server stopped (SIGTERM) and started again on its own state.

Each is timed from the process start until every zone answers its SOA query (DO set) with
the SOA and its RRSIG: the zones not signed yet are asked in turn, at most --batch of them
every --interval seconds (bounded by --timeout).  Then the server's RSS (the main process and its
children) is read.  Each server's configuration is printed with the results, and the ratios
to Knot.

* dnsseal: ``dnsseal serve -c``, one ``[zone]`` table per zone with ``dnssec-policy =
  "default"``, one shared ``key-directory`` and ``state-dir``, ``workers`` as --workers.
* Knot: ``knotd`` with ``dnssec-signing: on`` and its default policy (ECDSA P-256 CSK,
  NSEC), ``udp-workers``/``tcp-workers`` = --workers (default: this machine's cores),
  ``zonefile-sync: -1`` (the source files are never rewritten), journal on.

Example (small; this machine's 2 cores are shared, so run it only at small N)::

    .venv/bin/python benchmarks/zones_bench.py --zones 100 --rounds 1

Besides the wall time, the CPU seconds the server used until then are printed (user +
system, from ``/proc``: the main process, and the main process with its children, i.e.
dnsseal's workers and the signing helper of a cold start, which has ended by then and is
counted from the main process's ``cutime``/``cstime``): on a shared machine they vary less
than the wall time.

Every server is started here and stopped by its PID.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchpeers import free_port, stop_process, tool

ROOT = Path(__file__).resolve().parent.parent
# the checkout's own, else the one beside this Python (a worktree run with PYTHONPATH)
DNSSEAL = ROOT / ".venv" / "bin" / "dnsseal"
if not DNSSEAL.exists():
    DNSSEAL = Path(sys.executable).parent / "dnsseal"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NAMES_PER_ZONE = 5
SOA, RRSIG = 6, 46


def zone_names(n: int) -> list[str]:
    return [f"z{i:05d}.bench." for i in range(n)]


def write_zones(d: Path, names: list[str]) -> None:
    d.mkdir(parents=True)
    for name in names:
        lines = [
            f"$ORIGIN {name}",
            "$TTL 3600",
            "@ SOA ns1 hostmaster 1 7200 3600 1209600 3600",
            "@ NS ns1",
            "ns1 A 192.0.2.1",
        ]
        lines += [f"host{j} A 192.0.2.{j + 10}" for j in range(NAMES_PER_ZONE)]
        (d / name.rstrip(".")).write_text("\n".join(lines) + "\n")


@dataclass
class Server:
    name: str
    port: int
    start: Callable[[], subprocess.Popen[bytes]]
    config: str
    proc: subprocess.Popen[bytes] | None = None


def dnsseal_server(d: Path, zones: Path, names: list[str], workers: int) -> Server:
    port = free_port()
    d.mkdir()
    conf = d / "dnsseal.toml"
    head = (
        f'[server]\nlisten = ["127.0.0.1@{port}"]\nworkers = {workers}\n'
        f'state-dir = "{d}/state"\nkey-directory = "{d}/keys"\n'
    )
    body = "".join(
        f'\n[zone."{n}"]\nfile = "{zones / n.rstrip(".")}"\ndnssec-policy = "default"\n'
        for n in names
    )
    conf.write_text(head + body)

    def start() -> subprocess.Popen[bytes]:
        with (d / "dnsseal.log").open("ab") as log:
            return subprocess.Popen(
                [str(DNSSEAL), "serve", "-c", str(conf)], stdout=log, stderr=log
            )

    shown = head + f'[zone."<each of {len(names)} zones>"] file = ..., dnssec-policy = "default"'
    return Server("dnsseal", port, start, shown)


def knot_server(d: Path, zones: Path, names: list[str], workers: int) -> Server:
    port = free_port()
    d.mkdir()
    conf = d / "knot.conf"
    head = f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{d}"
    udp-workers: {workers}
    tcp-workers: {workers}
database:
    storage: "{d}"
log:
  - target: "{d}/knot.log"
    any: warning
template:
  - id: default
    storage: "{zones}"
    file: "%s"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    dnssec-signing: on
"""
    conf.write_text(head + "zone:\n" + "".join(f"  - domain: {n}\n" for n in names))

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [tool("knotd"), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    return Server("knot", port, start, head + f"zone: <each of {len(names)} zones>")


def query(qid: int, name: str) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"  # EDNS 1232, DO
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + qname + b"\x00\x06\x00\x01" + opt


def signed_soa(reply: bytes) -> bool:
    """NOERROR, AA, and an RRSIG among the answers (the SOA's)."""
    if len(reply) < 12 or reply[3] & 0xF or not reply[2] & 0x04:
        return False
    an = struct.unpack_from("!H", reply, 6)[0]
    pos = 12
    while reply[pos]:  # the question name (uncompressed: ours)
        pos += reply[pos] + 1
    pos += 5
    for _ in range(an):
        while True:  # owner: labels or a pointer
            length = reply[pos]
            if length >= 0xC0:
                pos += 2
                break
            pos += length + 1
            if not length:
                break
        rtype, _, _, rdlen = struct.unpack_from("!HHIH", reply, pos)
        if rtype == RRSIG:
            return True
        pos += 10 + rdlen
    return False


def wait_signed(
    server: Server, names: list[str], timeout: float, interval: float, batch: int
) -> float:
    """Seconds since the process start until every zone in ``names`` answered signed.

    Every ``interval`` at most ``batch`` of the zones not signed yet are asked (in turn),
    so a server loading thousands of zones is not also answering thousands of queries a
    second for zones it does not serve yet (the general path's REFUSED)."""
    t0 = time.monotonic()
    server.proc = server.start()
    pending = dict(enumerate(names))
    turn = 0
    deadline = t0 + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        while pending:
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"{server.name}: {len(pending)} zones unsigned at {timeout}s")
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
            ids = sorted(pending)
            turn %= len(ids)
            asked = (ids[turn:] + ids[:turn])[:batch]
            turn += len(asked)
            for qid in asked:
                try:
                    s.sendto(query(qid, pending[qid]), ("127.0.0.1", server.port))
                except OSError:
                    break  # the socket buffer is full: the rest in the next round
            end = time.monotonic() + interval
            while pending and (left := end - time.monotonic()) > 0:
                ready, _, _ = select.select([s], [], [], left)
                if not ready:
                    break
                while True:
                    try:
                        reply = s.recv(65535, socket.MSG_DONTWAIT)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    qid = struct.unpack_from("!H", reply)[0]
                    if qid in pending and signed_soa(reply):
                        del pending[qid]
    return time.monotonic() - t0


def tree_pids(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += tree_pids(int(child))
    except OSError:
        pass
    return out


def rss_mib(pid: int) -> float:
    total = 0.0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def cpu_seconds(pid: int, ended_children: bool = False) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone); with
    ``ended_children``, plus those of its children that ended and were waited for (a
    helper process of the start, gone by the time every zone answers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if ended_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLK_TCK


def stop(server: Server) -> None:
    stop_process(server.proc, timeout=30)
    server.proc = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zones", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1, help="cold + restart runs per server")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--servers", default="dnsseal,knot")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between rounds")
    ap.add_argument("--batch", type=int, default=100, help="zones asked per round at most")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    names = zone_names(args.zones)
    makers = {"dnsseal": dnsseal_server, "knot": knot_server}
    wanted = args.servers.split(",")
    work = Path(tempfile.mkdtemp(prefix="zones-bench-"))
    results: dict[tuple[str, str], list[float]] = {}
    memory: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[tuple[float, float]]] = {}
    configs: dict[str, str] = {}
    try:
        zones = work / "zones"
        write_zones(zones, names)
        for r in range(args.rounds):
            for name in wanted:
                d = work / f"{name}-{r}"
                server = makers[name](
                    d, zones if name == "dnsseal" else d / "zones", names, args.workers
                )
                if name == "knot":  # Knot rewrites nothing with zonefile-sync -1, but copy
                    shutil.copytree(zones, d / "zones")
                configs[name] = server.config
                for phase in ("cold", "restart"):
                    try:
                        took = wait_signed(server, names, args.timeout, args.interval, args.batch)
                        assert server.proc is not None
                        pid = server.proc.pid
                        # the main process, its ended children (the start's signing
                        # helper), every live process of its tree
                        used = [cpu_seconds(pid), cpu_seconds(pid, ended_children=True)]
                        used[1] -= used[0]
                        used += [cpu_seconds(p) for p in tree_pids(pid)[1:]]
                        results.setdefault((name, phase), []).append(took)
                        cpu.setdefault((name, phase), []).append((used[0], sum(used)))
                        memory.setdefault((name, phase), []).append(rss_mib(pid))
                        print(
                            f"round {r + 1} {name} {phase}: {took:.2f} s, CPU {used[0]:.2f} s "
                            f"(with children {sum(used):.2f} s, of which ended "
                            f"{used[1]:.2f} s), load average "
                            f"{os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
                    finally:
                        stop(server)
                if not args.keep:
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    print()
    print(
        f"{args.zones} zones of {NAMES_PER_ZONE + 2} names, default policy, "
        f"{args.rounds} round(s), load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'server':<8} {'phase':<8} {'median s':>9} {'vs knot':>8} {'RSS MiB':>8} "
        f"{'CPU s':>7} {'CPU tree s':>10}"
    )
    for name in wanted:
        for phase in ("cold", "restart"):
            got = results.get((name, phase))
            if not got:
                continue
            med = statistics.median(got)
            base = results.get(("knot", phase))
            ratio = f"{med / statistics.median(base):.2f}x" if base else "-"
            used = cpu[name, phase]
            print(
                f"{name:<8} {phase:<8} {med:>9.2f} {ratio:>8} "
                f"{statistics.median(memory[name, phase]):>8.1f} "
                f"{statistics.median(u[0] for u in used):>7.2f} "
                f"{statistics.median(u[1] for u in used):>10.2f}"
            )
    for name in wanted:
        print(f"\n{name} configuration:\n{configs[name]}")


if __name__ == "__main__":
    main()
