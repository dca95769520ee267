"""The offline KSK's work: sign a Key Signing Request into a Signed Key Response, and check a
response (Knot's ``keymgr sign-ksr`` / ``validate-skr``, BIND 9.20's ``dnssec-ksr sign``).

Pure: bundles (:mod:`dnsseal.keys.ksr`), KSKs and times come in, bundles or findings go out.

For each request bundle (the ZSKs from its time until the next bundle's), the response has a
bundle at that time and then one every ``refresh`` seconds until the next request bundle (the
last request bundle gets one response bundle), as Knot makes them.  Each holds the DNSKEY RRset
(the request's ZSKs and the KSKs) and one RRSIG per KSK, valid from ``backdate`` seconds
before the bundle's time for ``validity`` seconds after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from dnsseal.crypto import wire
from dnsseal.crypto.keystore import sign_function
from dnsseal.crypto.software import SignFunction
from dnsseal.errors import InputError
from dnsseal.keys.ds import make_ds
from dnsseal.keys.ksr import Bundle, dnskey_rrset, zone_of
from dnsseal.keys.model import Key, KeyState, KeyTimings, key_tag
from dnsseal.policy.model import KeySpec, Policy
from dnsseal.signer.keysel import KEYSET_TYPES, SigningKey, smart_select
from dnsseal.signer.rrsig import Rrsig, labels_field, signed_data
from dnsseal.signer.sign import SignedZone, SignParams, sign_zone
from dnsseal.zone import canonical
from dnsseal.zone.model import RRset, Zone

DAY = 86400
T = dns.rdatatype


@dataclass(frozen=True, slots=True)
class SkrParams:
    """Knot's defaults: ``rrsig-lifetime`` 14 days, ``rrsig-refresh`` 7 days, inception 90
    minutes before the bundle's time.  ``cds``: digest types of CDS records for the KSKs
    put in every bundle (none by default), ``cdnskey``: CDNSKEY records too; both signed by
    the KSKs like the DNSKEY RRset (as BIND 9.20's ``dnssec-ksr sign`` does per policy)."""

    validity: int = 14 * DAY
    refresh: int = 7 * DAY
    backdate: int = 90 * 60
    cds: tuple[int, ...] = ()
    cdnskey: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.refresh < self.validity:
            raise InputError("the refresh interval must be positive and shorter than validity")


def sign_request(
    request: Sequence[Bundle],
    ksks: Sequence[Key],
    params: SkrParams = SkrParams(),
    signer: Callable[[Key], SignFunction] = sign_function,
) -> list[Bundle]:
    """The response to ``request`` signed by ``ksks`` (their private keys, in files or a key
    store, through ``signer``).  Raises :class:`InputError` when a KSK is not for the
    request's zone or a bundle has no DNSKEY records."""
    if not ksks:
        raise InputError("no KSK to sign with")
    zone = zone_of(list(request))
    for k in ksks:
        if k.zone != zone:
            raise InputError(f"{k.basename} is a key of {k.zone}, the request is for {zone}")
    signs = [signer(k) for k in ksks]
    out: list[Bundle] = []
    for i, b in enumerate(request):
        zsks = dnskey_rrset(b)
        if zsks is None:
            raise InputError(f"request bundle at {b.time} has no DNSKEY records")
        end = request[i + 1].time if i + 1 < len(request) else b.time + 1
        t = b.time
        while True:
            out.append(_response(zone, zsks, ksks, signs, t, params))
            t += params.refresh
            if t >= end:
                break
    return out


def _response(
    zone: dns.name.Name,
    zsks: dns.rrset.RRset,
    ksks: Sequence[Key],
    signs: Sequence[SignFunction],
    time: int,
    params: SkrParams,
) -> Bundle:
    ttl = zsks.ttl
    keyset = dns.rrset.RRset(zone, dns.rdataclass.IN, T.DNSKEY)
    for rd in zsks:
        keyset.add(rd, ttl)
    for k in ksks:
        keyset.add(k.dnskey(), ttl)
    rrsets = [keyset, sign_keyset(keyset, ksks, signs, time, params)]
    cds = dns.rrset.RRset(zone, dns.rdataclass.IN, T.CDS)
    cdnskey = dns.rrset.RRset(zone, dns.rdataclass.IN, T.CDNSKEY)
    for k in ksks:
        for digest in params.cds:
            cds.add(dns.rdata.from_text(dns.rdataclass.IN, T.CDS, make_ds(k, digest).rdata_text()),
                    ttl)  # fmt: skip
        if params.cdnskey:
            wire_rd = k.dnskey().to_digestable()
            cdnskey.add(dns.rdata.from_wire(dns.rdataclass.IN, T.CDNSKEY, wire_rd, 0,
                                            len(wire_rd)), ttl)  # fmt: skip
    for rr in (cds, cdnskey):
        if rr:
            rrsets += [rr, sign_keyset(rr, ksks, signs, time, params)]
    return Bundle(time, tuple(rrsets))


def sign_keyset(
    rrset: dns.rrset.RRset,
    ksks: Sequence[Key],
    signs: Sequence[SignFunction],
    time: int,
    params: SkrParams,
) -> dns.rrset.RRset:
    """The RRSIGs of ``ksks`` over the apex ``rrset`` (DNSKEY, CDS or CDNSKEY) for a
    response bundle at ``time``."""
    zone, ttl, rtype = rrset.name, rrset.ttl, rrset.rdtype
    rdatas = canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in rrset)
    owner = canonical.name_wire(zone)
    sigs = dns.rrset.RRset(zone, dns.rdataclass.IN, T.RRSIG, rtype)
    for k, sign in zip(ksks, signs, strict=True):
        head = Rrsig(
            rtype, k.algorithm, labels_field(zone), ttl,
            time + params.validity, time - params.backdate, k.tag, zone,
        )  # fmt: skip
        signature = sign(signed_data(head.head_wire(), owner, rtype, 1, ttl, rdatas))
        sigs.add(
            dns.rdtypes.ANY.RRSIG.RRSIG(
                dns.rdataclass.IN, T.RRSIG, rtype, k.algorithm, head.labels, ttl,
                head.expiration, head.inception, k.tag, zone, signature,
            ),  # type: ignore[no-untyped-call]
            ttl,
        )  # fmt: skip
    return sigs


