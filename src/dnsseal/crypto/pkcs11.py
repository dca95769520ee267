"""The PKCS#11 key store: keys made and kept in a token (an HSM, or SoftHSMv2 for tests).

The binding is python-pkcs11 (the ``pkcs11`` extra), imported when a PKCS#11 key or URI is
first used.  Private keys never leave the token: we find them by the RFC 7512 URI's
``object=`` (CKA_LABEL) and ``id=`` (CKA_ID), and ask the token to sign.  ECDSA and RSA data
is hashed here and the digest signed by the token (CKM_ECDSA, CKM_RSA_PKCS with a DigestInfo),
which every token supports (SoftHSM 2.6 has no CKM_ECDSA_SHA256); EdDSA signs the data
(CKM_EDDSA).  Modules, sessions, PINs and locking are in :mod:`dnsseal.crypto.pkcs11session`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from dnsseal.crypto import wire
from dnsseal.crypto.keystore import KeyStoreError
from dnsseal.crypto.pkcs11session import (
    LOCK,
    binding,
    module_path,
    read_pin,
    retrying,
    session,
    set_default_module,
    why,
)
from dnsseal.crypto.pkcs11uri import Pkcs11Uri
from dnsseal.crypto.software import SignFunction
from dnsseal.errors import CryptoError, KeyNotFound
from dnsseal.keys import algorithms
from dnsseal.keys.model import Key, PrivateMaterial

# For callers that configure the module or read PINs through this module.
__all__ = ["Pkcs11Store", "list_keys", "module_path", "read_pin", "set_default_module"]

log = logging.getLogger(__name__)

# DER of the curve OIDs (CKA_EC_PARAMS) and the key sizes, per algorithm.
_EC_PARAMS = {
    13: (b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", "sha256", 32),  # P-256
    14: (b"\x06\x05\x2b\x81\x04\x00\x22", "sha384", 48),  # P-384
}
_ED_PARAMS = {
    15: (b"\x06\x03\x2b\x65\x70", b"\x13\x0cedwards25519", 32),
    16: (b"\x06\x03\x2b\x65\x71", b"\x13\x0aedwards448", 57),
}
# PKCS#1 v1.5 DigestInfo prefixes (RFC 8017 9.2 note 1).
_DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


# ------------------------------------------------------------------------- key objects


def _object_filter(uri: Pkcs11Uri, object_class: Any) -> dict[Any, Any]:
    p11 = binding()
    attrs: dict[Any, Any] = {p11.Attribute.CLASS: object_class}
    if uri.object is not None:
        attrs[p11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[p11.Attribute.ID] = uri.id
    return attrs


def _attr(obj: Any, attribute: Any) -> Any:
    p11 = binding()
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, KeyError):
        return None


def find_private_key(sess: Any, uri: Pkcs11Uri) -> Any:
    """The one private key object ``uri`` selects (by ``object=`` and/or ``id=``)."""
    p11 = binding()
    if not uri.selects_object:
        raise KeyStoreError(f"{uri.redacted()}: say which key (object=LABEL or id=%..)")
    found = list(sess.get_objects(_object_filter(uri, p11.ObjectClass.PRIVATE_KEY)))
    if not found:
        raise KeyNotFound(f"no private key matches {uri.without_pin()} in the token")
    if len(found) > 1:
        raise KeyStoreError(
            f"{len(found)} private keys match {uri.without_pin()}: add id=... to the URI"
        )
    return found[0]


def _public_objects(sess: Any, priv: Any) -> Iterator[Any]:
    """The public key objects paired with ``priv`` (same CKA_ID, else same label)."""
    p11 = binding()
    key_id = _attr(priv, p11.Attribute.ID)
    label = _attr(priv, p11.Attribute.LABEL)
    attrs: dict[Any, Any] = {p11.Attribute.CLASS: p11.ObjectClass.PUBLIC_KEY}
    if key_id:
        attrs[p11.Attribute.ID] = key_id
    elif label:
        attrs[p11.Attribute.LABEL] = label
    else:
        return
    yield from sess.get_objects(attrs)


def _unwrap_octets(data: bytes, size: int) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING by the standard; some tokens give it bare."""
    if len(data) == size:
        return data
    if len(data) >= 2 and data[0] == 0x04:
        n, off = data[1], 2
        if n & 0x80:
            width = n & 0x7F
            n, off = int.from_bytes(data[2 : 2 + width], "big"), 2 + width
        if off + n == len(data):
            return data[off:]
    raise CryptoError(f"unexpected CKA_EC_POINT encoding ({len(data)} octets)")


