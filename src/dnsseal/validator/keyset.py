"""From DS records (or a trust anchor) to a trusted DNSKEY set (RFC 4035 s5.2, RFC 4509,
RFC 6840 s5.2 and s5.11).

A DNSKEY RRset is trusted when a DS (or anchor) matches one of its keys by tag, algorithm
and digest, and that key signed the RRset.  Then every zone key of the set with a
supported algorithm may sign the zone's data.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import dns.name
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

from dnsseal.validator import verdict as v
from dnsseal.validator.limits import Budget
from dnsseal.validator.names import name_text
from dnsseal.validator.policy import DEFAULT_POLICY, DIGESTS, AlgorithmPolicy, algorithm_name
from dnsseal.validator.rrsig import ZoneKey, name_wire, verify_rrset


def ds_digest(owner: dns.name.Name, key: DNSKEY, digest_type: int) -> bytes:
    """The DS digest of ``key`` (RFC 4034 s5.1.4): hash(owner | DNSKEY RDATA)."""
    _, fn = DIGESTS[digest_type]
    rdata = struct.pack("!HBB", key.flags, key.protocol, key.algorithm) + key.key
    digest: bytes = fn(name_wire(owner) + rdata).digest()
    return digest


@dataclass(frozen=True, slots=True)
class KeySet:
    """The outcome for one zone: its verdict, the keys it may sign with (secure only) and
    a sentence per step for ``--explain``."""

    zone: dns.name.Name
    verdict: v.Verdict
    keys: tuple[ZoneKey, ...] = ()
    steps: tuple[str, ...] = ()


def usable_ds(ds_set: Sequence[DS], policy: AlgorithmPolicy) -> list[DS]:
    """The DS records validation may use: supported algorithm and digest, and no SHA-1 DS
    for a key that also has a stronger one (RFC 4509 s3)."""
    ok = [
        d
        for d in ds_set
        if policy.algorithm_supported(int(d.algorithm)) and policy.digest_supported(d.digest_type)
    ]
    strong = {(d.key_tag, int(d.algorithm)) for d in ok if d.digest_type != 1}
    return [d for d in ok if d.digest_type != 1 or (d.key_tag, int(d.algorithm)) not in strong]


def unsupported_reason(
    zone: dns.name.Name, ds_set: Sequence[DS], policy: AlgorithmPolicy
) -> v.Verdict:
    algs = sorted({int(d.algorithm) for d in ds_set})
    if not any(policy.algorithm_supported(a) for a in algs):
        names = ", ".join(algorithm_name(a) for a in algs)
        return v.insecure(
            f"{zone} is signed only with unsupported algorithms ({names}); treated as insecure "
            "(RFC 6840 s5.2)",
            v.EDE_UNSUPPORTED_DNSKEY_ALGORITHM,
        )
    digests = ", ".join(str(d) for d in sorted({d.digest_type for d in ds_set}))
    return v.insecure(
        f"the DS records of {zone} use only unsupported digest types ({digests}); treated as "
        "insecure (RFC 6840 s5.2)",
        v.EDE_UNSUPPORTED_DS_DIGEST,
    )


def trust_keys(
    zone: dns.name.Name,
    dnskeys: dns.rrset.RRset | None,
    sigs: Sequence[RRSIG],
    ds_set: Sequence[DS],
    anchor_keys: Sequence[DNSKEY],
    now: int,
    budget: Budget,
    policy: AlgorithmPolicy = DEFAULT_POLICY,
) -> KeySet:
    """Trust ``zone``'s DNSKEY RRset from its DS set (or from trusted ``anchor_keys``).

    Insecure when no DS/anchor uses a supported algorithm and digest; bogus when none of the
    usable ones leads to a key that signed the DNSKEY RRset.  Counts ``ds_failures`` for
    every DS whose digest does not match, and caps keys tried per tag.
    """
    steps: list[str] = []
    anchors = [k for k in anchor_keys if policy.algorithm_supported(int(k.algorithm))]
    good_ds = usable_ds(ds_set, policy)
    if not good_ds and not anchors:
        if anchor_keys:
            return KeySet(
                zone,
                v.insecure(
                    f"trust anchor keys of {zone} use only unsupported algorithms",
                    v.EDE_UNSUPPORTED_DNSKEY_ALGORITHM,
                ),
            )
        return KeySet(zone, unsupported_reason(zone, ds_set, policy))
    if dnskeys is None or len(dnskeys) == 0:
        return KeySet(zone, v.bogus(f"no DNSKEY RRset for {zone}", v.EDE_DNSKEY_MISSING))
    keys = [ZoneKey.of(zone, rd) for rd in dnskeys]
    usable = [k for k in keys if k.usable(policy)]
    if not usable:
        return KeySet(
            zone, v.bogus(f"no DNSKEY of {zone} has the zone key bit set", v.EDE_NO_ZONE_KEY_BIT)
        )
    problems: list[v.Verdict] = []
    entry_points: list[tuple[ZoneKey, str]] = []
    for anchor in anchors:
        for k in usable:
            if (
                k.rdata.algorithm == anchor.algorithm
                and k.rdata.key == anchor.key
                and k.rdata.flags & ~0x0080 == anchor.flags & ~0x0080
            ):
                entry_points.append((k, f"DNSKEY {k.tag} is the trust anchor"))
    for ds in good_ds:
        same_tag = [k for k in usable if k.tag == ds.key_tag and k.algorithm == ds.algorithm]
        if not same_tag:
            problems.append(
                v.bogus(
                    f"DS {ds.key_tag}/{ds.algorithm}/{ds.digest_type} for {zone} matches no DNSKEY",
                    v.EDE_DNSKEY_MISSING,
                )
            )
            continue
        for n, k in enumerate(same_tag):
            if n >= budget.limits.keys_per_tag:
                problems.append(
                    v.bogus(f"more than {budget.limits.keys_per_tag} keys with tag {k.tag}")
                )
                break
            if ds_digest(zone, k.rdata, ds.digest_type) == ds.digest:
                name, _ = DIGESTS[ds.digest_type]
                entry_points.append(
                    (
                        k,
                        f"DS {ds.key_tag}/{algorithm_name(ds.algorithm)}/{name} "
                        f"matches DNSKEY {k.tag}",
                    )
                )
                break
            if not budget.take("ds_failures"):
                return KeySet(zone, v.bogus(f"DS of {zone}: {budget.describe()}"))
            # RFC 8914 EDE 9: "a DS record existed ... but no supported matching DNSKEY".
            problems.append(
                v.bogus(
                    f"DS {ds.key_tag} digest does not match DNSKEY {k.tag} of {zone}",
                    v.EDE_DNSKEY_MISSING,
                )
            )
    for k, how in entry_points:
        check = verify_rrset(dnskeys, sigs, [k], zone, now, budget, policy)
        if check.ok:
            steps.append(how)
            text = name_text(zone)
            steps.append(f"DNSKEY RRset of {text} signed by key {k.tag}")
            return KeySet(
                zone,
                v.secure(f"DNSKEY RRset of {text} validated ({how})"),
                tuple(usable),
                tuple(steps),
            )
        if budget.exhausted:
            return KeySet(zone, check.verdict)
        problems.append(
            v.Verdict(
                check.verdict.security,
                f"{how}, but: {check.verdict.reason}",
                check.verdict.ede,
            )
        )
    if not problems:
        return KeySet(
            zone, v.bogus(f"no DS or anchor of {zone} matches a DNSKEY", v.EDE_DNSKEY_MISSING)
        )
    # Prefer reasons about signatures (they got furthest), then missing keys, then digests.
    for p in problems:
        if ", but: " in p.reason:
            return KeySet(zone, p)
    for p in problems:
        if p.ede == v.EDE_DNSKEY_MISSING:
            return KeySet(zone, p)
    return KeySet(zone, problems[0])
