"""The engine's timings, worked out by hand, and its edge cases."""

from __future__ import annotations

import dataclasses

import dns.name

from dnsseal.keymgr import simulate, step
from dnsseal.keymgr.plan import DsSeen, Facts, RolloverRequest
from dnsseal.keys.model import FLAG_SEP, FLAG_ZONE, Key, KeyState, KeyTimings, RecordState
from dnsseal.policy import model

from .helpers import DAY, T0, ZONE, assert_safe, csk, kz, run

O, R, H, U = (  # noqa: E741 - the paper's letters
    RecordState.OMNIPRESENT,
    RecordState.RUMOURED,
    RecordState.HIDDEN,
    RecordState.UNRETENTIVE,
)


def transitions(tl: simulate.Timeline) -> dict[tuple[int, str], int]:
    """(key tag, 'ZRRSIG rumoured -> omnipresent') -> when it happened."""
    out: dict[tuple[int, str], int] = {}
    for plan in tl.plans:
        for r in plan.keys:
            for c in r.changes:
                out.setdefault((r.key.tag, c), plan.now)
    return out


def test_ksk_zsk_timings_by_hand() -> None:
    # Defaults: dnskey-ttl 1h, publish/retire-safety 1h, zone-propagation-delay 5m,
    # max-zone-ttl 1d, parent-ds-ttl 1d, parent-propagation-delay 1h, Dsgn 14d-5d = 9d.
    p = kz(365 * DAY, 60 * DAY)
    tl = run(p, 75, ds_delay=7200)
    ev = transitions(tl)
    ksk1, zsk1 = sorted(
        (k for k in tl.keys.values() if k.timings.created == T0), key=lambda k: k.role
    )
    assert (ksk1.role, zsk1.role) == ("ksk", "zsk")
    # first keys: published and active at once
    assert zsk1.timings.publish == zsk1.timings.activate == T0
    assert zsk1.timings.inactive == T0 + 5_184_000  # + 60d
    assert zsk1.timings.delete == T0 + 5_184_000 + 867_900  # + Iret = 9d + 5m + 1d + 1h
    assert ksk1.timings.inactive == T0 + 31_536_000  # + 365d
    assert ksk1.timings.delete == T0 + 31_536_000 + 93_600  # + 1h + 1d + 1h
    assert ksk1.timings.sync_publish == T0 + 90_300  # max-zone-ttl + 5m + 1h (first key)
    assert ev[(zsk1.tag, "DNSKEY rumoured -> omnipresent")] == T0 + 7_500  # Ipub
    assert ev[(zsk1.tag, "ZRRSIG rumoured -> omnipresent")] == T0 + 90_300  # no Dsgn
    assert ev[(ksk1.tag, "DS hidden -> rumoured")] == T0 + 90_300  # CDS once all signed
    # parent acts 2h later; DS omnipresent after parent-ds-ttl + ppd + retire-safety
    assert ev[(ksk1.tag, "DS rumoured -> omnipresent")] == T0 + 90_300 + 7_200 + 93_600
    # the ZSK roll: successor published Ipub before the retire time
    zsk2 = next(k for k in tl.keys.values() if k.state and k.state.predecessor == zsk1.tag)
    assert zsk2.timings.publish == T0 + 5_184_000 - 7_500
    assert zsk2.timings.activate == T0 + 5_184_000
    assert zsk2.timings.inactive == T0 + 2 * 5_184_000
    assert ev[(zsk2.tag, "DNSKEY rumoured -> omnipresent")] == T0 + 5_184_000
    assert ev[(zsk2.tag, "ZRRSIG hidden -> rumoured")] == T0 + 5_184_000
    assert ev[(zsk1.tag, "ZRRSIG omnipresent -> unretentive")] == T0 + 5_184_000
    # old signatures leave caches after Dsgn + zpd + max-zone-ttl + retire-safety
    assert ev[(zsk1.tag, "ZRRSIG unretentive -> hidden")] == T0 + 5_184_000 + 867_900
    assert ev[(zsk1.tag, "DNSKEY omnipresent -> unretentive")] == T0 + 5_184_000 + 867_900
    assert ev[(zsk1.tag, "DNSKEY unretentive -> hidden")] == T0 + 5_184_000 + 867_900 + 3_900
    assert_safe(tl, p)


