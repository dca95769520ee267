"""Unbound testbound scenarios replayed against dnsseal (``pytest -m conformance``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance import harness


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: replays Unbound's testbound scenarios against the resolver"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "conformance":
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(autouse=True)
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every conformance test runs with the network forbidden (harness.forbid_network): the
    replay transport must be the only one, also when the resolver starts from the built-in
    root hints (real addresses).  A test that tried fails here."""
    attempts = harness.forbid_network(monkeypatch)
    yield attempts
    assert not attempts, f"the replay reached for the network: {attempts}"
