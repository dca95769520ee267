"""Signing and writing at once: the text of a staged zone
(:func:`~dnsseal.signer.staged.stage_zone`), each range of owners signed and formatted by a
worker process, the pieces written in canonical order as they come back.

A full signing used to sign everything (workers making signatures, the main process
collecting them into the signed zone), then format the text (workers again), then write.
Here a worker does both for its owners: it signs them (:class:`~dnsseal.signer.staged.
OwnerSigner`), formats their blocks (:func:`~dnsseal.zone.text.name_block`, as
:func:`~dnsseal.signfile.filesnapshot.zone_file_blocks` does) and computes the ledger
digests of its signatures; only text and digests come back.  So the main process does
little more than write, the output is written while later owners are signed, and no
signature is ever held beyond its piece.

The pool is forked after staging, with the staged zone in a module global (the workers read
it from their copy of the parent's memory; only two integers go to them per piece).  With
one worker, or a small zone, the same function runs in this process: the text is the same
byte for byte whichever way it is made, and the same as signing with
:func:`~dnsseal.signer.sign.sign_zone` and writing with :func:`~dnsseal.signfile.
filesnapshot.zone_file_blocks`.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.name

from dnsseal.signer.sign import SignStats
from dnsseal.signer.staged import OwnerSigner, StagedZone
from dnsseal.signfile.filesnapshot import RowMaker, text_groups
from dnsseal.signfile.textpool import canonical_owners
from dnsseal.zone import rdtext
from dnsseal.zone.text import name_block_groups

if TYPE_CHECKING:
    from concurrent.futures import Future

# Below this many owners one process signs and formats everything (a pool costs more).
MIN_OWNERS = 2000
BATCH = 1024  # owners per piece

# What a piece of owners comes back as: text, its blocks' snapshot rows (when wanted), the
# ledger digests of its new signatures, signatures made, RRsets signed, made per key.
Piece = tuple[bytes, RowMaker | None, bytes, int, int, dict[int, int]]
Feed = Callable[[bytes, RowMaker], None]

_SHARED: list[tuple[StagedZone, list[dns.name.Name], bool]] = []
_SIGNER: list[OwnerSigner] = []


@dataclass(slots=True)
class StreamTally:
    """What the pieces of a run counted (see :meth:`StagedZone.stats`)."""

    generated: int = 0
    rrsets_signed: int = 0
    per_key: dict[int, int] = field(default_factory=dict)

    def add(self, generated: int, rrsets_signed: int, per_key: dict[int, int]) -> None:
        self.generated += generated
        self.rrsets_signed += rrsets_signed
        for idx, n in per_key.items():
            self.per_key[idx] = self.per_key.get(idx, 0) + n

    def stats(self, staged: StagedZone) -> SignStats:
        return staged.stats(self.generated, self.rrsets_signed, self.per_key)


def _init(setup: Callable[[], object] | None) -> None:
    if setup is not None:
        setup()
    _SIGNER.clear()


def _sign_piece(start: int, end: int) -> Piece:
    """Sign and format owners ``start``..``end`` of the shared run (and make their
    snapshot rows when the run wants them)."""
    staged, owners, want_rows = _SHARED[0]
    if not _SIGNER or _SIGNER[0].staged is not staged:
        _SIGNER[:] = [OwnerSigner(staged)]
    signer = _SIGNER[0]
    sign_owner = signer.sign_owner
    rdclass = staged.zone.rdclass
    labels_text = rdtext.labels_text
    rows = RowMaker(staged.params.nsec3 is not None, staged.now) if want_rows else None
    blocks = []
    for name in owners[start:end]:
        node, sigs = sign_owner(name)
        text, groups = name_block_groups(node, sigs, labels_text(name.labels), rdclass)
        block = text.encode()
        if rows is not None:
            # Offsets are in characters: octets only for ASCII (always, as escaped).
            rows.add(block, groups if len(block) == len(text) else text_groups(block))
        blocks.append(block)
    piece = (b"".join(blocks), rows, bytes(signer.made), signer.generated,
             signer.rrsets_signed, signer.per_key)  # fmt: skip
    signer.made = bytearray()
    signer.generated = signer.rrsets_signed = 0
    signer.per_key = {}
    return piece


def _result(entry: tuple[Future[Piece], int]) -> tuple[Piece, int]:
    return entry[0].result(), entry[1]


def signed_zone_blocks(staged: StagedZone, header: bytes, feed: Feed | None,
                       tally: StreamTally, workers: int = 1,
                       setup: Callable[[], object] | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       batch: int | None = None) -> Iterator[bytes]:  # fmt: skip
    """The text of the signed zone: ``header``, then each owner's block in canonical order,
    in pieces of ``batch`` owners (default :data:`BATCH`), each piece also passed to
    ``feed`` with its blocks' snapshot rows (for :meth:`~dnsseal.signfile.filesnapshot.
    SnapshotBuilder.add_rows`; none made without a ``feed``).  The owners are signed on
    the way by ``workers`` forked processes (``setup`` runs first in each: the parent
    watch), or in this process for one worker or fewer than :data:`MIN_OWNERS` owners.
    The counts go to ``tally``; the ledger digests of the new signatures to
    ``staged.params.ledger.made``; ``progress(done, total)`` is called with owners done
    after each piece."""
    yield header
    owners = canonical_owners(staged.zone)
    batch = batch or BATCH
    ranges = [(i, min(i + batch, len(owners))) for i in range(0, len(owners), batch)]
    ledger = staged.params.ledger
    total = len(owners)

    done = 0

    def take(piece: Piece, count: int) -> bytes:
        nonlocal done
        data, rows, made, generated, rrsets_signed, per_key = piece
        tally.add(generated, rrsets_signed, per_key)
        if ledger is not None:
            ledger.made += made
        if feed is not None and rows is not None:
            feed(data, rows)
        done += count
        if progress is not None:
            progress(done, total)
        return data

    _SHARED[:] = [(staged, owners, feed is not None)]
    try:
        if workers <= 1 or len(owners) < MIN_OWNERS:
            _SIGNER.clear()
            for start, end in ranges:
                yield take(_sign_piece(start, end), end - start)
            return
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork")  # the workers must inherit the zone
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                                 initargs=(setup,)) as ex:  # fmt: skip
            inflight: deque[tuple[Future[Piece], int]] = deque()
            window = 3 * workers
            for start, end in ranges:
                inflight.append((ex.submit(_sign_piece, start, end), end - start))
                if len(inflight) >= window:
                    yield take(*_result(inflight.popleft()))
            while inflight:
                yield take(*_result(inflight.popleft()))
    finally:
        _SHARED.clear()
        _SIGNER.clear()
