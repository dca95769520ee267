"""Published test vectors: RFC 4034 s5.4, RFC 6605 s6, RFC 8080 s6 (with its erratum 4935).

Key tags, DS digests, private key -> public key derivation from BIND-format private keys,
and signatures: the RFC's ECDSA signatures verify, and Ed25519 (deterministic) signatures
come out byte for byte as published.
"""

from __future__ import annotations

import base64

import dns.name
import pytest

from dnsseal.crypto import software, wire
from dnsseal.keys import bindfmt
from dnsseal.keys.ds import make_ds
from dnsseal.keys.model import Key, PrivateMaterial, key_tag

RFC4034_KEY = (
    "AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMm"
    "mAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw=="
)

# (owner, flags, alg, public key, private key, tag, digest type, digest hex)
VECTORS = [
    pytest.param(
        "dskey.example.com.", 256, 5, RFC4034_KEY, None, 60485, 1,
        "2BB183AF5F22588179A53B0A98631FAD1A292118", id="rfc4034-rsasha1",
    ),
    pytest.param(
        "example.net.", 257, 13,
        "GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
        "GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=", 55648, 2,
        "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17", id="rfc6605-p256",
    ),
    pytest.param(
        "example.net.", 257, 14,
        "xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8"
        "/uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40",
        "WURgWHCcYIYUPWgeLmiPY2DJJk02vgrmTfitxgqcL4vwW7BOrbawVmVe0d9V94SR", 10771, 4,
        "72d7b62976ce06438e9c0bf319013cf801f09ecc84b8d7e9495f27e305c6a9b0563a9b5f4d288405c3008a94"
        "6df983d6", id="rfc6605-p384",
    ),
    pytest.param(
        "example.com.", 257, 15, "l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=",
        "ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=", 3613, 2,
        "3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b", id="rfc8080-ed25519-1",
    ),
    pytest.param(
        "example.com.", 257, 15, "zPnZ/QwEe7S8C5SPz2OfS5RR40ATk2/rYnE9xHIEijs=",
        "DSSF3o0s0f+ElWzj9E/Osxw8hLpk55chkmx0LYN5WiY=", 35217, 2,
        "401781b934e392de492ec77ae2e15d70f6575a1c0bc59c5275c04ebe80c6614c", id="rfc8080-ed25519-2",
    ),
]  # fmt: skip


def _key(owner: str, flags: int, alg: int, pub: str, priv: str | None) -> Key:
    material = PrivateMaterial((("PrivateKey", base64.b64decode(priv)),)) if priv else None
    return Key(
        zone=dns.name.from_text(owner),
        flags=flags,
        algorithm=alg,
        public_key=base64.b64decode(pub),
        private=material,
    )


@pytest.mark.parametrize(("owner", "flags", "alg", "pub", "priv", "tag", "dt", "digest"), VECTORS)
def test_key_tag_and_ds(
    owner: str, flags: int, alg: int, pub: str, priv: str | None, tag: int, dt: int, digest: str
) -> None:
    key = _key(owner, flags, alg, pub, priv)
    assert key.tag == tag
    ds = make_ds(key, dt)
    assert ds.digest.hex() == digest.lower()
    assert ds.rdata_text() == f"{tag} {alg} {dt} {digest.upper()}"


@pytest.mark.parametrize(
    ("owner", "flags", "alg", "pub", "priv", "tag", "dt", "digest"), VECTORS[1:]
)  # RFC 4034 publishes no private key
def test_private_key_derives_published_public_key(
    owner: str, flags: int, alg: int, pub: str, priv: str, tag: int, dt: int, digest: str
) -> None:
    # signer_for checks that the private key's public half equals the DNSKEY's key data.
    software.signer_for(_key(owner, flags, alg, pub, priv))
    wrong = _key(owner, flags, alg, pub, priv)
    other = software.generate(wrong.algorithm_info)[1]
    with pytest.raises(Exception, match="does not match"):
        software.signer_for(Key(wrong.zone, flags, alg, wrong.public_key, private=other))


