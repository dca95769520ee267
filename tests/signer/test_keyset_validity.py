"""signatures-validity-dnskey: the key sets get their own signature expiration."""

from __future__ import annotations

import struct

import dns.name
import dns.rdatatype
import pytest

from dnsseal.errors import InputError
from dnsseal.signer import SignParams, sign_changes, sign_zone
from dnsseal.signer.verify import verify_zone
from dnsseal.zone.diff import ZoneDiff
from dnsseal.zone.model import Zone

from .conftest import NOW, ORIGIN, ksk_zsk, zone_from

T = dns.rdatatype
DAY = 86400


def expirations(zone: Zone) -> dict[int, set[int]]:
    """Covered type -> the set of RRSIG expiration fields over it, zone-wide."""
    out: dict[int, set[int]] = {}
    for node in zone.rrsigs.values():
        for covered, rrset in node.items():
            for wire in rrset.rdatas:
                out.setdefault(covered, set()).add(struct.unpack_from("!I", wire, 8)[0])
    return out


def test_dnskey_signatures_expire_on_their_own_schedule() -> None:
    params = SignParams(
        inception=NOW - 3600, expiration=NOW + 14 * DAY, keyset_expiration=NOW + 5 * DAY
    )
    signed = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone
    exps = expirations(signed)
    assert exps[T.DNSKEY] == {NOW + 5 * DAY}
    for covered, seen in exps.items():
        if covered != T.DNSKEY:
            assert seen == {NOW + 14 * DAY}, dns.rdatatype.to_text(covered)
    assert verify_zone(signed, NOW) == []


def test_default_keyset_expiration_is_the_zone_expiration() -> None:
    params = SignParams(inception=NOW - 3600, expiration=NOW + 9 * DAY)
    signed = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone
    assert {e for seen in expirations(signed).values() for e in seen} == {NOW + 9 * DAY}


def test_incremental_change_keeps_the_keyset_expiration() -> None:
    params = SignParams(
        inception=NOW - 3600,
        expiration=NOW + 14 * DAY,
        keyset_expiration=NOW + 3 * DAY,
        serial="increment",
    )
    first = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone
    name = dns.name.from_text("fresh", ORIGIN)
    change = ZoneDiff(removed=(), added=((name, T.TXT, 300, b"\x01x"),))
    result = sign_changes(first, change, ksk_zsk(), params, NOW + 60)
    exps = expirations(result.zone)
    assert exps[T.DNSKEY] == {NOW + 3 * DAY}
    assert exps[T.TXT] == {NOW + 14 * DAY}


def test_keyset_expiration_in_the_past_is_refused() -> None:
    params = SignParams(expiration=NOW + DAY, keyset_expiration=NOW - 1)
    with pytest.raises(InputError, match="DNSKEY signature expiration"):
        sign_zone(zone_from(), ksk_zsk(), params, NOW)
