"""The text of a signed zone formatted by worker processes: the writing of a large zone
costs its formatting (a third of a full run's CPU in the main process), and each owner's
block is formatted on its own, so ranges of owners go to a pool and come back in order.

The pool is forked after signing, with the signed zone in a module global: the workers
read it from their copy of the parent's memory (nothing about the zone is sent to them),
and only the text comes back.  The result is :func:`~dnsseal.signfile.filesnapshot.
zone_file_blocks`'s, byte for byte: the same owner order and the same
:func:`~dnsseal.zone.text.name_block` for each owner.
"""

from __future__ import annotations

import multiprocessing
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import dns.name

from dnsseal.signfile.filesnapshot import pack_lengths
from dnsseal.zone import rdtext
from dnsseal.zone.model import RRset, Zone
from dnsseal.zone.text import name_block

if TYPE_CHECKING:
    from concurrent.futures import Future

# Below this many owners one process formats the text (starting a pool costs more).
MIN_OWNERS = 20_000
BATCH = 2048  # owners per piece, as zone_file_blocks

_SHARED: list[tuple[Zone, list[dns.name.Name]]] = []


def canonical_owners(zone: Zone) -> list[dns.name.Name]:
    """Every owner of ``zone`` in canonical order, the apex first (as
    :func:`~dnsseal.zone.text.iter_name_blocks`: owners are lower-case, so the order is
    that of their reversed labels)."""
    names = set(zone.rrsets) | set(zone.rrsigs)
    names.discard(zone.origin)
    return [zone.origin, *sorted(names, key=lambda n: n.labels[::-1])]


def _init(setup: Callable[[], object] | None) -> None:
    if setup is not None:
        setup()


def _format(start: int, end: int) -> tuple[bytes, bytes]:
    """The text of owners ``start``..``end`` and their blocks' lengths, packed."""
    zone, owners = _SHARED[0]
    empty: dict[int, RRset] = {}
    rrsets, rrsigs, rdclass = zone.rrsets, zone.rrsigs, zone.rdclass
    texts = []
    for n in owners[start:end]:
        owner = rdtext.labels_text(n.labels)
        texts.append(name_block(rrsets.get(n, empty), rrsigs.get(n, empty), owner, rdclass))
    data = "".join(texts).encode()
    lengths = array("I", map(len, texts))
    if len(data) != sum(lengths):  # not all ASCII (never seen): lengths in octets
        lengths = array("I", [len(t.encode()) for t in texts])
    return data, pack_lengths(lengths)


def parallel_zone_blocks(zone: Zone, header: bytes, feed: Callable[[bytes, bytes], None],
                         workers: int, setup: Callable[[], object] | None = None,
                         batch: int | None = None) -> Iterator[bytes]:  # fmt: skip
    """:func:`~dnsseal.signfile.filesnapshot.zone_file_blocks` with the formatting done
    by ``workers`` forked processes (``setup`` runs first in each: the parent watch).  At
    most a few pieces per worker are in flight, so the text is never held whole; a piece
    is ``batch`` owners (default :data:`BATCH`)."""
    from concurrent.futures import ProcessPoolExecutor

    yield header
    owners = canonical_owners(zone)
    batch = batch or BATCH
    ranges = [(i, min(i + batch, len(owners))) for i in range(0, len(owners), batch)]
    _SHARED[:] = [(zone, owners)]
    try:
        context = multiprocessing.get_context("fork")  # the workers must inherit the zone
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                                 initargs=(setup,)) as ex:  # fmt: skip
            inflight: deque[Future[tuple[bytes, bytes]]] = deque()
            window = 3 * workers
            for start, end in ranges:
                inflight.append(ex.submit(_format, start, end))
                if len(inflight) >= window:
                    data, lengths = inflight.popleft().result()
                    feed(data, lengths)
                    yield data
            while inflight:
                data, lengths = inflight.popleft().result()
                feed(data, lengths)
                yield data
    finally:
        _SHARED.clear()
