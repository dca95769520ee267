"""Deterministic replays of bogus windows the property tests once found (one per bug),
with explicit policies and times, so each stays fixed whatever hypothesis explores."""

from __future__ import annotations

from dnsseal.crypto import software
from dnsseal.keymgr import safety
from dnsseal.keymgr.plan import RolloverRequest
from dnsseal.keymgr.rules import DNSKEY, Work, transition_safe
from dnsseal.keymgr.simulate import ParentVersion, Timeline, ZoneVersion
from dnsseal.keys import algorithms
from dnsseal.keys.model import FLAG_SEP, FLAG_ZONE, TIMING_FIELDS, Key, KeyId, RecordState
from dnsseal.policy.model import UNLIMITED, KeySpec, Policy
from dnsseal.signer import SigningKey
from dnsseal.signer.rrsig import Rrsig
from dnsseal.signer.sign import SignParams, sign_zone
from dnsseal.zone.model import Zone
from dnsseal.zone.text import parse_zone_text

from .helpers import DAY, HOUR, T0, ZONE, assert_safe, run

O, R, H, U = (  # noqa: E741 - the paper's letters
    RecordState.OMNIPRESENT,
    RecordState.RUMOURED,
    RecordState.HIDDEN,
    RecordState.UNRETENTIVE,
)

SHORT = Policy(
    "short",
    dnskey_ttl=300,
    publish_safety=0,
    retire_safety=0,
    purge_keys=0,
    signatures_refresh=172800,
    signatures_validity=345600,
    signatures_validity_dnskey=1209600,
    signatures_jitter=43200,
    max_zone_ttl=300,
    zone_propagation_delay=0,
    parent_ds_ttl=86400,
    parent_propagation_delay=300,
)


def _work(n: int, states: tuple[RecordState, ...], *, pred: int | None = None,
          succ: int | None = None, goal: RecordState = O) -> Work:  # fmt: skip
    key = Key(ZONE, FLAG_ZONE | FLAG_SEP, 8, bytes([n]) * 64, ttl=300)
    return Work(
        key=key, ksk=True, zsk=False, states=[states[0], None, states[1], states[2]],
        changes=[0, None, 0, 0], goal=goal, timings={f.attr: None for f in TIMING_FIELDS},
        lifetime=None, predecessor=pred, successor=succ,
    )  # fmt: skip


def test_orphan_ds_keeps_its_dnskey_while_another_ksk_rolls() -> None:
    """CSK -> KSK + ZSK, and the operator rolls the new KSK 2.5 hours later, while the
    old CSK's DS (withdrawn at the parent an hour after the change) may still be cached
    for a day.  The (3c) rule saw the KSK roll's pair (DS unretentive -> DS rumoured, both
    DNSKEYs omnipresent) and let the old CSK's DNSKEY leave while caches could still hold
    a DS RRset naming only the old CSK.  (Found by test_policy_changes_midway_never_bogus
    with 3-day lifetimes, where the new KSK's first scheduled roll did the same.)"""
    before = SHORT.replace(keys=(KeySpec("csk", 8, UNLIMITED),))
    after = SHORT.replace(keys=(KeySpec("ksk", 8, UNLIMITED), KeySpec("zsk", 8, UNLIMITED)))
    change = T0 + 5 * DAY
    first = run(before, 12, ds_delay=HOUR, scheduled=[(change, after)])
    ksk = next(k for k in first.keys.values() if k.role == "ksk")
    roll = change + 9000
    tl = run(before, 12, ds_delay=HOUR,
             scheduled=[(change, after), (roll, RolloverRequest(ksk.id, roll))])  # fmt: skip
    old = next(k for k in tl.keys.values() if k.role == "csk")
    # the scenario: the old CSK's DS left the parent before the KSK roll began...
    withdrawn = next(v.at for v in tl.parent if v.at > change and old.id not in v.ds)
    assert withdrawn < roll
    cached_until = withdrawn + SHORT.parent_ds_ttl + SHORT.parent_propagation_delay
    # ...and its DNSKEY (with its DNSKEY signature) stayed as long as that DS could be
    # cached
    last = max(v.at for v in tl.zone if old.id in v.dnskeys and old.id in v.ksk_signers)
    assert min(v.at for v in tl.zone if v.at > last) >= cached_until
    assert_safe(tl, before)


