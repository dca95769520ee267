"""Signatures per second with keys in software and in a PKCS#11 token (SoftHSMv2), against
Knot on the same token.

Two measurements, both run here in the same run:

1. **Raw signing** (``dnsseal keystore bench``): a fresh key per process, a 100-octet message
   signed over and over for ``--seconds``, with 1 and 2 processes each holding its own
   PKCS#11 session (``--sessions``), for the software store and for the token, per algorithm.
   Knot's equivalent, ``keymgr <keystore> keystore-bench``, is not in Knot 3.2's keymgr: it is
   run when the installed ``keymgr -h`` lists it, otherwise the output says so.
2. **Zone signing** through the token, the comparison Knot 3.2 allows: the same zone of
   ``--names`` names signed (ECDSAP256SHA256 KSK + ZSK, NSEC) by ``dnsseal signzone -S -x -n J``
   and by ``kzonesign`` with ``policy: signing-threads: J`` (Knot's documented setting for
   parallel signing), once with the keys in files (dnsseal's ``.private``, Knot's PEM
   keystore) and once with the keys in the token (dnsseal ``keystore generate``, Knot's
   ``keystore: backend: pkcs11``).  The rate is RRSIGs in the output per wall-clock second of
   the whole command (reading, chaining, writing included); each output is counted, not
   assumed.

Every configuration is printed next to its result, with the ratio dnsseal / Knot for the
zone signing.  The token is made in a temporary directory (``SOFTHSM2_CONF`` points at it)
and removed at the end.  Quick example (a few seconds)::

    .venv/bin/python benchmarks/keystore_bench.py --seconds 0.5 --names 500
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "bench"
PIN = "1234"
ZONE = "bench.example."
RATE = re.compile(r"^\s+(\S+)\s+(\d+) signatures/s$", re.M)


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        sys.exit(f"{name} is not installed (see the Makefile's system-deps)")
    return path


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def make_token(d: Path) -> tuple[dict[str, str], str]:
    """A fresh SoftHSM token in ``d``: (environment for every command, the token's URI)."""
    (d / "tokens").mkdir(parents=True)
    conf = d / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {d}/tokens\nobjectstore.backend = file\n")
    pin = d / "pin"
    pin.write_text(PIN + "\n")
    pin.chmod(0o600)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    run([tool("softhsm2-util"), "--init-token", "--free", "--label", TOKEN, "--pin", PIN,
         "--so-pin", "5678"], env)  # fmt: skip
    return env, f"pkcs11:token={TOKEN}?module-path={MODULE}&pin-source={pin}"


def raw_rates(env: dict[str, str], location: str, algs: list[str], jobs: int,
              seconds: float) -> dict[str, int]:  # fmt: skip
    args = [a for alg in algs for a in ("-a", alg)]
    out = run([*DNSSEAL, "keystore", "bench", "-s", str(seconds), "-j", str(jobs), *args,
               location], env)  # fmt: skip
    return {m.group(1): int(m.group(2)) for m in RATE.finditer(out)}


def zone_text(names: int) -> str:
    lines = [f"$ORIGIN {ZONE}", "$TTL 3600", "@ SOA ns1 hostmaster 1 3600 600 864000 300",
             "@ NS ns1", "ns1 A 192.0.2.53"]  # fmt: skip
    for i in range(names):
        lines.append(f"h{i} A 192.0.2.{i % 250 + 1}")
        lines.append(f'h{i} TXT "host {i}"')
    return "\n".join(lines) + "\n"


def count_rrsigs(path: Path) -> int:
    n = 0
    with path.open() as f:
        for line in f:
            if line.startswith(";"):
                continue
            fields = line.split(None, 5)
            if "RRSIG" in fields[1:4]:
                n += 1
    return n


def dnsseal_zone(env: dict[str, str], d: Path, location: str | None, jobs: int
                 ) -> tuple[float, int]:  # fmt: skip
    """``dnsseal signzone -S -n jobs`` with a KSK and ZSK in ``location`` (None: files)."""
    keys = d / "keys"
    if not keys.exists():
        keys.mkdir()
        for flags in (["-f", "KSK"], []):
            if location is None:
                run([*DNSSEAL, "keygen", "-K", str(keys), "-a", "13", *flags, ZONE], env)
            else:
                run([*DNSSEAL, "keystore", "generate", "-K", str(keys), "-a", "13", *flags,
                     "-l", location, ZONE], env)  # fmt: skip
    out = d / f"signed-{jobs}.zone"
    t0 = time.perf_counter()
    # -x: the KSK alone signs the DNSKEY RRset, as Knot does
    run([*DNSSEAL, "signzone", "-S", "-x", "-q", "--no-ledger", "-n", str(jobs), "-K", str(keys),
         "-o", ZONE, "-f", str(out), str(d / "zone.db")], env)  # fmt: skip
    return time.perf_counter() - t0, count_rrsigs(out)


def knot_zone(env: dict[str, str], d: Path, pkcs11: bool, jobs: int) -> tuple[float, int]:
    """``kzonesign`` with ``signing-threads: jobs``, keys in the token or PEM files."""
    store = (f'keystore:\n  - id: ks\n    backend: pkcs11\n'
             f'    config: "pkcs11:token={TOKEN};pin-value={PIN} {MODULE}"\n') if pkcs11 else (
             f'keystore:\n  - id: ks\n    backend: pem\n    config: "{d}/pem"\n')  # fmt: skip
    conf = d / f"knot-{jobs}.conf"
    conf.write_text(
        f"""server:
    rundir: "{d}"
database:
    storage: "{d}"
{store}policy:
  - id: bench
    keystore: ks
    algorithm: ecdsap256sha256
    manual: on
    signing-threads: {jobs}
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: "zone.db"
    dnssec-signing: on
    dnssec-policy: bench
"""
    )
    if not (d / "keys-made").exists():
        for role in ("ksk=yes", "zsk=yes"):
            run([tool("keymgr"), "-c", str(conf), ZONE, "generate", "algorithm=13", role], env)
        (d / "keys-made").write_text("")
    out = d / f"out-{jobs}"
    out.mkdir()
    t0 = time.perf_counter()
    run([tool("kzonesign"), "-c", str(conf), "-o", str(out), ZONE], env)
    return time.perf_counter() - t0, count_rrsigs(out / "zone.db")


def knot_keystore_bench(env: dict[str, str], d: Path) -> str:
    """Knot's own keystore-bench on the token, when this keymgr has it (not Knot 3.2's)."""
    help_text = subprocess.run([tool("keymgr"), "-h"], capture_output=True, text=True,
                               check=False).stdout  # fmt: skip
    if "keystore-bench" not in help_text:
        return "not available in this keymgr (later Knot releases have it)"
    conf = d / "knot-bench.conf"
    conf.write_text(
        f'keystore:\n  - id: ks\n    backend: pkcs11\n'
        f'    config: "pkcs11:token={TOKEN};pin-value={PIN} {MODULE}"\n'
    )  # fmt: skip
    # "keymgr [config] keystore_id command", as the newer keymgr's synopsis has it
    return run([tool("keymgr"), "-c", str(conf), "ks", "keystore-bench"], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per raw measurement")
    ap.add_argument("--algorithms", default="ECDSAP256SHA256,ED25519,RSASHA256")
    ap.add_argument("--sessions", default="1,2", help="process/session counts to measure")
    ap.add_argument("--names", type=int, default=5000, help="names in the signed zone")
    ap.add_argument("--no-zone", action="store_true", help="skip the zone signing runs")
    args = ap.parse_args()
    algs = args.algorithms.split(",")
    jobs_list = [int(j) for j in args.sessions.split(",")]
    knot_version = run([tool("keymgr"), "-V"], dict(os.environ)).strip()
    hsm_version = run([tool("softhsm2-util"), "--version"], dict(os.environ)).strip()
    print("configuration:")
    print(f"  cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    print(f"  token: SoftHSM {hsm_version} ({MODULE}), file object store")
    print(f"  Knot: {knot_version}")
    print(f"  raw signing: {args.seconds:g} s per algorithm and configuration, 100-octet data,")
    print("    one process per session (dnsseal keystore bench -j N)")
    if not args.no_zone:
        print(f"  zone signing: {args.names} names x (A, TXT), ECDSAP256SHA256 KSK + ZSK, NSEC;")
        print("    dnsseal signzone -S -x --no-ledger -n N; kzonesign with signing-threads: N")
    with tempfile.TemporaryDirectory(prefix="keystore-bench-") as tmp:
        d = Path(tmp)
        env, uri = make_token(d / "hsm")
        print("\nraw signing (signatures/s):")
        print(f"  {'algorithm':<18}{'sessions':>9}{'software':>12}{'SoftHSM':>12}{'ratio':>8}")
        for jobs in jobs_list:
            soft = raw_rates(env, "software", algs, jobs, args.seconds)
            hsm = raw_rates(env, uri, algs, jobs, args.seconds)
            for alg in algs:
                s, h = soft.get(alg), hsm.get(alg)
                ratio = f"{h / s:7.3f}" if s and h else "      -"
                print(f"  {alg:<18}{jobs:>9}{s or '-':>12}{h or '-':>12} {ratio}")
        print(f"\nKnot keymgr keystore-bench: {knot_keystore_bench(env, d)}")
        if args.no_zone:
            return
        print("\nzone signing (RRSIGs per wall-clock second of the whole command):")
        print(f"  {'signer':<34}{'N':>3}{'RRSIGs':>9}{'seconds':>9}{'sigs/s':>9}{'vs Knot':>9}")
        for where, pkcs11 in (("files", False), ("SoftHSM", True)):
            for jobs in jobs_list:
                dd = d / f"{where}-{jobs}"
                (dd / "dnsseal").mkdir(parents=True)
                (dd / "knot").mkdir()
                (dd / "knot" / "pem").mkdir()
                for sub in ("dnsseal", "knot"):
                    (dd / sub / "zone.db").write_text(zone_text(args.names))
                kt, kn = knot_zone(env, dd / "knot", pkcs11, jobs)
                st, sn = dnsseal_zone(env, dd / "dnsseal", uri if pkcs11 else None, jobs)
                krate, srate = kn / kt, sn / st
                print(f"  {'kzonesign, keys in ' + where:<34}{jobs:>3}{kn:>9}{kt:>9.2f}"
                      f"{krate:>9.0f}{1:>9.2f}")  # fmt: skip
                print(f"  {'dnsseal signzone, keys in ' + where:<34}{jobs:>3}{sn:>9}{st:>9.2f}"
                      f"{srate:>9.0f}{srate / krate:>9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
