"""BIND's option spellings for signzone and keygen (issue #17), each against the BIND tool
where it has one: dnssec-signzone's post-signing verification, -N in any case, -O/-I,
-D, -M, -X, -g; dnssec-keygen's -n, -3, -T, -k, -S and -v after the subcommand."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from automation.conftest import DNSSEAL
from conftest import require_tool

ORIGIN = "example.com"
ZONE = (
    "$ORIGIN example.com.\n$TTL 3600\n@ SOA ns1 host 5 60 30 600 60\n@ NS ns1\n"
    "ns1 A 192.0.2.1\nsub NS ns.sub\nns.sub A 192.0.2.2\nwww 7200 A 192.0.2.3\n"
)


def run(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / ORIGIN).write_text(ZONE)
    keygen = require_tool("dnssec-keygen")
    for extra in (["-f", "KSK"], []):
        assert run([keygen, "-q", "-a", "13", *extra, ORIGIN], tmp_path).returncode == 0
    return tmp_path


def load(path: Path) -> dns.zone.Zone:
    return dns.zone.from_file(str(path), ORIGIN, relativize=False, check_origin=False)


def sign(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([DNSSEAL, "signzone", "-S", "-o", ORIGIN, *args, ORIGIN], work)


def bind_sign(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([require_tool("dnssec-signzone"), "-S", "-o", ORIGIN, *args, ORIGIN], work)


@pytest.mark.interop
def test_verification_after_signing_by_default_and_skipped_by_p(work: Path) -> None:
    """A KSK without its private key: the DNSKEY RRset is left unsigned by a KSK.  Both
    tools refuse the zone and write nothing; -P writes it anyway."""
    (ksk,) = [k for k in work.glob("K*.key") if " 257 3 " in k.read_text()]
    ksk.with_suffix(".private").rename(work / "held")
    bind = bind_sign(work, "-f", "bind.signed")
    ours = sign(work, "-f", "ours.signed")
    assert bind.returncode == ours.returncode == 1, (bind, ours)
    assert not (work / "bind.signed").exists() and not (work / "ours.signed").exists()
    assert "failed verification" in ours.stderr and "-P" in ours.stderr
    assert "DNSKEY RRset not signed by a KSK" in ours.stderr
    assert sign(work, "-P", "-f", "ours.signed").returncode == 0
    assert (work / "ours.signed").exists()
    # the ledger's fast path verifies too before the file is put in place
    (work / "held").rename(ksk.with_suffix(".private"))
    assert sign(work, "-f", "ours.signed").returncode == 0
    assert not list(work.glob("*.dnsseal-verify"))


@pytest.mark.interop
def test_serial_format_any_case_and_formats(work: Path) -> None:
    assert bind_sign(work, "-N", "INCREMENT", "-f", "b").returncode == 0
    assert sign(work, "-N", "INCREMENT", "-f", "d").returncode == 0
    serial = {f: load(work / f).get_rdataset(ORIGIN + ".", "SOA")[0].serial for f in "bd"}
    assert serial == {"b": 6, "d": 6}
    assert sign(work, "-O", "full", "-I", "TEXT", "-f", "full").returncode == 0
    raw = sign(work, "-O", "raw", "-f", "raw")
    assert raw.returncode == 1 and "-O: 'raw'" in raw.stderr and "text" in raw.stderr
    assert not (work / "raw").exists()
    assert sign(work, "-I", "raw", "-f", "raw").returncode == 1


@pytest.mark.interop
def test_dnssec_only_output_matches_bind(work: Path) -> None:
    assert bind_sign(work, "-D", "-f", "b").returncode == 0
    assert sign(work, "-D", "-f", "d").returncode == 0

    ours = {dns.rdatatype.to_text(rds.rdtype) for _, rds in load(work / "d").iterate_rdatasets()}
    assert ours == {"RRSIG", "NSEC", "DNSKEY"}, ours
    bind = {
        dns.rdatatype.to_text(rds.rdtype)
        for _, rds in dns.zone.from_text(
            "$TTL 1\n@ SOA a b 1 1 1 1 1\n@ NS a\n" + (work / "b").read_text(),
            ORIGIN,
            relativize=False,
            check_origin=False,
        ).iterate_rdatasets()
    } - {"SOA", "NS"}
    assert ours == bind
    assert sign(work, "-D", "-N", "increment").returncode == 1


def test_max_ttl_keyset_end_and_dsset(work: Path) -> None:
    (work / "dsset-sub.example.com.").write_text(
        "sub.example.com. IN DS 12345 13 2 "
        "5a7e0f4b6c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d\n"
    )
    got = sign(work, "-M", "600", "-X", "+90d", "-e", "+10d", "-g", "-f", "d")
    assert got.returncode == 0, got.stderr
    z = load(work / "d")
    assert max(rds.ttl for _, rds in z.iterate_rdatasets()) <= 600
    for name, rds in z.iterate_rdatasets(dns.rdatatype.RRSIG):
        for sig in rds:
            assert sig.original_ttl <= 600
            days = (sig.expiration - sig.inception) / 86400
            if sig.type_covered == dns.rdatatype.DNSKEY:
                assert days > 85, (name, days)
            else:
                assert days < 12, (name, days)
    ds = z.get_rdataset("sub.example.com.", "DS")
    assert ds is not None and [r.key_tag for r in ds] == [12345]
    assert z.get_rdataset("sub.example.com.", "RRSIG", "DS") is not None


@pytest.mark.interop
def test_keygen_bind_options_and_successor_matches_dnssec_keygen(tmp_path: Path) -> None:
    ok = run([DNSSEAL, "keygen", "-n", "zone", "-3", "-T", "DNSKEY", "-q", "-v", "3", ORIGIN],
             tmp_path)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert run([DNSSEAL, "keygen", "-n", "HOST", ORIGIN], tmp_path).returncode == 1
    assert run([DNSSEAL, "keygen", "-T", "KEY", ORIGIN], tmp_path).returncode == 1
    pol = tmp_path / "pol"
    pol.mkdir()
    made = run([DNSSEAL, "keygen", "-K", pol, "-k", "default", ORIGIN], tmp_path)
    assert made.returncode == 0, made.stderr
    (csk,) = made.stdout.split()
    assert " 257 3 13 " in (pol / f"{csk}.key").read_text()  # default: one CSK, ECDSA P-256

    # a predecessor inactive in 60 days; BIND's and our successor of it
    settime = require_tool("dnssec-settime")
    bind_keygen = require_tool("dnssec-keygen")
    base = run([bind_keygen, "-q", "-a", "13", ORIGIN], tmp_path).stdout.strip()
    assert run([settime, "-I", "+60d", base], tmp_path).returncode == 0
    for d in ("b", "o"):
        (tmp_path / d).mkdir()
        for suffix in (".key", ".private"):
            shutil.copy(tmp_path / f"{base}{suffix}", tmp_path / d)
    theirs = run([bind_keygen, "-q", "-K", "b", "-S", base], tmp_path)  # relative to -K
    ours = run([DNSSEAL, "keygen", "-q", "-K", "o", "-S", f"o/{base}.key"], tmp_path)
    assert theirs.returncode == 0 and ours.returncode == 0, (theirs.stderr, ours.stderr)

    def times(d: str, name: str) -> dict[str, str]:
        text = (tmp_path / d / f"{name}.key").read_text()
        return dict(re.findall(r"^; (Publish|Activate): (\d+)", text, re.M))

    b_new = theirs.stdout.split()[-1]
    o_new = ours.stdout.split()[-1]
    assert times("o", o_new) == times("b", b_new), (times("o", o_new), times("b", b_new))
    inactive = re.search(r"^; Inactive: (\d+)", (tmp_path / "o" / f"{base}.key").read_text(), re.M)
    assert inactive is not None and times("o", o_new)["Activate"] == inactive.group(1)
    noinactive = run([DNSSEAL, "keygen", "-S", f"o/{o_new}.key"], tmp_path)
    assert noinactive.returncode == 1 and "no inactivation date" in noinactive.stderr
