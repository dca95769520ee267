"""Validating-resolver speed: `dnsseal resolver` against a validating Unbound, same run.

Builds a local signed hierarchy with dnssec-keygen/dnssec-signzone (root ``.``, TLD
``bench.``, leaves ``leafa.bench.`` and ``leafb.bench.``, ECDSAP256SHA256, NSEC), serves it
with one ``named`` on a free loopback port, and starts both resolvers on free loopback ports
with the root's DS as their only trust anchor and the named as their root server (Unbound:
``stub-zone "."``; dnsseal: ``--root-hints`` and ``--upstream-port``).  Then, in alternating
rounds (--rounds; medians reported, ratios within each round):

* **warm QPS**: dnsperf (DO set, ``--clients`` sockets, 200 outstanding each) replaying 7
  questions (answers, an NXDOMAIN, a NODATA, under both leaves) after one priming pass;
* **new-name latency**: ``--names`` never-asked names under a wildcard in a known zone
  signed with NSEC3 (``leafc.bench.``, so no resolver can synthesize them from cached
  NSEC records), one at a time: each is an upstream query and a validation of the answer
  and its wildcard proof, the chain of trust already cached;
* **cold latency**: a resolver process started fresh (empty caches), ready (TCP accept)
  and left 0.5 s to finish starting, asked one name: root DNSKEY, TLD DS and DNSKEY,
  leaf DS and DNSKEY and the answer.

Each resolver gets its best configuration for ``--cores`` cores, printed with the results:
Unbound with ``num-threads`` = cores and the settings of its "Optimise" guide (slabs,
so-reuseport, socket buffers, cache sizes); dnsseal with the C datagram loop
(``--udp-threads``, default = cores).  The load average before and after is printed: on a
shared machine the absolute numbers drift, the ratios much less.  Example (brief)::

    python benchmarks/resolve_bench.py --seconds 3 --rounds 2

* **cold CPU** (``--only cpu``, dnsseal only): in a child process of the measured source
  tree, after the service's warm-up, CPU time (``process_time``) of a cold resolution of
  ``www.leafb.bench. A`` by a fresh ``Resolver`` replaying the replies one real resolution
  got from the named (median of ``--names`` runs, at least 10): the resolver's own work,
  no sockets and no service, the steadiest measure on a shared machine.  The root is
  primed before the clock starts, as the service does at start (a tree from before
  ``Resolver.prime`` primes within the resolution, as its service did).

``--only cold,new`` takes some measures only; ``--baseline OTHER/src`` runs a second
dnsseal from another checkout in the same rounds (old against new on one machine state).
Every process is started here and stopped by its PID.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import random
import re
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
SOA = "@ 3600 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 300\n"
LEAF = "www A 192.0.2.1\nwww AAAA 2001:db8::1\nmail A 192.0.2.2\nmail MX 10 mail\n*.w A 192.0.2.3\n"
WARM = [
    ("www.leafa.bench.", "A"),
    ("www.leafa.bench.", "AAAA"),
    ("mail.leafa.bench.", "A"),
    ("nx.leafa.bench.", "A"),  # NXDOMAIN
    ("www.leafb.bench.", "TXT"),  # NODATA
    ("www.leafb.bench.", "A"),
    ("mail.leafb.bench.", "MX"),
]


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    args = [str(a) for a in argv]
    args[0] = tool(args[0])
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


# --- the hierarchy ----------------------------------------------------------------------


def sign(d: Path, zone: str, body: str, nsec3: bool = False) -> tuple[Path, str]:
    """Sign ``zone`` with a fresh KSK + ZSK (NSEC, or NSEC3 without salt or iterations);
    returns the signed file and the KSK's DS."""
    src = d / f"{zone.rstrip('.') or 'root'}.zone"
    src.write_text(f"$ORIGIN {zone}\n$TTL 3600\n{SOA}{body}")
    ksk = run("dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", "-f", "KSK", zone).strip()
    run("dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", zone)
    out = Path(f"{src}.signed")
    nsec3_args = ["-3", "-", "-H", "0"] if nsec3 else []
    run("dnssec-signzone", "-q", "-K", d, "-S", *nsec3_args, "-o", zone, "-f", out, src, cwd=d)
    ds = run("dnssec-dsfromkey", "-2", d / f"{ksk}.key").split()
    return out, " ".join(ds[-4:])


