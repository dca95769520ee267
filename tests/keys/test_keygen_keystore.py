"""``dnsseal keygen`` making keys in a PKCS#11 token (SoftHSMv2): ``--key-store URI``, and
BIND 9.20's ``-k policy -l file`` taking the key-store of the policy's key line.  The signed
zone is checked by dnssec-verify and ldns-verify-zone; the token lists the new keys."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from .test_pkcs11 import ZONE, Token, _signer_tags, _tag, _verify, _zone, token

__all__ = ["token"]  # the module-scoped SoftHSM token fixture

pytestmark = pytest.mark.interop


def _label(keys: Path, base: str) -> str:
    for line in (keys / f"{base}.private").read_text().splitlines():
        if line.startswith("Label:"):
            return base64.b64decode(line.split()[1]).rstrip(b"\0").decode()
    raise AssertionError(f"{base}.private has no Label:")


def test_keygen_key_store_and_policy_key_store(token: Token, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    ksk = token.dnsseal("keygen", "-K", keys, "-a", "ECDSAP384SHA384", "-f", "KSK",
                        "--key-store", token.uri(), ZONE).stdout.strip()  # fmt: skip
    assert _label(keys, ksk).startswith("pkcs11:token=dnsseal-test;object=dnsseal-")
    # BIND 9.20 style: the policy's zsk line says where (and what) to make.
    (tmp_path / "pol.toml").write_text(
        f"""[policy.hsm]
keys = [
  {{ role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP384SHA384" }},
  {{ role = "zsk", lifetime = "30d", algorithm = "ECDSAP384SHA384", key-store = "{token.uri()}" }},
]
"""
    )
    # dnssec-keygen 9.18 -k makes one key per key line (checked against it): the ksk line's
    # key in the files, the zsk line's in the token.
    made = token.dnsseal("keygen", "-K", keys, "-k", "hsm", "-l", tmp_path / "pol.toml",
                         ZONE).stdout.split()  # fmt: skip
    assert len(made) == 2 and all(b.startswith(f"K{ZONE}+014+") for b in made), made
    (zsk,) = [b for b in made if " 256 " in (keys / f"{b}.key").read_text()]
    (policy_ksk,) = [b for b in made if " 257 " in (keys / f"{b}.key").read_text()]
    assert _label(keys, zsk).startswith("pkcs11:token=dnsseal-test;object=dnsseal-")
    assert "Label:" not in (keys / f"{policy_ksk}.private").read_text()
    listing = token.dnsseal("keystore", "list", token.uri()).stdout
    for base in (ksk, zsk):
        obj = _label(keys, base).split("object=")[1].split(";")[0].split("?")[0]
        assert obj in listing, (obj, listing)
    # Both keys sign in the token; BIND's and ldns's verifiers accept the zone.
    zone = _zone(tmp_path)
    token.dnsseal("signzone", "-S", "-K", keys, "-o", ZONE, zone)
    signed = tmp_path / "zone.db.signed"
    _verify(signed)
    assert {_tag(ksk), _tag(zsk)} <= _signer_tags(signed)
    # Without a key store the key stays in the file (no Label:), as before.
    soft = token.dnsseal("keygen", "-K", keys, ZONE).stdout.strip()
    assert "Label:" not in (keys / f"{soft}.private").read_text()


def test_keygen_key_store_errors_are_one_line(token: Token, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    r = token.dnsseal("keygen", "-K", keys, "--key-store", "bogus:x", ZONE, ok=False)
    assert r.returncode != 0 and "--key-store" in r.stderr and "unknown key store" in r.stderr
    r = token.dnsseal("keygen", "-K", keys, "-k", "default", "-l", token.uri(), ZONE, ok=False)
    assert "is the file defining the -k policy" in r.stderr, r.stderr
    r = token.dnsseal("keygen", "-K", keys, "-k", "default", "-f", "KSK", ZONE, ok=False)
    assert "-f" in r.stderr and "cannot be used with -k" in r.stderr, r.stderr  # as BIND
    r = token.dnsseal("keygen", "-K", keys, "-k", "nope", ZONE, ok=False)
    assert "-k: no policy named 'nope'" in r.stderr, r.stderr
    wrong = token.uri().replace("token=dnsseal-test", "token=no-such-token")
    r = token.dnsseal("keygen", "-K", keys, "--key-store", wrong, ZONE, ok=False)
    assert "no-such-token" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(keys.iterdir()) == []
