"""The signer: RRSIG, NSEC and NSEC3 chains, full and smart re-signing, and zone
verification.  Pure: zones, keys and ``now`` come in, signed zones and findings go out.

Public API::

    sign_zone(zone, signing_keys, params, now) -> SignedZone
    sign_changes(signed, change, signing_keys, params, now) -> SignedChange (zone + diff)
    verify_zone(zone, now, options) -> list[Finding]
"""

from dnsseal.signer.denial import Nsec3Params, check_iterations
from dnsseal.signer.incremental import SignedChange, sign_changes
from dnsseal.signer.keysel import SigningKey, smart_select
from dnsseal.signer.sign import SignedZone, SignParams, SignStats, sign_zone

__all__ = [
    "Nsec3Params",
    "SignParams",
    "SignStats",
    "SignedChange",
    "SignedZone",
    "SigningKey",
    "check_iterations",
    "sign_changes",
    "sign_zone",
    "smart_select",
]
