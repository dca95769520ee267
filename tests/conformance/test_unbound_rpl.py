"""Unbound's testbound scenarios replayed against dnsseal's resolver (issue #20).

One test per ``val_*`` and ``iter_*`` file in ``unbound/``.  A scenario that does not pass is
listed in ``expected.toml``: under ``[skip]`` when it needs a feature dnsseal does not have
(the harness must agree: its config or steps raise :class:`Unsupported`), under ``[xfail]``
(strict) with the cause when dnsseal answers differently.  A listed scenario that starts to
pass fails the run until the list is updated; an unlisted one that fails is a regression.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conformance import harness, rpl

HERE = Path(__file__).parent
DATA = HERE / "unbound"
EXPECTED = tomllib.loads((HERE / "expected.toml").read_text(encoding="utf-8"))
SKIP: dict[str, str] = EXPECTED.get("skip", {})
XFAIL: dict[str, str] = EXPECTED.get("xfail", {})
SCENARIOS = sorted(p.name for p in DATA.glob("*.rpl") if p.name.startswith(("val_", "iter_")))


def _unsupported(name: str) -> str | None:
    """Why the harness cannot run ``name`` (None: it can)."""
    try:
        scenario = rpl.load(DATA / name)
    except rpl.RplError as e:
        return f"unreadable: {e}"
    setup = harness.read_setup(scenario)
    if setup.unsupported:
        return "; ".join(setup.unsupported)
    replayed = {"QUERY", "CHECK_ANSWER", "TIME_PASSES", "TRAFFIC"}
    for step in scenario.steps:
        if step.kind not in replayed or (
            step.kind == "TIME_PASSES" and step.args[:1] != ("ELAPSE",)
        ):
            return f"STEP {step.kind} is not replayed"
    return None


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(
    name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if name in SKIP:
        why = _unsupported(name)
        assert why is not None, f"{name} is listed under [skip] but the harness can run it"
        pytest.skip(f"{SKIP[name]} [{why}]")
    if name in XFAIL:
        request.applymarker(
            pytest.mark.xfail(reason=XFAIL[name], strict=True, raises=harness.Mismatch)
        )
    scenario = rpl.load(DATA / name)
    outcome = harness.run(scenario, monkeypatch)
    assert outcome.checks > 0, f"{name}: no CHECK_ANSWER step was run"
    if outcome.failures:
        raise harness.Mismatch(
            f"{name} ({scenario.title}):\n"
            + "\n".join(outcome.failures)
            + "\nupstream exchanges:\n  "
            + "\n  ".join(outcome.log)
        )


def test_expected_lists_are_current() -> None:
    """Every listed scenario exists, is listed once, and has a reason."""
    for table in (SKIP, XFAIL):
        for name, reason in table.items():
            assert name in SCENARIOS, f"expected.toml lists {name}, which is not in {DATA}"
            assert reason.strip(), f"expected.toml: {name} has no reason"
    both = set(SKIP) & set(XFAIL)
    assert not both, f"listed as both skip and xfail: {sorted(both)}"
