"""Re-signing a small change to our own signed zone without a pass over the whole zone's
data: the path :func:`~dnsseal.signer.incremental.sign_changes` takes when it can.

It applies when the change only replaces records of existing, non-apex names without
changing which types those names own (so neither the zone's layout nor its NSEC/NSEC3
chain changes), the keys, DNSKEY RRset and chain parameters are the ones the zone was
signed with, and no kept signature is due for refresh.  Then only the changed RRsets and
the SOA are signed; everything else is shared with the previous version.  The result is
exactly what the full path (``sign_zone(..., previous=signed)`` and ``diff``) gives; a test
compares the two.  :func:`quick_sign_changes` returns None whenever it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import dns.name
import dns.rdatatype

from dnsseal.signer.denial import hashed_owner, nsec3_hash
from dnsseal.signer.keysel import KEYSET_TYPES, SigningKey, assign
from dnsseal.signer.rrsig import Rrsig, absolute_time, labels_field
from dnsseal.signer.sign import (
    JobStream,
    SignParams,
    SignStats,
    _jittered,
    check_keys,
    keyset_expiration,
    prepare_zone,
    sign_sequential,
    validity,
)
from dnsseal.zone import canonical
from dnsseal.zone.diff import ZoneDiff, diff_at
from dnsseal.zone.model import RRset, Zone

T = dns.rdatatype
# Types whose change may move a zone cut, the chain or the key set: the full path.
_STRUCTURAL = frozenset(
    {T.NS, T.DS, T.DNAME, T.SOA, T.DNSKEY, T.CDS, T.CDNSKEY, T.RRSIG, T.NSEC, T.NSEC3,
     T.NSEC3PARAM}
)  # fmt: skip
Node = Mapping[int, RRset]


def _changed_nodes(signed: Zone, change: ZoneDiff) -> dict[dns.name.Name, dict[int, RRset]] | None:
    """The new data nodes of the names ``change`` touches (apply() semantics), or None."""
    removed: dict[dns.name.Name, dict[int, set[bytes]]] = {}
    added: dict[dns.name.Name, dict[int, list[tuple[int, bytes]]]] = {}
    for name, rtype, _, rdata in change.removed:
        removed.setdefault(name.canonicalize(), {}).setdefault(rtype, set()).add(rdata)
    for name, rtype, ttl, rdata in change.added:
        added.setdefault(name.canonicalize(), {}).setdefault(rtype, []).append((ttl, rdata))
    out: dict[dns.name.Name, dict[int, RRset]] = {}
    for name in removed.keys() | added.keys():
        old_node = signed.rrsets.get(name)
        if old_node is None or name == signed.origin:
            return None
        node = dict(old_node)
        gone = removed.get(name, {})
        new = added.get(name, {})
        for rtype in gone.keys() | new.keys():
            if rtype in _STRUCTURAL:
                return None
            old = node.get(rtype)
            kept = set(old.rdatas) - gone.get(rtype, set()) if old is not None else set()
            ttls = [old.ttl] if old is not None and kept else []
            for ttl, rdata in new.get(rtype, ()):
                kept.add(rdata)
                ttls.append(ttl)
            if kept:
                node[rtype] = RRset(old.name if old else name, rtype, min(ttls),
                                    tuple(sorted(kept)))  # fmt: skip
            else:
                node.pop(rtype, None)
        if node.keys() != old_node.keys():
            return None  # the name's types change: its NSEC/NSEC3 bitmap too
        out[next(iter(old_node.values())).name] = node
    return out


def _signed_here(signed: Zone, name: dns.name.Name) -> bool:
    """Whether ``name``'s (non-DS) data is authoritative, as :func:`~dnsseal.zone.model.
    layout` decides: not at or below a zone cut, not below a DNAME."""
    origin = signed.origin
    depth = len(origin.labels)
    labels = name.labels
    if T.NS in signed.rrsets.get(name, {}):
        return False
    top = len(labels) - depth  # labels[top:] is the origin
    for i in range(1, top + 1):
        parent = signed.rrsets.get(dns.name.Name(labels[i:]), {})
        # A cut or DNAME strictly between the name and the apex occludes it; a DNAME at
        # the apex only its direct children (as layout() decides).
        if (i < top and (T.NS in parent or T.DNAME in parent)) or (i == 1 and T.DNAME in parent):
            return False
    return True


def _chain_matches(signed: Zone, params: SignParams) -> bool:
    apex = signed.rrsets[signed.origin]
    param = apex.get(T.NSEC3PARAM)
    if params.nsec3 is None:
        return param is None and T.NSEC in apex
    if param is None or param.rdatas != (params.nsec3.param_rdata(),):
        return False
    digest = nsec3_hash(canonical.name_wire(signed.origin), params.nsec3.salt,
                        params.nsec3.iterations)  # fmt: skip
    n3 = signed.rrsets.get(hashed_owner(digest, signed.origin), {}).get(T.NSEC3)
    return n3 is not None and n3.rdatas[0][1] == params.nsec3.flags


def quick_sign_changes(
    signed: Zone,
    change: ZoneDiff,
    signing_keys: Sequence[SigningKey],
    params: SignParams,
    now: int,
) -> tuple[Zone, ZoneDiff, SignStats] | None:
    """The new version, its diff and statistics, or None when the full path is needed."""
    keys = list(signing_keys)
    check_keys(signed, keys, params)
    inception, expiration, refresh = validity(params, now)
    key_exp = keyset_expiration(params, expiration)
    origin = signed.origin
    nodes = _changed_nodes(signed, change)
    if nodes is None or not _chain_matches(signed, params):
        return None
    old_apex = signed.rrsets[origin]
    prepared = prepare_zone(Zone(origin, {origin: old_apex}, {}, signed.rdclass), keys, params, now)
    apex = dict(prepared.rrsets[origin])
    for t in (T.DNSKEY, T.NSEC3PARAM):
        if apex.get(t) != old_apex.get(t):
            return None
    for t in (T.NSEC, T.NSEC3):
        if t in old_apex:
            apex[t] = old_apex[t]
    nodes[origin] = apex

    who = assign(keys, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    ids = {i: (keys[i].key.algorithm, keys[i].key.tag) for i in (*who.keyset, *who.other)}
    if len(set(ids.values())) != len(ids):
        return None  # colliding key tags: the full path checks which key made a signature
    expect = {
        True: {ids[i] for i in who.keyset},
        False: {ids[i] for i in who.other},
    }
    # Every kept signature must be by the keys that sign now and not due for refresh.
    times: dict[bytes, bool] = {}
    total = sig_sets = chain = 0
    for sig_node in signed.rrsigs.values():
        for covered, rr in sig_node.items():
            want = expect[covered in KEYSET_TYPES]
            if len(rr.rdatas) != len(want):
                return None
            got = set()
            for rd in rr.rdatas:
                when = rd[8:16]
                ok = times.get(when)
                if ok is None:
                    exp = absolute_time(int.from_bytes(rd[8:12], "big"), now)
                    inc = absolute_time(int.from_bytes(rd[12:16], "big"), now)
                    ok = times[when] = inc <= now and exp - now > refresh
                if not ok:
                    return None
                got.add((rd[2], int.from_bytes(rd[16:18], "big")))
            if got != want:
                return None
            total += len(rr.rdatas)
            sig_sets += 1
            chain += covered in (T.NSEC, T.NSEC3)

    # Sign what changed at the touched names (authoritative data only) and the SOA.
    sigs: dict[dns.name.Name, dict[int, RRset]] = {}
    todo: list[RRset] = []
    dropped = 0
    for name, node in nodes.items():
        old_node = signed.rrsets.get(name, {})
        old_sigs = signed.rrsigs.get(name, {})
        if old_sigs:
            sigs[name] = dict(old_sigs)
        here = name == origin or _signed_here(signed, name)
        for rtype, rrset in node.items():
            if rrset == old_node.get(rtype):
                continue
            if not here:
                return None  # not expected: only authoritative names have signatures
            todo.append(rrset)
            dropped += len(old_sigs[rtype].rdatas) if rtype in old_sigs else 0
    made, per_key, generated = sign_queue(
        todo,
        keys,
        lambda rrset: who.keyset if rrset.rtype in KEYSET_TYPES else who.other,
        origin,
        signed.rdclass,
        (inception, expiration, key_exp),
        params,
    )
    for (name, rtype), rdatas in made.items():
        ttl = nodes[name][rtype].ttl
        sigs.setdefault(name, {})[rtype] = RRset(name, T.RRSIG, ttl,
                                                 canonical.canonical_rdatas(rdatas))  # fmt: skip

    rrsets = dict(signed.rrsets)
    rrsets.update(nodes)
    rrsigs: dict[dns.name.Name, Mapping[int, RRset]] = dict(signed.rrsigs)
    rrsigs.update(sigs)
    new = Zone(origin, rrsets, rrsigs, signed.rdclass)
    stats = SignStats(
        generated=generated,
        retained=total - dropped,
        dropped=dropped,
        rrsets_signed=sig_sets,
        chain_records=chain,
        by_key=tuple((keys[i].key.basename, n) for i, n in sorted(per_key.items())),
    )
    return new, diff_at(signed, new, nodes), stats


def sign_queue(
    todo: Sequence[RRset],
    keys: Sequence[SigningKey],
    signers: Callable[[RRset], Sequence[int]],
    origin: dns.name.Name,
    rdclass: int,
    times: tuple[int, int, int],
    params: SignParams,
) -> tuple[dict[tuple[dns.name.Name, int], list[bytes]], dict[int, int], int]:
    """Sign each RRset of ``todo`` with the keys ``signers(rrset)`` picks (indexes into
    ``keys``), through ``params.batch`` (or one by one).  ``times``: inception, expiration
    and the key set's expiration.  Returns the RRSIG RDATA per (owner, type), the count per
    key and the number of signatures made."""
    inception, expiration, key_exp = times
    per_key: dict[int, int] = {}
    pending: list[tuple[RRset, bytes]] = []

    def stream() -> Iterator[tuple[int, bytes]]:
        for rrset in todo:
            owner = canonical.name_wire(rrset.name)
            labels = labels_field(rrset.name)
            rrs_wire = canonical.rrset_wire(owner, rrset.rtype, rdclass, rrset.ttl,
                                            rrset.rdatas)  # fmt: skip
            base = key_exp if rrset.rtype in KEYSET_TYPES else expiration
            exp = _jittered(base, params.jitter, owner, rrset.rtype)
            for idx in signers(rrset):
                k = keys[idx].key
                head = Rrsig(rrset.rtype, k.algorithm, labels, rrset.ttl, exp, inception, k.tag,
                             origin).head_wire()  # fmt: skip
                per_key[idx] = per_key.get(idx, 0) + 1
                pending.append((rrset, head))
                yield idx, head + rrs_wire

    count = sum(len(signers(r)) for r in todo)
    batch = params.batch or sign_sequential
    signatures = list(batch(keys, JobStream(stream(), count))) if count else []
    made: dict[tuple[dns.name.Name, int], list[bytes]] = {}
    for (rrset, head), signature in zip(pending, signatures, strict=True):
        made.setdefault((rrset.name, rrset.rtype), []).append(head + signature)
    return made, per_key, len(signatures)
