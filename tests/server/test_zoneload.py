"""A large zone file read in a child process gives the same snapshot as read here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dnsseal.errors import DnssealError
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, pack_owners, unpack_snapshot
from dnsseal.server import zoneload
from dnsseal.storage.zonefile import read_zone
from dnsseal.zone import model
from dnsseal.zone.text import parse_zone_text

from .conftest import SignedZone


def _same(a: ZoneSnapshot, b: ZoneSnapshot) -> None:
    assert (a.origin, a.serial, a.nsec3, a.has_dname) == (b.origin, b.serial, b.nsec3, b.has_dname)
    assert list(a.record_wires()) == list(b.record_wires())
    assert list(a.by_key) == list(b.by_key)
    assert list(a.nsec3_nodes) == list(b.nsec3_nodes)
    assert (a.ents, a.cuts, a.ent_keys, a.cut_keys) == (b.ents, b.cuts, b.ent_keys, b.cut_keys)
    assert a.nsec_sort == b.nsec_sort and a.nsec_names == b.nsec_names
    assert a.nsec3_hashes == b.nsec3_hashes
    for x, y in zip(a.nodes.values(), b.nodes.values(), strict=True):
        assert x.rrsets.counts == y.rrsets.counts and x.sigs.counts == y.sigs.counts  # type: ignore[attr-defined]


def test_unpacked_owners_are_the_snapshot_built_here(signed_zones: dict[str, SignedZone]) -> None:
    for z in signed_zones.values():
        zone = read_zone(z.path, z.origin)
        _same(build_from_model(zone), unpack_snapshot(pack_owners(zone, chunk=7)))


def test_a_zone_read_in_a_child_is_the_zone_read_here(
    signed_zones: dict[str, SignedZone], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zoneload, "APART_MIN_SIZE", 0)
    monkeypatch.setattr(zoneload, "build_from_model", None)  # (not read here)
    for z in signed_zones.values():
        _same(
            build_from_model(read_zone(z.path, z.origin)), zoneload.read_snapshot(z.path, z.origin)
        )


def test_the_child_reports_a_bad_file_as_reading_it_here_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.zone"
    bad.write_text("$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.300\n")
    no_soa = tmp_path / "nosoa.zone"
    no_soa.write_text("$TTL 60\n@ NS ns\nns A 192.0.2.1\n")
    for path in (bad, no_soa):
        with pytest.raises(DnssealError) as here:
            build_from_model(read_zone(path, "example."))
        monkeypatch.setattr(zoneload, "APART_MIN_SIZE", 0)
        with pytest.raises(DnssealError) as there:
            zoneload.read_snapshot(path, "example.")
        monkeypatch.undo()
        assert str(there.value) == str(here.value)
        assert path is no_soa or isinstance(there.value, zoneload.ZoneFileError)


def _fails_at_once(zone: model.Zone) -> Iterator[bytes]:
    raise RuntimeError("a bug in the child")


def _fails_midway(zone: model.Zone) -> Iterator[bytes]:
    parts = pack_owners(zone, chunk=1)
    yield next(parts)
    yield next(parts)
    raise RuntimeError("a bug in the child")


@pytest.mark.parametrize("broken", [_fails_at_once, _fails_midway])
def test_a_child_that_fails_leaves_the_file_to_be_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: Callable[[model.Zone], Iterator[bytes]]
) -> None:
    path = tmp_path / "ok.zone"
    path.write_text("$TTL 60\n@ SOA ns hm 7 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n")
    monkeypatch.setattr(zoneload, "APART_MIN_SIZE", 0)
    monkeypatch.setattr(zoneload, "pack_owners", broken)
    snap = zoneload.read_snapshot(path, "example.")
    assert snap.serial == 7
    _same(snap, build_from_model(parse_zone_text(path.read_text(), "example.")))
