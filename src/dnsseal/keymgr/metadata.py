"""Key metadata for the engine: adopting keys (record states derived from BIND timing
metadata), recording facts, and the timing fields BIND's keymgr maintains (Published,
Active, Retired, Removed, PublishCDS, DSPublish, DSRemoved, Lifetime).

Pure, like the rest of :mod:`dnsseal.keymgr`.
"""

from __future__ import annotations

from collections.abc import Sequence

from dnsseal.durations import format_bind_time
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn, Facts, RolloverRequest, StepApproved
from dnsseal.keymgr.rules import DNSKEY, DS, KRRSIG, RTYPES, ZRRSIG, H, O, R, U, Work
from dnsseal.keys.model import TIMING_FIELDS, Key, KeyState, RecordState
from dnsseal.policy.model import UNLIMITED, Policy


def key_ttl(w: Work, policy: Policy) -> int:
    return max(w.key.ttl or 0, policy.dnskey_ttl)


# ----------------------------------------------------------------------- initialisation


def init_work(key: Key, policy: Policy, now: int) -> Work:
    """The working copy of ``key``; records without a state get one derived from the
    timing metadata, as BIND does when it adopts keys made by dnssec-keygen."""
    st = key.state or KeyState()
    csk = key.is_ksk and any(s.role == "csk" and s.algorithm == key.algorithm for s in policy.keys)
    ksk = st.ksk if st.ksk is not None else key.is_ksk or csk
    zsk = st.zsk if st.zsk is not None else (not key.is_ksk) or csk
    t = {f.attr: key.timings.get(f.attr) for f in TIMING_FIELDS}
    dnskey = zrrsig = ds = H
    goal = H
    sig_wait = policy.ttlsig + policy.zone_propagation_delay
    act, pub, sync = t["activate"], t["publish"], t["sync_publish"]
    ret, rem = t["inactive"], t["delete"]
    if act is not None and act <= now:
        zrrsig = O if act + sig_wait <= now else R
        goal = O
    if pub is not None and pub <= now:
        ttl = max(key.ttl or 0, policy.dnskey_ttl) + policy.zone_propagation_delay
        dnskey = O if pub + ttl <= now else R
        goal = O
    if sync is not None and sync <= now:
        ds = O if sync + policy.parent_ds_ttl + policy.parent_propagation_delay <= now else R
        goal = O
    if ret is not None and ret <= now:
        zrrsig = H if ret + sig_wait <= now else U
        ds = U
        goal = H
    if rem is not None and rem <= now:
        ttl = max(key.ttl or 0, policy.dnskey_ttl) + policy.zone_propagation_delay
        dnskey = H if rem + ttl <= now else U
        zrrsig = ds = H
        goal = H
    derived = (dnskey, zrrsig if zsk else None, dnskey if ksk else None, ds if ksk else None)
    have = (st.dnskey, st.zrrsig, st.krrsig, st.ds)
    have_changes = (st.dnskey_change, st.zrrsig_change, st.krrsig_change, st.ds_change)
    states: list[RecordState | None] = []
    changes: list[int | None] = []
    log_lines: list[str] = []
    for i, (d, h, c) in enumerate(zip(derived, have, have_changes, strict=True)):
        if h is not None and h is not RecordState.NA:
            states.append(h)
            changes.append(c)
        elif d is None or h is RecordState.NA:
            states.append(None)
            changes.append(None)
        else:
            states.append(d)
            changes.append(now)
            if key.state is None or h is None:
                log_lines.append(f"{RTYPES[i]} state initialised to {d.value} from timing metadata")
    w = Work(
        key=key,
        ksk=bool(ksk),
        zsk=bool(zsk),
        states=states,
        changes=changes,
        goal=st.goal if st.goal is not None else goal,
        timings=t,
        lifetime=st.lifetime,
        predecessor=st.predecessor,
        successor=st.successor,
    )
    if key.state is None:
        w.log.extend(log_lines)
    return w


