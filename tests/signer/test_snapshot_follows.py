"""``update_from_model``: a snapshot updated at the names a version changed answers like
one built from the whole zone (same nodes, chains, cuts, empty non-terminals)."""

from __future__ import annotations

import random

import pytest

from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, update_from_model
from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone
from dnsseal.zone.diff import diff

from .conftest import NOW, ksk_zsk, zone_from
from .test_chain_incremental import random_change


def shape(s: ZoneSnapshot) -> dict[str, object]:
    def node(n: object) -> object:
        return (
            {t: sorted(map(str, rr)) for t, rr in n.rrsets.items()},  # type: ignore[attr-defined]
            {t: sorted(map(str, rr)) for t, rr in n.sigs.items()},  # type: ignore[attr-defined]
        )

    return {
        "serial": s.serial,
        "nodes": {k: node(v) for k, v in s.nodes.items()},
        "nsec3_nodes": {k: node(v) for k, v in s.nsec3_nodes.items()},
        "by_key": sorted(s.by_key),
        "by_hash": sorted(s.nsec3_by_hash),
        "hashes": s.nsec3_hashes,
        "nsec": (s.nsec_keys, s.nsec_sort, s.nsec_names, [n.name for n in s.nsec_nodes]),
        "same_nodes": all(s.nsec_nodes[i] is s.nodes[n] for i, n in enumerate(s.nsec_names)),
        "structure": (s.ents, s.cuts, s.has_dname, s.ent_keys, s.cut_keys, s.nsec3),
        "negative": [str(r) for r in s.negative_soa],
    }


@pytest.mark.parametrize("nsec3", [None, Nsec3Params()])
def test_updated_snapshot_equals_a_full_build(nsec3: Nsec3Params | None) -> None:
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial="increment")
    zone = sign_zone(zone_from(), keys, params, NOW).zone
    snap = build_from_model(zone)
    rng = random.Random(99)
    for step in range(30):
        change = random_change(rng, zone)
        new = sign_changes(zone, change, keys, params, NOW + step, fresh_until=NOW + 999).zone
        names = {r[0] for r in (*diff(zone, new).removed, *diff(zone, new).added)}
        snap = update_from_model(snap, new, names)
        assert shape(snap) == shape(build_from_model(new))
        zone = new
