"""dnsseal verify on zones signed by BIND, ldns and Knot: no findings (no false alarms), and
a defect injected into their output is still found."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from conftest import run_tool
from dnsseal import clock
from dnsseal.signer.verify import VerifyOptions, verify_zone
from dnsseal.zone.text import parse_zone_text

from .conftest import FEATURE_ZONE
from .test_verify import edit

pytestmark = pytest.mark.interop
ORIGIN = "example.com."


def keys(tmp_path: Path) -> list[str]:
    out = []
    for extra in (["-f", "KSK"], []):
        p = run_tool(["dnssec-keygen", "-q", "-K", tmp_path, "-a", "ECDSAP256SHA256", *extra,
                      ORIGIN])  # fmt: skip
        out.append(p.stdout.strip())
    return out


def check(path: Path) -> None:
    zone = parse_zone_text(path.read_text(), ORIGIN, path=str(path))
    findings = verify_zone(zone, clock.now(), VerifyOptions())
    assert [str(f) for f in findings] == []
    # Change one signed record: the verifier must notice.
    mail = dns.name.from_text("mail." + ORIGIN)
    broken = edit(
        zone,
        drop=lambda name, t, c, rd: name == mail and t == dns.rdatatype.A,
        add=((mail, dns.rdatatype.A, 300, bytes([192, 0, 2, 99])),),
    )
    assert "RRSIG_BOGUS" in {f.code for f in verify_zone(broken, clock.now())}


@pytest.mark.parametrize("nsec3", [[], ["-3", "-"], ["-3", "-", "-A"]])
def test_bind_signed(tmp_path: Path, nsec3: list[str]) -> None:
    keys(tmp_path)
    (tmp_path / "zone").write_text(FEATURE_ZONE)
    run_tool(["dnssec-signzone", "-q", "-S", "-K", tmp_path, "-o", ORIGIN, *nsec3, "-f",
              tmp_path / "out", tmp_path / "zone"], cwd=tmp_path)  # fmt: skip
    check(tmp_path / "out")


@pytest.mark.parametrize("nsec3", [[], ["-n", "-t", "0"], ["-n", "-t", "0", "-p"]])
def test_ldns_signed(tmp_path: Path, nsec3: list[str]) -> None:
    names = keys(tmp_path)
    (tmp_path / "zone").write_text(FEATURE_ZONE)
    run_tool(["ldns-signzone", *nsec3, "-o", ORIGIN, "-f", tmp_path / "out", tmp_path / "zone",
              *[tmp_path / k for k in names]])  # fmt: skip
    check(tmp_path / "out")


@pytest.mark.parametrize("nsec3", ["off", "on"])
def test_knot_signed(tmp_path: Path, nsec3: str) -> None:
    names = keys(tmp_path)
    zone = tmp_path / "example.com.zone"
    zone.write_text(FEATURE_ZONE)
    conf = tmp_path / "knot.conf"
    conf.write_text(
        f"database:\n  storage: {tmp_path}\n"
        f"template:\n  - id: default\n    storage: {tmp_path}\n"
        "policy:\n  - id: p\n    algorithm: ecdsap256sha256\n    manual: on\n"
        f"    nsec3: {nsec3}\n    nsec3-iterations: 0\n    nsec3-salt-length: 0\n"
        f"zone:\n  - domain: {ORIGIN}\n    file: {zone}\n    dnssec-signing: on\n"
        "    dnssec-policy: p\n"
    )
    for k in names:
        run_tool(["keymgr", "-c", conf, ORIGIN, "import-bind", tmp_path / f"{k}.private"])
    out = tmp_path / "out"
    out.mkdir()
    run_tool(["kzonesign", "-c", conf, "-o", out, ORIGIN])
    check(out / zone.name)
