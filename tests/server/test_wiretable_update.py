"""A zone's answer tables updated at the owners a version changed answer exactly like tables
built at once for that version.

Random UPDATE-like changes (names added and removed, records added to and removed from
names, empty non-terminals appearing and going, wildcards, delegations with glue) are
signed incrementally (NSEC, NSEC3, NSEC3 opt-out), each version made from the one before
with ``update_from_model`` and handed to a long-lived :class:`Engine`, as the server and its
workers do.  After each, the engine's byte table must hold what a table built from scratch
for that version holds (the same entries, the same sort keys and NSEC3 lists for the C
lane), and both must give the same bytes, from :meth:`WireTable.answer` and from the C
lanes, for queries at every name and beside it (positive, NODATA, NXDOMAIN, wildcard,
referral), with and without DO.
"""

from __future__ import annotations

import random
from typing import Any

import dns.message
import dns.name
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, update_from_model
from dnsseal.proto.wiretable import WireTable, wire_zone
from dnsseal.server import udp
from dnsseal.server.zonesync import version_change
from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone
from dnsseal.zone import canonical
from dnsseal.zone.diff import ZoneDiff, apply, diff, records
from dnsseal.zone.model import Zone
from dnsseal.zone.text import parse_zone_text
from signer.conftest import NOW, ORIGIN, ksk_zsk, zone_from

T = dns.rdatatype
# Owners the changes play with: new leaves, deep names (their parents become empty
# non-terminals), names under the wildcard and new wildcards, a new delegation.
LABELS = ["a", "b", "c", "d", "e", "host1", "host2", "mail", "ns1", "x.mail", "p.q.r", "q.r",
          "x.p.q.r", "*.b", "*.wild", "n.wild", "deep.b", "z.a.b.c.ent", "ent", "*.new",
          "*.mail", "*.host1", "*.a"]  # fmt: skip
QTYPES = (T.A, T.TXT, T.MX, T.AAAA, T.NS, T.SOA, T.CNAME, T.NSEC)
PARAMS = {
    "nsec": None,
    "nsec3": Nsec3Params(),
    "optout": Nsec3Params(opt_out=True),
}
_SIGNED: dict[str, Zone] = {}


def _signed(kind: str) -> Zone:
    if kind not in _SIGNED:
        params = SignParams(nsec3=PARAMS[kind], serial="increment")
        _SIGNED[kind] = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone
    return _SIGNED[kind]


def _keys() -> list[object]:
    return ksk_zsk()  # type: ignore[return-value]


def _name(label: str) -> dns.name.Name:
    return dns.name.from_text(label, ORIGIN)


@st.composite
def _change(draw: st.DrawFn, zone: Zone) -> ZoneDiff:
    removed: list[tuple[dns.name.Name, int, int, bytes]] = []
    added: list[tuple[dns.name.Name, int, int, bytes]] = []
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.integers(0, 4))
        name = _name(draw(st.sampled_from(LABELS)))
        if what == 0:
            added.append((name, T.A, 300, bytes([192, 0, 2, draw(st.integers(0, 255))])))
        elif what == 1:
            added.append((name, T.TXT, 300, b"\x02t" + bytes([97 + draw(st.integers(0, 4))])))
        elif what == 2:
            cut = _name(draw(st.sampled_from(["del1", "del2"])))
            glue = dns.name.Name((b"ns", *cut.labels))
            added.append((cut, T.NS, 300, canonical.name_wire(glue)))
            added.append((glue, T.A, 300, bytes([192, 0, 2, 99])))
        else:
            ours = {_name(x) for x in (*LABELS, "del1", "del2", "ns.del1")}
            mine = [r for r in records(zone) if r[1] in (T.A, T.TXT, T.NS) and r[0] in ours]
            if not mine:
                continue
            gone = mine[draw(st.integers(0, len(mine) - 1))]
            if what == 3:
                removed.append(gone)
            else:  # the whole name
                removed += [r for r in mine if r[0] == gone[0]]
    return ZoneDiff(tuple(removed), tuple(added))