def _public_from(obj: Any, alg: algorithms.Algorithm) -> bytes | None:
    """DNSKEY public key data from a key object's attributes, or None if it has none."""
    p11 = binding()
    if alg.family == "rsa":
        n = _attr(obj, p11.Attribute.MODULUS)
        e = _attr(obj, p11.Attribute.PUBLIC_EXPONENT)
        if not n or not e:
            return None
        return wire.rsa_public_wire(int.from_bytes(e, "big"), int.from_bytes(n, "big"))
    point = _attr(obj, p11.Attribute.EC_POINT)
    if not point:
        return None
    if alg.family == "ecdsa":
        raw = _unwrap_octets(point, 1 + 2 * _EC_PARAMS[alg.number][2])
        if raw[0] != 0x04:
            raise CryptoError("compressed EC points are not supported")
        return bytes(raw[1:])
    return bytes(_unwrap_octets(point, _ED_PARAMS[alg.number][2]))


def _check_type(priv: Any, alg: algorithms.Algorithm, uri: Pkcs11Uri) -> None:
    p11 = binding()
    key_type = _attr(priv, p11.Attribute.KEY_TYPE)
    want = {"rsa": p11.KeyType.RSA, "ecdsa": p11.KeyType.EC, "eddsa": p11.KeyType.EC_EDWARDS}
    if key_type is not None and key_type != want[alg.family]:
        raise CryptoError(
            f"{uri.without_pin()}: the token's key is {getattr(key_type, 'name', key_type)}, "
            f"not a key for {alg.mnemonic}"
        )
    params = _attr(priv, p11.Attribute.EC_PARAMS)
    if params is None or alg.family == "rsa":
        return
    ok = (
        params == _EC_PARAMS[alg.number][0]
        if alg.family == "ecdsa"
        else params in _ED_PARAMS[alg.number][:2]
    )
    if not ok:
        raise CryptoError(f"{uri.without_pin()}: the token's key is not on {alg.mnemonic}'s curve")


def public_key(sess: Any, priv: Any, alg: algorithms.Algorithm, uri: Pkcs11Uri) -> bytes:
    """The DNSKEY public key data of the token's key pair."""
    _check_type(priv, alg, uri)
    for obj in (*_public_objects(sess, priv), priv):
        data = _public_from(obj, alg)
        if data is not None:
            return data
    raise KeyStoreError(
        f"{uri.without_pin()}: the token has no public key for this private key "
        "(import the public key with the same id)"
    )


def _raw_signer(priv: Any, alg: algorithms.Algorithm) -> SignFunction:
    p11 = binding()
    sign = priv.sign
    if alg.family == "ecdsa":
        hash_name = _EC_PARAMS[alg.number][1]
        ecdsa = p11.Mechanism.ECDSA
        new = getattr(hashlib, hash_name)

        def ecdsa_sign(data: bytes) -> bytes:
            out: bytes = sign(new(data).digest(), mechanism=ecdsa)
            return out

        return ecdsa_sign
    if alg.family == "rsa":
        prefix = _DIGEST_INFO.get(alg.hash_name)
        if prefix is None:
            raise CryptoError(f"{alg.mnemonic}: not supported in PKCS#11 key stores")
        rsa = p11.Mechanism.RSA_PKCS
        new = getattr(hashlib, alg.hash_name)

        def rsa_sign(data: bytes) -> bytes:
            out: bytes = sign(prefix + new(data).digest(), mechanism=rsa)
            return out

        return rsa_sign
    eddsa = p11.Mechanism.EDDSA

    def eddsa_sign(data: bytes) -> bytes:
        out: bytes = sign(data, mechanism=eddsa)
        return out

    return eddsa_sign


