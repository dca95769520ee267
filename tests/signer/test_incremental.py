"""sign_changes: a change re-signs only what it touches and yields an exact diff."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from dnsseal import clock
from dnsseal.errors import InputError
from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone
from dnsseal.signer.verify import verify_zone
from dnsseal.zone import canonical
from dnsseal.zone.diff import ZoneDiff, apply, diff
from dnsseal.zone.text import format_zone

from .conftest import NOW, ORIGIN, external_verify, ksk_zsk, write, zone_from

T = dns.rdatatype


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


CHANGE = ZoneDiff(
    removed=((n("mail"), T.A, 300, bytes([192, 0, 2, 2])),),
    added=(
        (n("mail"), T.A, 300, bytes([192, 0, 2, 20])),
        (n("brand.new"), T.TXT, 300, b"\x03new"),
        (n("deleg2"), T.NS, 300, canonical.name_wire(n("ns.deleg2"))),
        (n("ns.deleg2"), T.A, 300, bytes([192, 0, 2, 30])),
    ),
)


@pytest.mark.parametrize("nsec3", [None, Nsec3Params(), Nsec3Params(opt_out=True)])
def test_change_resigns_little_and_verifies(nsec3: Nsec3Params | None) -> None:
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial="increment")
    first = sign_zone(zone_from(), keys, params, NOW)
    result = sign_changes(first.zone, CHANGE, keys, params, NOW + 60)
    assert verify_zone(result.zone, NOW + 60) == []
    # SOA, mail/A, the new TXT, the new name's chain record(s), the neighbours' chain
    # records: far fewer than a full signing.
    assert 0 < result.stats.generated < first.stats.generated // 2
    assert result.stats.retained > first.stats.generated // 2
    assert apply(first.zone, result.diff) == result.zone
    assert result.zone.soa().serial == first.zone.soa().serial + 1
    removed_types = {t for _, t, _, _ in result.diff.removed}
    assert T.SOA in removed_types and T.RRSIG in removed_types


def test_same_result_as_full_smart_resign() -> None:
    keys = ksk_zsk()
    first = sign_zone(zone_from(), keys, SignParams(), NOW).zone
    inc = sign_changes(first, CHANGE, keys, SignParams(), NOW).zone
    full = sign_zone(apply(first, CHANGE), keys, SignParams(), NOW).zone
    assert format_zone(inc) == format_zone(full)  # deterministic ECDSA, same decisions
    assert diff(inc, full) == ZoneDiff()


def test_signer_records_cannot_be_changed_directly() -> None:
    first = sign_zone(zone_from(), ksk_zsk(), SignParams(), NOW).zone
    bad = ZoneDiff(added=((n("x"), T.NSEC, 60, canonical.name_wire(ORIGIN)),))
    with pytest.raises(InputError, match="maintained by the signer"):
        sign_changes(first, bad, ksk_zsk(), SignParams(), NOW)


@pytest.mark.interop
def test_incremental_result_accepted_by_all_verifiers(tmp_path: Path) -> None:
    now = clock.now()
    keys = ksk_zsk(13)
    params = SignParams(nsec3=Nsec3Params(opt_out=True), serial="increment")
    first = sign_zone(zone_from(), keys, params, now).zone
    result = sign_changes(first, CHANGE, keys, params, now)
    external_verify(write(result.zone, tmp_path / "z.signed"))


def test_diff_record_from_dnspython_rdata() -> None:
    import dns.rdata

    from dnsseal.zone.diff import record

    rd = dns.rdata.from_text("IN", "MX", "10 Mail.Example.COM.")
    assert record(n("x"), 300, rd) == (n("x"), T.MX, 300, b"\x00\x0a" + canonical.name_wire(
        n("mail")))  # fmt: skip
