"""Man pages generated from the command definitions (``make man``).

One page per command, ``dnsseal(1)`` for the group and ``dnsseal-SUBCOMMAND(1)`` (groups'
subcommands as ``dnsseal-keys-run(1)``), from the same click objects ``--help`` prints:
name and one-line summary, synopsis, the help text, every option with its help and
default, and the related pages.  No dependency beyond click; the output is plain man(7)
roff, checked by ``groff -ww`` in the tests.

Usage: ``python -m dnsseal.cli.manpages DIR`` writes ``DIR/*.1``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click

from dnsseal import __version__, clock
from dnsseal.cli.main import COMMANDS, cli


def roff(text: str) -> str:
    """``text`` safe in roff: backslashes, hyphens, and lines starting with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines()
    )


def _paragraphs(text: str) -> list[str]:
    """click's help text as roff paragraphs (``\\b`` marks a block kept as it is)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        if block.startswith("\b"):
            out.append(".nf\n" + roff(block.lstrip("\b").strip("\n")) + "\n.fi")
        else:
            out.append(roff(" ".join(line.strip() for line in block.splitlines())))
    return out


def _commands(
    group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx)
        yield (*prefix, name), cmd, sub
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, sub, (*prefix, name))


def page(path: tuple[str, ...], cmd: click.Command, ctx: click.Context, date: str,
         see_also: list[str]) -> str:  # fmt: skip
    """The man page of ``cmd`` (``path``: its words after ``dnsseal``)."""
    title = "-".join(("dnsseal", *path))
    summary = cmd.get_short_help_str(limit=200)
    if path and path[0] in COMMANDS and len(path) == 1:
        summary = COMMANDS[path[0]][2]
    lines = [
        f'.TH {title.upper()} 1 "{date}" "dnsseal {__version__}" "dnsseal manual"',
        ".SH NAME",
        f"{roff(title)} \\- {roff(summary)}",
        ".SH SYNOPSIS",
        f".B {roff(' '.join(('dnsseal', *path)))}",
        roff(" ".join(cmd.collect_usage_pieces(ctx))),
        ".SH DESCRIPTION",
        *("\n.PP\n".join(_paragraphs(cmd.help or summary)).splitlines()),
    ]
    options = [p.get_help_record(ctx) for p in cmd.get_params(ctx) if isinstance(p, click.Option)]
    rows = [r for r in options if r is not None]
    if rows:
        lines.append(".SH OPTIONS")
        for opts, helptext in rows:
            lines += [".TP", f".B {roff(opts)}", roff(helptext) if helptext else ""]
    if isinstance(cmd, click.Group):
        lines.append(".SH COMMANDS")
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                helptext = COMMANDS[name][2] if not path else sub.get_short_help_str(200)
                lines += [".TP", f".B {roff(name)}", roff(helptext)]
    if see_also:
        lines += [".SH SEE ALSO", ",\n".join(f".BR {p} (1)" for p in see_also)]
    return "\n".join(line for line in lines if line != "") + "\n"


def generate(directory: Path, date: str | None = None) -> list[Path]:
    """Write every page into ``directory``; returns the files written."""
    date = date or datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%d")
    directory.mkdir(parents=True, exist_ok=True)
    root = click.Context(cli, info_name="dnsseal")
    tree = list(_commands(cli, root))
    names = ["-".join(("dnsseal", *p)) for p, _, _ in tree]
    written = []
    out = directory / "dnsseal.1"
    out.write_text(page((), cli, root, date, names))
    written.append(out)
    for path, cmd, ctx in tree:
        out = directory / ("-".join(("dnsseal", *path)) + ".1")
        out.write_text(page(path, cmd, ctx, date, ["dnsseal"]))
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dnsseal.cli.manpages DIR", file=sys.stderr)
        raise SystemExit(2)
    for path in generate(Path(args[0])):
        print(path)


if __name__ == "__main__":
    main()
