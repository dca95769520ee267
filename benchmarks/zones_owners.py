"""Who holds the memory of many small inline-signed zones in a real ``dnsseal serve``.

``zones_memory.py`` measures RSS (``--mode serve``) or, in one process without workers
(``--mode inproc --breakdown``), the bytes each structure keeps.  This runs ``dnsseal
serve`` itself (``workers = 2``: the main process and one forked worker, the zones and
configuration of ``zones_bench.py``), and once every zone answers signed asks the main
process and the worker (SIGUSR2, a handler installed by this script's ``--hook`` around
the CLI) for:

* the bytes reachable from each field of each zone's structures (``ZoneHandle``, its
  ``ServedZone`` and ``ZoneSnapshot`` field by field, ``InlineZone``, the wire table's
  entries), then from the server's per-process structures (wire table, engine, zone
  table, the links to the workers, maintenance) and the large module-level dicts of
  ``dnsseal``: each object counted once, charged to the first structure listed that
  reaches it; per zone, with the four types holding most of it;
* the tracked objects nothing listed reaches (per zone, by type);
* the RSS before and after ``malloc_trim(0)``, and the peak length of
  ``zonesync.MainLinks``' queue of versions waiting for a frame;

written to ``DIR/<phase>-main.txt`` and ``DIR/<phase>-worker.txt`` (the collector is
unfrozen for the count: read the RSS printed before the dump).  Example::

    PYTHONPATH=src .venv/bin/python benchmarks/zones_owners.py --zones 1000 --out /tmp/owners

Every server is started here and stopped by its PID.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import os
import shutil
import signal
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

STOP = (type, types.ModuleType, types.FunctionType, types.CodeType, types.BuiltinFunctionType,
        types.MethodType, asyncio.AbstractEventLoop)  # fmt: skip
PEAK = [0]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _Sizes:
    """Bytes reachable from roots, each object counted once overall."""

    def __init__(self, stop: tuple[type, ...]) -> None:
        self.seen: set[int] = set()
        self.stop = stop
        self.by: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        self.types: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )

    def add(self, what: str, root: object) -> None:
        total = count = 0
        stack = [root]
        while stack:
            o = stack.pop()
            if id(o) in self.seen:
                continue
            self.seen.add(id(o))
            if isinstance(o, self.stop):
                continue
            size = sys.getsizeof(o)
            total += size
            count += 1
            self.types[what][type(o).__qualname__] += size
            stack.extend(gc.get_referents(o))
        self.by[what][0] += total
        self.by[what][1] += count

    def own(self, what: str, o: object) -> None:
        """``o`` itself (its fields are added one by one)."""
        self.seen.add(id(o))
        self.by[what][0] += sys.getsizeof(o)
        self.by[what][1] += 1


def _fields(o: object) -> list[tuple[str, Any]]:
    names: list[str] = []
    for k in type(o).__mro__:
        slots = getattr(k, "__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    names += list(getattr(o, "__dict__", {}))
    skip = {"__dict__", "__weakref__"}
    return [(n, getattr(o, n, None)) for n in dict.fromkeys(names) if n not in skip]


def _owners(out: list[str]) -> None:
    from dnsseal.server.service import AuthServer

    server = next((o for o in gc.get_objects() if type(o) is AuthServer), None)
    if server is None:
        out.append("no AuthServer")
        return
    kinds = (AuthServer, type(server.engine), type(server.automation), type(server.config))
    sizes = _Sizes((*STOP, *kinds))
    zones = list(server.table.zones.values())
    n = len(zones)
    for o in (server, server.engine, server.automation, server.table, server.table.zones):
        sizes.seen.add(id(o))
    wire = server.engine.wire
    for h in zones:
        sizes.own("ZoneHandle (the object)", h)
    for h in zones:  # the snapshot served first, field by field
        served = h.served
        if served is not None:
            sizes.own("ServedZone (the object)", served)
            sizes.own("ZoneSnapshot (the object)", served.snapshot)
            for k, v in _fields(served.snapshot):
                sizes.add(f"snapshot.{k}", v)
            for k, v in _fields(served):
                sizes.add(f"served.{k}", v)
    for h in zones:
        if h.served is not None:
            sizes.add("wire table: the zone's entries", wire.prefilled.get(id(h.served.snapshot)))
    for h in zones:
        if h.inline is not None:
            sizes.own("InlineZone (the object)", h.inline)
            for k, v in _fields(h.inline):
                sizes.add(f"inline.{k}", v)
    for h in zones:
        for k, v in _fields(h):
            if k not in ("_served", "inline", "port", "on_served"):
                sizes.add(f"handle.{k}", v)
    parts = [("wire", wire), ("engine", server.engine), ("table", server.table),
             ("links", server.links), ("link", server.link), ("automation", server.automation),
             ("server", server)]  # fmt: skip
    for label, part in parts:
        if part is not None:
            for k, v in _fields(part):
                sizes.add(f"{label}.{k} (all zones)", v)
    for name, mod in list(sys.modules.items()):
        if name.startswith("dnsseal"):
            for k, v in list(vars(mod).items()):
                if isinstance(v, (dict, list, set)) and len(v) > 50:
                    sizes.add(f"module {name}.{k} ({len(v)} entries)", v)
    out.append(f"== owners, {n} zones: KiB per zone, objects per zone, [types, bytes per zone]")
    total = 0
    for what, (size, count) in sorted(sizes.by.items(), key=lambda kv: -kv[1][0]):
        total += size
        if size / n >= 30:
            top = ", ".join(f"{t} {v / n:.0f}" for t, v in sizes.types[what].most_common(4))
            out.append(f"{size / n / 1024:8.2f} {count / n:7.1f}  {what}  [{top}]")
    out.append(f"{total / n / 1024:8.2f} in all")
    out.append("== tracked objects reached by none of these: bytes per zone, objects per zone")
    rest: collections.Counter[str] = collections.Counter()
    count_of: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        if id(o) not in sizes.seen and not isinstance(o, STOP):
            kind = f"{type(o).__module__}.{type(o).__qualname__}"
            rest[kind] += sys.getsizeof(o)
            count_of[kind] += 1
    for kind, size in rest.most_common(15):
        out.append(f"{size / n:8.0f} {count_of[kind] / n:7.2f}  {kind}")


def _dump(signum: int, frame: object) -> None:
    out = [f"pid {os.getpid()} RSS {_rss_kib()} KiB, queue peak {PEAK[0]} versions"]
    gc.unfreeze()  # (the start freezes what it made: gc.get_objects would not list it)
    gc.collect()
    try:
        _owners(out)
    except Exception as e:  # (a measurement: say what failed, keep the server up)
        out.append(f"breakdown failed: {e!r}")
    gc.collect()
    before = _rss_kib()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    out.append(f"RSS after the breakdown {before} KiB, then after malloc_trim(0) {_rss_kib()} KiB")
    Path(os.environ["ZONES_OWNERS_OUT"], f"dump-{os.getpid()}.txt").write_text(
        "\n".join(out) + "\n"
    )


def hook() -> None:
    """Run the dnsseal CLI (argv after ``--hook``) with the SIGUSR2 handler installed."""
    from dnsseal.cli.main import main
    from dnsseal.server import zonesync

    push = zonesync.MainLinks.push

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        push(self, *args, **kwargs)
        PEAK[0] = max(PEAK[0], self._queue.qsize())

    zonesync.MainLinks.push = counted  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR2, _dump)
    sys.argv = ["dnsseal", *sys.argv[2:]]
    sys.exit(main())


def run(zones: int, out: Path, phases: list[str]) -> None:
    import zones_bench as zb

    out.mkdir(parents=True, exist_ok=True)
    wrap = out / "dnsseal-hooked"
    wrap.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} --hook "$@"\n')
    wrap.chmod(0o755)
    zb.DNSSEAL = wrap
    os.environ["ZONES_OWNERS_OUT"] = str(out)
    names = zb.zone_names(zones)
    work = Path(tempfile.mkdtemp(prefix="zones-owners-"))
    try:
        zb.write_zones(work / "zones", names)
        server = zb.dnsseal_server(work / "d", work / "zones", names, 2)
        for phase in phases:
            try:
                took = zb.wait_signed(server, names, 3600, 0.1, 100)
                time.sleep(2)
                assert server.proc is not None
                pids = zb.tree_pids(server.proc.pid)[:2]  # the main process and its worker
                rss = [_proc_rss(p) for p in pids]
                print(f"{phase}: {zones} zones signed in {took:.1f} s, RSS main "
                      f"{rss[0]:.1f} + worker {rss[1]:.1f} MiB, load average "
                      f"{os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
                for pid in pids:
                    os.kill(pid, signal.SIGUSR2)
                for pid, role in zip(pids, ("main", "worker"), strict=True):
                    dump = out / f"dump-{pid}.txt"
                    for _ in range(1200):
                        if dump.exists():
                            break
                        time.sleep(0.5)
                    if dump.exists():
                        dump.rename(out / f"{phase}-{role}.txt")
            finally:
                zb.stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _proc_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--hook":
        hook()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--out", type=Path, required=True, help="where the dumps are written")
    ap.add_argument("phases", nargs="*", default=["cold", "restart"])
    args = ap.parse_args()
    run(args.zones, args.out, args.phases)


if __name__ == "__main__":
    main()
