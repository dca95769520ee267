"""Many UPDATEs in a row, signed incrementally (names added and removed, the NSEC/NSEC3
chain fixed where it changes): the zone served verifies with ldns-verify-zone and
dnssec-verify, its chain is the one dnssec-signzone makes from the same data, a Knot
secondary follows by IXFR, and a restart serves the journal's version."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.name
import dns.query
import dns.rdatatype
import dns.xfr
import dns.zone
import pytest

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns

from .conftest import dnsseal_serve, write_config
from .conftest import zone_text as make_zone
from .test_update import ZONE, nsupdate, serial, wait_serial

T = dns.rdatatype
# Signatures valid for days: the updates take the O(change) path (the fast test policies
# re-sign every few seconds, and a due signature sends a change down the full path).
LONG = """
[policy.%(name)s]
dnskey-ttl = 2
publish-safety = 1
retire-safety = 1
max-zone-ttl = 60
zone-propagation-delay = 1
parent-ds-ttl = 2
parent-propagation-delay = 1
%(nsec3)s
keys = [{ role = "csk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" }]
"""
SIGNER_TYPES = {T.RRSIG, T.NSEC, T.NSEC3, T.NSEC3PARAM, T.DNSKEY, T.CDS, T.CDNSKEY, 65534}


def setup(d: Path, port: int, kport: int, nsec3: bool) -> None:
    hosts = "".join(f"h{i} A 192.0.2.{i}\n" for i in range(30))
    write_config(
        d,
        port,
        {ZONE: make_zone(ZONE, extra=hosts)},
        policy="long3" if nsec3 else "long",
        zone_options={ZONE: f'allow-update = ["key ddns"]\nalso-notify = ["127.0.0.1@{kport}"]'},
    )
    with (d / "policies.toml").open("a") as f:
        f.write(LONG % {"name": "long", "nsec3": ""})
        f.write(LONG % {"name": "long3", "nsec3": "nsec3param = { iterations = 0, optout = "
                        "false, salt-length = 0 }"})  # fmt: skip


def random_update(rng: random.Random, present: set[str]) -> str:
    lines = []
    for _ in range(rng.randrange(1, 4)):
        what = rng.randrange(5)
        name = f"h{rng.randrange(40)}"
        if what == 0:
            lines.append(
                f"update add n{rng.randrange(100)}.{ZONE} 60 A 192.0.2.{rng.randrange(256)}"
            )
        elif what == 1:
            lines.append(f"update add {name}.{ZONE} 60 TXT t{rng.randrange(9)}")
        elif what == 2 and present:
            lines.append(f"update delete {rng.choice(sorted(present))} A")
        elif what == 3 and present:
            lines.append(f"update delete {rng.choice(sorted(present))}")
        else:
            lines.append(f"update add sub.{name}.{ZONE} 60 AAAA 2001:db8::{rng.randrange(99)}")
    return "\n".join(lines)


def owners(zone: dns.zone.Zone) -> set[str]:
    return {
        f"{n}.{ZONE}" for n, node in zone.nodes.items()
        if any(r.rdtype not in SIGNER_TYPES for r in node.rdatasets)
        and str(n) not in ("@", "ns1", "www", "mail")
    }  # fmt: skip


def chain(zone: dns.zone.Zone) -> set[tuple[str, str]]:
    """The NSEC/NSEC3 records (owner, RDATA) and the data RRsets other than the apex's
    key set and SOA, as text."""
    out = set()
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype in (T.RRSIG, T.SOA, T.DNSKEY, T.CDS, T.CDNSKEY, 65534):
                continue
            if rds.rdtype in (T.NSEC, T.NSEC3) and str(name) == "@":
                continue  # the apex bitmap names the key set records, which differ
            for rd in rds:
                text = rd.to_text()
                if rds.rdtype == T.NSEC3:
                    text = " ".join(text.split()[:5])  # the bitmap after it: checked below
                out.add((str(name).lower(), f"{T.to_text(rds.rdtype)} {text}".lower()))
    return out


def dnssec_signzone(d: Path, served: dns.zone.Zone, nsec3: bool) -> dns.zone.Zone:
    """A full signing by BIND's dnssec-signzone of the served zone's data."""
    work = d / "bind"
    work.mkdir()
    lines = []
    for name, node in served.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype not in SIGNER_TYPES:
                for rd in rds:
                    owner = name.derelativize(served.origin)
                    lines.append(f"{owner} {rds.ttl} IN {T.to_text(rds.rdtype)} {rd.to_text()}")
    (work / "data.zone").write_text("\n".join(lines) + "\n")
    run_tool(["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", "-f", "KSK", ZONE], cwd=work)
    args = ["dnssec-signzone", "-z", "-S", "-K", ".", "-o", ZONE, "-f", "out.zone"]
    if nsec3:
        args += ["-3", "-", "-H", "0"]
    run_tool([*args, "data.zone"], cwd=work)
    return dns.zone.from_file(str(work / "out.zone"), ZONE, relativize=True)


@contextmanager
def knot_secondary(d: Path, primary: int, kport: int) -> Iterator[Path]:
    """Knot as a secondary of ``ZONE`` on ``kport`` (NOTIFY from and AXFR to 127.0.0.1)."""
    knotd = require_tool("knotd")
    kdir = d / "knot"
    kdir.mkdir()
    conf = kdir / "knot.conf"
    conf.write_text(
        f"""server:
    listen: 127.0.0.1@{kport}
    rundir: "{kdir}"
