"""Unbound's testbound scenarios replayed against dnsseal's resolver (issue #20).

One test per ``val_*`` and ``iter_*`` file in ``unbound/``.  A scenario that does not pass is
listed in ``expected.toml``: under ``[skip]`` when it needs a feature dnsseal does not have
(the harness must agree: its config or steps raise :class:`Unsupported`), under ``[differ]``
when dnsseal differs from Unbound on purpose (RFC cited), under ``[xfail]`` with the cause
when dnsseal is wrong.  ``[differ]`` and ``[xfail]`` run as strict xfails: a listed scenario
that starts to pass fails the run until the list is updated, and an unlisted one that fails is
a regression.
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
DIFFER: dict[str, str] = EXPECTED.get("differ", {})
XFAIL: dict[str, str] = EXPECTED.get("xfail", {})
EDE_ALTERNATIVES = {
    int(code): frozenset(alts) for code, alts in EXPECTED["policy"]["ede"]["alternatives"].items()
}
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
    odd = harness.unreplayed_step(scenario)
    if odd is not None:
        return f"STEP {odd.kind} is not replayed"
    return None


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(
    name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if name in SKIP:
        why = _unsupported(name)
        assert why is not None, f"{name} is listed under [skip] but the harness can run it"
        pytest.skip(f"{SKIP[name]} [{why}]")
    reason = XFAIL.get(name) or DIFFER.get(name)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True, raises=harness.Mismatch))
    scenario = rpl.load(DATA / name)
    outcome = harness.run(scenario, monkeypatch, EDE_ALTERNATIVES)
    assert outcome.checks > 0, f"{name}: no CHECK_ANSWER step was run"
    if outcome.failures:
        raise harness.Mismatch(
            f"{name} ({scenario.title}):\n"
            + "\n".join(outcome.failures)
            + "\nupstream exchanges:\n  "
            + "\n  ".join(outcome.log)
        )


def test_expected_lists_are_current() -> None:
    """Every listed scenario exists, is listed once, and has a reason; the comparison rules
    the harness applies to every scenario are stated with theirs."""
    seen: set[str] = set()
    for table in (SKIP, DIFFER, XFAIL):
        for name, reason in table.items():
            assert name in SCENARIOS, f"expected.toml lists {name}, which is not in {DATA}"
            assert reason.strip(), f"expected.toml: {name} has no reason"
            assert name not in seen, f"expected.toml lists {name} twice"
            seen.add(name)
    policy = EXPECTED["policy"]
    for rule in ("minimal_responses", "additional_section"):
        assert "RFC" in policy[rule], f"[policy] {rule} must give its reason with the RFC"
    assert "RFC" in policy["ede"]["reason"]
