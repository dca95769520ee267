"""Query throughput of `dnsseal serve` against Knot and NSD serving the same signed zone.

Builds a zone of N hosts (A, AAAA, TXT, MX each), signs it with dnssec-signzone (NSEC, or
NSEC3 with --nsec3), starts dnsseal, knotd and nsd on free loopback ports, and runs dnsperf
(DO bit set) against each in the same run, for two query mixes:

* ``mixed``: 90% existing names (A, AAAA, TXT, MX), 10% random non-existent names;
* ``random-nxdomain``: 100% random non-existent names (the "random subdomain" attack).

All servers stay up for the whole run and are measured in alternating rounds (--rounds,
default 3; the median is reported, with the ratio to Knot within each round), because this
machine's other load drifts within minutes.  Prints QPS, lost queries, latency (mean;
percentiles from a second, rate-limited dnsperf -v run in the last round), the server's
CPU time per query (user + system over all its processes: steadier than QPS on a busy
machine), each server's RSS after loading (the main process) and PSS after the runs, and
the ratios against Knot.
Every server gets the same number of workers (``--workers``, default: this machine's cores):
dnsseal ``workers`` processes, Knot ``udp-workers``/``tcp-workers`` threads (its default is
one per core), NSD ``server-count`` processes (its default is 1, so it is set); response
rate limiting is off in all of them.  Each server's configuration is printed with the
results, and the time each server takes to load the zone.  The zone is written by dnssec-signzone
with ``-O full`` (one record per line), the form dnsseal's fast zone parser reads; the
server builds its snapshot from the wire-based zone model (no dnspython object per record).
Example (small and quick)::

    .venv/bin/python benchmarks/serve_bench.py --hosts 2000 --seconds 3

Every server is started here and stopped by its PID.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchpeers import free_port, stop_process, tool

ROOT = Path(__file__).resolve().parent.parent
DNSSEAL = ROOT / ".venv" / "bin" / "dnsseal"
ORIGIN = "bench.example."
TYPES = ("A", "AAAA", "TXT", "MX")


def make_zone(hosts: int) -> str:
    lines = [
        "$TTL 3600",
        "@ SOA ns1 hostmaster 1 7200 3600 1209600 300",
        "@ NS ns1",
        "ns1 A 127.0.0.1",
    ]
    for i in range(hosts):
        h = f"host{i}"
        lines += [
            f"{h} A 192.0.{(i >> 8) & 255}.{i & 255}",
            f"{h} AAAA 2001:db8::{i >> 16:x}:{i & 0xFFFF:x}",
            f'{h} TXT "host {i}"',
            f"{h} MX 10 mail.{h}",
        ]
    return "\n".join(lines) + "\n"


def sign(workdir: Path, hosts: int, nsec3: bool) -> Path:
    (workdir / "zone.db").write_text(make_zone(hosts))
    for extra in (["-f", "KSK"], []):
        subprocess.run(
            [tool("dnssec-keygen"), "-q", "-a", "ECDSAP256SHA256", *extra, ORIGIN],
            cwd=workdir,
            check=True,
            capture_output=True,
        )
    args = ["-3", "-", "-H", "0"] if nsec3 else []
    subprocess.run(
        [
            tool("dnssec-signzone"),
            "-q",
            "-S",
            "-K",
            ".",
            "-o",
            ORIGIN,
            "-f",
            "zone.signed",
            "-O",
            "full",
            "-e",
            "now+30d",
            *args,
            "zone.db",
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    return workdir / "zone.signed"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]


def start_dnsseal(d: Path, signed: Path, workers: int) -> Server:
    port = free_port()
    conf = d / "dnsseal.toml"
    conf.write_text(
        f'[server]\nlisten = ["127.0.0.1@{port}"]\nworkers = {workers}\n\n'
        f'[zone."{ORIGIN}"]\nfile = "{signed}"\npresigned = true\n'
    )
    cmd = [str(DNSSEAL), "serve", "-c", str(conf)]
    with (d / "dnsseal.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    return Server("dnsseal", port, proc)


def start_knot(d: Path, signed: Path, workers: int) -> Server:
    port = free_port()
    kd = d / "knot"
    kd.mkdir()
    conf = kd / "knot.conf"
    conf.write_text(
        f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{kd}"
    udp-workers: {workers}
    tcp-workers: {workers}
database:
    storage: "{kd}"
log:
  - target: "{kd}/knot.log"
    any: warning
template:
  - id: default
    storage: "{kd}"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: {ORIGIN}
    file: "{signed}"
"""
    )
    proc = subprocess.Popen(
        [tool("knotd"), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Server("knot", port, proc)


def start_nsd(d: Path, signed: Path, workers: int) -> Server:
    port = free_port()
    nd = d / "nsd"
    nd.mkdir()
    conf = nd / "nsd.conf"
    conf.write_text(
        f"""server:
    ip-address: 127.0.0.1
    port: {port}
    username: ""
    chroot: ""
    zonesdir: "{nd}"
    database: ""
    zonelistfile: "{nd}/zone.list"
    xfrdfile: "{nd}/xfrd.state"
    pidfile: "{nd}/nsd.pid"
    server-count: {workers}
    verbosity: 0
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: {ORIGIN}
    zonefile: "{signed}"
"""
    )
    proc = subprocess.Popen(
        [tool("nsd"), "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Server("nsd", port, proc)


def wait_ready(server: Server, timeout: float) -> None:
    """Until the server answers the zone's SOA (a query built by hand: no dnspython here)."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in ORIGIN.rstrip(".").split(".")) + b"\0"
    query = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x06\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
            s.sendto(query, ("127.0.0.1", server.port))
            try:
                reply = s.recv(4096)
                if reply[:2] == b"\x12\x34" and reply[3] & 0xF == 0 and reply[7] > 0:
                    return
            except OSError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not come up")


def stop(server: Server) -> None:
    stop_process(server.proc)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pss_mib(pid: int) -> float:
    """Proportional set size: pages shared by forked processes counted once in total."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_pss_mib(pid: int) -> float:
    """PSS of ``pid`` and its child processes (dnsseal's workers, NSD's server)."""
    total = pss_mib(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += pss_mib(int(child))
    return total


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (dnsseal's workers, NSD's server and xfrd)."""
    out = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += tree_pids(int(child))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (all their threads) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def random_label(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(12))


def write_queries(path: Path, hosts: int, nx_share: float, count: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(count):
            if rng.random() < nx_share:
                f.write(f"{random_label(rng)}.{ORIGIN} A\n")
            else:
                f.write(f"host{rng.randrange(hosts)}.{ORIGIN} {rng.choice(TYPES)}\n")


@dataclass
class Result:
    qps: float
    sent: int
    completed: int
    lost: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    cpu_us: float = float("nan")  # the server's CPU time per completed query


def _field(text: str, label: str) -> float:
    m = re.search(rf"{label}:\s+([0-9.]+)", text)
    return float(m.group(1)) if m else float("nan")


LATENCY_LINE = re.compile(r"^> \S+ .* ([0-9]+\.[0-9]+)$")


def _dnsperf(server: Server, queries: Path, seconds: float, clients: int, *extra: str) -> str:
    return subprocess.run(
        [
            tool("dnsperf"),
            "-s",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-d",
            str(queries),
            "-l",
            str(seconds),
            "-c",
            str(clients),
            "-q",
            "200",
            "-D",
            "-t",
            "2",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    ).stdout


def run_dnsperf(
    server: Server, queries: Path, seconds: float, clients: int, latency: bool = True
) -> Result:
    """Throughput from an unthrottled run; latency percentiles (when ``latency``) from a
    second, shorter run with per-query output (-v) at half that rate (printing every query
    costs dnsperf CPU, so it must not be part of the throughput run)."""
    pids = tree_pids(server.proc.pid)
    cpu0 = cpu_seconds(pids)
    out = _dnsperf(server, queries, seconds, clients)
    cpu = cpu_seconds(pids) - cpu0
    qps = _field(out, "Queries per second")
    lat: list[float] = []
    if latency:
        rate = str(max(100, int(qps / 2))) if not math.isnan(qps) else "1000"
        verbose = _dnsperf(server, queries, min(seconds, 2), clients, "-v", "-Q", rate)
        lat = sorted(
            float(m.group(1)) * 1000
            for line in verbose.splitlines()
            if (m := LATENCY_LINE.match(line))
        )

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")

    completed = int(_field(out, "Queries completed"))
    return Result(
        cpu_us=cpu / completed * 1e6 if completed else float("nan"),
        qps=qps,
        sent=int(_field(out, "Queries sent")),
        completed=int(_field(out, "Queries completed")),
        lost=int(_field(out, "Queries lost")),
        mean_ms=_field(out, "Average Latency \\(s\\)") * 1000,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
    )


def answer_cost(zone: Path, hosts: int, count: int = 20_000) -> None:
    """In-process cost of dnsseal's answers (no sockets) on wire queries for the zone file
    ``zone`` (loaded with snapshot.load_text), per mix: the byte path (WireTable) on first
    touch and again, a response-cache hit as the UDP thread does it, and the general path
    (Engine.handle with the byte path off and its cache cleared) for comparison."""
    from dnsseal.proto.snapshot import load_text

    t0 = time.monotonic()
    snap = load_text(zone.read_text(), ORIGIN, path=str(zone))
    print(f"loaded {zone} in {time.monotonic() - t0:.1f}s ({len(snap.nodes)} names)")
    for mix, share in (("mixed", 0.10), ("random-nxdomain", 1.0)):
        _answer_cost_mix(snap, mix, share, hosts, count)


def _answer_cost_mix(snap: Any, mix: str, share: float, hosts: int, count: int) -> None:
    import dns.message

    from dnsseal.proto.engine import Engine, ServedZone
    from dnsseal.proto.wiretable import WireTable

    rng = random.Random(7)
    wires = []
    for i in range(count):
        if rng.random() < share:
            name, rtype = f"{random_label(rng)}.{ORIGIN}", "A"
        else:
            name, rtype = f"host{rng.randrange(hosts)}.{ORIGIN}", rng.choice(TYPES)
        q = dns.message.make_query(name, rtype, want_dnssec=True)
        q.id = i & 0xFFFF
        wires.append(q.to_wire())
    warm = WireTable([snap], {})
    cache = {w[2:]: (warm.answer(w, False, 1232) or b"")[2:] for w in wires}
    answer = WireTable([snap], {}).answer
    general = Engine({snap.origin: ServedZone(snap)})
    general.wire = WireTable([], {})

    def byte_path(w: bytes) -> None:
        answer(w, False, 1232)

    def cache_hit(w: bytes) -> None:
        _ = w[:2] + cache[w[2:]]

    native = _c_lanes(snap)

    def general_path(w: bytes) -> None:
        general.cache.clear()
        general.handle(w, False)

    runs = (
        ("byte path, first touch", byte_path),
        ("byte path, again", byte_path),
        ("response cache hit", cache_hit),
        ("general path", general_path),
        *((("C loop's lanes (no socket)", native),) if native else ()),
    )
    for label, fn in runs:
        t0 = time.perf_counter()
        for w in wires:
            fn(w)
        cost = (time.perf_counter() - t0) / count * 1e6
        print(f"{mix:16} {label:24} {cost:7.1f} us/query")


def _c_lanes(snap: Any) -> Callable[[bytes], None] | None:
    """What the C datagram loop does per query without the socket (the names and NXDOMAIN
    lanes, then the response cache), or None where the extension is not built."""
    try:
        from dnsseal.server import _udpfast
    except ImportError:
        return None
    from dnsseal.proto.wiretable import NATIVE_HELPERS, WireTable

    _udpfast.configure(*NATIVE_HELPERS)
    table = WireTable([snap], {})
    names, exist, cache = table.names, table.exist, {}
    answer = _udpfast.answer

    def lanes(w: bytes) -> None:
        answer(w, cache, names, exist, 1232)

    return lanes


STARTERS: dict[str, Callable[[Path, Path, int], Server]] = {
    "dnsseal": start_dnsseal,
    "knot": start_knot,
    "nsd": start_nsd,
}


CONFIGS = {
    "dnsseal": "dnsseal serve, server.workers = {w} (processes), C datagram loop",
    "knot": "knotd, server.udp-workers = {w}, server.tcp-workers = {w} (threads), no RRL",
    "nsd": "nsd, server-count: {w} (processes), rrl-ratelimit: 0",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=100_000, help="names in the zone")
    ap.add_argument("--seconds", type=float, default=10, help="dnsperf run per server and mix")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--nsec3", action="store_true", help="sign with NSEC3 instead of NSEC")
    ap.add_argument("--servers", default="dnsseal,knot,nsd")
    ap.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="workers for every server: dnsseal processes, Knot threads, NSD processes",
    )
    ap.add_argument(
        "--queries",
        type=int,
        default=200_000,
        help="queries per mix file; dnsperf replays the file when the run needs more, and "
        "dnsseal's response cache then answers the repeats (make it larger than QPS x seconds "
        "for no repeat at all)",
    )
    ap.add_argument("--zone", type=Path, help="serve this signed zone instead of making one")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure every server and mix this many times, the servers alternating; the "
        "median is reported",
    )
    ap.add_argument(
        "--answer-cost",
        action="store_true",
        help="only time dnsseal's answers in-process on --zone (no servers, no dnsperf)",
    )
    args = ap.parse_args()
    if args.answer_cost:
        if args.zone is None:
            sys.exit("--answer-cost needs --zone (a signed zone, one record per line)")
        answer_cost(args.zone, args.hosts)
        return
    names = [n for n in args.servers.split(",") if n]

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        d = Path(tmp)
        t0 = time.monotonic()
        if args.zone:
            signed = args.zone.resolve()
            print(f"zone {ORIGIN} from {signed} ({args.hosts} hosts assumed)")
        else:
            signed = sign(d, args.hosts, args.nsec3)
            print(
                f"zone {ORIGIN} with {args.hosts} hosts signed in {time.monotonic() - t0:.1f}s "
                f"({'NSEC3' if args.nsec3 else 'NSEC'})"
            )
        mixes = {"mixed (90% hit, 10% NXDOMAIN)": 0.10, "random-nxdomain (100%)": 1.0}
        files = {}
        for i, (mix, share) in enumerate(mixes.items()):
            files[mix] = d / f"queries{i}.txt"
            write_queries(files[mix], args.hosts, share, args.queries, seed=i)

        results: dict[tuple[str, str], list[Result]] = {}
        memory: dict[str, float] = {}
        after: dict[str, float] = {}
        servers: dict[str, Server] = {}
        try:
            # Every server is up for the whole run, idle while another is measured, so
            # that the rounds can alternate between them: this machine's load drifts
            # within minutes, and alternating spreads the drift over all of them.
            for name in names:
                server = servers[name] = STARTERS[name](d, signed, args.workers)
                t0 = time.monotonic()
                # dnsseal parses zone files in Python: allow ~5 ms per host to load
                wait_ready(server, 60 + args.hosts * 0.006)
                print(f"{name}: ready in {time.monotonic() - t0:.1f}s on port {server.port}")
                memory[name] = rss_mib(server.proc.pid)
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    for mix, path in files.items():
                        got = run_dnsperf(
                            servers[name], path, args.seconds, args.clients, r == args.rounds - 1
                        )
                        results.setdefault((name, mix), []).append(got)
                        print(f"round {r + 1} {name:8} {mix:32} {got.qps:10.0f} QPS", flush=True)
            for name in names:
                after[name] = tree_pss_mib(servers[name].proc.pid)
        finally:
            for server in servers.values():
                stop(server)

        for mix in mixes:
            print(
                f"\n{mix}, DO bit set, {args.seconds:g}s, {args.clients} clients, "
                f"median of {args.rounds} round(s)"
            )
            print(
                f"{'server':10} {'QPS':>10} {'min-max':>15} {'lost':>8} {'mean ms':>9} "
                f"{'p50 ms':>8} {'p99 ms':>8} {'vs knot':>8} {'rounds vs knot':>16} "
                f"{'CPU us/q':>9}"
            )
            base = results.get(("knot", mix))
            for name in names:
                runs = results[(name, mix)]
                qps = statistics.median(r.qps for r in runs)
                spread = f"{min(r.qps for r in runs):.0f}-{max(r.qps for r in runs):.0f}"
                last = runs[-1]
                lost = sum(r.lost for r in runs)
                if base:
                    ratio = f"{qps / statistics.median(b.qps for b in base):.2f}x"
                    each = [r.qps / b.qps for r, b in zip(runs, base, strict=True) if b.qps]
                    per_round = f"{min(each):.2f}-{max(each):.2f}x" if each else "-"
                else:
                    ratio = per_round = "-"
                cpu_us = statistics.median(r.cpu_us for r in runs)
                print(
                    f"{name:10} {qps:10.0f} {spread:>15} {lost:8d} {last.mean_ms:9.3f} "
                    f"{last.p50_ms:8.3f} {last.p99_ms:8.3f} {ratio:>8} {per_round:>16} "
                    f"{cpu_us:9.2f}"
                )
        print("\n* p50/p99 from a 2 s run at half the measured QPS (dnsperf -v -Q), last round")
        print("* rounds vs knot: the ratio within each round (the servers alternate)")
        print(
            "* CPU us/q: the server's user+system CPU time (all its processes and threads) per"
            " completed query, median over the rounds: less sensitive to the machine's other"
            " load than QPS"
        )
        print("configuration of each server:")
        for name in names:
            print(f"  {name:8} {CONFIGS[name].format(w=args.workers)}")
        print(f"memory after load (RSS), per {args.hosts} names:")
        for name in names:
            ratio = f" ({memory[name] / memory['knot']:.2f}x knot)" if "knot" in memory else ""
            print(f"{name:10} {memory[name]:8.1f} MiB{ratio}")
        print("memory after the runs (PSS summed over all processes of the server):")
        for name in names:
            ratio = f" ({after[name] / after['knot']:.2f}x knot)" if "knot" in after else ""
            print(f"{name:10} {after[name]:8.1f} MiB{ratio}")


if __name__ == "__main__":
    main()
