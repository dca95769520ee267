"""``dnsseal dsscan``: the parental agent as a command, for a parent served elsewhere.

For each CHILD: ask the parent server for the delegation and the current DS set (or read
``dsset-CHILD.`` from ``--dsset-dir``), ask every address of every NS of the child for
DNSKEY / CDS / CDNSKEY, validate the signaling names when the child is insecure, decide
(:mod:`dnsseal.proto.dsautomation`), then change the parent by UPDATE (``--update``) and/or
write the dsset file.  Exit status: 0 when every child was decided (changed or not), 1 on
errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
from pathlib import Path

import click
import dns.exception
import dns.name
import dns.tsig

from dnsseal import clock
from dnsseal.durations import parse_when
from dnsseal.errors import InputError, OptionError
from dnsseal.keys.ds import digest_type
from dnsseal.proto.dsautomation import Action, Decision, Params
from dnsseal.server import dsauto
from dnsseal.storage.remotes import Endpoint, parse_endpoint
from dnsseal.storage.serverconfig import TSIG_ALGORITHMS

DEFAULT_TTL = 3600


def parse_tsig(text: str) -> dns.tsig.Key:
    """``[ALG:]NAME:SECRET`` as ``nsupdate -y`` takes it (default hmac-sha256)."""
    parts = text.split(":")
    if len(parts) == 2:
        alg, name, secret = "hmac-sha256", parts[0], parts[1]
    elif len(parts) == 3:
        alg, name, secret = parts
    else:
        raise OptionError("--key", "expected [ALGORITHM:]NAME:SECRET")
    if alg.lower() not in TSIG_ALGORITHMS:
        raise OptionError("--key", f"unknown TSIG algorithm {alg!r}")
    try:
        raw = base64.b64decode(secret, validate=True)
    except binascii.Error:
        raise OptionError("--key", "the secret is not valid base64") from None
    return dns.tsig.Key(name, raw, TSIG_ALGORITHMS[alg.lower()])


def _name(option: str, text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise OptionError(option, f"{text!r}: {e}") from None


@click.command()
@click.argument("children", nargs=-1, required=True, metavar="CHILD...")
@click.option("--parent", "parent_text", required=True, help="The parent zone.")
@click.option(
    "--server",
    "server_text",
    required=True,
    metavar="ADDR[@PORT]",
    help="An authoritative server of the parent (delegation, DS set, UPDATE).",
)
@click.option("--key", "key_text", metavar="[ALG:]NAME:SECRET", help="TSIG key for UPDATE.")
@click.option("--update", is_flag=True, help="Change the parent by RFC 2136 UPDATE.")
@click.option(
    "--dsset-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the DS sets in DIR/dsset-CHILD. (read as the current set, rewritten on change).",
)
@click.option("--query-port", default=53, show_default=True, help="Port of the child's NS.")
@click.option("-a", "anchor_file", metavar="FILE", help="Trust anchors for signaling names.")
@click.option("--root", "root_text", metavar="ADDR[#PORT]", help="Start resolution here.")
@click.option(
    "--digest",
    "digests",
    multiple=True,
    default=("SHA-256",),
    show_default=True,
    help="Accepted CDS digest / digest made from CDNSKEY (dnssec-cds -a).  Repeatable.",
)
@click.option("--ttl", default=DEFAULT_TTL, show_default=True, help="TTL of new DS records.")
@click.option(
    "-s",
    "--start",
    metavar="TIME",
    help="Replay protection (dnssec-cds -s): refuse CDS/CDNSKEY signed before TIME "
    "(-N: N seconds before the dsset file's time; YYYYMMDDHHMMSS; now-1d; epoch).  "
    "Default with --dsset-dir: the dsset file's time.",
)
@click.option("--dry-run", is_flag=True, help="Decide and print, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON decision per line.")
def dsscan(
    children: tuple[str, ...],
    parent_text: str,
    server_text: str,
    key_text: str | None,
    update: bool,
    dsset_dir: Path | None,
    query_port: int,
    anchor_file: str | None,
    root_text: str | None,
    digests: tuple[str, ...],
    ttl: int,
    start: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Follow the children's CDS/CDNSKEY at the parent (RFC 7344, 8078, 9615, 9975)."""
    parent = _name("--parent", parent_text)
    server: Endpoint = parse_endpoint("--server", server_text, 53)
    key = parse_tsig(key_text) if key_text else None
    try:
        params = Params(digests=tuple(digest_type(d).number for d in digests))
    except ValueError as e:
        raise OptionError("--digest", str(e)) from None
    validation = None
    if anchor_file or root_text:
        if not (anchor_file and root_text):
            raise OptionError("-a/--root", "signaling validation needs both -a and --root")
        from dnsseal.cli.resolvecmds import build_config

        validation = build_config(anchor_file, None, root_text, 53, True)
    names = [_name("CHILD", c) for c in children]
    for n in names:
        if n == parent or not n.is_subdomain(parent):
            raise OptionError("CHILD", f"{n} is not below {parent}")
    scanner = dsauto.Scanner(parent, server, query_port, validation, params)
    problems = asyncio.run(
        _run(scanner, names, key, update, dsset_dir, ttl, start, dry_run, as_json)
    )
    if problems:
        raise click.ClickException("; ".join(problems))


