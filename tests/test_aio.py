"""dnsseal.aio.wait_for keeps a cancellation that asyncio.wait_for (Python 3.11) loses, and
no module of the project calls asyncio.wait_for."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dnsseal import aio

SRC = Path(__file__).resolve().parent.parent / "src" / "dnsseal"
Waiter = Callable[[Awaitable[bool], float], Awaitable[bool]]


async def _cancelled_as_it_wakes(wait_for: Waiter) -> str:
    """A task sleeping on an event is cancelled in the same loop iteration as the event is
    set (a stop coming just after a kick): what does the task see?"""
    event = asyncio.Event()

    async def sleeper() -> str:
        await wait_for(event.wait(), 10)
        return "went on"

    task = asyncio.ensure_future(sleeper())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


def test_a_cancellation_coming_with_the_wake_up_is_kept() -> None:
    assert asyncio.run(_cancelled_as_it_wakes(aio.wait_for)) == "cancelled"


def test_the_time_limit_still_holds() -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            await aio.wait_for(asyncio.Event().wait(), 0.01)
        assert await aio.wait_for(asyncio.sleep(0, "done"), None) == "done"

    asyncio.run(main())


def test_no_module_calls_asyncio_wait_for() -> None:
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\basyncio\.wait_for\(", line)
    ]
    assert found == [], f"use dnsseal.aio.wait_for (it keeps cancellations): {found}"