def build(d: Path) -> tuple[dict[str, Path], str]:
    files: dict[str, Path] = {}
    tld = "@ NS ns.bench.\nns A 127.0.0.1\n"
    for leaf in ("leafa", "leafb", "leafc"):
        nsec3 = leaf == "leafc"  # no aggressive NSEC synthesis there: new names go upstream
        files[f"{leaf}.bench."], ds = sign(d, f"{leaf}.bench.", "@ NS ns.bench.\n" + LEAF, nsec3)
        tld += f"{leaf} NS ns.bench.\n{leaf} DS {ds}\n"
    files["bench."], ds = sign(d, "bench.", tld)
    files["."], root_ds = sign(
        d, ".", f"@ NS ns.bench.\nbench. NS ns.bench.\nbench. DS {ds}\nns.bench. A 127.0.0.1\n"
    )
    return files, root_ds


# --- processes ------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    port: int
    proc: subprocess.Popen[bytes]


def stop(p: Proc) -> None:
    stop_process(p.proc)


def wait_tcp(p: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", p.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{p.name} did not come up")


def start_named(d: Path, files: dict[str, Path]) -> Proc:
    port = free_port()
    zones = "".join(f'zone "{z}" {{ type primary; file "{p}"; }};\n' for z, p in files.items())
    conf = d / "named.conf"
    conf.write_text(
        f'options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; '
        f'listen-on-v6 {{ none; }}; pid-file "{d}/named.pid"; recursion no; '
        "dnssec-validation no; notify no; };\ncontrols { };\n" + zones
    )
    log = (d / "named.log").open("wb")
    p = Proc(
        "named",
        port,
        subprocess.Popen([tool("named"), "-g", "-c", str(conf)], stdout=log, stderr=log),
    )
    wait_tcp(p)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until every zone is loaded (REFUSED before)
        if all(ask(port, z, "SOA", 1)[1] & 0xF == 0 for z in files):  # (no AD: authority)
            return p
        time.sleep(0.1)
    raise RuntimeError(f"named did not load the zones (see {d}/named.log)")


def unbound_settings(cores: int) -> list[str]:
    """Unbound's documented performance settings ("Howto Optimise") for ``cores`` cores."""
    slabs = 1 << max(0, (cores - 1).bit_length())
    return [
        f"num-threads: {cores}",
        f"msg-cache-slabs: {slabs}",
        f"rrset-cache-slabs: {slabs}",
        f"infra-cache-slabs: {slabs}",
        f"key-cache-slabs: {slabs}",
        "so-reuseport: yes",
        "so-rcvbuf: 4m",
        "so-sndbuf: 4m",
        "msg-cache-size: 64m",
        "rrset-cache-size: 128m",
        "outgoing-range: 8192",
        "num-queries-per-thread: 4096",
    ]


