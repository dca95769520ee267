"""Helpers for the automation tests: dnsseal, Unbound and nsupdate on loopback.

Every process is started on a port picked with free_port() and stopped by its PID.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone

from conftest import free_port, require_tool, stop, wait_for_dns, write_unbound_conf

DNSSEAL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dnsseal"


@contextmanager
def dnsseal_serve(
    cwd: Path, args: Sequence[str], zone: str, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``dnsseal serve ARGS`` in ``cwd`` (output in cwd/out.txt), answering for ``zone``."""
    with (cwd / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-v", "serve", *args], cwd=cwd, stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, zone, proc, timeout=20)
        yield proc
    finally:
        stop(proc)


def printed_ds(out: Path, zone: str, timeout: float = 5) -> str:
    """The DS record `dnsseal serve` printed for ``zone``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(rf"DS for the parent: ({re.escape(zone)} IN DS [^\n]+)", out.read_text())
        if m:
            return m.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no DS printed for {zone}:\n{out.read_text()}")


@contextmanager
def unbound(workdir: Path, anchors: Sequence[str], stubs: dict[str, int]) -> Iterator[int]:
    """A validating Unbound with ``anchors`` (DS texts), ``stubs`` zone -> dnsseal port."""
    exe = require_tool("unbound")
    d = workdir / "unbound"
    d.mkdir(exist_ok=True)
    port = free_port()
    conf = write_unbound_conf(
        d,
        port,
        anchors,
        list(stubs.items()),
        # short caches: the tests query through key rolls and want fresh answers
        extra=("cache-max-ttl: 2", "cache-max-negative-ttl: 2"),
    )
    proc = subprocess.Popen(
        [exe, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_dns(port, next(iter(stubs)), proc, timeout=20)
        yield port
    finally:
        stop(proc)


def axfr_verify(workdir: Path, zone: str, port: int, name: str = "axfr.zone") -> dns.zone.Zone:
    """AXFR ``zone`` from dnsseal and run `dnsseal verify` on it (must be clean)."""
    xfr = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", zone, port=port, timeout=10))
    path = workdir / name
    path.write_text(xfr.to_text(relativize=False))
    proc = subprocess.run(
        [str(DNSSEAL), "verify", "-o", zone, str(path)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"verify: {proc.stdout}\n{proc.stderr}"
    return xfr


FAST_POLICY = """
[policy.%(name)s]
dnskey-ttl = 2
publish-safety = 1
retire-safety = 1
purge-keys = 5
signatures-refresh = 20
signatures-validity = 30
signatures-validity-dnskey = 30
signatures-jitter = 2
max-zone-ttl = 2
zone-propagation-delay = 1
parent-ds-ttl = 2
parent-propagation-delay = 1
%(nsec3)s
keys = [
  { role = "ksk", lifetime = "%(ksk_lifetime)s", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "%(zsk_lifetime)s", algorithm = "ECDSAP256SHA256" },
]
"""
# The built-in `insecure` policy (no keys) with the timings of "fast": going insecure takes
# seconds instead of the built-in policy's days (parent DS TTL and propagation).
_NO_KEYS = FAST_POLICY.split("keys = [", maxsplit=1)[0]
INSECURE_POLICY = _NO_KEYS % {"name": "insecure-fast", "nsec3": ""} + "keys = []\n"
NSEC3 = "nsec3param = { iterations = 0, optout = false, salt-length = 0 }"
TSIG_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="


def zone_text(origin: str, serial: int = 1, extra: str = "") -> str:
    """A small zone with TTLs of 2 s (so accelerated policies hold)."""
    return (
        f"$ORIGIN {origin}\n$TTL 2\n@ SOA ns1 hostmaster {serial} 60 30 600 2\n"
        "@ NS ns1\nns1 A 127.0.0.1\nwww A 192.0.2.80\nmail A 192.0.2.25\n@ MX 10 mail\n" + extra
    )


def write_config(
    d: Path,
    port: int,
    zones: dict[str, str],
    *,
    policy: str = "fast",
    zsk_lifetime: str = "unlimited",
    nsec3: bool = False,
    zone_options: dict[str, str] | None = None,
    policies: dict[str, str] | None = None,
    extra: str = "",
) -> Path:
    """dnsseal.toml in ``d`` serving ``zones`` (origin -> zone text) under ``policy``."""
    (d / "zones").mkdir(exist_ok=True)
    # "fast": second-scale TTLs; "roll": the same with keys that roll on their own
    (d / "policies.toml").write_text(
        FAST_POLICY
        % {
            "name": "fast",
            "ksk_lifetime": "unlimited",
            "zsk_lifetime": zsk_lifetime,
            "nsec3": NSEC3 if nsec3 else "",
        }
        + FAST_POLICY % {"name": "roll", "ksk_lifetime": 40, "zsk_lifetime": 25, "nsec3": ""}
        + FAST_POLICY
        % {
            "name": "fast3",
            "ksk_lifetime": "unlimited",
            "zsk_lifetime": zsk_lifetime,
            "nsec3": NSEC3,
        }
        + INSECURE_POLICY
    )
    parts = [
        f"""[server]
listen = ["127.0.0.1@{port}"]
control = "dnsseal.sock"
state-dir = "state"
key-directory = "keys"
policies = "policies.toml"

[key.ddns]
algorithm = "hmac-sha256"
secret = "{TSIG_SECRET}"
{extra}
"""
    ]
    for origin, text in zones.items():
        (d / "zones" / f"{origin}zone").write_text(text)
        opts = (zone_options or {}).get(origin, "")
        zpolicy = (policies or {}).get(origin, policy)
        parts.append(
            f"""[zone."{origin}"]
file = "zones/{origin}zone"
dnssec-policy = "{zpolicy}"
allow-transfer = ["127.0.0.1"]
{opts}
"""
        )
    conf = d / "dnsseal.toml"
    conf.write_text("\n".join(parts))
    return conf


def ctl(d: Path, *args: str, ok: bool = True) -> str:
    """``dnsseal ctl -c dnsseal.toml ARGS`` in ``d``: its output."""
    proc = subprocess.run(
        [str(DNSSEAL), "ctl", "-c", str(d / "dnsseal.toml"), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert proc.returncode == 0, f"ctl {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def tally(answers: dict[str, int], response: dns.message.Message) -> None:
    """Count a validating resolver's answer as servfail, secure (AD) or insecure."""
    if response.rcode() == dns.rcode.SERVFAIL:
        answers["servfail"] += 1
    elif response.flags & dns.flags.AD:
        answers["secure"] += 1
    else:
        answers["insecure"] += 1