def check_response(response: Sequence[Bundle]) -> list[str]:
    """Problems of a response, one sentence each (empty when it is good): every bundle has a
    DNSKEY RRset signed by a key in it with the SEP flag; that RRset and any CDS or CDNSKEY
    RRset have signatures that verify, are valid at the bundle's time and last until the
    next bundle's, and at least one per RRset."""
    problems: list[str] = []
    for i, b in enumerate(response):
        keyset = dnskey_rrset(b)
        if keyset is None or b.rrset(T.RRSIG, T.DNSKEY) is None:
            problems.append(f"bundle at {b.time}: no DNSKEY RRset or no RRSIG over it")
            continue
        until = response[i + 1].time if i + 1 < len(response) else b.time
        for rrset in b.rrsets:
            if rrset.rdtype in KEYSET_TYPES:
                problems += _check_sigs(b, rrset, keyset, until)
    return problems


def _check_sigs(
    b: Bundle, rrset: dns.rrset.RRset, keyset: dns.rrset.RRset, until: int
) -> list[str]:
    rtype = int(rrset.rdtype)
    what = f"bundle at {b.time}: {dns.rdatatype.to_text(rrset.rdtype)}"
    sigs = b.rrset(T.RRSIG, rtype)
    if sigs is None:
        return [f"{what} has no RRSIG"]
    rdatas = canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in rrset)
    owner = canonical.name_wire(rrset.name)
    problems: list[str] = []
    good = 0
    for sig in sigs:
        key = next(
            (
                k
                for k in keyset
                if k.algorithm == sig.algorithm
                and key_tag(k.flags, k.protocol, k.algorithm, k.key) == sig.key_tag
                and k.flags & 1
            ),
            None,
        )
        if key is None:
            problems.append(f"{what} RRSIG by {sig.key_tag}, no such KSK")
            continue
        head = Rrsig(
            rtype, int(sig.algorithm), sig.labels, sig.original_ttl, sig.expiration,
            sig.inception, sig.key_tag, sig.signer,
        )  # fmt: skip
        data = signed_data(head.head_wire(), owner, rtype, 1, sig.original_ttl, rdatas)
        pub = wire.public_key_object(int(key.algorithm), key.key)
        if not wire.verify(int(key.algorithm), pub, sig.signature, data):
            problems.append(f"{what} RRSIG by {sig.key_tag} does not verify")
        elif sig.inception > b.time or sig.expiration < until:
            problems.append(
                f"{what} RRSIG by {sig.key_tag} valid {sig.inception}.."
                f"{sig.expiration}, needed {b.time}..{until}"
            )
        else:
            good += 1
    if not good:
        problems.append(f"{what}: no valid KSK signature")
    return problems


