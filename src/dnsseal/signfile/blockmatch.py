"""Finding the unchanged blocks of an edited signed zone file, by their digests.

A snapshot (:mod:`dnsseal.signfile.filesnapshot`) lists the blocks of the file as dnsseal wrote
it: one per owner name, in canonical order, with each block's length and digest.  An edit
changes, adds or removes lines here and there; everything else is still there, in the same
order, only shifted.  :func:`match_blocks` walks the snapshot's rows and the file together:
a row whose digest matches the text at the current offset is unchanged, and the walk moves
on; at a row that does not match, it scans the following lines for the start of a later
row (a line that starts with that row's owner and a tab, whose text then has the row's
digest) and resumes there.  What lies between is *changed text*, to be read with the
careful parser.

A block counts as unchanged only when its exact text has its digest, so a match is bound
to the bytes of the file, never to a guess; what cannot be matched is changed text.  Pure:
bytes in, offsets out.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate

import dns.exception
import dns.name

from dnsseal.signfile.filesnapshot import DIGEST_SIZE, PAGE, Snapshot, block_digest

# Rows looked up by owner text first, before the binary search over the rest.
WINDOW = 16
_NOT_A_BLOCK_START = frozenset(b" \t\r\n;$()")


def owner_key(text: bytes) -> tuple[bytes, ...] | None:
    """The canonical sort key (labels from the root, lower-cased) of an absolute owner
    name written as ``text``, or None when it is not an absolute name."""
    if not text.endswith(b".") or text == b".":
        return () if text == b"." else None
    if b"\\" not in text:
        labels = text.lower().split(b".")
        labels.pop()  # the root
        labels.reverse()
        return tuple(labels)
    try:
        name = dns.name.from_text(text.decode("ascii"))
    except (dns.exception.DNSException, UnicodeDecodeError):
        return None
    return tuple(label.lower() for label in reversed(name.labels[:-1]))


@dataclass(slots=True)
class BlockMatch:
    """Where each row of a snapshot is in the file (``at``: offset, or -1 when its text was
    not found unchanged) and the changed text between the unchanged blocks (``changed``:
    ``(start, end)`` offsets, in order, never empty).  ``resumed``: the rows where the walk
    found its way again after a mismatch (the text before them is not the row before);
    ``missing``: the rows not found (``at`` is -1), in order.
    ``header`` says whether the comments that open the file are as written; ``matched``
    counts the octets of unchanged blocks."""

    at: list[int]
    changed: list[tuple[int, int]]
    resumed: list[int]
    missing: list[int]
    header: bool
    matched: int


class RowIndex:
    """Look-ups of a snapshot's rows by owner: canonical keys computed on demand (and
    kept), binary search in the rows' canonical order."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self._keys: dict[int, tuple[bytes, ...]] = {}

    def key(self, row: int) -> tuple[bytes, ...]:
        got = self._keys.get(row)
        if got is None:
            got = owner_key(self.snap.owner(row))
            if got is None:  # the snapshot passed its MAC: we wrote this owner
                raise ValueError(f"snapshot row {row} has no absolute owner")
            self._keys[row] = got
        return got

    def position(self, key: tuple[bytes, ...], lo: int = 0) -> int:
        """The first row at or after ``lo`` whose key is not below ``key``."""
        return bisect_left(range(len(self.snap)), key, lo=lo, key=self.key)

    def find(self, key: tuple[bytes, ...], lo: int = 0) -> int:
        """The row whose owner has ``key`` (at or after ``lo``), or -1."""
        i = self.position(key, lo)
        return i if i < len(self.snap) and self.key(i) == key else -1


def match_blocks(buf: bytes, snap: Snapshot, index: RowIndex | None = None) -> BlockMatch:
    """Match the file ``buf`` against the rows of ``snap`` (see the module docstring)."""
    index = index or RowIndex(snap)
    n = len(snap)
    lens = snap.cols.lens
    digests = memoryview(snap.cols.digests)
    view = memoryview(buf)
    size = len(buf)
    sha256 = hashlib.sha256
    at = [-1] * n
    changed: list[tuple[int, int]] = []
    resumed: list[int] = []
    missing: list[int] = []
    pos = 0
    header = block_digest(view[: snap.header_len]) == snap.header_digest
    if header:
        pos = snap.header_len
    matched = pos
    looked: dict[bytes, int] = {}
    pages = memoryview(snap.pages)
    page_lens = snap.page_lengths()
    i = 0
    while i < n:
        if not i % PAGE:  # a whole page unchanged: one hash for PAGE blocks
            k = i // PAGE
            end = pos + page_lens[k]
            if (
                end <= size
                and sha256(view[pos:end]).digest()[:DIGEST_SIZE]
                == pages[k * DIGEST_SIZE : (k + 1) * DIGEST_SIZE]
            ):
                last = min(n, i + PAGE)
                at[i:last] = accumulate(lens[i : last - 1], initial=pos)
                matched += end - pos
                pos = end
                i = last
                continue
        end = pos + lens[i]
        if (
            end <= size
            and sha256(view[pos:end]).digest()[:DIGEST_SIZE]
            == digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]
        ):
            at[i] = pos
            matched += end - pos
            pos = end
            i += 1
            continue
        row, start = _resync(buf, view, pos, i, snap, index, looked)
        if row < 0:
            missing += range(i, n)
            break
        missing += range(i, row)
        if start > pos:
            changed.append((pos, start))
        at[row] = start
        resumed.append(row)
        pos = start + lens[row]
        matched += lens[row]
        i = row + 1
    if pos < size:
        changed.append((pos, size))
    return BlockMatch(at, changed, resumed, missing, header, matched)


def _resync(buf: bytes, view: memoryview, pos: int, row: int, snap: Snapshot,
            index: RowIndex, looked: dict[bytes, int]) -> tuple[int, int]:  # fmt: skip
    """The first ``(row, offset)`` at or after ``pos`` where a row at or after ``row``
    starts unchanged, or ``(-1, len(buf))``.  A block starts where the owner changes: a
    line with the owner of the line before is not tried (a block of rows moved there
    is then read as changed text, which is slower, not wrong)."""
    n = len(snap)
    window: dict[bytes, int] | None = None  # the next rows by owner, made when needed
    lens = snap.cols.lens
    digests = memoryview(snap.cols.digests)
    size = len(buf)
    rest = row + WINDOW
    q = pos
    find = buf.find
    last = b""

    def unchanged_at(k: int, q: int) -> bool:
        end = q + lens[k]
        return (
            end <= size
            and hashlib.sha256(view[q:end]).digest()[:DIGEST_SIZE]
            == digests[k * DIGEST_SIZE : (k + 1) * DIGEST_SIZE]
        )

    while q < size:
        nl = find(b"\n", q)
        line_end = size if nl < 0 else nl
        if buf[q] not in _NOT_A_BLOCK_START:
            tab = find(b"\t", q, line_end)
            if tab > q and buf[q:tab] != last:
                owner = last = buf[q:tab]
                # Most often the block after an edited one: try it before anything else.
                k = row + 1 if row + 1 < n and snap.owner(row + 1) == owner else -1
                if k < 0:
                    if window is None:
                        window = {snap.owner(k): k for k in range(row, min(n, row + WINDOW))}
                    k = window.get(owner, -1)
                if k < 0 and rest < n:
                    k = looked.get(owner, -2)
                    if k == -2:
                        key = owner_key(owner)
                        k = looked[owner] = index.find(key, rest) if key is not None else -1
                if k >= row and unchanged_at(k, q):
                    return k, q
        if nl < 0:
            break
        q = nl + 1
    return -1, size
