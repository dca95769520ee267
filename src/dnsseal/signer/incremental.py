"""Incremental signing: ``sign_changes(signed, change, signing_keys, params, now)``.

Applies a change to the data of a zone this signer produced, re-signs what the change
touched (the changed RRsets, the SOA, the NSEC/NSEC3 records around changed names) and
returns the new version with the record-level difference, ready for IXFR.  Signatures over
RRsets that are byte-identical to the previous version are kept without verifying them
again: the previous version is trusted as our own output.
"""

from __future__ import annotations

import base64
import bisect
import struct
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dns.name
import dns.rdatatype

from dnsseal.errors import InputError
from dnsseal.signer.denial import hashed_owner, nsec3_hash
from dnsseal.signer.keysel import SigningKey, assign
from dnsseal.signer.quick import (
    _STRUCTURAL,
    _chain_matches,
    _signed_here,
    quick_sign_changes,
    sign_queue,
)
from dnsseal.signer.sign import (
    SignParams,
    SignStats,
    check_keys,
    keyset_expiration,
    prepare_zone,
    sign_zone,
    validity,
)
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import type_bitmap
from dnsseal.zone.diff import ZoneDiff, apply, diff, diff_at, touched
from dnsseal.zone.model import CHAIN_TYPES, OwnerName, RRset, Zone

T = dns.rdatatype
# The signer owns these; a change may not touch them.
SIGNER_TYPES = frozenset({T.RRSIG, T.NSEC, T.NSEC3, T.NSEC3PARAM})


@dataclass(frozen=True, slots=True)
class SignedChange:
    """The new signed version, what changed (data, chain and signatures), and run stats."""

    zone: Zone
    diff: ZoneDiff
    stats: SignStats


def sign_changes(
    signed: Zone,
    change: ZoneDiff,
    signing_keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
    *,
    fresh_until: int | None = None,
) -> SignedChange:
    """Apply ``change`` to ``signed`` and re-sign; see the module docstring.

    ``params.serial`` applies as in :func:`sign_zone` (a server uses ``increment``).
    ``fresh_until``: the caller vouches that ``signed`` is its own last output under these
    keys and that no signature in it is due for refresh before that time (a server's
    re-signing timer).  Before then, a change that adds or removes names is signed in
    O(change) by :func:`chain_sign_changes` instead of a pass over the whole zone (without
    it, the full path re-signs whatever is due, which needs that pass).
    Raises :class:`InputError` when the change touches records the signer maintains
    (RRSIG, NSEC, NSEC3, NSEC3PARAM), plus everything :func:`sign_zone` raises.
    """
    for name, rtype, _, _ in (*change.removed, *change.added):
        if rtype in SIGNER_TYPES:
            raise InputError(
                f"{name}: {dns.rdatatype.to_text(dns.rdatatype.RdataType(rtype))} records are "
                "maintained by the signer and cannot be changed directly"
            )
    quick = quick_sign_changes(signed, change, signing_keys, params, now)
    if quick is not None:
        return SignedChange(*quick)
    if fresh_until is not None and now < fresh_until:
        chained = chain_sign_changes(signed, change, signing_keys, params, now)
        if chained is not None:
            return chained
    return full_sign_changes(signed, change, signing_keys, params, now)


def full_sign_changes(
    signed: Zone,
    change: ZoneDiff,
    signing_keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
) -> SignedChange:
    """:func:`sign_changes` by re-signing the whole changed zone (kept signatures over
    unchanged RRsets are trusted) and comparing every record for the diff."""
    updated = apply(signed, change)
    result = sign_zone(updated, signing_keys, params, now, previous=signed)
    return SignedChange(result.zone, diff(signed, result.zone), result.stats)


# -- names added and removed: the chain fixed where it changes --------------------------


