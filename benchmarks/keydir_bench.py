"""Writing new keys' files: ``KeyDirectory.write`` against another version's
``KeyDirectory`` (``--old``: a ``storage/keydir.py`` of another checkout, e.g. from
``git show main:src/dnsseal/storage/keydir.py > /tmp/old_keydir.py``), in one process,
alternating rounds (the machine may be busy: compare the same run's numbers).

Two shapes, both per zone:

- ``start``: one CSK (the default policy), ``--threads`` zones at a time, each zone in an
  ``atomic.deferred_dir_sync`` block handing its directory to one ``DirSyncs`` synced at the
  end: what a cold start of the server does.
- ``run``: a KSK and a ZSK, one zone after the other, no deferral: what ``dnsseal keys run``
  (or ``keygen`` twice) does.  The old code writes each key with ``create``.

Prints, per version, the median CPU time (process_time, all threads) and wall time per zone
and the fsync calls made (of files and of the directory)::

    .venv/bin/python benchmarks/keydir_bench.py --old /tmp/old_keydir.py --zones 500
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.name

from dnsseal.crypto import software
from dnsseal.keys import algorithms
from dnsseal.keys.model import Key, KeyState, KeyTimings
from dnsseal.storage import atomic
from dnsseal.storage import keydir as new_keydir


def _module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("old_keydir", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _keys(zones: int, shape: str) -> list[list[Key]]:
    alg = algorithms.get(13)
    roles = [(257, True, True)] if shape == "start" else [(257, True, False), (256, False, True)]
    out = []
    for i in range(zones):
        zone = dns.name.from_text(f"zone{i:05d}.example.")
        plan = []
        for flags, ksk, zsk in roles:
            public, private = software.generate(alg)
            plan.append(Key(zone, flags, 13, public, ttl=3600, private=private,
                            timings=KeyTimings(created=1, publish=1, activate=1),
                            state=KeyState(ksk=ksk, zsk=zsk)))  # fmt: skip
        out.append(plan)
    return out


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files = self.dirs = 0
        real_fsync, real_dir = os.fsync, atomic._fsync_dir
        self.in_dir = threading.local()

        def fsync(fd: int) -> None:
            if not getattr(self.in_dir, "on", False):
                with self.lock:
                    self.files += 1
            real_fsync(fd)

        def fsync_dir(directory: Path) -> None:
            with self.lock:
                self.dirs += 1
            self.in_dir.on = True
            try:
                real_dir(directory)
            finally:
                self.in_dir.on = False

        os.fsync = fsync  # type: ignore[assignment]
        atomic._fsync_dir = fsync_dir


def _round(mod: ModuleType, old: bool, plans: list[list[Key]], shape: str, threads: int,
           directory: Path, counts: _Counts) -> tuple[float, float, int, int]:  # fmt: skip
    directory.mkdir()
    kd: Any = mod.KeyDirectory(directory)
    write: Callable[[list[Key]], None]
    if old:
        write = lambda plan: [kd.create(k) for k in plan] and None  # noqa: E731
    else:
        write = lambda plan: kd.write(create=plan)  # noqa: E731
    counts.files = counts.dirs = 0
    cpu, wall = time.process_time(), time.perf_counter()
    if shape == "start":
        syncs = atomic.DirSyncs()

        def one(plan: list[Key]) -> None:
            with atomic.deferred_dir_sync(into=syncs):
                write(plan)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, plans))
        syncs.sync()
    else:
        for plan in plans:
            write(plan)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert len(os.listdir(directory)) == sum(3 * len(p) for p in plans)
    return cpu, wall, counts.files, counts.dirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="another version's storage/keydir.py")
    ap.add_argument("--zones", type=int, default=500)
    ap.add_argument("--threads", type=int, default=8, help="start: zones at a time")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shape", choices=["start", "run", "both"], default="both")
    args = ap.parse_args()
    old_mod = _module(args.old)
    counts = _Counts()
    shapes = ["start", "run"] if args.shape == "both" else [args.shape]
    for shape in shapes:
        plans = _keys(args.zones, shape)
        results: dict[str, list[tuple[float, float, int, int]]] = {"old": [], "new": []}
        base = Path(tempfile.mkdtemp(prefix="keydir-bench-"))
        try:
            for r in range(args.rounds):
                for which in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    mod = old_mod if which == "old" else new_keydir
                    out = base / f"{which}{r}"
                    got = _round(mod, which == "old", plans, shape, args.threads, out, counts)
                    results[which].append(got)
        finally:
            shutil.rmtree(base)
        n = args.zones
        print(f"{shape}: {n} zones, {len(plans[0])} key(s) each"
              + (f", {args.threads} threads" if shape == "start" else ""))  # fmt: skip
        for which, rs in results.items():
            cpu = sorted(x[0] for x in rs)[len(rs) // 2] / n * 1e6
            wall = sorted(x[1] for x in rs)[len(rs) // 2] / n * 1e6
            files = sorted(x[2] for x in rs)[len(rs) // 2] / n
            dirs = sorted(x[3] for x in rs)[len(rs) // 2] / n
            print(f"  {which}: per zone CPU {cpu:6.0f} us  wall {wall:6.0f} us  "
                  f"fsyncs {files:.2f} of files + {dirs:.2f} of the directory")  # fmt: skip


if __name__ == "__main__":
    main()
