"""Full-zone signing: ``sign_zone(zone, signing_keys, params, now) -> SignedZone``.

Pure: the caller reads the zone and keys and writes the result.  The run is

1. apply the SOA serial policy and set the DNSKEY RRset from the published keys;
2. classify names (apex, authoritative, delegation, occluded) and rebuild the NSEC or NSEC3
   chain;
3. for every RRset that must be signed (all authoritative RRsets; at a delegation only DS and
   the chain; never glue or occluded data), keep each existing signature that verifies, is
   by a key that should sign it and is not due for refresh, and queue the missing ones;
4. stream the data to sign through a batch signer (see :data:`BatchSigner`, the plug point
   for worker processes) and assemble the result as the signatures come back.

Output is deterministic for deterministic algorithms: jitter is derived from the owner and
type, not from a random source.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time as _time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.name
import dns.rdatatype

from dnsseal.crypto.keystore import sign_function
from dnsseal.crypto.software import SignFunction
from dnsseal.errors import CryptoError, InputError
from dnsseal.keys.ds import dnskey_rdata_wire
from dnsseal.signer import denial
from dnsseal.signer.keysel import KEYSET_TYPES, SigningKey, assign
from dnsseal.signer.rrsig import Rrsig, absolute_time, labels_field
from dnsseal.signer.verify import BatchVerifier, verify_sequential
from dnsseal.zone import canonical
from dnsseal.zone.model import CHAIN_TYPES, Layout, NameKind, RRset, Soa, Zone, layout
from dnsseal.zone.text import paused_gc

log = logging.getLogger(__name__)
T = dns.rdatatype

DAY = 86400
_RR_HEAD = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH of an RR in signed data
_RRSIG_FIXED = struct.Struct("!HBBIIIH")  # RRSIG RDATA up to the signer's name
_Keepable = tuple[bytes, list[int], bool, bytes]
DEFAULT_BACKDATE = 3600  # dnssec-signzone's default start: one hour ago
DEFAULT_VALIDITY = 30 * DAY  # and end: start + 30 days
SERIAL_POLICIES = ("keep", "increment", "unixtime", "date")
NO_NSEC3_ALGORITHMS = frozenset({1, 3, 5, 6})  # algorithms 3/5 predate NSEC3 (RFC 5155 2)


class SignatureMemo(Protocol):
    """What :func:`sign_zone` needs of a record of trusted signatures (the command line's
    signature ledger, :class:`dnsseal.signfile.ledger.SignatureLedger`): ``digest`` keys a
    signature by the signing key (index in the run's key list), its RRSIG RDATA and the
    signed RRset's wire form; a digest in ``known`` is trusted without verifying it, and
    the digest of every signature of the result is appended to ``made``."""

    known: set[bytes]
    made: bytearray

    def digest(self, key_index: int, rrsig_rdata: bytes, rrset_wire: bytes) -> bytes: ...


class JobStream:
    """The data to sign, as ``(key index, data)`` pairs produced while they are consumed,
    with their number known in advance (for progress reports)."""

    __slots__ = ("_items", "_total")

    def __init__(self, items: Iterable[tuple[int, bytes]], total: int) -> None:
        self._items = items
        self._total = total

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return iter(self._items)

    def __len__(self) -> int:
        return self._total


# (keys, (key index, data to sign) pairs) -> the signatures in the same order.  A batch
# signer may read ahead, but should not hold the whole stream: it is built as it is read.
BatchSigner = Callable[[Sequence[SigningKey], JobStream], Iterable[bytes]]


def sign_sequential(
    keys: Sequence[SigningKey], jobs: Iterable[tuple[int, bytes]]
) -> Iterator[bytes]:
    """The default :data:`BatchSigner`: sign in this process, in order."""
    signers: dict[int, SignFunction] = {}
    for idx, data in jobs:
        s = signers.get(idx)
        if s is None:
            s = signers[idx] = sign_function(keys[idx].key)
        yield s(data)


@dataclass(frozen=True, slots=True)
class SignParams:
    """How to sign.  Times are seconds since the epoch.

    ``inception``/``expiration`` default to now-1h and inception+30d (dnssec-signzone).
    ``keyset_expiration`` is the expiration of the DNSKEY, CDS and CDNSKEY signatures
    (BIND's ``signatures-validity-dnskey``; default: ``expiration``).
    ``jitter`` subtracts up to that many seconds from each RRset's expiration.
    ``refresh``: an existing signature expiring within this many seconds of now is
    replaced (default: a quarter of the validity period, as dnssec-signzone ``-i``).
    ``nsec3``: sign with NSEC3 using those parameters, else NSEC.
    ``serial``: one of :data:`SERIAL_POLICIES`.  ``ksk_only`` is ``-x``,
    ``ignore_ksk_flag`` is ``-z``.  ``batch`` signs the queued data and ``verify_batch``
    checks existing signatures worth keeping (defaults: in this process).  ``ledger``:
    existing signatures in its ``known`` set are kept without verifying them, and the
    digests of every signature of the result are appended to its ``made`` (see
    :class:`SignatureMemo`).
    """

    inception: int | None = None
    expiration: int | None = None
    keyset_expiration: int | None = None
    jitter: int = 0
    refresh: int | None = None
    nsec3: denial.Nsec3Params | None = None
    serial: str = "keep"
    ksk_only: bool = False
    ignore_ksk_flag: bool = False
    dnskey_ttl: int | None = None
    batch: BatchSigner | None = field(default=None, compare=False)
    verify_batch: BatchVerifier | None = field(default=None, compare=False)
    ledger: SignatureMemo | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class SignStats:
    generated: int = 0
    retained: int = 0
    dropped: int = 0
    rrsets_signed: int = 0
    chain_records: int = 0
    by_key: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class SignedZone:
    """The signed zone (data, chain and RRSIGs) and what the run did."""

    zone: Zone
    stats: SignStats


def next_serial(old: int, policy: str, now: int) -> int:
    """The SOA serial after applying ``policy`` (RFC 1982 arithmetic; never goes back)."""
    if policy == "keep":
        return old
    if policy == "increment":
        candidate = old + 1
    elif policy == "unixtime":
        candidate = now
    elif policy == "date":
        candidate = int(_time.strftime("%Y%m%d", _time.gmtime(now))) * 100
    else:
        raise InputError(f"unknown serial policy {policy!r} (use {', '.join(SERIAL_POLICIES)})")
    candidate &= 0xFFFFFFFF
    diff = (candidate - old) & 0xFFFFFFFF
    if diff == 0 or diff >= 2**31:  # not newer: step by one
        candidate = (old + 1) & 0xFFFFFFFF
    return candidate or 1


def _jittered(expiration: int, jitter: int, owner: bytes, rtype: int) -> int:
    if jitter <= 0:
        return expiration
    h = hashlib.blake2b(owner + rtype.to_bytes(2, "big"), digest_size=8).digest()
    return expiration - int.from_bytes(h, "big") % (jitter + 1)


def _dnskey_rdata(key: SigningKey) -> bytes:
    return dnskey_rdata_wire(key.key)  # (no dnspython DNSKEY made: a name-free RDATA)


def check_keys(zone: Zone, keys: Sequence[SigningKey], params: SignParams) -> None:
    for k in keys:
        if k.active and not k.publish:
            raise InputError(
                f"key {k.key.basename} would sign but is not published: validators could not "
                "use its signatures"
            )
        if k.key.zone != zone.origin:  # (names compare case-insensitively)
            raise InputError(f"key {k.key.basename} is for zone {k.key.zone}, not {zone.origin}")
        if params.nsec3 is not None and k.active and k.key.algorithm in NO_NSEC3_ALGORITHMS:
            raise InputError(
                f"key {k.key.basename}: algorithm {k.key.algorithm} cannot be used with NSEC3 "
                "(RFC 5155 section 2)"
            )
    if not any(k.active for k in keys):
        raise InputError(f"{zone.origin}: no active key with a private part to sign with")


def prepare_zone(zone: Zone, keys: Sequence[SigningKey], params: SignParams, now: int) -> Zone:
    """The zone's data with serial, DNSKEY and NSEC3PARAM set and old chains removed.

    Nodes without chain records are shared with ``zone`` (RRsets and their dictionaries are
    never changed once built)."""
    soa = zone.soa()
    origin = zone.origin
    drop_keys = {_dnskey_rdata(k) for k in keys if not k.publish}
    old_dnskey = zone.get(origin, T.DNSKEY)
    rrsets: dict[dns.name.Name, Mapping[int, RRset]] = {}
    for name, node in zone.rrsets.items():
        if T.NSEC in node or T.NSEC3 in node or name == origin:
            kept = {t: r for t, r in node.items() if t not in CHAIN_TYPES}
            if name == origin:
                for t in (T.NSEC3PARAM, T.DNSKEY, T.SOA):
                    kept.pop(t, None)
            if kept or name == origin:
                rrsets[name] = kept
        else:
            rrsets[name] = node
    apex = rrsets[origin]
    assert isinstance(apex, dict)
    serial = next_serial(soa.serial, params.serial, now)
    new_soa = Soa(soa.mname, soa.rname, serial, soa.refresh, soa.retry, soa.expire,
                  soa.minimum, soa.ttl)  # fmt: skip
    apex[T.SOA] = RRset(origin, T.SOA, soa.ttl, (new_soa.rdata_wire(),))
    dnskeys = {_dnskey_rdata(k) for k in keys if k.publish}
    if old_dnskey is not None:
        dnskeys |= set(old_dnskey.rdatas) - drop_keys
    ttl = params.dnskey_ttl
    if ttl is None:
        key_ttls = [k.key.ttl for k in keys if k.publish and k.key.ttl is not None]
        ttl = old_dnskey.ttl if old_dnskey else (min(key_ttls) if key_ttls else soa.minimum)
    if dnskeys:
        apex[T.DNSKEY] = RRset(origin, T.DNSKEY, ttl, canonical.canonical_rdatas(dnskeys))
    if params.nsec3 is not None:
        apex[T.NSEC3PARAM] = RRset(origin, T.NSEC3PARAM, 0, (params.nsec3.param_rdata(),))
    return Zone(origin, rrsets, {}, zone.rdclass)


def validity(params: SignParams, now: int) -> tuple[int, int, int]:
    """(inception, expiration, refresh) of a run at ``now``; raises :class:`InputError` for a
    validity period that is empty, already over or too long for RRSIG times."""
    inception = params.inception if params.inception is not None else now - DEFAULT_BACKDATE
    expiration = (
        params.expiration if params.expiration is not None else inception + DEFAULT_VALIDITY
    )
    if expiration <= inception:
        raise InputError("signature expiration must be after inception")
    if expiration <= now:
        raise InputError("signature expiration is in the past")
    if expiration - min(inception, now) >= 2**31:
        raise InputError(
            "signature validity of 68 years or more cannot be expressed: RRSIG times are "
            "compared in 32-bit serial arithmetic (RFC 4034 section 3.1.5)"
        )
    if params.keyset_expiration is not None and params.keyset_expiration <= now:
        raise InputError("DNSKEY signature expiration is in the past")
    refresh = params.refresh if params.refresh is not None else (expiration - inception) // 4
    return inception, expiration, refresh


def keyset_expiration(params: SignParams, expiration: int) -> int:
    """The expiration of signatures over the key sets (DNSKEY, CDS, CDNSKEY)."""
    return expiration if params.keyset_expiration is None else params.keyset_expiration


def sign_zone(
    zone: Zone,
    signing_keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
    *,
    previous: Zone | None = None,
) -> SignedZone:
    """Sign ``zone`` with ``signing_keys`` at time ``now`` (seconds since the epoch).

    ``zone`` may already be signed: its valid signatures are kept when still due (smart
    re-sign), its chain is rebuilt.  Existing signatures are verified before they are
    kept, except over RRsets identical to those of ``previous``, a version this signer
    produced (incremental signing trusts its own output).  Returns the signed zone and
    statistics.  Raises
    :class:`InputError` for unusable input (no active key, a key for another zone, NSEC3
    with an algorithm that cannot do it, an NSEC3 hash collision) and
    :class:`~dnsseal.errors.CryptoError` / :class:`~dnsseal.errors.KeyNotFound` when a key
    cannot sign.
    """
    with paused_gc():  # no cycles here; collections over a big zone's heap cost half the time
        return _sign_zone(zone, signing_keys, params, now, previous)


def _sign_zone(
    zone: Zone,
    signing_keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
    previous: Zone | None,
) -> SignedZone:
    keys = list(signing_keys)
    data, lay, records, out_rrsets = stage_data(zone, keys, params, now)
    chain = [rrset for rrset, _ in records]
    to_sign = signable(data, lay.kinds)
    for rrset, owner in records:
        to_sign.append((rrset, owner, labels_field(rrset.name)))
    del records
    rrsets_signed = len(to_sign)
    done = sign_rrsets(to_sign, zone.rrsigs, keys, params, now, data.origin, data.rdclass,
                       previous=previous)  # fmt: skip
    dropped = sum(len(r.rdatas) for node in zone.rrsigs.values() for r in node.values())
    dropped -= done.retained
    stats = SignStats(
        generated=done.generated,
        retained=done.retained,
        dropped=dropped,
        rrsets_signed=rrsets_signed,
        chain_records=len(chain),
        by_key=tuple((keys[i].key.basename, n) for i, n in sorted(done.per_key.items())),
    )
    log.info("[%s] signed: %d new, %d kept, %d dropped signatures", data.origin,
             done.generated, done.retained, dropped)  # fmt: skip
    return SignedZone(Zone(data.origin, out_rrsets, done.sigs, data.rdclass), stats)


def stage_data(
    zone: Zone, keys: Sequence[SigningKey], params: SignParams, now: int
) -> tuple[Zone, Layout, list[tuple[RRset, bytes]], dict[dns.name.Name, Mapping[int, RRset]]]:
    """The first steps of :func:`sign_zone`: check the keys and times, set serial, DNSKEY
    and NSEC3PARAM (:func:`prepare_zone`), classify the names and build the chain.  Returns
    the data, its layout, the chain records (RRset, owner wire) and the data with the chain
    (owner -> type -> RRset).  Raises what :func:`sign_zone` raises for bad input."""
    check_keys(zone, keys, params)
    validity(params, now)  # bad times fail before any work
    data = prepare_zone(zone, keys, params, now)
    lay = layout(data)
    ttl = data.soa().negative_ttl
    records: list[tuple[RRset, bytes]]
    if params.nsec3 is not None:
        records = denial.nsec3_records(data, lay, params.nsec3, ttl)
    else:
        records = denial.nsec_records(data, lay, ttl)
    out_rrsets: dict[dns.name.Name, Mapping[int, RRset]] = dict(data.rrsets)
    for rrset, _ in records:
        old_node = out_rrsets.get(rrset.name)
        out_rrsets[rrset.name] = (
            {**old_node, rrset.rtype: rrset} if old_node else {rrset.rtype: rrset}
        )
    return data, lay, records, out_rrsets


def signable(data: Zone, kinds: Mapping[dns.name.Name, NameKind]) -> list[tuple[RRset, bytes, int]]:
    """The data RRsets of ``data`` that get signatures, as ``(RRset, owner's canonical wire,
    RRSIG labels field)``: every RRset of the apex and authoritative names, only DS at a
    delegation, nothing occluded (RFC 4035 2.2).  ``kinds`` classifies every owner."""
    # The bookkeeping of :func:`sign_rrsets` is keyed by owner wire, not by name:
    # dnspython's name hash collides for names that differ in digits (9*h + octet: "host10"
    # and "host09" hash alike), bytes hash well.
    to_sign: list[tuple[RRset, bytes, int]] = []
    for name, node in data.rrsets.items():
        kind = kinds[name]
        if kind is NameKind.OCCLUDED:
            continue
        owner, labels = canonical.name_wire(name), labels_field(name)
        for rtype, rrset in node.items():
            if kind is NameKind.DELEGATION and rtype != T.DS:
                continue
            to_sign.append((rrset, owner, labels))
    return to_sign


@dataclass(frozen=True, slots=True)
class SignedRRsets:
    """What :func:`sign_rrsets` made: the RRSIG RRsets by owner and covered type, and how
    many signatures were made and kept (``per_key``: made, by key index)."""

    sigs: dict[dns.name.Name, dict[int, RRset]]
    generated: int
    retained: int
    per_key: dict[int, int]


class RrsigHeads:
    """The RRSIG RDATA up to the signature (:meth:`Rrsig.head_wire`) that a run at ``now``
    gives an RRset for a key: validity from ``params`` (jitter derived from the owner and
    type), the keys' algorithm and tag, the zone ``origin`` as signer.  Cached: a zone's
    RRsets share a few heads.  Every path that signs for a run makes its heads here, so
    they agree byte for byte."""

    __slots__ = ("_cache", "_keys", "expiration", "inception", "jitter", "key_exp", "origin")

    def __init__(self, keys: Sequence[SigningKey], params: SignParams, now: int,
                 origin: dns.name.Name) -> None:  # fmt: skip
        self.inception, self.expiration, _ = validity(params, now)
        self.key_exp = keyset_expiration(params, self.expiration)
        self.jitter = params.jitter
        self.origin = origin
        self._keys = keys
        self._cache: dict[tuple[int, int, int, int, int], bytes] = {}

    def expiration_of(self, rtype: int, owner: bytes) -> int:
        """The expiration of the signatures over the RRset ``rtype`` at ``owner`` (wire)."""
        base = self.key_exp if rtype in KEYSET_TYPES else self.expiration
        return _jittered(base, self.jitter, owner, rtype) if self.jitter > 0 else base

    def head(self, rtype: int, labels: int, ttl: int, exp: int, idx: int) -> bytes:
        """The head of key ``idx``'s signature over an RRset of ``rtype`` with that labels
        field and TTL, expiring at ``exp`` (:meth:`expiration_of`)."""
        hkey = (rtype, labels, ttl, exp, idx)
        head = self._cache.get(hkey)
        if head is None:
            k = self._keys[idx].key
            rrsig = Rrsig(rtype, k.algorithm, labels, ttl, exp, self.inception, k.tag,
                          self.origin)  # fmt: skip
            head = self._cache[hkey] = rrsig.head_wire()
        return head


# What is left to sign of an RRset: (RRset, owner wire, labels field, RRset wire as signed,
# the indexes of the keys that sign it)
Todo = tuple[RRset, bytes, int, bytes, Sequence[int]]


@dataclass(slots=True)
class RrsetPlan:
    """What :func:`plan_rrsets` decided: the RRsets left to sign (``todo``, in the order of
    the input) and the signatures kept (``kept``: (owner wire, covered type) -> (owner, TTL,
    RRSIG RDATAs)), with the counts (``per_key``: signatures to make, by key index)."""

    todo: list[Todo]
    kept: dict[tuple[bytes, int], tuple[dns.name.Name, int, list[bytes]]]
    retained: int
    per_key: dict[int, int]


def plan_rrsets(
    to_sign: list[tuple[RRset, bytes, int]],
    old_sigs: Mapping[dns.name.Name, Mapping[int, RRset]],
    keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
    origin: dns.name.Name,
    rdclass: int,
    *,
    previous: Zone | None = None,
) -> RrsetPlan:
    """The decisions of :func:`sign_rrsets` before anything is signed (its arguments, the
    same rules): which existing signatures are kept (checked with ``params.verify_batch``
    unless taken on trust; their ledger digests are appended to ``params.ledger.made``) and
    which keys must sign what.  ``to_sign`` is consumed."""
    _, _, refresh = validity(params, now)
    who = assign(keys, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    # Key tags collide (RFC 4034 B.1): a tag may stand for several of our keys.
    by_id: dict[tuple[int, int], list[int]] = {}
    for i in sorted(set(who.keyset) | set(who.other)):
        by_id.setdefault((keys[i].key.algorithm, keys[i].key.tag), []).append(i)
    # (owner wire, covered type) -> (owner, TTL, RRSIG RDATAs)
    out_sigs: dict[tuple[bytes, int], tuple[dns.name.Name, int, list[bytes]]] = {}

    # Pass 1: which existing signatures could be kept, and which of those need checking.
    # keepable: (RRSIG wire, candidate key indexes, whether it must be checked first,
    # its ledger digest when computed)
    plans: list[tuple[RRset, bytes, int, bytes, tuple[int, ...], list[_Keepable]]] = []
    checks: list[tuple[int, bytes, bytes]] = []  # (key index, signature, signed data)
    check_ids: list[tuple[int, bytes, int]] = []  # (plan index, RRSIG wire, key index)
    origin_wire = canonical.name_wire(origin)
    head_len = _RRSIG_FIXED.size + len(origin_wire)  # RRSIG RDATA before the signature
    ledger = params.ledger
    no_keep: list[_Keepable] = []  # shared: nothing to keep
    todo: list[Todo] = []
    by_signers: dict[tuple[int, ...], int] = {}
    # No old signature at all (a zone signed for the first time): every RRset goes
    # straight to the signing queue, in the order pass 2 would have put it there.
    fresh = not old_sigs
    for pos, (rrset, owner, labels) in enumerate(to_sign):
        name = rrset.name
        rtype = rrset.rtype
        signers = who.keyset if rtype in KEYSET_TYPES else who.other
        rdatas = rrset.rdatas
        if len(rdatas) == 1:
            rd = rdatas[0]
            rrs_wire = owner + _RR_HEAD.pack(rtype, rdclass, rrset.ttl, len(rd)) + rd
        else:
            rrs_wire = canonical.rrset_wire(owner, rtype, rdclass, rrset.ttl, rdatas)
        if fresh:
            todo.append((rrset, owner, labels, rrs_wire, signers))
            by_signers[signers] = by_signers.get(signers, 0) + 1
            continue
        old_node = old_sigs.get(name)
        old = old_node.get(rtype) if old_node else None
        if old is None:
            plans.append((rrset, owner, labels, rrs_wire, signers, no_keep))
            continue
        before = previous.get(rrset.name, rrset.rtype) if previous is not None else None
        trusted = before is not None and before.ttl == rrset.ttl and before.rdatas == (rrset.rdatas)
        # Trusted signatures are exactly those of the previous version over the same data.
        own: tuple[bytes, ...] = ()
        if trusted and previous is not None:
            prev_sigs = previous.rrsigs.get(rrset.name)
            prev_sig = prev_sigs.get(rtype) if prev_sigs else None
            own = prev_sig.rdatas if prev_sig is not None else ()
        keepable: list[_Keepable] = []
        for sig_wire in old.rdatas if old is not None else ():
            # Canonical RRSIG RDATA holds the signer lower-cased: one prefix comparison.
            if len(sig_wire) < head_len or sig_wire[18:head_len] != origin_wire:
                continue
            _, alg, sig_labels, sig_ttl, sig_exp, sig_inc, tag = _RRSIG_FIXED.unpack_from(sig_wire)
            if (
                sig_labels != labels
                or sig_ttl != rrset.ttl
                or absolute_time(sig_inc, now) > now
                or absolute_time(sig_exp, now) - now <= refresh
            ):
                continue
            cands = [i for i in by_id.get((alg, tag), ()) if i in signers]
            if not cands:
                continue
            # Our own unchanged output needs no check, unless colliding tags leave the key open.
            must_check = len(cands) > 1 or sig_wire not in own
            digest = b""
            if must_check and ledger is not None and len(cands) == 1:
                digest = ledger.digest(cands[0], sig_wire, rrs_wire)
                must_check = digest not in ledger.known
            if must_check:
                signed = sig_wire[:head_len] + rrs_wire
                signature = sig_wire[head_len:]
                for i in cands:
                    checks.append((i, signature, signed))
                    check_ids.append((pos, sig_wire, i))
            keepable.append((sig_wire, cands, must_check, digest))
        plans.append((rrset, owner, labels, rrs_wire, signers, keepable))
    to_sign.clear()  # plans hold what pass 2 needs
    verify_batch = params.verify_batch or verify_sequential
    public = [(sk.key.algorithm, sk.key.public_key) for sk in keys]
    verdicts = verify_batch(public, checks) if checks else []
    good = {cid for cid, ok in zip(check_ids, verdicts, strict=True) if ok}

    # Pass 2: keep what holds; decide which keys must sign what.
    retained = 0
    per_key: dict[int, int] = {}
    plans.reverse()  # popped in order below: each plan freed once its todo entry exists
    for pos in range(len(plans)):
        rrset, owner, labels, rrs_wire, signers, keepable = plans.pop()
        if not keepable:
            todo.append((rrset, owner, labels, rrs_wire, signers))
            by_signers[signers] = by_signers.get(signers, 0) + 1
            continue
        done: set[int] = set()
        for sig_wire, cands, must_check, digest in keepable:
            usable = [
                i for i in cands if i not in done and (not must_check or (pos, sig_wire, i) in good)
            ]
            if usable:
                done.add(usable[0])
                out_sigs.setdefault((owner, rrset.rtype), (rrset.name, rrset.ttl, []))[2].append(
                    sig_wire
                )
                retained += 1
                if ledger is not None:
                    ledger.made += digest or ledger.digest(usable[0], sig_wire, rrs_wire)
        idxs = [i for i in signers if i not in done] if done else list(signers)
        if idxs:
            todo.append((rrset, owner, labels, rrs_wire, idxs))
            for idx in idxs:
                per_key[idx] = per_key.get(idx, 0) + 1
    del plans
    for signers, count in by_signers.items():
        for idx in signers:
            per_key[idx] = per_key.get(idx, 0) + count
    return RrsetPlan(todo, out_sigs, retained, per_key)


def sign_rrsets(
    to_sign: list[tuple[RRset, bytes, int]],
    old_sigs: Mapping[dns.name.Name, Mapping[int, RRset]],
    keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
    origin: dns.name.Name,
    rdclass: int,
    *,
    previous: Zone | None = None,
) -> SignedRRsets:
    """Sign the RRsets of ``to_sign`` (``(RRset, owner wire, labels field)``, see
    :func:`signable`; the list is consumed: it is empty on return), keeping each existing
    signature of ``old_sigs`` (owner -> covered type -> RRSIG RRset) that is by a key that
    should sign the RRset, not due for refresh and valid.  Validity is taken on trust for
    the previous version's own signatures over identical RRsets (``previous``) and for
    ledger hits (``params.ledger``); everything else is checked with ``params.verify_batch``.
    This is the one signing step of both the full run (:func:`sign_zone`) and the command
    line's re-sign of an edited file (:mod:`dnsseal.signfile.resign`); the decisions are
    :func:`plan_rrsets`'s."""
    plan = plan_rrsets(to_sign, old_sigs, keys, params, now, origin, rdclass,
                       previous=previous)  # fmt: skip
    todo, out_sigs, per_key = plan.todo, plan.kept, plan.per_key
    ledger = params.ledger
    generated = 0

    # Pass 3: stream the data to sign through the batch signer; signatures come back in
    # order while later data is still being built (bounded memory, overlapped work).
    # (rrset, owner wire, RRSIG head, RRset data, key index)
    pending: deque[tuple[RRset, bytes, bytes, bytes, int]] = deque()
    heads = RrsigHeads(keys, params, now, origin)

    def stream() -> Iterator[tuple[int, bytes]]:
        todo.reverse()
        while todo:  # consumed as streamed: the signed data is not held twice
            rrset, owner, labels, rrs_wire, idxs = todo.pop()
            exp = heads.expiration_of(rrset.rtype, owner)
            for idx in idxs:
                head = heads.head(rrset.rtype, labels, rrset.ttl, exp, idx)
                pending.append((rrset, owner, head, rrs_wire, idx))
                yield idx, head + rrs_wire

    total = sum(per_key.values())
    batch = params.batch or sign_sequential
    if total:
        current: RRset | None = None
        into: list[bytes] = []
        for signature in batch(keys, JobStream(stream(), total)):
            if not pending:
                raise CryptoError("batch signer returned more signatures than it was given")
            rrset, owner, head, rrs_wire, idx = pending.popleft()
            if rrset is not current:  # one RRset's signatures come back one after another
                current = rrset
                into = out_sigs.setdefault((owner, rrset.rtype), (rrset.name, rrset.ttl, []))[2]
            rrsig_rdata = head + signature
            into.append(rrsig_rdata)
            if ledger is not None:
                ledger.made += ledger.digest(idx, rrsig_rdata, rrs_wire)
            generated += 1
    if generated != total:
        raise CryptoError(f"batch signer returned {generated} signatures for {total}")
    by_owner: dict[bytes, tuple[dns.name.Name, dict[int, RRset]]] = {}
    for key in list(out_sigs):  # each entry freed as its RRset is made
        name, ttl, sig_rdatas = out_sigs.pop(key)
        sorted_rdatas = (
            (sig_rdatas[0],) if len(sig_rdatas) == 1 else canonical.canonical_rdatas(sig_rdatas)
        )
        entry = by_owner.get(key[0])
        if entry is None:
            entry = by_owner[key[0]] = (name, {})
        entry[1][key[1]] = RRset(name, T.RRSIG, ttl, sorted_rdatas)
    sig_nodes = dict(by_owner.values())
    del by_owner
    return SignedRRsets(sig_nodes, generated, plan.retained, per_key)
