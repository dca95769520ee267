from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dnsseal.cli.main import cli

Dnsseal = Callable[..., Result]


@pytest.fixture
def dnsseal() -> Dnsseal:
    """Run ``dnsseal ARGS`` in-process; returns click's Result (exit_code, stdout, stderr)."""

    def run(*args: str | Path, ok: bool = True) -> Result:
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        if ok and result.exit_code != 0:
            pytest.fail(
                f"dnsseal {' '.join(map(str, args))} failed ({result.exit_code}):\n"
                f"{result.output}{result.stderr}"
            )
        return result

    return run
