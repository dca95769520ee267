"""Fixtures for the server tests: zones signed by BIND's tools, and daemons on loopback.

Every daemon is started on a port picked with free_port() and stopped by its PID.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns

from .zonedata import VARIANTS, zone_text


@dataclass(frozen=True)
class SignedZone:
    variant: str
    origin: str
    path: Path  # the signed zone file
    keydir: Path
    ds: str  # the DS RRset text for the KSK (trust anchor)
    dnskey: str


def sign_zone(
    workdir: Path, variant: str, serial: int = 1, extra: str = "", origin: str | None = None
) -> SignedZone:
    """Write the test zone for ``variant`` and sign it with dnssec-keygen/dnssec-signzone
    (keys are created once per directory and reused for re-signing).  ``origin`` overrides
    the variant's zone name."""
    default_origin, args = VARIANTS[variant]
    origin = origin or default_origin
    workdir.mkdir(parents=True, exist_ok=True)
    unsigned = workdir / "zone.db"
    unsigned.write_text(zone_text(serial, extra))
    if not list(workdir.glob("K*.key")):
        run_tool(["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", "-f", "KSK", origin], cwd=workdir)
        run_tool(["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", origin], cwd=workdir)
    signed = workdir / "zone.signed"
    run_tool(
        [
            "dnssec-signzone",
            "-q",
            "-S",
            "-K",
            ".",
            "-o",
            origin,
            "-f",
            signed.name,
            "-s",
            "now-1h",
            "-e",
            "now+30d",
            *args,
            unsigned.name,
        ],
        cwd=workdir,
    )
    ksk = next(p for p in workdir.glob("K*.key") if " 257 " in p.read_text())
    ds = run_tool(["dnssec-dsfromkey", "-2", ksk.name], cwd=workdir).stdout.strip()
    dnskey = next(
        line for line in ksk.read_text().splitlines() if line and not line.startswith(";")
    )
    return SignedZone(variant, origin, signed, workdir, ds, dnskey)


@pytest.fixture(scope="session")
def signed_zones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SignedZone]:
    base = tmp_path_factory.mktemp("zones")
    return {v: sign_zone(base / v, v) for v in VARIANTS}


def start_named(d: Path, zones: list[SignedZone]) -> tuple[int, subprocess.Popen[bytes]]:
    """BIND's named serving ``zones`` (minimal responses, no recursion) on a free port."""
    named = require_tool("named")
    port = free_port()
    zone_conf = "".join(f'zone "{z.origin}" {{ type primary; file "{z.path}"; }};\n' for z in zones)
    conf = d / "named.conf"
    conf.write_text(
        f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    minimal-responses yes;
    minimal-any yes;
    notify no;
}};
controls {{ }};
{zone_conf}"""
    )
    with (d / "named.log").open("wb") as logf:
        proc = subprocess.Popen(
            [named, "-g", "-c", str(conf), "-n", "1"], stdout=subprocess.DEVNULL, stderr=logf
        )
    try:
        wait_for_dns(port, zones[0].origin, proc)
    except Exception:
        stop(proc)
        raise
    return port, proc


@pytest.fixture(scope="session")
def named_port(
    signed_zones: dict[str, SignedZone], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """BIND's named serving the same signed zones."""
    port, proc = start_named(tmp_path_factory.mktemp("named"), list(signed_zones.values()))
    try:
        yield port
    finally:
        stop(proc)


TSIG_SECRET = "c2VjcmV0IGZvciB0aGUgdGVzdHMgb25seSEhISEhISE="  # base64, 32 octets, test only


@dataclass
class RunningServer:
    port: int
    control: Path
    config: Path
    workdir: Path
    proc: subprocess.Popen[bytes]
    zones: dict[str, SignedZone]
    log: Path

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DNSSEAL), "ctl", "-s", str(self.control), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


DNSSEAL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dnsseal"


def write_config(
    workdir: Path,
    port: int,
    zones: dict[str, SignedZone],
    also_notify: dict[str, list[str]] | None = None,
    extra_listen: list[str] | None = None,
    workers: int = 1,
    state_dir: Path | None = None,
) -> Path:
    listen = [f"127.0.0.1@{port}", *(extra_listen or [])]
    lines = [
        "[server]",
        f"workers = {workers}",
        *([f'state-dir = "{state_dir}"'] if state_dir else []),
        f"listen = {listen!r}".replace("'", '"'),
        f'control = "{workdir / "ctl.sock"}"',
        "tcp-idle-timeout = 2",
        "",
        "[key.xfr]",
        'algorithm = "hmac-sha256"',
        f'secret = "{TSIG_SECRET}"',
        "",
        "[acl]",
        'secondaries = ["127.0.0.1", "::1"]',
        "",
    ]
    for variant, z in zones.items():
        lines += [
            f'[zone."{z.origin}"]',
            f'file = "{z.path}"',
            "presigned = true",
            'allow-transfer = ["key xfr", "secondaries"]'
            if variant != "nsec3"
            else 'allow-transfer = ["key xfr"]',
        ]
        targets = (also_notify or {}).get(variant)
        if targets:
            lines.append(f"also-notify = {targets!r}".replace("'", '"'))
            lines.append('notify-key = "xfr"')
        lines.append("")
    conf = workdir / "dnsseal.toml"
    conf.write_text("\n".join(lines))
    return conf


def start_dnsseal(
    workdir: Path,
    zones: dict[str, SignedZone],
    also_notify: dict[str, list[str]] | None = None,
    v6: bool = False,
    workers: int = 1,
    state_dir: Path | None = None,
) -> RunningServer:
    port = free_port()
    extra = [f"::1@{port}"] if v6 else []
    conf = write_config(workdir, port, zones, also_notify, extra, workers, state_dir)
    log = workdir / "dnsseal.log"
    with log.open("wb") as logf:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-vv", "serve", "-c", str(conf)], stdout=logf, stderr=logf
        )
    server = RunningServer(port, workdir / "ctl.sock", conf, workdir, proc, zones, log)
    try:
        wait_for_dns(port, next(iter(zones.values())).origin, proc)
    except Exception:
        stop(proc)
        raise RuntimeError(log.read_text()) from None
    return server


@pytest.fixture(scope="module")
def dnsseal_server(
    signed_zones: dict[str, SignedZone], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """dnsseal serve -c dnsseal.toml on 127.0.0.1 (and ::1) with the three signed zones."""
    workdir = tmp_path_factory.mktemp("dnsseal")
    server = start_dnsseal(workdir, signed_zones)
    try:
        yield server
    finally:
        stop(server.proc)
