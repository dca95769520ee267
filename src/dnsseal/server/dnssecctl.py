"""The DNSSEC control commands of a running server (``dnsseal ctl``, like ``rndc``).

``dnssec -status ZONE``, ``dnssec -rollover -key TAG [-when TIME] ZONE``,
``dnssec -checkds [-key TAG] published|withdrawn ZONE``, ``dnssec -step ZONE`` (manual-mode:
approve the pending step), ``sign ZONE``, ``loadkeys ZONE``,
``signing -list ZONE``, ``signing -clear all|KEYID/ALG ZONE``.  Each returns the lines to
print; bad arguments raise :class:`CtlUsage` with the usage line.  Operator requests go to
the audit log.  Sentences of the key manager that name an offline command
(``dnsseal keys checkds ...``) are shown with the running server's command instead.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dns.rdatatype

from dnsseal import clock
from dnsseal.durations import format_human_time, parse_when
from dnsseal.errors import DnssealError, InputError
from dnsseal.keymgr import StepApproved
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn, Fact, KeyReport, Plan, RolloverRequest
from dnsseal.keymgr.report import key_status_lines, pending_lines
from dnsseal.keys.model import Key, RecordState
from dnsseal.policy.model import Policy
from dnsseal.server.inline import InlineZone
from dnsseal.server.zones import ZoneState
from dnsseal.signer import signingstate
from dnsseal.storage.journal import AuditEvent, Journal

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

T = dns.rdatatype
log = logging.getLogger(__name__)
DNSSEC_USAGE = (
    "dnssec -status ZONE | dnssec -rollover -key TAG [-when TIME] ZONE | "
    "dnssec -checkds [-key TAG] [-when TIME] published|withdrawn ZONE"
    " | dnssec -step ZONE"
)


class CtlUsage(LookupError):
    """Wrong arguments: the message is the usage line."""


SIGNING_USAGE = "signing -list ZONE | signing -clear all|KEYID/ALGORITHM ZONE"

# The key manager's offline commands -> the running server's (rndc-style) ones.
_SERVER_COMMANDS = (
    (
        re.compile(r"`dnsseal keys checkds (\S+) --key (\d+) (published|withdrawn)`"),
        r"`dnsseal ctl dnssec -checkds -key \2 \3 \1`",
    ),
    (re.compile(r"`--key TAG`"), "`-key TAG`"),
)


def server_hint(waiting: str) -> str:
    """The key manager's sentence with the commands for a running server (``dnsseal
    ctl``) instead of the offline ones."""
    for pattern, replacement in _SERVER_COMMANDS:
        waiting = pattern.sub(replacement, waiting)
    return waiting


def key_status(r: KeyReport, now: int, pol: Policy) -> list[str]:
    """One key as `rndc dnssec -status` shows it, plus what it waits for (with the
    running server's command)."""
    return key_status_lines(r, now, pol, hint=server_hint)


def status_lines(inline: InlineZone, now: int, extra: Sequence[str] = ()) -> list[str]:
    """``dnssec -status``: the policy, every key, what each waits for, the parent."""
    plan = inline.plan
    out = [f"dnssec-policy: {inline.policy.name}", f"current time:  {format_human_time(now)}", ""]
    if plan is None:
        return [*out, "the key manager has not run yet"]
    for r in plan.keys:
        if not r.purge:
            out += key_status(r, now, inline.policy)
            out.append("")
    if not plan.keys:
        out.append("No keys.")
    if plan.cds_delete:
        out.append("CDS/CDNSKEY DELETE published (going insecure)")
    elif plan.cds:
        out.append("CDS/CDNSKEY published for: " + ", ".join(str(k.tag) for k in plan.cds))
    out += list(extra)
    out += pending_lines(plan, f"dnsseal ctl dnssec -step {inline.name}")
    out += [server_hint(str(f)) for f in plan.problems]
    if plan.next_event is not None:
        out.append(f"next key event: {format_human_time(plan.next_event)}")
    return out


def signing_list(inline: InlineZone) -> list[str]:
    """``signing -list``: one line per signing-state record of the version served, as
    ``rndc signing -list`` prints them."""
    states = inline.signing_states()
    if not states:
        return ["No signing records found"]
    return [st.describe() for st in states]


def _find_key(plan: Plan | None, tag: int) -> Key:
    keys = [r.key for r in plan.keys if not r.purge] if plan else []
    found = [k for k in keys if k.tag == tag]
    if len(found) != 1:
        have = ", ".join(str(k.tag) for k in keys) or "none"
        raise CtlUsage(f"no single key with tag {tag} (keys: {have})")
    return found[0]


def _options(args: Sequence[str], known: dict[str, bool]) -> tuple[dict[str, str], list[str]]:
    """Split ``-opt value`` / ``-flag`` options (``known``: name -> takes a value)."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in known:
            if known[a]:
                if i + 1 >= len(args):
                    raise CtlUsage(f"{a} needs a value; usage: {DNSSEC_USAGE}")
                opts[a] = args[i + 1]
                i += 2
                continue
            opts[a] = ""
        elif a.startswith("-") and len(a) > 1:
            raise CtlUsage(f"unknown option {a}; usage: {DNSSEC_USAGE}")
        else:
            rest.append(a)
        i += 1
    return opts, rest


def _tag(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CtlUsage(f"-key needs a key tag, got {text!r}") from None


class DnssecControl:
    """The DNSSEC control commands against ``server``."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server

    def _inline(self, zone: str) -> tuple[ZoneState, InlineZone]:
        state = self.server.find_state(zone)
        if state.inline is None:
            raise CtlUsage(f"{state.name}: not signed by this server (no dnssec-policy)")
        return state, state.inline

    def _audit(self, inline: InlineZone, key: str, message: str) -> None:
        state_dir = self.server.config.state_dir
        if state_dir is None:
            return
        with Journal(state_dir) as j:
            j.audit(AuditEvent(clock.now(), inline.name, key, "operator", message))

    async def dnssec(self, args: Sequence[str]) -> list[str]:
        if not args:
            raise CtlUsage(f"usage: {DNSSEC_USAGE}")
        sub, rest = args[0], list(args[1:])
        if sub == "-status":
            if len(rest) != 1:
                raise CtlUsage("usage: dnssec -status ZONE")
            state, inline = self._inline(rest[0])
            return status_lines(inline, clock.now(), self.server.parent_lines(state))
        if sub == "-rollover":
            opts, pos = _options(rest, {"-key": True, "-when": True})
            if "-key" not in opts or len(pos) != 1:
                raise CtlUsage("usage: dnssec -rollover -key TAG [-when TIME] ZONE")
            state, inline = self._inline(pos[0])
            now = clock.now()
            try:
                when = parse_when(opts.get("-when", "now"), now)
            except InputError as e:
                raise CtlUsage(f"-when: {e}") from None
            key = _find_key(inline.plan, _tag(opts["-key"]))
            if key.state is not None and key.state.goal is RecordState.HIDDEN:
                raise CtlUsage(f"key {key.tag} is already retiring; nothing to roll")
            fact: Fact = RolloverRequest(key.id, when if when is not None else now)
            return await self._apply(state, inline, [fact], f"rollover of key {key.tag}")
        if sub == "-checkds":
            opts, pos = _options(rest, {"-key": True, "-when": True})
            if len(pos) != 2 or pos[0] not in ("published", "withdrawn"):
                raise CtlUsage(
                    "usage: dnssec -checkds [-key TAG] [-when TIME] published|withdrawn ZONE"
                )
            state, inline = self._inline(pos[1])
            try:
                when = parse_when(opts.get("-when", "now"), clock.now())
            except InputError as e:
                raise CtlUsage(f"-when: {e}") from None
            now = when if when is not None else clock.now()
            if "-key" in opts:
                keys = [_find_key(inline.plan, _tag(opts["-key"]))]
            else:
                plan = inline.plan
                keys = [r.key for r in plan.keys if r.key.role in ("ksk", "csk")] if plan else []
                if len(keys) != 1:
                    raise CtlUsage("several KSKs: say which with -key TAG")
            facts: list[Fact] = [
                DsSeen(k.id, now) if pos[0] == "published" else DsWithdrawn(k.id, now) for k in keys
            ]
            what = f"DS {pos[0]} for key(s) {', '.join(str(k.tag) for k in keys)}"
            return await self._apply(state, inline, facts, what)
        if sub == "-step":
            if len(rest) != 1:
                raise CtlUsage("usage: dnssec -step ZONE")
            state, inline = self._inline(rest[0])
            if not inline.policy.manual_mode:
                raise CtlUsage(f"{inline.name}: policy {inline.policy.name} is not in "
                               "manual-mode: no step waits for approval")  # fmt: skip
            fact = StepApproved(clock.now())
            out = await self._apply(state, inline, [fact], "step approved (manual-mode)")
            self.server.automation.wake(state)  # it slept with nothing to do: it has now
            return out
        raise CtlUsage(f"usage: {DNSSEC_USAGE}")

    async def _apply(
        self, state: ZoneState, inline: InlineZone, facts: list[Fact], what: str
    ) -> list[str]:
        for f in facts:
            inline.request(f)
        self._audit(inline, "-", f"operator: {what}")
        problem = await self.server.automation.maintain(state, "keymgr")
        if problem:
            return [f"{inline.name}: {what}: {problem}"]
        return [f"{inline.name}: {what}: done", *status_lines(inline, clock.now())]

    async def sign(self, zone: str) -> list[str]:
        state, inline = self._inline(zone)
        self._audit(inline, "-", "operator: sign (re-sign every RRset)")
        problem = await self.server.automation.maintain(state, "sign", force=True)
        if problem:
            raise CtlUsage(f"{inline.name}: {problem}")
        serial = inline.signed_serial if inline.signed_serial is not None else "-"
        return [f"{inline.name}: re-signed, serial {serial}"]

    async def loadkeys(self, zone: str) -> list[str]:
        state, inline = self._inline(zone)
        problem = await self.server.automation.maintain(state, "loadkeys")
        if problem:
            raise CtlUsage(f"{inline.name}: {problem}")
        keys = ", ".join(f"{k.tag} ({k.role.upper()})" for k in inline.keys) or "none"
        return [f"{inline.name}: keys loaded: {keys}"]

    def signing(self, args: Sequence[str]) -> list[str]:
        """``signing -list ZONE`` or ``signing -clear all|KEYID/ALG ZONE``.  A clear is
        queued, as rndc does ("request queued"): its version is made under the zone's
        lock, journaled and served by :meth:`clear`."""
        if len(args) == 2 and args[0] == "-list":
            _, inline = self._inline(args[1])
            return signing_list(inline)
        if len(args) == 3 and args[0] == "-clear":
            try:
                which = signingstate.parse_selector(args[1])
            except ValueError as e:
                raise CtlUsage(f"signing -clear: {e}; usage: {SIGNING_USAGE}") from None
            state, inline = self._inline(args[2])
            what = "all" if which is None else f"{which[1]}/{which[0]}"
            self._audit(inline, "-", f"operator: signing -clear {what}")
            self.server.spawn(self.clear(state, which))
            return ["request queued"]
        raise CtlUsage(f"usage: {SIGNING_USAGE}")

    async def clear(self, state: ZoneState, which: signingstate.KeyRef | None) -> str | None:
        """Make and publish the version without the completed signing-state records
        ``which`` selects.  Returns the problem, or None (also when none matched)."""
        inline = state.inline
        assert inline is not None
        async with state.lock:
            if inline.signed is None or inline.plan is None:
                return f"{inline.name}: not signed yet"
            now = clock.now()
            try:
                version = await asyncio.to_thread(inline.clear_signing_state, which, now)
                if version is not None:
                    await state.commit(version, now)
            except DnssealError as e:
                log.error("[%s] signing -clear: %s", inline.name, e)
                return str(e)
        return None
