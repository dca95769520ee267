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

The file (version 2) is the digests, then the snapshot of the signed file's text that lets
a re-sign skip the unchanged parts of an edited file (:mod:`dnsseal.signfile.filesnapshot`), then
a MAC over both keyed by the run's keys (:func:`pack_ledger`).  Version 1 files (digests
only) are still read.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dnsseal.keys.model import Key
from dnsseal.signer.keysel import SigningKey

DIGEST_SIZE = 16
MAGIC = b"dnsseal-signature-ledger 1\n"
MAGIC2 = b"dnsseal-signature-ledger 2\n"
MAC_SIZE = 32
_COUNTS = struct.Struct("<II")  # digests, snapshot octets


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

    __slots__ = ("_keyed", "known", "made")

    def __init__(self, keys: Sequence[SigningKey], known: Iterable[bytes] = ()) -> None:
        # One keyed hash per key, copied for each entry: a copy skips the compression of
        # the key block that a new keyed hash does (a third of an entry's cost).
        self._keyed = [
            hashlib.blake2b(digest_size=DIGEST_SIZE, key=key_secret(k.key)) for k in keys
        ]
        self.known: set[bytes] = set(known)
        self.made = bytearray()

    def digest(self, key_index: int, rrsig_rdata: bytes, rrset_wire: bytes) -> bytes:
        """The entry for a signature (full RRSIG RDATA) by key ``key_index`` over the RRset
        whose canonical wire form (as signed) is ``rrset_wire``."""
        h = self._keyed[key_index].copy()
        h.update(rrsig_rdata)
        h.update(rrset_wire)
        return h.digest()

    def to_bytes(self) -> bytes:
        """The ledger of this run's output, as stored."""
        return MAGIC + bytes(self.made)

    def made_digests(self) -> set[bytes]:
        """The entries of this run's output."""
        return parse_ledger(self.to_bytes()) or set()


def parse_ledger(data: bytes) -> set[bytes] | None:
    """The digests of a stored ledger (version 1 or 2), or None when ``data`` is not one
    (the caller then trusts nothing from it).  Each entry is keyed on its own, so a version
    2 file's entries are usable whether or not its MAC fits this run's keys."""
    if data.startswith(MAGIC2):
        got = unpack_ledger(data)
        return digest_set(got.digests) if got is not None else None
    if not data.startswith(MAGIC) or (len(data) - len(MAGIC)) % DIGEST_SIZE:
        return None
    return digest_set(memoryview(data)[len(MAGIC) :])


def digest_set(packed: bytes | memoryview) -> set[bytes]:
    """The entries of packed digests (16 octets each)."""
    body = memoryview(packed)
    return {bytes(body[i : i + DIGEST_SIZE]) for i in range(0, len(body), DIGEST_SIZE)}


@dataclass(frozen=True, slots=True)
class LedgerFile:
    """A version 2 ledger file: packed ``digests``, the ``snapshot`` (empty when none),
    and whether the MAC fits a key is :meth:`authentic`."""

    digests: memoryview
    snapshot: memoryview
    body: memoryview
    mac: bytes

    def authentic(self, key: bytes) -> bool:
        """Whether the file was written by a run with the keys and options ``key`` stands
        for (see :func:`dnsseal.signfile.filesnapshot.mac_key`) and is undamaged."""
        want = hmac.new(key, self.body, "sha256").digest()
        return hmac.compare_digest(want, self.mac)


def pack_ledger(digests: bytes | bytearray, snapshot: bytes, key: bytes) -> list[bytes]:
    """A version 2 ledger file, as pieces to write one after another (a large zone's
    snapshot is tens of megabytes: it is not copied into one buffer): the packed digests,
    the snapshot, and the MAC (HMAC-SHA256) keyed by ``key`` over both."""
    if len(digests) % DIGEST_SIZE:
        raise ValueError("packed digests must be 16 octets each")
    head = MAGIC2 + _COUNTS.pack(len(digests) // DIGEST_SIZE, len(snapshot))
    pieces = [head, bytes(digests), snapshot]
    mac = hmac.new(key, digestmod="sha256")  # SHA-256: the CPU computes it, 2.5x BLAKE2b here
    for piece in pieces:
        mac.update(piece)
    return [*pieces, mac.digest()]


def unpack_ledger(data: bytes) -> LedgerFile | None:
    """The parts of a version 2 ledger file, or None when ``data`` is not one."""
    if not data.startswith(MAGIC2) or len(data) < len(MAGIC2) + _COUNTS.size + MAC_SIZE:
        return None
    count, snap = _COUNTS.unpack_from(data, len(MAGIC2))
    start = len(MAGIC2) + _COUNTS.size
    end = start + count * DIGEST_SIZE
    if end + snap + MAC_SIZE != len(data):
        return None
    view = memoryview(data)
    return LedgerFile(view[start:end], view[end : end + snap], view[: end + snap],
                      bytes(view[end + snap :]))  # fmt: skip
