"""DNSSEC public key and signature wire formats (RFC 3110, RFC 6605, RFC 8080) to and from
cryptography's key objects.  Used for signing and for verification."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from dnsseal.errors import CryptoError, UnsupportedAlgorithm
from dnsseal.keys import algorithms

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
CURVES: dict[int, tuple[ec.EllipticCurve, int]] = {
    13: (ec.SECP256R1(), 32),
    14: (ec.SECP384R1(), 48),
}

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def rsa_public_wire(e: int, n: int) -> bytes:
    """RFC 3110 layout: exponent length, exponent, modulus."""
    eb = e.to_bytes((e.bit_length() + 7) // 8, "big")
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(eb) < 256:
        return bytes([len(eb)]) + eb + nb
    return b"\x00" + len(eb).to_bytes(2, "big") + eb + nb


def parse_rsa_public(data: bytes) -> tuple[int, int]:
    if not data:
        raise CryptoError("empty RSA public key")
    if data[0] == 0:
        if len(data) < 3:
            raise CryptoError("truncated RSA public key")
        elen = int.from_bytes(data[1:3], "big")
        off = 3
    else:
        elen = data[0]
        off = 1
    if len(data) < off + elen + 1:
        raise CryptoError("truncated RSA public key")
    e = int.from_bytes(data[off : off + elen], "big")
    n = int.from_bytes(data[off + elen :], "big")
    return e, n


def public_key_object(algorithm: int, data: bytes) -> Any:
    """A cryptography public key for DNSKEY key data; raises CryptoError if malformed."""
    alg = algorithms.get(algorithm)
    try:
        if alg.family == "rsa":
            e, n = parse_rsa_public(data)
            return rsa.RSAPublicNumbers(e, n).public_key()
        if alg.family == "ecdsa":
            curve, size = CURVES[algorithm]
            if len(data) != 2 * size:
                raise CryptoError(f"ECDSA public key is {len(data)} octets, expected {2 * size}")
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + data)
        if algorithm == 15:
            return ed25519.Ed25519PublicKey.from_public_bytes(data)
        return ed448.Ed448PublicKey.from_public_bytes(data)
    except CryptoError:
        raise
    except (ValueError, TypeError) as e:
        raise CryptoError(f"invalid {alg.mnemonic} public key: {e}") from None


def verify(algorithm: int, public_key: Any, signature: bytes, data: bytes) -> bool:
    """Check a DNSSEC signature (wire format) over ``data`` with a key from
    :func:`public_key_object`."""
    alg = algorithms.get(algorithm)
    try:
        if alg.family == "rsa":
            public_key.verify(signature, data, padding.PKCS1v15(), HASHES[alg.hash_name]())
        elif alg.family == "ecdsa":
            _, size = CURVES[algorithm]
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(HASHES[alg.hash_name]()))
        else:
            public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def ecdsa_wire_signature(der: bytes, size: int) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def check_supported(algorithm: int) -> None:
    if algorithm not in algorithms.ALGORITHMS:
        raise UnsupportedAlgorithm(f"DNSSEC algorithm {algorithm} is not supported")
