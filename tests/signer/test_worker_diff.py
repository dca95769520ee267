"""A new version goes to the worker processes as its change when the worker has the
version before it (an UPDATE's version: the whole 100k-name zone was packed, sent, unpacked
and built again for each one, about a second per UPDATE): the worker's model and snapshot
after applying the change equal the main process's."""

from __future__ import annotations

import pickle
import random

from dnsseal.proto.snapshot import build_from_model
from dnsseal.server import zonesync
from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone
from dnsseal.zone.diff import apply, records

from .conftest import NOW, ksk_zsk, zone_from
from .test_chain_incremental import random_change
from .test_snapshot_follows import shape


def test_versions_travel_as_changes_and_rebuild_the_same() -> None:
    for nsec3 in (None, Nsec3Params()):
        keys = ksk_zsk()
        params = SignParams(nsec3=nsec3, serial="increment")
        zone = sign_zone(zone_from(), keys, params, NOW).zone
        rng = random.Random(2136)
        models: dict[str, object] = {}
        snaps: dict[str, object] = {}
        prev = None
        for step in range(15):
            seq = step + 1
            payload = zonesync._pack_versions([(seq, "z", zone.soa().serial, zone, prev, None)])
            (item,) = pickle.loads(payload)
            assert item[3][0] == (b"F" if prev is None else b"D")
            last, built = zonesync._build_versions(payload, models, snaps)  # type: ignore[arg-type]
            ((name, _serial, snap, model, lacked),) = built
            assert last == seq and not lacked and snap is not None and model is not None
            assert set(records(model)) == set(records(zone))
            assert shape(snap) == shape(build_from_model(zone))
            models[name], snaps[name] = model, snap
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
    _, built = zonesync._build_versions(payload, {}, {})
    assert built == [("z", second.soa().serial, None, None, True)]


def test_unrelated_models_travel_whole() -> None:
    keys = ksk_zsk()
    a = sign_zone(zone_from(), keys, SignParams(), NOW).zone
    b = sign_zone(zone_from(), keys, SignParams(), NOW + 5).zone  # re-signed: nothing shared
    # (no node shared: every owner differs; the small test zone still fits a change)
    change = zonesync.version_change(a, b)
    assert change is not None
    assert set(records(apply(a, change))) == set(records(b))