def _guarded(function: SignFunction, what: str) -> SignFunction:
    p11 = binding()
    setup = LOCK

    def sign(data: bytes) -> bytes:
        try:
            # python-pkcs11 initialises modules without locking arguments (C_Initialize(NULL)),
            # which tells the module it will not be called from two threads at once.
            with setup["lock"]:
                return function(data)
        except p11.PKCS11Error as e:
            raise CryptoError(f"{what}: the token failed to sign: {why(e)}") from None

    return sign


# ---------------------------------------------------------------------------- the store


def _generate_template(alg: algorithms.Algorithm, bits: int | None) -> dict[str, Any]:
    p11 = binding()
    attr = p11.Attribute
    if alg.family == "rsa":
        size = bits or alg.default_bits
        if not alg.min_bits <= size <= alg.max_bits:
            raise CryptoError(f"{alg.mnemonic} key size must be {alg.min_bits}..{alg.max_bits}")
        return {"key_type": p11.KeyType.RSA, "key_length": size, "public_template": {}}
    if bits is not None and bits != alg.default_bits:
        raise CryptoError(f"{alg.mnemonic} keys have a fixed size ({alg.default_bits} bits)")
    if alg.family == "ecdsa":
        params = _EC_PARAMS[alg.number][0]
        return {"key_type": p11.KeyType.EC, "public_template": {attr.EC_PARAMS: params}}
    params = _ED_PARAMS[alg.number][0]
    return {"key_type": p11.KeyType.EC_EDWARDS, "public_template": {attr.EC_PARAMS: params}}


