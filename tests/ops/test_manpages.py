"""Man pages from the command definitions, shell completion, -v after the subcommand
(issue #17)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click

from automation.conftest import DNSSEAL
from conftest import require_tool
from dnsseal.cli import manpages
from dnsseal.cli.main import cli, hoist_verbose
from dnsseal.cli.signcmds import signzone

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_has_a_page_groff_reads_cleanly(tmp_path: Path) -> None:
    pages = manpages.generate(tmp_path, date="2026-12-07")
    names = {p.name for p in pages}
    for must in ("dnsseal.1", "dnsseal-signzone.1", "dnsseal-ctl.1", "dnsseal-keys-run.1",
                 "dnsseal-checkconf.1", "dnsseal-tsig-keygen.1"):  # fmt: skip
        assert must in names
    groff = require_tool("groff")
    for page in pages:
        proc = subprocess.run(
            [groff, "-man", "-Tutf8", "-ww", "-z", str(page)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        # (justification of a long unbreakable line is only a layout note)
        problems = [ln for ln in proc.stderr.splitlines() if "cannot adjust line" not in ln]
        assert proc.returncode == 0 and not problems, (page.name, problems)


def test_signzone_page_lists_every_option(tmp_path: Path) -> None:
    (page,) = [p for p in manpages.generate(tmp_path) if p.name == "dnsseal-signzone.1"]
    text = page.read_text()
    for param in signzone.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                assert f".B {manpages.roff(opt)}" in text, opt
    rendered = subprocess.run(
        [require_tool("man"), "-l", str(page)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"},
    ).stdout
    assert "dnsseal-signzone - Sign a zone (like dnssec-signzone)." in rendered
    assert "Skip the verification of the signed zone" in rendered


def test_roff_escapes() -> None:
    assert manpages.roff(".start\n'quote\na-b \\x") == "\\&.start\n\\&'quote\na\\-b \\ex"


def test_make_man_target_runs_the_generator() -> None:
    text = (ROOT / "Makefile").read_text()
    assert "\nman: venv\n" in text and "-m dnsseal.cli.manpages man" in text


def test_shell_completion_scripts() -> None:
    for shell in ("bash", "zsh", "fish"):
        proc = subprocess.run(
            [str(DNSSEAL)],
            env={**os.environ, "_DNSSEAL_COMPLETE": f"{shell}_source"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0 and "_DNSSEAL_COMPLETE" in proc.stdout, shell
    # completing a subcommand name
    proc = subprocess.run(
        [str(DNSSEAL)],
        env={
            **os.environ,
            "_DNSSEAL_COMPLETE": "bash_complete",
            "COMP_WORDS": "dnsseal chec",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "checkconf" in proc.stdout and "checkzone" in proc.stdout


def test_verbose_after_the_subcommand() -> None:
    ctx = click.Context(cli, info_name="dnsseal")
    assert hoist_verbose(cli, ctx, ["serve", "-c", "x.toml", "-vv"]) == [
        "-vv",
        "serve",
        "-c",
        "x.toml",
    ]
    # signzone has its own -v LEVEL (dnssec-signzone's): left alone
    assert hoist_verbose(cli, ctx, ["signzone", "-v", "3", "z"]) == ["signzone", "-v", "3", "z"]
    # after --, an argument
    assert hoist_verbose(cli, ctx, ["ctl", "--", "-v"]) == ["ctl", "--", "-v"]