class _Index:
    """The sorted chain of one signed version: for NSEC the owners of NSEC records by
    canonical order, for NSEC3 the hashes (and the data names, to tell empty non-terminals)."""

    __slots__ = ("data", "nsec3", "order", "zone")

    def __init__(self, zone: Zone, nsec3: bool, order: list[Any], data: list[Any]) -> None:
        # weak: the index must not keep a version alive once the server moved past it (a
        # whole zone's worth of memory), nor a removed zone's last version at all
        self.zone = weakref.ref(zone)
        self.nsec3 = nsec3
        self.order = order  # NSEC: sort keys of chain owners; NSEC3: digests
        self.data = data  # NSEC3: sort keys of every data name (NSEC: unused)

    @classmethod
    def build(cls, zone: Zone, nsec3: bool) -> _Index:
        if not nsec3:
            keys = [canonical.sort_key(n) for n, node in zone.rrsets.items() if T.NSEC in node]
            keys.sort()
            return cls(zone, False, keys, [])
        digests = []
        data = []
        for name, node in zone.rrsets.items():
            if T.NSEC3 in node:
                digests.append(base64.b32hexdecode(name.labels[0].upper()))
            else:
                data.append(canonical.sort_key(name))
        digests.sort()
        data.sort()
        return cls(zone, True, digests, data)


# The index of the last version each zone signed here (one per origin): the next change
# to that version finds it instead of sorting the zone again.  Replaced, never mutated.
_INDEXES: dict[dns.name.Name, _Index] = {}


def _remember(index: _Index, zone: Zone) -> None:
    """Keep ``index`` for ``zone``'s origin until that version is gone."""
    origin = zone.origin

    def gone(_: object) -> None:
        if _INDEXES.get(origin) is index:
            del _INDEXES[origin]

    index.zone = weakref.ref(zone, gone)
    _INDEXES[origin] = index


def _index_of(zone: Zone, nsec3: bool) -> _Index:
    got = _INDEXES.get(zone.origin)
    if got is not None and got.zone() is zone and got.nsec3 == nsec3:
        return got
    return _Index.build(zone, nsec3)


def _own(
    table: Mapping[dns.name.Name, Mapping[int, RRset]], fresh: bool
) -> dict[dns.name.Name, Mapping[int, RRset]]:
    """``table`` itself when ``fresh`` (a dict nothing else holds), else a copy."""
    if fresh and type(table) is dict:
        return table
    return dict(table)


def _under(key: tuple[bytes, ...], parent: tuple[bytes, ...]) -> bool:
    return len(key) > len(parent) and key[: len(parent)] == parent


