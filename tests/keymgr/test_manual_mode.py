"""manual-mode (BIND 9.21): the key manager proposes each step that changes what the zone
publishes or signs and waits for the operator's approval, given to the next step as a
StepApproved fact.  Checked on simulated time: nothing the zone publishes changes without
an approval, each approval makes exactly the step that was pending, the rolls still
complete, and no resolver cache ever finds the zone bogus."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import run_tool
from dnsseal.cli.main import cli
from dnsseal.keymgr import simulate, step
from dnsseal.keymgr.plan import Facts, Plan, StepApproved
from dnsseal.keys.model import Key

from .helpers import DAY, HOUR, T0, ZONE, assert_safe, created, kz, run

_TRANSITION = re.compile(r"(DNSKEY|ZRRSIG|KRRSIG|DS) (\w+) -> (\w+)$")


def published(plan: Plan) -> tuple[frozenset[int], ...]:
    """What the zone publishes and who signs what, by key tag."""

    def tags(keys: tuple[Key, ...]) -> frozenset[int]:
        return frozenset(k.tag for k in keys)

    return (
        tags(plan.dnskeys),
        tags(plan.ksk_signers),
        tags(plan.zsk_signers),
        tags(plan.cds),
        frozenset({1} if plan.cds_delete else ()),
    )


def signed_zone() -> tuple[list[Key], int]:
    """A KSK and a ZSK, fully introduced (DS at the parent) by an automatic run."""
    tl = run(kz(200 * DAY, 30 * DAY), 10)
    return tl.final_keys, T0 + 10 * DAY


def held_moves(plan: Plan) -> set[str]:
    """The steps of ``plan`` an operator approves: keys made, records entering/leaving."""
    out = set()
    for r in plan.keys:
        who = "new " + r.key.role.upper() if r.created else f"{r.key.tag} {r.key.role.upper()}"
        for c in r.changes:
            m = _TRANSITION.search(c)
            if c.startswith("created") or (m and m[3] in ("rumoured", "unretentive")):
                out.add(f"{who}: {c}")
    return out


def test_nothing_changes_without_approval() -> None:
    keys, start = signed_zone()
    manual = kz(200 * DAY, 30 * DAY, manual_mode=True)
    first = step(manual, keys, Facts(), start, zone=ZONE, keygen=simulate.fake_keygen("m"))
    assert first.pending == ()  # nothing due yet
    before = published(first)
    due = 0
    for day in range(1, 400, 3):  # more than a year, well past the ZSK's and KSK's roll
        plan = step(manual, keys, Facts(), start + day * DAY, zone=ZONE,
                    keygen=simulate.fake_keygen("m"))  # fmt: skip
        assert published(plan) == before, day
        assert not plan.created and not any(r.retired for r in plan.keys)
        assert held_moves(plan) == set()
        if plan.pending:
            due += 1
            assert "new ZSK: created (ZSK, algorithm 13)" in plan.pending
            zsk = next(r for r in plan.keys if r.key.role == "zsk")
            assert zsk.waiting and "approval (manual-mode)" in zsk.waiting
        keys = [r.key for r in plan.keys]
    assert due > 100  # the roll was due from day 30 on, and stayed pending
    # a new zone: not even the first keys are made
    plan = step(manual, [], Facts(), T0, zone=ZONE, keygen=simulate.fake_keygen("m"))
    assert plan.keys == () and plan.dnskeys == ()
    assert {"new KSK: created (KSK, algorithm 13)", "new ZSK: created (ZSK, algorithm 13)",
            "new KSK: DNSKEY hidden -> rumoured"} <= set(plan.pending)  # fmt: skip


def test_each_approval_makes_exactly_the_pending_step() -> None:
    keys, start = signed_zone()
    manual = kz(200 * DAY, 30 * DAY, manual_mode=True)
    # the operator approves each step 6 hours (and a bit) after it appears
    tl = simulate.simulate(manual, keys, start, start + 400 * DAY, zone=ZONE,
                           ds_delay=2 * HOUR, approve_after=6 * HOUR + 17)  # fmt: skip
    approvals = set(tl.approvals)
    assert len(approvals) > 20
    shown: tuple[str, ...] = ()
    for prev, plan in zip(tl.plans, tl.plans[1:], strict=False):
        if plan.now in approvals:
            # what happened is what the operator was shown (new keys by role)
            assert held_moves(plan) == {m for m in shown if _held(m)}, plan.now
            assert held_moves(plan), plan.now
        else:
            assert published(plan) == published(prev), plan.now
            assert held_moves(plan) == set()
        shown = plan.pending
    # and with the operator's help the rolls complete, as automatically, and safely
    assert len(created(tl, "zsk")) >= 13 and len(created(tl, "ksk")) >= 2
    assert_safe(tl, manual)


def _held(line: str) -> bool:
    m = _TRANSITION.search(line)
    return "created" in line or bool(m and m[3] in ("rumoured", "unretentive"))


def test_approval_is_used_once_and_only_when_due() -> None:
    keys, start = signed_zone()
    manual = kz(200 * DAY, 30 * DAY, manual_mode=True)
    gen = simulate.fake_keygen("once")
    t = start + 31 * DAY
    held = step(manual, keys, Facts(), t, zone=ZONE, keygen=gen)
    assert held.pending
    # an approval dated later does not count yet
    later = step(manual, keys, Facts.of(StepApproved(t + HOUR)), t, zone=ZONE, keygen=gen)
    assert published(later) == published(held) and not later.created
    done = step(manual, keys, Facts.of(StepApproved(t)), t, zone=ZONE, keygen=gen)
    (new,) = done.created
    assert new.key.role == "zsk" and new.key.id in {k.id for k in done.dnskeys}
    # the next step, without a new approval, holds again: the new ZSK's signatures wait
    keys2 = [r.key for r in done.keys]
    nxt = step(manual, keys2, Facts(), t + 2 * DAY, zone=ZONE, keygen=gen)
    assert published(nxt) == published(done)
    assert any("ZRRSIG hidden -> rumoured" in p for p in nxt.pending), nxt.pending


MANUAL_TOML = """
[policy.mz]
manual-mode = true
keys = [
  { role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "P60D", algorithm = "ECDSAP256SHA256" },
]
"""


@pytest.mark.interop
def test_keys_step_cli(tmp_path: Path) -> None:
    """keys run proposes, keys step makes the step (key files BIND reads), keys status
    shows what is pending next; keys step on a policy not in manual-mode is refused."""
    toml = tmp_path / "p.toml"
    toml.write_text(MANUAL_TOML)
    keydir = tmp_path / "k"
    keydir.mkdir()
    common = ("example", "-K", keydir, "-p", "mz", "-c", toml)

    def dnsseal(*args: str | Path) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    r = dnsseal("keys", "run", *common, "--now", "20260101000000")
    assert r.exit_code == 0, r.output
    assert "pending step (manual-mode; approve with `dnsseal keys step example.`)" in r.output
    assert "new KSK: created (KSK, algorithm 13)" in r.output
    assert list(keydir.iterdir()) == []
    r = dnsseal("keys", "step", *common, "--now", "20260101000000")
    assert r.exit_code == 0, r.output
    made = sorted(keydir.glob("*.key"))
    assert len(made) == 2 and "pending step" not in r.output
    for f in made:
        run_tool(["dnssec-settime", "-p", "all", f])  # BIND reads what the step wrote
    # two days on: the DNSKEYs are in every cache, the CDS (DS hidden -> rumoured) waits
    r = dnsseal("keys", "status", *common, "--now", "20260103000000")
    assert r.exit_code == 0, r.output
    assert "pending step (manual-mode" in r.output
    assert "KSK: DS hidden -> rumoured" in r.output
    r = dnsseal("keys", "run", *common, "--now", "20260103000000")
    assert "DS hidden -> rumoured" in r.output and "(KSK): DS hidden" not in r.output
    r = dnsseal("keys", "step", *common, "--now", "20260103000000")
    assert "(KSK): DS hidden -> rumoured" in r.output
    r = dnsseal("keys", "step", "example", "-K", keydir, "--now", "20260103000000")
    assert r.exit_code != 0 and "not in manual-mode" in r.output


def test_a_roll_under_way_stops_where_it_is() -> None:
    """Switched to manual-mode in the middle of a ZSK roll (the successor published), the
    signature swap and the old key's removal wait; the caches still catch up by time."""
    auto = kz(200 * DAY, 30 * DAY)
    tl = run(auto, 30 - 1 / 24)  # the successor is published 2h05 before the swap
    (old, new) = sorted(created(tl, "zsk"), key=lambda k: k.timings.created or 0)
    keys = tl.final_keys
    assert new.id in {k.id for k in last_plan_dnskeys(tl)}
    manual = auto.replace(manual_mode=True)
    start = tl.until
    first = step(manual, keys, Facts(), start, zone=ZONE)
    before = published(first)
    caught_up = False
    for hours in range(1, 60 * 24, 7):
        plan = step(manual, keys, Facts(), start + hours * HOUR, zone=ZONE)
        assert published(plan) == before, hours
        keys = [r.key for r in plan.keys]
        zsk = {r.key.id: r.key for r in plan.keys}
        st = zsk[new.id].state
        caught_up = caught_up or bool(st and st.dnskey and st.dnskey.value == "omnipresent")
    assert caught_up  # DNSKEY rumoured -> omnipresent went on by time
    assert f"{old.tag} ZSK: ZRRSIG omnipresent -> unretentive" in plan.pending
    assert f"{new.tag} ZSK: ZRRSIG hidden -> rumoured" in plan.pending


def last_plan_dnskeys(tl: simulate.Timeline) -> tuple[Key, ...]:
    return tl.plans[-1].dnskeys
