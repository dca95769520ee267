"""Keys move between BIND and dnsseal in both directions, for every supported algorithm.

These run BIND 9's own dnssec-keygen, dnssec-dsfromkey, dnssec-signzone, dnssec-verify and
dnssec-settime as oracles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import Dnsseal, run_tool
from dnsseal.crypto import software
from dnsseal.keys.ds import make_ds
from dnsseal.keys.model import RecordState
from dnsseal.storage.keydir import load_key

pytestmark = pytest.mark.interop

ALGORITHMS = ["RSASHA256", "RSASHA512", "ECDSAP256SHA256", "ECDSAP384SHA384", "ED25519", "ED448"]
ZONE = "interop.example."
ZONE_TEXT = """\
$TTL 300
@       SOA   ns1 hostmaster 2026112101 3600 600 864000 300
@       NS    ns1
ns1     A     192.0.2.53
www     A     192.0.2.80
        AAAA  2001:db8::80
mail    MX    10 www
"""


def _ds_lines(text: str) -> list[str]:
    return sorted(" ".join(line.split()) for line in text.splitlines() if " DS " in line)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_dnsseal_keys_work_in_bind(dnsseal: Dnsseal, tmp_path: Path, alg: str) -> None:
    bits = ["-b", "2048"] if alg.startswith("RSA") else []
    ksk = dnsseal("keygen", "-K", tmp_path, "-a", alg, *bits, "-f", "KSK", ZONE).stdout.strip()
    zsk = dnsseal("keygen", "-K", tmp_path, "-a", alg, *bits, ZONE).stdout.strip()
    # Same DS from BIND's dnssec-dsfromkey as from ours, for every digest type.
    for flag in ("-2", "-a SHA-384"):
        ours = dnsseal("dsfromkey", *flag.split(), tmp_path / f"{ksk}.key").stdout
        bind = run_tool(["dnssec-dsfromkey", *flag.split(), tmp_path / f"{ksk}.key"]).stdout
        assert _ds_lines(ours) == _ds_lines(bind) != []
    # BIND signs a zone with our keys (smart signing picks them by our timing metadata) and
    # its verifier accepts the result.
    zonefile = tmp_path / "zone.db"
    zonefile.write_text(ZONE_TEXT)
    signed = tmp_path / "zone.signed"
    run_tool(
        ["dnssec-signzone", "-S", "-K", tmp_path, "-o", ZONE, "-f", signed, zonefile], cwd=tmp_path
    )
    text = signed.read_text()
    for base in (ksk, zsk):
        tag = str(int(base.rsplit("+", 1)[1]))
        assert re.search(rf"RRSIG\s+\S+\s+\d+\s+\d+\s+\d+\s+\(?\s*\d+\s+\d+\s+{tag}\s", text), (
            f"no signature by {base}"
        )
    run_tool(["dnssec-verify", "-o", ZONE, signed])


@pytest.mark.parametrize("alg", [*ALGORITHMS, "RSASHA1", "NSEC3RSASHA1"])
def test_bind_keys_work_in_dnsseal(dnsseal: Dnsseal, tmp_path: Path, alg: str) -> None:
    bits = ["-b", "2048"] if "RSA" in alg else []
    base = run_tool(
        ["dnssec-keygen", "-q", "-K", tmp_path, "-a", alg, *bits, "-f", "KSK", "-L", "3600", ZONE]
    ).stdout.strip()
    keyfile = tmp_path / f"{base}.key"
    ours = dnsseal("dsfromkey", "-2", "-4", keyfile).stdout
    bind = (
        run_tool(["dnssec-dsfromkey", "-2", keyfile]).stdout
        + run_tool(["dnssec-dsfromkey", "-a", "SHA-384", keyfile]).stdout
    )
    assert _ds_lines(ours) == _ds_lines(bind)
    key = load_key(keyfile)
    assert key.basename == base and key.ttl == 3600 and key.is_ksk
    # BIND's private key material loads and matches the public key (signer_for checks).
    signer = software.signer_for(key)
    assert signer.sign(b"data")
    assert make_ds(key).key_tag == int(base.rsplit("+", 1)[1])


@pytest.mark.parametrize("alg", ["ECDSAP256SHA256", "RSASHA256", "ED448"])
def test_timings_set_by_dnsseal_read_by_bind(dnsseal: Dnsseal, tmp_path: Path, alg: str) -> None:
    base = dnsseal("keygen", "-K", tmp_path, "-a", alg, "-f", "KSK", ZONE).stdout.strip()
    keyfile = tmp_path / f"{base}.key"
    dnsseal(
        "settime",
        "-s",
        "-I",
        "+30d",
        "-D",
        "+40d",
        "-R",
        "+35d",
        "-P",
        "sync",
        "+1d",
        "-D",
        "sync",
        "+29d",
        "-P",
        "ds",
        "+2d",
        "-D",
        "ds",
        "+31d",
        keyfile,
    )
    ours = dnsseal("settime", "-p", "all", keyfile).stdout
    bind = run_tool(["dnssec-settime", "-p", "all", keyfile]).stdout
    assert ours == bind
    ours_u = dnsseal("settime", "-u", "-p", "all", keyfile).stdout
    assert ours_u == run_tool(["dnssec-settime", "-u", "-p", "all", keyfile]).stdout
    assert "UNSET" not in ours_u  # everything we set arrived


@pytest.mark.parametrize("alg", ["ECDSAP256SHA256", "RSASHA512", "ED25519"])
def test_timings_set_by_bind_read_by_dnsseal(dnsseal: Dnsseal, tmp_path: Path, alg: str) -> None:
    base = run_tool(["dnssec-keygen", "-q", "-K", tmp_path, "-a", alg, ZONE]).stdout.strip()
    keyfile = tmp_path / f"{base}.key"
    run_tool(
        [
            "dnssec-settime",
            "-I",
            "+30d",
            "-D",
            "+40d",
            "-R",
            "+35d",
            "-P",
            "sync",
            "+1d",
            "-D",
            "sync",
            "+29d",
            "-P",
            "ds",
            "+2d",
            keyfile,
        ]
    )
    for args in (["-p", "all"], ["-u", "-p", "all"]):
        assert (
            dnsseal("settime", *args, keyfile).stdout
            == run_tool(["dnssec-settime", *args, keyfile]).stdout
        )


def test_state_files_both_ways(dnsseal: Dnsseal, tmp_path: Path) -> None:
    policy = tmp_path / "policy.conf"
    policy.write_text(
        'dnssec-policy "p" { keys { ksk lifetime P1Y algorithm 13; '
        "zsk lifetime P60D algorithm 13; }; };\n"
    )
    bases = run_tool(
        ["dnssec-keygen", "-q", "-K", tmp_path, "-k", "p", "-l", policy, ZONE]
    ).stdout.split()
    assert len(bases) == 2
    ksk_base = next(b for b in bases if load_key(tmp_path / f"{b}.key").is_ksk)
    keyfile = tmp_path / f"{ksk_base}.key"
    # BIND writes the state file ...
    run_tool(
        [
            "dnssec-settime",
            "-s",
            "-g",
            "OMNIPRESENT",
            "-k",
            "OMNIPRESENT",
            "-1d",
            "-r",
            "OMNIPRESENT",
            "-1d",
            "-d",
            "RUMOURED",
            "-2h",
            keyfile,
        ]
    )
    info = json.loads(dnsseal("keyinfo", "--json", keyfile).stdout)[0]
    assert info["role"] == "ksk"
    st = info["state"]
    assert st["lifetime"] == 365 * 86400 and st["goal"] == "omnipresent"
    assert st["dnskey"]["state"] == "omnipresent" and st["krrsig"]["state"] == "omnipresent"
    assert st["ds"]["state"] == "rumoured"
    assert st["ds"]["since"] == st["dnskey"]["since"] + 86400 - 7200
    # ... dnsseal changes it, and BIND reads dnsseal's file and keeps what we wrote.
    dnsseal("settime", "-s", "-d", "omnipresent", "now", keyfile)
    run_tool(["dnssec-settime", "-s", "-z", "HIDDEN", "now", keyfile])
    key = load_key(keyfile)
    assert key.state is not None
    assert key.state.ds is RecordState.OMNIPRESENT
    assert key.state.zrrsig is RecordState.HIDDEN
    assert key.state.lifetime == 365 * 86400 and key.state.ksk is True
    assert (
        run_tool(["dnssec-settime", "-p", "all", keyfile]).stdout
        == dnsseal("settime", "-p", "all", keyfile).stdout
    )