def start_unbound(d: Path, named: int, root_ds: str, cores: int) -> Proc:
    port = free_port()
    conf = d / f"unbound-{port}.conf"
    # RFC 5011 tracking, as Debian's unbound package sets it up: Unbound then probes the
    # root's DNSKEY when it starts, as dnsseal's resolver does (its root is primed and
    # its DNSKEY validated at start), so the cold question costs both the same work.
    anchor = d / f"unbound-{port}.key"
    anchor.write_text(f". IN DS {root_ds}\n")
    perf = "".join(f"  {line}\n" for line in unbound_settings(cores))
    conf.write_text(
        f"server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n"
        f'  username: ""\n  chroot: ""\n  directory: "{d}"\n  pidfile: "{d}/unbound-{port}.pid"\n'
        f'  use-syslog: no\n  logfile: "{d}/unbound.log"\n  do-not-query-localhost: no\n'
        f'  auto-trust-anchor-file: "{anchor}"\n  verbosity: 0\n  qname-minimisation: yes\n'
        f"{perf}"
        "remote-control:\n  control-enable: no\n"
        f'stub-zone:\n  name: "."\n  stub-addr: 127.0.0.1@{named}\n'
    )
    run("unbound-checkconf", conf)
    p = Proc(
        "unbound",
        port,
        subprocess.Popen(
            [tool("unbound"), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    )
    wait_tcp(p)
    return p


def dnsseal_argv(d: Path, named: int, port: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "dnsseal.cli.main", "resolver", "--port", str(port),
        "-a", str(d / "anchors.conf"), "--root-hints", str(d / "root.hints"),
        "--upstream-port", str(named), "--udp-threads", str(threads),
    ]  # fmt: skip


def start_dnsseal(d: Path, named: int, threads: int, src: Path = ROOT / "src") -> Proc:
    """``src``: the source tree to run (another checkout's, for --baseline)."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(src))
    log = (d / "dnsseal.log").open("ab")
    proc = subprocess.Popen(dnsseal_argv(d, named, port, threads), stdout=log, stderr=log, env=env)
    p = Proc("dnsseal" if src == ROOT / "src" else "baseline", port, proc)
    wait_tcp(p)
    return p


# --- measurements ------------------------------------------------------------------------


def wire_query(name: str, rdtype: str, qid: int) -> bytes:
    types = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
    labels = [x for x in name.rstrip(".").split(".") if x]
    qname = b"".join(bytes([len(x)]) + x.encode() for x in labels) + b"\0"
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"  # EDNS0, 1232, DO
    return (
        struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
        + qname
        + struct.pack("!HH", types[rdtype], 1)
        + opt
    )


def ask(port: int, name: str, rdtype: str = "A", timeout: float = 10) -> tuple[float, int]:
    """(milliseconds, rcode) for one question; the reply must be the query's.  The rcode
    has 0x100 added when the reply lacks AD (asked with DO: every name here is signed)."""
    qid = random.randrange(65536)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        t0 = time.perf_counter()
        s.sendto(wire_query(name, rdtype, qid), ("127.0.0.1", port))
        while True:
            data = s.recv(65535)
            if data[:2] == struct.pack("!H", qid):
                ad = data[3] & 0x20
                return (time.perf_counter() - t0) * 1000, (data[3] & 0xF) | (0 if ad else 0x100)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(p: Proc, queries: Path, seconds: float, clients: int) -> tuple[float, float, float]:
    """(QPS, mean latency ms, the resolver's CPU microseconds per answered query: steadier
    than QPS on a shared machine)."""
    port = p.port
    cpu0 = cpu_seconds(p.proc.pid)
    out = subprocess.run(
        [
            tool("dnsperf"), "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
            "-l", str(seconds), "-c", str(clients), "-q", "200", "-D", "-t", "2",
        ],
        capture_output=True, text=True, check=False, timeout=seconds + 60,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(p.proc.pid) - cpu0
    qps = re.search(r"Queries per second:\s+([0-9.]+)", out)
    lat = re.search(r"Average Latency \(s\):\s+([0-9.]+)", out)
    done = re.search(r"Queries completed:\s+([0-9]+)", out)
    if qps is None or lat is None or done is None:
        raise RuntimeError(f"dnsperf output not understood:\n{out}")
    return float(qps.group(1)), float(lat.group(1)) * 1000, cpu * 1e6 / max(1, int(done.group(1)))


def new_names(port: int, count: int, tag: str) -> float:
    """Median ms to resolve ``count`` never-asked names under a wildcard of the NSEC3 leaf
    (each is an upstream query and a validation of the answer and its wildcard proof)."""
    times = []
    for i in range(count):
        ms, rcode = ask(port, f"{tag}{i}-{random.randrange(10**9)}.w.leafc.bench.")
        if rcode != 0:
            raise RuntimeError(f"new name answered rcode {rcode} (+0x100: no AD)")
        times.append(ms)
    return statistics.median(times)


def cold_cpu(src: Path, named: int, root_ds: str, runs: int) -> float:
    """Median CPU ms of a cold resolution of COLD_NAME in-process, no sockets and no
    service (see CPU_CHILD): the resolver's own work, steadier than wall time on a shared
    machine, for comparing two source trees."""
    env = dict(os.environ, PYTHONPATH=str(src))
    argv = [sys.executable, "-c", CPU_CHILD, str(named), root_ds, str(runs), COLD_NAME]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"cold CPU child ({src}) failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.split()[-1])


def cold(start: Callable[[], Proc], samples: int) -> float:
    """Median ms of the first question to a freshly started resolver."""
    times = []
    for _ in range(samples):
        p = start()
        try:
            time.sleep(0.5)  # let start-up work finish: only the resolution is timed
            ms, rcode = ask(p.port, "www.leafb.bench.", "A")
            if rcode != 0:
                raise RuntimeError(f"{p.name}: cold answer rcode {rcode} (+0x100: no AD)")
            times.append(ms)
        finally:
            stop(p)
    return statistics.median(times)


MEASURES = ("warm", "new", "cold", "cpu")

# The child of cold_cpu(), run with PYTHONPATH set to the source tree measured: after the
# service's warm-up, one cold resolution of COLD_NAME from the named, its replies kept by
# question; then fresh Resolvers (empty caches) replay them, timed with process_time.
CPU_CHILD = """
import asyncio, statistics, sys, time
import dns.name, dns.rdata
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.transport import network_transport
from dnsseal.resolver.warmup import warm_up
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.iterator import Config
port, ds, runs, name = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
anchors = AnchorSet((TrustAnchor(dns.name.root, (dns.rdata.from_text("IN", "DS", ds),)),))
config = Config((("127.0.0.1", port),), anchors, port=port)
replies, net = {}, network_transport()
def key(wire):
    i = 12
    while wire[i]:
        i += wire[i] + 1
    return wire[12 : i + 5].lower()
async def record(server, wire, tcp):
    replies[key(wire)] = data = await net(server, wire, tcp)
    return data
async def replay(server, wire, tcp):
    return wire[:2] + replies[key(wire)][2:]
async def main():
    await warm_up()
    first = await Resolver(config, record).resolve(name, "A")
    assert first.verdict.security.value == "secure", first.verdict
    times = []
    for _ in range(runs):
        resolver = Resolver(config, replay)
        # The service primes the root at start; a baseline tree from before Resolver.prime
        # primes within the resolution, as its service did.
        prime = getattr(resolver, "prime", None)
        if prime is not None:
            await prime()
        t0 = time.process_time()
        got = await resolver.resolve(name, "A")
        times.append(time.process_time() - t0)
        assert got.verdict.security.value == "secure", got.verdict
    print(statistics.median(times) * 1000)
asyncio.run(main())
"""
COLD_NAME = "www.leafb.bench."


def _row(name: str, res: dict[str, list[float]]) -> str:
    parts = []
    if res["qps"]:
        parts.append(f"{res['qps'][-1]:,.0f} QPS {res['lat'][-1]:.2f} ms {res['cpu'][-1]:.1f} us/q")
    if res["new"]:
        parts.append(f"new {res['new'][-1]:.2f} ms")
    if res["cold"]:
        parts.append(f"cold {res['cold'][-1]:.1f} ms")
    if res["ccpu"]:
        parts.append(f"cold CPU {res['ccpu'][-1]:.2f} ms")
    return f"{name} " + ", ".join(parts)


def _median(values: list[float], fmt: str) -> str:
    return format(statistics.median(values), fmt) if values else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10, help="dnsperf run per resolver")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    ap.add_argument("--clients", type=int, default=4, help="dnsperf sockets")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--udp-threads", type=int, help="dnsseal --udp-threads (default: cores)")
    ap.add_argument("--names", type=int, default=50, help="new names per round")
    ap.add_argument("--cold", type=int, default=3, help="cold starts per round")
    ap.add_argument(
        "--only",
        default=",".join(MEASURES),
        help="comma-separated measures to take: warm, new, cold, cpu (in-process CPU of a "
        "cold resolution, dnsseal only, --names runs) (default: all)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also run the dnsseal of another source tree (its src/ directory), in the "
        "same alternating rounds, to compare two versions on the same machine state",
    )
    args = ap.parse_args()
    only = {m.strip() for m in args.only.split(",") if m.strip()}
    if not only or only - set(MEASURES):
        ap.error(f"--only: choose from {', '.join(MEASURES)}")
    if args.baseline is not None and not (args.baseline / "dnsseal").is_dir():
        ap.error(f"--baseline {args.baseline}: no dnsseal package there")
    threads = args.udp_threads or args.cores
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="resolve-bench-") as tmp:
        d = Path(tmp)
        files, root_ds = build(d)
        tag, alg, dt, digest = root_ds.split()
        (d / "anchors.conf").write_text(
            f'trust-anchors {{ . static-ds {tag} {alg} {dt} "{digest}"; }};\n'
        )
        (d / "root.hints").write_text(". 3600000 NS ns.bench.\nns.bench. 3600000 A 127.0.0.1\n")
        queries = d / "queries.txt"
        queries.write_text("".join(f"{n} {t}\n" for n, t in WARM))
        named = start_named(d, files)
        starters: dict[str, Callable[[], Proc]] = {
            "unbound": lambda: start_unbound(d, named.port, root_ds, args.cores),
            "dnsseal": lambda: start_dnsseal(d, named.port, threads),
        }
        if args.baseline is not None:
            base = args.baseline.resolve()
            starters["baseline"] = lambda: start_dnsseal(d, named.port, threads, base)
        results: dict[str, dict[str, list[float]]] = {
            n: {"qps": [], "lat": [], "cpu": [], "new": [], "cold": [], "ccpu": []}
            for n in starters
        }
        ratios: dict[str, list[float]] = {"qps": [], "cpu": [], "new": [], "cold": []}
        try:
            warm = {n: s() for n, s in starters.items()} if only & {"warm", "new"} else {}
            sources = {"dnsseal": ROOT / "src"}
            if args.baseline is not None:
                sources["baseline"] = args.baseline.resolve()
            try:
                for p in warm.values():
                    for name, rdtype in WARM:
                        _, rcode = ask(p.port, name, rdtype)
                        if rcode & 0xF not in (0, 3):
                            raise RuntimeError(f"{p.name}: {name} {rdtype} rcode {rcode}")
                for r in range(args.rounds):
                    order = list(starters) if r % 2 == 0 else list(reversed(starters))
                    for n in order:
                        if "warm" in only:
                            qps, lat, cpu = dnsperf(warm[n], queries, args.seconds, args.clients)
                            results[n]["qps"].append(qps)
                            results[n]["lat"].append(lat)
                            results[n]["cpu"].append(cpu)
                        if "new" in only:
                            results[n]["new"].append(new_names(warm[n].port, args.names, f"r{r}"))
                    if "cold" in only:
                        for n in order:
                            results[n]["cold"].append(cold(starters[n], args.cold))
                    if "cpu" in only:
                        for n in order:
                            if n in sources:
                                ms = cold_cpu(sources[n], named.port, root_ds, max(args.names, 10))
                                results[n]["ccpu"].append(ms)
                    ours, theirs = results["dnsseal"], results["unbound"]
                    for key, values in ratios.items():
                        if ours[key]:
                            values.append(ours[key][-1] / theirs[key][-1])
                    print(f"round {r + 1}: " + "; ".join(_row(n, results[n]) for n in starters))
            finally:
                for p in warm.values():
                    stop(p)
        finally:
            stop(named)
    load1 = os.getloadavg()
    print(
        f"\nload average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
        f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; {os.cpu_count()} CPUs"
    )
    print(f"{args.rounds} rounds, dnsperf {args.seconds:g} s x {args.clients} clients, DO, 7 names")
    print(
        "\n| resolver | warm QPS | warm mean ms | CPU us/query | new-name ms | cold ms "
        "| cold CPU ms in-process |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n, res in results.items():
        cells = [
            _median(res["qps"], ",.0f"),
            _median(res["lat"], ".2f"),
            _median(res["cpu"], ".2f"),
            _median(res["new"], ".2f"),
            _median(res["cold"], ".1f"),
            _median(res["ccpu"], ".2f"),
        ]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print(
        "\ndnsseal/unbound (median of per-round ratios): "
        f"warm QPS x{_median(ratios['qps'], '.2f')} (target >= 1), "
        f"CPU per warm query x{_median(ratios['cpu'], '.2f')}, "
        f"new-name latency x{_median(ratios['new'], '.2f')}, "
        f"cold latency x{_median(ratios['cold'], '.2f')} (target <= 1.5)"
    )
    print("\nconfigurations:")
    print(
        "  unbound: "
        + "; ".join(unbound_settings(args.cores))
        + "; qname-minimisation: yes; auto-trust-anchor-file (RFC 5011: the root's DNSKEY"
        " probed at start)"
    )
    print(f"  dnsseal: resolver --udp-threads {threads} (C datagram loop, answer cache)")
    if args.baseline is not None:
        print(f"  baseline: the same, from {args.baseline}")


if __name__ == "__main__":
    main()
