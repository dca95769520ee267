"""Peers for the plain-secondary tests: a BIND primary (a zone signed by named itself,
transfers and updates with a TSIG key), dnsseal as its secondary, and BIND or Knot
secondaries.  Every process is started on a port picked with free_port() and stopped by
its PID."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.zone

from conftest import free_port, require_tool, stop, wait_for_dns

DNSSEAL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dnsseal"
SECRET = "c2Vjb25kYXJ5IHRlc3RzIG9ubHkgLSBub3QgYSByZWFsIGtleQ=="  # 37 octets, test only
KEYRING = dns.tsigkeyring.from_text({"xfr": ("hmac-sha256", SECRET)})

Record = tuple[str, int, int, str]  # owner, type, TTL, rdata (RRSIGs: their own records)


def zone_text(origin: str, serial: int, timers: str = "3600 600 86400 60") -> str:
    return (
        f"$ORIGIN {origin}\n$TTL 60\n@ SOA ns1 hostmaster {serial} {timers}\n"
        "@ NS ns1\nns1 A 127.0.0.1\nwww A 192.0.2.80\nmail A 192.0.2.25\n@ MX 10 mail\n"
    )


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def ask(port: int, name: str, rtype: str = "SOA") -> dns.message.Message | None:
    """The answer from 127.0.0.1@port (None: no answer)."""
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    try:
        return dns.query.udp(q, "127.0.0.1", port=port, timeout=1)
    except (dns.exception.Timeout, OSError):
        return None


def rcode(port: int, name: str, rtype: str = "SOA") -> int | None:
    r = ask(port, name, rtype)
    return r.rcode() if r is not None else None


def serial(port: int, zone: str) -> int | None:
    r = ask(port, zone)
    if r is None or r.rcode() != dns.rcode.NOERROR:
        return None
    soa = [rr for rr in r.answer if rr.rdtype == dns.rdatatype.SOA]
    return int(soa[0][0].serial) if soa else None


def axfr(port: int, zone: str, keyed: bool = False) -> set[Record]:
    """Every record of ``zone`` by AXFR from 127.0.0.1@port."""
    kw: dict[str, object] = {"keyring": KEYRING, "keyname": "xfr"} if keyed else {}
    z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", zone, port=port, timeout=10, **kw))  # type: ignore[arg-type]
    out = set()
    for name, rdataset in z.iterate_rdatasets():
        owner = name.derelativize(z.origin).to_text()
        for rd in rdataset:
            out.add((owner, int(rdataset.rdtype), rdataset.ttl, rd.to_text()))
    return out


@dataclass
class Named:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        return (self.dir / "named.log").read_text(errors="replace")

    def update(self, zone: str, script: str) -> None:
        body = f"server 127.0.0.1 {self.port}\nzone {zone}\n{script}\nsend\n"
        proc = subprocess.run(
            [require_tool("nsupdate"), "-y", f"hmac-sha256:xfr:{SECRET}"],
            input=body,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _named(d: Path, body: str, port: int, zone: str, answering: bool = True) -> Named:
    named = require_tool("named")
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "named.conf"
    conf.write_text(
        f"""key xfr {{ algorithm hmac-sha256; secret "{SECRET}"; }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    key-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify explicit;
    minimal-responses yes;
    minimal-any yes;
    min-refresh-time 1;
    min-retry-time 1;
    max-retry-time 2;
}};
controls {{ }};
{body}
"""
    )
    subprocess.run([require_tool("named-checkconf"), str(conf)], check=True, timeout=30)
    with (d / "named.log").open("ab") as logf:
        proc = subprocess.Popen([named, "-g", "-c", str(conf), "-n", "1"], stdout=logf, stderr=logf)
    if answering:
        try:
            wait_for_dns(port, zone, proc, timeout=20)  # type: ignore[arg-type]
        except Exception:
            stop(proc)  # type: ignore[arg-type]
            raise
    return Named(port, d, proc)  # type: ignore[arg-type]


@contextmanager
def named_primary(
    d: Path,
    zone: str,
    notify: list[int],
    signed: bool = True,
    port: int | None = None,
    timers: str = "3600 600 86400 60",
) -> Iterator[Named]:
    """named as the primary of ``zone`` (signed by named's own dnssec-policy when
    ``signed``): transfers and updates with the key ``xfr`` only, NOTIFY signed with it to
    127.0.0.1 at the ``notify`` ports."""
    d.mkdir(parents=True, exist_ok=True)
    db = d / "zone.db"
    if not db.exists():
        db.write_text(zone_text(zone, 1, timers))
    also = "".join(f"127.0.0.1 port {p} key xfr; " for p in notify)
    policy = "dnssec-policy default;" if signed else ""
    port = port or free_port()
    body = f"""zone "{zone}" {{
    type primary;
    file "zone.db";
    {policy}
    allow-transfer {{ key xfr; }};
    allow-update {{ key xfr; }};
    also-notify {{ {also} }};
}};"""
    n = _named(d, body, port, zone)
    try:
        if signed:  # named signs the zone just after loading it
            wait_until(lambda: _is_signed(port, zone), 20, "named to sign the zone")
        yield n
    finally:
        stop(n.proc)  # type: ignore[arg-type]


def _is_signed(port: int, zone: str) -> bool:
    r = ask(port, zone, "DNSKEY")
    return r is not None and any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer)


@contextmanager
def named_secondary(d: Path, zone: str, primary: int) -> Iterator[Named]:
    """named as a plain secondary of ``zone`` from 127.0.0.1@primary (key xfr): the
    reference for what a secondary does."""
    port = free_port()
    body = f"""zone "{zone}" {{
    type secondary;
    file "sec.db";
    primaries {{ 127.0.0.1 port {primary} key xfr; }};
}};"""
    n = _named(d, body, port, zone, answering=False)
    try:
        yield n
    finally:
        stop(n.proc)  # type: ignore[arg-type]


def dnsseal_config(
    d: Path,
    port: int,
    zone: str,
    primary: int,
    extra: str = "",
    notify: Sequence[int] = (),
    workers: int = 1,
) -> Path:
    """dnsseal.toml in ``d``: ``zone`` a plain secondary of 127.0.0.1@primary (key xfr)."""
    d.mkdir(parents=True, exist_ok=True)
    targets = ", ".join(f'"127.0.0.1@{p}"' for p in notify)
    conf = d / "dnsseal.toml"
    conf.write_text(
        f"""[server]
