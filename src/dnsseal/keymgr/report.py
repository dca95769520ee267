"""The key manager's view for people: one key as ``rndc dnssec -status`` shows it.

Used by ``dnsseal keys status`` (offline, on a key directory) and ``dnsseal ctl dnssec
-status`` (a running server); the caller may rewrite the waiting sentence for its context
(the server names its ``dnsseal ctl`` command instead of the offline one).
"""

from __future__ import annotations

from collections.abc import Callable

from dnsseal.durations import format_human_time
from dnsseal.keymgr.plan import KeyReport
from dnsseal.keys import algorithms
from dnsseal.keys.model import RecordState
from dnsseal.policy.model import Policy


def _since(value: int | None, now: int) -> str:
    if value is None:
        return "no"
    if value <= now:
        return f"yes - since {format_human_time(value)}"
    return f"no - scheduled {format_human_time(value)}"


def key_status_lines(
    r: KeyReport, now: int, policy: Policy, hint: Callable[[str], str] = str
) -> list[str]:
    """The lines for one key: role and times, next rollover (as BIND computes it: the
    successor's publication, the publication interval before retirement), the goal and
    the four record states, and what the key waits for (passed through ``hint``)."""
    k = r.key
    t = k.timings
    st = k.state
    alg = algorithms.ALGORITHMS.get(k.algorithm)
    name = alg.mnemonic if alg else str(k.algorithm)
    lines = [f"key: {k.tag} ({name}), {k.role.upper()}"]
    lines.append(f"  published:      {_since(t.publish, now)}")
    if k.role in ("ksk", "csk"):
        lines.append(f"  key signing:    {_since(t.activate, now)}")
    if k.role in ("zsk", "csk"):
        lines.append(f"  zone signing:   {_since(t.activate, now)}")
    lines.append("")
    goal = st.goal if st else None
    if goal is RecordState.HIDDEN or (t.inactive is not None and t.inactive <= now):
        lines.append(
            f"  Key is retired, will be removed on {format_human_time(t.delete)}"
            if t.delete is not None
            else "  Key is retired"
        )
    elif t.inactive is not None:
        lead = (
            max(k.ttl or 0, policy.dnskey_ttl)
            + policy.publish_safety
            + policy.zone_propagation_delay
        )
        roll = t.inactive - lead
        word = "Rollover is due since" if roll <= now else "Next rollover scheduled on"
        lines.append(f"  {word} {format_human_time(roll)}")
    else:
        lines.append("  No rollover scheduled")
    if st is not None:
        for label, value in (
            ("goal", st.goal),
            ("dnskey", st.dnskey),
            ("ds", st.ds),
            ("zone rrsig", st.zrrsig),
            ("key rrsig", st.krrsig),
        ):
            if value is not None:
                lines.append(f"  - {label + ':':16s}{value.value}")
    if r.waiting:
        lines.append(f"  waiting: {hint(r.waiting)}")
    if r.missing_private:
        lines.append("  private key: MISSING (cannot sign)")
    return lines
