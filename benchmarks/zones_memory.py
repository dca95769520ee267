"""Where the memory of many small inline-signed zones goes (issue #15), per zone.

The zones and the configuration are those of ``zones_bench.py`` (SOA, NS and 5 names with
A records, default policy).  Two measurements, dnsseal only (``zones_bench.py`` compares
the RSS with Knot's):

* ``--mode inproc`` (default): the server in this process (``workers = 1``), the cold
  start and the restart each in a fresh process.  Prints the RSS added per zone from just
  before ``AuthServer`` is made until every zone is served, and with ``--breakdown`` the
  bytes per zone of each structure the server keeps (``sys.getsizeof`` over the objects
  reachable from it, each object counted once, in the order listed: a structure shares
  what an earlier one holds), and the bounded module caches the zones filled.  The
  breakdown's own bookkeeping inflates that run's RSS: take the RSS from a run without it.
  With ``--resigns N``, the restarted server then re-signs every zone N times (each a new
  version: the one replaced goes into the IXFR history) and prints the RSS after each.
* ``--mode serve``: ``dnsseal serve`` as ``zones_bench.py`` runs it (``--workers``
  processes); once every zone answers signed, each process's RSS, PSS and private dirty
  memory (``/proc/PID/smaps_rollup``).

Example::

    PYTHONPATH=src .venv/bin/python benchmarks/zones_memory.py --zones 1000 --breakdown
    PYTHONPATH=src .venv/bin/python benchmarks/zones_memory.py --zones 300 --resigns 4
    PYTHONPATH=src .venv/bin/python benchmarks/zones_memory.py --zones 2000 --mode serve

Every server is started here and stopped by its PID.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import zones_bench as zb
from benchpeers import free_port


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _config(d: Path, names: list[str], workers: int) -> Path:
    conf = d / "dnsseal.toml"
    if conf.exists():
        return conf
    zb.write_zones(d / "zones", names)
    body = "".join(
        f'\n[zone."{n}"]\nfile = "{d / "zones" / n.rstrip(".")}"\ndnssec-policy = "default"\n'
        for n in names
    )
    conf.write_text(
        f'[server]\nlisten = ["127.0.0.1@{free_port()}"]\nworkers = {workers}\n'
        f'control = "none"\nstate-dir = "{d}/state"\nkey-directory = "{d}/keys"\n' + body
    )
    return conf


class _Sizes:
    """Bytes and objects reachable from roots, each object counted once overall."""

    def __init__(self, known: set[int], stop: tuple[type, ...]) -> None:
        self.seen = known
        self.stop = stop
        self.by: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.held: list[object] = []  # the roots made here: no later object takes their id

    def add(self, what: str, root: object) -> None:
        self.held.append(root)
        total = count = 0
        stack = [root]
        while stack:
            o = stack.pop()
            if id(o) in self.seen:
                continue
            self.seen.add(id(o))
            if isinstance(o, self.stop):
                continue
            total += sys.getsizeof(o)
            count += 1
            stack.extend(gc.get_referents(o))
        self.by[what][0] += total
        self.by[what][1] += count


# Module-level caches the zones fill (each bounded; at many zones, full)
CACHES = (
    ("dnsseal.zone.text", "_RRSIG_HEADS"),
    ("dnsseal.zone.rdtext", "_NAME_CACHE"),
    ("dnsseal.zone.rdtext", "_MINUTE_TEXT"),
    ("dnsseal.zone.rrtext", "_NAME_CACHE"),
    ("dnsseal.zone.canonical", "_PARENT_WIRES"),
    ("dnsseal.storage.keydir", "_LOADED"),
    ("dnsseal.storage.keydir", "_listings"),
    ("dnsseal.server.inline", "_KEY_RECORDS"),
)


def _breakdown(server: Any, known: set[int], n: int) -> None:
    from dnsseal.proto.engine import Engine
    from dnsseal.server.maintenance import Maintenance as Automation
    from dnsseal.server.service import AuthServer
    from dnsseal.storage.serverconfig import ServerConfig

    stop = (type, types.ModuleType, types.FunctionType, types.CodeType, types.MethodType,
            types.BuiltinFunctionType, AuthServer, Automation, Engine, ServerConfig,
            asyncio.AbstractEventLoop)  # fmt: skip
    sizes = _Sizes(known, stop)
    for o in (server, server.automation, server.engine, server.zones, asyncio.get_running_loop()):
        sizes.seen.add(id(o))
    wire = server.engine.wire
    for state in server.zones.values():
        inline = state.inline
        sizes.seen.add(id(state))  # (its fields are walked one by one below)
        sizes.by["ZoneState (the object)"][0] += sys.getsizeof(state)
        sizes.by["ZoneState (the object)"][1] += 1
        # (the forms kept: a model, or its packed bytes between changes: InlineZone.park)
        sizes.add("InlineZone.signed: the signed Zone model", inline._signed)
        sizes.add("InlineZone.unsigned: the unsigned Zone model", inline._unsigned)
        sizes.add("InlineZone._file_copy: the source as applied", inline._file_copy)
        sizes.add("served.snapshot: the ZoneSnapshot answered from", state.served.snapshot)
        sizes.add("served.history: older snapshots (IXFR)", state.served.history)
        sizes.add("wire table: the zone's entries", wire.prefilled.get(id(state.served.snapshot)))
        sizes.add("InlineZone.plan and .keys", (inline.plan, inline.keys))
        sizes.add("InlineZone: the rest", inline)
        sizes.add("ZoneState.lock", state.lock)
        rest = [getattr(state, f) for f in type(state).__slots__ if f != "on_served"]
        sizes.add("ZoneState: the rest (timer, ACL, logs, ...)", rest)
    sizes.add("wire table: names/exist/zones dicts", (wire.names, wire.exist, wire.zones,
                                                      wire.prefilled))  # fmt: skip
    auto = vars(server.automation)
    sizes.add("maintenance schedule", [auto.get("_due"), auto.get("_planned")])
    for module, attr in CACHES:
        cache = getattr(sys.modules[module], attr, None)
        if isinstance(cache, dict):
            sizes.seen.discard(id(cache))
            for k, v in cache.items():
                sizes.seen.discard(id(k))
                sizes.seen.discard(id(v))
            sizes.add(f"cache {module}.{attr} ({len(cache)} entries)", cache)
    total = 0
    for what, (size, count) in sorted(sizes.by.items(), key=lambda kv: -kv[1][0]):
        total += size
        print(f"  {size / n / 1024:7.2f} KiB/zone {count / n:7.1f} objects/zone  {what}")
    print(f"  {total / n / 1024:7.2f} KiB/zone in all")


def inproc(
    d: Path, names: list[str], phase: str, breakdown: bool, resigns: int, trim: bool = False
) -> None:
    from dnsseal.server.service import AuthServer
    from dnsseal.storage.serverconfig import load_config

    logging.disable(logging.INFO)
    conf = _config(d, names, 1)
    n = len(names)

    async def run() -> None:
        cfg = load_config(conf)
        gc.collect()
        before = _rss_kib()
        keep: list[object] = []
        if breakdown:  # what exists now is not the zones'
            keep = gc.get_objects()
            keep += [r for o in keep for r in gc.get_referents(o) if not gc.is_tracked(r)]
        known = {id(o) for o in keep}
        server = AuthServer(cfg, conf)
        await server.start()
        try:
            assert all(s.served is not None for s in server.zones.values())
            await asyncio.sleep(0.5)
            gc.collect()
            added = _rss_kib() - before
            print(f"{phase}: {n} zones, RSS +{added / 1024:.1f} MiB = {added / n:.1f} KiB/zone"
                  f"{' (inflated by the breakdown)' if breakdown else ''}, load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
            if trim:  # memory the C allocator holds free (not Python's arenas)
                import ctypes

                ctypes.CDLL("libc.so.6").malloc_trim(0)
                print(f"  after malloc_trim(0): RSS +{(_rss_kib() - before) / n:.1f} KiB/zone",
                      flush=True)  # fmt: skip
            if breakdown:
                _breakdown(server, known, n)
            for k in range(resigns):  # versions replaced: the IXFR history fills
                for state in server.zones.values():
                    await server.automation.maintain(state, "resign", force=True)
                gc.collect()
                kept = sum(len(s.served.history) for s in server.zones.values()) / n
                print(f"  after {k + 1} forced re-sign(s): {kept:.0f} version(s) kept per "
                      f"zone, RSS +{(_rss_kib() - before) / n:.1f} KiB/zone over the start "
                      f"point, load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        finally:
            await server.stop()

    asyncio.run(run())


def _smaps(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, *value = line.split()
        if key in ("Rss:", "Pss:", "Private_Dirty:"):
            out[key[:-1]] = int(value[0]) / 1024
    return out


def serve(work: Path, names: list[str], workers: int) -> None:
    zb.write_zones(work / "zones", names)
    server = zb.dnsseal_server(work / "d", work / "zones", names, workers)
    for phase in ("cold", "restart"):
        try:
            took = zb.wait_signed(server, names, 1800, 0.1, 100)
            time.sleep(1)
            assert server.proc is not None
            pids = zb.tree_pids(server.proc.pid)
            per = [_smaps(p) for p in pids]
            rss = sum(m["Rss"] for m in per)
            print(f"{phase}: {len(names)} zones signed in {took:.1f} s, RSS {rss:.1f} MiB "
                  f"({rss * 1024 / len(names):.1f} KiB/zone), load average "
                  f"{os.getloadavg()[0]:.2f}")  # fmt: skip
            for i, m in enumerate(per):
                role = "main" if i == 0 else "worker"
                print(f"  {role:6} " + "  ".join(f"{k} {v:.1f} MiB" for k, v in m.items()))
        finally:
            zb.stop(server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--mode", choices=("inproc", "serve"), default="inproc")
    ap.add_argument("--breakdown", action="store_true", help="inproc: bytes per structure")
    ap.add_argument("--resigns", type=int, default=0, help="inproc: then re-sign all, N times")
    ap.add_argument("--trim", action="store_true", help="inproc: RSS after malloc_trim(0) too")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="serve mode")
    ap.add_argument("--phase", choices=("cold", "restart"), help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = zb.zone_names(args.zones)
    if args.phase is not None:  # one phase in this process (started by the loop below)
        inproc(args.dir, names, args.phase, args.breakdown, args.resigns, args.trim)
        return
    work = Path(tempfile.mkdtemp(prefix="zones-memory-"))
    try:
        if args.mode == "serve":
            serve(work, names, args.workers)
            return
        for phase in ("cold", "restart"):  # each in a fresh process: no reused free memory
            cmd = [
                sys.executable,
                __file__,
                "--zones",
                str(args.zones),
                "--phase",
                phase,
                "--dir",
                str(work),
                "--resigns",
                str(args.resigns if phase == "restart" else 0),
            ]
            cmd += ["--breakdown"] if args.breakdown else []  # fmt: skip
            cmd += ["--trim"] if args.trim else []  # fmt: skip
            subprocess.run(cmd, check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
