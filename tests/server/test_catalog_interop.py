"""Catalog zones (RFC 9432) against the real consumers: a Knot secondary
(``catalog-role: interpret`` + ``catalog-template``) and a BIND secondary
(``catalog-zones``) provision dnsseal's zones from its catalog alone.  A zone added to
dnsseal's config (``dnsseal ctl reload``) is served signed by the secondary without any
change to the secondary's config; a zone removed from dnsseal's config goes from it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns

from .conftest import DNSSEAL, TSIG_SECRET

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CATALOG = "catalog.invalid"


@dataclass
class Primary:
    """dnsseal signing ``zones`` inline, with a catalog of them for the secondary."""

    dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    zones: list[str]
    log: Path
    secondary_port: int

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [str(DNSSEAL), "ctl", "-s", str(self.dir / "ctl.sock"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def set_zones(self, zones: list[str]) -> None:
        self.zones = zones
        write_config(self.dir, self.port, zones, self.secondary_port)
        self.ctl("reload")


def write_config(d: Path, port: int, zones: list[str], secondary_port: int) -> None:
    """dnsseal's config: ``zones`` signed inline, all in the catalog, which (with its
    members) may be transferred with TSIG key xfr and is NOTIFYed to the secondary."""
    lines = [
        "[server]",
        f'listen = ["127.0.0.1@{port}"]',
        'control = "ctl.sock"',
        'state-dir = "state"',
        "",
        "[key.xfr]",
        'algorithm = "hmac-sha256"',
        f'secret = "{TSIG_SECRET}"',
        "",
    ]
    for z in zones:
        zone_file = d / "zones" / z
        if not zone_file.exists():
            zone_file.write_text(
                f"$ORIGIN {z}.\n$TTL 300\n@ SOA ns hostmaster 1 3600 900 604800 300\n"
                f"@ NS ns\nns A 127.0.0.1\nwww A 192.0.2.{len(zones)}\n"
            )
        lines += [f'[zone."{z}"]', f'file = "zones/{z}"', 'dnssec-policy = "default"', ""]
    lines += [
        f'[catalog."{CATALOG}"]',
        'allow-transfer = ["key xfr"]',
        f'also-notify = ["127.0.0.1@{secondary_port}"]',
        'notify-key = "xfr"',
        # RFC 9432 group: Knot takes the template of that name; BIND ignores it
        'groups = { other = ["two.test"] }' if "two.test" in zones else "",
    ]
    (d / "dnsseal.toml").write_text("\n".join(lines) + "\n")


def start_primary(d: Path, zones: list[str], secondary_port: int) -> Primary:
    d.mkdir()
    (d / "zones").mkdir()
    log = d / "dnsseal.log"
    port = free_port()
    write_config(d, port, zones, secondary_port)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-vv", "serve", "-c", str(d / "dnsseal.toml")],
            cwd=d,
            stdout=out,
            stderr=out,
        )
    p = Primary(d, port, proc, zones, log, secondary_port)
    try:
        wait_for_dns(p.port, CATALOG, p.proc)
        for z in zones:
            wait_until(lambda z=z: signed_serial(p.port, z) is not None, 30, log)
    except BaseException:
        stop(p.proc)
        raise
    return p


def query(port: int, name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=2)


def signed_serial(port: int, zone: str) -> int | None:
    """The SOA serial ``port`` serves for ``zone``, when it comes with its RRSIG."""
    try:
        r = query(port, zone, "SOA")
    except (dns.exception.Timeout, OSError):
        return None
    soa = [rr for rr in r.answer if rr.rdtype == dns.rdatatype.SOA]
    sig = [rr for rr in r.answer if rr.rdtype == dns.rdatatype.RRSIG]
    if r.rcode() != dns.rcode.NOERROR or not soa or not sig:
        return None
    return int(soa[0][0].serial)


def wait_until(cond: Callable[[], bool], timeout: float, *logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            pytest.fail(f"timed out after {timeout} s\n{tails}")
        time.sleep(0.2)


def kdig_signed(port: int, zone: str) -> str:
    """kdig's +dnssec answer for the zone's SOA (the outside view of the secondary)."""
    return run_tool(
        ["kdig", "@127.0.0.1", "-p", str(port), "+dnssec", "+noall", "+answer", zone, "SOA"]
    ).stdout


def check_provisioning(primary: Primary, secondary_port: int, *logs: Path) -> None:
    """The secondary serves every zone of the catalog signed at dnsseal's serial, picks
    up a zone added to dnsseal and drops a zone removed from it."""
    logs = (primary.log, *logs)
    for z in primary.zones:
        wait_until(
            lambda z=z: signed_serial(secondary_port, z) == signed_serial(primary.port, z),
            60,
            *logs,
        )
        answer = kdig_signed(secondary_port, z)
        assert f"{z}." in answer and "RRSIG" in answer and "SOA" in answer, answer

    # A member changed: the catalog's also-notify reaches the secondary for the member
    # too, so it follows at once (the member's SOA refresh alone would take an hour).
    changed = primary.zones[-1]
    before = signed_serial(primary.port, changed)
    zone_file = primary.dir / "zones" / changed
    zone_file.write_text(
        zone_file.read_text().replace(" 1 3600 ", " 2 3600 ") + "new A 192.0.2.77\n"
    )
    primary.ctl("reload")
    wait_until(lambda: signed_serial(primary.port, changed) != before, 30, *logs)
    wait_until(
        lambda: signed_serial(secondary_port, changed) == signed_serial(primary.port, changed),
        30,
        *logs,
    )
    new_a = query(secondary_port, f"new.{changed}", "A")
    assert any(rr.rdtype == dns.rdatatype.RRSIG for rr in new_a.answer), new_a

    # Added on dnsseal only: the secondary serves it, signed, at our serial.
    new = "added.test"
    primary.set_zones([*primary.zones, new])
    wait_until(lambda: signed_serial(primary.port, new) is not None, 30, *logs)
    wait_until(
        lambda: signed_serial(secondary_port, new) == signed_serial(primary.port, new),
        60,
        *logs,
    )
    answer = kdig_signed(secondary_port, new)
    assert "RRSIG" in answer and f"{new}." in answer, answer
    www = query(secondary_port, f"www.{new}", "A")
    assert any(rr.rdtype == dns.rdatatype.RRSIG for rr in www.answer), www

    # Removed from dnsseal: the secondary stops serving it; the others stay.
    gone = primary.zones[0]
    primary.set_zones(primary.zones[1:])
    wait_until(lambda: query(secondary_port, gone, "SOA").rcode() != dns.rcode.NOERROR, 60, *logs)
    assert query(secondary_port, gone, "SOA").rcode() == dns.rcode.REFUSED
    for z in primary.zones:
        assert signed_serial(secondary_port, z) == signed_serial(primary.port, z)


def test_knot_secondary_provisions_from_the_catalog(tmp_path: Path) -> None:
    knotd = require_tool("knotd")
    kport = free_port()
    kdir = tmp_path / "knot"
    kdir.mkdir()
    conf = kdir / "knot.conf"
    primary = start_primary(tmp_path / "dnsseal", ["one.test", "two.test"], kport)
    try:
        conf.write_text(
            f"""server:
    listen: 127.0.0.1@{kport}
    rundir: "{kdir}"
