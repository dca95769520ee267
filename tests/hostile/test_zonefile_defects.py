"""Broken zone files, as a careless operator writes them (issue #13): BIND's
``named-checkzone`` is the oracle.  For every defect fixture in ``zones/`` (named by the
defect it holds), BIND refuses the file and so do ``dnsseal signzone`` and ``dnsseal
verify``: exit status 1, one line on stderr naming the file and line (the included file's
own for ``include_error/``) and the reason, no traceback, and no output file.

Where BIND and dnsseal differ, the table says so:
- ``out_of_zone``: BIND loads the zone and only warns ("ignoring out-of-zone data");
  dnsseal refuses it (a typo in an owner name would silently lose the record).
- ``ttl_2_31``: a TTL of 2^31 is "> MAXTTL, setting TTL to 0" for BIND (a warning, RFC 2181
  section 8); dnsseal refuses it.
- ``generate_too_many``: BIND has no limit on the records one ``$GENERATE`` makes (the ARM
  only bounds the values to 0..2^31-1; ``named-checkzone`` 9.18 spends minutes on this file
  and is not run on it here); dnsseal refuses more than 65536 (the limit of miekg/dns, the Go
  library behind CoreDNS) at once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_tool
from dnsseal.errors import FileFormatError
from dnsseal.storage.zonefile import read_zone

ZONES = Path(__file__).parent / "zones"
ORIGIN = "example.com"
DNSSEAL = Path(sys.executable).parent / "dnsseal"  # the console script next to python


@dataclass(frozen=True)
class Defect:
    fixture: str  # under zones/
    where: str  # the file:line dnsseal must name (relative to zones/)
    reason: str  # regex for dnsseal's reason
    bind: str | None  # regex for named-checkzone's complaint; None: BIND accepts the file


DEFECTS = [
    Defect("soa_below_apex.zone", "soa_below_apex.zone:5", r"SOA record at sub\.example\.com\.,"
           r" below the zone apex", r"soa_below_apex\.zone:5: SOA record not at top of zone"),
    Defect("ns_at_wildcard.zone", "ns_at_wildcard.zone:5", r"NS record at the wildcard name",
           r"ns_at_wildcard\.zone:5: .*invalid NS owner name \(wildcard\)"),
    Defect("out_of_zone.zone", "out_of_zone.zone:6", r"out-of-zone record www\.example\.org\.",
           None),
    Defect("two_apex_soa.zone", "two_apex_soa.zone:5", r"a second SOA record at the zone apex",
           r"two_apex_soa\.zone:5: .*multiple RRs of singleton type"),
    Defect("ttl_out_of_range.zone", "ttl_out_of_range.zone:5", r"TTL 4294967296 out of range",
           r"ttl_out_of_range\.zone:5: unknown RR type"),
    Defect("bad_dotted_quad.zone", "bad_dotted_quad.zone:5", r"bad dotted quad '192\.0\.2\.300'",
           r"bad_dotted_quad\.zone:5: near '192\.0\.2\.300': bad dotted quad"),
    Defect("include_error/main.zone", "include_error/hosts.inc:4",
           r"bad dotted quad '192\.0\.2\.312'",
           r"hosts\.inc:4: near '192\.0\.2\.312': bad dotted quad"),
]  # fmt: skip


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``dnsseal ARGS`` as a subprocess (what an operator sees: exit status and stderr)."""
    return subprocess.run(
        [str(DNSSEAL), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=os.environ,
    )


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    for flags in ([], ["-f", "KSK"]):
        r = run("keygen", "-q", "-K", d, *flags, ORIGIN)
        assert r.returncode == 0, r.stderr
    return d


def copy_zones(tmp: Path) -> Path:
    dst = tmp / "zones"
    shutil.copytree(ZONES, dst)
    return dst


def assert_one_line_error(r: subprocess.CompletedProcess[str], where: str, reason: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert re.search(re.escape(where) + r": " + reason, lines[0]), lines[0]


@pytest.mark.interop
@pytest.mark.parametrize("d", DEFECTS, ids=lambda d: d.fixture.split("/")[0])
def test_named_checkzone_agrees(d: Defect, tmp_path: Path) -> None:
    zones = copy_zones(tmp_path)
    f = zones / d.fixture
    # BIND resolves $INCLUDE from its working directory: run it in the file's.
    r = run_tool(["named-checkzone", ORIGIN, f.name], cwd=f.parent, check=False)
    if d.bind is None:
        assert r.returncode == 0, r.stdout + r.stderr  # BIND accepts it (see above)
        assert "ignoring out-of-zone data" in r.stdout
    else:
        assert r.returncode == 1, r.stdout
        assert re.search(d.bind, r.stdout), r.stdout


@pytest.mark.parametrize("d", DEFECTS, ids=lambda d: d.fixture.split("/")[0])
def test_signzone_and_verify_refuse(d: Defect, tmp_path: Path, keydir: Path) -> None:
    zones = copy_zones(tmp_path)
    out = tmp_path / "out.signed"
    r = run("signzone", "-o", ORIGIN, "-S", "-K", keydir, "-f", out, d.fixture, cwd=zones)
    assert_one_line_error(r, d.where, d.reason)
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    r = run("verify", "-o", ORIGIN, d.fixture, cwd=zones)
    assert_one_line_error(r, d.where, d.reason)


def test_the_good_zone_signs(tmp_path: Path, keydir: Path) -> None:
    """The fixtures differ from good.zone by their defect only."""
    zones = copy_zones(tmp_path)
    out = tmp_path / "good.signed"
    r = run("signzone", "-q", "-o", ORIGIN, "-S", "-K", keydir, "-f", out, "good.zone", cwd=zones)
    assert r.returncode == 0, r.stderr
    assert run("verify", "-o", ORIGIN, out).returncode == 0


@pytest.mark.interop
def test_ttl_2_31_bind_zeroes_it_dnsseal_refuses(tmp_path: Path, keydir: Path) -> None:
    zones = copy_zones(tmp_path)
    f = zones / "ttl_2_31.zone"
    f.write_text((zones / "good.zone").read_text() + "big 2147483648 A 192.0.2.9\n")
    r = run_tool(["named-checkzone", ORIGIN, f], check=False)
    assert r.returncode == 0 and "> MAXTTL, setting $TTL to 0" in r.stdout, r.stdout
    r = run("signzone", "-o", ORIGIN, "-S", "-K", keydir, "-f", tmp_path / "o", f)
    assert_one_line_error(r, f"{f}:6", r"TTL 2147483648 out of range")


def test_generate_limit(tmp_path: Path, keydir: Path) -> None:
    zones = copy_zones(tmp_path)
    t0 = time.monotonic()
    r = run("signzone", "-o", ORIGIN, "-S", "-K", keydir, "-f", tmp_path / "o",
            "generate_too_many.zone", cwd=zones)  # fmt: skip
    assert_one_line_error(
        r, "generate_too_many.zone:5", r"\$GENERATE range 1-100000000 makes 100000000 records"
    )
    assert time.monotonic() - t0 < 30  # refused up front, not after growing


@pytest.mark.interop
def test_generate_at_the_limit_is_read_like_bind(tmp_path: Path) -> None:
    """65536 records from one $GENERATE: the most dnsseal takes; BIND reads the same."""
    zones = copy_zones(tmp_path)
    f = zones / "generate_limit.zone"
    f.write_text((zones / "good.zone").read_text() + "$GENERATE 0-65535 h$ A 192.0.2.1\n")
    r = run_tool(["named-checkzone", "-D", "-o", "-", ORIGIN, f])
    bind_names = {line.split()[0] for line in r.stdout.splitlines() if line.startswith("h")}
    zone = read_zone(f, ORIGIN)
    ours = {n.to_text() for n in zone.rrsets if n.labels[0].startswith(b"h")}
    assert len(ours) == 65536
    assert ours == bind_names
    f.write_text((zones / "good.zone").read_text() + "$GENERATE 0-65536 h$ A 192.0.2.1\n")
    with pytest.raises(FileFormatError, match="makes 65537 records"):
        read_zone(f, ORIGIN)
