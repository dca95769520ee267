"""Signing benchmark: dnsseal signzone against ldns-signzone, dnssec-signzone and kzonesign.

Generates the standard benchmark zone (N hosts with A and AAAA, a TXT on every 10th, an
insecure delegation with glue every 100th), makes one ECDSAP256SHA256 KSK+ZSK pair with
dnssec-keygen (imported into Knot's KASP database for kzonesign), signs the zone with every
tool with NSEC and with NSEC3 (no salt, 0 iterations), and prints wall time, peak RSS of
the signing process and the ratio to dnsseal.  Every signed output is checked with
ldns-verify-zone so a fast but wrong result does not count.

    .venv/bin/python benchmarks/sign_bench.py 100000
    .venv/bin/python benchmarks/sign_bench.py 2000 --workers 2 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ORIGIN = "bench.example."


def make_zone(n: int) -> str:
    out = [
        "$TTL 3600",
        f"$ORIGIN {ORIGIN}",
        "@ SOA ns1 hostmaster 1 7200 3600 1209600 3600",
        "@ NS ns1",
        "@ NS ns2",
        "ns1 A 192.0.2.1",
        "ns2 A 192.0.2.2",
    ]
    for i in range(n):
        a = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        out.append(f"host{i} A {a}")
        out.append(f"host{i} AAAA 2001:db8::{i >> 16:x}:{i & 0xFFFF:x}")
        if i % 10 == 0:
            out.append(f'host{i} TXT "benchmark host {i}"')
        if i % 100 == 0:
            out.append(f"sub{i} NS ns.sub{i}")
            out.append(f"ns.sub{i} A 198.51.100.{i // 100 % 250 + 1}")
    return "\n".join(out) + "\n"


@dataclass
class Result:
    tool: str
    mode: str
    wall: float
    rss_mb: float
    ok: bool
    note: str = ""


def run(argv: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run a command: (wall seconds, peak RSS in MiB of that process, result), the RSS from
    os.wait4, which reports exactly this child's resource usage."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())
    return wall, usage.ru_maxrss / 1024, done


def run_measured(
    argv: list[str], cwd: Path
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run under /usr/bin/time when present (exact per-process peak RSS), else :func:`run`."""
    gnu_time = shutil.which("time", path="/usr/bin")
    if gnu_time is None:
        return run(argv, cwd)
    fd, stat_path = tempfile.mkstemp(prefix="rss.")
    os.close(fd)
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([gnu_time, "-f", "%M", "-o", stat_path, *argv], cwd=cwd,
                              capture_output=True, text=True, check=False)  # fmt: skip
        wall = time.perf_counter() - t0
        text = Path(stat_path).read_text().strip().splitlines()
        rss = int(text[-1]) / 1024 if text and text[-1].isdigit() else float("nan")
    finally:
        os.unlink(stat_path)
    return wall, rss, proc


