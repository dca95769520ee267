"""Deterministic replays of bogus windows the property tests once found (one per bug),
with explicit policies and times, so each stays fixed whatever hypothesis explores."""

from __future__ import annotations

from dnsseal.keymgr import safety
from dnsseal.keymgr.rules import DNSKEY, Work, transition_safe
from dnsseal.keys.model import FLAG_SEP, FLAG_ZONE, TIMING_FIELDS, Key, RecordState
from dnsseal.policy.model import KeySpec, Policy

from .helpers import ZONE, assert_safe, run

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
    """CSK -> KSK + ZSK with 3-day lifetimes: the old CSK's DS was withdrawn a day before
    the new KSK's first roll swapped DS records again.  The (3c) rule saw that swap's pair
    (DS unretentive -> DS rumoured, both DNSKEYs omnipresent) and let the old CSK's DNSKEY
    leave while caches could still hold a DS RRset naming only the old CSK."""
    life = 259800
    before = SHORT.replace(keys=(KeySpec("csk", 8, life),))
    after = SHORT.replace(keys=(KeySpec("ksk", 8, life), KeySpec("zsk", 8, life)))
    change = 1_700_604_800
    tl = run(before, 120, ds_delay=0, scheduled=[(change, after)])
    assert_safe(tl, before)
    # The scenario really happened: the CSK that was active at the change...
    csks = [k for k in tl.keys.values() if k.role == "csk"]
    old = max(csks, key=lambda k: k.timings.created or 0)
    withdrawn = next(v.at for v in tl.parent if v.at > change and old.id not in v.ds)
    # ...left the DS RRset, and the new KSK's first roll began while that DS could still
    # be cached.
    cached_until = withdrawn + SHORT.parent_ds_ttl + SHORT.parent_propagation_delay
    assert any(
        k.role == "ksk" and k.state is not None and k.state.predecessor is not None
        and withdrawn < (k.timings.created or 0) < cached_until
        for k in tl.keys.values()
    )  # fmt: skip
    last_seen = max(v.at for v in tl.zone if old.id in v.dnskeys and old.id in v.ksk_signers)
    gone = min(v.at for v in tl.zone if v.at > last_seen)
    assert gone >= cached_until  # the DNSKEY stayed as long as the DS could be cached
    assert safety.check_at(tl, before, cached_until - 1) == []


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
