"""The control commands are one table (issue #15): every row has a handler and a help line,
`dnsseal ctl --help` and docs/operations.md list exactly the table's commands, and the
control server answers requests through the table with the replies it always gave."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from dnsseal.cli.main import cli
from dnsseal.cli.servecmds import ctl
from dnsseal.server import control, observe
from dnsseal.server.control import COMMANDS, VARIADIC, ControlServer, arity_ok, usage

ROOT = Path(__file__).resolve().parents[2]


def test_every_row_has_a_handler_help_and_wellformed_arguments() -> None:
    assert COMMANDS, "no control commands"
    for name, row in COMMANDS.items():
        assert row.name == name
        assert re.fullmatch(r"[a-z][a-z-]*", name), name
        assert callable(row.handler) and inspect.iscoroutinefunction(row.handler), name
        assert row.help.strip() and "\n" not in row.help, name
        for arg in row.arguments:
            assert arg == VARIADIC or re.fullmatch(r"\[?[A-Z]+\]?", arg), (name, arg)
        if VARIADIC in row.arguments:
            assert row.arguments == (VARIADIC,), name
        # optional arguments only after the required ones
        optional = [a.startswith("[") for a in row.arguments]
        assert optional == sorted(optional), name


def test_ctl_help_lists_every_command_with_its_usage_and_help() -> None:
    result = CliRunner().invoke(cli, ["ctl", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    # the command list is a \b block: a "NAME ARGS" line, then the help indented further
    listed = re.findall(r"^    ([a-z][a-z-]*)(?: \S.*)?$", result.output, re.MULTILINE)
    assert sorted(listed) == sorted(COMMANDS)
    flat = "".join(result.output.split())  # the help is wrapped, maybe at a hyphen
    for name, row in COMMANDS.items():
        assert f"\n    {usage(name)}\n" in result.output, name
        assert "".join(row.help.split()) in flat, name
    (choice,) = [p for p in ctl.params if p.name == "command"]
    assert isinstance(choice.type, click.Choice)
    assert sorted(choice.type.choices) == sorted(COMMANDS)


def _documented() -> list[str]:
    """The `dnsseal ctl` column of docs/operations.md's control table: each form shown."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Control: `dnsseal ctl` (rndc)", 1)[1].split("\n## ", 1)[0]
    forms = []
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3 or cells[1] in ("dnsseal ctl", "---"):
            continue
        forms += [f.replace("\\|", "|") for f in re.findall(r"`([^`]+)`", cells[1])]
    return forms


def test_operations_doc_lists_exactly_the_table_and_right_arities() -> None:
    forms = _documented()
    assert {f.split()[0] for f in forms} == set(COMMANDS)
    for form in forms:
        name, *args = form.split()
        assert arity_ok(name, args), form


class _Server:
    """Just enough of a running server for requests that fail before or at the zone lookup."""

    def __init__(self) -> None:
        self.stopped = False

    def find_state(self, zone: str) -> Any:
        raise LookupError(f"no zone {zone!r}")

    def request_stop(self) -> None:
        self.stopped = True


def _ask(server: _Server, request: object) -> dict[str, Any]:
    line = request if isinstance(request, bytes) else json.dumps(request).encode()
    ctl_server = ControlServer(server, Path("/nonexistent/ctl.sock"))  # type: ignore[arg-type]
    return asyncio.run(ctl_server.execute(line))


def test_replies_for_bad_requests_and_lookups() -> None:
    srv = _Server()
    bad = {"ok": False, "error": "bad request: expected a JSON object with 'command'"}
    assert _ask(srv, b"not json\n") == bad
    assert _ask(srv, {"args": []}) == bad
    for command in ([], {}, 3, None):  # (a list or dict could not even be looked up)
        assert _ask(srv, {"command": command}) == bad, command
    assert _ask(srv, [1, 2]) == bad
    assert _ask(srv, {"command": "nosuch"}) == {"ok": False, "error": "unknown command 'nosuch'"}
    assert _ask(srv, {"command": "keys"}) == {"ok": False, "error": "usage: keys ZONE"}
    assert _ask(srv, {"command": "reload", "args": ["a", "b"]}) == {
        "ok": False,
        "error": "usage: reload [ZONE]",
    }
    assert _ask(srv, {"command": "status", "args": ["x"]}) == {
        "ok": False,
        "error": "usage: status",
    }
    assert _ask(srv, {"command": "keys", "args": [3]}) == {
        "ok": False,
        "error": "bad request: arguments must be strings",
    }
    for name in ("notify", "retransfer", "freeze", "thaw", "sync", "zone-status", "keys"):
        reply = _ask(srv, {"command": name, "args": ["nosuch.example"]})
        assert reply == {"ok": False, "error": "no zone 'nosuch.example'"}, name
    assert reply is not None and not srv.stopped
    assert _ask(srv, {"command": "stop"}) == {"ok": True, "result": "stopping"}
    assert srv.stopped


def test_a_handlers_dnsseal_error_is_the_reply(monkeypatch: Any) -> None:
    from dnsseal.errors import DnssealError

    async def broken(server: object, args: list[str]) -> dict[str, Any]:
        raise DnssealError("the disk is full")

    row = COMMANDS["zones"]
    monkeypatch.setitem(COMMANDS, "zones", control.Command(row.name, (), broken, row.help))
    assert _ask(_Server(), {"command": "zones"}) == {"ok": False, "error": "the disk is full"}


def test_audited_commands_are_table_commands() -> None:
    # the audit log's list of commands that change something names no command of its own
    assert observe.CHANGING_COMMANDS.issubset(COMMANDS)
    # ... and every command is either audited or listed as one that only reads
    assert not observe.CHANGING_COMMANDS & observe.READ_ONLY_COMMANDS
    assert set(COMMANDS) == observe.CHANGING_COMMANDS | observe.READ_ONLY_COMMANDS
    assert observe.CHANGING_COMMANDS.issuperset(observe.READ_ONLY_FORMS)
