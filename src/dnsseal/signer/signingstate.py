"""BIND's signing-state records: the private type TYPE65534 at the zone apex.

BIND (9.18, ``sig-signing-type`` 65534) keeps, at the apex of a zone it signs, one record
per signing operation, with TTL 0 and a 5-byte RDATA: the key's algorithm, its key id
(big-endian), a *removal* flag (1: the key's signatures are being removed) and a *complete*
flag (1: the operation has finished).  ``rndc signing -list`` prints one line per record
and ``rndc signing -clear`` deletes completed ones.  What BIND does with them, and what a
signer that commits each version fully signed does the same way (:func:`next_states`):

* a key that starts signing the whole zone (the first signing, a key of an algorithm
  that did not sign the DNSKEY RRset before, or a full re-sign: ``rndc sign``) gets
  ``(alg, id, 0, 0)`` "Signing with key", replaced by ``(alg, id, 0, 1)`` "Done signing
  with key" when the zone is signed; BIND signs in batches, so the first record is served
  for a while; here the signing finishes inside the version, which carries the second;
* a ZSK that succeeds one of the same algorithm gets no record (BIND re-signs it in
  gradually, with no full signing pass);
* a key whose DNSKEY leaves the zone gets ``(alg, id, 1, 0)`` "Removing signatures for
  key", and once its signatures are gone every record of that key is deleted; here that
  happens in the version that drops the DNSKEY;
* BIND keeps completed records until ``rndc signing -clear`` (or the key leaves the
  zone).  dnsseal removes them when the signing they describe is done in the key
  manager's sense: once the key's signatures are omnipresent (every cache has had time to
  see them; ``settled`` in :func:`next_states`), in the first version made after that, so
  a record is always served for at least one version.  ``signing -clear`` removes them
  earlier.

(BIND 9.18's rndc refuses ``signing -list`` and ``-clear`` for a zone with a
dnssec-policy, "use rndc dnssec command instead", though the records are there and are
served; ``dnsseal ctl`` offers both.)

This module is pure: the record format and the transition from one version to the next.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from dnsseal.errors import UnsupportedAlgorithm
from dnsseal.keys import algorithms
from dnsseal.zone.diff import Record
from dnsseal.zone.model import RRset, Zone

PRIVATE_TYPE = 65534  # BIND's default sig-signing-type
TTL = 0  # BIND writes the records with TTL 0 (so no cache keeps them)
LENGTH = 5

KeyRef = tuple[int, int]  # (algorithm, key id)


@dataclass(frozen=True, slots=True)
class SigningState:
    """One signing-state record: ``algorithm`` and ``key_id`` of the key, whether the
    operation removes its signatures (``removal``) and whether it has finished
    (``complete``).  Raises ValueError for an algorithm or key id out of range."""

    algorithm: int
    key_id: int
    removal: bool = False
    complete: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.algorithm <= 255:
            raise ValueError(f"signing-state algorithm {self.algorithm} is not 0-255")
        if not 0 <= self.key_id <= 0xFFFF:
            raise ValueError(f"signing-state key id {self.key_id} is not 0-65535")

    @property
    def key(self) -> KeyRef:
        return (self.algorithm, self.key_id)

    @classmethod
    def from_wire(cls, wire: bytes) -> SigningState:
        """The record from its RDATA; raises ValueError unless it is 5 bytes (BIND's
        records of NSEC3 chain changes are longer and are not key records).  A flag byte
        other than 0 counts as set, as BIND reads it."""
        if len(wire) != LENGTH:
            raise ValueError(
                f"signing-state RDATA is {len(wire)} bytes, not {LENGTH} (not a key record)"
            )
        return cls(wire[0], int.from_bytes(wire[1:3], "big"), wire[3] != 0, wire[4] != 0)

    def to_wire(self) -> bytes:
        return bytes(
            (self.algorithm, self.key_id >> 8, self.key_id & 0xFF, self.removal, self.complete)
        )

    def to_text(self) -> str:
        """The record's RDATA in presentation form (RFC 3597 generic)."""
        return f"\\# {LENGTH} {self.to_wire().hex().upper()}"

    def describe(self) -> str:
        """The line ``rndc signing -list`` prints for this record."""
        alg = algorithms.ALGORITHMS.get(self.algorithm)
        key = f"key {self.key_id}/{alg.mnemonic if alg else self.algorithm}"
        return f"{_PHRASES[(self.removal, self.complete)]} {key}"


# (removal, complete) -> the words before "key ID/ALG" in rndc signing -list
_PHRASES = {
    (False, False): "Signing with",
    (False, True): "Done signing with",
    (True, False): "Removing signatures for",
    (True, True): "Done removing signatures for",
}


def parse_rdatas(rdatas: Iterable[bytes]) -> tuple[list[SigningState], list[bytes]]:
    """The key records among ``rdatas``, and the RDATA that are not key records."""
    states: list[SigningState] = []
    other: list[bytes] = []
    for wire in rdatas:
        if len(wire) == LENGTH:
            states.append(SigningState.from_wire(wire))
        else:
            other.append(wire)
    return states, other


def to_rdatas(states: Iterable[SigningState]) -> tuple[bytes, ...]:
    """The RDATA of ``states``, unique and in canonical order."""
    return tuple(sorted({s.to_wire() for s in states}))