log:
  - target: "{kdir}/knot.log"
    any: debug
database:
    storage: "{kdir}"
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: {TSIG_SECRET}
remote:
  - id: dnsseal
    address: 127.0.0.1@{primary.port}
    key: xfr
acl:
  - id: notify_from_dnsseal
    address: 127.0.0.1
    key: xfr
    action: notify
template:
  - id: default
    storage: "{kdir}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
  - id: other
    storage: "{kdir}/other"
    zonefile-sync: -1
    zonefile-load: none
    master: dnsseal
    acl: notify_from_dnsseal
  - id: member
    storage: "{kdir}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
    master: dnsseal
    acl: notify_from_dnsseal
zone:
  - domain: {CATALOG}
    master: dnsseal
    acl: notify_from_dnsseal
    catalog-role: interpret
    catalog-template: [member, other]
"""
        )
        run_tool(["knotc", "-c", conf, "conf-check"])
        with (kdir / "stderr").open("wb") as err:
            knot = subprocess.Popen([knotd, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
        try:
            check_provisioning(primary, kport, kdir / "knot.log")
            # Knot's own catalog database holds exactly dnsseal's current members.
            printed = run_tool(["kcatalogprint", "-c", conf]).stdout
            rows = {line.split()[0]: line.split()[2:] for line in printed.splitlines()[1:-1]}
            assert rows == {
                "two.test.": [f"{CATALOG}.", "other"],  # the group, as Knot read it
                "added.test.": [f"{CATALOG}."],
            }, printed
        finally:
            stop(knot)
    finally:
        stop(primary.proc)


def test_bind_secondary_provisions_from_the_catalog(tmp_path: Path) -> None:
    named = require_tool("named")
    bport = free_port()
    bdir = tmp_path / "named"
    bdir.mkdir()
    primary = start_primary(tmp_path / "dnsseal", ["one.test", "two.test"], bport)
    try:
        conf = bdir / "named.conf"
        conf.write_text(
            f"""key "xfr" {{ algorithm hmac-sha256; secret "{TSIG_SECRET}"; }};
options {{
    directory "{bdir}";
    pid-file "{bdir}/named.pid";
    listen-on port {bport} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-new-zones yes;
    catalog-zones {{
        zone "{CATALOG}"
            default-primaries {{ 127.0.0.1 port {primary.port} key "xfr"; }}
            in-memory yes;
    }};
}};
controls {{ }};
zone "{CATALOG}" {{
    type secondary;
    file "catalog.db";
    primaries {{ 127.0.0.1 port {primary.port} key "xfr"; }};
}};
"""
        )
        run_tool(["named-checkconf", conf])
        with (bdir / "named.log").open("wb") as logf:
            proc = subprocess.Popen(
                [named, "-g", "-c", str(conf), "-n", "1"], stdout=subprocess.DEVNULL, stderr=logf
            )
        try:
            check_provisioning(primary, bport, bdir / "named.log")
        finally:
            stop(proc)
    finally:
        stop(primary.proc)