log:
  - target: "{kdir}/knot.log"
    any: info
database:
    storage: "{kdir}"
remote:
  - id: primary
    address: 127.0.0.1@{primary}
acl:
  - id: from_primary
    address: 127.0.0.1
    action: [notify, transfer]
template:
  - id: default
    storage: "{kdir}"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {ZONE}
    master: primary
    acl: [from_primary]
"""
    )
    run_tool(["knotc", "-c", conf, "conf-check"])
    with (kdir / "stderr").open("wb") as err:
        proc = subprocess.Popen([knotd, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for_dns(kport, ZONE, proc, timeout=30)
        yield kdir / "knot.log"
    finally:
        stop(proc)


def _zone_diff(a: dns.zone.Zone, b: dns.zone.Zone) -> str:
    ta, tb = set(a.to_text().splitlines()), set(b.to_text().splitlines())
    return f"only in the first: {sorted(ta - tb)}\nonly in the second: {sorted(tb - ta)}"


def axfr(d: Path, port: int, name: str) -> Path:
    out = subprocess.run(
        [
            require_tool("dig"),
            "-p",
            str(port),
            "@127.0.0.1",
            ZONE,
            "AXFR",
            "+nocmd",
            "+nostats",
            "+nocomments",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    path = d / name
    path.write_text(out.stdout)
    return path


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("nsec3", [False, True], ids=["nsec", "nsec3"])
def test_random_updates_keep_the_chain_right(tmp_path: Path, nsec3: bool) -> None:
    port, kport = free_port(), free_port()
    setup(tmp_path, port, kport, nsec3)
    rng = random.Random(15 + nsec3)
    present = {f"h{i}.{ZONE}" for i in range(30)}
    with (
        dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port),
        knot_secondary(tmp_path, port, kport) as knot_log,  # (AXFR out allowed)
    ):
        served = None
        for step in range(25):
            before = serial(port)
            r = nsupdate(port, random_update(rng, present))
            assert r.returncode == 0, r.stdout + r.stderr
            prev = served if step else None
            served = dns.zone.from_xfr(dns.query.xfr(
                "127.0.0.1", ZONE, port=port, timeout=10))  # fmt: skip
            present = owners(served)
            if prev is not None and served.get_soa().serial != before:  # IXFR == AXFR
                q, _s = dns.xfr.make_query(prev, serial=before)
                dns.query.inbound_xfr("127.0.0.1", prev, q, port=port, timeout=10)
                assert prev == served, _zone_diff(prev, served)
            assert serial(port) >= before
        path = axfr(tmp_path, port, "final.zone")
        run_tool(["ldns-verify-zone", str(path)])
        run_tool(["dnssec-verify", "-z", "-o", ZONE, str(path)])  # -z: a CSK
        run_tool(["kzonecheck", "-o", ZONE, "-d", "on", str(path)])
        served = dns.zone.from_file(str(path), ZONE, relativize=True)
        bind = dnssec_signzone(tmp_path, served, nsec3)
        assert chain(served) == chain(bind)
        if nsec3:  # the bitmaps (RRSIG is in both at every signed name)

            def bitmaps(z: dns.zone.Zone) -> dict[str, str]:
                return {str(n).lower(): " ".join(sorted(r.to_text().split()[5:])) for n, node in
                        z.nodes.items() for rds in node.rdatasets if rds.rdtype == T.NSEC3
                        for r in rds}  # fmt: skip

            ours, theirs = bitmaps(served), bitmaps(bind)
            assert ours.keys() == theirs.keys()
            differ = {n for n in ours if ours[n] != theirs[n]}
            assert len(differ) <= 1, differ  # the apex's (key set records)
        # the secondary follows by IXFR
        wait_serial(kport, serial(port), knot_log)
        assert "IXFR" in knot_log.read_text()
        knot = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=kport, timeout=10))
        assert knot == served, _zone_diff(knot, served)
    # restart: the journal's version is served (the signed copy was written at shutdown)
    copy = tmp_path / "state" / f"{ZONE.rstrip('.')}.signed"
    assert f"serial {served.get_soa().serial}," in copy.read_text().splitlines()[0]
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        deadline = time.monotonic() + 20
        while serial(port) < served.get_soa().serial:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        again = dns.zone.from_xfr(dns.query.xfr(
            "127.0.0.1", ZONE, port=port, timeout=10))  # fmt: skip
        assert chain(again) == chain(served)
        assert owners(again) == owners(served)