def _queries(snap: ZoneSnapshot, rng: random.Random) -> list[bytes]:
    names = [*snap.nodes, *snap.ents, *snap.nsec3_nodes]
    more = []
    for n in names:
        more.append(dns.name.Name((b"zz-nx", *n.labels)))
        more.append(dns.name.Name((b"a", b"0", *n.labels)))
    more += [_name(x) for x in LABELS if not x.startswith("*")]
    more += [_name("nothing.wild"), _name("x.b"), _name("y.new"), _name("x.del1")]
    out = []
    for name in [*names, *more]:
        qtype = rng.choice(QTYPES)
        q = dns.message.make_query(name, qtype, want_dnssec=rng.random() < 0.7, payload=4096)
        q.id = rng.randrange(65536)
        out.append(q.to_wire())
    return out


def _same_table(table: WireTable, fresh: WireTable) -> None:
    assert table.names.keys() == fresh.names.keys()
    for key, entry in fresh.names.items():
        got = table.names[key]
        assert got[0].current.snap is entry[0].current.snap
        assert all(a is b for a, b in zip(got[1:], entry[1:], strict=True)), key
    assert table.exist.keys() == fresh.exist.keys()
    for key, slot in fresh.exist.items():
        mine = table.exist[key]
        assert (mine is None) == (slot is None), key
        if mine is not None and slot is not None:
            assert (
                mine.current
                is table.zones[
                    b"".join(bytes((len(lb),)) + lb for lb in mine.current.snap.origin.labels)
                ]
            )
    for key, wz in fresh.zones.items():
        mine = table.zones[key]
        assert mine.snap is wz.snap
        assert mine.nsec_sort == wz.nsec_sort
        assert mine.nsec3_digests == wz.nsec3_digests
        assert all(a is b for a, b in zip(mine.nsec3_owners, wz.nsec3_owners, strict=True))
        assert (mine.walk, mine.signed, mine.nsec, mine.soa, mine.soa_sig) == (
            wz.walk, wz.signed, wz.nsec, wz.soa, wz.soa_sig)  # fmt: skip


def _same_answers(
    engine: Engine, snap: ZoneSnapshot, rng: random.Random, *others: ZoneSnapshot
) -> None:
    """``engine`` (serving ``snap`` and ``others``) answers like one made at once."""
    native = udp._udpfast
    assert native is not None  # (test_udpfast.py says why it must be built)
    fresh = Engine({s.origin: ServedZone(s) for s in (snap, *others)})
    _same_table(engine.wire, fresh.wire)
    for wire in [w for s in (snap, *others) for w in _queries(s, rng)]:
        tcp = rng.random() < 0.3
        want = fresh.wire.answer(wire, tcp, 1232)
        assert engine.wire.answer(wire, tcp, 1232) == want, dns.message.from_wire(wire)
        assert engine.handle(wire, tcp) == fresh.handle(wire, tcp)
        for table in (engine.wire, fresh.wire):
            got = native.answer(wire, None, table.names, table.exist, 1232)
            if got is not None:
                assert got == fresh.wire.answer(wire, False, 1232), dns.message.from_wire(wire)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(data=st.data(), kind=st.sampled_from(sorted(PARAMS)))
def test_a_table_updated_at_the_changed_owners_answers_like_one_built_at_once(
    data: st.DataObject, kind: str
) -> None:
    keys = _keys()
    params = SignParams(nsec3=PARAMS[kind], serial="increment")
    zone = _signed(kind)
    snap = build_from_model(zone)
    engine = Engine({snap.origin: ServedZone(snap)})
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for step in range(data.draw(st.integers(1, 4))):
        change = data.draw(_change(zone))
        now = NOW + 60 * (step + 1)
        new = sign_changes(zone, change, keys, params, now, fresh_until=now + 3600).zone  # type: ignore[arg-type]
        made = diff(zone, new)
        names = {r[0] for r in (*made.removed, *made.added)}
        snap = update_from_model(snap, new, names)
        engine.replace_zone(snap.origin, ServedZone(snap))
        _same_answers(engine, snap, rng)
        # What is sent to the workers is the version's own change, whether its owners
        # are found by comparing the versions or known from the snapshot.
        for known in (None, snap.changed if snap.base is not None else None):
            sent = version_change(zone, new, known)
            assert sent is not None
            assert (set(sent.removed), set(sent.added)) == (set(made.removed), set(made.added))
        zone = new


