"""Inline signing decides, then acts (issue #15): a maintenance reads the zone's keys, the
key manager plans without touching a file, :meth:`KeyDirectory.apply` does every write of
the plan, and from there to the signed version no file is looked at."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dnsseal.policy.build import lookup
from dnsseal.server import inline as inline_mod
from dnsseal.server.inline import InlineZone
from dnsseal.storage.keydir import KeyDirectory

from .conftest import zone_text

START = 1_800_000_000
FILE_CALLS = ("stat", "lstat", "open", "scandir", "listdir", "link", "rename", "replace",
              "unlink", "mkdir")  # fmt: skip


def test_between_the_plan_and_the_signer_only_the_key_directory_touches_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the new keys' files written one by one by the zone's own loop, and the files
    BIND may have left beside the source (``file.signed``, its journal) looked for after
    the plan, on the way to the signer."""
    src = tmp_path / "p.example.zone"
    src.write_text(zone_text("p.example."))
    (tmp_path / "state").mkdir()
    z = InlineZone("p.example.", src, lookup("default", {}), tmp_path / "keys", tmp_path / "state")
    phase = ["read"]  # read -> planned (-> apply -> planned) -> signing
    seen: list[str] = []

    def watch(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if phase[0] == "planned":
                seen.append(f"{name}({args[0] if args else ''})")
            return real(*args, **kwargs)

        return call

    for name in FILE_CALLS:
        monkeypatch.setattr(os, name, watch(f"os.{name}", getattr(os, name)))
    monkeypatch.setattr(builtins, "open", watch("open", builtins.open))

    def phased(to: str, real: Callable[..., Any], after: str | None = None) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            phase[0] = to
            try:
                return real(*args, **kwargs)
            finally:
                if after is not None:
                    phase[0] = after

        return call

    real_step = inline_mod.step

    def step(*args: Any, **kwargs: Any) -> Any:
        plan = real_step(*args, **kwargs)
        phase[0] = "planned"
        return plan

    monkeypatch.setattr(inline_mod, "step", step)
    monkeypatch.setattr(KeyDirectory, "apply", phased("apply", KeyDirectory.apply, "planned"))
    monkeypatch.setattr(inline_mod, "_sign_full", phased("signing", inline_mod._sign_full))
    assert z.maintain(START) is not None
    monkeypatch.undo()
    assert phase[0] == "signing"
    assert seen == []
    assert len(KeyDirectory(tmp_path / "keys").keys(z.origin)) == 1  # the CSK, written


def test_the_plan_kept_until_the_next_step_holds_no_per_zone_copies(tmp_path: Path) -> None:
    """A zone keeps its last plan (status page, checkds, ``dnssec -status``, the signer)
    for as long as it is served: of 10,000 zones' plans, the changes each step made (a new
    key's seven sentences, already logged and audited) cost ~0.7 KiB a zone.  Kept now:
    the keys (the zone's own Key objects), what each waits for (one string for all zones
    saying the same), no changes."""
    zones = []
    for name in ("p1.example.", "p2.example."):
        src = tmp_path / f"{name}zone"
        src.write_text(zone_text(name))
        state = tmp_path / f"state-{name}"
        state.mkdir()
        z = InlineZone(name, src, lookup("default", {}), tmp_path / "keys", state)
        assert z.maintain(START) is not None
        zones.append(z)
    for z in zones:
        assert z.plan is not None
        assert all(r.changes == () for r in z.plan.keys)
        assert [r.key for r in z.plan.keys if not r.purge] == z.keys
        assert all(a is b for a, b in zip(z.keys, [r.key for r in z.plan.keys], strict=True))
        made = [e for e in z.events if e.event == "keymgr"]
        assert len(made) >= 7  # (the changes were audited: that is where they are kept)
    waits = [r.waiting for z in zones for r in z.plan.keys if z.plan is not None]
    assert waits[0] is not None and waits[0] == waits[1]
    assert waits[0] is waits[1]