class Pkcs11Store:
    """Keys in the token an RFC 7512 URI names (see the module docstring)."""

    name = "pkcs11"

    def __init__(self, uri: Pkcs11Uri) -> None:
        self.uri = uri

    @classmethod
    def from_uri(cls, text: str) -> Pkcs11Store:
        return cls(Pkcs11Uri.parse(text))

    def describe(self) -> str:
        return f"pkcs11 {self.uri.redacted()}"

    def module(self) -> str:
        return module_path(self.uri)

    def session(self, *, rw: bool = False) -> Any:
        """A logged-in session on the store's token (tried again on transient failures)."""
        return retrying(self.uri, lambda: session(self.uri, rw=rw))

    def link(self, alg: algorithms.Algorithm) -> bytes:
        """The DNSKEY public key of the existing key pair the URI selects (for
        ``keyfromlabel``); checks that the key is of ``alg``'s type and curve."""
        p11 = binding()

        def attempt() -> bytes:
            sess = self.session()
            priv = find_private_key(sess, self.uri)
            return public_key(sess, priv, alg, self.uri)

        try:
            return retrying(self.uri, attempt)
        except p11.PKCS11Error as e:
            raise KeyStoreError(f"{self.uri.without_pin()}: {why(e)}") from None

    def generate(
        self, alg: algorithms.Algorithm, bits: int | None = None, *, label: str | None = None
    ) -> tuple[bytes, PrivateMaterial]:
        """A new key pair in the token, private key not extractable; returns the public key
        and a ``.private`` reference to it (the store's URI with ``object=`` and ``id=``)."""
        p11 = binding()
        attr = p11.Attribute
        spec = _generate_template(alg, bits)
        key_id = os.urandom(16)
        name = label or f"dnsseal-{key_id.hex()[:16]}"
        sess = self.session(rw=True)
        with LOCK["lock"]:
            try:
                _pub, priv = sess.generate_keypair(
                    spec["key_type"],
                    spec.get("key_length"),
                    id=key_id,
                    label=name,
                    store=True,
                    public_template={**spec["public_template"], attr.VERIFY: True},
                    private_template={
                        attr.SIGN: True,
                        attr.SENSITIVE: True,
                        attr.EXTRACTABLE: False,
                        attr.PRIVATE: True,
                    },
                )
                public = public_key(sess, priv, alg, self.uri)
            except p11.PKCS11Error as e:
                raise KeyStoreError(f"{self.describe()}: cannot generate a key: {why(e)}") from None
            finally:
                sess.close()
        ref = self.uri.replace(object=name, id=key_id, type=None)
        log.info("PKCS#11: generated %s key %s", alg.mnemonic, ref.without_pin())
        return public, PrivateMaterial.reference(ref.to_text())

    def destroy(self, material: PrivateMaterial) -> None:
        """Delete from the token (C_DestroyObject) the key pair that ``material``, a
        reference :meth:`generate` returned, names: its private key and the public key
        objects paired with it.  For a key made and then not used (its tag collides), so that
        no orphan stays in the token."""
        p11 = binding()
        if material.label is None:
            raise KeyStoreError("not a reference to a key in a token: nothing to destroy")
        uri = Pkcs11Uri.parse(material.label)
        sess = self.session(rw=True)
        with LOCK["lock"]:
            try:
                priv = find_private_key(sess, uri)
                for obj in (*_public_objects(sess, priv), priv):
                    obj.destroy()
            except p11.PKCS11Error as e:
                raise KeyStoreError(f"{uri.without_pin()}: cannot destroy: {why(e)}") from None
            finally:
                sess.close()
        log.info("PKCS#11: destroyed key %s", uri.without_pin())

    def sign_function(self, key: Key) -> SignFunction:
        """``data -> signature`` by the token's key that ``key``'s ``Label:`` names."""
        p11 = binding()
        label = key.private.label if key.private is not None else None
        uri = Pkcs11Uri.parse(label) if label else self.uri
        alg = algorithms.get(key.algorithm)

        def attempt() -> tuple[Any, bytes]:
            sess = session(uri)
            priv = find_private_key(sess, uri)
            return priv, public_key(sess, priv, alg, uri)

        try:
            priv, public = retrying(uri, attempt)
        except p11.PKCS11Error as e:
            raise KeyStoreError(f"{key.basename}: {why(e)}") from None
        if public != key.public_key:
            raise CryptoError(
                f"{key.basename}: the token's key {uri.without_pin()} does not match the "
                "public key in .key"
            )
        return _guarded(_raw_signer(priv, alg), key.basename)

    def session_signer(self, alg: algorithms.Algorithm) -> tuple[SignFunction, bytes, Any]:
        """A throw-away key pair in this process's session (not stored in the token), for
        ``keystore test`` / ``bench``: (sign, DNSKEY public key, private key object to
        destroy)."""
        p11 = binding()
        attr = p11.Attribute
        spec = _generate_template(alg, None)
        sess = self.session()
        try:
            with LOCK["lock"]:
                _pub, priv = sess.generate_keypair(
                    spec["key_type"],
                    spec.get("key_length"),
                    store=False,
                    public_template={**spec["public_template"], attr.VERIFY: True},
                    private_template={
                        attr.SIGN: True,
                        attr.SENSITIVE: True,
                        attr.EXTRACTABLE: False,
                    },
                )
                public = _public_from(_pub, alg)
        except p11.PKCS11Error as e:
            raise KeyStoreError(f"{alg.mnemonic}: cannot generate a session key: {why(e)}") from e
        if public is None:
            raise KeyStoreError(f"{alg.mnemonic}: the token gave no public key")
        return _guarded(_raw_signer(priv, alg), alg.mnemonic), public, (_pub, priv)


def list_keys(sess: Any) -> list[tuple[str, str, str]]:
    """(id as %XX, label, key type) of every private key in the token, for people."""
    p11 = binding()
    rows = []
    with LOCK["lock"]:
        for obj in sess.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY}):
            key_id = _attr(obj, p11.Attribute.ID) or b""
            label = _attr(obj, p11.Attribute.LABEL) or ""
            key_type = _attr(obj, p11.Attribute.KEY_TYPE)
            rows.append(
                (
                    "".join(f"%{b:02X}" for b in key_id) or "-",
                    label or "-",
                    getattr(key_type, "name", str(key_type)),
                )
            )
    return sorted(rows)
