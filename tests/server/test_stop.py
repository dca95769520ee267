"""The server stops promptly whatever its zones' maintenance is doing.

A stop cancels the maintenance scheduler and waits for it.  The scheduler sleeps until its
next zone is due or it is woken (a zone planned earlier); on Python 3.11,
``asyncio.wait_for(event.wait(), t)`` loses a cancellation that comes after the event was
set and before the sleeping task resumed (the inner wait done: wait_for returns), so the
scheduler slept on and a stop after a reload that woke many zones waited up to the next
zone's time (60 s and more).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import free_port
from dnsseal import clock
from dnsseal.server.maintenance import Maintenance
from dnsseal.server.service import AuthServer
from dnsseal.storage.serverconfig import load_config

from .test_many_zones import _inline_config


def test_the_scheduler_ends_when_cancelled_just_after_it_was_woken() -> None:
    """Every point between a wake-up (a zone planned earlier than the scheduler sleeps
    until) and the scheduler's resuming: the stop ends it at once."""

    async def one(turns: int) -> float:
        m = Maintenance(SimpleNamespace(zones={}), None)  # type: ignore[arg-type]
        m._put("late.example.", clock.now() + 3000)  # the scheduler sleeps ~an hour
        for _ in range(3):
            await asyncio.sleep(0)
        m._put("soon.example.", clock.now() + 1000)  # earlier: the sleep is cut short
        for _ in range(turns):
            await asyncio.sleep(0)
        started = time.monotonic()
        await asyncio.wait_for(m.stop(), 2)
        return time.monotonic() - started

    async def every_turn() -> list[float]:
        return [await one(turns) for turns in range(6)]

    took = asyncio.run(every_turn())
    assert max(took) < 1, took


def test_stop_after_a_reload_that_removed_zones_whose_maintenance_ran(tmp_path: Path) -> None:
    """Every zone woken (its maintenance runs), half of them removed by a reload, then the
    stop: it ends within seconds and the zones left are served."""
    conf = _inline_config(tmp_path, free_port())

    async def run() -> tuple[float, int]:
        server = AuthServer(load_config(conf), conf)
        await server.start()
        for state in server.zones.values():
            server.automation.wake(state)
        await asyncio.sleep(0.05)
        text = conf.read_text().split("\n[zone.")
        conf.write_text("\n[zone.".join(text[: 1 + (len(text) - 1) // 2]))
        assert await server.reload() == []
        started = time.monotonic()
        await asyncio.wait_for(server.stop(), 30)
        assert all(s.served is not None for s in server.zones.values())
        return time.monotonic() - started, len(server.zones)

    took, left = asyncio.run(run())
    assert left > 0
    assert took < 10, took


def test_sigterm_is_ours_before_any_listener_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM sent as soon as the server answers (a supervisor, a test waiting for the
    first answer) stops it cleanly: the handlers were installed only at the end of the
    start, after the listeners, the control socket and the HTTP listener, and a SIGTERM in
    between killed the server by the default action (CI: exit -15)."""
    from dnsseal.server import udp

    conf = _inline_config(tmp_path, free_port())
    seen: list[object] = []
    real_start = udp.UdpListener.start

    def start(self: udp.UdpListener) -> None:
        seen.append(signal.getsignal(signal.SIGTERM))
        real_start(self)

    monkeypatch.setattr(udp.UdpListener, "start", start)

    async def run() -> None:
        server = AuthServer(load_config(conf), conf)
        try:
            await server.start()
        finally:
            await server.stop()

    asyncio.run(run())
    assert seen and all(h not in (signal.SIG_DFL, None) for h in seen), seen
