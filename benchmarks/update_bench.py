"""One dynamic UPDATE in a big signed zone: how long until the new record is answered.

Writes the zone of ``sign_bench.make_zone(N)`` (origin bench.example., N hosts with A and
AAAA, a TXT every 10th, a delegation with glue every 100th), then for each server in the same
run (dnsseal, then Knot):

* starts it on the unsigned zone with inline signing under its default policy (ECDSA P-256
  CSK, NSEC) and waits until the zone answers signed;
* sends --updates UPDATEs with BIND's ``nsupdate`` (TSIG hmac-sha256, key ``ddns``), each
  adding one A record at a new name (the chain changes: the NSEC of the new name and of its
  predecessor), and times each from just before ``nsupdate`` starts until the new record is
  answered signed (A + RRSIG, polled over UDP every millisecond);
* prints the median and every run, the configuration of each server, the ratio to Knot
  and the load average (the machine may be shared: read the numbers with it).

* dnsseal: ``dnsseal serve -c`` with ``dnssec-policy = "default"``, ``allow-update =
  ["key ddns"]``; workers as --workers.
* Knot: ``knotd``, ``dnssec-signing: on`` (its default policy), an ACL allowing
  ``update`` with key ddns, ``zonefile-sync: -1``, journal on; ``udp-workers`` /
  ``tcp-workers`` / ``background-workers`` = --workers.

Example (small; on a shared machine run it only at small N)::

    .venv/bin/python benchmarks/update_bench.py --names 20000 --updates 5

Every server is started here and stopped by its PID.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from benchpeers import free_port, stop_process, tool
from sign_bench import ORIGIN, make_zone

ROOT = Path(__file__).resolve().parent.parent
DNSSEAL = ROOT / ".venv" / "bin" / "dnsseal"
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="


@dataclass
class Server:
    name: str
    port: int
    start: Callable[[], subprocess.Popen[bytes]]
    config: str
    proc: subprocess.Popen[bytes] | None = None
    times: list[float] = field(default_factory=list)
    ready: float = 0.0


def dnsseal_config(
    d: Path, port: int, zonefile: Path, extra: str = "", policy: str = "default"
) -> str:
    """dnsseal's configuration: the zone under ``policy``, UPDATEs with the key ddns;
    ``extra``: more [server] lines."""
    return f"""[server]
listen = ["127.0.0.1@{port}"]
state-dir = "{d}/state"
key-directory = "{d}/keys"
{extra}
[key.ddns]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[zone."{ORIGIN}"]
file = "{zonefile}"
dnssec-policy = "{policy}"
allow-update = ["key ddns"]
"""


def dnsseal_server(d: Path, zonefile: Path, workers: int) -> Server:
    port = free_port()
    d.mkdir()
    conf = d / "dnsseal.toml"
    text = dnsseal_config(d, port, zonefile, f"workers = {workers}\n")
    conf.write_text(text)

    def start() -> subprocess.Popen[bytes]:
        with (d / "dnsseal.log").open("ab") as log:
            return subprocess.Popen(
                [str(DNSSEAL), "serve", "-c", str(conf)], stdout=log, stderr=log
            )

    return Server("dnsseal", port, start, text)


def knot_server(d: Path, zonefile: Path, workers: int) -> Server:
    port = free_port()
    d.mkdir()
    (d / "zones").mkdir()
    (d / "zones" / ORIGIN.rstrip(".")).write_bytes(zonefile.read_bytes())
    conf = d / "knot.conf"
    text = f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{d}"
    udp-workers: {workers}
    tcp-workers: {workers}
    background-workers: {workers}
database:
    storage: "{d}"
log:
  - target: "{d}/knot.log"
    any: info
key:
  - id: ddns
    algorithm: hmac-sha256
    secret: {SECRET}
acl:
  - id: update
    key: ddns
    action: update
template:
  - id: default
    storage: "{d}/zones"
    file: "%s"
    zonefile-sync: -1
    journal-content: all
    dnssec-signing: on
zone:
  - domain: {ORIGIN}
    acl: update
"""
    conf.write_text(text)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [tool("knotd"), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    return Server("knot", port, start, text)


def answered_signed(port: int, name: str, rtype: str, timeout: float = 1.0) -> bool:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)
    except (dns.exception.Timeout, OSError):
        return False
    types = {rr.rdtype for rr in r.answer}
    return r.rcode() == dns.rcode.NOERROR and {dns.rdatatype.RRSIG} < types


def wait_ready(server: Server, timeout: float) -> None:
    t0 = time.monotonic()
    server.proc = server.start()
    while not answered_signed(server.port, ORIGIN, "SOA"):
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{server.name}: not signed after {timeout} s")
        time.sleep(0.2)
    server.ready = time.monotonic() - t0


def one_update(server: Server, i: int, timeout: float) -> float:
    name = f"upd{i}-{server.name}.{ORIGIN}"
    script = (
        f"server 127.0.0.1 {server.port}\nzone {ORIGIN}\n"
        f"update add {name} 300 A 192.0.2.{i % 250 + 1}\nsend\n"
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        # TCP (-v), waiting up to the timeout: over UDP nsupdate gives up after three 3 s
        # tries while a slow server is still working on the UPDATE.
        [tool("nsupdate"), "-v", "-t", str(int(timeout)), "-y", f"hmac-sha256:ddns:{SECRET}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(script)
    proc.stdin.close()
    while not answered_signed(server.port, name, "A", timeout=0.5):
        if time.monotonic() - t0 > timeout:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"{server.name}: {name} not answered after {timeout} s: {out}")
        time.sleep(0.001)
    took = time.monotonic() - t0
    proc.wait(timeout=timeout)
    if proc.returncode:
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"nsupdate failed: {err}")
    return took


def stop(server: Server) -> None:
    stop_process(server.proc, timeout=60)
    server.proc = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--updates", type=int, default=7)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--servers", default="dnsseal,knot")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    load_before = os.getloadavg()
    makers = {"dnsseal": dnsseal_server, "knot": knot_server}
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="update-bench-") as tmp:
        d = Path(tmp)
        zonefile = d / "bench.example.zone"
        zonefile.write_text(make_zone(args.names))
        for name in args.servers.split(","):
            server = makers[name](d / name, zonefile, args.workers)
            servers.append(server)
            try:
                wait_ready(server, args.timeout)
                time.sleep(1)  # let the first signing settle (journal, NOTIFY, timers)
                for i in range(args.updates):
                    server.times.append(one_update(server, i, args.timeout))
            finally:
                stop(server)
    load_after = os.getloadavg()
    print(f"zone: {args.names} hosts (make_zone), origin {ORIGIN}; {args.updates} UPDATEs each")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    for s in servers:
        print(f"\n--- {s.name} configuration ---\n{s.config}")
    knot = next((s for s in servers if s.name == "knot"), None)
    print(f"\n{'server':<8} {'ready s':>8} {'median ms':>10} {'vs knot':>8}  runs (ms)")
    for s in servers:
        med = statistics.median(s.times) * 1000
        ratio = (
            f"{med / (statistics.median(knot.times) * 1000):.2f}x"
            if knot is not None and knot.times
            else "-"
        )
        runs = " ".join(f"{t * 1000:.0f}" for t in s.times)
        print(f"{s.name:<8} {s.ready:>8.1f} {med:>10.1f} {ratio:>8}  {runs}")
    print("\n(time from starting nsupdate until the new A record is answered with its RRSIG;")
    print(" nsupdate's own start-up is in every run of both servers)")


if __name__ == "__main__":
    main()
