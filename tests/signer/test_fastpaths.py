"""The fast paths of the signing hot path give exactly what the careful paths give."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.crypto import software
from dnsseal.crypto.wire import ecdsa_wire_signature
from dnsseal.signer.fastsign import der_to_wire, sign_function

from .conftest import make_key


@pytest.mark.parametrize("alg", [13, 14, 15])
@given(data=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
@settings(max_examples=15, deadline=None)
def test_sign_function_matches_the_software_signer(alg: int, data: list[bytes]) -> None:
    key = make_key(alg)
    fast = sign_function(key)
    careful = software.signer_for(key)
    for d in data:
        assert fast(d) == careful.sign(d)


@given(st.binary(min_size=1, max_size=64))
@settings(max_examples=40, deadline=None)
def test_der_slicing_matches_the_der_decoder(data: bytes) -> None:
    for curve, size in ((ec.SECP256R1(), 32), (ec.SECP384R1(), 48)):
        key = ec.derive_private_key(int.from_bytes(data.rjust(8, b"\1")[:8], "big") + 1, curve)
        der = key.sign(data, ec.ECDSA(hashes.SHA256()))  # random k: all r/s lengths occur
        assert der_to_wire(der, size) == ecdsa_wire_signature(der, size)
