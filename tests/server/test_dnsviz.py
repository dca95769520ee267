"""DNSViz (the dnsviz package) probing dnsseal finds no errors in the NSEC, NSEC3 and NSEC3
opt-out zones, and does find the error in a zone with a broken signature.

``dnsviz probe -A -x ZONE+:NAME=ADDR:PORT,...`` queries only the given authoritative servers
(the ``+`` stops the analysis at the zone: no ancestor is queried, nothing leaves loopback);
``dnsviz grok`` then checks every RRSIG, NSEC/NSEC3 proof and response, and we assert on its
JSON.  The zone's DS is not given: DNSViz's ``-N``/``-D`` start its own named for the parent
on the fixed port 50053, which parallel runs share; the chain of trust from the DS is checked
by the Unbound and delv tests (test_validation.py).  Delegations are not probed (their name
servers are not on loopback).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from .conftest import RunningServer, SignedZone, sign_zone, start_dnsseal, stop

pytestmark = [pytest.mark.interop, pytest.mark.slow]

DNSVIZ = Path(sys.executable).parent / "dnsviz"
# Names probed below each zone besides its apex: the cases the answering code distinguishes.
PROBED = ("www", "alias", "chain1", "a.wild", "nothere", "a.b.c.ent", "b.c.ent", "x.dn", "sub",
          "many")  # fmt: skip


def _dnsviz(args: list[str], cwd: Path) -> str:
    if not DNSVIZ.exists():
        pytest.fail(f"{DNSVIZ} is missing: install the test extras (pip install -e '.[test]')")
    proc = subprocess.run(
        [str(DNSVIZ), *args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"dnsviz {' '.join(args)} exited {proc.returncode}\n{proc.stderr}")
    return proc.stdout


def probe_and_grok(server: RunningServer, z: SignedZone, workdir: Path) -> dict[str, Any]:
    """Probe ``z`` on the running server and return grok's JSON."""
    zone = z.origin.rstrip(".")
    names = [zone, *(f"{n}.{zone}" for n in PROBED)]
    probe = workdir / f"{zone}.probe.json"
    # The zone's own name servers (ns1 A 127.0.0.1, ns2 AAAA ::1) on the server's port.
    servers = f"ns1.{zone}=127.0.0.1:{server.port},ns2.{zone}=[::1]:{server.port}"
    _dnsviz(
        ["probe", "-A", "-x", f"{zone}+:{servers}", "-t", "4", "-o", str(probe), *names],
        workdir,
    )
    out = _dnsviz(["grok", "-r", str(probe), "-c"], workdir)
    result: dict[str, Any] = json.loads(out)
    return result


def findings(doc: Any, kind: str, path: str = "") -> list[str]:
    """Every DNSViz finding of ``kind`` ("errors" or "warnings") in grok's JSON, each as
    "where: code (description)"."""
    out: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{path}/{key}"
            if key == kind and isinstance(value, list):
                out += [f"{path}: {f.get('code')} ({f.get('description')})" for f in value]
            else:
                out += findings(value, kind, here)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += findings(value, kind, f"{path}[{i}]")
    return out


def statuses(doc: Any) -> set[str]:
    """The DNSSEC statuses grok gave the RRsets and denials (SECURE, BOGUS, ...)."""
    out: set[str] = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "status" and isinstance(value, str):
                out.add(value)
            else:
                out |= statuses(value)
    elif isinstance(doc, list):
        for value in doc:
            out |= statuses(value)
    return out


@pytest.fixture(scope="module")
def dnsseal_server(
    signed_zones: dict[str, SignedZone], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("dnsviz-server")
    broken = _broken_zone(tmp_path_factory.mktemp("broken"))
    server = start_dnsseal(workdir, {**signed_zones, "broken": broken}, v6=True)
    try:
        yield server
    finally:
        stop(server.proc)


def _broken_zone(workdir: Path) -> SignedZone:
    """The NSEC test zone signed as broken.example., with the signature over www's A
    records damaged (one bit flipped)."""
    z = sign_zone(workdir, "nsec", origin="broken.example.")
    zone = dns.zone.from_file(str(z.path), z.origin, relativize=False)
    node = zone.find_node(f"www.{z.origin}")
    rds = node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
    old = rds[0]
    sig = bytearray(old.signature)
    sig[10] ^= 0x01
    rds.remove(old)
    rds.add(old.replace(signature=bytes(sig)))
    broken = workdir / "zone.broken"
    zone.to_file(str(broken), relativize=False)
    assert base64.b64encode(bytes(sig)).decode() in broken.read_text().replace(" ", "")
    return SignedZone(z.variant, z.origin, broken, z.keydir, z.ds, z.dnskey)


@pytest.mark.parametrize("variant", ["nsec", "nsec3", "optout"])
def test_dnsviz_reports_no_errors(
    variant: str,
    dnsseal_server: RunningServer,
    signed_zones: dict[str, SignedZone],
    tmp_path: Path,
) -> None:
    doc = probe_and_grok(dnsseal_server, signed_zones[variant], tmp_path)
    zone = signed_zones[variant].origin
    assert zone in doc, sorted(doc)
    assert findings(doc, "errors") == [], findings(doc, "warnings")
    seen = statuses(doc)
    assert "VALID" in seen and "NXDOMAIN" in seen
    assert not seen & {
        "INVALID_SIG",
        "INVALID",
        "BOGUS",
        "INDETERMINATE_NO_DNSKEY",
        "EXPIRED",
        "PREMATURE",
    }


def test_dnsviz_finds_the_broken_signature(dnsseal_server: RunningServer, tmp_path: Path) -> None:
    z = dnsseal_server.zones["broken"]
    doc = probe_and_grok(dnsseal_server, z, tmp_path)
    errors = findings(doc, "errors")
    assert any("SIGNATURE_INVALID" in e and "www" in e for e in errors), errors
    assert "INVALID_SIG" in statuses(doc[f"www.{z.origin}"])
