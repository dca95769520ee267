"""Check a simulated timeline against every resolver cache that could exist.

A resolver asking at time T may hold any version of an RRset that some server (primary,
or a secondary up to the propagation delay later) served within the RRset's TTL before T.
For the zone's data, a signature may also be one the signer had not replaced yet, made by
any key that signed within the signing delay (signatures-validity - signatures-refresh)
before.  Every combination of cached DS RRset, DNSKEY RRset and data signature must
validate: either no DS (insecure), or a DS matching a DNSKEY that signs the DNSKEY RRset
and the data signed by a key in that DNSKEY RRset (an RRset carries one signature
per signing key, and one valid signature is enough).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dnsseal.keymgr.simulate import ParentVersion, Timeline, ZoneVersion
from dnsseal.keys.model import KeyId
from dnsseal.policy.model import Policy


@dataclass(frozen=True, slots=True)
class Bogus:
    """One cache combination that does not validate."""

    at: int
    reason: str


def _served(
    versions: Sequence[ZoneVersion | ParentVersion], lo: int, hi: int, delay: int
) -> list[int]:
    """Indexes of versions some server served at a time within [lo, hi] (a secondary
    serves a version up to ``delay`` after the primary replaced it)."""
    out = []
    for j, v in enumerate(versions):
        end = versions[j + 1].at + delay if j + 1 < len(versions) else None
        if v.at <= hi and (end is None or end > lo):
            out.append(j)
    return out


def check_at(tl: Timeline, policy: Policy, t: int) -> list[Bogus]:
    """Every failing cache combination at time ``t``."""
    zone, parent = tl.zone, tl.parent
    zpd, ppd = policy.zone_propagation_delay, policy.parent_propagation_delay
    ds_versions = [parent[j].ds for j in _served(parent, t - policy.parent_ds_ttl, t, ppd)]
    ds_versions = [d for d in ds_versions if d]
    if not ds_versions:
        return []
    out: list[Bogus] = []
    dk_idx = _served(zone, t - policy.dnskey_ttl, t, zpd)
    # A data RRset fetched within its TTL, from a server up to zpd behind, carries the
    # signatures of every key that signed when it was last (re)signed.  Within one
    # algorithm that may be up to the signing delay earlier (signatures are replaced
    # gradually, at refresh time); a new algorithm signs the whole zone at once, and an
    # algorithm that stopped signing took its signatures with it (the engine lets the last
    # key of an algorithm go without Dsgn, and the signer drops signatures of keys that no
    # longer sign): signatures of an algorithm absent in between, or of an unsigned zone,
    # do not linger, and when that algorithm comes back it is new again.
    data_lo = t - policy.ttlsig - zpd
    options: set[frozenset[KeyId]] = set()
    unsigned = False
    for j in _served(zone, data_lo, t, 0):
        now_sigs = zone[j].zsk_signers
        unsigned |= not now_sigs
        end = zone[j + 1].at if j + 1 < len(zone) else t
        first = max(zone[j].at, data_lo)
        for k in _served(zone, first - policy.sign_delay, min(end, t), 0):
            between = [{i.algorithm for i in zone[m].zsk_signers} for m in range(k + 1, j + 1)]
            lag = frozenset(
                i for i in zone[k].zsk_signers if all(i.algorithm in a for a in between)
            )
            algs = {i.algorithm for i in lag}
            sigs = lag | {i for i in now_sigs if i.algorithm not in algs}
            if sigs:
                options.add(sigs)
    for j in dk_idx:
        dk = zone[j]
        for ds in ds_versions:
            if not ds & dk.dnskeys & dk.ksk_signers:
                out.append(
                    Bogus(t, f"DS {_tags(tl, ds)} vs DNSKEY {_tags(tl, dk.dnskeys)} of "
                             f"{dk.at} signed by {_tags(tl, dk.ksk_signers)}: no chain")
                )  # fmt: skip
        if unsigned:
            out.append(Bogus(t, "zone data may be cached unsigned while a DS is cached"))
        for sigs in options:
            if not sigs & dk.dnskeys:
                out.append(
                    Bogus(t, f"data signed by {_tags(tl, sigs)} but cached DNSKEY RRset of "
                             f"{dk.at} has only {_tags(tl, dk.dnskeys)}")
                )  # fmt: skip
    return out


def _tags(tl: Timeline, ids: Iterable[KeyId]) -> str:
    return "{" + ",".join(str(i.tag) for i in sorted(ids, key=lambda i: i.tag)) + "}"


def probe_times(tl: Timeline, policy: Policy) -> list[int]:
    """Instants where the set of possible caches changes (every window edge)."""
    spans = {
        0,
        policy.zone_propagation_delay,
        policy.parent_propagation_delay,
        policy.dnskey_ttl + policy.zone_propagation_delay,
        policy.ttlsig + policy.zone_propagation_delay,
        policy.ttlsig + policy.zone_propagation_delay + policy.sign_delay,
        policy.parent_ds_ttl + policy.parent_propagation_delay,
    }
    times = {v.at for v in tl.zone} | {v.at for v in tl.parent}
    out: set[int] = set()
    for t in times:
        for s in spans:
            out.update((t + s - 1, t + s, t + s + 1))
    return sorted(x for x in out if tl.start <= x <= tl.until)


def check(tl: Timeline, policy: Policy, extra: Iterable[int] = ()) -> list[Bogus]:
    """Bogus combinations at every window edge of the timeline and at ``extra`` times."""
    out: list[Bogus] = []
    for t in sorted({*probe_times(tl, policy), *extra}):
        out += check_at(tl, policy, t)
    return out