def make_request(zsks: Sequence[Key], start: int, end: int, ttl: int) -> list[Bundle]:
    """The Key Signing Request for ``start``..``end``: a bundle at ``start``, at every time
    in between when a ZSK is published or deleted (its timing metadata), and at ``end``,
    each with the ZSKs published then (as Knot's ``keymgr generate-ksr``).  Raises
    :class:`InputError` when the period is empty or no ZSK is published at some bundle."""
    if end <= start:
        raise InputError("the request's end must be after its start")
    zsks = [k for k in zsks if not k.is_ksk]
    if not zsks:
        raise InputError("no ZSK to put in the request")
    zone = zsks[0].zone
    events = {start, end}
    for k in zsks:
        for t in (k.timings.publish, k.timings.delete):
            if t is not None and start < t < end:
                events.add(t)
    out: list[Bundle] = []
    for t in sorted(events):
        rr = dns.rrset.RRset(zone, dns.rdataclass.IN, T.DNSKEY)
        for k in zsks:
            pub = k.timings.publish if k.timings.publish is not None else k.timings.activate
            gone = k.timings.delete
            if (pub is None or pub <= t) and (gone is None or t < gone):
                rr.add(k.dnskey(), ttl)
        if not rr:
            raise InputError(f"no ZSK is published at {t}")
        out.append(Bundle(t, (rr,)))
    return out


# -- the online side: pregenerated ZSKs, and signing with a response -------------------------


