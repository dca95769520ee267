"""What the server keeps per inline-signed zone (issue #15: 10,000 small zones).

Counted, never timed: after many zones come up, the live objects of the kinds that were
made once per zone and are not needed per zone.  Each zone had its own maintenance task
sleeping in ``asyncio.wait_for`` (a second task around an ``asyncio.Event``'s wait, and the
event's deque), about 3 KiB a zone; now one scheduler keeps a heap of wake-up times and a
zone has a task only while its maintenance runs.  The schedule must still be each zone's
own: its next key event or signature refresh (at most MAX_SLEEP away), and a wake runs it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from dnsseal import clock
from dnsseal.server import automation as automation_mod
from dnsseal.server import inline as inline_mod
from dnsseal.server.offlineksk import ResponseKeys
from dnsseal.server.service import AuthServer
from dnsseal.storage.serverconfig import load_config

from .test_many_zones import INLINE, _inline_config


def _live(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def test_sleeping_zones_hold_no_task_event_or_unused_object_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = _inline_config(tmp_path, free_port())
    ran: list[str] = []
    slow = [0.0]
    real_maintain = inline_mod.InlineZone.maintain

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        ran.append(self.name)
        time.sleep(slow[0])  # (in a worker thread)
        return real_maintain(self, *args, **kwargs)

    async def scenario() -> None:
        tasks_before = len(asyncio.all_tasks())
        events_before = _live(asyncio.Event)
        server = AuthServer(load_config(conf), conf)
        await server.start()
        try:
            await asyncio.sleep(0.2)  # every zone asleep until its next event
            states = list(server.zones.values())
            assert len(states) == INLINE
            assert all(s.served is not None and s.inline is not None for s in states)
            # was one task per zone (and one more inside its wait_for) plus an Event each
            assert len(asyncio.all_tasks()) - tasks_before < INLINE // 2
            assert _live(asyncio.Event) - events_before < INLINE // 2
            assert all(s.timer is None for s in states)  # none runs: all are planned
            assert _live(ResponseKeys) == 0  # made only for offline-ksk zones (was one each)
            for s in states:  # (what zone-status and the status page read)
                assert s.inline is not None and s.inline.offline.status is None
            assert _live(ResponseKeys) == 0  # ... and not kept for the others
            # each zone planned at its own next event (within MAX_SLEEP)
            auto = server.automation
            now = clock.now()
            for s in states:
                assert s.inline is not None
                wake = s.inline.next_wakeup()
                when = auto._planned[s.name][0]
                want = now + automation_mod.MAX_SLEEP if wake is None else wake
                assert abs(when - min(want, now + automation_mod.MAX_SLEEP)) <= 2, s.name
            # a wake runs that zone's maintenance now, and only that zone's
            monkeypatch.setattr(inline_mod.InlineZone, "maintain", recording)
            target = states[3]
            auto.wake(target)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if ran and target.timer is None:
                    break
            assert ran == [target.name]
            assert target.name in auto._planned  # planned again after its run
            # a wake while its maintenance runs runs it once more after
            ran.clear()
            slow[0] = 0.3
            auto.wake(target)
            for _ in range(200):
                await asyncio.sleep(0.01)
                if target.timer is not None:
                    break
            assert target.timer is not None
            auto.wake(target)
            auto.wake(target)  # (once more, not twice)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(ran) >= 2 and target.timer is None:
                    break
            await asyncio.sleep(0.5)
            assert ran == [target.name, target.name]
        finally:
            await server.stop()
        assert all(s.timer is None for s in server.zones.values())

    asyncio.run(scenario())
