"""Run the engine forward on a fake clock: the what-if planner behind ``keys timeline``
and the safety tests.

The simulated parent copies the zone's CDS set (or its DELETE) into its DS RRset
``ds_delay`` seconds after the CDS set changes, and each such change is reported back to
the engine as a checkds fact at the moment it happens.  Keys the engine asks for come from
:func:`fake_keygen`: placeholder public keys that never leave the simulation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dns.name

from dnsseal.keymgr.engine import KeyGen, fake_keygen, step
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn, Fact, Facts, Plan, StepApproved
from dnsseal.keys.model import Key, KeyId
from dnsseal.policy.model import Policy


@dataclass(frozen=True, slots=True)
class ZoneVersion:
    """What the zone publishes from ``at`` on (key ids)."""

    at: int
    dnskeys: frozenset[KeyId]
    ksk_signers: frozenset[KeyId]
    zsk_signers: frozenset[KeyId]
    cds: frozenset[KeyId]
    cds_delete: bool


@dataclass(frozen=True, slots=True)
class ParentVersion:
    """The parent's DS RRset from ``at`` on."""

    at: int
    ds: frozenset[KeyId]


@dataclass(slots=True)
class Timeline:
    """Every engine step of a simulation, and what the zone and parent published."""

    policy: Policy
    start: int
    until: int
    plans: list[Plan] = field(default_factory=list)
    zone: list[ZoneVersion] = field(default_factory=list)
    parent: list[ParentVersion] = field(default_factory=list)
    keys: dict[KeyId, Key] = field(default_factory=dict)  # last known form of every key
    initial: frozenset[KeyId] = frozenset()  # the keys that exist; the others are simulated
    approvals: list[int] = field(default_factory=list)  # manual-mode: when the operator approved

    @property
    def final_keys(self) -> list[Key]:
        return [r.key for r in self.plans[-1].keys if not r.purge] if self.plans else []


Scheduled = tuple[int, Fact | Policy]


def _version(plan: Plan) -> ZoneVersion:
    def ids(keys: Sequence[Key]) -> frozenset[KeyId]:
        return frozenset(k.id for k in keys)

    return ZoneVersion(
        plan.now,
        ids(plan.dnskeys),
        ids(plan.ksk_signers),
        ids(plan.zsk_signers),
        ids(plan.cds),
        plan.cds_delete,
    )


def simulate(
    policy: Policy,
    keys: Sequence[Key],
    start: int,
    until: int,
    *,
    zone: dns.name.Name,
    ds_delay: int | None = 3600,
    parent_ds: frozenset[KeyId] | None = None,
    scheduled: Sequence[Scheduled] = (),
    keygen: KeyGen | None = None,
    max_steps: int = 5000,
    on_step: Callable[[Plan], None] | None = None,
    approve_after: int | None = None,
) -> Timeline:
    """Run the engine from ``start`` to ``until``.

    ``ds_delay`` None means the parent never acts.  ``parent_ds`` is the DS RRset at the
    start (default: the DS of keys whose DS state is omnipresent).  ``scheduled`` holds
    facts and policy changes, each applied at its time.  ``approve_after`` (manual-mode):
    the operator approves a pending step this long after it appears (at least a second
    later); None: never.
    """
    gen = keygen or fake_keygen()
    tl = Timeline(policy, start, until, initial=frozenset(k.id for k in keys))
    current = list(keys)
    if parent_ds is None:
        parent_ds = frozenset(
            k.id for k in current if k.state is not None and k.state.ds is not None
            and k.state.ds.value == "omnipresent"
        )  # fmt: skip
    tl.parent.append(ParentVersion(start, parent_ds))
    pending: tuple[int, frozenset[KeyId]] | None = None
    approval: int | None = None
    queue = sorted(scheduled, key=lambda s: s[0])
    t = start
    for _ in range(max_steps):
        facts: list[Fact] = []
        while queue and queue[0][0] <= t:
            item = queue.pop(0)[1]
            if isinstance(item, Policy):
                policy = item
            else:
                facts.append(item)
        if pending is not None and pending[0] <= t:
            new_ds = pending[1]
            old_ds = tl.parent[-1].ds
            facts += [DsSeen(k, t) for k in new_ds - old_ds]
            facts += [DsWithdrawn(k, t) for k in old_ds - new_ds]
            tl.parent.append(ParentVersion(t, new_ds))
            pending = None
        facts += _checkds(current, tl.parent)
        if approval is not None and approval <= t:
            facts.append(StepApproved(t))
            tl.approvals.append(t)
            approval = None
        plan = step(policy, current, Facts(tuple(facts)), t, zone=zone, keygen=gen)
        tl.plans.append(plan)
        if on_step is not None:
            on_step(plan)
        for r in plan.keys:
            tl.keys[r.key.id] = r.key
        current = [r.key for r in plan.keys if not r.purge]
        version = _version(plan)
        if not tl.zone or _differs(tl.zone[-1], version):
            tl.zone.append(version)
        wanted = frozenset() if version.cds_delete else version.cds
        if ds_delay is not None and (version.cds or version.cds_delete):
            if wanted != tl.parent[-1].ds and (pending is None or pending[1] != wanted):
                pending = (t + ds_delay, wanted)
            elif wanted == tl.parent[-1].ds:
                pending = None
        if plan.pending and approve_after is not None and approval is None:
            approval = t + max(1, approve_after)
        candidates = [x for x in (plan.next_timed_event, pending[0] if pending else None) if x]
        if approval is not None:
            candidates.append(approval)
        if queue:
            candidates.append(queue[0][0])
        nxt = min((c for c in candidates if c > t), default=None)
        if nxt is None or nxt > until:
            break
        t = nxt
    return tl


def _checkds(keys: Sequence[Key], parent: Sequence[ParentVersion]) -> list[Fact]:
    """What a checkds run reports: for a DS being introduced, since when the parent has
    it; for a DS being removed, since when the parent no longer has it."""
    out: list[Fact] = []
    for k in keys:
        st = k.state
        if st is None or st.ds is None:
            continue
        want_in = st.ds.value == "rumoured"
        if not want_in and st.ds.value != "unretentive":
            continue
        since = None
        for v in reversed(parent):
            if (k.id in v.ds) != want_in:
                break
            since = v.at
        if since is None:
            continue
        if want_in and k.timings.ds_publish != since:
            out.append(DsSeen(k.id, since))
        elif not want_in and k.timings.ds_delete != since:
            out.append(DsWithdrawn(k.id, since))
    return out


def _differs(a: ZoneVersion, b: ZoneVersion) -> bool:
    return (a.dnskeys, a.ksk_signers, a.zsk_signers, a.cds, a.cds_delete) != (
        b.dnskeys,
        b.ksk_signers,
        b.zsk_signers,
        b.cds,
        b.cds_delete,
    )
