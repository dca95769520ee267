"""The earliest RRSIG expiration of a presigned zone's snapshot (the server's signature
horizon) is read from the stored wire: walking the zone must not parse every RRSIG into
dnspython objects, which the snapshot then keeps (a 100k-name zone grew by ~340 MiB a few
seconds after it started to answer)."""

from __future__ import annotations

import pytest

from dnsseal.proto.snapshot import LazyRRset, ZoneSnapshot, build_from_model, rrsig_expirations
from dnsseal.server.views import snapshot_horizon
from dnsseal.signer import Nsec3Params, SignParams, sign_zone

from .conftest import NOW, ksk_zsk, zone_from


@pytest.mark.parametrize("nsec3", [None, Nsec3Params()], ids=["nsec", "nsec3"])
def test_horizon_from_the_wire_parses_nothing(nsec3: Nsec3Params | None) -> None:
    params = SignParams(nsec3=nsec3, jitter=3600)
    zone = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone

    fresh = build_from_model(zone)
    made = _made(fresh)
    horizon = snapshot_horizon(fresh)
    assert _made(fresh) == made, "RRset objects were made for the walk (and kept)"

    snap = build_from_model(zone)  # now with every RRSIG RRset made, none parsed yet
    sigs = [
        rr
        for nodes in (snap.nodes, snap.nsec3_nodes)
        for n in nodes.values()
        for rr in n.sigs.values()
    ]
    assert sigs and all(isinstance(rr, LazyRRset) for rr in sigs)
    unparsed = [rr for rr in sigs if rr.unparsed() is not None]
    assert len(unparsed) > len(sigs) - 3  # (building parses the apex SOA's)
    assert snapshot_horizon(snap) == horizon
    assert all(getattr(rr, "_src", None) is not None for rr in unparsed), "an RRSIG was parsed"

    # The oracle: dnspython's parse of every RRSIG (done now, after the walks).
    expirations = [int(rd.expiration) for rr in sigs for rd in rr]
    assert horizon == min(expirations)
    assert len(set(expirations)) > 1  # jitter: the minimum is not just any signature's
    assert sorted(e for rr in sigs for e in rrsig_expirations(rr)) == sorted(expirations)


def _made(snap: ZoneSnapshot) -> int:
    """How many RRsets of the snapshot have been made into RRset objects."""
    return sum(
        len(getattr(t, "_done", None) or {})
        for nodes in (snap.nodes, snap.nsec3_nodes)
        for n in nodes.values()
        for t in (n.rrsets, n.sigs)
    )
