"""`dnsseal serve` (the authoritative server) and `dnsseal ctl` (its control client)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

import click
import dns.dnssec
import dns.name
import dns.rdatatype
from click.core import ParameterSource

from dnsseal.cli import progress
from dnsseal.errors import OptionError, StorageError
from dnsseal.proto.snapshot import ZoneSnapshot
from dnsseal.server import logsetup, sdnotify
from dnsseal.server.binding import bind_all
from dnsseal.server.control import COMMANDS, arity_ok, request, usage
from dnsseal.server.service import AuthServer
from dnsseal.server.workers import serve as run_server
from dnsseal.storage.serverconfig import (
    DEFAULT_PORT,
    ServerConfig,
    default_config,
    load_config,
    policies_only,
    write_example_zone,
)

INTRO_ZONES = 10  # zones listed one by one at startup; the rest are counted
INTRO_EXAMPLES = 3  # up to this many zones: dig lines for each, else for the first


def _print_intro(server: AuthServer, config: ServerConfig) -> None:
    ep = config.listen[0]
    served = [z for z in server.zones.values() if z.served is not None]
    click.echo(f"dnsseal serving {len(served)} zone(s) on " + ", ".join(map(str, config.listen)))
    for state in server.zones.values():
        if state.error:
            click.echo(f"  {state.name}: NOT served: {state.error}", err=True)
    catalogs = {dns.name.from_text(c.name) for c in config.catalogs}
    # A few zones: how to query each (as before); many: how to query the first signed one.
    examples: list[str] = []
    first = sorted(
        served, key=lambda z: z.served is None or z.served.snapshot.origin not in catalogs
    )
    for state in first[:INTRO_ZONES]:
        assert state.served is not None
        snap = state.served.snapshot
        name = snap.origin.to_text()
        if snap.origin in catalogs:
            how = "catalog zone, RFC 9432"
        elif state.config.secondary:
            how = "secondary of " + ", ".join(str(p.endpoint) for p in state.config.primaries)
        else:
            how = (
                f"signed under dnssec-policy {state.config.policy!r}"
                if state.config.policy
                else "presigned"
            )
            examples.append(name)
        click.echo(f"  {name} serial {snap.serial} from {state.config.file} ({how})")
        if snap.origin not in catalogs and not state.config.secondary:  # theirs to give
            for ds in _parent_ds(snap):
                click.echo(f"  DS for the parent: {ds}")
    if len(served) > INTRO_ZONES:
        click.echo(f"  ... and {len(served) - INTRO_ZONES} more (dnsseal ctl zone-status ZONE)")
    if examples:
        click.echo("  try:")
    for name in examples if len(examples) <= INTRO_EXAMPLES else examples[:1]:
        click.echo(f"    dig @{ep.host} -p {ep.port} {name} SOA +dnssec +multi")
        click.echo(f"    dig @{ep.host} -p {ep.port} {name} DNSKEY +dnssec")
        click.echo(f"    dig @{ep.host} -p {ep.port} nonexistent.{name} A +dnssec")
    if config.control is not None:
        click.echo(f"control: dnsseal ctl -s {config.control} status")


def _parent_ds(snap: ZoneSnapshot) -> list[str]:
    """DS records (SHA-256) for the zone's key-signing keys (DNSKEY with the SEP flag)."""
    dnskeys = snap.apex.rrsets.get(dns.rdatatype.DNSKEY)
    if dnskeys is None:
        return []
    origin = snap.origin.to_text()
    return [
        f"{origin} IN DS {dns.dnssec.make_ds(snap.origin, key, 'SHA256')}"
        for key in dnskeys
        if key.flags & 0x0001
    ]