def need(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        sys.exit(f"sign_bench: {tool} is not installed (make system-deps)")
    return path


def make_keys(work: Path) -> list[str]:
    keydir = work / "keys"
    keydir.mkdir()
    names = []
    for extra in (["-f", "KSK"], []):
        p = subprocess.run([need("dnssec-keygen"), "-q", "-K", str(keydir), "-a",
                            "ECDSAP256SHA256", *extra, ORIGIN], capture_output=True, text=True,
                           check=True)  # fmt: skip
        names.append(p.stdout.strip())
    return names


def knot_setup(work: Path, zone: Path, keys: list[str], nsec3: bool) -> Path:
    """A kzonesign configuration with its own KASP database holding our two keys."""
    kdir = work / ("knot3" if nsec3 else "knot")
    kdir.mkdir()
    conf = kdir / "knot.conf"
    conf.write_text(
        f"""database:
  storage: {kdir}
template:
  - id: default
    storage: {kdir}
policy:
  - id: bench
    algorithm: ecdsap256sha256
    manual: on
    nsec3: {"on" if nsec3 else "off"}
    nsec3-iterations: 0
    nsec3-salt-length: 0
zone:
  - domain: {ORIGIN}
    file: {zone}
    dnssec-signing: on
    dnssec-policy: bench
"""
    )
    for k in keys:
        subprocess.run([need("keymgr"), "-c", str(conf), ORIGIN, "import-bind",
                        str(work / "keys" / f"{k}.private")], check=True,
                       capture_output=True, text=True)  # fmt: skip
    return conf


def bench(n: int, work: Path, workers: int, tools: list[str]) -> list[Result]:
    zone = work / "bench.zone"
    zone.write_text(make_zone(n))
    keys = make_keys(work)
    keybases = [str(work / "keys" / k) for k in keys]
    dnsseal = [sys.executable, "-m", "dnsseal.cli.main"]
    results: list[Result] = []
    for mode in ("nsec", "nsec3"):
        n3 = mode == "nsec3"
        runs: dict[str, tuple[list[str], Path]] = {
            "dnsseal": (
                [*dnsseal, "signzone", "-q", "-S", "-K", str(work / "keys"), "-o", ORIGIN,
                 "-n", str(workers), *(["-3", "-"] if n3 else []),
                 "-f", str(work / f"dnsseal.{mode}"), str(zone)],
                work / f"dnsseal.{mode}",
            ),
            "dnssec-signzone": (
                [need("dnssec-signzone"), "-q", "-S", "-K", str(work / "keys"), "-o", ORIGIN,
                 "-n", str(workers), *(["-3", "-", "-H", "0"] if n3 else []),
                 "-f", str(work / f"bind.{mode}"), str(zone)],
                work / f"bind.{mode}",
            ),
            "ldns-signzone": (
                [need("ldns-signzone"), *(["-n", "-t", "0"] if n3 else []),
                 "-o", ORIGIN, "-f", str(work / f"ldns.{mode}"), str(zone), *keybases],
                work / f"ldns.{mode}",
            ),
        }  # fmt: skip
        if "kzonesign" in tools:
            conf = knot_setup(work, zone, keys, n3)
            outdir = work / f"knot-out.{mode}"
            outdir.mkdir()
            runs["kzonesign"] = (
                [need("kzonesign"), "-c", str(conf), "-o", str(outdir), ORIGIN],
                outdir / zone.name,  # kzonesign keeps the configured file's name
            )
        for tool in tools:
            argv, output = runs[tool]
            wall, rss, proc = run_measured(argv, work)
            ok = proc.returncode == 0
            note = "" if ok else (proc.stderr.strip().splitlines() or ["failed"])[-1]
            if ok:
                check = subprocess.run([need("ldns-verify-zone"), "-V", "1", str(output)],
                                       capture_output=True, text=True, check=False)  # fmt: skip
                if check.returncode != 0:
                    ok, note = False, "ldns-verify-zone rejected the output"
            results.append(Result(tool, mode, wall, rss, ok, note))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=100_000, help="hosts (default 100000)")
    ap.add_argument("--workers", type=int, default=1, help="signing workers for each tool")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--tools", default="dnsseal,dnssec-signzone,ldns-signzone,kzonesign")
    args = ap.parse_args()
    tools = args.tools.split(",")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep
        results = bench(args.n, work, args.workers, tools)
    else:
        with tempfile.TemporaryDirectory(prefix="sign_bench.") as d:
            results = bench(args.n, Path(d), args.workers, tools)
    print(f"zone: {args.n} hosts, ECDSAP256SHA256 KSK+ZSK, workers={args.workers}")
    print(f"{'tool':<16} {'mode':<6} {'wall s':>9} {'peak MiB':>9} {'dnsseal/x':>10}  status")
    base = {r.mode: r.wall for r in results if r.tool == "dnsseal" and r.ok}
    for r in results:
        ratio = f"{base[r.mode] / r.wall:.2f}" if r.mode in base and r.wall > 0 else "-"
        status = "ok" if r.ok else f"FAILED: {r.note}"
        print(f"{r.tool:<16} {r.mode:<6} {r.wall:>9.2f} {r.rss_mb:>9.1f} {ratio:>10}  {status}")
    print("dnsseal/x > 1 means dnsseal is slower than x by that factor.")
    if not all(r.ok for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