def pregenerate(
    policy: Policy,
    zone: dns.name.Name,
    existing: Sequence[Key],
    start: int,
    end: int,
    make: Callable[[KeySpec], Key],
) -> tuple[list[Key], list[Key]]:
    """ZSKs for ``start``..``end`` with timing metadata for rolls by ``policy``'s ZSK
    lifetime (Knot's ``keymgr pregenerate``, BIND's ``dnssec-ksr keygen``).

    The chain continues from the last existing ZSK of the policy's algorithm (its Inactive
    time, or Activate + lifetime); without one the first key is published and active at
    ``start``.  Each successor is published Ipub (DNSKEY TTL + propagation + publish
    safety) before it becomes active, when its predecessor retires; a retired key is
    deleted Iret (sign delay + propagation + max zone TTL + retire safety) later.  Returns
    ``(new keys, existing keys whose timings changed)``; ``make(spec)`` makes a key
    (material only).  Raises :class:`InputError` for a policy without a ZSK line (a CSK
    cannot have an offline KSK) or an empty period."""
    if end <= start:
        raise InputError("the end of the period must be after its start")
    spec = next((k for k in policy.keys if k.role == "zsk"), None)
    if spec is None or any(k.role == "csk" for k in policy.keys):
        raise InputError(
            f"policy {policy.name!r} has no separate ZSK (an offline KSK needs ksk and zsk lines)"
        )
    life = spec.lifetime
    zsks = [
        k for k in existing
        if not k.is_ksk and not k.is_revoked and k.algorithm == spec.algorithm
        and k.timings.activate is not None
    ]  # fmt: skip
    last = max(zsks, key=lambda k: k.timings.activate or 0) if zsks else None
    changed: list[Key] = []
    if last is None:
        t: int | None = start
        prev: Key | None = None
    else:
        act = last.timings.activate
        assert act is not None
        t = last.timings.inactive or (act + life if life else None)
        prev = last
    new: list[Key] = []
    while t is not None and t < end:
        key = make(spec)
        first = prev is None and not new
        publish = t if first else t - policy.ipub
        inactive = t + life if life else None
        timings = KeyTimings(
            created=min(start, publish), publish=publish, activate=t, inactive=inactive,
            delete=inactive + policy.iret_zsk if inactive is not None else None,
        )  # fmt: skip
        state = KeyState(lifetime=life, ksk=False, zsk=True,
                         predecessor=prev.tag if prev is not None else None)  # fmt: skip
        key = dataclasses.replace(key, timings=timings, state=state, ttl=policy.dnskey_ttl)
        if prev is not None:
            pt = prev.timings
            pst = prev.state or KeyState()
            prev = dataclasses.replace(
                prev,
                timings=pt.replace(
                    inactive=pt.inactive or t, delete=pt.delete or t + policy.iret_zsk
                ),
                state=pst.replace(successor=key.tag),
            )
            if new:
                new[-1] = prev
            else:
                changed.append(prev)
        new.append(key)
        prev = key
        t = inactive
    return new, changed


def bundle_at(bundles: Sequence[Bundle], now: int) -> Bundle | None:
    """The bundle that applies at ``now``: the last one whose time has come."""
    current = None
    for b in bundles:
        if b.time <= now:
            current = b
    return current


def next_bundle_time(bundles: Sequence[Bundle], now: int) -> int | None:
    return min((b.time for b in bundles if b.time > now), default=None)


def bundle_expiration(bundle: Bundle) -> int | None:
    """When the bundle's DNSKEY signatures run out (the latest of them)."""
    sigs = bundle.rrset(T.RRSIG, T.DNSKEY)
    return max((int(s.expiration) for s in sigs), default=None) if sigs else None


def keyset_rdatas(bundles: Iterable[Bundle]) -> set[bytes]:
    """Canonical RDATA of every DNSKEY, CDS and CDNSKEY record in ``bundles``."""
    return {
        canonical.rdata_wire(rd)
        for b in bundles
        for rr in b.rrsets
        if rr.rdtype in KEYSET_TYPES
        for rd in rr
    }


def offline_keys(zsks: Iterable[Key], bundle: Bundle, now: int) -> list[SigningKey]:
    """The ZSKs as the signer uses them under ``bundle``: published when the bundle's DNSKEY
    RRset has them, signing when also active by their timing metadata (BIND's smart signing)
    and their private key is here.  KSKs are left out: the bundle signs the key set."""
    keyset = dnskey_rrset(bundle)
    have = {canonical.rdata_wire(rd) for rd in keyset or ()}
    out = []
    for sk in smart_select([k for k in zsks if not k.is_ksk], now):
        published = canonical.rdata_wire(sk.key.dnskey()) in have
        out.append(SigningKey(sk.key, publish=published, active=sk.active and published))
    return out


def _rrset(rr: dns.rrset.RRset) -> RRset:
    return RRset(rr.name.canonicalize(), int(rr.rdtype), rr.ttl,
                 canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in rr))  # fmt: skip