async def _run(
    scanner: dsauto.Scanner,
    names: list[dns.name.Name],
    key: dns.tsig.Key | None,
    update: bool,
    dsset_dir: Path | None,
    ttl: int,
    start: str | None,
    dry_run: bool,
    as_json: bool,
) -> list[str]:
    problems: list[str] = []
    for child in names:
        now = clock.now()
        current = None
        stamp = None
        if dsset_dir is not None:
            current, file_ttl = dsauto.read_dsset(dsset_dir, child)
            ttl = file_ttl or ttl
            stamp = dsauto.dsset_mtime(dsset_dir, child)
        not_before = stamp
        if start is not None:
            try:
                not_before = parse_when(start, now, base=stamp)
            except InputError as e:
                raise OptionError("-s", str(e)) from None
        params = dataclasses.replace(scanner.params, not_before=not_before)
        try:
            decision = await dsauto.scan(
                dataclasses.replace(scanner, params=params), child, now, current
            )
        except dsauto.ScanError as e:
            problems.append(f"{child}: {e}")
            continue
        applied = "no change"
        if decision.action is not Action.KEEP and not dry_run:
            done = []
            if update:
                assert scanner.parent_server is not None
                msg = dsauto.update_message(scanner.parent, child, decision, ttl, key)
                try:
                    await dsauto.send_update(scanner.parent_server, msg)
                    done.append(f"UPDATE sent to {scanner.parent_server}")
                except dsauto.ScanError as e:
                    problems.append(f"{child}: {e}")
            if dsset_dir is not None:
                done.append(f"wrote {dsauto.write_dsset(dsset_dir, child, decision, ttl)}")
            applied = "; ".join(done) or "not applied (neither --update nor --dsset-dir)"
        elif decision.action is not Action.KEEP:
            applied = "dry run"
        if as_json:
            click.echo(json.dumps(dsauto.decision_record(decision, now, applied)))
            continue
        click.echo(f"{child}: {decision.action.value}: {decision.reason}")
        for d in decision.ds:
            click.echo(f"  DS {d.to_text()}")
        for server, seen in decision.servers:
            click.echo(f"  {server}: {seen}")
        click.echo(f"  applied: {applied}")
    return problems


