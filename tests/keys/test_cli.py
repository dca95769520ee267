"""dnsseal keygen / dsfromkey / settime / keyinfo: options, output shape, errors."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from conftest import Dnsseal
from dnsseal import clock
from dnsseal.keys.model import RecordState
from dnsseal.storage.keydir import load_key

NOW = 1_790_000_000  # pinned wall clock for these tests


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: NOW)


def test_keygen_defaults(dnsseal: Dnsseal, tmp_path: Path) -> None:
    out = dnsseal("keygen", "-K", tmp_path, "example.com").stdout.strip()
    assert re.fullmatch(r"Kexample\.com\.\+013\+\d{5}", out)
    key = load_key(tmp_path / f"{out}.key")
    assert key.algorithm == 13 and key.flags == 256 and key.role == "zsk"
    assert key.timings.created == key.timings.publish == key.timings.activate == NOW
    assert key.timings.inactive is None and key.ttl is None
    assert stat.S_IMODE((tmp_path / f"{out}.private").stat().st_mode) == 0o600
    assert not (tmp_path / f"{out}.state").exists()  # as dnssec-keygen without -k


def test_keygen_options(dnsseal: Dnsseal, tmp_path: Path) -> None:
    out = dnsseal(
        "keygen", "-K", tmp_path, "-a", "ED25519", "-f", "KSK", "-L", "1h",
        "-P", "+1d", "-A", "+2d", "-I", "+1y", "-D", "20300101", "-R", "now+400d",
        "-P", "sync", "+3d", "-D", "sync", "+370d", "Example.ORG.",
    ).stdout.strip()  # fmt: skip
    key = load_key(tmp_path / f"{out}.key")
    assert out.startswith("Kexample.org.+015+")
    assert key.flags == 257 and key.ttl == 3600
    t = key.timings
    assert (t.publish, t.activate, t.inactive) == (NOW + 86400, NOW + 2 * 86400, NOW + 365 * 86400)
    assert t.delete == 1893456000 and t.revoke == NOW + 400 * 86400
    assert (t.sync_publish, t.sync_delete) == (NOW + 3 * 86400, NOW + 370 * 86400)


def test_keygen_generate_only_and_compat(dnsseal: Dnsseal, tmp_path: Path) -> None:
    g = load_key(tmp_path / (dnsseal("keygen", "-K", tmp_path, "-G", "z.").stdout.strip() + ".key"))
    assert g.timings.created == NOW and g.timings.publish is None and g.timings.activate is None
    c = load_key(tmp_path / (dnsseal("keygen", "-K", tmp_path, "-C", "z.").stdout.strip() + ".key"))
    assert c.timings.created is None and c.timings.publish is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "RSASHA1"], "refusing to generate a RSASHA1 key: .*SHA-1.*RFC 8624"),
        (["-a", "NSEC3RSASHA1"], "refusing to generate"),
        (["-a", "7"], "refusing to generate"),
        (["-a", "GOST"], "unknown DNSSEC algorithm 'GOST'"),
        (["-a", "13", "-b", "2048"], "-b: .*fixed size"),
        (["-a", "RSASHA256", "-b", "512"], "-b: .*1024..4096"),
        (["-f", "ZSK"], "-f: unknown key flag"),
        (["-P", "tomorrow"], "-P: bad time 'tomorrow'"),
        (["-I", "+5x"], "-I: bad time offset"),
        (["-L", "soon"], "-L: bad TTL"),
    ],
)
def test_keygen_refuses_bad_options(
    dnsseal: Dnsseal, tmp_path: Path, args: list[str], message: str
) -> None:
    result = dnsseal("keygen", "-K", tmp_path, *args, "example.com", ok=False)
    assert result.exit_code == 1
    assert re.search(message, result.stderr), result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_keygen_missing_directory(dnsseal: Dnsseal, tmp_path: Path) -> None:
    result = dnsseal("keygen", "-K", tmp_path / "missing", "example.com", ok=False)
    assert result.exit_code == 1
    assert "missing: key directory does not exist" in result.stderr


def test_dsfromkey_variants(dnsseal: Dnsseal, tmp_path: Path) -> None:
    base = dnsseal("keygen", "-K", tmp_path, "-f", "KSK", "example.com").stdout.strip()
    keyfile = tmp_path / f"{base}.key"
    key = load_key(keyfile)
    default = dnsseal("dsfromkey", keyfile).stdout.splitlines()
    assert len(default) == 1
    assert re.fullmatch(rf"example\.com\. IN DS {key.tag} 13 2 [0-9A-F]{{64}}", default[0])
    sha1 = dnsseal("dsfromkey", "-1", keyfile)
    assert re.fullmatch(rf"example\.com\. IN DS {key.tag} 13 1 [0-9A-F]{{40}}\n", sha1.stdout)
    assert "deprecated" in sha1.stderr
    both = dnsseal("dsfromkey", "-2", "-4", "-T", "300", keyfile).stdout.splitlines()
    assert [ln.split()[1] for ln in both] == ["300", "300"]
    assert [ln.split()[6] for ln in both] == ["2", "4"]
    cds = dnsseal("dsfromkey", "-C", keyfile).stdout
    assert cds.split()[2] == "CDS" and cds.split()[3:] == default[0].split()[3:]
    # -K with a bare basename, as BIND allows
    assert dnsseal("dsfromkey", "-K", tmp_path, base).stdout.splitlines() == default


def test_dsfromkey_from_zone_file(dnsseal: Dnsseal, tmp_path: Path) -> None:
    ksk = load_key(
        tmp_path / (dnsseal("keygen", "-K", tmp_path, "-f", "KSK", "ex.").stdout.strip() + ".key")
    )
    zsk = load_key(tmp_path / (dnsseal("keygen", "-K", tmp_path, "ex.").stdout.strip() + ".key"))
    zone = tmp_path / "ex.db"
    zone.write_text(
        "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 192.0.2.1\n"
        + "".join(f"@ DNSKEY {k.dnskey().to_text()}\n" for k in (ksk, zsk))
    )
    only_ksk = dnsseal("dsfromkey", "-f", zone, "ex.").stdout.split()
    assert only_ksk[3] == str(ksk.tag)
    tags = {
        ln.split()[3] for ln in dnsseal("dsfromkey", "-A", "-f", zone, "ex.").stdout.splitlines()
    }
    assert tags == {str(ksk.tag), str(zsk.tag)}
    bad = tmp_path / "bad.db"
    bad.write_text("@ SOA ns hostmaster 1 3600 600 86400 300\n@ NOTATYPE foo\n")
    result = dnsseal("dsfromkey", "-f", bad, "ex.", ok=False)
    assert result.exit_code == 1 and str(bad) in result.stderr


def test_settime_sets_and_prints(dnsseal: Dnsseal, tmp_path: Path) -> None:
    base = dnsseal("keygen", "-K", tmp_path, "example.com").stdout.strip()
    keyfile = tmp_path / f"{base}.key"
    dnsseal(
        "settime",
        "-I",
        "+30d",
        "-D",
        "+40d",
        "-P",
        "sync",
        "+1d",
        "-P",
        "ds",
        "+2d",
        "-L",
        "600",
        keyfile,
    )
    key = load_key(keyfile)
    assert key.timings.inactive == NOW + 30 * 86400 and key.timings.delete == NOW + 40 * 86400
    assert key.timings.sync_publish == NOW + 86400 and key.timings.ds_publish == NOW + 2 * 86400
    assert key.ttl == 600
    out = dnsseal("settime", "-p", "all", "-u", keyfile).stdout.splitlines()
    assert out[:6] == [
        f"Created: {NOW}", f"Publish: {NOW}", f"Activate: {NOW}", "Revoke: UNSET",
        f"Inactive: {NOW + 30 * 86400}", f"Delete: {NOW + 40 * 86400}",
    ]  # fmt: skip
    assert out[6:] == [
        f"SYNC Publish: {NOW + 86400}",
        "SYNC Delete: UNSET",
        f"DS Publish: {NOW + 2 * 86400}",
        "DS Delete: UNSET",
    ]
    assert dnsseal("settime", "-p", "I", keyfile).stdout.startswith("Inactive: ")
    dnsseal("settime", "-I", "none", keyfile)
    assert load_key(keyfile).timings.inactive is None


def test_settime_states(dnsseal: Dnsseal, tmp_path: Path) -> None:
    base = dnsseal("keygen", "-K", tmp_path, "-f", "KSK", "example.com").stdout.strip()
    keyfile = tmp_path / f"{base}.key"
    result = dnsseal("settime", "-g", "omnipresent", keyfile, ok=False)
    assert result.exit_code == 1 and "add -s" in result.stderr
    dnsseal(
        "settime",
        "-s",
        "-g",
        "OMNIPRESENT",
        "-k",
        "omnipresent",
        "now",
        "-r",
        "OMNIPRESENT",
        "-1h",
        "-d",
        "rumoured",
        "now",
        keyfile,
    )
    key = load_key(keyfile)
    assert key.state is not None
    assert key.state.goal is RecordState.OMNIPRESENT
    assert key.state.dnskey is RecordState.OMNIPRESENT and key.state.dnskey_change == NOW
    assert key.state.krrsig_change == NOW - 3600
    assert key.state.ds is RecordState.RUMOURED
    bad = dnsseal("settime", "-s", "-k", "sideways", "now", keyfile, ok=False)
    assert "-k: unknown state 'sideways'" in bad.stderr


def test_keyinfo(dnsseal: Dnsseal, tmp_path: Path) -> None:
    base = dnsseal(
        "keygen", "-K", tmp_path, "-a", "RSASHA256", "-b", "1024", "-f", "KSK", "example.com"
    ).stdout.strip()
    keyfile = tmp_path / f"{base}.key"
    text = dnsseal("keyinfo", keyfile).stdout
    assert text.splitlines()[0] == base
    assert "RSASHA256 (8), 1024 bits" in text and "KSK (flags 257)" in text
    assert "present (mode 0600)" in text
    info = json.loads(dnsseal("keyinfo", "--json", keyfile).stdout)
    assert info[0]["tag"] == load_key(keyfile).tag
    assert info[0]["bits"] == 1024 and info[0]["role"] == "ksk"
    assert info[0]["timings"]["created"] == NOW
    (tmp_path / f"{base}.private").unlink()
    assert "MISSING" in dnsseal("keyinfo", keyfile).stdout
