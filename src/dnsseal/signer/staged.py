"""Signing a zone owner by owner: :func:`stage_zone` does everything of
:func:`~dnsseal.signer.sign.sign_zone` that needs the whole zone (serial, DNSKEY, chain and,
when the zone holds signatures already, which of them are kept), and an
:class:`OwnerSigner` then signs the RRsets of any owner on its own, in any order and in any
process.  A caller that writes the signed zone can so sign it piece by piece as it writes
(worker processes each signing and formatting a range of owners:
:mod:`dnsseal.signfile.stream`), never holding all the signatures at once.

Same keys, times and input, same result as :func:`~dnsseal.signer.sign.sign_zone`: the
decisions are :func:`~dnsseal.signer.sign.plan_rrsets`'s, the RRSIG heads
:class:`~dnsseal.signer.sign.RrsigHeads`', and ECDSA and EdDSA signatures are
deterministic.  Pure: nothing here touches files or processes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from dnsseal.crypto.keystore import sign_function
from dnsseal.crypto.software import SignFunction
from dnsseal.signer.keysel import KEYSET_TYPES, SigningKey, assign
from dnsseal.signer.rrsig import labels_field
from dnsseal.signer.sign import (
    RrsigHeads,
    SignatureMemo,
    SignParams,
    SignStats,
    plan_rrsets,
    signable,
    stage_data,
)
from dnsseal.zone import canonical
from dnsseal.zone.model import CHAIN_TYPES, NameKind, RRset, Zone

T = dns.rdatatype
_RR_HEAD = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH of an RR in signed data
_EMPTY: Mapping[int, RRset] = {}


@dataclass(frozen=True, slots=True)
class StagedZone:
    """A zone ready to be signed owner by owner.  ``zone`` holds the data and the chain (no
    signatures); ``kinds`` classifies the data's owners (the chain's NSEC3 owners are not in
    it: they are authoritative).  ``todo`` and ``kept`` are None when the input held no
    signatures (every RRset that gets signatures is then signed by all the keys that sign
    it); otherwise ``todo`` maps (owner wire, type) to the keys that must sign that RRset
    and ``kept`` to the signatures kept over it.  The counts are for :meth:`stats`."""

    zone: Zone
    kinds: Mapping[dns.name.Name, NameKind]
    keys: Sequence[SigningKey]
    params: SignParams
    now: int
    keyset_signers: tuple[int, ...]
    other_signers: tuple[int, ...]
    todo: dict[tuple[bytes, int], Sequence[int]] | None
    kept: dict[tuple[bytes, int], list[bytes]] | None
    retained: int
    old_signatures: int
    chain_records: int

    def stats(self, generated: int, rrsets_signed: int, per_key: Mapping[int, int]) -> SignStats:
        """The statistics of the run, given what the owners' signing counted."""
        return SignStats(
            generated=generated,
            retained=self.retained,
            dropped=self.old_signatures - self.retained,
            rrsets_signed=rrsets_signed,
            chain_records=self.chain_records,
            by_key=tuple((self.keys[i].key.basename, n) for i, n in sorted(per_key.items())),
        )