@click.command("serve")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML configuration (default: sign and serve the zones in ./zones).",
)
@click.option(
    "--zones-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("zones"),
    show_default=True,
    help="Without -c: the directory of zone files to serve.",
)
@click.option(
    "--keys-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("keys"),
    show_default=True,
    help="Without -c: the key directory (BIND key files).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("state"),
    show_default=True,
    help="Without -c: journal and signed zones.",
)
@click.option(
    "-p", "--port", type=int, default=DEFAULT_PORT, show_default=True, help="Without -c: port."
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 256),
    help="Processes answering on the same ports (SO_REUSEPORT); overrides server.workers.",
)
def serve(
    config_path: Path | None,
    zones_dir: Path,
    keys_dir: Path,
    state_dir: Path,
    port: int,
    workers: int | None,
) -> None:
    """Run the authoritative server (UDP and TCP).  Zones with a dnssec-policy are signed
    and kept signed by the server (keys, rollovers, signature refresh).

    Without -c: sign every zone file in ./zones (an example zone is created when there is
    no ./zones directory) under the built-in `default` policy, keys in ./keys, state in
    ./state, on 127.0.0.1 port 5300.  SIGHUP or `dnsseal ctl reload` reloads; SIGTERM,
    Ctrl-C or `dnsseal ctl stop` stops.

    A start that fails (port in use, a bad address or control socket, another server
    using the state directory) exits with one line and creates nothing.
    """
    ctx = click.get_current_context()
    example = False
    if config_path is not None:
        config = load_config(config_path)
        if (why := policies_only(config)) is not None:
            raise OptionError(str(config_path), why)
        listen_option = "server.listen"
    else:
        if not 0 < port < 65536:
            raise OptionError("-p", f"port {port} out of range (1..65535)")
        default_dir = ctx.get_parameter_source("zones_dir") == ParameterSource.DEFAULT
        if not zones_dir.exists() and not zones_dir.is_symlink():
            if not default_dir:  # a typo must not become a new directory with a demo zone
                raise OptionError("--zones-dir", f"{zones_dir}: no such directory")
            example = True
        elif not zones_dir.is_dir():
            raise OptionError("--zones-dir", f"{zones_dir} is not a directory")
        config = default_config(zones_dir, port, keys_dir, state_dir)
        if not config.zones and not example:
            raise OptionError(
                "--zones-dir", f"no zone files (*.zone, *.db, *.signed) in {zones_dir}/"
            )
        listen_option = "-p"
    if not config.listen:
        raise OptionError("server.listen", "no address to listen on")
    if workers is not None:
        config = dataclasses.replace(config, workers=workers)
    try:  # [logging]: info and up by default (zone loads, signing, keys, updates, ...)
        logsetup.configure(config.logging, ctx.find_root().params.get("verbose") or 0)
    except OSError as e:
        raise OptionError("logging", f"{e.filename}: {e.strerror or e}") from None
    # Sockets, control socket and state lock first: a start that fails writes nothing.
    bound = bind_all(config, listen_option)
    try:
        if example:
            path = write_example_zone(zones_dir)
            click.echo(f"no {zones_dir}/ directory: created {path}")
            config = default_config(zones_dir, port, keys_dir, state_dir)
            if workers is not None:
                config = dataclasses.replace(config, workers=workers)

        # Loading (and first signing) of big zones takes a while: a spinner on a terminal
        loading = contextlib.ExitStack()
        loading.enter_context(
            progress.activity(
                f"Loading {len(config.zones)} zone(s)",
                progress.total_size([z.file for z in config.zones]),
            )
        )

        def started(server: AuthServer) -> None:
            loading.close()
            _print_intro(server, config)
            sys.stdout.flush()  # the intro must show now even when stdout is a pipe or a file
            sdnotify.ready(sdnotify.status(server))  # systemd: Type=notify

        try:
            run_server(config, config_path, started, bound)
        finally:
            loading.close()
    except OSError as e:  # the environment, not a bug: one line, not a traceback
        raise StorageError(e.filename or "dnsseal serve", e.strerror or str(e)) from None
    finally:
        bound.close()


def _socket_path(socket_path: Path | None, config_path: Path | None) -> Path:
    if socket_path is not None:
        return socket_path
    if config_path is not None:
        control = load_config(config_path).control
        if control is None:
            raise OptionError("server.control", f"{config_path} configures no control socket")
        return control
    return Path("dnsseal.sock")


def _scalar(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def render(doc: object, indent: str = "") -> list[str]:
    """A JSON document as ``key: value`` lines for people: no Python reprs, lists of
    plain values joined with commas, nested objects indented."""
    out: list[str] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if isinstance(v, dict):
                out.append(f"{indent}{k}:" + ("" if v else " -"))
                out += render(v, indent + "  ")
            elif isinstance(v, list) and any(isinstance(x, dict | list) for x in v):
                out.append(f"{indent}{k}:")
                for item in v:
                    if isinstance(item, dict):
                        out.append(
                            f"{indent}  - "
                            + ", ".join(f"{a}: {_scalar(b)}" for a, b in item.items())
                        )
                    else:
                        out.append(f"{indent}  - {_scalar(item)}")
            elif isinstance(v, list):
                out.append(f"{indent}{k}: " + (", ".join(map(_scalar, v)) or "-"))
            else:
                out.append(f"{indent}{k}: {_scalar(v)}")
    elif isinstance(doc, list):
        for item in doc:
            out += render(item, indent) if isinstance(item, dict) else [f"{indent}{_scalar(item)}"]
    elif doc is not None:
        out.append(f"{indent}{doc}")
    return out


def _ctl_help() -> str:
    rows = "\n".join(
        f"  {usage(name)}\n"
        + textwrap.fill(COMMANDS[name].help, 76, initial_indent=" " * 6, subsequent_indent=" " * 6)
        for name in sorted(COMMANDS)
    )
    return (
        "Control a running server (like rndc).  Exit status 0 when the command succeeded, "
        "1 when it failed (for reload: when any zone failed to load), 2 on a usage error.\n\n"
        "--json (before or after the command) prints the reply as JSON: `data` holds the "
        "result as structure, times in ISO 8601 UTC.\n\nCommands:\n\n\b\n" + rows
    )


@click.command("ctl", context_settings={"allow_interspersed_args": False}, help=_ctl_help())
@click.option(
    "-s",
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    help="Control socket (default: from -c, else ./dnsseal.sock).",
)
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the JSON reply.")
@click.argument("command", type=click.Choice(sorted(COMMANDS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def ctl(
    socket_path: Path | None,
    config_path: Path | None,
    as_json: bool,
    command: str,
    args: tuple[str, ...],
) -> None:
    if command != "audit" and "--json" in args:  # `dnssec -status ZONE --json`, as typed
        as_json = True
        args = tuple(a for a in args if a != "--json")
    if not arity_ok(command, args):
        raise click.UsageError(f"usage: dnsseal ctl {usage(command)}")
    reply = request(_socket_path(socket_path, config_path), command, list(args))
    if as_json:
        click.echo(json.dumps(reply, indent=2))
    else:
        result = reply.get("result")
        for line in render(result):
            click.echo(line)
        for p in reply.get("problems") or []:
            click.echo(f"problem: {p}", err=True)
        if not reply.get("ok"):
            click.echo(f"error: {reply.get('error') or 'failed'}", err=True)
    if not reply.get("ok"):
        raise SystemExit(1)