def test_csk_roll_timings_by_hand() -> None:
    p = csk(30 * DAY)
    tl = run(p, 45, ds_delay=3600)
    ev = transitions(tl)
    c1 = next(k for k in tl.keys.values() if k.timings.created == T0)
    c2 = next(k for k in tl.keys.values() if k.state and k.state.predecessor == c1.tag)
    assert c2.timings.publish == T0 + 30 * DAY - 7_500
    assert c2.timings.sync_publish == T0 + 30 * DAY  # publish + Ipub
    roll = T0 + 30 * DAY
    assert ev[(c2.tag, "DS hidden -> rumoured")] == roll
    assert ev[(c1.tag, "DS omnipresent -> unretentive")] == roll
    # the parent swaps the DS 1h later; the old DS is gone from caches 1d + 2h after that
    assert ev[(c1.tag, "DS unretentive -> hidden")] == roll + 3_600 + 93_600
    assert ev[(c2.tag, "DS rumoured -> omnipresent")] == roll + 3_600 + 93_600
    # the old key signs nothing after the roll and leaves after the ZSK retire interval
    assert ev[(c1.tag, "DNSKEY omnipresent -> unretentive")] == roll + 867_900
    assert_safe(tl, p)


def _fake_key(pub: bytes, ksk: bool = True, **state: object) -> Key:
    flags = FLAG_ZONE | (FLAG_SEP if ksk else 0)
    from dnsseal.keys.model import PrivateMaterial

    st = KeyState(**state) if state else None  # type: ignore[arg-type]
    return Key(ZONE, flags, 13, pub, ttl=3600, state=st,
               private=PrivateMaterial((("PrivateKey", b"x" * 32),)))  # fmt: skip


def test_missing_private_key_is_reported_never_replaced() -> None:
    p = csk(model.UNLIMITED)
    tl = run(p, 5)
    key = tl.final_keys[0]
    orphan = dataclasses.replace(key, private=None)
    plan = step(p, [orphan], Facts(), T0 + 6 * DAY, keygen=simulate.fake_keygen("x"))
    assert [f.code for f in plan.problems] == ["KEY_PRIVATE_MISSING"]
    assert str(orphan.tag) in plan.problems[0].message
    assert plan.created == [] and plan.keys[0].missing_private
    assert [k.tag for k in plan.dnskeys] == [orphan.tag]


def test_key_tag_collision_new_key_is_generated_again() -> None:
    p = kz(model.UNLIMITED, model.UNLIMITED)
    tl = run(p, 3)
    ksk = next(k for k in tl.final_keys if k.role == "ksk")
    inner = simulate.fake_keygen("other")
    calls = []

    def colliding(spec: model.KeySpec) -> tuple[bytes, object]:
        calls.append(spec.role)
        if len(calls) == 1:  # a ZSK with the KSK's tag: +1 on an odd-position byte
            pk = bytearray(ksk.public_key)  # makes up for the SEP bit the ZSK lacks
            i = next(i for i in range(1, len(pk), 2) if pk[i] < 255)
            pk[i] += 1
            assert Key(ZONE, FLAG_ZONE, 13, bytes(pk)).tag == ksk.tag
            return bytes(pk), ksk.private
        return inner(spec)

    zsk = next(k for k in tl.final_keys if k.role == "zsk")
    later = T0 + 4 * DAY
    plan = step(p, [ksk], Facts(), later, keygen=colliding)  # type: ignore[arg-type]
    new = [r.key for r in plan.created]
    assert len(new) == 1 and new[0].tag != ksk.tag and len(calls) == 2
    assert zsk.tag != new[0].tag


def test_existing_key_tag_collision_is_reported() -> None:
    a = _fake_key(bytes(range(64)))
    pk = bytearray(a.public_key)
    pk[0], pk[2] = pk[2], pk[0]
    b = _fake_key(bytes(pk))
    assert a.tag == b.tag and a.id != b.id
    plan = step(csk(model.UNLIMITED), [a, b], Facts(), T0)
    assert "KEY_TAG_COLLISION" in [f.code for f in plan.problems]
    assert len(plan.keys) == 2


def test_policy_none_changes_nothing() -> None:
    p = csk(model.UNLIMITED)
    keys = run(p, 5).final_keys
    plan = step(model.NONE, keys, Facts(), T0 + 10 * DAY)
    assert [r.key for r in plan.keys] == keys and not plan.changed


def test_new_lifetime_applies_to_existing_keys() -> None:
    p = csk(model.UNLIMITED)
    keys = run(p, 5).final_keys
    assert keys[0].timings.inactive is None
    plan = step(csk(100 * DAY), keys, Facts(), T0 + 6 * DAY)
    k = plan.keys[0].key
    assert k.state is not None and k.state.lifetime == 100 * DAY
    assert k.timings.inactive == T0 + 100 * DAY
    assert plan.next_event == T0 + 100 * DAY - 7_500  # successor due


def test_rollover_request_sets_retire_and_starts_roll() -> None:
    p = csk(model.UNLIMITED)
    keys = run(p, 5).final_keys
    when = T0 + 6 * DAY
    plan = step(p, keys, Facts.of(RolloverRequest(keys[0].id, when)), when,
                keygen=simulate.fake_keygen("r"))  # fmt: skip
    assert plan.keys[0].key.timings.inactive == when
    assert len(plan.created) == 1
    assert plan.created[0].key.state is not None
    assert plan.created[0].key.state.predecessor == keys[0].tag