def apply_facts(works: Sequence[Work], facts: Facts, policy: Policy) -> None:
    by_id = {w.key.id: w for w in works}
    for fact in facts.items:
        if isinstance(fact, StepApproved):
            continue  # the engine's own (manual-mode), not about one key
        w = by_id.get(fact.key)
        if w is None:
            continue
        if isinstance(fact, DsSeen):
            set_time(w, "ds_publish", fact.when, "DS seen at the parent")
        elif isinstance(fact, DsWithdrawn):
            set_time(w, "ds_delete", fact.when, "DS withdrawn from the parent")
        elif isinstance(fact, RolloverRequest) and w.goal is O:
            set_time(w, "inactive", fact.when, "rollover requested")
            settime_remove(w, policy)


def set_time(w: Work, attr: str, value: int | None, why: str) -> None:
    if w.timings.get(attr) != value:
        w.timings[attr] = value
        shown = format_bind_time(value) if value is not None else "unset"
        w.log.append(f"{attr} set to {shown} ({why})")


# ----------------------------------------------------------------------- timing metadata


def settime_remove(w: Work, policy: Policy) -> None:
    retire = w.timings.get("inactive")
    if retire is None:
        return
    remove = 0
    if w.zsk:
        remove = retire + policy.iret_zsk
    if w.ksk:
        remove = max(remove, retire + policy.iret_ksk)
    set_time(w, "delete", remove, "retire time + retire interval")


def settime_syncpublish(w: Work, policy: Policy, first: bool) -> None:
    pub = w.timings.get("publish")
    if pub is None or not w.ksk:
        return
    sync = pub + policy.ipub
    if first:
        sync = max(sync, pub + policy.ipub_first)
    set_time(w, "sync_publish", sync, "DS may be submitted")


def prepublication_time(w: Work, policy: Policy, lifetime: int, now: int) -> int:
    """When the successor of active key ``w`` must be published (0: never).  Fills in
    missing activate/publish/sync-publish/inactive/delete times, as BIND does."""
    t = w.timings
    if t.get("activate") is None:
        set_time(w, "activate", now, "active key without an activation time")
    if t.get("publish") is None:
        set_time(w, "publish", now, "active key without a publication time")
    prepub = key_ttl(w, policy) + policy.publish_safety + policy.zone_propagation_delay
    pub = t["publish"]
    assert pub is not None
    if w.ksk and t.get("sync_publish") is None:
        sync = pub + prepub
        if w.predecessor is None:
            sync = max(sync, pub + policy.ipub_first)
        set_time(w, "sync_publish", sync, "DS may be submitted")
    retire = t.get("inactive")
    if retire is None:
        if w.lifetime is None:
            w.lifetime = lifetime
        if w.lifetime == UNLIMITED:
            return 0
        act = t["activate"]
        assert act is not None
        retire = act + w.lifetime
        set_time(w, "inactive", retire, "activation + lifetime")
    settime_remove(w, policy)
    return retire - prepub if prepub <= retire else now


def update_lifetime(w: Work, policy: Policy, lifetime: int) -> None:
    """A changed policy lifetime applies to keys already in use."""
    if w.lifetime is None:
        w.lifetime = lifetime
        return
    if w.goal is not O or w.lifetime == lifetime:
        return
    w.log.append(f"lifetime changed to {lifetime or 'unlimited'} by the policy")
    w.lifetime = lifetime
    if lifetime:
        act = w.timings.get("activate")
        set_time(w, "inactive", (act if act is not None else 0) + lifetime, "new lifetime")
        settime_remove(w, policy)
    else:
        set_time(w, "inactive", None, "unlimited lifetime")
        set_time(w, "delete", None, "unlimited lifetime")


def retire(
    w: Work, policy: Policy, now: int, why: str = "the policy has no key line for it"
) -> None:
    """The key is not wanted by the policy: it goes, safely.  Called on every step for
    such a key (BIND: keymgr_key_retire), so its Retired and Removed times are always
    written, also for a key that was already leaving."""
    retire = w.timings.get("inactive")
    if retire is None or retire > now:
        set_time(w, "inactive", now, "not wanted by the policy")
    if w.goal is not H:
        w.log.append(f"retired: {why}")
    w.goal = H
    settime_remove(w, policy)
    for i, applies in ((DNSKEY, True), (KRRSIG, w.ksk), (DS, w.ksk), (ZRRSIG, w.zsk)):
        if applies and w.states[i] is None:
            w.states[i] = O
            w.changes[i] = now