def _add(zone: Zone, label: str, now: int) -> Zone:
    change = ZoneDiff((), ((_name(label), T.A, 300, bytes([192, 0, 2, 7])),))
    params = SignParams(serial="increment")
    return sign_changes(zone, change, _keys(), params, now, fresh_until=now + 3600).zone  # type: ignore[arg-type]


def test_a_new_name_changes_only_its_own_entries_and_its_neighbours() -> None:
    """One owner added: no zone's entries computed again, the entries of the other
    names are the same objects, and the slot now serves the new version."""
    zone = _signed("nsec")
    snap = build_from_model(zone)
    engine = Engine({snap.origin: ServedZone(snap)})
    table = engine.wire
    before = dict(table.names)
    built = table.rebuilt
    new = _add(zone, "brand-new", NOW + 60)
    made = diff(zone, new)
    after = update_from_model(snap, new, {r[0] for r in (*made.removed, *made.added)})
    engine.replace_zone(after.origin, ServedZone(after))
    assert table.rebuilt == built  # no zone walked again
    changed = {b"".join(bytes((len(lb),)) + lb for lb in k) for k in after.changed}
    for key, entry in before.items():
        if key not in changed:
            assert table.names[key] is entry  # the very same entry
    slot = table.names[_name("mail").to_wire()][0]
    assert slot.current.snap is after
    assert wire_zone(after).nsec_sort == table.zones[_name("@").to_wire()].nsec_sort
    _same_answers(engine, after, random.Random(1))


SCRIPT = [
    ("add", "*.mail"),  # a wildcard below an owner: NXDOMAIN below mail is no longer plain
    ("add", "new1"),
    ("add", "x.mail"),
    ("del", "*.mail"),
    ("add", "new2"),
    ("del", "new1"),
    ("add", "*.host9"),  # a wildcard and its new parent (an empty non-terminal) together
    ("del", "x.mail"),
]


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_scripted_changes_with_wildcards_answer_like_a_table_built_at_once(kind: str) -> None:
    keys = _keys()
    params = SignParams(nsec3=PARAMS[kind], serial="increment")
    zone = _signed(kind)
    snap = build_from_model(zone)
    engine = Engine({snap.origin: ServedZone(snap)})
    steps = 0
    for i, (what, label) in enumerate(SCRIPT):
        rec = (_name(label), T.TXT, 300, b"\x01s")
        change = ZoneDiff((), (rec,)) if what == "add" else ZoneDiff((rec,), ())
        now = NOW + 60 * (i + 1)
        new = sign_changes(zone, change, keys, params, now, fresh_until=now + 3600).zone  # type: ignore[arg-type]
        made = diff(zone, new)
        snap = update_from_model(snap, new, {r[0] for r in (*made.removed, *made.added)})
        built = engine.wire.rebuilt
        engine.replace_zone(snap.origin, ServedZone(snap))
        steps += engine.wire.rebuilt == built
        _same_answers(engine, snap, random.Random(i))
        zone = new
    assert steps >= 5  # most took the O(change) path


def _nsec_zone(n: int) -> Zone:
    """A zone of ``n`` hosts, each with an NSEC record (the chain's shape, no signatures:
    update_from_model keeps the order from them)."""
    lines = ["$TTL 300", "@ SOA ns hostmaster 1 60 30 600 60", "@ NS ns", "@ NSEC ns NS SOA NSEC"]
    lines.append("ns A 192.0.2.1\nns NSEC host0 A NSEC")
    for i in range(n):
        lines.append(f"host{i} A 192.0.2.2\nhost{i} NSEC host{i + 1} A NSEC")
    zone = parse_zone_text("\n".join(lines) + "\n", ORIGIN)
    # owners as plain dnspython names, as a signed version holds many of them
    plain = {dns.name.Name(n.labels): node for n, node in zone.rrsets.items()}
    return Zone(zone.origin, plain, {}, zone.rdclass)


