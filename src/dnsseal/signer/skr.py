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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from dnsseal.crypto import wire
from dnsseal.crypto.keystore import sign_function
from dnsseal.crypto.software import SignFunction
from dnsseal.errors import InputError
from dnsseal.keys.ksr import Bundle, dnskey_rrset, zone_of
from dnsseal.keys.model import Key, key_tag
from dnsseal.signer.rrsig import Rrsig, labels_field, signed_data
from dnsseal.zone import canonical

DAY = 86400
T = dns.rdatatype


@dataclass(frozen=True, slots=True)
class SkrParams:
    """Knot's defaults: ``rrsig-lifetime`` 14 days, ``rrsig-refresh`` 7 days, inception 90
    minutes before the bundle's time."""

    validity: int = 14 * DAY
    refresh: int = 7 * DAY
    backdate: int = 90 * 60

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
    rdatas = canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in keyset)
    owner = canonical.name_wire(zone)
    sigs = dns.rrset.RRset(zone, dns.rdataclass.IN, T.RRSIG, T.DNSKEY)
    for k, sign in zip(ksks, signs, strict=True):
        head = Rrsig(
            T.DNSKEY, k.algorithm, labels_field(zone), ttl,
            time + params.validity, time - params.backdate, k.tag, zone,
        )  # fmt: skip
        signature = sign(signed_data(head.head_wire(), owner, T.DNSKEY, 1, ttl, rdatas))
        sigs.add(
            dns.rdtypes.ANY.RRSIG.RRSIG(
                dns.rdataclass.IN, T.RRSIG, T.DNSKEY, k.algorithm, head.labels, ttl,
                head.expiration, head.inception, k.tag, zone, signature,
            ),  # type: ignore[no-untyped-call]
            ttl,
        )  # fmt: skip
    return Bundle(time, (keyset, sigs))


def check_response(response: Sequence[Bundle]) -> list[str]:
    """Problems of a response, one sentence each (empty when it is good): every bundle has a
    DNSKEY RRset signed by a key in it with the SEP flag, every signature verifies, is valid
    at the bundle's time and lasts until the next bundle's."""
    problems: list[str] = []
    for i, b in enumerate(response):
        keyset = dnskey_rrset(b)
        sigs = b.rrset(T.RRSIG, T.DNSKEY)
        if keyset is None or sigs is None:
            problems.append(f"bundle at {b.time}: no DNSKEY RRset or no RRSIG over it")
            continue
        until = response[i + 1].time if i + 1 < len(response) else b.time
        rdatas = canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in keyset)
        owner = canonical.name_wire(keyset.name)
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
                problems.append(f"bundle at {b.time}: RRSIG by {sig.key_tag}, no such KSK")
                continue
            head = Rrsig(
                T.DNSKEY, int(sig.algorithm), sig.labels, sig.original_ttl, sig.expiration,
                sig.inception, sig.key_tag, sig.signer,
            )  # fmt: skip
            data = signed_data(head.head_wire(), owner, T.DNSKEY, 1, sig.original_ttl, rdatas)
            pub = wire.public_key_object(int(key.algorithm), key.key)
            if not wire.verify(int(key.algorithm), pub, sig.signature, data):
                problems.append(f"bundle at {b.time}: RRSIG by {sig.key_tag} does not verify")
            elif sig.inception > b.time or sig.expiration < until:
                problems.append(
                    f"bundle at {b.time}: RRSIG by {sig.key_tag} valid {sig.inception}.."
                    f"{sig.expiration}, needed {b.time}..{until}"
                )
            else:
                good += 1
        if not good:
            problems.append(f"bundle at {b.time}: no valid KSK signature")
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
