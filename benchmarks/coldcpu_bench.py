"""In-process CPU of one cold resolution, two source trees alternating.

Builds the signed hierarchy of ``resolve_bench.py`` (root, ``bench.``, three leaves; ECDSA
P-256 keys from dnssec-keygen, signed by dnssec-signzone), serves it with one ``named`` on a
free loopback port, and starts a child process per source tree (``PYTHONPATH`` set to it)
that warms up as the service does and records one cold resolution of ``www.leafb.bench. A``
from the named (replies kept by question).  Then the children take turns (``--rounds``
batches each, alternating, so both see the same machine load) timing ``--runs`` cold
resolutions by fresh ``Resolver`` objects (empty caches, the root primed first as the
service does at start) replaying those replies: no socket, no service, only the
resolution's own work (``time.process_time``).  Each verdict must be secure.  ``--idle``
sleeps that many ms before each timed resolution (a process idle between questions runs
its Python from cold CPU caches: see docs/resolver-benchmarks.md).  ``--network`` asks the
named instead (the seven UDP exchanges included; the named stays up), ``--wall`` times the
wall clock instead of the process's CPU.  Example::

    PYTHONPATH=src python benchmarks/coldcpu_bench.py --baseline /tmp/old/src --rounds 20 --runs 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from resolve_bench import COLD_NAME, build, start_named, stop

ROOT = Path(__file__).resolve().parent.parent

# Run with PYTHONPATH set to the tree measured; prints the per-resolution CPU ms, one a line.
CHILD = """
import asyncio, sys, time
import dns.name, dns.rdata
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.transport import network_transport
from dnsseal.resolver.warmup import warm_up
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.iterator import Config
port, ds, name, idle = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]) / 1000
network, wall = sys.argv[5] == "network", sys.argv[6] == "wall"
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
    resolver = Resolver(config, record)
    await resolver.prime()
    first = await resolver.resolve(name, "A")
    assert first.verdict.security.value == "secure", first.verdict
    print("ready", flush=True)
    for line in sys.stdin:  # a batch size per line: one CPU ms per resolution back
        times = []
        for _ in range(int(line)):
            resolver = Resolver(config, net if network else replay)
            await resolver.prime()
            if idle:
                time.sleep(idle)
            clock = time.perf_counter if wall else time.process_time
            t0 = clock()
            got = await resolver.resolve(name, "A")
            t1 = clock()
            assert got.verdict.security.value == "secure", got.verdict
            times.append((t1 - t0) * 1000)
        print(*times, flush=True)
asyncio.run(main())
"""


class Child:
    """One process of one source tree, timing batches of cold resolutions on request."""

    def __init__(
        self, src: Path, port: int, root_ds: str, idle: float, network: bool, wall: bool
    ) -> None:
        self.src = src
        env = dict(os.environ, PYTHONPATH=str(src))
        how = ["network" if network else "replay", "wall" if wall else "cpu"]
        argv = [sys.executable, "-c", CHILD, str(port), root_ds, COLD_NAME, str(idle), *how]
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        if self._line() != "ready":
            raise RuntimeError(f"child ({src}) did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child ({self.src}) failed (exit {self.proc.wait()})")
        return line.strip()

    def batch(self, runs: int) -> list[float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{runs}\n")
        self.proc.stdin.flush()
        return [float(x) for x in self._line().split()]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--baseline", type=Path, help="another tree's src/ to alternate with")
    ap.add_argument("--rounds", type=int, default=20, help="batches per tree, alternating")
    ap.add_argument("--runs", type=int, default=50, help="timed resolutions per batch")
    ap.add_argument("--idle", type=float, default=0.0, help="ms asleep before each one")
    ap.add_argument(
        "--network",
        action="store_true",
        help="ask the named over UDP (network_transport) instead of replaying its replies",
    )
    ap.add_argument("--wall", action="store_true", help="time wall clock, not process CPU")
    args = ap.parse_args()
    trees = {"this tree": ROOT / "src"}
    if args.baseline is not None:
        if not (args.baseline / "dnsseal").is_dir():
            ap.error(f"--baseline {args.baseline}: no dnsseal package there")
        trees["baseline"] = args.baseline.resolve()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="coldcpu-bench-") as tmp:
        files, root_ds = build(Path(tmp))
        named = start_named(Path(tmp), files)
        children: dict[str, Child] = {}
        try:
            for n, src in trees.items():
                children[n] = Child(src, named.port, root_ds, args.idle, args.network, args.wall)
            if not args.network:
                stop(named)  # every child has recorded its replies
            per: dict[str, list[float]] = {n: [] for n in trees}
            every: dict[str, list[float]] = {n: [] for n in trees}
            for r in range(args.rounds):
                order = list(children.items())
                if r % 2:
                    order.reverse()
                for n, c in order:
                    times = c.batch(args.runs)
                    every[n].extend(times)
                    per[n].append(statistics.median(times))
        finally:
            stop(named)
            for c in children.values():
                c.close()
    print(f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(
        f"{'wall' if args.wall else 'CPU'} ms per cold resolution "
        f"({'over UDP' if args.network else 'replayed'}), {args.rounds} alternating batches "
        f"of {args.runs} per tree (idle {args.idle:g} ms before each):"
    )
    for n, values in per.items():
        q = statistics.quantiles(every[n], n=4)
        print(
            f"  {n:9} median {statistics.median(every[n]):.3f} (quartiles {q[0]:.3f}-"
            f"{q[2]:.3f}; batch medians {min(values):.3f}-{max(values):.3f})"
        )
    if len(per) == 2:
        a, b = (statistics.median(v) for v in every.values())
        paired = statistics.median(x / y for x, y in zip(*per.values(), strict=True))
        print(
            f"  this tree / baseline: {a / b:.3f} (median of the batch pairs' ratios {paired:.3f})"
        )


if __name__ == "__main__":
    main()