def test_a_version_after_a_removal_compares_few_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner maps of a version are copied as they are: after an owner was removed (a
    hole in the map), a copy made with dict() inserted every owner again and compared the
    many whose dnspython hashes collide (a third of 100,000 ``hostN`` names), each
    comparison dnspython's ``fullcompare`` in Python."""
    zone = _nsec_zone(3000)
    snap = build_from_model(zone)
    gone = [r for r in records(zone) if r[0] == _name("host10")]
    zone1 = apply(zone, ZoneDiff(tuple(gone), ()))
    snap1 = update_from_model(snap, zone1, {_name("host10")})
    host5 = _name("host5")
    assert snap1.nodes[host5] is snap.nodes[host5]  # made from the one before, not built again
    calls = [0]
    real = dns.name.Name.__eq__

    def counting(self: dns.name.Name, other: object) -> bool:
        calls[0] += 1
        return bool(real(self, other))

    monkeypatch.setattr(dns.name.Name, "__eq__", counting)
    add = (_name("brand-new"), T.A, 300, bytes([192, 0, 2, 9]))
    zone2 = apply(zone1, ZoneDiff((), (add,)))
    snap2 = update_from_model(snap1, zone2, {_name("brand-new")})
    assert snap2.nodes[host5] is snap.nodes[host5]
    assert calls[0] < 50, calls[0]


def test_the_workers_get_the_changed_owners_without_a_walk_over_the_zone() -> None:
    """version_change with the snapshot's changed owners reads the two versions at those
    owners only (the identity scan looked up every owner of both)."""

    class NoWalk(dict[dns.name.Name, Any]):
        def __iter__(self) -> Any:
            raise AssertionError("the zone's owners were walked")

        def items(self) -> Any:
            raise AssertionError("the zone's owners were walked")

        def keys(self) -> Any:
            raise AssertionError("the zone's owners were walked")

    zone = _nsec_zone(50)
    add = (_name("brand-new"), T.A, 300, bytes([192, 0, 2, 9]))
    new = apply(zone, ZoneDiff((), (add,)))
    guarded = [Zone(z.origin, NoWalk(z.rrsets), NoWalk(z.rrsigs), z.rdclass) for z in (zone, new)]
    change = version_change(*guarded, [_name("brand-new").labels])
    assert change is not None and change.added == (add,) and change.removed == ()
    with pytest.raises(AssertionError, match="walked"):
        version_change(*guarded)


CHILD = """$TTL 300
@ SOA ns hostmaster 1 60 30 600 60
@ NS ns
ns A 192.0.2.1
www A 192.0.2.2
a.b TXT "deep"
"""


@pytest.mark.parametrize("kind", ["nsec", "nsec3"])
def test_a_zone_with_a_served_zone_inside_it_updated_at_its_changed_owners(kind: str) -> None:
    """The parent's names inside the child zone are the child's: the updated parent's
    entries settle against it as a table made at once does."""
    keys = _keys()
    params = SignParams(nsec3=PARAMS[kind], serial="increment")
    zone = _signed(kind)
    snap = build_from_model(zone)
    child = build_from_model(parse_zone_text(CHILD, _name("in")))
    engine = Engine({snap.origin: ServedZone(snap), child.origin: ServedZone(child)})
    steps = 0
    for i, label in enumerate(["in", "x.in", "www.in", "new1", "*.in", "*.mail"]):
        rec = (_name(label), T.TXT, 300, b"\x01p")
        now = NOW + 60 * (i + 1)
        new = sign_changes(
            zone, ZoneDiff((), (rec,)), keys, params, now, fresh_until=now + 3600
        ).zone  # type: ignore[arg-type]
        made = diff(zone, new)
        snap = update_from_model(snap, new, {r[0] for r in (*made.removed, *made.added)})
        built = engine.wire.rebuilt
        engine.replace_zone(snap.origin, ServedZone(snap))
        steps += engine.wire.rebuilt == built
        _same_answers(engine, snap, random.Random(i), child)
        zone = new
    assert steps >= 4