def test_checkds_fact_is_stored_as_bind_does() -> None:
    p = csk(model.UNLIMITED)
    keys = run(p, 1.5, ds_delay=None).final_keys
    k = keys[0]
    assert k.state is not None and k.state.ds is R
    plan = step(p, keys, Facts.of(DsSeen(k.id, T0 + 2 * DAY)), T0 + 2 * DAY)
    assert plan.keys[0].key.timings.ds_publish == T0 + 2 * DAY
    assert plan.next_event == T0 + 2 * DAY + 93_600


def test_without_keygen_the_plan_lists_what_to_create() -> None:
    plan = step(kz(model.UNLIMITED, model.UNLIMITED), [], Facts(), T0, zone=ZONE)
    assert plan.to_generate == ("ksk", "zsk") and plan.keys == ()


def test_adopted_keys_with_bind_timings_publish_the_same_records() -> None:
    old = T0 - 400 * DAY
    t = KeyTimings(created=old, publish=old, activate=old, sync_publish=old)
    ksk = _fake_key(bytes(range(64))).with_timings(t)
    zsk = _fake_key(bytes(range(1, 65)), ksk=False).with_timings(t)
    p = kz(model.UNLIMITED, model.UNLIMITED)
    plan = step(p, [ksk, zsk], Facts(), T0, keygen=simulate.fake_keygen("a"))
    assert plan.created == []
    assert {k.tag for k in plan.dnskeys} == {ksk.tag, zsk.tag}
    assert [k.tag for k in plan.ksk_signers] == [ksk.tag]
    assert [k.tag for k in plan.zsk_signers] == [zsk.tag]
    assert [k.tag for k in plan.cds] == [ksk.tag]
    kst = plan.report(ksk).key.state
    assert kst is not None
    assert (kst.dnskey, kst.krrsig, kst.ds, kst.goal, kst.ksk, kst.zsk) == (O, O, O, O, True, False)
    assert plan.next_event is None


def test_insecure_publishes_cds_delete_until_ds_is_gone() -> None:
    p = csk(model.UNLIMITED)
    tl = run(p, 20, scheduled=[(T0 + 5 * DAY, model.INSECURE)])
    deletes = [v for v in tl.zone if v.cds_delete]
    assert deletes and not tl.zone[-1].cds_delete
    assert tl.zone[-1].dnskeys == frozenset()
    assert tl.parent[-1].ds == frozenset()
    assert_safe(tl, p)


def test_zone_name_comes_from_keys_or_argument() -> None:
    plan = step(model.INSECURE, [], Facts(), T0, zone=dns.name.from_text("x."))
    assert plan.zone == dns.name.from_text("x.")


def test_recently_published_bind_keys_are_adopted_as_rumoured() -> None:
    t = KeyTimings(created=T0 - 600, publish=T0 - 600, activate=T0 - 600)
    k = _fake_key(bytes(range(64))).with_timings(t)
    plan = step(csk(model.UNLIMITED), [k], Facts(), T0)
    st = plan.keys[0].key.state
    assert st is not None and (st.dnskey, st.krrsig, st.zrrsig, st.goal) == (R, R, R, O)
    assert st.ksk and st.zsk  # a SEP key under a CSK policy is a CSK
    assert "DNSKEY state initialised to rumoured from timing metadata" in plan.keys[0].changes
    # as BIND, an adopted state counts from the moment of adoption (the safe side)
    assert plan.next_event == T0 + 3600 + 300 + 3600


def test_timeline_marks_simulated_keys() -> None:
    from dnsseal.keymgr import timeline

    keys = run(csk(60 * DAY), 2).final_keys
    tl = simulate.simulate(csk(60 * DAY), keys, T0 + 2 * DAY, T0 + 80 * DAY, zone=ZONE)
    evs = timeline.events(tl)
    assert {e.simulated for e in evs if e.tag == keys[0].tag} == {False}
    assert any(e.simulated and e.what == "key created" for e in evs)
    assert any("*" in row for row in timeline.text_rows(evs))


def test_plan_lists_retired_keys_once() -> None:
    keys = run(csk(model.UNLIMITED), 5).final_keys
    later = T0 + 6 * DAY
    plan = step(csk(model.UNLIMITED, alg=15), keys, Facts(), later, keygen=simulate.fake_keygen())
    assert [r.key.id for r in plan.retired] == [keys[0].id]
    assert [r.key.algorithm for r in plan.created] == [15]
    again = step(csk(model.UNLIMITED, alg=15), [r.key for r in plan.keys], Facts(), later + 60)
    assert again.retired == []
