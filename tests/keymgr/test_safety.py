"""The safety check: no resolver cache ever sees the zone bogus, whatever the method.

Every test runs the engine on a fake clock from the first signing through at least two
full rollovers, then tries every combination of cached DS, DNSKEY and data signatures at
every window edge and at random instants (see dnsseal.keymgr.safety).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsseal.keymgr import safety, simulate
from dnsseal.keymgr.plan import RolloverRequest
from dnsseal.keys.model import RecordState
from dnsseal.policy import model
from dnsseal.policy.model import KeySpec, Policy

from .helpers import DAY, HOUR, T0, ZONE, assert_safe, created, csk, kz, run

O = RecordState.OMNIPRESENT  # noqa: E741


def test_csk_rolls_twice_safely() -> None:
    p = csk(60 * DAY)
    tl = run(p, 150)
    assert len(created(tl, "csk")) >= 3
    assert_safe(tl, p)


def test_ksk_zsk_roll_twice_safely() -> None:
    p = kz(100 * DAY, 30 * DAY)
    tl = run(p, 230)
    assert len(created(tl, "ksk")) >= 3 and len(created(tl, "zsk")) >= 7
    assert_safe(tl, p)


def test_checker_finds_unsafe_timelines() -> None:
    """The checker is not vacuous: judged with longer TTLs than the engine used, the same
    timeline has bogus windows (old keys leave before caches forget them)."""
    p = kz(100 * DAY, 30 * DAY)
    tl = run(p, 120)
    longer = p.replace(dnskey_ttl=5 * DAY, max_zone_ttl=12 * DAY, parent_ds_ttl=5 * DAY)
    assert safety.check(tl, longer) != []


def test_algorithm_rollover_is_safe() -> None:
    old = kz(model.UNLIMITED, model.UNLIMITED, alg=8)
    new = kz(model.UNLIMITED, model.UNLIMITED, alg=13)
    tl = run(old, 60, scheduled=[(T0 + 10 * DAY, new)])
    assert_safe(tl, old)
    final = [r.key for r in tl.plans[-1].keys if r.key.state and r.key.state.goal]
    live = {
        k.algorithm
        for k in final
        if k.state and k.state.dnskey and k.state.dnskey.value != "hidden"
    }
    assert live == {13}
    # the new algorithm signed everything before the old one left
    mixed = [v for v in tl.zone if {i.algorithm for i in v.zsk_signers} == {8, 13}]
    assert mixed


def test_going_insecure_and_back_is_safe() -> None:
    p = csk(model.UNLIMITED)
    tl = run(p, 80, scheduled=[(T0 + 10 * DAY, model.INSECURE), (T0 + 40 * DAY, p)])
    assert_safe(tl, p)
    assert any(v.cds_delete for v in tl.zone)
    assert any(not v.ds for v in tl.parent[1:])  # the parent removed the DS
    assert tl.parent[-1].ds  # and got a new one after going back
    assert tl.plans[-1].dnskeys


def test_ds_never_appearing_waits_safely() -> None:
    """The parent published the first DS, then never acts again: the KSK roll waits with
    both KSKs in place, says what it waits for, and never starts a third KSK."""
    p = kz(60 * DAY, 30 * DAY)
    first = run(p, 20)
    assert first.parent[-1].ds
    tl = simulate.simulate(p, first.final_keys, T0 + 20 * DAY, T0 + 200 * DAY, zone=ZONE,
                           ds_delay=None, parent_ds=first.parent[-1].ds)  # fmt: skip
    assert_safe(tl, p)
    last = tl.plans[-1]
    waits = [
        r.waiting for r in last.keys if r.waiting and "not yet seen at the parent" in r.waiting
    ]
    assert waits and "dnsseal keys checkds example --key" in waits[0]
    ksks = [r.key for r in last.keys if r.key.role == "ksk"]
    assert len(ksks) == 2  # the old one stays until the parent has the new DS
    old = next(k for k in ksks if k.id in first.parent[-1].ds)
    assert old.state is not None and old.state.dnskey is O
    assert old.id in tl.zone[-1].ksk_signers


def test_operator_rollover_during_a_roll_is_safe() -> None:
    p = kz(model.UNLIMITED, 30 * DAY)
    first = run(p, 29.5)
    zsks = [k for k in first.keys.values() if k.role == "zsk"]
    newest = max(zsks, key=lambda k: k.timings.created or 0)
    tl = run(
        p, 120, scheduled=[(T0 + 29 * DAY + 23 * HOUR, RolloverRequest(newest.id, T0 + 30 * DAY))]
    )
    assert_safe(tl, p)


durations_small = st.sampled_from([300, 1800, HOUR, 2 * HOUR, 6 * HOUR, DAY])


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    method = draw(st.sampled_from(["csk", "kz"]))
    alg = draw(st.sampled_from([8, 13, 15]))
    base = Policy(
        "random",
        dnskey_ttl=draw(durations_small),
        publish_safety=draw(st.sampled_from([0, 600, HOUR])),
        retire_safety=draw(st.sampled_from([0, 600, HOUR])),
        max_zone_ttl=draw(durations_small),
        zone_propagation_delay=draw(st.sampled_from([0, 60, 300, HOUR])),
        parent_ds_ttl=draw(durations_small),
        parent_propagation_delay=draw(st.sampled_from([0, 300, HOUR])),
        signatures_validity=draw(st.sampled_from([4 * DAY, 7 * DAY, 14 * DAY])),
        signatures_refresh=draw(st.sampled_from([2 * DAY, 3 * DAY])),
        purge_keys=draw(st.sampled_from([0, DAY, 10 * DAY])),
    )
    if method == "csk":
        life = base.roll_duration("csk") + draw(st.integers(1, 20)) * DAY
        return base.replace(keys=(KeySpec("csk", alg, life),))
    zlife = base.roll_duration("zsk") + draw(st.integers(1, 10)) * DAY
    klife = base.roll_duration("ksk") + draw(st.integers(1, 30)) * DAY
    return base.replace(keys=(KeySpec("ksk", alg, klife), KeySpec("zsk", alg, zlife)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.sampled_from([0, 600, 2 * HOUR, DAY]), st.lists(st.floats(0, 1), max_size=20))
def test_random_policies_never_bogus(p: Policy, ds_delay: int, instants: list[float]) -> None:
    longest = max(k.lifetime for k in p.keys)
    days = (
        p.ipub_first
        + ds_delay
        + p.iret_ksk
        + 2 * longest
        + max(p.roll_duration(k.role) for k in p.keys)
    ) / DAY + 2
    tl = run(p, days, ds_delay=ds_delay)
    for spec in p.keys:
        assert len(created(tl, spec.role)) >= 3, f"fewer than two rolls of the {spec.role}"
    extra = tuple(T0 + int(x * (tl.until - T0)) for x in instants)
    assert_safe(tl, p, extra)


@st.composite
def policy_changes(draw: st.DrawFn) -> tuple[Policy, list[tuple[int, Policy]]]:
    """A policy and, some days in, a change: another algorithm, other lifetimes, CSK to
    KSK + ZSK or back, or going insecure (and, sometimes, back)."""
    p = draw(policies())
    at = T0 + draw(st.integers(3, 40)) * DAY
    kind = draw(
        st.sampled_from(["algorithm", "lifetimes", "method", "insecure", "insecure-and-back"])
    )
    if kind == "method":  # CSK <-> KSK + ZSK, same algorithm
        alg, life = p.keys[0].algorithm, max(k.lifetime for k in p.keys)
        if len(p.keys) == 1:
            keys = (KeySpec("ksk", alg, life), KeySpec("zsk", alg, life))
        else:
            keys = (KeySpec("csk", alg, life),)
        return p, [(at, p.replace(keys=keys))]
    if kind == "algorithm":
        alg = draw(st.sampled_from([a for a in (8, 13, 14, 15) if a != p.keys[0].algorithm]))
        new = p.replace(keys=tuple(KeySpec(k.role, alg, k.lifetime) for k in p.keys))
        return p, [(at, new)]
    if kind == "lifetimes":
        new = p.replace(keys=tuple(KeySpec(k.role, k.algorithm, k.lifetime + DAY) for k in p.keys))
        return p, [(at, new)]
    insecure = p.replace(name="insecure", keys=())
    if kind == "insecure":
        return p, [(at, insecure)]
    return p, [(at, insecure), (at + draw(st.integers(1, 30)) * DAY, p)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_changes(), st.sampled_from([0, 3600, DAY]), st.lists(st.floats(0, 1), max_size=10))
def test_policy_changes_midway_never_bogus(
    change: tuple[Policy, list[tuple[int, Policy]]], ds_delay: int, instants: list[float]
) -> None:
    p, scheduled = change
    tl = run(p, 120, ds_delay=ds_delay, scheduled=scheduled)
    extra = tuple(T0 + int(x * (tl.until - T0)) for x in instants)
    assert_safe(tl, p, extra)