@click.command("signaling-zone")
@click.argument("children", nargs=-1, required=True, metavar="ZONE=FILE...")
@click.option(
    "--ns",
    "hosts",
    multiple=True,
    required=True,
    metavar="HOST",
    help="Name server host whose signaling zone _signal.HOST to write.  Repeatable.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (atomically) instead of standard output.",
)
def signaling_zone(children: tuple[str, ...], hosts: tuple[str, ...], output: Path | None) -> None:
    """RFC 9615 signaling records (_dsboot.ZONE._signal.HOST CDS/CDNSKEY) for the children
    whose apex NS set names HOST, as master-file lines, for a signaling zone served and
    signed elsewhere.  Each child is ZONE=FILE (its zone file, signed or not)."""
    from dnsseal.proto import signaling
    from dnsseal.storage import atomic
    from dnsseal.storage.zonefile import read_zone

    apexes = []
    for item in children:
        zone, sep, path = item.partition("=")
        if not sep or not path:
            raise OptionError("ZONE=FILE", f"{item!r}: expected ZONE=FILE")
        apexes.append(signaling.child_apex(read_zone(path, _name("ZONE", zone)), True))
    text = ""
    for host in hosts:
        origin = dns.name.Name((b"_signal", *_name("--ns", host).labels)).canonicalize()
        want = signaling.wanted(origin, apexes)
        if not want:
            click.echo(f"{origin}: no child names {host} in its NS set with CDS/CDNSKEY", err=True)
        text += signaling.zone_text(origin, want)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic.replace(output, text.encode())


@click.command("parent-check")
@click.argument("zone")
@click.option(
    "--server",
    "server_text",
    metavar="ADDR[@PORT]",
    help="An authoritative server of the parent zone (default: found from --root with -a).",
)
@click.option("--parent", "parent_text", help="The parent zone (default: ZONE minus a label).")
@click.option("--query-port", default=53, show_default=True, help="Port of ZONE's NS.")
@click.option("-a", "anchor_file", metavar="FILE", help="Trust anchors for signaling names.")
@click.option("--root", "root_text", metavar="ADDR[#PORT]", help="Start resolution here.")
@click.option("--json", "as_json", is_flag=True, help="The decision as JSON.")
def parent_check(
    zone: str,
    server_text: str | None,
    parent_text: str | None,
    query_port: int,
    anchor_file: str | None,
    root_text: str | None,
    as_json: bool,
) -> None:
    """Run the parent's acceptance algorithm (what `dsscan` and `ds-automation` decide)
    against every address of every NS of ZONE, change nothing, and say which server is
    inconsistent, unsigned or unreachable.  Exit 0 when the parent would act (or already
    has the DS the child asks for), 1 otherwise."""
    child = _name("ZONE", zone)
    parent = _name("--parent", parent_text) if parent_text else child.parent()
    server = parse_endpoint("--server", server_text, 53) if server_text else None
    validation = None
    if anchor_file or root_text:
        if not (anchor_file and root_text):
            raise OptionError("-a/--root", "signaling validation needs both -a and --root")
        from dnsseal.cli.resolvecmds import build_config

        validation = build_config(anchor_file, None, root_text, 53, True)
    if server is None and validation is None:
        raise OptionError("--server", "give the parent's server, or -a and --root to find it")
    scanner = dsauto.Scanner(parent, server, query_port, validation)
    decision = asyncio.run(_parent_check(scanner, child))
    if as_json:
        click.echo(json.dumps(decision.to_dict()))
    else:
        for s, seen in decision.servers:
            click.echo(f"{s}: {seen}")
        verb = {Action.SET: "would set", Action.DELETE: "would delete", Action.KEEP: "keeps"}
        click.echo(f"the parent {verb[decision.action]} the DS set: {decision.reason}")
        for d in decision.ds:
            click.echo(f"  DS {d.to_text()}")
    if decision.action is Action.KEEP and "already matches" not in decision.reason:
        raise SystemExit(1)


async def _parent_check(scanner: dsauto.Scanner, child: dns.name.Name) -> Decision:
    now = clock.now()
    if scanner.parent_server is None:
        parent, server = await dsauto.find_parent(scanner, child, now)
        scanner = dataclasses.replace(scanner, parent=parent, parent_server=server)
        click.echo(f"parent {parent}: asking {server}")
    return await dsauto.scan(scanner, child, now)
