"""DS and CDS digests of DNSKEYs (RFC 4034 s5.1.4, RFC 4509, RFC 6605)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import dns.name

from dnsseal.errors import InputError
from dnsseal.keys.model import Key


@dataclass(frozen=True, slots=True)
class DigestType:
    number: int
    mnemonic: str
    hashlib_name: str
    deprecated: bool = False


DIGEST_TYPES: dict[int, DigestType] = {
    d.number: d
    for d in (
        DigestType(1, "SHA-1", "sha1", deprecated=True),
        DigestType(2, "SHA-256", "sha256"),
        DigestType(4, "SHA-384", "sha384"),
    )
}


def digest_type(text: str) -> DigestType:
    """A digest type by number or name (``2``, ``SHA-256``, ``sha256``, ``SHA384``)."""
    t = text.strip().upper().replace("_", "-")
    if t.isdigit() and int(t) in DIGEST_TYPES:
        return DIGEST_TYPES[int(t)]
    for d in DIGEST_TYPES.values():
        if t in (d.mnemonic, d.mnemonic.replace("-", "")):
            return d
    names = ", ".join(d.mnemonic for d in DIGEST_TYPES.values())
    raise InputError(f"unknown DS digest type {text!r} (supported: {names})")


@dataclass(frozen=True, slots=True)
class DS:
    owner: dns.name.Name
    key_tag: int
    algorithm: int
    digest_type: int
    digest: bytes

    def rdata_text(self) -> str:
        return f"{self.key_tag} {self.algorithm} {self.digest_type} {self.digest.hex().upper()}"


def dnskey_rdata_wire(key: Key) -> bytes:
    return key.flags.to_bytes(2, "big") + bytes([key.protocol, key.algorithm]) + key.public_key


def make_ds(key: Key, digest: int = 2) -> DS:
    """The DS record of ``key`` with digest type ``digest``: H(owner | DNSKEY rdata)."""
    dt = DIGEST_TYPES.get(digest)
    if dt is None:
        raise InputError(f"unsupported DS digest type {digest}")
    owner_wire = key.zone.canonicalize().to_wire()
    assert owner_wire is not None
    h = hashlib.new(dt.hashlib_name, owner_wire + dnskey_rdata_wire(key)).digest()
    return DS(key.zone, key.tag, key.algorithm, dt.number, h)
