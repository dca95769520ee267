"""``dnsseal policy check|import`` and
``dnsseal keys run|status|step|timeline|rollover|checkds``.

The ``keys`` commands load a zone's keys from a key directory, run one step of the pure key
manager (:func:`dnsseal.keymgr.step`) and save what it says, as ``rndc dnssec`` and named's
key manager do with BIND's key files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click
import dns.exception
import dns.name

from dnsseal import clock
from dnsseal.durations import format_human_time, parse_duration, parse_when
from dnsseal.errors import InputError, OptionError
from dnsseal.keymgr import safety, simulate
from dnsseal.keymgr import timeline as tline
from dnsseal.keymgr.engine import step
from dnsseal.keymgr.plan import (
    DsSeen,
    DsWithdrawn,
    Fact,
    Facts,
    KeyReport,
    Plan,
    RolloverRequest,
    StepApproved,
)
from dnsseal.keymgr.report import key_status_lines, pending_lines
from dnsseal.keys.model import Key, RecordState
from dnsseal.policy import checks, tomlfmt
from dnsseal.policy.build import lookup
from dnsseal.policy.model import Policy
from dnsseal.storage import config, files
from dnsseal.storage.keydir import KeyDirectory, generate

CONTEXT = {"help_option_names": ["-h", "--help"]}


# --------------------------------------------------------------------------- policy


@click.group(context_settings=CONTEXT)
def policy() -> None:
    """Check and import dnssec-policy definitions."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Check every policy in FILE (TOML, or named.conf): report every problem with its
    option path, exit status 1 if there is any."""
    policies, problems = config.collect_policies(file)
    for p in policies.values():
        problems += checks.check_policy(p)
    for e in problems:
        click.echo(f"{file}: {e.option}: {e.message}")
    if problems:
        raise click.exceptions.Exit(1)
    names = ", ".join(policies) or "none"
    click.echo(f"{file}: {len(policies)} policies OK ({names})")


@policy.command("import")
@click.argument("namedconf", type=click.Path(dir_okay=False))
def policy_import(namedconf: str) -> None:
    """Print the dnssec-policy blocks of a BIND named.conf as dnsseal TOML."""
    from dnsseal.policy import namedconf as nc

    policies = nc.parse(files.read_text(namedconf), namedconf)
    if not policies:
        raise InputError(f"{namedconf}: no dnssec-policy blocks found")
    click.echo(f"# converted from {namedconf} by dnsseal policy import", nl=True)
    click.echo(tomlfmt.format(policies.values()), nl=False)


# ----------------------------------------------------------------------------- keys


def _zone(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise OptionError("ZONE", f"bad zone name {text!r}: {e}") from None


def _policy(name: str, conf: str | None) -> Policy:
    return lookup(name, config.load_policies(conf))


def _now(text: str | None) -> int:
    real = clock.now()
    if text is None:
        return real
    try:
        when = parse_when(text, real)
    except InputError as e:
        raise OptionError("--now", str(e)) from None
    if when is None:
        raise OptionError("--now", "a time is needed")
    return when


def _find(keys: Sequence[Key], tag: int) -> Key:
    found = [k for k in keys if k.tag == tag]
    if not found:
        have = ", ".join(str(k.tag) for k in keys) or "none"
        raise OptionError("--key", f"no key with tag {tag} (keys: {have})")
    if len(found) > 1:
        names = ", ".join(k.basename for k in found)
        raise OptionError("--key", f"tag {tag} is ambiguous ({names}); remove one of them")
    return found[0]


def _print_plan(plan: Plan) -> None:
    z = plan.zone.to_text()
    for r in plan.keys:
        for c in r.changes:
            click.echo(f"{z} {r.key.tag} ({r.key.role.upper()}): {c}")
    for r in plan.keys:
        if r.waiting:
            click.echo(f"{z} {r.key.tag} ({r.key.role.upper()}) waits: {r.waiting}")
    for f in plan.problems:
        click.echo(str(f), err=True)
    if not plan.changed:
        click.echo(f"{z}: no change")
    if plan.to_generate:
        click.echo(f"{z}: would create keys: {', '.join(plan.to_generate)}")
    for line in pending_lines(plan, f"dnsseal keys step {z}"):
        click.echo(f"{z}: {line}")
    if plan.next_event is not None:
        click.echo(f"{z}: next key event: {format_human_time(plan.next_event)}")
    else:
        click.echo(f"{z}: no key event scheduled")


def _refuse_offline(pol: Policy) -> None:
    """Under offline-ksk no key manager makes or rolls keys here (as named with offline-ksk):
    the ZSKs come from ``dnsseal ksr keygen`` and the DNSKEY RRset from the signed key
    response the server imports."""
    raise OptionError(
        "--policy",
        f"policy {pol.name!r} uses offline-ksk: keys are not made or rolled by `keys`; "
        "pregenerate ZSKs with `dnsseal ksr keygen` and serve the KSK operator's signed key "
        "response (docs/hsm.md, 'Offline KSK: the online signer')",
    )


def _run(
    zone: str,
    keydir: str,
    policy_name: str,
    conf: str | None,
    now: int,
    facts: Sequence[Fact] = (),
    *,
    dry_run: bool = False,
) -> Plan:
    z = _zone(zone)
    pol = _policy(policy_name, conf)
    kd = KeyDirectory(keydir)
    keys = kd.keys(z)
    if pol.offline_ksk:
        if not dry_run:
            _refuse_offline(pol)
        return Plan(z, pol.name, now, tuple(KeyReport(k) for k in keys))  # the keys as they are
    plan = step(pol, keys, Facts(tuple(facts)), now, zone=z, keygen=None if dry_run else generate)
    if not dry_run:
        kd.apply(plan, keys)
    return plan


common = [
    click.argument("zone"),
    click.option("-K", "keydir", default=".", show_default=True, help="Key directory."),
    click.option(
        "-p",
        "--policy",
        "policy_name",
        default="default",
        show_default=True,
        help="dnssec-policy name (built-in, or defined in -c).",
    ),
    click.option("-c", "--config", "conf", default=None, help="TOML or named.conf with policies."),
    click.option("--now", "now_text", default=None, help="Pretend it is this time (BIND forms)."),
]


def with_common(f: click.decorators.FC) -> click.decorators.FC:
    for deco in reversed(common):
        f = deco(f)
    return f


@click.group(context_settings=CONTEXT)
def keys() -> None:
    """Run the key manager on a key directory (like named's dnssec-policy and rndc dnssec)."""


@keys.command("run")
@with_common
@click.option("-n", "--dry-run", is_flag=True, help="Show what would change; write nothing.")
def keys_run(
    zone: str, keydir: str, policy_name: str, conf: str | None, now_text: str | None, dry_run: bool
) -> None:
    """One key manager step for ZONE: create, roll, retire and purge keys as the policy
    says, and print what changed."""
    _print_plan(_run(zone, keydir, policy_name, conf, _now(now_text), dry_run=dry_run))


@keys.command("status")
@with_common
def keys_status(
    zone: str, keydir: str, policy_name: str, conf: str | None, now_text: str | None
) -> None:
    """The key states of ZONE, shaped like `rndc dnssec -status` (nothing is written)."""
    now = _now(now_text)
    plan = _run(zone, keydir, policy_name, conf, now, dry_run=True)
    out = [f"dnssec-policy: {plan.policy}", f"current time:  {format_human_time(now)}", ""]
    for r in plan.keys:
        if r.purge:
            continue
        out += key_status_lines(r, now, _policy(policy_name, conf))
        out.append("")
    if not plan.keys:
        out.append("No keys.")
    out += pending_lines(plan, f"dnsseal keys step {plan.zone.to_text()}")
    for f in plan.problems:
        out.append(str(f))
    click.echo("\n".join(out).rstrip())


@keys.command("step")
@with_common
def keys_step(
    zone: str, keydir: str, policy_name: str, conf: str | None, now_text: str | None
) -> None:
    """manual-mode: approve and make the pending step of ZONE (like BIND 9.21's
    `rndc dnssec -step`), then print what changed and what is pending next."""
    pol = _policy(policy_name, conf)
    if not pol.manual_mode:
        raise OptionError(
            "--policy", f"policy {pol.name!r} is not in manual-mode: no step waits for approval"
        )
    now = _now(now_text)
    _print_plan(_run(zone, keydir, policy_name, conf, now, [StepApproved(now)]))


@keys.command("timeline")
@with_common
@click.option("--until", "until", default="P2Y", show_default=True, help="How far to look.")
@click.option(
    "--assume-ds-after",
    "ds_after",
    default="PT1H",
    show_default=True,
    help="The parent updates its DS this long after the CDS changes ('never').",
)
@click.option(
    "--approve-after",
    "approve_text",
    default="PT0S",
    show_default=True,
    help="manual-mode: the operator approves each step this long after it is proposed ('never').",
)
@click.option("--json", "as_json", is_flag=True, help="Events as JSON.")
@click.option(
    "--svg",
    "svg_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the key states over time to this SVG file.",
)
def keys_timeline(
    zone: str,
    keydir: str,
    policy_name: str,
    conf: str | None,
    now_text: str | None,
    until: str,
    ds_after: str,
    approve_text: str,
    as_json: bool,
    svg_file: str | None,
) -> None:
    """What will happen to ZONE's keys: simulate the key manager forward and list every
    event with its date (nothing is written, no key is created)."""
    now = _now(now_text)
    z = _zone(zone)
    pol = _policy(policy_name, conf)
    if pol.offline_ksk:
        _refuse_offline(pol)
    try:
        horizon = parse_duration(until)
    except InputError as e:
        raise OptionError("--until", str(e)) from None
    delay: int | None
    if ds_after.lower() == "never":
        delay = None
    else:
        try:
            delay = parse_duration(ds_after)
        except InputError as e:
            raise OptionError("--assume-ds-after", str(e)) from None
    approve: int | None = None
    if approve_text.lower() != "never":
        try:
            approve = parse_duration(approve_text)
        except InputError as e:
            raise OptionError("--approve-after", str(e)) from None
    existing = KeyDirectory(keydir).keys(z)
    tl = simulate.simulate(pol, existing, now, now + horizon, zone=z, ds_delay=delay,
                           approve_after=approve)  # fmt: skip
    evs = tline.events(tl)
    bogus = safety.check(tl, pol)
    if svg_file:
        # a tenth of the drawing before now: each key's records since its state file says
        back = horizon // 10 if existing else 0
        before = {k.id: tline.current_bars(k, now, now - back) for k in existing}
        config.write_text(svg_file, tline.svg(tl, now=now, since=now - back, before=before))
    if as_json:
        doc = {
            "zone": z.to_text(),
            "policy": pol.name,
            "from": now,
            "until": now + horizon,
            "events": [e.to_dict() for e in evs],
            "bogus_windows": [{"epoch": b.at, "reason": b.reason} for b in bogus],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(
        f"{z.to_text()}: policy {pol.name}, {format_human_time(now)} .. "
        f"{format_human_time(now + horizon)}"
    )
    for row in tline.text_rows(evs):
        click.echo(row)
    if any(e.simulated for e in evs):
        click.echo("(* a key that does not exist yet: its tag will differ)")
    click.echo(f"safety check: {len(bogus)} bogus cache combinations")
    for b in bogus[:10]:
        click.echo(f"  {format_human_time(b.at)}: {b.reason}")


@keys.command("rollover")
@with_common
@click.option("--key", "tag", type=int, required=True, help="Tag of the key to roll.")
@click.option("--when", "when_text", default=None, help="When to roll (default: now).")
def keys_rollover(
    zone: str,
    keydir: str,
    policy_name: str,
    conf: str | None,
    now_text: str | None,
    tag: int,
    when_text: str | None,
) -> None:
    """Roll a key now or at --when (like `rndc dnssec -rollover -key TAG`)."""
    now = _now(now_text)
    when = now if when_text is None else parse_when(when_text, now)
    if when is None:
        raise OptionError("--when", "a time is needed")
    key = _find(KeyDirectory(keydir).keys(_zone(zone)), tag)
    if key.state is not None and key.state.goal is RecordState.HIDDEN:
        raise OptionError("--key", f"key {tag} is already retiring; nothing to roll")
    plan = _run(zone, keydir, policy_name, conf, now, [RolloverRequest(key.id, when)])
    _print_plan(plan)


@keys.command("checkds")
@with_common
@click.option("--key", "tag", type=int, required=True, help="Tag of the key.")
@click.argument("what", type=click.Choice(["published", "withdrawn"]))
def keys_checkds(
    zone: str,
    keydir: str,
    policy_name: str,
    conf: str | None,
    now_text: str | None,
    tag: int,
    what: str,
) -> None:
    """Tell the key manager the parent now has (published) or no longer has (withdrawn)
    the DS of a key (like `rndc dnssec -checkds -key TAG published|withdrawn`)."""
    now = _now(now_text)
    key = _find(KeyDirectory(keydir).keys(_zone(zone)), tag)
    fact: Fact = DsSeen(key.id, now) if what == "published" else DsWithdrawn(key.id, now)
    _print_plan(_run(zone, keydir, policy_name, conf, now, [fact]))
