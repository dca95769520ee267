"""Signing benchmark: dnsseal signzone against ldns-signzone, dnssec-signzone and kzonesign.

Generates the standard benchmark zone (N hosts with A and AAAA, a TXT on every 10th, an
insecure delegation with glue every 100th), makes one ECDSAP256SHA256 KSK+ZSK pair with
dnssec-keygen (imported into Knot's KASP database for kzonesign), signs the zone with every
tool with NSEC and with NSEC3 (no salt, 0 iterations), and prints wall time, peak RSS of
the signing process and the ratio to dnsseal.  Every signed output is checked with
ldns-verify-zone and its RRSIGs counted against dnsseal's, so a fast but wrong (or
incomplete) result does not count.

Every peer gets the parallelism its documentation gives for the job, on the same number of
cores as dnsseal (``--workers``, default: this machine's cores): kzonesign
``policy.signing-threads`` and ``zone.adjust-threads``, dnssec-signzone ``-n``, dnsseal
signzone ``-n``; ldns-signzone has no threads (it is single-threaded: the table says so).
dnsseal and dnssec-signzone verify their own output by default; both get ``-P`` here, as
kzonesign and ldns-signzone do not verify, and every output is checked by ldns-verify-zone
afterwards (outside the timing).  The tools run in ``--rounds`` alternating rounds
(default 3, order rotated each round) and the median is reported, because this machine's
other load drifts within minutes.  Each peer's configuration is printed with the results.

    .venv/bin/python benchmarks/sign_bench.py 100000
    .venv/bin/python benchmarks/sign_bench.py 2000 --workers 2 --keep /tmp/bench
    .venv/bin/python benchmarks/sign_bench.py 100000 --workers 2 --resign  # + smart re-sign
    .venv/bin/python benchmarks/sign_bench.py 100000 --workers 2 --resign --tools dnsseal
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
    cpu: float
    ok: bool
    note: str = ""


def run(argv: list[str], cwd: Path) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """Run a command: (wall seconds, peak RSS in MiB of that process, CPU seconds, result),
    from os.wait4, which reports exactly this child's resource usage."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, done


def run_measured(
    argv: list[str], cwd: Path
) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """Run under /usr/bin/time when present: (wall s, peak RSS MiB of the largest process,
    CPU s of the process and its waited-for children, result); else :func:`run`."""
    gnu_time = shutil.which("time", path="/usr/bin")
    if gnu_time is None:
        return run(argv, cwd)
    fd, stat_path = tempfile.mkstemp(prefix="rss.")
    os.close(fd)
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([gnu_time, "-f", "%M %U %S", "-o", stat_path, *argv], cwd=cwd,
                              capture_output=True, text=True, check=False)  # fmt: skip
        wall = time.perf_counter() - t0
        text = Path(stat_path).read_text().strip().splitlines()
        fields = text[-1].split() if text else []
        try:
            rss, cpu = int(fields[0]) / 1024, float(fields[1]) + float(fields[2])
        except (IndexError, ValueError):
            rss = cpu = float("nan")
    finally:
        os.unlink(stat_path)
    return wall, rss, cpu, proc


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


def knot_setup(work: Path, zone: Path, keys: list[str], nsec3: bool, threads: int) -> Path:
    """A kzonesign configuration with its own KASP database holding our two keys, signing
    with ``threads`` threads (Knot's documented knob for parallel signing)."""
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
    signing-threads: {threads}
zone:
  - domain: {ORIGIN}
    file: {zone}
    dnssec-signing: on
    dnssec-policy: bench
    adjust-threads: {threads}
