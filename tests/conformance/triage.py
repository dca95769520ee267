"""Which entries of expected.toml are out of date, and why unlisted scenarios fail.

    PYTHONPATH=src:tests python -m conformance.triage [NAME.rpl ...]

Prints one line per scenario whose outcome does not match its listing: a listed one that now
passes (remove it), or an unlisted one that fails (with the first difference and dnsseal's
verdict, to classify it).  Test helper, not part of dnsseal.
"""

from __future__ import annotations

import sys
from typing import Any

from conformance import harness, rpl
from conformance.test_unbound_rpl import (
    DATA,
    DIFFER,
    EDE_ALTERNATIVES,
    SCENARIOS,
    SKIP,
    XFAIL,
    _unsupported,
)


class _Patch:
    """A minimal monkeypatch: set attributes, undo them all."""

    def __init__(self) -> None:
        self.saved: list[tuple[object, str, Any]] = []

    def setattr(self, target: object, name: str, value: object) -> None:
        self.saved.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    def undo(self) -> None:
        while self.saved:
            target, name, value = self.saved.pop()
            setattr(target, name, value)


def _first_difference(outcome: harness.Outcome) -> str:
    text = outcome.failures[0]
    lines = [line.strip() for line in text.split("--- dnsseal answered")[0].splitlines()]
    keep = [line for line in lines[1:] if line and not line.startswith(("want:", "got:"))]
    verdict = next((line for line in keep if line.startswith("dnsseal's verdict")), "")
    diffs = [line for line in keep if line.endswith(":") or line.startswith(("rcode", "flags"))]
    return " | ".join([*diffs[:3], verdict])


def main(names: list[str]) -> int:
    stale = 0
    for name in names or SCENARIOS:
        if name in SKIP:
            if _unsupported(name) is None:
                print(f"{name}: listed under [skip] but the harness can run it")
                stale += 1
            continue
        if _unsupported(name) is not None:
            print(f"{name}: unsupported and not listed: {_unsupported(name)}")
            stale += 1
            continue
        patch = _Patch()
        try:
            outcome = harness.run(rpl.load(DATA / name), patch, EDE_ALTERNATIVES)
        finally:
            patch.undo()
        listed = name in XFAIL or name in DIFFER
        if listed and not outcome.failures:
            print(f"{name}: passes now; remove it from expected.toml")
            stale += 1
        elif not listed and outcome.failures:
            print(f"{name}: fails and is not listed: {_first_difference(outcome)}")
            stale += 1
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
