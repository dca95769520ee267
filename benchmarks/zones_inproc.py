"""CPU of the server's start of many small inline-signed zones, in one process.

    PYTHONPATH=<tree>/src .venv/bin/python benchmarks/zones_inproc.py DIR --zones 1000 cold
    PYTHONPATH=<tree>/src .venv/bin/python benchmarks/zones_inproc.py DIR --zones 1000 restart

Writes ``zones_bench.py``'s N zones and a ``dnsseal.toml`` (default policy, one shared
key directory and state directory) into DIR when it has none, then for each phase given
runs ``AuthServer.start()`` until every zone is served and prints the process's user and
system CPU per zone (``os.times``; imports and zone generation excluded), the CPU of its
child processes (the first-signing helper of a cold start), the wall time and
the load average.  ``--log F`` logs as ``dnsseal serve`` does by default, into F.
``cold`` needs a DIR not started before; ``restart`` can be repeated on the same DIR (an
unchanged restart changes nothing), so old and new trees can be run in turn on the same
state.  Keep the directories of cold runs until the end: deleting many files just before a
timed cold start raises its system time (see docs/zones-benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's live children."""
    me, total = str(os.getpid()), 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def main() -> None:
    import zones_bench as zb
    from conftest import free_port
    from dnsseal.server import signpool
    from dnsseal.server.service import AuthServer
    from dnsseal.storage.serverconfig import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("phases", nargs="+", choices=["cold", "restart"])
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--tag", default=os.environ.get("PYTHONPATH", ""))
    ap.add_argument(
        "--log",
        type=Path,
        help="log as `dnsseal serve` does by default (info and up, every category) to this "
        "file (default: no logging below warning)",
    )
    args = ap.parse_args()
    d, n = args.dir, args.zones
    conf = d / "dnsseal.toml"
    if not conf.exists():
        d.mkdir(parents=True, exist_ok=True)
        names = zb.zone_names(n)
        zb.write_zones(d / "zones", names)
        body = "".join(
            f'\n[zone."{x}"]\nfile = "{d / "zones" / x.rstrip(".")}"\ndnssec-policy = "default"\n'
            for x in names
        )
        conf.write_text(
            f'[server]\nlisten = ["127.0.0.1@{free_port()}"]\nworkers = 2\n'
            f'control = "none"\nstate-dir = "{d}/state"\nkey-directory = "{d}/keys"\n' + body
        )
    if args.log is None:
        logging.disable(logging.INFO)
    else:  # (the default channel writes to the sys.stderr of when it is made)
        from dnsseal.server import logsetup

        stderr, sys.stderr = sys.stderr, args.log.open("a", encoding="utf-8")
        try:
            logsetup.configure(load_config(conf).logging)
        finally:
            sys.stderr = stderr

    async def run() -> tuple[float, float, float, float]:
        server = AuthServer(load_config(conf), conf)
        w0, t0 = time.monotonic(), os.times()
        await server.start()
        w1, t1 = time.monotonic(), os.times()
        # the live children's CPU, and the ended ones' (the helper ends with the start)
        kids = children_cpu() + (t1.children_user + t1.children_system)
        kids -= t0.children_user + t0.children_system
        assert all(s.served is not None for s in server.zones.values())
        await server.stop()
        return t1.user - t0.user, t1.system - t0.system, w1 - w0, kids

    for phase in args.phases:
        helped = signpool.signed_count()
        user, system, wall, kids = asyncio.run(run())
        helped = signpool.signed_count() - helped
        print(
            f"{args.tag} {phase}: {n} zones, main {1000 * (user + system) / n:.2f} ms/zone "
            f"(user {1000 * user / n:.2f} sys {1000 * system / n:.2f}), children "
            f"{1000 * kids / n:.2f} ms/zone ({helped} zones signed there), wall {wall:.2f} s, "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":  # (the first-signing helper is spawned: it imports this file)
    main()
