"""The software key store: keys generated and used with the cryptography package, stored as
BIND ``.private`` key material."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dnsseal.crypto.wire import CURVES, HASHES, rsa_public_wire
from dnsseal.errors import CryptoError, KeyNotFound
from dnsseal.keys import algorithms
from dnsseal.keys.model import Key, PrivateMaterial

_ED_SIZES = {15: 32, 16: 57}


def _ib(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def generate(alg: algorithms.Algorithm, bits: int | None = None) -> tuple[bytes, PrivateMaterial]:
    """A new key pair: (DNSKEY public key data, BIND private material)."""
    if alg.family == "rsa":
        size = bits or alg.default_bits
        if not alg.min_bits <= size <= alg.max_bits:
            raise CryptoError(
                f"{alg.mnemonic} key size must be {alg.min_bits}..{alg.max_bits} bits, not {size}"
            )
        priv = rsa.generate_private_key(public_exponent=65537, key_size=size)
        nums = priv.private_numbers()
        pub = nums.public_numbers
        fields = (
            ("Modulus", _ib(pub.n)),
            ("PublicExponent", _ib(pub.e)),
            ("PrivateExponent", _ib(nums.d)),
            ("Prime1", _ib(nums.p)),
            ("Prime2", _ib(nums.q)),
            ("Exponent1", _ib(nums.dmp1)),
            ("Exponent2", _ib(nums.dmq1)),
            ("Coefficient", _ib(nums.iqmp)),
        )
        return rsa_public_wire(pub.e, pub.n), PrivateMaterial(fields)
    if bits is not None and bits != alg.default_bits:
        raise CryptoError(f"{alg.mnemonic} keys have a fixed size ({alg.default_bits} bits)")
    if alg.family == "ecdsa":
        curve, size = CURVES[alg.number]
        eckey = ec.generate_private_key(curve)
        d = eckey.private_numbers().private_value.to_bytes(size, "big")
        point = eckey.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return point[1:], PrivateMaterial((("PrivateKey", d),))
    edkey: ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
    edkey = (
        ed25519.Ed25519PrivateKey.generate()
        if alg.number == 15
        else ed448.Ed448PrivateKey.generate()
    )
    raw = edkey.private_bytes_raw()
    return edkey.public_key().public_bytes_raw(), PrivateMaterial((("PrivateKey", raw),))


# data -> DNSSEC wire signature
SignFunction = Callable[[bytes], bytes]


def der_to_wire(der: bytes, size: int) -> bytes:
    """An ECDSA DER signature (SEQUENCE of INTEGER r, INTEGER s) as fixed-size ``r || s``
    (RFC 6605 4), by slicing; odd encodings go through the DER decoder."""
    if len(der) < 8 or der[0] != 0x30 or der[1] & 0x80 or der[2] != 0x02:
        r_int, s_int = decode_dss_signature(der)
        return r_int.to_bytes(size, "big") + s_int.to_bytes(size, "big")
    rlen = der[3]
    r = der[4 : 4 + rlen]
    if der[4 + rlen] != 0x02:
        raise ValueError("malformed ECDSA signature")
    s = der[6 + rlen : 6 + rlen + der[5 + rlen]]
    # INTEGERs are minimal and positive: one leading zero octet at most, or fewer octets.
    r = r[-size:] if len(r) > size else r.rjust(size, b"\0")
    s = s[-size:] if len(s) > size else s.rjust(size, b"\0")
    return r + s


def _prepared(algorithm: int, key: Any, size: int) -> SignFunction:
    """The signing function of one key with everything but the data fixed in advance (the
    padding, hash and deterministic ECDSA parameter objects): the signing hot path calls
    it hundreds of thousands of times."""
    alg = algorithms.get(algorithm)
    sign = key.sign
    if alg.family == "rsa":
        pad, digest = padding.PKCS1v15(), HASHES[alg.hash_name]()

        def rsa_sign(data: bytes) -> bytes:
            out: bytes = sign(data, pad, digest)
            return out

        return rsa_sign
    if alg.family == "ecdsa":
        params = ec.ECDSA(HASHES[alg.hash_name](), deterministic_signing=True)

        def ecdsa_sign(data: bytes) -> bytes:
            return der_to_wire(sign(data, params), size)

        return ecdsa_sign
    ed_sign: SignFunction = sign
    return ed_sign


@dataclass(slots=True)
class SoftwareSigner:
    """Signs data for one key.  ``sign`` returns the signature in DNSSEC wire format;
    :attr:`function` is the same as a plain function, prepared once (for hot loops and
    worker processes).

    ECDSA signatures are deterministic (RFC 6979), so signing the same data twice gives the
    same bytes.
    """

    algorithm: int
    _key: Any
    _size: int = 0
    function: SignFunction = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.function = _prepared(self.algorithm, self._key, self._size)

    def sign(self, data: bytes) -> bytes:
        return self.function(data)


def sign_function(key: Key) -> SignFunction:
    """``data -> DNSSEC wire signature`` for ``key`` (see :class:`SoftwareSigner`).  Raises
    what :func:`signer_for` raises."""
    return signer_for(key).function


def signer_for(key: Key) -> SoftwareSigner:
    """A signer for ``key`` from its private material.

    Raises :class:`KeyNotFound` when the private part is missing and :class:`CryptoError`
    when the material does not form a valid key matching the public key.
    """
    if key.private is None:
        raise KeyNotFound(f"{key.basename}: private key not available")
    mat = key.private
    alg = algorithms.get(key.algorithm)

    def need(tag: str) -> bytes:
        v = mat.get(tag)
        if v is None:
            raise CryptoError(f"{key.basename}.private: missing {tag}")
        return v

    def num(tag: str) -> int:
        return int.from_bytes(need(tag), "big")

    try:
        if alg.family == "rsa":
            pubn = rsa.RSAPublicNumbers(num("PublicExponent"), num("Modulus"))
            priv = rsa.RSAPrivateNumbers(
                p=num("Prime1"),
                q=num("Prime2"),
                d=num("PrivateExponent"),
                dmp1=num("Exponent1"),
                dmq1=num("Exponent2"),
                iqmp=num("Coefficient"),
                public_numbers=pubn,
            ).private_key()
            public = rsa_public_wire(pubn.e, pubn.n)
            signer = SoftwareSigner(key.algorithm, priv)
        elif alg.family == "ecdsa":
            curve, size = CURVES[key.algorithm]
            eck = ec.derive_private_key(num("PrivateKey"), curve)
            public = eck.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[
                1:
            ]
            signer = SoftwareSigner(key.algorithm, eck, size)
        else:
            raw = need("PrivateKey")
            if len(raw) != _ED_SIZES[key.algorithm]:
                raise CryptoError(f"{key.basename}.private: PrivateKey has the wrong length")
            edk: ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
            if key.algorithm == 15:
                edk = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
            else:
                edk = ed448.Ed448PrivateKey.from_private_bytes(raw)
            public = edk.public_key().public_bytes_raw()
            signer = SoftwareSigner(key.algorithm, edk)
    except (ValueError, TypeError) as e:
        raise CryptoError(f"{key.basename}.private: invalid key material: {e}") from None
    if public != key.public_key:
        raise CryptoError(f"{key.basename}: private key does not match the public key in .key")
    return signer


def sha(name: str, data: bytes) -> bytes:
    h = hashes.Hash(HASHES[name]())
    h.update(data)
    return h.finalize()
