"""The cost of committing one UPDATE in a big inline-signed zone, in one process, no peers.

Starts a dnsseal main process's server (:class:`dnsseal.server.service.AuthServer`, one
worker link) in this process on ``sign_bench.make_zone(N)`` under the default policy, with
the worker's end of the link (:class:`dnsseal.server.zonesync.WorkerLink`) installing each
version in a second :class:`dnsseal.proto.engine.Engine`, as a worker process does.  Then
sends --updates UPDATEs (TSIG-signed wire, each adding an A record at a new name, so the
NSEC chain changes) through the path the server uses for one from the network
(``_update_reply``: evaluate, sign incrementally, journal, serve, push to the worker, wait
for its acknowledgement), and checks after each that both engines answer the new record
signed.  Prints the CPU time (process_time: main and worker work, both in this process,
and the worker's share: its thread's CPU building the version and installing it) and the
wall time per UPDATE, median and every run.

The state directory (keys, journal) can be kept with --state DIR and used again (a restart
reads the journal instead of signing the zone again): compare two code trees on the same
state, alternating, by running this script with each tree's ``src`` on PYTHONPATH.

    PYTHONPATH=src .venv/bin/python benchmarks/update_commit_bench.py --names 20000 \
        --updates 20 --state /tmp/ub20k

--profile FILE writes a cProfile of the UPDATEs (not of the start), with the work the server
hands to threads run inline so that it shows (the times printed then include the
profiler's).  Nothing leaves 127.0.0.1 (the server binds a free loopback port and is never
sent a packet).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rdatatype
import dns.tsigkeyring
import dns.update

from benchpeers import free_port
from sign_bench import ORIGIN, make_zone
from update_bench import SECRET, dnsseal_config


def write_setup(d: Path, names: int, nsec3: bool) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    zonefile = d / "bench.zone"
    if not zonefile.exists():
        zonefile.write_text(make_zone(names))
    policy = "default"
    extra = ""
    if nsec3:
        policy = "n3"
        (d / "policies.toml").write_text(
            "[policy.n3]\nnsec3param = { iterations = 0, optout = false, salt-length = 0 }\n"
            'keys = [{ role = "csk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" }]\n'
        )
        extra = f'policies = "{d}/policies.toml"\n'
    conf = d / "dnsseal.toml"
    conf.write_text(dnsseal_config(d, free_port(), zonefile, extra, policy))
    return conf


def signed_a(engine: object, name: str) -> bool:
    q = dns.message.make_query(name, "A", want_dnssec=True)
    q.id = 1
    out = engine.handle(q.to_wire(), True)  # type: ignore[attr-defined]
    r = dns.message.from_wire(out[0])
    types = {rr.rdtype for rr in r.answer}
    return {dns.rdatatype.A, dns.rdatatype.RRSIG} <= types


async def run(
    conf: Path, updates: int, tag: str, profile: str | None, warmup: int
) -> list[tuple[float, float, float]]:
    from dnsseal.proto.engine import Engine, ServedZone
    from dnsseal.server import zonesync
    from dnsseal.server.service import AuthServer
    from dnsseal.server.zonesync import WorkerLink
    from dnsseal.storage.serverconfig import load_config

    config = load_config(conf)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    worker_engine = Engine()
    # The worker's share: CPU of the thread building its version, and of installing it.
    worker_cpu = [0.0]
    build = zonesync._build_versions

    def timed_build(*args: Any) -> Any:
        t = time.thread_time()
        try:
            return build(*args)
        finally:
            worker_cpu[0] += time.thread_time() - t

    zonesync._build_versions = timed_build

    def install(zone: str, snap: object) -> None:
        t = time.thread_time()
        worker_engine.replace_zone(snap.origin, ServedZone(snap))  # type: ignore[attr-defined, arg-type]
        worker_cpu[0] += time.thread_time() - t

    worker = WorkerLink(theirs, install)
    await worker.start()
    main = AuthServer(config, conf, links=[(0, ours)])
    t0 = time.monotonic()
    await main.start()
    origin = dns.name.from_text(ORIGIN)
    while True:
        state = main.zones[ORIGIN]
        served = state.served
        if served is not None and served.snapshot.signed and origin in worker_engine.zones:
            break
        await asyncio.sleep(0.1)
    assert main.links is not None
    await main.links.wait_current()
    print(f"ready in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    gc_time = [0.0, 0.0, 0]  # seconds in collections, start of the current one, count
    by_gen = [0.0, 0.0, 0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            took = time.perf_counter() - gc_time[1]
            gc_time[0] += took
            by_gen[info["generation"]] += took
            gc_time[2] += info["generation"] == 2

    gc.callbacks.append(on_gc)
    if os.environ.get("BENCH_GC") == "off":
        gc.disable()
    keyring = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", SECRET)})
    times = []
    prof = cProfile.Profile() if profile else None
    if prof:
        # The work handed to threads (signing, journal, the worker's build) runs inline, so
        # that it shows in the profile.
        async def inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        asyncio.to_thread = inline
    try:
        for i in range(updates):
            name = f"upd{i}-{tag}-{time.time_ns()}.{ORIGIN}"
            msg = dns.update.UpdateMessage(ORIGIN, keyring=keyring, keyalgorithm="hmac-sha256")
            msg.add(name, 300, "A", f"192.0.2.{i % 250 + 1}")
            wire = msg.to_wire()
            c0, w0, k0 = time.process_time(), time.perf_counter(), worker_cpu[0]
            if prof and i >= warmup:
                prof.enable()
            reply = await main._update_reply(wire, "127.0.0.1")
            if prof and i >= warmup:
                prof.disable()
            c1, w1 = time.process_time(), time.perf_counter()
            r = dns.message.from_wire(reply, keyring=keyring, request_mac=msg.mac)
            assert r.rcode() == 0, r
            assert signed_a(main.engine, name), name
            assert signed_a(worker_engine, name), name
            if i >= warmup:
                times.append((c1 - c0, w1 - w0, worker_cpu[0] - k0))
    finally:
        gc.callbacks.remove(on_gc)
        await main.stop()
        await worker.stop()
    print(
        f"garbage collector: {gc_time[0] * 1000:.0f} ms in all"
        f" ({' / '.join(f'{t * 1000:.0f}' for t in by_gen)} ms by generation),"
        f" {gc_time[2]} full collections",
        file=sys.stderr,
    )
    if prof and profile:
        prof.dump_stats(profile)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--state", help="keep the setup and state here (reused when present)")
    ap.add_argument("--nsec3", action="store_true")
    ap.add_argument("--profile", help="write a cProfile of the UPDATEs to this file")
    ap.add_argument("--warmup", type=int, default=1, help="UPDATEs sent before those timed")
    ap.add_argument("--tag", default="run", help="part of the names added (runs differ)")
    args = ap.parse_args()
    tmp = None
    if args.state:
        d = Path(args.state)
    else:
        tmp = tempfile.mkdtemp(prefix="update-commit-")
        d = Path(tmp)
    try:
        conf = write_setup(d, args.names, args.nsec3)
        times = asyncio.run(
            run(conf, args.updates + args.warmup, args.tag, args.profile, args.warmup)
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    cpu = [c * 1000 for c, _, _ in times]
    wall = [w * 1000 for _, w, _ in times]
    worker = [k * 1000 for _, _, k in times]
    print(
        f"{args.names} names, {len(times)} UPDATEs: cpu median {statistics.median(cpu):.1f} ms"
        f" (of which the worker's build and install {statistics.median(worker):.1f} ms),"
        f" wall median {statistics.median(wall):.1f} ms"
    )
    print("cpu ms:  " + " ".join(f"{c:.0f}" for c in cpu))
    print("wall ms: " + " ".join(f"{w:.0f}" for w in wall))


if __name__ == "__main__":
    main()
