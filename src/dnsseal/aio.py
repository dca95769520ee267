"""asyncio helpers the whole project uses.

:func:`wait_for` replaces :func:`asyncio.wait_for`.  On Python 3.11 ``asyncio.wait_for``
loses a cancellation that arrives in the same loop iteration as the awaited result (the
inner future completes, the outer task is cancelled, and ``wait_for`` returns the result
as if nothing had happened; CPython issue 86296, fixed in 3.12 by building ``wait_for`` on
:func:`asyncio.timeout`).  A server task that sleeps on ``wait_for(event.wait(), delay)``
then misses its stop and the server's shutdown waits for the task's next wake-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """``await aw`` for at most ``timeout`` seconds (None: no limit), raising
    :class:`TimeoutError` when the time is up, and never losing a cancellation of the
    calling task (as Python 3.12's ``asyncio.wait_for``)."""
    async with asyncio.timeout(timeout):
        return await aw