def test_dnskey_does_not_leave_while_only_an_unrelated_swap_is_chained() -> None:
    """The rule itself: key 1's DS is unretentive (no successor of its own); keys 2 -> 3
    swap their DS records.  Key 1's DNSKEY may not go unretentive, and may once its DS is
    hidden."""
    k1 = _work(1, (O, O, U), goal=H)
    k2 = _work(2, (O, O, U), succ=3, goal=H)
    k3 = _work(3, (O, O, R), pred=2)
    k2.successor, k3.predecessor = k3.tag, k2.tag
    keys = [k1, k2, k3]
    assert transition_safe(keys, k1, DNSKEY, U, False) == "a DS -> DNSKEY chain must stay"
    k1.states[3] = H
    assert transition_safe(keys, k1, DNSKEY, U, False) is None


def test_roll_held_back_by_a_leaving_key_starts_when_that_key_goes() -> None:
    """CSK lifetime 4 days, shorter than a roll really takes (DNSKEY TTL 1 day): the next
    roll is due while the previous old key is still leaving ("three is a crowd").  That
    key went hidden in the very step that held the roll back, so no later event was
    scheduled: next_event was None and the zone kept its key for ever."""
    p = SHORT.replace(
        keys=(KeySpec("csk", 8, 345900),), dnskey_ttl=86400, parent_ds_ttl=300,
        parent_propagation_delay=0, signatures_validity=345600, signatures_refresh=172800,
    )  # fmt: skip
    tl = run(p, 14, ds_delay=600)
    assert all(plan.next_event is not None for plan in tl.plans)
    csks = sorted((k for k in tl.keys.values() if k.role == "csk"),
                  key=lambda k: k.timings.created or 0)  # fmt: skip
    assert len(csks) == 4
    # the second successor comes the moment its predecessor's predecessor is gone
    first_gone = next(
        plan.now for plan in tl.plans
        for r in plan.keys
        if r.key.id == csks[0].id and r.key.state is not None and r.key.state.dnskey is H
    )  # fmt: skip
    assert csks[2].timings.created == first_gone == 1_700_605_400
    assert_safe(tl, p)


# -- checker: an algorithm that left and came back ------------------------------------


def _kid(alg: int, n: int) -> KeyId:
    return KeyId(alg, 1000 + n, bytes([n]) * 32)


def _version(at: int, *keys: KeyId, signers: tuple[KeyId, ...] | None = None) -> ZoneVersion:
    ks = frozenset(keys)
    zs = frozenset(signers) if signers is not None else ks
    return ZoneVersion(at, ks, ks, zs, frozenset(), False)


def _left_and_back(c_alg: int) -> tuple[Timeline, Policy, int]:
    """A (algorithm 13) signs; B (algorithm 15) takes over and A leaves; a day later C
    (``c_alg``) comes in and B leaves.  Signing delay 12 days, all TTLs 5 minutes."""
    p = SHORT.replace(parent_ds_ttl=300, signatures_validity=14 * DAY)
    a, b, c = _kid(13, 1), _kid(15, 2), _kid(c_alg, 3)
    t0 = T0
    zone = [
        _version(t0, a),
        _version(t0 + DAY, a, b),
        _version(t0 + DAY + HOUR, a, b, signers=(b,)),
        _version(t0 + DAY + 2 * HOUR, b),
        _version(t0 + 2 * DAY, b, c),
        _version(t0 + 2 * DAY + HOUR, c),
    ]
    tl = Timeline(p, t0, t0 + 3 * DAY, zone=zone, parent=[ParentVersion(t0, frozenset({a, b, c}))])
    return tl, p, t0 + 2 * DAY + 2 * HOUR


def test_checker_no_lingering_signatures_of_an_algorithm_that_left() -> None:
    """The checker used to let A's algorithm-13 signatures linger for the signing delay
    across the day the zone had no algorithm-13 signer, so when C (algorithm 13 again)
    came it assumed RRsets still signed by A alone, and called the zone bogus once B
    left (found by an algorithm change and back).  The engine lets the last key of an
    algorithm go without Dsgn, and the signer drops signatures of keys that no longer
    sign (test below): C signs the whole zone at once, like any new algorithm."""
    tl, p, t = _left_and_back(13)
    assert safety.check_at(tl, p, t) == []
    # ...while within one algorithm, with no gap, old signatures still linger: C of
    # algorithm 15 replacing B gradually leaves RRsets signed by B alone.
    tl15, p15, t15 = _left_and_back(15)
    assert [b.reason for b in safety.check_at(tl15, p15, t15)] != []


