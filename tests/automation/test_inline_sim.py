"""InlineZone on simulated time: the server's maintenance (key manager + signer) driven
only by its own next-wakeup times over two simulated years, with the parent's DS following
the CDS a while later.  Every version verifies at the moment it is made and until the next
maintenance, and the keys roll on schedule.  No sockets, no sleeping: a few seconds."""

from __future__ import annotations

from pathlib import Path

import dns.rdatatype
import pytest

from dnsseal.findings import Severity
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn
from dnsseal.keys.model import RecordState
from dnsseal.policy.build import lookup
from dnsseal.policy.model import KeySpec
from dnsseal.server.checkds import waiting_keys
from dnsseal.server.inline import InlineZone
from dnsseal.signer.verify import verify_zone
from dnsseal.zone.model import Zone

from .conftest import zone_text

DAY = 86400
START = 1_800_000_000


def _errors(zone: Zone, now: int) -> list[str]:
    return [str(f) for f in verify_zone(zone, now) if f.severity is Severity.ERROR]


@pytest.mark.slow
def test_two_years_of_maintenance_rolls_keys_and_never_serves_a_broken_zone(
    tmp_path: Path,
) -> None:
    default = lookup("default", {})
    policy = default.replace(
        name="sim",
        keys=(
            KeySpec("ksk", 13, lifetime=365 * DAY),
            KeySpec("zsk", 13, lifetime=60 * DAY),
        ),
    )
    src = tmp_path / "sim.example.zone"
    src.write_text(zone_text("sim.example.").replace("$TTL 2", "$TTL 300"))
    (tmp_path / "state").mkdir()
    z = InlineZone("sim.example.", src, policy, tmp_path / "keys", tmp_path / "state")
    now = START
    ds_at: dict[int, int] = {}  # key tag -> when the parent's DS changes
    seen_ksk: set[int] = set()
    seen_zsk: set[int] = set()
    versions = 0
    while now < START + 2 * 365 * DAY:
        v = z.maintain(now)
        if v is not None:
            versions += 1
            assert not _errors(v.zone, now), (now - START, _errors(v.zone, now))
        assert z.signed is not None
        # the parent acts a day after the CDS / the DELETE of a key's DS is due
        waits = waiting_keys(z.keys)
        for k in waits.publish:
            when = ds_at.setdefault(k.tag, now + DAY)
            if now >= when:
                z.request(DsSeen(k.id, now))
        for k in waits.withdraw:
            when = ds_at.setdefault(-k.tag, now + DAY)
            if now >= when:
                z.request(DsWithdrawn(k.id, now))
        for k in z.keys:
            (seen_ksk if k.role == "ksk" else seen_zsk).add(k.tag)
        nxt = z.next_wakeup()
        assert nxt is not None and nxt > now
        pending = [t for t in ds_at.values() if t > now]
        nxt = min([nxt, *pending])
        # the zone served until then stays valid until then
        assert not _errors(z.signed, nxt - 1), (nxt - START, _errors(z.signed, nxt - 1))
        now = nxt
    assert len(seen_zsk) >= 12  # a ZSK every 60 days for two years
    assert len(seen_ksk) >= 2  # and the KSK rolled (parent DS followed)
    assert versions > 50
    dnskeys = z.signed.get(z.origin, dns.rdatatype.DNSKEY)
    assert dnskeys is not None and len(dnskeys.rdatas) >= 2
    assert any(
        k.state is not None and k.state.ds is RecordState.OMNIPRESENT
        for k in z.keys
        if k.role == "ksk"
    )


def test_dnskey_signatures_follow_signatures_validity_dnskey(tmp_path: Path) -> None:
    """The key set is signed for signatures-validity-dnskey, the rest for
    signatures-validity, and maintenance refreshes the shorter one in time."""
    policy = lookup("default", {}).replace(
        name="short-dnskey",
        signatures_validity=14 * DAY,
        signatures_validity_dnskey=6 * DAY,
        signatures_refresh=4 * DAY,
    )
    src = tmp_path / "v.example.zone"
    src.write_text(zone_text("v.example.").replace("$TTL 2", "$TTL 300"))
    (tmp_path / "state").mkdir()
    z = InlineZone("v.example.", src, policy, tmp_path / "keys", tmp_path / "state")
    now = START
    while now < START + 30 * DAY:
        z.maintain(now)
        assert z.signed is not None
        for covered, rrset in z.signed.rrsigs[z.signed.origin].items():
            for wire in rrset.rdatas:
                left = int.from_bytes(wire[8:12], "big") - now
                limit = 6 * DAY if covered == dns.rdatatype.DNSKEY else 14 * DAY
                assert 0 < left <= limit, (covered, left, now - START)
        nxt = z.next_wakeup()
        assert nxt is not None and nxt > now
        assert not _errors(z.signed, nxt - 1)
        now = nxt
