"""The key manager engine: ``step(policy, keys, facts, now) -> Plan``.

Pure: keys, policy, facts and ``now`` come in, a :class:`~dnsseal.keymgr.plan.Plan` goes
out.  New key material, when the policy needs a key, comes from the ``keygen`` callable
the caller passes (the CLI passes the software key store; tests pass a deterministic fake).

One step does what BIND's ``dns_keymgr_run`` does, in this order:

1. give every key its role and record states (from its ``.state``, or derived from BIND
   timing metadata for adopted keys);
2. record facts (DS seen / withdrawn at the parent, rollover requests) in the timing
   metadata, where BIND keeps them (DSPublish, DSRemoved, Inactive);
3. retire keys the policy no longer wants, and purge keys hidden for ``purge-keys``;
4. for each key line of the policy, create the first key, or a successor when the active
   key's retire time minus the publication interval is reached (never a second roll of the
   same key line while one is in progress);
5. move every record towards its key's goal, one safe step at a time (:mod:`.rules`),
   until nothing can move; the earliest time something could move is the next event.

With ``manual-mode`` (BIND 9.21), the steps that change what the zone publishes or signs
wait for the operator: creating (or taking from the key directory) a key, and every
record move to rumoured or unretentive.  Moves to omnipresent or hidden only record that
caches have caught up, and go on by time as always.  The plan then lists the held step
in ``pending`` (the changes a run approved at the same moment would make), and a
:class:`~dnsseal.keymgr.plan.StepApproved` fact in the next step lets it happen, once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence

import dns.name

from dnsseal.durations import format_bind_time
from dnsseal.findings import Finding, Severity
from dnsseal.keymgr import metadata as md
from dnsseal.keymgr.plan import Facts, KeyReport, Plan, StepApproved
from dnsseal.keymgr.rules import (
    DNSKEY,
    DS,
    KRRSIG,
    RTYPES,
    ZRRSIG,
    H,
    O,
    R,
    U,
    Work,
    policy_allows,
    transition_safe,
)
from dnsseal.keys.model import (
    FLAG_SEP,
    FLAG_ZONE,
    TIMING_FIELDS,
    Key,
    KeyState,
    KeyTimings,
    PrivateMaterial,
    RecordState,
    new_key,
)
from dnsseal.policy.model import KeySpec, Policy

log = logging.getLogger(__name__)

KeyGen = Callable[[KeySpec], tuple[bytes, PrivateMaterial]]
# While a DS change waits for the parent, look again after this long (BIND:
# keymgr_transition_time, "Not yet, try again in an hour").
PARENT_RECHECK = 3600
STEP_HINT = "the operator's approval (manual-mode): `dnsseal keys step` / `ctl dnssec -step`"
_FAKE_SIZES = {8: 260, 10: 260, 13: 64, 14: 96, 15: 32, 16: 57}
_NEXT = {
    # goal -> state -> next state (the edges of the state machine)
    O: {H: R, U: R, R: O, O: O},
    H: {R: U, O: U, U: H, H: H},
}


def fake_keygen(seed: str = "dnsseal") -> KeyGen:
    """Deterministic placeholder keys for simulations and previews (not usable for
    signing)."""
    counter = [0]

    def gen(spec: KeySpec) -> tuple[bytes, PrivateMaterial]:
        counter[0] += 1
        size = _FAKE_SIZES.get(spec.algorithm, 64)
        out = b""
        block = 0
        while len(out) < size:
            out += hashlib.sha256(f"{seed}/{counter[0]}/{block}".encode()).digest()
            block += 1
        return out[:size], PrivateMaterial((("PrivateKey", b"simulated"),))

    return gen


# ------------------------------------------------------------------------- key matching


def _matches(spec: KeySpec, w: Work) -> bool:
    if spec.algorithm != w.alg or spec.ksk != w.ksk or spec.zsk != w.zsk:
        return False
    return spec.bits is None or spec.bits == w.key.bits


def _unused(w: Work) -> bool:
    t = w.timings
    return (
        t.get("publish") is None
        and t.get("activate") is None
        and w.goal is not O
        and w.all_hidden()
        and not w.created
    )


def _new_key(
    spec: KeySpec,
    zone: dns.name.Name,
    policy: Policy,
    keygen: KeyGen,
    works: Sequence[Work],
    now: int,
) -> Work:
    flags = FLAG_ZONE | (FLAG_SEP if spec.ksk else 0)

    def make() -> Key:
        public, private = keygen(spec)
        return Key(zone, flags, spec.algorithm, public, ttl=policy.dnskey_ttl, private=private)

    def collided(key: Key) -> None:
        log.warning("[%s] DNSSEC: key tag %d collides with a key in use; generating again",
                    zone, key.tag)  # fmt: skip

    key = new_key(make, [w.key for w in works], collided=collided)
    w = Work(
        key=key,
        ksk=spec.ksk,
        zsk=spec.zsk,
        states=[H, H if spec.zsk else None, H if spec.ksk else None, H if spec.ksk else None],
        changes=[
            now,
            now if spec.zsk else None,
            now if spec.ksk else None,
            now if spec.ksk else None,
        ],
        goal=H,
        timings={f.attr: None for f in TIMING_FIELDS},
        lifetime=spec.lifetime,
        predecessor=None,
        successor=None,
        created=True,
    )
    w.timings["created"] = now
    w.log.append(f"created ({spec.role.upper()}, algorithm {spec.algorithm})")
    return w


# ------------------------------------------------------------------------------ rollover


def _roll_in_progress(spec: KeySpec, works: Sequence[Work], active: Work) -> Work | None:
    """A key of the same line still leaving the zone ("three is a crowd")."""
    for w in works:
        if w is active or w.purge or w.goal is not H or w.all_hidden():
            continue
        if w.alg == spec.algorithm and w.ksk == spec.ksk and w.zsk == spec.zsk:
            return w
    return None


def _crowd_wait(busy: Work) -> str:
    return (
        f"its successor is due, but the roll from {busy.tag} is still in progress; "
        "the next roll starts when that key is gone"
    )


def _rollover(
    spec: KeySpec,
    active: Work | None,
    works: list[Work],
    zone: dns.name.Name,
    policy: Policy,
    keygen: KeyGen | None,
    now: int,
    wake: list[int],
    needed: list[str],
    hold: bool = False,
) -> Work | None:
    """Start the roll of ``spec``'s key line when it is due.  Returns the key of the same
    line still leaving the zone when that holds the due roll back, else None.  ``hold``
    (manual-mode, not approved): a due new key is not made."""
    prepub = 0
    if active is not None:
        prepub = md.prepublication_time(active, policy, spec.lifetime, now)
        if prepub == 0 or prepub > now:
            if prepub:
                wake.append(prepub)
            return None
        if any(w.predecessor == active.tag and active.successor == w.tag for w in works):
            return None
        busy = _roll_in_progress(spec, works, active)
        if busy is not None:
            _wait(active, _crowd_wait(busy))
            return busy
    if hold:
        if active is not None:
            _wait(active, f"its successor ({spec.role.upper()}) waits for {STEP_HINT}")
        return None
    candidate = next((w for w in works if _matches(spec, w) and _unused(w)), None)
    if candidate is None:
        if keygen is None:
            needed.append(spec.role)
            return None
        candidate = _new_key(spec, zone, policy, keygen, works, now)
        works.append(candidate)
    else:
        candidate.log.append("selected from the unused keys in the key directory")
    new = candidate
    new.lifetime = spec.lifetime
    if active is None:
        md.set_time(new, "publish", now, "first key of its line")
        md.set_time(new, "activate", now, "first key of its line")
        md.settime_syncpublish(new, policy, first=True)
        act = now
    else:
        created = new.timings.get("created") or now
        new.predecessor = active.tag
        active.successor = new.tag
        retire = active.timings.get("inactive")
        act = retire if retire is not None else now
        if prepub < created:
            act += created - prepub
            prepub = created
        act = max(act, created)
        md.set_time(new, "publish", prepub, "predecessor's retire time - publication interval")
        md.set_time(new, "activate", act, "predecessor's retire time")
        md.settime_syncpublish(new, policy, first=False)
        active.goal = H
        active.log.append(f"rolling over to {new.tag}")
        new.log.append(f"successor of {active.tag}")
    new.goal = O
    if spec.lifetime:
        md.set_time(new, "inactive", act + spec.lifetime, "activation + lifetime")
        md.settime_remove(new, policy)
    return None


# ------------------------------------------------------------------ state transitions


def _shares_signing(w: Work, works: Sequence[Work]) -> bool:
    """Another key of the same algorithm signs (or signed) the zone: signatures then move
    from one key to the other gradually, at refresh time, so Dsgn applies.  (BIND only
    adds Dsgn for keys with a predecessor or successor; a key brought in while an orphaned
    key of its algorithm still signs, after insecure and back, needs it too.)"""
    return any(
        o is not w and not o.purge and o.alg == w.alg and o.states[ZRRSIG] in (R, O, U)
        for o in works
    )


def _transition_time(
    w: Work, rtype: int, nxt: RecordState, policy: Policy, now: int, works: Sequence[Work]
) -> int | None:
    """When the move may happen; None when it waits on the parent (a checkds fact)."""
    if nxt in (R, U):
        return now
    last = w.changes[rtype]
    if last is None:
        w.changes[rtype] = last = now
    if rtype in (DNSKEY, KRRSIG):
        wait = md.key_ttl(w, policy) + policy.zone_propagation_delay
        return last + wait + (policy.publish_safety if nxt is O else 0)
    if rtype == ZRRSIG:
        t = last + policy.ttlsig + policy.zone_propagation_delay + policy.retire_safety
        if w.predecessor is not None or w.successor is not None or _shares_signing(w, works):
            t += policy.sign_delay
        return t
    seen = w.timings.get("ds_publish" if nxt is O else "ds_delete")
    if seen is None or seen > now:
        return None
    return seen + policy.parent_ds_ttl + policy.parent_propagation_delay + policy.retire_safety


def _wait(w: Work, why: str, *, first: bool = False) -> None:
    """Remember why a record of ``w`` cannot move (parent waits first: an operator can
    act on those)."""
    if why not in w.waits:
        if first:
            w.waits.insert(0, why)
        else:
            w.waits.append(why)


def _ds_wait(w: Work, zone: dns.name.Name, nxt: RecordState) -> str:
    z = zone.to_text(omit_final_dot=True) or "."
    if nxt is O:
        return (
            f"DS for {w.tag} not yet seen at the parent; run "
            f"`dnsseal keys checkds {z} --key {w.tag} published` when it is"
        )
    return (
        f"DS for {w.tag} still at the parent; run "
        f"`dnsseal keys checkds {z} --key {w.tag} withdrawn` when it is gone"
    )


def _update(
    works: list[Work],
    policy: Policy,
    zone: dns.name.Name,
    now: int,
    wake: list[int],
    s2i: bool,
    rechecks: list[int],
    hold: bool = False,
) -> None:
    changed = True
    rounds = 0
    while changed and rounds < 64:
        changed = False
        rounds += 1
        # keys gone for good take no part in any rule (see rules.Ring)
        alive = [w for w in works if not (w.purge or (w.goal is H and w.all_hidden()))]
        for w in alive:
            if w.goal is None or w.goal not in _NEXT:
                continue
            for i, state in enumerate(w.states):
                if state is None:
                    continue
                nxt = _NEXT[w.goal][state]
                if nxt is state:
                    continue
                why = policy_allows(alive, w, i, nxt)
                if why is not None:
                    _wait(w, f"{RTYPES[i]} waits for {why}")
                    continue
                rule = transition_safe(alive, w, i, nxt, s2i)
                if rule is not None:
                    _wait(w, f"{RTYPES[i]} stays {state.value}: {rule} (waiting for other keys)")
                    continue
                when = _transition_time(w, i, nxt, policy, now, alive)
                if when is None:
                    _wait(w, _ds_wait(w, zone, nxt), first=True)
                    rechecks.append(now + PARENT_RECHECK)
                    continue
                if when > now:
                    wake.append(when)
                    _wait(w, f"{RTYPES[i]} becomes {nxt.value} at {format_bind_time(when)}")
                    continue
                if hold and nxt in (R, U):
                    _wait(w, f"{RTYPES[i]} {state.value} -> {nxt.value} waits for {STEP_HINT}")
                    continue
                w.states[i] = nxt
                w.changes[i] = now
                w.log.append(f"{RTYPES[i]} {state.value} -> {nxt.value}")
                w.waits.clear()
                changed = True


def _may_purge(w: Work, policy: Policy, now: int, wake: list[int]) -> bool:
    if policy.purge_keys == 0 or w.goal is O or _unused(w) or not w.all_hidden():
        return False
    last = max((c for c in w.changes if c is not None), default=0)
    if last + policy.purge_keys < now:
        return True
    wake.append(last + policy.purge_keys + 1)
    return False


# ----------------------------------------------------------------------------- results


def _to_key(w: Work, dnskey_ttl: int) -> Key:
    old = w.key.state or KeyState()
    s = w.states
    state = KeyState(
        lifetime=w.lifetime,
        predecessor=w.predecessor,
        successor=w.successor,
        ksk=w.ksk,
        zsk=w.zsk,
        dnskey_change=w.changes[DNSKEY],
        zrrsig_change=w.changes[ZRRSIG],
        krrsig_change=w.changes[KRRSIG],
        ds_change=w.changes[DS],
        dnskey=s[DNSKEY],
        zrrsig=s[ZRRSIG],
        krrsig=s[KRRSIG],
        ds=s[DS],
        goal=w.goal,
        extra=old.extra,
    )
    timings = KeyTimings(**w.timings)
    # The key files carry the policy's DNSKEY TTL from now on (BIND: dns_keymgr_run sets
    # dst_key_setttl(dnskey-ttl) on every key at the end of each run).
    ttl = dnskey_ttl
    if state == w.key.state and timings == w.key.timings and ttl == w.key.ttl:
        return w.key  # unchanged: no new Key (and no key tag) to compute
    key = w.key if ttl == w.key.ttl else dataclasses.replace(w.key, ttl=ttl)
    return key.with_timings(timings).with_state(state)


def _zone_of(keys: Sequence[Key], zone: dns.name.Name | None) -> dns.name.Name:
    if zone is not None:
        return zone
    if keys:
        return keys[0].zone
    raise ValueError("step() needs the zone name when there are no keys")


def step(
    policy: Policy,
    keys: Sequence[Key],
    facts: Facts | None = None,
    now: int = 0,
    *,
    zone: dns.name.Name | None = None,
    keygen: KeyGen | None = None,
) -> Plan:
    """One key manager step for the zone of ``keys`` at ``now``.

    ``keygen(spec)`` returns ``(public_key, private_material)`` for a new key; without it
    the plan lists the roles still to create in ``to_generate`` and creates nothing.
    Keys that belong to another zone are ignored.  Never raises for odd keys: problems
    (a missing private key, ...) are findings in the plan.
    """
    z = _zone_of(keys, zone)
    keys = [k for k in keys if k.zone == z]
    facts = facts or Facts()
    made: list[tuple[bytes, PrivateMaterial]] = []
    real = None if keygen is None else _recording(keygen, made)
    if not policy.manual_mode or not policy.manage:
        return _discarding(_run(policy, keys, facts, now, z, real), made)
    approved = any(isinstance(f, StepApproved) and f.when <= now for f in facts.items)
    if approved:
        return _discarding(_run(policy, keys, facts, now, z, real), made)
    held = _run(policy, keys, facts, now, z, real, hold=True)
    # what an approved run would do now: with placeholder keys, so nothing real is made
    trial = _run(policy, keys, facts, now, z, fake_keygen("preview") if keygen else None)
    pending = pending_changes(held, trial)
    held = dataclasses.replace(held, pending=pending) if pending else held
    return _discarding(held, made)


def _recording(keygen: KeyGen, made: list[tuple[bytes, PrivateMaterial]]) -> KeyGen:
    def recorded(spec: KeySpec) -> tuple[bytes, PrivateMaterial]:
        got = keygen(spec)
        made.append(got)
        return got

    return recorded


def _discarding(plan: Plan, made: Sequence[tuple[bytes, PrivateMaterial]]) -> Plan:
    """``plan`` with the material made during the step that no created key holds (thrown
    away for a tag collision) in ``discarded``, for the storage adapter to delete."""
    kept = {r.key.public_key for r in plan.keys if r.created}
    thrown = tuple(material for public, material in made if public not in kept)
    return dataclasses.replace(plan, discarded=thrown) if thrown else plan


def pending_changes(held: Plan, approved: Plan) -> tuple[str, ...]:
    """The changes ``approved`` makes that ``held`` does not, one line each (timing
    metadata left out: it follows); keys the approved run created are named by role
    (their tags are not known before)."""
    before = {r.key.id: r for r in held.keys}
    new_tags = {r.key.tag for r in approved.keys if r.created}
    out: list[str] = []
    out += [f"new {role.upper()}: created" for role in approved.to_generate]
    for r in approved.keys:
        old = before.get(r.key.id)
        if old is None:
            out += [f"new {r.key.role.upper()}: {c}" for c in r.changes if " set to " not in c]
            continue
        rest = list(old.changes)
        for change in r.changes:
            if change in rest:
                rest.remove(change)
                continue
            if " set to " in change:
                continue
            text = change
            for t in new_tags:
                text = text.replace(f" {t}", " (new key)")
            out.append(f"{r.key.tag} {r.key.role.upper()}: {text}")
    return tuple(out)


def _run(
    policy: Policy,
    keys: Sequence[Key],
    facts: Facts,
    now: int,
    z: dns.name.Name,
    keygen: KeyGen | None,
    *,
    hold: bool = False,
) -> Plan:
    problems: list[Finding] = []
    owner = z.to_text()
    for k in keys:
        if k.private is None:
            problems.append(
                Finding(
                    "KEY_PRIVATE_MISSING",
                    Severity.ERROR,
                    owner,
                    f"key {k.tag} ({k.basename}) has no private key file: it cannot sign; "
                    "restore the .private file (dnsseal never replaces a missing key)",
                    rrtype="DNSKEY",
                )
            )
    if not policy.manage:
        reports = tuple(KeyReport(k, missing_private=k.private is None) for k in keys)
        problems.append(
            Finding("POLICY_NONE", Severity.INFO, owner, "policy 'none': keys are not managed")
        )
        return Plan(z, policy.name, now, reports, problems=tuple(problems))
    works = [md.init_work(k, policy, now) for k in keys]
    seen_tags: dict[tuple[int, int], Work] = {}
    for w in works:
        other = seen_tags.get((w.alg, w.tag))
        if other is not None:
            problems.append(
                Finding(
                    "KEY_TAG_COLLISION",
                    Severity.WARNING,
                    owner,
                    f"keys {other.key.basename} and another key share algorithm {w.alg} and "
                    f"tag {w.tag}; they are told apart by their public keys, but the "
                    "predecessor/successor links and `--key TAG` are ambiguous",
                    rrtype="DNSKEY",
                )
            )
        seen_tags[(w.alg, w.tag)] = w
    md.apply_facts(works, facts, policy)
    wake: list[int] = []
    purges: list[int] = []
    for w in works:
        if not any(_matches(s, w) for s in policy.keys):
            # on every run, as BIND does (keymgr.c dns_keymgr_run -> keymgr_key_retire):
            # a Retired time still in the future comes forward, Removed follows Retired
            md.retire(w, policy, now)
        if _may_purge(w, policy, now, purges):
            w.purge = True
            w.log.append(f"purged: hidden for longer than purge-keys ({policy.purge_keys}s)")
    needed: list[str] = []
    held = _rollovers(policy, works, z, keygen, now, wake, needed, hold)
    rechecks: list[int] = []
    _update(works, policy, z, now, wake, not policy.keys, rechecks, hold)
    if any(busy.all_hidden() for _, busy in held):
        # A key that held a due roll back left the zone in this very step; nothing
        # else may ever wake the engine up for that roll, so start it now.
        for active, busy in held:
            if _crowd_wait(busy) in active.waits:
                active.waits.remove(_crowd_wait(busy))
        needed.clear()
        _rollovers(policy, works, z, keygen, now, wake, needed, hold)
        rechecks.clear()
        _update(works, policy, z, now, wake, not policy.keys, rechecks, hold)
    return _plan(z, policy, now, works, wake, problems, needed, rechecks, purges)


def _successor_of_live(w: Work, works: Sequence[Work]) -> bool:
    """Some key still in the zone has ``w`` as its successor (BIND: keymgr_dep)."""
    return any(
        d is not w
        and d.successor == w.tag
        and w.predecessor == d.tag
        and not all(s is None or s is H for s in d.states)
        for d in works
    )


def _retire_excess(
    policy: Policy, i: int, active: Work, live: Sequence[Work], works: Sequence[Work], now: int
) -> None:
    """More keys in use than the policy line asks for, outside any rollover: the others
    go (BIND: dns_keymgr_run, "Multiple signing keys match the kasp key configuration.
    Retire excess keys in use.").  A key another identical line of the policy can take
    is not excess."""
    if _successor_of_live(active, works):
        return
    for w in live:
        if w is active or _unused(w) or _successor_of_live(w, works):
            continue
        if any(_matches(s, w) for s in policy.keys[i + 1 :]):
            continue
        md.retire(w, policy, now, f"key {active.tag} already fills its policy line")


def _rollovers(
    policy: Policy,
    works: list[Work],
    zone: dns.name.Name,
    keygen: KeyGen | None,
    now: int,
    wake: list[int],
    needed: list[str],
    hold: bool = False,
) -> list[tuple[Work, Work]]:
    """Step 4 for every key line of the policy; returns (active key, key still leaving)
    for each due roll that the key still leaving holds back."""
    held: list[tuple[Work, Work]] = []
    claimed: set[int] = set()
    for i, spec in enumerate(policy.keys):
        mine = [w for w in works if _matches(spec, w) and not w.purge and id(w) not in claimed]
        for w in mine:
            # every matching key, leaving ones too, gets the policy's lifetime if it has
            # none (BIND: keymgr_key_update_lifetime, called for each match)
            md.update_lifetime(w, policy, spec.lifetime)
        live = [w for w in mine if w.goal is O]
        active = max(live, key=lambda w: w.timings.get("activate") or 0, default=None)
        if active is not None:
            claimed.add(id(active))
            _retire_excess(policy, i, active, live, works, now)
        busy = _rollover(spec, active, works, zone, policy, keygen, now, wake, needed, hold)
        if active is not None and busy is not None:
            held.append((active, busy))
    return held


def _plan(
    zone: dns.name.Name,
    policy: Policy,
    now: int,
    works: list[Work],
    wake: list[int],
    problems: list[Finding],
    needed: list[str],
    rechecks: list[int],
    purges: list[int],
) -> Plan:
    reports = []
    for w in works:
        key = _to_key(w, policy.dnskey_ttl)
        changes = tuple(w.log)
        if not w.created and key == w.key and not changes:
            changes = ()
        reports.append(
            KeyReport(
                key,
                changes,
                "; ".join(w.waits) if w.waits and not w.purge else None,
                w.created,
                w.purge,
                key.private is None,
                w.goal is H and (w.key.state is None or w.key.state.goal is not H),
            )
        )
    live = [(w, r.key) for w, r in zip(works, reports, strict=True) if not w.purge]

    def having(i: int) -> tuple[Key, ...]:
        return tuple(k for w, k in live if w.states[i] in (R, O))

    cds = tuple(k for w, k in live if w.ksk and w.states[DS] in (R, O))
    cds_delete = not policy.keys and any(w.states[DS] in (R, O, U) for w, _ in live)
    future = [t for t in wake if t > now]
    purge = min((t for t in purges if t > now), default=None)
    state = min([*future, *rechecks], default=None)
    timed = min([*future, *([purge] if purge else [])], default=None)
    nxt = min([t for t in (state, purge) if t is not None], default=None)
    return Plan(
        zone=zone,
        policy=policy.name,
        now=now,
        keys=tuple(reports),
        dnskeys=having(DNSKEY),
        ksk_signers=having(KRRSIG),
        zsk_signers=having(ZRRSIG),
        cds=() if cds_delete else cds,
        cds_delete=cds_delete,
        next_event=nxt,
        next_timed_event=timed,
        next_state_event=state,
        next_purge=purge,
        problems=tuple(problems),
        to_generate=tuple(needed),
    )