"""
    )
    for k in keys:
        subprocess.run([need("keymgr"), "-c", str(conf), ORIGIN, "import-bind",
                        str(work / "keys" / f"{k}.private")], check=True,
                       capture_output=True, text=True)  # fmt: skip
    return conf


def count_rrsigs(path: Path) -> int:
    """RRSIG records in a signed zone file, whatever the writer's layout: one record per line
    (owner, optional TTL and class, then the type) or BIND's multi-line form, whose
    continuation lines (inside parentheses) are skipped."""
    n = depth = 0
    with path.open() as f:
        for line in f:
            text = line.split(";", 1)[0] if '"' not in line else line
            if depth == 0 and "RRSIG" in text.split(None, 4)[:4]:
                n += 1
            bare = text if '"' not in text else "".join(text.split('"')[::2])
            depth += bare.count("(") - bare.count(")")
    return n


def peer_configs(workers: int) -> dict[str, str]:
    """What each tool was told about parallelism, printed beside the results."""
    return {
        "dnsseal": f"dnsseal signzone -n {workers} (worker processes), -P",
        "dnssec-signzone": f"dnssec-signzone -n {workers} (threads), -P",
        "ldns-signzone": "ldns-signzone (single-threaded; it has no option for threads)",
        "kzonesign": f"kzonesign, policy.signing-threads: {workers}, zone.adjust-threads: "
        f"{workers}",
    }


def bench(n: int, work: Path, workers: int, tools: list[str], verify: str = "all",
          modes: tuple[str, ...] = ("nsec", "nsec3"), rounds: int = 3) -> list[Result]:  # fmt: skip
    """Sign with every tool ``rounds`` times per mode, the tools alternating (the order
    rotates each round); one Result per tool and mode with the median wall/CPU/RSS."""
    zone = work / "bench.zone"
    zone.write_text(make_zone(n))
    keys = make_keys(work)
    keybases = [str(work / "keys" / k) for k in keys]
    dnsseal = [sys.executable, "-m", "dnsseal.cli.main"]
    results: list[Result] = []
    for mode in modes:
        n3 = mode == "nsec3"
        runs: dict[str, tuple[list[str], Path]] = {
            "dnsseal": (
                [*dnsseal, "signzone", "-q", "-P", "-S", "-K", str(work / "keys"), "-o", ORIGIN,
                 "-n", str(workers), *(["-3", "-"] if n3 else []),
                 "-f", str(work / f"dnsseal.{mode}"), str(zone)],
                work / f"dnsseal.{mode}",
            ),
            "dnssec-signzone": (
                [need("dnssec-signzone"), "-q", "-P", "-S", "-K", str(work / "keys"), "-o", ORIGIN,
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
            conf = knot_setup(work, zone, keys, n3, workers)
            outdir = work / f"knot-out.{mode}"
            outdir.mkdir()
            runs["kzonesign"] = (
                [need("kzonesign"), "-c", str(conf), "-o", str(outdir), ORIGIN],
                outdir / zone.name,  # kzonesign keeps the configured file's name
            )
        measured: dict[str, list[tuple[float, float, float]]] = {t: [] for t in tools}
        failed: dict[str, str] = {}
        for r in range(rounds):
            order = tools[r % len(tools) :] + tools[: r % len(tools)]
            for tool in order:
                if tool in failed:
                    continue
                argv, output = runs[tool]
                wall, rss, cpu, proc = run_measured(argv, work)
                if proc.returncode != 0:
                    failed[tool] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                    continue
                measured[tool].append((wall, rss, cpu))
                print(f"round {r + 1} {mode:<6} {tool:<16} {wall:8.2f} s", flush=True)
        sigs = {t: count_rrsigs(runs[t][1]) for t in tools if t not in failed}
        for tool in tools:
            output = runs[tool][1]
            if tool in failed:
                results.append(Result(tool, mode, 0.0, 0.0, 0.0, False, failed[tool]))
                continue
            walls, rsss, cpus = zip(*measured[tool], strict=True)
            ok, notes = True, [f"{sigs[tool]} RRSIGs"]
            if "dnsseal" in sigs and sigs[tool] != sigs["dnsseal"]:
                notes.append(f"dnsseal wrote {sigs['dnsseal']}")
            if verify == "all" or (verify == "dnsseal" and tool == "dnsseal"):
                check = subprocess.run([need("ldns-verify-zone"), "-V", "1", str(output)],
                                       capture_output=True, text=True, check=False)  # fmt: skip
                if check.returncode != 0:
                    ok = False
                    notes.append("ldns-verify-zone rejected the output")
                else:
                    notes.append("verified")
            else:
                notes.append("not verified (--verify)")
            results.append(
                Result(
                    tool,
                    mode,
                    statistics.median(walls),
                    statistics.median(rsss),
                    statistics.median(cpus),
                    ok,
                    ", ".join(notes),
                )
            )
    return results


def changed_hosts(n: int) -> list[int]:
    """The 1% of hosts whose A record the re-sign benchmark changes."""
    return list(range(50, n, 100))


def resign_child(work: Path, n: int, mode: str) -> None:
    """In a child process: time ``sign_zone`` on the unsigned zone and ``sign_changes`` (smart
    re-sign of our own signed output, kept signatures trusted) after 1% of the A records
    changed; prints JSON."""
    import json

    import dns.name

    from dnsseal import clock
    from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone, smart_select
    from dnsseal.storage import zonefile
    from dnsseal.storage.keydir import KeyDirectory
    from dnsseal.zone.diff import ZoneDiff

    origin = dns.name.from_text(ORIGIN)
    now = clock.now()
    keys = smart_select(KeyDirectory(work / "keys").keys(origin), now)
    params = SignParams(nsec3=Nsec3Params() if mode == "nsec3" else None, serial="increment")
    unsigned = zonefile.read_zone(work / "bench.zone", origin)
    t0 = time.perf_counter()
    signed = sign_zone(unsigned, keys, params, now).zone
    full = time.perf_counter() - t0
    del unsigned
    removed, added = [], []
    for i in changed_hosts(n):
        name = dns.name.from_text(f"host{i}", origin)
        old = signed.get(name, 1)
        assert old is not None
        removed.append((name, 1, old.ttl, old.rdatas[0]))
        added.append((name, 1, old.ttl, bytes((192, 0, 2, i % 250 + 1))))
    t0 = time.perf_counter()
    result = sign_changes(signed, ZoneDiff(tuple(removed), tuple(added)), keys, params, now)
    inc = time.perf_counter() - t0
    print(json.dumps({"full": full, "resign": inc, "generated": result.stats.generated,
                      "retained": result.stats.retained}))  # fmt: skip


def resign_bench(n: int, work: Path, workers: int, full: dict[str, float]) -> list[str]:
    """Smart re-sign after 1% of the A records changed, three ways: the library's
    incremental ``sign_changes`` (in one process), and ``dnsseal signzone`` re-signing the
    changed signed file in place, once with its ledger file as the full signing left it
    (signature ledger and snapshot: only the changed blocks are read, see
    ``signer/resign.py``) and once with the ledger's signatures but no snapshot (the
    whole file read and written, kept signatures taken from the ledger: the path before the
    snapshot).  Both command-line runs use the same fixed -s/-e, so their outputs must be
    identical after the header line; the result says so.  ``full``: dnsseal's full signing
    wall time per mode, for the ratio."""
    import json

    from dnsseal.signfile.ledger import MAGIC, unpack_ledger

    start = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 3600))
    end = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 3600 + 30 * 86400))
    lines = []
    for mode in ("nsec", "nsec3"):
        proc = subprocess.run([sys.executable, __file__, "--resign-child", mode, str(n),
                               "--keep", str(work)], capture_output=True, text=True,
                              check=True)  # fmt: skip
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        lines.append(f"api    {mode:<6} full sign_zone {got['full']:.2f} s, sign_changes "
                     f"{got['resign']:.2f} s ({got['resign'] / got['full']:.1%}), "
                     f"{got['generated']} new / {got['retained']} kept signatures")  # fmt: skip
        signed = (work / f"dnsseal.{mode}").read_text()
        wanted = {f"host{i}.{ORIGIN}" for i in changed_hosts(n)}
        out = []
        for line in signed.splitlines():
            f = line.split("\t")
            if len(f) == 5 and f[3] == "A" and f[0] in wanted:
                i = int(f[0][4:].split(".")[0])
                out.append("\t".join([*f[:4], f"192.0.2.{i % 250 + 1}"]))
            else:
                out.append(line)
        text = "\n".join(out) + "\n"
        ledger = (work / f"dnsseal.{mode}.ledger").read_bytes()
        parts = unpack_ledger(ledger)
        results = {}
        for how in ("snapshot", "ledger only"):
            changed = work / f"changed.{mode}" if how == "snapshot" else work / f"careful.{mode}"
            changed.write_text(text)  # the operator's signed file and its ledger, edited
            if how == "snapshot" or parts is None:
                Path(f"{changed}.ledger").write_bytes(ledger)
            else:  # the same signatures, no snapshot
                Path(f"{changed}.ledger").write_bytes(MAGIC + bytes(parts.digests))
            argv = [sys.executable, "-m", "dnsseal.cli.main", "-v", "signzone", "-q", "-P", "-S",
                    "-K", str(work / "keys"), "-o", ORIGIN, "-n", str(workers), "-s", start,
                    "-e", end, *(["-3", "-"] if mode == "nsec3" else []), "-f", str(changed),
                    str(changed)]  # fmt: skip
            wall, rss, cpu, proc2 = run_measured(argv, work)
            status = "ok" if proc2.returncode == 0 else f"FAILED: {proc2.stderr.strip()[-200:]}"
            how_note = [x for x in proc2.stderr.splitlines()
                        if "from the snapshot" in x or "reading the whole file" in x]  # fmt: skip
            share = f" ({wall / full[mode]:.1%} of its full signing)" if mode in full else ""
            lines.append(f"cli    {mode:<6} re-sign of the changed signed zone, {how:<11}: "
                         f"{wall:.2f} s wall{share}, {cpu:.2f} s CPU, {rss:.0f} MiB, "
                         f"{status}")  # fmt: skip
            lines += [f"         {x.split(': ', 1)[-1]}" for x in how_note[-1:]]
            results[how] = changed.read_text().split("\n", 1)[-1]
        same = results["snapshot"] == results["ledger only"]
        lines.append(f"cli    {mode:<6} outputs of the two re-signs (after the header line): "
                     f"{'identical' if same else 'DIFFERENT'}")  # fmt: skip
    return lines


def _full_walls(results: list[Result]) -> dict[str, float]:
    return {r.mode: r.wall for r in results if r.tool == "dnsseal" and r.ok}


def crypto_floor(n: int, workers: int) -> None:
    """The CPU one ECDSAP256SHA256 signature costs with ``cryptography`` (RFC 6979
    deterministic, as dnsseal signs so that its output repeats; and with random nonces),
    and what the zone's signatures alone cost on ``workers`` cores."""
    from cryptography.hazmat.backends.openssl import backend
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    data = os.urandom(150)  # about what an RRSIG's signed data is here
    sigs = 3 * n + n // 10 + 1_000  # A, AAAA and NSEC per host, TXT per tenth host, apex
    print(f"cryptography with {backend.openssl_version_text()}, load {os.getloadavg()[0]:.2f}")
    for det in (True, False):
        algo = ec.ECDSA(hashes.SHA256(), deterministic_signing=det)
        best = float("inf")
        for _ in range(5):
            t = time.process_time()
            for _ in range(4000):
                key.sign(data, algo)
            best = min(best, (time.process_time() - t) / 4000)
        print(f"  {'deterministic' if det else 'random nonce':13} {best * 1e6:6.1f} us/signature, "
              f"{1 / best:8,.0f}/s per core; {sigs:,} signatures: {sigs * best:5.2f} CPU-s, "
              f"{sigs * best / workers:5.2f} s on {workers} core(s)")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--resign-child":
        resign_child(Path(sys.argv[5]), int(sys.argv[3]), sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=100_000, help="hosts (default 100000)")
    ap.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="threads/workers for every tool that has them (default: all cores)",
    )
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per tool and mode, alternating; the median is reported")  # fmt: skip
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--tools", default="dnsseal,dnssec-signzone,ldns-signzone,kzonesign")
    ap.add_argument("--modes", default="nsec,nsec3", help="nsec, nsec3 or both (comma-separated)")
    ap.add_argument(
        "--verify",
        choices=("all", "dnsseal", "none"),
        default="all",
        help="whose output ldns-verify-zone checks (it takes minutes at 1M names)",
    )
    ap.add_argument("--resign", action="store_true",
                    help="also time a smart re-sign after 1%% of the records changed")  # fmt: skip
    ap.add_argument("--crypto-floor", action="store_true",
                    help="only time one P-256 signature (deterministic, as dnsseal signs, and "
                    "with random nonces) and print the signing floor for the zone")  # fmt: skip
    args = ap.parse_args()
    if args.crypto_floor:
        crypto_floor(args.n, args.workers)
        return
    tools = args.tools.split(",")
    modes = tuple(args.modes.split(","))
    resign: list[str] = []
    load_before = os.getloadavg()[0]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep
        results = bench(args.n, work, args.workers, tools, args.verify, modes, args.rounds)
        if args.resign:
            resign = resign_bench(args.n, work, args.workers, _full_walls(results))
    else:
        with tempfile.TemporaryDirectory(prefix="sign_bench.") as d:
            results = bench(args.n, Path(d), args.workers, tools, args.verify, modes, args.rounds)
            if args.resign:
                resign = resign_bench(args.n, Path(d), args.workers, _full_walls(results))
    print(f"zone: {args.n} hosts, ECDSAP256SHA256 KSK+ZSK, {os.cpu_count()} cores, "
          f"median of {args.rounds} alternating round(s), 1-min load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after")  # fmt: skip
    print("configuration of each tool:")
    configs = peer_configs(args.workers)
    for t in tools:
        print(f"  {t:<16} {configs[t]}")
    print(f"{'tool':<16} {'mode':<6} {'wall s':>9} {'CPU s':>8} {'peak MiB':>9} "
          f"{'dnsseal/x':>10} {'x/dnsseal':>10} {'MiB/x':>7}  status")  # fmt: skip
    base = {r.mode: r for r in results if r.tool == "dnsseal" and r.ok}
    for r in results:
        b = base.get(r.mode)
        ratio = f"{b.wall / r.wall:.2f}" if b and r.wall > 0 else "-"
        inv = f"{r.wall / b.wall:.2f}" if b and b.wall > 0 else "-"
        mem = f"{b.rss_mb / r.rss_mb:.2f}" if b and r.rss_mb > 0 else "-"
        status = ("ok" + (f" ({r.note})" if r.note else "")) if r.ok else f"FAILED: {r.note}"
        print(f"{r.tool:<16} {r.mode:<6} {r.wall:>9.2f} {r.cpu:>8.2f} {r.rss_mb:>9.1f} "
              f"{ratio:>10} {inv:>10} {mem:>7}  {status}")  # fmt: skip
    for line in resign:
        print(line)
    print("dnsseal/x > 1 means dnsseal is slower than x by that factor; MiB/x is dnsseal's "
          "peak memory over x's.")  # fmt: skip
    if not all(r.ok for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
