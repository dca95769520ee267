"""The ``dnsseal`` command group.

Subcommands live in their own modules and are listed in :data:`COMMANDS`; they are imported
only when used, so ``dnsseal keygen`` does not pay for the server's imports.  A command whose
module is not part of this build is simply not offered.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
from typing import Any

import click

from dnsseal import __version__
from dnsseal.errors import DnssealError

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "keygen": ("dnsseal.cli.keycmds", "keygen", "Generate a DNSSEC key (like dnssec-keygen)."),
    "dsfromkey": (
        "dnsseal.cli.keycmds",
        "dsfromkey",
        "Print DS (or CDS) records for keys (like dnssec-dsfromkey).",
    ),
    "settime": (
        "dnsseal.cli.keycmds",
        "settime",
        "Set or print key timing metadata and states (like dnssec-settime).",
    ),
    "keyinfo": ("dnsseal.cli.keycmds", "keyinfo", "Summarise keys: role, algorithm, timings."),
    "keyfromlabel": ("dnsseal.cli.hsmcmds", "keyfromlabel", "Link a key in an HSM to key files."),
    "keystore": ("dnsseal.cli.hsmcmds", "keystore_group", "Test, benchmark and use key stores."),
    "ksr": ("dnsseal.cli.ksrcmds", "ksr_group", "Offline KSK: ZSKs, key requests, responses."),
    "signzone": ("dnsseal.cli.signcmds", "signzone", "Sign a zone (like dnssec-signzone)."),
    "verify": ("dnsseal.cli.signcmds", "verify", "Verify a signed zone (like dnssec-verify)."),
    "policy": ("dnsseal.cli.policycmds", "policy", "Check and import dnssec-policy definitions."),
    "keys": ("dnsseal.cli.policycmds", "keys", "Run the key manager on a key directory."),
    "import-bind": (
        "dnsseal.cli.migratecmds",
        "import_bind",
        "Turn a named.conf into dnsseal.toml.",
    ),
    "serve": ("dnsseal.cli.servecmds", "serve", "Run the authoritative server."),
    "ctl": ("dnsseal.cli.servecmds", "ctl", "Control a running server (like rndc)."),
    "checkconf": (
        "dnsseal.cli.toolcmds",
        "checkconf",
        "Check a server configuration, -z its zones too (like named-checkconf).",
    ),
    "checkzone": (
        "dnsseal.cli.toolcmds",
        "checkzone",
        "Check a zone file (like named-checkzone).",
    ),
    "tsig-keygen": ("dnsseal.cli.toolcmds", "tsig_keygen", "Make a TSIG key (like tsig-keygen)."),
    "journalprint": (
        "dnsseal.cli.toolcmds",
        "journalprint",
        "Print a zone's journal (like named-journalprint).",
    ),
    "resolve": (
        "dnsseal.cli.resolvecmds",
        "resolve",
        "Resolve and validate a name (like delv).",
    ),
    "resolver": (
        "dnsseal.cli.resolvecmds",
        "resolver",
        "Run a validating recursive resolver.",
    ),
}
COMMANDS["dsscan"] = ("dnsseal.cli.dscmds", "dsscan", "Follow children's CDS/CDNSKEY as a parent.")
COMMANDS["parent-check"] = ("dnsseal.cli.dscmds", "parent_check", "Would the parent take our CDS?")
COMMANDS["signaling-zone"] = ("dnsseal.cli.dscmds", "signaling_zone", "RFC 9615 signaling records.")


def _available(name: str) -> bool:
    module = COMMANDS[name][0]
    return importlib.util.find_spec(module) is not None


_VERBOSE = re.compile(r"^(-v+|--verbose)$")


def hoist_verbose(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """``dnsseal serve -v``: a -v given after a subcommand that has no -v of its own is the
    group's (people type it at the end from habit).  Returns the arguments with such -v
    moved in front of the subcommand."""
    pos = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if pos is None:
        return args
    cmd = group.get_command(ctx, args[pos])
    if cmd is None or any("-v" in p.opts for p in cmd.params if isinstance(p, click.Option)):
        return args
    if isinstance(cmd, click.Group):  # its subcommands may have their own -v: leave them
        return args
    rest = args[pos + 1 :]
    end = rest.index("--") if "--" in rest else len(rest)
    moved = [a for a in rest[:end] if _VERBOSE.match(a)]
    kept = [a for a in rest[:end] if not _VERBOSE.match(a)] + rest[end:]
    return [*args[:pos], *moved, args[pos], *kept]


class LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_verbose(self, ctx, args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module, attr, _ = COMMANDS[cmd_name]
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        # Our own errors are for people: one line naming the file, line or option, exit 1.
        try:
            return super().invoke(ctx)
        except DnssealError as e:
            raise click.ClickException(str(e)) from e

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dnsseal")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
def cli(verbose: int) -> None:
    """dnsseal: DNSSEC signing, key management, serving and validation."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="dnsseal")


if __name__ == "__main__":
    main()