def _rrsig_data(
    covered: int,
    alg: int,
    labels: int,
    ttl: int,
    exp: int,
    inc: int,
    tag: int,
    signer: str,
    rr_owner: str,
    rr_type: int,
    rdata: bytes,
) -> bytes:
    """RFC 4034 s3.1.8.1 signed data for a one-record RRset (built by hand for the test)."""
    signer_wire = dns.name.from_text(signer).to_digestable()
    owner_wire = dns.name.from_text(rr_owner).to_digestable()
    head = (
        covered.to_bytes(2, "big")
        + bytes([alg, labels])
        + ttl.to_bytes(4, "big")
        + exp.to_bytes(4, "big")
        + inc.to_bytes(4, "big")
        + tag.to_bytes(2, "big")
        + signer_wire
    )
    rr = owner_wire + rr_type.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big")
    return head + rr + len(rdata).to_bytes(2, "big") + rdata


MX_RDATA = b"\x00\x0a" + dns.name.from_text("mail.example.com.").to_digestable()


def test_rfc8080_ed25519_signatures_are_reproduced_exactly() -> None:
    # RFC 8080 s6.1 (erratum 4935): MX 10 mail.example.com. signed with both example keys.
    cases = [
        (VECTORS[3].values, "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23"
                            "mRZ9VrbpMngwcrqNAg=="),
        (VECTORS[4].values, "zXQ0bkYgQTEFyfLyi9QoiY6D8ZdYo4wyUhVioYZXFdT410QPRITQSqJSnzQoSm5poJ7g"
                            "D7AQR0O7KuI5k2pcBg=="),
    ]  # fmt: skip
    for values, expected in cases:
        owner, flags, alg, pub, priv, tag, _, _ = values
        key = _key(owner, flags, alg, pub, priv)
        data = _rrsig_data(15, 15, 2, 3600, 1440021600, 1438207200, tag, owner, owner, 15, MX_RDATA)
        sig = software.signer_for(key).sign(data)
        assert base64.b64encode(sig).decode() == expected
        assert wire.verify(15, wire.public_key_object(15, key.public_key), sig, data)
        assert not wire.verify(15, wire.public_key_object(15, key.public_key), sig, data + b"x")


@pytest.mark.parametrize(
    ("index", "alg", "exp", "inc", "sig"),
    [
        (1, 13, 1284026679, 1281607479,
         "qx6wLYqmh+l9oCKTN6qIc+bw6ya+KJ8oMz0YP107epXAyGmt+3SNruPFKG7tZoLBLlUzGGus7ZwmwWep666VCw=="),
        (2, 14, 1284027625, 1281608425,
         "/L5hDKIvGDyI1fcARX3z65qrmPsVz73QD1Mr5CEqOiLP95hxQouuroGCeZOvzFaxsT8Glr74hbavRKayJNuydCuz"
         "WTSSPdz7wnqXL5bdcJzusdnI0RSMROxxwGipWcJm"),
    ],
)  # fmt: skip
def test_rfc6605_signatures_verify(index: int, alg: int, exp: int, inc: int, sig: str) -> None:
    owner, flags, _, pub, priv, tag, _, _ = VECTORS[index].values
    key = _key(owner, flags, alg, pub, priv)
    data = _rrsig_data(
        1, alg, 3, 3600, exp, inc, tag, owner, "www.example.net.", 1, bytes([192, 0, 2, 1])
    )
    pk = wire.public_key_object(alg, key.public_key)
    assert wire.verify(alg, pk, base64.b64decode(sig), data)
    # Our own (deterministic) signature over the same data verifies too and is stable.
    ours = software.signer_for(key).sign(data)
    assert wire.verify(alg, pk, ours, data)
    assert software.signer_for(key).sign(data) == ours


def test_key_tag_counts_the_revoke_bit() -> None:
    owner, flags, alg, pub, priv, tag, _, _ = VECTORS[1].values
    key = _key(owner, flags, alg, pub, priv)
    assert key.revoked().tag == key_tag(flags | 0x80, 3, alg, key.public_key)
    assert key.revoked().tag != tag
    assert key.revoked().is_revoked


def test_bind_private_file_of_rfc_key_parses() -> None:
    text = (
        "Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\n"
        "PrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=\n"
    )
    priv = bindfmt.parse_private(text, "K.private")
    owner, flags, alg, pub, _, _, _, _ = VECTORS[1].values
    key = Key(dns.name.from_text(owner), flags, alg, base64.b64decode(pub), private=priv.material)
    software.signer_for(key)
