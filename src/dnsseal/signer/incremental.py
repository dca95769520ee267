"""Incremental signing: ``sign_changes(signed, change, signing_keys, params, now)``.

Applies a change to the data of a zone this signer produced, re-signs what the change
touched (the changed RRsets, the SOA, the NSEC/NSEC3 records around changed names) and
returns the new version with the record-level difference, ready for IXFR.  Signatures over
RRsets that are byte-identical to the previous version are kept without verifying them
again: the previous version is trusted as our own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dns.rdatatype

from dnsseal.errors import InputError
from dnsseal.signer.keysel import SigningKey
from dnsseal.signer.quick import quick_sign_changes
from dnsseal.signer.sign import SignParams, SignStats, sign_zone
from dnsseal.zone.diff import ZoneDiff, apply, diff
from dnsseal.zone.model import Zone

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
) -> SignedChange:
    """Apply ``change`` to ``signed`` and re-sign; see the module docstring.

    ``params.serial`` applies as in :func:`sign_zone` (a server uses ``increment``).
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