def parse_selector(text: str) -> KeyRef | None:
    """``signing -clear`` argument: ``all`` (None) or ``KEYID/ALGORITHM`` (algorithm by
    number or mnemonic).  Raises ValueError naming what is wrong."""
    if text == "all":
        return None
    tag, sep, alg = text.partition("/")
    if not sep or not tag.isdigit() or not alg:
        raise ValueError(f"{text!r}: expected 'all' or KEYID/ALGORITHM (e.g. 12345/13)")
    if int(tag) > 0xFFFF:
        raise ValueError(f"{text!r}: key id {tag} is not 0-65535")
    if alg.isdigit():
        number = int(alg)
        if number > 255:
            raise ValueError(f"{text!r}: algorithm {alg} is not 0-255")
    else:
        try:
            number = algorithms.lookup(alg).number
        except UnsupportedAlgorithm:
            raise ValueError(f"{text!r}: unknown algorithm {alg!r}") from None
    return (number, int(tag))


def clear(states: Iterable[SigningState], which: KeyRef | None) -> tuple[SigningState, ...]:
    """``signing -clear``: ``states`` without the completed records (of key ``which``, or
    all completed ones when None).  Pending operations stay."""
    return tuple(s for s in states if not (s.complete and (which is None or s.key == which)))


def next_states(
    current: Iterable[SigningState],
    *,
    published: Collection[KeyRef],
    signing: Collection[KeyRef],
    signed_before: Collection[KeyRef],
    algorithms_before: Collection[int],
    full: bool = False,
    settled: Collection[KeyRef] = (),
) -> tuple[SigningState, ...]:
    """The records of the next version, which is signed completely before it is served.

    ``current``: the records of the version served now; ``published``: our keys in the
    next version's DNSKEY RRset; ``signing``: the keys that sign it; ``signed_before``: the
    keys with signatures in the version served now; ``algorithms_before``: the algorithms
    that signed its DNSKEY RRset; ``full``: every key signs every RRset anew (``sign``);
    ``settled``: the keys whose signatures are omnipresent (their signing is done: a
    completed record of theirs in ``current`` goes).

    Records of a key no longer published go (its signatures were removed: BIND deletes
    them all once that is done); a pending signing finishes; a key that signs the whole
    zone for the first time (a new algorithm, the first signing) or in a full re-sign
    gets "Done signing".  Everything else is kept as it is.
    """
    out: dict[tuple[int, int, bool], SigningState] = {}
    for s in current:
        if s.key not in published:
            continue
        if s.removal and not s.complete:
            continue  # the removal of a published key's signatures: none are left to remove
        if s.complete and not s.removal and s.key in settled:
            continue  # done: the key's signatures are in every cache
        # a pending signing finishes in this version
        out[(s.algorithm, s.key_id, s.removal)] = SigningState(
            s.algorithm, s.key_id, s.removal, complete=True
        )
    for alg, tag in signing:
        if full or ((alg, tag) not in signed_before and alg not in algorithms_before):
            out[(alg, tag, False)] = SigningState(alg, tag, complete=True)
    return tuple(sorted(out.values(), key=lambda s: s.to_wire()))


def states_of(zone: Zone) -> tuple[list[SigningState], list[bytes]]:
    """The signing-state records at the apex of ``zone`` (and RDATA that are not key
    records)."""
    rrset = zone.get(zone.origin, PRIVATE_TYPE)
    return parse_rdatas(rrset.rdatas if rrset is not None else ())


def keyset_algorithms(zone: Zone) -> set[int]:
    """The algorithms that sign the DNSKEY RRset of ``zone``."""
    sigs = zone.rrsigs.get(zone.origin, {}).get(dns.rdatatype.DNSKEY)
    return {wire[2] for wire in sigs.rdatas} if sigs is not None else set()


def signing_keys_of(zone: Zone) -> set[KeyRef]:
    """The keys (algorithm, key tag) with signatures in ``zone`` (reads every RRSIG)."""
    keys: set[KeyRef] = set()
    for node in zone.rrsigs.values():
        for rr in node.values():
            for wire in rr.rdatas:
                keys.add((wire[2], int.from_bytes(wire[16:18], "big")))
    return keys


def next_rrset(
    origin: dns.name.Name,
    previous: Zone | None,
    *,
    published: Collection[KeyRef],
    signing: Collection[KeyRef],
    full: bool = False,
    settled: Collection[KeyRef] = (),
) -> RRset | None:
    """The signing-state RRset at ``origin`` of the version after ``previous`` (None: the
    first version), per :func:`next_states`; None when it has no records.  RDATA that
    are not key records (BIND's NSEC3 chain records) are not ours and are dropped."""
    current: list[SigningState] = []
    before: set[KeyRef] = set()
    algs: set[int] = set()
    if previous is not None:
        current, _ = states_of(previous)
        algs = keyset_algorithms(previous)
        # Only a key of an algorithm new to the key set can start a signing pass: read
        # every signature of the zone only then.
        if any(alg not in algs for alg, _ in signing):
            before = signing_keys_of(previous)
    states = next_states(
        current,
        published=published,
        signing=signing,
        signed_before=before,
        algorithms_before=algs,
        full=full,
        settled=settled,
    )
    return RRset(origin, PRIVATE_TYPE, TTL, to_rdatas(states)) if states else None


def cleared_records(zone: Zone, which: KeyRef | None) -> list[Record]:
    """``signing -clear``: the records of ``zone`` to delete (the completed signing-state
    records of key ``which``, all completed ones when None)."""
    have = zone.get(zone.origin, PRIVATE_TYPE)
    if have is None:
        return []
    states, _ = parse_rdatas(have.rdatas)
    gone = set(to_rdatas(states)) - set(to_rdatas(clear(states, which)))
    return [(zone.origin, PRIVATE_TYPE, have.ttl, rd) for rd in have.rdatas if rd in gone]