listen = ["127.0.0.1@{port}"]
control = "dnsseal.sock"
state-dir = "state"
workers = {workers}

[key.xfr]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[zone."{zone}"]
primaries = ["127.0.0.1@{primary} key xfr"]
allow-transfer = ["127.0.0.1"]
also-notify = [{targets}]
notify-key = "xfr"
{extra}
"""
    )
    return conf


@contextmanager
def dnsseal_serve(d: Path, port: int, zone: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``dnsseal serve -c dnsseal.toml`` in ``d`` (output in d/out.txt); waits for an
    answer for ``zone`` when given, else for the port to answer at all."""
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        if zone is not None:
            wait_for_dns(port, zone, proc, timeout=20)
        else:
            wait_until(lambda: rcode(port, "any.invalid.") is not None, 20, "dnsseal to answer")
        yield proc
    finally:
        stop(proc)


@contextmanager
def knot_secondary(d: Path, zone: str, primary: int) -> Iterator[int]:
    """knotd as a secondary of ``zone`` from dnsseal at 127.0.0.1@primary (key xfr,
    NOTIFY accepted from dnsseal with that key).  Yields its port; its log is d/knot.log."""
    knotd = require_tool("knotd")
    port = free_port()
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "knot.conf"
    conf.write_text(
        f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{d}"
log:
  - target: "{d}/knot.log"
    any: info
database:
    storage: "{d}"
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: dnsseal
    address: 127.0.0.1@{primary}
    key: xfr
acl:
  - id: notify_from_dnsseal
    address: 127.0.0.1
    key: xfr
    action: notify
  - id: transfer_to_tests
    address: 127.0.0.1
    action: transfer
zone:
  - domain: {zone}
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
    master: dnsseal
    acl: [notify_from_dnsseal, transfer_to_tests]
"""
    )
    subprocess.run([require_tool("knotc"), "-c", str(conf), "conf-check"], check=True, timeout=30)
    with (d / "stderr").open("wb") as err:
        proc = subprocess.Popen([knotd, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield port
    finally:
        stop(proc)  # type: ignore[arg-type]
