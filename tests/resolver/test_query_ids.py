"""Upstream query IDs come from the kernel's CSPRNG in batches (engine._QueryIds): they stay
spread over the whole 16-bit space, and a forked child never repeats its parent's."""

from __future__ import annotations

import multiprocessing
import os

import dns.name

from dnsseal.resolver.engine import _IDS, ID_BATCH, query_wire
from dnsseal.validator.machine import Need


def test_ids_are_spread_and_cross_batches() -> None:
    ids = [_IDS.next() for _ in range(4 * ID_BATCH)]  # two octets each: 8 batches
    assert all(0 <= i < 0x10000 for i in ids)
    # 2048 draws from 65536 values: ~31 repeats expected; a stuck or short pool repeats
    # far more (or all).
    assert len(set(ids)) > 1900
    assert max(ids) > 0xF000 and min(ids) < 0x1000


def test_query_wire_takes_a_fresh_id_each_time() -> None:
    need = Need(dns.name.from_text("example."), 1, (("127.0.0.1", 53),), dns.name.root)
    heads = {query_wire(need)[:2] for _ in range(64)}
    assert len(heads) > 60


def _child_ids(out: multiprocessing.queues.Queue[list[int]]) -> None:
    out.put([_IDS.next() for _ in range(8)])


def test_a_forked_child_draws_its_own_ids() -> None:
    _IDS.next()  # the parent has a batch under way
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.queues.Queue[list[int]] = ctx.Queue()
    child = ctx.Process(target=_child_ids, args=(out,))
    child.start()
    theirs = out.get(timeout=30)
    child.join(timeout=30)
    ours = [_IDS.next() for _ in range(8)]
    assert theirs != ours  # the same 8 IDs by chance: 2**-128
    assert os.getpid() != child.pid
