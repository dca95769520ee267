"""The signature ledger: which signatures this signer made or checked, so that re-signing a
zone file can keep them without verifying each one again.

A kept signature normally costs an ECDSA verification (about three times the cost of
making it): that is what ``dnssec-signzone`` does for the signatures in its input.  Knot
skips the check only for nodes its server has in memory already verified
(``NODE_FLAGS_RRSIGS_VALID``), and dnsseal's library does the same with ``previous=``.
A command that starts from a file has no such memory, so it keeps a ledger next to the
signed file: one 16-octet digest per signature,

    BLAKE2b-128(key = secret of the signing key, RRSIG RDATA || signed RRset in canonical form)

The secret is derived from the key's private material, so an entry can only be made by
someone holding the private key, and it binds the exact signature, the exact RRset (owner,
type, class, TTL, RDATA) and the key.  A ledger hit therefore means "dnsseal made or
verified this signature over exactly this data with this key"; anything else (an edited
RRset, another key with the same tag, a damaged or foreign ledger) is a miss, and a miss is
verified as before.  Validity times are still checked for every kept signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from dnsseal.keys.model import Key
from dnsseal.signer.keysel import SigningKey

DIGEST_SIZE = 16
MAGIC = b"dnsseal-signature-ledger 1\n"


def key_secret(key: Key) -> bytes:
    """The ledger secret of ``key``: a digest of its algorithm, public key and private
    material (the public key alone when the private part is not available, e.g. a key in
    a hardware module; such entries prove integrity, not authorship)."""
    h = hashlib.blake2b(digest_size=32, person=b"dnsseal-ledger")
    h.update(bytes((key.algorithm,)) + len(key.public_key).to_bytes(2, "big") + key.public_key)
    if key.private is not None:
        for tag, value in key.private.fields:
            raw = tag.encode()
            h.update(len(raw).to_bytes(2, "big") + raw + len(value).to_bytes(2, "big") + value)
    return h.digest()


class SignatureLedger:
    """Digests of trusted signatures (``known``, from an earlier run) and of the signatures
    of this run's output (:attr:`made`, packed: 16 octets each, no object per signature),
    for the keys of one signing run (indexes as in the key list given to
    :func:`~dnsseal.signer.sign.sign_zone`)."""

    __slots__ = ("_secrets", "known", "made")

    def __init__(self, keys: Sequence[SigningKey], known: Iterable[bytes] = ()) -> None:
        self._secrets = [key_secret(k.key) for k in keys]
        self.known: set[bytes] = set(known)
        self.made = bytearray()

    def digest(self, key_index: int, rrsig_rdata: bytes, rrset_wire: bytes) -> bytes:
        """The entry for a signature (full RRSIG RDATA) by key ``key_index`` over the RRset
        whose canonical wire form (as signed) is ``rrset_wire``."""
        return hashlib.blake2b(
            rrsig_rdata + rrset_wire, digest_size=DIGEST_SIZE, key=self._secrets[key_index]
        ).digest()

    def to_bytes(self) -> bytes:
        """The ledger of this run's output, as stored."""
        return MAGIC + bytes(self.made)

    def made_digests(self) -> set[bytes]:
        """The entries of this run's output."""
        return parse_ledger(self.to_bytes()) or set()


def parse_ledger(data: bytes) -> set[bytes] | None:
    """The digests of a stored ledger, or None when ``data`` is not one (the caller then
    trusts nothing from it)."""
    if not data.startswith(MAGIC) or (len(data) - len(MAGIC)) % DIGEST_SIZE:
        return None
    body = memoryview(data)[len(MAGIC) :]
    return {bytes(body[i : i + DIGEST_SIZE]) for i in range(0, len(body), DIGEST_SIZE)}