def chain_sign_changes(
    signed: Zone,
    change: ZoneDiff,
    signing_keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
) -> SignedChange | None:
    """:func:`sign_changes` for changes that add or remove authoritative names below the
    apex or change the types they own (what the quick path does not take), in O(change):
    the NSEC/NSEC3 chain is fixed at the changed names and their predecessors, and only
    the changed RRsets, those chain records and the SOA are signed.  Signatures of every
    other RRset are kept as they are (their refresh is the maintenance timer's work).
    Returns None when the change needs the full path: the apex, zone cuts, DNAME, the key
    set or the chain's parameters change, a name is not authoritative, NSEC3 opt-out, or
    an empty non-terminal would appear or go under NSEC3."""
    keys = list(signing_keys)
    check_keys(signed, keys, params)
    origin = signed.origin
    nsec3 = params.nsec3
    if nsec3 is not None and nsec3.opt_out:
        return None
    if not _chain_matches(signed, params):
        return None
    names = touched(change)
    if any(r[1] in _STRUCTURAL for r in (*change.removed, *change.added)):
        return None
    chain_type = T.NSEC3 if nsec3 is not None else T.NSEC
    for name in names:
        if name == origin or not name.is_subdomain(origin) or not _signed_here(signed, name):
            return None
        if T.NSEC3 in signed.rrsets.get(name, {}):
            return None  # a record at an NSEC3 owner name: the full path says what it is
    inception, expiration, _ = validity(params, now)
    key_exp = keyset_expiration(params, expiration)
    old_apex = signed.rrsets[origin]
    prepared = prepare_zone(Zone(origin, {origin: old_apex}, {}, signed.rdclass), keys, params, now)
    apex = dict(prepared.rrsets[origin])
    for t in (T.DNSKEY, T.NSEC3PARAM):
        if apex.get(t) != old_apex.get(t):
            return None
    if T.NSEC in old_apex:
        apex[T.NSEC] = old_apex[T.NSEC]
    who = assign(keys, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    if not who.other:
        return None

    data = apply(signed, change)
    # apply's result is a fresh copy whose maps nothing else holds (unless the change was
    # empty): changed in place, not copied again (two copies of a 100k-name zone's maps)
    rrsets = _own(data.rrsets, data is not signed)
    rrsigs: dict[dns.name.Name, Mapping[int, RRset]] = _own(data.rrsigs, data is not signed)
    rrsets[origin] = apex
    ttl = signed.soa().negative_ttl
    index = _index_of(signed, nsec3 is not None)
    order = list(index.order)
    data_keys = list(index.data) if nsec3 is not None else []
    todo: list[RRset] = [apex[T.SOA]]
    chain_owners: set[dns.name.Name] = set()

    def chain_rrset(owner: dns.name.Name, rdata: bytes) -> None:
        rrset = RRset(owner, chain_type, ttl, (rdata,))
        node = dict(rrsets.get(owner, {}))
        if node.get(chain_type) == rrset:
            return
        node[chain_type] = rrset
        rrsets[owner] = node
        todo.append(rrset)
        chain_owners.add(owner)

    def drop_chain(owner: dns.name.Name) -> None:
        node = {t: r for t, r in rrsets.get(owner, {}).items() if t != chain_type}
        if node:
            rrsets[owner] = node
        else:
            rrsets.pop(owner, None)
        sigs = {t: r for t, r in rrsigs.get(owner, {}).items() if t != chain_type}
        if sigs:
            rrsigs[owner] = sigs
        else:
            rrsigs.pop(owner, None)
        chain_owners.add(owner)

    # The data at each changed name: sign what differs, drop signatures of what went.
    born: list[dns.name.Name] = []
    died: list[dns.name.Name] = []
    retyped: list[dns.name.Name] = []
    dropped = 0
    for name in sorted(names, key=canonical.sort_key):
        old_node = signed.rrsets.get(name, {})
        new_node = data.rrsets.get(name, {})
        old_types = {ot for ot in old_node if ot not in CHAIN_TYPES}
        new_types = {nt for nt in new_node if nt not in CHAIN_TYPES}
        sigs = dict(signed.rrsigs.get(name, {}))
        for gone in old_types - new_types:
            old_sig = sigs.pop(gone, None)
            dropped += len(old_sig.rdatas) if old_sig is not None else 0
        for kept in new_types:
            if new_node[kept] != old_node.get(kept):
                todo.append(new_node[kept])
                old_sig = sigs.pop(kept, None)
                dropped += len(old_sig.rdatas) if old_sig is not None else 0
        if sigs:
            rrsigs[name] = sigs
        else:
            rrsigs.pop(name, None)
        if old_types and not new_types:
            died.append(name)
        elif new_types and not old_types:
            born.append(name)
        elif old_types != new_types:
            retyped.append(name)
        if not new_types:
            rrsets.pop(name, None)  # (its NSEC went with its last data; NSEC3: below)

    def bitmap(name: dns.name.Name) -> bytes:
        node = rrsets[name]
        types = {t for t in node if t not in CHAIN_TYPES} | {T.RRSIG}
        return type_bitmap(types if nsec3 is not None else types | {T.NSEC})

    if nsec3 is None:
        affected: set[tuple[bytes, ...]] = set()
        for name in died:
            k = canonical.sort_key(name)
            i = bisect.bisect_left(order, k)
            if i == len(order) or order[i] != k:
                return None  # a data name without an NSEC: not ours
            del order[i]
            affected.add(order[i - 1])
            nsec_sig = signed.rrsigs.get(name, {}).get(T.NSEC)
            dropped += len(nsec_sig.rdatas) if nsec_sig is not None else 0
            rrsigs.pop(name, None)
            chain_owners.add(name)
        for name in born:
            k = canonical.sort_key(name)
            i = bisect.bisect_left(order, k)
            order.insert(i, k)
            affected.update((order[i - 1], k))
        for name in retyped:
            affected.add(canonical.sort_key(name))
        for k in sorted(affected):
            i = bisect.bisect_left(order, k)
            if i == len(order) or order[i] != k:
                continue  # removed again
            owner = _owner(k, rrsets)
            nxt = canonical.name_wire(_owner(order[(i + 1) % len(order)], rrsets))
            old = rrsets[owner].get(T.NSEC)
            if owner in names or old is None:
                tail = bitmap(owner)
            else:
                _, off = canonical.name_from_wire(old.rdatas[0])
                tail = old.rdatas[0][off:]
            chain_rrset(owner, nxt + tail)
        if T.NSEC in rrsets[origin]:
            apex[T.NSEC] = rrsets[origin][T.NSEC]
        rrsets[origin] = apex
    else:
        head = struct.pack("!BBHB", nsec3.algorithm, nsec3.flags, nsec3.iterations,
                           len(nsec3.salt)) + nsec3.salt  # fmt: skip

        def digest_of(name: dns.name.Name) -> bytes:
            return nsec3_hash(canonical.name_wire(name), nsec3.salt, nsec3.iterations)

        present = set()  # digests of the chain touched here and still in it
        for name in died:
            k = canonical.sort_key(name)
            i = bisect.bisect_left(data_keys, k)
            if i == len(data_keys) or data_keys[i] != k:
                return None
            del data_keys[i]
            if i < len(data_keys) and _under(data_keys[i], k):
                return None  # it stays as an empty non-terminal: the full path
            parent = k[:-1]
            if len(parent) > len(origin.labels) and not _has_data(parent, data_keys):
                j = bisect.bisect_right(data_keys, parent)
                if j == len(data_keys) or not _under(data_keys[j], parent):
                    return None  # an empty non-terminal above it goes: the full path
            d = digest_of(name)
            j = bisect.bisect_left(order, d)
            if j == len(order) or order[j] != d:
                return None
            del order[j]
            owner = hashed_owner(d, origin)
            old_sig = signed.rrsigs.get(owner, {}).get(T.NSEC3)
            dropped += len(old_sig.rdatas) if old_sig is not None else 0
            drop_chain(owner)
            present.add(order[j - 1])
        for name in born:
            k = canonical.sort_key(name)
            parent = k[:-1]
            if len(parent) > len(origin.labels) and not _has_data(parent, data_keys):
                pd = digest_of(_owner_from_key(parent))
                j = bisect.bisect_left(order, pd)
                if j == len(order) or order[j] != pd:
                    return None  # a new empty non-terminal: the full path
            bisect.insort(data_keys, k)
            d = digest_of(name)
            j = bisect.bisect_left(order, d)
            if j < len(order) and order[j] == d:
                return None  # hash collision: the full path raises it
            order.insert(j, d)
            present.update((d, order[j - 1]))
        by_digest = {digest_of(n): n for n in (*born, *retyped)}
        for d in sorted(present | set(by_digest)):
            j = bisect.bisect_left(order, d)
            if j == len(order) or order[j] != d:
                continue
            owner = hashed_owner(d, origin)
            nxt = order[(j + 1) % len(order)]
            target = by_digest.get(d)
            if target is not None:
                tail = bitmap(target)
            else:
                was = rrsets[owner][T.NSEC3].rdatas[0]
                at = 5 + was[4]
                tail = was[at + 1 + was[at] :]
            chain_rrset(owner, head + bytes((len(nxt),)) + nxt + tail)
        rrsets[origin] = apex

    # Sign the queue with the keys that sign the zone's data.
    made, per_key, generated = sign_queue(
        todo, keys, lambda rrset: who.other, origin, signed.rdclass,
        (inception, expiration, key_exp), params,
    )  # fmt: skip
    for (name, rtype), rdatas in made.items():
        rr = rrsets[name][rtype]
        node = dict(rrsigs.get(name, {}))
        old_sig = node.get(rtype)
        if old_sig is not None and name not in names:
            dropped += len(old_sig.rdatas)
        node[rtype] = RRset(rr.name, T.RRSIG, rr.ttl, canonical.canonical_rdatas(rdatas))
        rrsigs[name] = node
    new = Zone(origin, rrsets, rrsigs, signed.rdclass)
    _remember(_Index(new, nsec3 is not None, order, data_keys), new)
    stats = SignStats(
        generated=generated,
        retained=0,
        dropped=dropped,
        rrsets_signed=len(todo),
        chain_records=len(chain_owners),
        by_key=tuple((keys[i].key.basename, n) for i, n in sorted(per_key.items())),
    )
    return SignedChange(new, diff_at(signed, new, {origin, *names, *chain_owners}), stats)


def _owner(key: tuple[bytes, ...], rrsets: Mapping[dns.name.Name, Any]) -> dns.name.Name:
    """The owner name (as the zone holds it) for a sort key."""
    name = _owner_from_key(key)
    for held in (rrsets.get(name) or {}).values():
        return held.name  # type: ignore[no-any-return]
    return name


def _owner_from_key(key: tuple[bytes, ...]) -> dns.name.Name:
    return OwnerName.trusted(tuple(reversed(key)))


def _has_data(key: tuple[bytes, ...], data_keys: list[tuple[bytes, ...]]) -> bool:
    i = bisect.bisect_left(data_keys, key)
    return i < len(data_keys) and data_keys[i] == key
