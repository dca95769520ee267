"""One signing function per key for the signing hot path.

:func:`sign_function` returns ``data -> DNSSEC wire signature``.  For ECDSA (RFC 6605) it
keeps one private key object and one deterministic (RFC 6979) ECDSA parameter object and
turns the DER signature into ``r || s`` by slicing, instead of going through the general
:class:`~dnsseal.crypto.software.SoftwareSigner` per call; other algorithms use that signer.
The result is byte-identical to :meth:`SoftwareSigner.sign` (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dnsseal.crypto import software
from dnsseal.crypto.wire import CURVES, HASHES
from dnsseal.keys import algorithms
from dnsseal.keys.model import Key

SignFunction = Callable[[bytes], bytes]


def der_to_wire(der: bytes, size: int) -> bytes:
    """An ECDSA DER signature (SEQUENCE of INTEGER r, INTEGER s) as fixed-size ``r || s``."""
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


def sign_function(key: Key) -> SignFunction:
    """``data -> signature`` for ``key``.  Raises what :func:`software.signer_for` raises
    (missing or mismatched private material)."""
    general = software.signer_for(key)  # checks the private key against the public key
    curve = CURVES.get(key.algorithm)
    material = key.private.get("PrivateKey") if key.private is not None else None
    if curve is None or material is None:
        return general.sign
    ec_curve, size = curve
    private = ec.derive_private_key(int.from_bytes(material, "big"), ec_curve)
    params = ec.ECDSA(HASHES[algorithms.get(key.algorithm).hash_name](), deterministic_signing=True)
    sign = private.sign

    def fast(data: bytes) -> bytes:
        return der_to_wire(sign(data, params), size)

    return fast