def test_signer_drops_signatures_of_an_algorithm_that_left() -> None:
    """What the checker assumes, on the real signer: once A no longer signs, a re-sign
    leaves no RRSIG of A, and when C of A's algorithm comes back every RRset gets C's
    signature in the same run."""
    zone = parse_zone_text(
        "$TTL 300\n@ SOA ns hm 1 3600 900 604800 60\n@ NS ns\nns A 192.0.2.1\n"
        "www A 192.0.2.2\nmail MX 10 ns\n",
        ZONE,
    )
    a, b, c = (_signing_key(alg) for alg in (13, 15, 13))
    now = 1_767_225_600
    one = sign_zone(zone, [SigningKey(a)], SignParams(), now).zone
    two = sign_zone(one, [SigningKey(a, active=False), SigningKey(b)], SignParams(), now).zone
    three = sign_zone(two, [SigningKey(a, publish=False, active=False), SigningKey(b)],
                      SignParams(), now).zone  # fmt: skip
    four = sign_zone(three, [SigningKey(b), SigningKey(c)], SignParams(), now).zone
    assert _signers(one) == {a.tag}
    for z in (two, three):
        assert _signers(z) == {b.tag}
    assert _signers(four) == {b.tag, c.tag}
    for node in four.rrsigs.values():
        for rrset in node.values():
            tags = {Rrsig.from_wire(w).key_tag for w in rrset.rdatas}
            assert tags == {b.tag, c.tag}


def _signing_key(alg: int) -> Key:
    public, private = software.generate(algorithms.get(alg))
    return Key(ZONE, FLAG_ZONE, alg, public, private=private, ttl=300)


def _signers(zone: Zone) -> set[int]:
    """Key tags of every RRSIG in the zone."""
    return {
        Rrsig.from_wire(w).key_tag
        for node in zone.rrsigs.values()
        for rrset in node.values()
        for w in rrset.rdatas
    }


def test_algorithm_change_and_back_is_safe() -> None:
    """The engine run that exposed the checker's lingering signatures: KSK + ZSK of
    algorithm 8, changed to algorithm 13 on day 3 and back to 8 on day 6."""
    base = SHORT.replace(parent_ds_ttl=300, parent_propagation_delay=0,
                         signatures_validity=14 * DAY)  # fmt: skip

    def kz(alg: int) -> Policy:
        return base.replace(keys=(KeySpec("ksk", alg, 87000), KeySpec("zsk", alg, 1123800)))

    tl = run(kz(8), 10, ds_delay=600, scheduled=[(T0 + 3 * DAY, kz(13)), (T0 + 6 * DAY, kz(8))])
    algs = [{i.algorithm for i in v.zsk_signers} for v in tl.zone]
    assert {8} in algs and {13} in algs and algs[-1] == {8}
    assert_safe(tl, kz(8))


def test_third_signer_keeps_its_dnskey_while_another_pair_swaps_signatures() -> None:
    """KSK + ZSK -> CSK, and the operator rolls the new CSK two days later, before its
    signatures are everywhere: the old ZSK still signs.  The (3h) rule saw the CSK roll's
    pair (ZRRSIG unretentive -> ZRRSIG rumoured, both DNSKEYs omnipresent) and let the
    old ZSK's DNSKEY go while RRsets signed only by the old ZSK were cached."""
    base = SHORT.replace(parent_ds_ttl=300, parent_propagation_delay=0,
                         signatures_validity=7 * DAY)  # fmt: skip
    kz = base.replace(keys=(KeySpec("ksk", 8, UNLIMITED), KeySpec("zsk", 8, UNLIMITED)))
    csk = base.replace(keys=(KeySpec("csk", 8, UNLIMITED),))
    change = T0 + 5 * DAY
    first = run(kz, 6, ds_delay=0, scheduled=[(change, csk)])
    new = next(k for k in first.keys.values() if k.role == "csk")
    roll = change + 2 * DAY
    tl = run(kz, 20, ds_delay=0,
             scheduled=[(change, csk), (roll, RolloverRequest(new.id, roll))])  # fmt: skip
    old_zsk = next(k for k in tl.keys.values() if k.role == "zsk")
    # the scenario: the old ZSK still signed when the CSK roll began...
    assert any(v.at <= roll and old_zsk.id in v.zsk_signers for v in tl.zone)
    # ...and its DNSKEY stayed while its signatures could be cached
    last_sig = min(v.at for v in tl.zone if v.at > roll and old_zsk.id not in v.zsk_signers)
    gone = min(v.at for v in tl.zone if v.at > roll and old_zsk.id not in v.dnskeys)
    assert gone >= last_sig + base.max_zone_ttl + base.zone_propagation_delay
    assert_safe(tl, kz)
