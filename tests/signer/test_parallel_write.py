"""Writing a zone with several forked writer processes gives the bytes one writer gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dnsseal.signer import Nsec3Params, SignParams, sign_zone
from dnsseal.storage import zonefile

from .conftest import NOW, ksk_zsk, zone_from
from .test_property import zone_text

ROLES = ["host", "txt", "mx", "cname", "insecure", "secure", "wild"]


def _random_entries(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    labels = ["a", "b", "host", "x-1", "zz", "Mail", "0", "w"]
    return [
        (".".join(rng.choice(labels) + str(rng.randrange(30)) for _ in range(rng.randint(1, 3))),
         rng.choice(ROLES))
        for _ in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_parallel_write_is_byte_identical(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zonefile, "PARALLEL_WRITE_MIN_NAMES", 4)
    nsec3 = [None, Nsec3Params(), Nsec3Params(opt_out=True)][seed % 3]
    zone = zone_from(zone_text(_random_entries(seed, 60)))
    signed = sign_zone(zone, ksk_zsk(), SignParams(nsec3=nsec3), NOW).zone
    for z in (zone, signed):
        zonefile.write_zone(tmp_path / "one", z, header=["test"])
        want = (tmp_path / "one").read_bytes()
        for workers in (2, 3, 5):
            zonefile.write_zone(tmp_path / "many", z, header=["test"], workers=workers)
            assert (tmp_path / "many").read_bytes() == want, workers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many", "one"]  # no parts left


def test_small_zones_and_one_worker_write_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork(*args: object) -> None:
        raise AssertionError("forked a writer")

    monkeypatch.setattr(zonefile, "_write_slice", no_fork)
    zone = zone_from(zone_text(_random_entries(1, 30)))
    zonefile.write_zone(tmp_path / "z", zone, workers=4)  # far below the threshold
    monkeypatch.setattr(zonefile, "PARALLEL_WRITE_MIN_NAMES", 4)
    zonefile.write_zone(tmp_path / "z", zone, workers=1)
    assert zonefile.read_zone(tmp_path / "z", zone.origin) == zone


def test_a_failed_writer_is_an_error_naming_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(part: Path, *args: object) -> None:
        raise SystemExit(3)

    monkeypatch.setattr(zonefile, "PARALLEL_WRITE_MIN_NAMES", 4)
    monkeypatch.setattr(zonefile, "_write_slice", broken)
    zone = zone_from(zone_text(_random_entries(2, 60)))
    with pytest.raises(zonefile.StorageError, match="zone writer process failed"):
        zonefile.write_zone(tmp_path / "z", zone, workers=2)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a part or temp file
