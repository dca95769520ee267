"""The key manager's view for people: one key as ``rndc dnssec -status`` shows it.

Used by ``dnsseal keys status`` (offline, on a key directory) and ``dnsseal ctl dnssec
-status`` (a running server); the caller may rewrite the waiting sentence for its context
(the server names its ``dnsseal ctl`` command instead of the offline one).
"""

from __future__ import annotations

from collections.abc import Callable

from dnsseal.durations import format_human_time
from dnsseal.keymgr.plan import KeyReport, Plan
from dnsseal.keys import algorithms
from dnsseal.keys.model import KeyState, RecordState
from dnsseal.policy.model import Policy

_SHOWN = (RecordState.RUMOURED, RecordState.OMNIPRESENT)


def _since(state: RecordState | None, when: int | None, now: int) -> str:
    """BIND's keytime_status: "yes" when the record is (being) published, whatever the
    timing metadata says; else "scheduled" when its time is still to come."""
    if state in _SHOWN:
        return f"yes - since {format_human_time(when)}" if when is not None else "yes - since"
    if when is not None and now < when:
        return f"no  - scheduled {format_human_time(when)}"
    return "no"


def _rollover_line(r: KeyReport, now: int, policy: Policy) -> str | None:
    """BIND's rollover_status: a ZSK (or CSK) is judged by its zone signatures, Active and
    Retired times; a KSK by its DNSKEY signatures, Published and Removed times."""
    k = r.key
    t = k.timings
    st = k.state or KeyState()
    zsk = k.role in ("zsk", "csk")
    rrsig = st.zrrsig if zsk else st.krrsig
    active = t.activate if zsk else t.publish
    retire = t.inactive if zsk else t.delete
    if not active:
        return None  # only keys that were once active
    if st.goal is RecordState.HIDDEN and rrsig in (RecordState.UNRETENTIVE, RecordState.HIDDEN):
        if st.dnskey in _SHOWN:
            if t.delete is None:
                return None
            return f"  Key is retired, will be removed on {format_human_time(t.delete)}"
        return "  Key has been removed from the zone"
    if retire is None:
        return "  No rollover scheduled"
    if now >= retire:
        return f"  Rollover is due since {format_human_time(retire)}"
    if st.goal is not RecordState.OMNIPRESENT:
        return f"  Key will retire on {format_human_time(retire)}"
    # the successor's publication: the publication interval before the retire time
    lead = max(k.ttl or 0, policy.dnskey_ttl) + policy.publish_safety
    lead += policy.zone_propagation_delay
    inactive = t.inactive if t.inactive is not None else retire
    roll = inactive - lead if lead <= inactive else now
    return f"  Next rollover scheduled on {format_human_time(roll)}"


def key_status_lines(
    r: KeyReport, now: int, policy: Policy, hint: Callable[[str], str] = str
) -> list[str]:
    """The lines for one key, as BIND's dns_keymgr_status writes them (lib/dns/keymgr.c:
    keytime_status, rollover_status, keystate_status): role, whether the DNSKEY is
    published and the key signs, the rollover line, the goal and the record states; then
    what the key waits for (passed through ``hint``), which BIND does not say."""
    k = r.key
    t = k.timings
    st = k.state or KeyState()
    alg = algorithms.ALGORITHMS.get(k.algorithm)
    name = alg.mnemonic if alg else str(k.algorithm)
    lines = [f"key: {k.tag} ({name}), {k.role.upper()}"]
    lines.append(f"  published:      {_since(st.dnskey, t.publish, now)}")
    if k.role in ("ksk", "csk"):
        lines.append(f"  key signing:    {_since(st.krrsig, t.publish, now)}")
    if k.role in ("zsk", "csk"):
        lines.append(f"  zone signing:   {_since(st.zrrsig, t.activate, now)}")
    lines.append("")
    roll = _rollover_line(r, now, policy)
    if roll is not None:
        lines.append(roll)
    for label, value in (
        ("goal", st.goal),
        ("dnskey", st.dnskey),
        ("ds", st.ds),
        ("zone rrsig", st.zrrsig),
        ("key rrsig", st.krrsig),
    ):
        if value is not None and value is not RecordState.NA:
            lines.append(f"  - {label + ':':16s}{value.value}")
    if r.waiting:
        lines.append(f"  waiting: {hint(r.waiting)}")
    if r.missing_private:
        lines.append("  private key: MISSING (cannot sign)")
    return lines


def pending_lines(plan: Plan, approve: str) -> list[str]:
    """manual-mode: the step waiting for the operator, and the command that approves it
    (none when nothing waits)."""
    if not plan.pending:
        return []
    return [f"pending step (manual-mode; approve with `{approve}`):"] + [
        f"  {p}" for p in plan.pending
    ]
