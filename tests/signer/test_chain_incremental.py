"""``chain_sign_changes``: names added and removed in O(change) give exactly what the full
path gives (deterministic ECDSA, pinned time), version after version, for NSEC and NSEC3;
the result passes the external verifiers."""

from __future__ import annotations

import random
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone
from dnsseal.signer.incremental import chain_sign_changes, full_sign_changes
from dnsseal.zone import canonical
from dnsseal.zone.diff import ZoneDiff, apply, records
from dnsseal.zone.model import Zone
from dnsseal.zone.text import format_zone

from .conftest import NOW, ORIGIN, external_verify, ksk_zsk, write, zone_from

T = dns.rdatatype
LABELS = ["a", "b", "c", "host1", "host2", "zz", "m.a", "x.y", "deep.b", "*.wild", "sub.c"]


def random_change(rng: random.Random, zone: Zone) -> ZoneDiff:
    """Adds (at new and existing names), deletions of records and of whole names."""
    removed: list[tuple[dns.name.Name, int, int, bytes]] = []
    added: list[tuple[dns.name.Name, int, int, bytes]] = []
    for _ in range(rng.randrange(1, 4)):
        what = rng.randrange(4)
        name = dns.name.from_text(rng.choice(LABELS), ORIGIN)
        if what == 0:
            added.append((name, T.A, 300, bytes([192, 0, 2, rng.randrange(256)])))
        elif what == 1:
            added.append((name, T.TXT, 300, b"\x02t" + bytes([97 + rng.randrange(5)])))
        else:
            mine = [r for r in records(zone) if r[1] in (T.A, T.TXT) and r[0].labels[0] in
                    {n.split(".")[0].encode() for n in LABELS}]  # fmt: skip
            if not mine:
                continue
            if what == 2:
                removed.append(rng.choice(mine))
            else:  # a whole name goes
                gone = rng.choice(mine)[0]
                removed += [r for r in mine if r[0] == gone]
    return ZoneDiff(tuple(removed), tuple(added))


@pytest.mark.parametrize("nsec3", [None, Nsec3Params(), Nsec3Params(salt=b"\xc0\xff")])
def test_chain_path_equals_full_path(nsec3: Nsec3Params | None) -> None:
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial="increment")
    zone = sign_zone(zone_from(), keys, params, NOW).zone
    rng = random.Random(2026 if nsec3 is None else 5155)
    took = 0
    for step in range(40):
        change = random_change(rng, zone)
        now = NOW + step
        full = full_sign_changes(zone, change, keys, params, now)
        chained = chain_sign_changes(zone, change, keys, params, now)
        if chained is not None:
            took += 1
            assert format_zone(chained.zone) == format_zone(full.zone)
            assert chained.diff == full.diff
            assert apply(zone, chained.diff) == chained.zone
        via = sign_changes(zone, change, keys, params, now, fresh_until=now + 1)
        assert format_zone(via.zone) == format_zone(full.zone)
        zone = via.zone
    assert took >= 20  # most of these changes take the O(change) path


@pytest.mark.parametrize("nsec3", [None, Nsec3Params()])
def test_chain_path_declines_structure(nsec3: Nsec3Params | None) -> None:
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial="increment")
    zone = sign_zone(zone_from(), keys, params, NOW).zone
    ns = canonical.name_wire(dns.name.from_text("ns1", ORIGIN))
    for change in (
        ZoneDiff(added=((dns.name.from_text("cut", ORIGIN), T.NS, 300, ns),)),
        ZoneDiff(added=((ORIGIN, T.TXT, 300, b"\x01x"),)),
        ZoneDiff(added=((dns.name.from_text("x.insec", ORIGIN), T.A, 300, bytes(4)),)),
    ):
        assert chain_sign_changes(zone, change, keys, params, NOW) is None
    # A new name under a new empty non-terminal: NSEC takes it, NSEC3 declines.
    ent = ZoneDiff(added=((dns.name.from_text("q.new-ent", ORIGIN), T.A, 300, bytes(4)),))
    got = chain_sign_changes(zone, ent, keys, params, NOW)
    assert (got is None) == (nsec3 is not None)


@pytest.mark.interop
@pytest.mark.parametrize("nsec3", [None, Nsec3Params()])
def test_chain_path_result_accepted_by_verifiers(nsec3: Nsec3Params | None, tmp_path: Path) -> None:
    from dnsseal import clock

    now = clock.now()
    keys = ksk_zsk(13)
    params = SignParams(nsec3=nsec3, serial="increment")
    zone = sign_zone(zone_from(), keys, params, now).zone
    rng = random.Random(7)
    for _ in range(15):
        change = random_change(rng, zone)
        zone = sign_changes(zone, change, keys, params, now, fresh_until=now + 1).zone
    external_verify(write(zone, tmp_path / "z.signed"))


def test_the_chain_index_does_not_keep_a_version_alive() -> None:
    """Regression: the chain index of the last version signed by the chain path held that
    version (a whole zone) after the server moved past it, and forever for a removed zone.
    It now follows the version: gone with it, while the index of a live version is used."""
    import gc
    import weakref

    from dnsseal.signer import incremental

    keys = ksk_zsk()
    params = SignParams(serial="increment")
    zone = sign_zone(zone_from(), keys, params, NOW).zone
    added = ((dns.name.from_text("new", ORIGIN), T.A, 300, bytes([192, 0, 2, 7])),)
    changed = chain_sign_changes(zone, ZoneDiff((), added), keys, params, NOW)
    assert changed is not None
    version = changed.zone
    index = incremental._INDEXES[ORIGIN]
    held = index.zone() if callable(index.zone) else index.zone  # (a plain reference before)
    assert held is version  # the next change finds it
    del index, held
    probe = weakref.ref(version)
    del changed, version
    gc.collect()
    assert probe() is None, "the index kept the version alive"
    assert ORIGIN not in incremental._INDEXES
