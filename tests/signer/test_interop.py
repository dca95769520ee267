"""Zones signed by dnsseal are accepted by BIND's dnssec-verify, ldns-verify-zone and Knot's
kzonecheck (all three must pass), across denial modes, algorithms and key layouts."""

from __future__ import annotations

from pathlib import Path

import dns.rdatatype
import pytest

from conftest import Dnsseal
from dnsseal import clock
from dnsseal.keys.model import KeyTimings
from dnsseal.signer import Nsec3Params, SigningKey, SignParams, sign_zone, smart_select
from dnsseal.signer.rrsig import Rrsig
from dnsseal.signer.verify import verify_zone
from dnsseal.zone.text import format_zone

from .conftest import external_verify, ksk_zsk, make_key, write, zone_from

pytestmark = pytest.mark.interop
T = dns.rdatatype

DENIAL = {
    "nsec": None,
    "nsec3": Nsec3Params(),
    "nsec3-optout": Nsec3Params(opt_out=True),
    "nsec3-salt": Nsec3Params(salt=bytes.fromhex("c0ffee")),
}


@pytest.mark.parametrize("denial", sorted(DENIAL))
def test_feature_zone_all_denial_modes(denial: str, tmp_path: Path) -> None:
    signed = sign_zone(zone_from(), ksk_zsk(13), SignParams(nsec3=DENIAL[denial]), clock.now())
    external_verify(write(signed.zone, tmp_path / "z.signed"))


@pytest.mark.parametrize(("alg", "layout"), [(8, "ksk+zsk"), (13, "csk"), (15, "ksk+zsk"),
                                             (15, "csk"), (14, "ksk+zsk")])  # fmt: skip
def test_algorithms_and_key_layouts(alg: int, layout: str, tmp_path: Path) -> None:
    keys = ksk_zsk(alg) if layout == "ksk+zsk" else [SigningKey(make_key(alg, ksk=True))]
    signed = sign_zone(zone_from(), keys, SignParams(nsec3=Nsec3Params()), clock.now())
    external_verify(write(signed.zone, tmp_path / "z.signed"), csk=layout == "csk")


def test_two_algorithms_at_once(tmp_path: Path) -> None:
    keys = ksk_zsk(8) + ksk_zsk(13)
    signed = sign_zone(zone_from(), keys, SignParams(ksk_only=True), clock.now())
    external_verify(write(signed.zone, tmp_path / "z.signed"))


def test_resign_after_records_added_and_removed(tmp_path: Path) -> None:
    now = clock.now()
    first = sign_zone(zone_from(), ksk_zsk(13), SignParams(nsec3=Nsec3Params()), now).zone
    text = format_zone(first)
    text = "\n".join(
        line for line in text.splitlines() if not line.startswith(("mail.", "*.wild."))
    )
    text += '\nnew.example.com. 300 IN A 192.0.2.77\nx.y.z.example.com. 300 IN TXT "ent"\n'
    path = tmp_path / "edited"
    path.write_text(text)
    from dnsseal.zone.text import parse_zone_text

    edited = parse_zone_text(text, "example.com.")
    again = sign_zone(edited, ksk_zsk(13), SignParams(nsec3=Nsec3Params()), now)
    assert again.stats.retained > 10 and again.stats.generated > 0
    assert again.stats.dropped > 0  # signatures of removed RRsets and changed chain
    external_verify(write(again.zone, tmp_path / "z.signed"))


def test_signzone_cli_with_bind_keys(dnsseal: Dnsseal, tmp_path: Path) -> None:
    from conftest import run_tool

    kd = tmp_path / "keys"
    kd.mkdir()
    run_tool(["dnssec-keygen", "-q", "-K", kd, "-a", "ECDSAP256SHA256", "-f", "KSK",
              "example.com"])  # fmt: skip
    run_tool(["dnssec-keygen", "-q", "-K", kd, "-a", "ECDSAP256SHA256", "example.com"])
    src = tmp_path / "example.com.zone"
    src.write_text(format_zone(zone_from()))
    out = tmp_path / "out.signed"
    r = dnsseal("signzone", "-o", "example.com", "-K", kd, "-S", "-f", out, "-N", "increment",
                "-3", "-", "-A", "-j", "1d", "-t", src)  # fmt: skip
    assert "Signatures generated:" in r.output and str(out) in r.output
    external_verify(out)
    # Re-sign the signed output: everything still valid is kept.
    out2 = tmp_path / "out2.signed"
    r = dnsseal("signzone", "-o", "example.com", "-K", kd, "-S", "-f", out2, "-3", "-", "-A",
                "-t", "-q", out)  # fmt: skip
    assert "Signatures generated:                          0" in r.output
    external_verify(out2)
    run_tool(["named-checkzone", "-q", "example.com", out2])
    run_tool(["ldns-read-zone", out2])


def test_signzone_cli_explicit_key_files_and_workers(dnsseal: Dnsseal, tmp_path: Path) -> None:
    from conftest import run_tool

    run_tool(["dnssec-keygen", "-q", "-K", tmp_path, "-a", "ED25519", "-f", "KSK", "example.com"])
    zsk = run_tool(["dnssec-keygen", "-q", "-K", tmp_path, "-a", "ED25519", "example.com"])
    ksk = next(p for p in tmp_path.glob("K*.key") if p.stem != zsk.stdout.strip())
    src = tmp_path / "zone"
    src.write_text(format_zone(zone_from()))
    dnsseal("signzone", "-o", "example.com", "-q", "-n", "2", "-x", src, ksk,
            tmp_path / f"{zsk.stdout.strip()}.key")  # fmt: skip
    external_verify(tmp_path / "zone.signed")


def test_rfc5011_revoked_ksk_with_its_successor(tmp_path: Path) -> None:
    now = clock.now()
    old_ksk = make_key(13, ksk=True, n=5).with_timings(KeyTimings(revoke=now - 60))
    new_ksk = make_key(13, ksk=True, n=6)
    keys = smart_select([old_ksk, new_ksk, make_key(13)], now)
    revoked = [k for k in keys if k.key.is_revoked]
    assert len(revoked) == 1 and revoked[0].publish and revoked[0].active
    signed = sign_zone(zone_from(), keys, SignParams(ksk_only=True), now).zone
    dnskey_sigs = {
        Rrsig.from_wire(w).key_tag for w in signed.rrsigs[signed.origin][T.DNSKEY].rdatas
    }
    assert revoked[0].key.tag in dnskey_sigs  # the revoked key signs the DNSKEY RRset
    path = write(signed, tmp_path / "z.signed")
    external_verify(path)
    assert verify_zone(signed, now) == []