def stage_zone(
    zone: Zone,
    signing_keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
    *,
    previous: Zone | None = None,
) -> StagedZone:
    """Stage ``zone`` for signing with ``signing_keys`` at ``now`` (the arguments and rules
    of :func:`~dnsseal.signer.sign.sign_zone`; existing signatures are checked here, with
    ``params.verify_batch``, and the ledger digests of those kept are appended to
    ``params.ledger.made``).  Raises what ``sign_zone`` raises."""
    keys = list(signing_keys)
    data, lay, records, out_rrsets = stage_data(zone, keys, params, now)
    who = assign(keys, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    old_signatures = sum(len(r.rdatas) for node in zone.rrsigs.values() for r in node.values())
    todo: dict[tuple[bytes, int], Sequence[int]] | None = None
    kept: dict[tuple[bytes, int], list[bytes]] | None = None
    retained = 0
    if zone.rrsigs:
        to_sign = signable(data, lay.kinds)
        for rrset, owner in records:
            to_sign.append((rrset, owner, labels_field(rrset.name)))
        plan = plan_rrsets(to_sign, zone.rrsigs, keys, params, now, data.origin, data.rdclass,
                           previous=previous)  # fmt: skip
        todo = {(owner, rrset.rtype): idxs for rrset, owner, _, _, idxs in plan.todo}
        kept = {key: sigs for key, (_, _, sigs) in plan.kept.items()}
        retained = plan.retained
    return StagedZone(Zone(data.origin, out_rrsets, {}, data.rdclass), lay.kinds, keys, params,
                      now, who.keyset, who.other, todo, kept, retained, old_signatures,
                      len(records))  # fmt: skip


class OwnerSigner:
    """Signs the owners of a :class:`StagedZone` one at a time (:meth:`sign_owner`),
    counting what it made; the ledger digests of the signatures it makes collect in
    :attr:`made` (when ``params.ledger`` is set).  Signing functions are made on first use,
    in the process that uses them."""

    __slots__ = ("_heads", "_ledger", "_signers", "generated", "made", "per_key",
                 "rrsets_signed", "staged")  # fmt: skip

    def __init__(self, staged: StagedZone) -> None:
        self.staged = staged
        self._heads = RrsigHeads(staged.keys, staged.params, staged.now, staged.zone.origin)
        self._ledger: SignatureMemo | None = staged.params.ledger
        self._signers: dict[int, SignFunction] = {}
        self.generated = 0
        self.rrsets_signed = 0
        self.per_key: dict[int, int] = {}
        self.made = bytearray()

    def _signer(self, idx: int) -> SignFunction:
        s = self._signers.get(idx)
        if s is None:
            s = self._signers[idx] = sign_function(self.staged.keys[idx].key)
        return s

    def sign_owner(self, name: dns.name.Name) -> tuple[Mapping[int, RRset], dict[int, RRset]]:
        """The RRsets of ``name`` (type -> RRset) and their signatures (covered type -> RRSIG
        RRset), as :func:`~dnsseal.signer.sign.sign_zone` would give them."""
        st = self.staged
        node = st.zone.rrsets.get(name, _EMPTY)
        kind = st.kinds.get(name, NameKind.AUTH)
        sigs: dict[int, RRset] = {}
        if kind is NameKind.OCCLUDED or not node:
            return node, sigs
        owner = canonical.name_wire(name)
        labels = labels_field(name)
        rdclass = st.zone.rdclass
        heads, ledger, todo, kept = self._heads, self._ledger, st.todo, st.kept
        for rtype, rrset in node.items():
            if kind is NameKind.DELEGATION and rtype != T.DS and rtype not in CHAIN_TYPES:
                continue
            self.rrsets_signed += 1
            if todo is None or kept is None:
                idxs: Sequence[int] = (
                    st.keyset_signers if rtype in KEYSET_TYPES else st.other_signers
                )
                rdatas: list[bytes] = []
            else:
                idxs = todo.get((owner, rtype), ())
                rdatas = list(kept.get((owner, rtype), ()))
            if idxs:
                ttl = rrset.ttl
                rds = rrset.rdatas
                if len(rds) == 1:
                    rd = rds[0]
                    rrs_wire = owner + _RR_HEAD.pack(rtype, rdclass, ttl, len(rd)) + rd
                else:
                    rrs_wire = canonical.rrset_wire(owner, rtype, rdclass, ttl, rds)
                exp = heads.expiration_of(rtype, owner)
                per_key, signers = self.per_key, self._signers
                for idx in idxs:
                    head = heads.head(rtype, labels, ttl, exp, idx)
                    sign = signers.get(idx) or self._signer(idx)
                    rrsig_rdata = head + sign(head + rrs_wire)
                    rdatas.append(rrsig_rdata)
                    if ledger is not None:
                        self.made += ledger.digest(idx, rrsig_rdata, rrs_wire)
                    per_key[idx] = per_key.get(idx, 0) + 1
                self.generated += len(idxs)
            if rdatas:
                sorted_rdatas = (
                    (rdatas[0],) if len(rdatas) == 1 else canonical.canonical_rdatas(rdatas)
                )
                sigs[rtype] = RRset(name, T.RRSIG, rrset.ttl, sorted_rdatas)
        return node, sigs
