"""``zone.diff.apply`` costs O(change) and gives what a rebuild of the whole zone gives."""

from __future__ import annotations

import random

import dns.name
import dns.rdatatype

from dnsseal.zone.diff import ZoneDiff, apply, diff, diff_at, records, touched
from dnsseal.zone.model import Zone, ZoneBuilder

T = dns.rdatatype
ORIGIN = dns.name.from_text("example.")


def rebuild_apply(zone: Zone, change: ZoneDiff) -> Zone:
    """The former ``apply``: every record of the zone through a builder."""
    gone = {(name.canonicalize(), t, rd) for name, t, _, rd in change.removed}
    b = ZoneBuilder(zone.origin, zone.rdclass)
    for name, t, ttl, rd in records(zone):
        if (name, t, rd) not in gone:
            b.add(name, t, ttl, rd)
    for name, t, ttl, rd in change.added:
        b.add(name, t, ttl, rd)
    return b.build()


def same(a: Zone, b: Zone) -> bool:
    return set(records(a)) == set(records(b)) and a.rrsets.keys() == b.rrsets.keys()


def random_record(rng: random.Random) -> tuple[dns.name.Name, int, int, bytes]:
    name = dns.name.from_text(f"{rng.choice(['a', 'B', 'c', 'd.e'])}.example.")
    kind = rng.randrange(3)
    ttl = rng.choice([60, 300, 3600])
    if kind == 0:
        return (name, T.A, ttl, bytes([10, 0, 0, rng.randrange(4)]))
    if kind == 1:
        return (name, T.TXT, ttl, b"\x01" + bytes([97 + rng.randrange(3)]))
    covered = rng.choice([T.A, T.TXT])
    rd = covered.to_bytes(2, "big") + bytes([8, 2]) + bytes(14) + bytes([rng.randrange(3)])
    return (name, T.RRSIG, ttl, rd)


def test_apply_matches_rebuild_on_random_changes() -> None:
    rng = random.Random(15)
    b = ZoneBuilder(ORIGIN)
    b.add(ORIGIN, T.SOA, 3600, b"\x00\x00" + bytes(20))
    zone = b.build()
    for _ in range(400):
        existing = list(records(zone))
        removed = tuple(rng.sample(existing, min(len(existing), rng.randrange(3))))
        added = tuple(random_record(rng) for _ in range(rng.randrange(4)))
        change = ZoneDiff(removed, added)
        want = rebuild_apply(zone, change)
        got = apply(zone, change)
        assert same(got, want)
        assert diff_at(zone, got, touched(change)) == diff(zone, want)
        zone = got


def test_apply_shares_unchanged_nodes() -> None:
    b = ZoneBuilder(ORIGIN)
    b.add(ORIGIN, T.SOA, 3600, b"\x00\x00" + bytes(20))
    for i in range(50):
        b.add(dns.name.from_text(f"h{i}.example."), T.A, 300, bytes([10, 0, 0, i]))
    zone = b.build()
    new = apply(zone, ZoneDiff((), ((dns.name.from_text("h1.example."), T.A, 300, bytes(4)),)))
    h2 = dns.name.from_text("h2.example.")
    assert new.rrsets[h2] is zone.rrsets[h2]
    assert len(new.rrsets[dns.name.from_text("h1.example.")][T.A].rdatas) == 2