def keyset_input(zone: Zone, bundle: Bundle) -> Zone:
    """``zone`` with the apex DNSKEY, CDS and CDNSKEY RRsets of ``bundle`` (and none other),
    so the chain's type bitmaps name what will be served.  Raises :class:`InputError` when
    the bundle is for another zone or has no DNSKEY RRset."""
    origin = zone.origin
    if zone_of([bundle]) != origin:
        raise InputError(f"the signed key response is for {zone_of([bundle])}, not {origin}")
    if dnskey_rrset(bundle) is None:
        raise InputError(f"the response bundle at {bundle.time} has no DNSKEY RRset")
    apex = {t: r for t, r in zone.rrsets[origin].items() if t not in KEYSET_TYPES}
    for rr in bundle.rrsets:
        if rr.rdtype in KEYSET_TYPES:
            apex[int(rr.rdtype)] = _rrset(rr)
    return Zone(origin, {**zone.rrsets, origin: apex}, zone.rrsigs, zone.rdclass)


def install_bundle(signed: Zone, bundle: Bundle) -> Zone:
    """``signed`` (signed by the ZSKs from :func:`keyset_input`'s output) with the key set
    records and their signatures of ``bundle``: the offline KSK's RRSIGs replace the
    ZSKs' over DNSKEY, CDS and CDNSKEY."""
    origin = signed.origin
    apex = {t: r for t, r in signed.rrsets[origin].items() if t not in KEYSET_TYPES}
    sigs = {t: r for t, r in signed.rrsigs.get(origin, {}).items() if t not in KEYSET_TYPES}
    for rr in bundle.rrsets:
        if rr.rdtype in KEYSET_TYPES:
            apex[int(rr.rdtype)] = _rrset(rr)
        elif rr.rdtype == T.RRSIG and rr.covers in KEYSET_TYPES:
            sigs[int(rr.covers)] = RRset(origin, T.RRSIG, rr.ttl, _rrset(rr).rdatas)
    return Zone(origin, {**signed.rrsets, origin: apex}, {**signed.rrsigs, origin: sigs},
                signed.rdclass)  # fmt: skip


def without_keyset_sigs(zone: Zone) -> Zone:
    """``zone`` without the RRSIGs over the apex key set (their refresh is the response's
    business: a new bundle, not a re-sign)."""
    node = zone.rrsigs.get(zone.origin)
    if not node:
        return zone
    sigs = {t: r for t, r in node.items() if t not in KEYSET_TYPES}
    return Zone(zone.origin, zone.rrsets, {**zone.rrsigs, zone.origin: sigs}, zone.rdclass)


def sign_with_response(
    zone: Zone,
    zsks: Sequence[Key],
    bundles: Sequence[Bundle],
    params: SignParams,
    now: int,
) -> SignedZone:
    """Sign ``zone`` with the ZSKs and the key set of the response bundle for ``now``
    (``dnssec-signzone`` with an offline KSK).  Raises :class:`InputError` when no bundle
    applies at ``now``, its signatures have run out or no ZSK of it can sign."""
    bundle = bundle_at(bundles, now)
    if bundle is None:
        first = bundles[0].time if bundles else None
        raise InputError(f"no bundle of the signed key response applies now (first: {first})")
    exp = bundle_expiration(bundle)
    if exp is None or exp <= now:
        raise InputError(f"the key set signatures of the bundle at {bundle.time} have expired")
    keys = offline_keys(zsks, bundle, now)
    if not any(k.active for k in keys):
        raise InputError(
            f"no ZSK in the bundle at {bundle.time} is active here with its private key"
        )
    keyset = dnskey_rrset(bundle)
    assert keyset is not None
    params = dataclasses.replace(params, dnskey_ttl=keyset.ttl)
    signed = sign_zone(keyset_input(zone, bundle), keys, params, now)
    return SignedZone(install_bundle(signed.zone, bundle), signed.stats)
