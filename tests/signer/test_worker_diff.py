"""A new version goes to the worker processes as its change when the worker has the
version before it (an UPDATE's version: the whole 100k-name zone was packed, sent, unpacked
and built again for each one, about a second per UPDATE): the worker's model and snapshot
after applying the change (to its snapshot: it keeps no model) equal the main process's."""

from __future__ import annotations

import pickle
import random

import dns.name
import dns.rdatatype
import pytest

from dnsseal.proto import snapshot
from dnsseal.proto.snapshot import build_from_model, snapshot_model, update_from_diff
from dnsseal.server import zonesync
from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone
from dnsseal.zone.diff import ZoneDiff, apply, records
from dnsseal.zone.model import Zone

from .conftest import NOW, ORIGIN, ksk_zsk, zone_from
from .test_chain_incremental import random_change
from .test_snapshot_follows import shape

T = dns.rdatatype


def test_versions_travel_as_changes_and_rebuild_the_same() -> None:
    for nsec3 in (None, Nsec3Params()):
        keys = ksk_zsk()
        params = SignParams(nsec3=nsec3, serial="increment")
        zone = sign_zone(zone_from(), keys, params, NOW).zone
        rng = random.Random(2136)
        snaps: dict[str, object] = {}
        prev = None
        for step in range(15):
            seq = step + 1
            payload = zonesync._pack_versions([(seq, "z", zone.soa().serial, zone, prev, None)])
            (item,) = pickle.loads(payload)
            assert item[3][0] == (b"F" if prev is None else b"D")
            last, built = zonesync._build_versions(payload, snaps)  # type: ignore[arg-type]
            ((name, _serial, snap, lacked),) = built
            assert last == seq and not lacked and snap is not None
            assert set(records(snapshot_model(snap))) == set(records(zone))
            assert shape(snap) == shape(build_from_model(zone))
            snaps[name] = snap
            prev = zone
            zone = sign_changes(
                zone, random_change(rng, zone), keys, params, NOW + step, fresh_until=NOW + 999
            ).zone


def test_a_change_without_its_base_asks_for_the_whole_zone() -> None:
    keys = ksk_zsk()
    params = SignParams(serial="increment")
    first = sign_zone(zone_from(), keys, params, NOW).zone
    second = sign_changes(
        first, random_change(random.Random(1), first), keys, params, NOW + 1, fresh_until=NOW + 9
    ).zone
    payload = zonesync._pack_versions([(2, "z", second.soa().serial, second, first, None)])
    _, built = zonesync._build_versions(payload, {})
    assert built == [("z", second.soa().serial, None, True)]


def test_unrelated_models_travel_whole() -> None:
    keys = ksk_zsk()
    a = sign_zone(zone_from(), keys, SignParams(), NOW).zone
    b = sign_zone(zone_from(), keys, SignParams(), NOW + 5).zone  # re-signed: nothing shared
    # (no node shared: every owner differs; the small test zone still fits a change)
    change = zonesync.version_change(a, b)
    assert change is not None
    assert set(records(apply(a, change))) == set(records(b))


def _rec(owner: str, rtype: int, ttl: int, rdata: bytes) -> tuple[dns.name.Name, int, int, bytes]:
    return (dns.name.from_text(owner, ORIGIN), rtype, ttl, rdata)


# Changes that stay O(change) and ones that take update_from_model's fallback (a zone cut
# or a DNAME comes or goes, an empty non-terminal is made or ends), applied in turn.
STRUCTURAL = [
    ZoneDiff(added=(_rec("new", T.A, 300, bytes([192, 0, 2, 99])),)),
    ZoneDiff(added=(_rec("newcut", T.NS, 300, b"\x02ns\x05other\x03net\x00"),)),
    ZoneDiff(removed=(_rec("dn", T.DNAME, 300, b"\x05other\x03net\x00"),)),
    ZoneDiff(added=(_rec("p.q.r", T.A, 300, bytes([192, 0, 2, 98])),)),
    ZoneDiff(removed=(_rec("a.b.c.ent", T.A, 300, bytes([192, 0, 2, 3])),)),
    ZoneDiff(removed=(_rec("newcut", T.NS, 300, b"\x02ns\x05other\x03net\x00"),)),
    ZoneDiff(
        removed=(_rec("mail", T.A, 300, bytes([192, 0, 2, 2])),),
        added=(_rec("mail", T.A, 60, bytes([192, 0, 2, 2])),),
    ),
    ZoneDiff(removed=(_rec("p.q.r", T.A, 300, bytes([192, 0, 2, 98])),)),
]


@pytest.mark.parametrize("nsec3", [None, Nsec3Params(), Nsec3Params(salt=b"\xab", opt_out=True)])
def test_a_change_applied_to_the_snapshot_equals_a_build(
    nsec3: Nsec3Params | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker applies a version's change to the snapshot it serves (no model kept):
    the snapshot equals one built from the new version's model, also where a cut, a DNAME
    or an empty non-terminal changes (the fallback reads the whole zone back)."""
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial="increment")
    zone = sign_zone(zone_from(), keys, params, NOW).zone
    snap = build_from_model(zone)
    assert set(records(snapshot_model(snap))) == set(records(zone))
    whole: list[int] = []  # the steps that read the whole zone back (the fallback)
    read_back = snapshot.snapshot_model

    def counted(s: snapshot.ZoneSnapshot) -> Zone:
        whole.append(step)
        return read_back(s)

    monkeypatch.setattr(snapshot, "snapshot_model", counted)
    for step, change in enumerate(STRUCTURAL):
        new = sign_changes(zone, change, keys, params, NOW + step, fresh_until=NOW + 999).zone
        diff = zonesync.version_change(zone, new)
        assert diff is not None
        got = update_from_diff(snap, diff)
        assert shape(got) == shape(build_from_model(new)), step
        assert set(records(snapshot_model(got))) == set(records(new)), step
        zone, snap = new, got
    assert 0 not in whole and 6 not in whole  # a new leaf, a TTL: O(change)
    assert {1, 2, 3, 5} <= set(whole)  # a cut or DNAME comes or goes, a new ENT


def test_a_big_zones_next_version_is_a_change_after_its_holder_replaced_it() -> None:
    """An UPDATE in a big zone: its holder serves the new version and drops the old one
    before the next is pushed; the push still has the old one and sends the change (it
    went whole, the worker rebuilding a 20k-name zone for each UPDATE: ~2 s instead of
    ~10 ms, update_commit_bench).  A small zone's is kept only while its holder keeps it."""
    import gc
    import weakref

    extra = "".join(f"h{i} 300 IN A 192.0.2.{i % 250 + 1}\n" for i in range(300))
    keys = ksk_zsk()
    params = SignParams(serial="increment")

    async def no_update(wire: bytes, client: str) -> bytes:
        return b""

    for text, kept in ((zone_from_text_with(extra), True), (None, False)):
        first = sign_zone(zone_from() if text is None else text, keys, params, NOW).zone
        links = zonesync.MainLinks([], no_update)
        links.push("z", first.soa().serial, first)
        links._queue.get_nowait()  # (its frame went out)
        second = sign_changes(
            first, random_change(random.Random(3), first), keys, params, NOW + 1,
            fresh_until=NOW + 9,
        ).zone  # fmt: skip
        gone = weakref.ref(first)
        del first
        gc.collect()
        links.push("z", second.soa().serial, second)
        *_, prev, _names = links._queue.get_nowait()
        assert (prev is not None) is kept
        assert (gone() is not None) is kept


def zone_from_text_with(extra: str) -> Zone:
    from .conftest import FEATURE_ZONE

    return zone_from(FEATURE_ZONE + extra)
