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
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dns.rdatatype
import dns.zone
import pytest

from conftest import free_port
from dnsseal import clock
from dnsseal.proto.snapshot import ZoneSnapshot, build, snapshot_model
from dnsseal.proto.xfr import VersionStep, ixfr_diffs
from dnsseal.server import history
from dnsseal.server import inline as inline_mod
from dnsseal.server import maintenance as automation_mod
from dnsseal.server.offlineksk import ResponseKeys
from dnsseal.server.service import AuthServer
from dnsseal.storage.serverconfig import load_config
from dnsseal.zone.model import Zone

from .test_many_zones import INLINE, _inline_config


def _live(kind: type, before: Sequence[object] = ()) -> int:
    """Live objects of ``kind``, but for those in ``before`` (what earlier tests in this
    process left alive: counted out by identity, and held so no new object takes an id)."""
    held = {id(o) for o in before}
    return sum(1 for o in gc.get_objects() if isinstance(o, kind) and id(o) not in held)


def _existing(kind: type) -> list[object]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, kind)]


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
        events_before = _existing(asyncio.Event)
        keys_before = _existing(ResponseKeys)
        zones_before = _existing(Zone)
        server = AuthServer(load_config(conf), conf)
        await server.start()
        try:
            await asyncio.sleep(0.2)  # every zone asleep until its next event
            states = list(server.zones.values())
            assert len(states) == INLINE
            assert all(s.served is not None and s.inline is not None for s in states)
            # was one task per zone (and one more inside its wait_for) plus an Event each
            assert len(asyncio.all_tasks()) - tasks_before < INLINE // 2
            assert _live(asyncio.Event, events_before) < INLINE // 2
            assert all(s.timer is None for s in states)  # none runs: all are planned
            # the models packed between changes (InlineZone.park), none alive but the
            # few a test holds; a read gives the records served
            assert all(s.inline is not None and s.inline.parked for s in states)
            assert _live(Zone, zones_before) < INLINE // 2
            for s in states:
                assert s.inline is not None and s.served is not None
                assert s.inline.signed == snapshot_model(s.served.snapshot), s.name
            assert (
                _live(ResponseKeys, keys_before) == 0
            )  # made only for offline-ksk zones (was one each)
            for s in states:  # (what zone-status and the status page read)
                assert s.inline is not None and s.inline.offline.status is None
            assert _live(ResponseKeys, keys_before) == 0  # ... and not kept for the others
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


def _segments(body: list[Any]) -> list[set[tuple[Any, ...]]]:
    """An IXFR body (SOA new, then per version: SOA old, removed, SOA next, added, and SOA
    new) as its record sets, one per SOA-led segment (record order within is free)."""
    out: list[set[tuple[Any, ...]]] = []
    for rrset in body[1:-1]:
        if rrset.rdtype == dns.rdatatype.SOA:
            out.append(set())
        out[-1].update((rrset.name, rrset.rdtype, rrset.covers, rrset.ttl, rd) for rd in rrset)
    return out


def test_history_keeps_each_older_version_as_its_change_and_answers_ixfr_as_the_journal(
    tmp_path: Path,
) -> None:
    """Each version replaced goes into the IXFR history as its change (a re-signed small
    zone shares nothing with its successor: a whole snapshot was about 20 KiB a version,
    for ixfr-versions of them per zone); IXFR from every retained serial is what the
    journal (the independent path, from SQLite) answers, segment by segment."""
    conf = _inline_config(tmp_path, free_port())

    async def scenario() -> None:
        before = _existing(ZoneSnapshot)
        server = AuthServer(load_config(conf), conf)
        await server.start()
        try:
            auto = server.automation
            rounds = 3
            for _ in range(rounds):
                for state in server.zones.values():
                    assert await auto.maintain(state, "resign", force=True) is None
            gc.collect()
            # one whole snapshot per zone: the one served (was rounds + 1 per zone)
            assert _live(ZoneSnapshot, before) == INLINE
            assert server.history is not None
            for state in server.zones.values():
                served = state.served
                assert served is not None and len(served.history) == rounds
                assert all(isinstance(h, VersionStep) for h in served.history)
                for h in served.history:
                    body = ixfr_diffs(served.snapshot, served.history, h.serial)
                    journal = server.history.ixfr(served.snapshot, h.serial)
                    assert body is not None and journal is not None
                    assert _segments(body) == _segments(journal)
                    assert len(_segments(body)) == 2 * (rounds - served.history.index(h))
        finally:
            await server.stop()

    asyncio.run(scenario())


def _version(serial: int, signer: str) -> ZoneSnapshot:
    """A small zone whose every name changes between versions (as a re-sign's RRSIGs do)."""
    text = f"""
$ORIGIN v.test.
$TTL 300
@     SOA ns hostmaster {serial} 3600 600 86400 300
@     NS ns
ns    A 192.0.2.1
www   TXT "{signer}"
a.b   TXT "{signer}"
old{serial % 2} A 192.0.2.{serial}
"""
    return build(dns.zone.from_text(text, "v.test.", relativize=False))


def test_retained_steps_answer_ixfr_as_the_whole_versions_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's path (no change known: computed) and the main process's (change
    given), mixed with whole versions: every IXFR equals the one the whole versions give."""
    snaps = [_version(i + 1, f"signer {i}") for i in range(5)]
    whole: tuple[Any, ...] = ()
    kept: tuple[Any, ...] = ()
    for i, (old, new) in enumerate(itertools.pairwise(snaps)):
        whole = (*whole, old)
        if i == 1:  # a version of a big zone without its change: kept whole
            monkeypatch.setattr(history, "STEP_NAMES", 0)
        kept = history.retain(kept, old, new)
        monkeypatch.setattr(history, "STEP_NAMES", 2000)
        if i == 1:
            assert kept[-1] is old
        else:
            assert all(isinstance(h, VersionStep) for h in kept)  # (the whole one too)
        current = new
        for h in whole:
            want = ixfr_diffs(current, whole, h.serial)
            got = ixfr_diffs(current, kept, h.serial)
            assert want is not None and got is not None
            assert _segments(got) == _segments(want), (i, h.serial)
    assert [h.serial for h in kept] == [s.serial for s in snaps[:-1]]  # (ixfr-versions)
