"""The snapshot of a signed zone file: what a re-sign of that file, edited, needs to know
without reading it record by record.

``dnsseal signzone`` writes the signed zone as one block of text per owner name, in
canonical order.  Next to it, in the ledger file (:mod:`dnsseal.signfile.ledger`), it keeps a
snapshot with one row per block:

* the block's length and a 128-bit digest of its text (:func:`block_digest`), so that a
  block of the edited file can be recognised as unchanged at the cost of hashing it (and
  one digest per *page* of :data:`PAGE` blocks, so that an unchanged stretch of the file
  costs one hash call per page, not one per block);
* for each *group* of lines in the block (an RRset's lines and the lines of its RRSIGs:
  :func:`line_groups`), a digest of the RRset's lines and one of the RRSIG lines, so that
  in a block that was edited the RRsets that were not can still be recognised with their
  signatures, and signatures left over an RRset that was edited are known to be ours over
  other data (neither needs checking);
* the owner's text (to find where blocks start again after an edit, and to place and
  order names), the types the owner holds (for NSEC and NSEC3 bitmaps and zone cuts), and
  the number of its signatures with the earliest expiration and latest inception among them
  (to know when a block's signatures are due for refresh).

The header records what the text depends on: the text format, the origin, the chain (NSEC
or NSEC3 with its parameters), the TTL of the chain records and the block of comments that
opens the file.  The ledger file carries a MAC over everything, keyed by a secret derived
from the private material of every key of the run and the run's key options
(:func:`mac_key`): a snapshot from another key set, a damaged one and a forged one are all
rejected, and the re-sign then takes the careful path.

Pure: bytes in, bytes out.  Columns are stored little-endian, one after another, so that
loading one costs one C-level copy and a re-sign can copy runs of unchanged rows.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import struct
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

import dns.name
import dns.rdatatype

import dnsseal
from dnsseal.signer.denial import Nsec3Params
from dnsseal.signer.keysel import SigningKey
from dnsseal.signer.rrsig import absolute_time
from dnsseal.signfile.ledger import key_secret
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import type_bitmap
from dnsseal.zone.model import Zone
from dnsseal.zone.text import iter_name_blocks

T = dns.rdatatype
# Bump when the text written for the same zone changes (zone/text.py, zone/rdtext.py): a
# snapshot says which text its digests are of, and old text must not be taken for new.
TEXT_FORMAT = 1
FORMAT_TAG = f"dnsseal {dnsseal.__version__} text {TEXT_FORMAT}".encode()
DIGEST_SIZE = 16
PAGE = 32  # blocks per page digest
NO_EXPIRATION = 2**62  # min_exp of a block without signatures
NO_INCEPTION = -(2**62)  # max_inc of a block without signatures

_SWAP = sys.byteorder != "little"
# The expiration and inception of an RRSIG line as dnsseal writes it (RFC 4034 3.2 form).
_RRSIG_TIMES = re.compile(rb"\tRRSIG\t[A-Z0-9]+ \d+ \d+ \d+ (\d{14}) (\d{14}) ")
for _code, _size in (("I", 4), ("H", 2), ("q", 8)):
    if array(_code).itemsize != _size:  # pragma: no cover - no such platform in use
        raise ImportError(f"array type {_code!r} is not {_size} octets on this platform")


class SnapshotError(Exception):
    """A snapshot that cannot be used; the message says why (for the log)."""


def block_digest(text: bytes | memoryview) -> bytes:
    """The digest of one block's text as the snapshot records it: SHA-256 cut to 128 bits
    (SHA-256 rather than BLAKE2b because the CPU computes it: a third less per block)."""
    return hashlib.sha256(text).digest()[:DIGEST_SIZE]


def mac_key(keys: Sequence[SigningKey], origin: dns.name.Name, *, ksk_only: bool,
            ignore_ksk_flag: bool) -> bytes:  # fmt: skip
    """The key of the ledger file's MAC: a digest of the origin, the key options and each
    key's ledger secret (derived from its private material) with whether it is published
    and signs.  Another key set, key role or option gives another key."""
    h = hashlib.blake2b(digest_size=32, person=b"dnsseal-snapshot")
    wire = canonical.name_wire(origin)
    h.update(len(wire).to_bytes(2, "big") + wire + bytes((ksk_only, ignore_ksk_flag)))
    for secret, publish, active, role in sorted(
        (key_secret(k.key), k.publish, k.active, k.key.role) for k in keys
    ):
        h.update(secret + bytes((publish, active)) + role.encode() + b"\0")
    return h.digest()


def chain_text(nsec3: Nsec3Params | None) -> bytes:
    """The chain a snapshot was written for, as its header records it."""
    if nsec3 is None:
        return b"nsec"
    return b"nsec3 %d %d %d %s" % (
        nsec3.algorithm,
        nsec3.iterations,
        nsec3.flags,
        nsec3.salt.hex().encode() or b"-",
    )


def _column(code: str, data: bytes | memoryview) -> array[int]:
    a = array(code)
    a.frombytes(data)
    if _SWAP:  # pragma: no cover - big-endian hosts
        a.byteswap()
    return a


def _column_bytes(a: array[int]) -> bytes:
    if _SWAP:  # pragma: no cover - big-endian hosts
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


@dataclass(slots=True)
class Columns:
    """The rows of a snapshot, one per block, as parallel columns."""

    lens: array[int]  # 'I': text length
    digests: bytearray  # DIGEST_SIZE octets per row
    owner_lens: bytearray  # owner text length
    owners: bytearray  # owner texts, one after another
    typesets: array[int]  # 'H': index into the type-set table
    sigs: array[int]  # 'H': number of RRSIG records
    min_exp: array[int]  # 'q': earliest expiration (absolute), NO_EXPIRATION without sigs
    max_inc: array[int]  # 'q': latest inception (absolute), NO_INCEPTION without sigs
    ngroups: bytearray  # groups of lines in the block (0: not recorded)
    group_types: array[int]  # 'H': the type each group is about, for all rows in order
    group_digests: bytearray  # per group: digest of the RRset's lines, of the RRSIG lines

    @classmethod
    def empty(cls) -> Columns:
        return cls(array("I"), bytearray(), bytearray(), bytearray(), array("H"), array("H"),
                   array("q"), array("q"), bytearray(), array("H"), bytearray())  # fmt: skip

    def __len__(self) -> int:
        return len(self.lens)

    def extend_rows(self, other: Columns, start: int, end: int, owner_offsets: Sequence[int],
                    group_offsets: Sequence[int]) -> None:  # fmt: skip
        """Append rows ``start``..``end`` of ``other`` (``owner_offsets`` and
        ``group_offsets`` are its offsets by row; its type-set numbers are taken as they
        are)."""
        self.lens.extend(other.lens[start:end])
        self.digests += other.digests[start * DIGEST_SIZE : end * DIGEST_SIZE]
        self.owner_lens += other.owner_lens[start:end]
        self.owners += other.owners[owner_offsets[start] : owner_offsets[end]]
        self.typesets.extend(other.typesets[start:end])
        self.sigs.extend(other.sigs[start:end])
        self.min_exp.extend(other.min_exp[start:end])
        self.max_inc.extend(other.max_inc[start:end])
        self.ngroups += other.ngroups[start:end]
        g0, g1 = group_offsets[start], group_offsets[end]
        self.group_types.extend(other.group_types[g0:g1])
        self.group_digests += other.group_digests[g0 * 2 * DIGEST_SIZE : g1 * 2 * DIGEST_SIZE]


@dataclass(slots=True)
class Snapshot:
    """A decoded snapshot (see the module docstring).  ``table`` holds the type sets
    (sorted types) that ``cols.typesets`` index; ``owner_offsets`` has one entry more than
    there are rows; ``chain`` lists the rows of NSEC3-only owners (the hashed names), in
    order, and ``chain_bitmaps`` the type bitmap of each one's record (an index into
    ``bitmaps``)."""

    format_tag: bytes
    origin_wire: bytes
    rdclass: int
    chain_text: bytes
    chain_ttl: int
    written_at: int
    header_len: int
    header_digest: bytes
    table: list[tuple[int, ...]]
    cols: Columns
    owner_offsets: list[int]
    chain: array[int]
    chain_bitmaps: array[int]
    bitmaps: list[bytes]
    pages: bytes  # DIGEST_SIZE octets per page: rows PAGE * k .. PAGE * (k + 1) - 1
    group_offsets: list[int]  # first group of each row (one entry more than rows)

    def groups(self, row: int) -> dict[int, tuple[bytes, bytes]]:
        """The groups of lines of a row's block, by type: the digests of the RRset's lines
        and of its RRSIG lines."""
        g0, g1 = self.group_offsets[row], self.group_offsets[row + 1]
        d = self.cols.group_digests
        size = DIGEST_SIZE
        return {
            self.cols.group_types[g]: (
                bytes(d[2 * g * size : (2 * g + 1) * size]),
                bytes(d[(2 * g + 1) * size : (2 * g + 2) * size]),
            )
            for g in range(g0, g1)
        }

    def page_lengths(self) -> list[int]:
        """The length of each page's text."""
        lens = self.cols.lens
        return [sum(lens[i : i + PAGE]) for i in range(0, len(lens), PAGE)]

    def is_chain_row(self, row: int) -> bool:
        """Whether ``row`` is the block of a hashed owner (NSEC3 only)."""
        m = bisect_left(self.chain, row)
        return m < len(self.chain) and self.chain[m] == row

    def chain_bitmap(self, row: int) -> bytes:
        """The NSEC3 type bitmap of the hashed owner at ``row`` (a row of :attr:`chain`)."""
        m = bisect_left(self.chain, row)
        if m == len(self.chain) or self.chain[m] != row:
            raise KeyError(row)
        return self.bitmaps[self.chain_bitmaps[m]]

    def owner(self, i: int) -> bytes:
        return bytes(self.cols.owners[self.owner_offsets[i] : self.owner_offsets[i + 1]])

    def types(self, i: int) -> tuple[int, ...]:
        return self.table[self.cols.typesets[i]]

    def __len__(self) -> int:
        return len(self.cols)


class SnapshotBuilder:
    """Collects the rows of the blocks of a signed zone's text as it is written (from the
    text itself: :meth:`add_text`, :meth:`feed`; or copied from another snapshot:
    :meth:`copy_rows`), then encodes the snapshot (:meth:`to_bytes`).  ``now``
    is the time of the run (signature times are stored as the absolute times they stand
    for at ``now``); ``header``: the comments that open the file."""

    def __init__(self, origin: dns.name.Name, rdclass: int, nsec3: Nsec3Params | None,
                 chain_ttl: int, now: int, header: bytes = b"") -> None:  # fmt: skip
        self.origin_wire = canonical.name_wire(origin)
        self.rdclass = rdclass
        self.nsec3 = nsec3
        self.chain_ttl = chain_ttl
        self.now = now
        self.cols = Columns.empty()
        self.table: list[tuple[int, ...]] = []
        self._ids: dict[tuple[int, ...], int] = {}
        self._by_order: dict[tuple[int, ...], int] = {}
        self.header = header
        self.chain = array("I")
        self.chain_bitmaps = array("H")
        self.bitmaps: list[bytes] = []
        self._bitmap_ids: dict[bytes, int] = {}
        self.pages = bytearray()
        self._page = hashlib.sha256()
        self._page_rows = 0
        self._rows = RowMaker(nsec3 is not None, now, self.cols)

    def _page_text(self, text: bytes | memoryview, rows: int) -> None:
        """Add the text of ``rows`` rows (that do not complete more than the open page)."""
        self._page.update(text)
        self._page_rows += rows
        if self._page_rows == PAGE:
            self._close_page()

    def _close_page(self) -> None:
        self.pages += self._page.digest()[:DIGEST_SIZE]
        self._page = hashlib.sha256()
        self._page_rows = 0

    def copy_rows(self, snap: Snapshot, start: int, end: int, text: memoryview) -> None:
        """Append rows ``start``..``end`` of ``snap`` (whose text, one block after another,
        is ``text``), with their type-set and bitmap numbers as they are (see
        :meth:`adopt_tables`)."""
        base = len(self.cols) - start
        self.cols.extend_rows(snap.cols, start, end, snap.owner_offsets, snap.group_offsets)
        lo, hi = bisect_left(snap.chain, start), bisect_left(snap.chain, end)
        self.chain.extend(base + j for j in snap.chain[lo:hi])
        self.chain_bitmaps.extend(snap.chain_bitmaps[lo:hi])
        lens = snap.cols.lens
        row, pos = start, 0
        aligned = base % PAGE == 0  # its pages are our pages: whole ones keep their digests
        while row < end:
            if aligned and not row % PAGE and row + PAGE <= end and not self._page_rows:
                k = row // PAGE
                self.pages += snap.pages[k * DIGEST_SIZE : (k + 1) * DIGEST_SIZE]
                pos += sum(lens[row : row + PAGE])
                row += PAGE
                continue
            take = min(PAGE - self._page_rows, end - row)
            size = sum(lens[row : row + take])
            self._page_text(text[pos : pos + size], take)
            row += take
            pos += size

    def adopt_tables(self, snap: Snapshot) -> None:
        """Start from the type-set and bitmap tables of ``snap``, so that its rows can be
        copied as they are (:meth:`copy_rows`)."""
        self.table = list(snap.table)
        self._ids = {types: i for i, types in enumerate(self.table)}
        self._by_order = dict(self._ids)
        self.bitmaps = list(snap.bitmaps)
        self._bitmap_ids = {bitmap: i for i, bitmap in enumerate(self.bitmaps)}

    def bitmap_id(self, bitmap: bytes) -> int:
        """The index of an NSEC3 type bitmap in :attr:`bitmaps`."""
        got = self._bitmap_ids.get(bitmap)
        if got is None:
            got = self._bitmap_ids[bitmap] = len(self.bitmaps)
            if got > 0xFFFF:
                raise ValueError("more than 65536 distinct NSEC3 bitmaps")
            self.bitmaps.append(bitmap)
        return got

    def typeset_id(self, types: tuple[int, ...]) -> int:
        """The table index of a set of types given in any order."""
        got = self._by_order.get(types)
        if got is None:
            key = tuple(sorted(types))
            got = self._ids.get(key)
            if got is None:
                got = self._ids[key] = len(self.table)
                if got > 0xFFFF:
                    raise ValueError("more than 65536 distinct type sets")
                self.table.append(key)
            self._by_order[types] = got
        return got

    def add_text(self, text: bytes) -> None:
        """Record one block from its text, as dnsseal writes it: lines ``owner<TAB>TTL
        <TAB>CLASS<TAB>TYPE<TAB>RDATA``, all of one owner, each ending in a newline."""
        self._rows.add(text, text_groups(text))
        self._page_text(text, 1)
        self._take_rows(self._rows, len(self.cols) - 1)

    def add_rows(self, data: bytes | memoryview, rows: RowMaker) -> None:
        """Record the blocks whose texts, one after another, are ``data``, from their rows
        (made apart, perhaps in another process: see :class:`RowMaker`)."""
        start = len(self.cols)
        self.cols.extend_rows(rows.cols, 0, len(rows.cols), rows.owner_offsets(), rows.offsets())
        self._take_rows(rows, start)
        view = memoryview(data)
        lens = rows.cols.lens
        row, pos, end = 0, 0, len(lens)
        while row < end:
            take = min(PAGE - self._page_rows, end - row)
            size = sum(lens[row : row + take])
            self._page_text(view[pos : pos + size], take)
            row += take
            pos += size

    def _take_rows(self, rows: RowMaker, start: int) -> None:
        """Number the type sets and NSEC3 bitmaps of ``rows``' new rows (the first is row
        ``start`` here) and forget them there."""
        add = self.cols.typesets.append
        typeset_id = self.typeset_id
        for types in rows.types:
            add(typeset_id(types))
        rows.types.clear()
        for row, bitmap in rows.nsec3:
            self.chain.append(start + row)
            self.chain_bitmaps.append(self.bitmap_id(bitmap))
        rows.nsec3.clear()

    def feed(self, batch: bytes, lens: bytes) -> None:
        """Record the blocks whose texts, one after another, are ``batch`` (their lengths
        packed by :func:`pack_lengths`)."""
        pos = 0
        view = memoryview(batch)
        for size in _column("I", lens):
            self.add_text(bytes(view[pos : pos + size]))
            pos += size

    def to_bytes(self, chain_ttl: int | None = None) -> bytes:
        """The encoded snapshot (``chain_ttl``: the TTL of the chain records, when it was
        not known when the builder was made)."""
        if chain_ttl is not None:
            self.chain_ttl = chain_ttl
        if self._page_rows:
            self._close_page()  # the last page, not full
        return encode(self)


class RowMaker:
    """Makes the rows of blocks of text (:meth:`add`) but for the numbers a
    :class:`SnapshotBuilder` assigns: the type set of each row is kept in :attr:`types`
    and the NSEC3 type bitmap of each NSEC3-only owner in :attr:`nsec3` (row, bitmap) until
    the builder takes them.  A worker process that writes blocks makes their rows with its
    own maker, from the groups of lines it knows, and the builder takes them whole
    (:meth:`SnapshotBuilder.add_rows`): the same rows as the builder makes from the text
    (``nsec3``: the run has an NSEC3 chain; ``now``: as the builder's)."""

    __slots__ = ("_bitmaps", "_times", "cols", "now", "nsec3", "nsec3_chain", "types")

    def __init__(self, nsec3_chain: bool, now: int, cols: Columns | None = None) -> None:
        self.nsec3_chain = nsec3_chain
        self.now = now
        self.cols = cols if cols is not None else Columns.empty()
        self.types: list[tuple[int, ...]] = []
        self.nsec3: list[tuple[int, bytes]] = []
        self._times: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        self._bitmaps: dict[bytes, bytes] = {}

    def __getstate__(self) -> tuple[bool, int, Columns, list[tuple[int, ...]],
                                    list[tuple[int, bytes]]]:  # fmt: skip
        return self.nsec3_chain, self.now, self.cols, self.types, self.nsec3

    def __setstate__(self, state: tuple[bool, int, Columns, list[tuple[int, ...]],
                                        list[tuple[int, bytes]]]) -> None:  # fmt: skip
        self.nsec3_chain, self.now, self.cols, self.types, self.nsec3 = state
        self._times = {}
        self._bitmaps = {}

    def owner_offsets(self) -> list[int]:
        return list(accumulate(self.cols.owner_lens, initial=0))

    def offsets(self) -> list[int]:
        return list(accumulate(self.cols.ngroups, initial=0))

    def add(self, text: bytes, groups: Sequence[tuple[int, int, int, int]]) -> None:
        """Record one block from its text and its groups of lines (``(type, start, sigs_at,
        end)``, as :func:`text_groups` finds them)."""
        cols = self.cols
        cols.lens.append(len(text))
        cols.digests += hashlib.sha256(text).digest()[:DIGEST_SIZE]
        owner = text[: text.find(b"\t")]
        cols.owner_lens.append(len(owner))
        cols.owners += owner
        types: list[int] = []
        nsec3 = b""
        sha256 = hashlib.sha256
        add_type, digests = cols.group_types.append, cols.group_digests
        for covered, start, sigs_at, end in groups:
            add_type(covered)
            digests += sha256(text[start:sigs_at]).digest()[:DIGEST_SIZE]
            digests += sha256(text[sigs_at:end]).digest()[:DIGEST_SIZE]
            if start < sigs_at and covered not in types:
                types.append(covered)
                if covered == T.NSEC3:  # one line: its RDATA for the bitmap
                    nsec3 = text[text.rfind(b"\t", start, sigs_at) + 1 : sigs_at - 1]
        ngroups = len(groups)
        # The RRSIG lines' times, found in one pass (a block's are nearly always the same).
        pairs = _RRSIG_TIMES.findall(text)
        count = len(pairs)
        lo, hi = NO_EXPIRATION, NO_INCEPTION
        times = self._times
        for pair in set(pairs):
            t = times.get(pair)
            if t is None:
                t = times[pair] = (self._time(pair[0]), self._time(pair[1]))
            lo = min(lo, t[0])
            hi = max(hi, t[1])
        if ngroups > 255:  # not recorded (never seen: a type each): nothing taken on trust
            del cols.group_types[-ngroups:]
            del cols.group_digests[-ngroups * 2 * DIGEST_SIZE :]
            ngroups = 0
        cols.ngroups.append(ngroups)
        key = tuple(types)
        self.types.append(key)
        if self.nsec3_chain and key == _NSEC3_ONLY:
            self.nsec3.append((len(self.types) - 1, self._nsec3_bitmap(nsec3)))
        cols.sigs.append(min(count, 0xFFFF))
        cols.min_exp.append(lo)
        cols.max_inc.append(hi)

    def _time(self, text: bytes) -> int:
        """An RRSIG time as written (YYYYMMDDHHMMSS: the 32-bit value as a UTC date), as
        the absolute time it stands for now."""
        value = calendar.timegm(time.strptime(text.decode("ascii"), "%Y%m%d%H%M%S"))
        return absolute_time(value, self.now)

    def _nsec3_bitmap(self, rdata: bytes) -> bytes:
        """The type bitmap of an NSEC3 record written as ``rdata`` (its types after the
        next hashed owner)."""
        fields = rdata.split(b" ", 5)
        types = fields[5] if len(fields) > 5 else b""
        got = self._bitmaps.get(types)
        if got is None:
            got = self._bitmaps[types] = type_bitmap(type_of(t) for t in types.split())
        return got


_NSEC3_ONLY = (int(T.NSEC3),)


def text_groups(text: bytes) -> list[tuple[int, int, int, int]]:
    """The groups of lines of one block of text (:func:`line_groups`) as
    :meth:`RowMaker.add` takes them: ``(type, start, sigs_at, end)``."""
    return [(type_of(covered), start, sigs_at, end)
            for _, covered, start, sigs_at, end in line_groups(text)]  # fmt: skip


def line_groups(text: bytes) -> Iterator[tuple[bytes, bytes, int, int, int]]:
    """The groups of lines of zone text as dnsseal writes it: ``(owner, type, start,
    sigs_at, end)`` for each run of lines of one owner about one type (the type as
    written): its records from ``start``, then its RRSIGs from ``sigs_at`` (``end`` when
    there are none).  Lines that are not in that form (``owner<TAB>TTL<TAB>CLASS<TAB>
    TYPE<TAB>RDATA``) end a group and belong to none; so does an RRSIG line followed by a
    record of the type it covers."""
    key: tuple[bytes, bytes] | None = None
    start = pos = sigs_at = 0
    for line in text.split(b"\n"):
        end = pos + len(line) + 1
        fields = line.split(b"\t", 4)
        here: tuple[bytes, bytes] | None = None
        is_sig = False
        if len(fields) == 5:
            rtype = fields[3]
            is_sig = rtype == b"RRSIG"
            here = (fields[0], fields[4][: fields[4].find(b" ")] if is_sig else rtype)
        if here != key or (here is not None and not is_sig and sigs_at < pos):
            if key is not None:
                yield key[0], key[1], start, sigs_at, pos
            key, start, sigs_at = here, pos, pos
        if not is_sig:
            sigs_at = end
        pos = end
    if key is not None:
        yield key[0], key[1], start, min(sigs_at, len(text)), min(pos, len(text))


def pack_lengths(lengths: array[int]) -> bytes:
    """Block lengths as :meth:`SnapshotBuilder.feed` takes them (an ``array('I')``)."""
    return _column_bytes(lengths)


def zone_file_blocks(zone: Zone, header: bytes, feed: Callable[[bytes, bytes], None],
                     batch: int = 2048) -> Iterator[bytes]:  # fmt: skip
    """The text of the signed ``zone`` as dnsseal writes it (``header``, then one block per
    owner in canonical order, as :func:`~dnsseal.zone.text.iter_zone_text`), in pieces of
    ``batch`` blocks, each piece also passed to ``feed`` with its blocks' lengths
    (:meth:`SnapshotBuilder.feed`, perhaps in another process: see
    :class:`~dnsseal.signfile.helper.ProcessSnapshot`).  A piece is encoded in one go, not
    block by block: this runs once per owner of a full signing."""
    yield header
    texts: list[str] = []
    lengths = array("I")
    for _, _, block in iter_name_blocks(zone):
        texts.append(block)
        lengths.append(len(block))
        if len(texts) >= batch:
            yield _piece(texts, lengths, feed)
            texts.clear()
            del lengths[:]
    if texts:
        yield _piece(texts, lengths, feed)


def _piece(texts: list[str], lengths: array[int], feed: Callable[[bytes, bytes], None]) -> bytes:
    data = "".join(texts).encode()
    if len(data) != sum(lengths):  # not all ASCII (never seen): lengths in octets
        lengths = array("I", [len(t.encode()) for t in texts])
    feed(data, pack_lengths(lengths))
    return data


def type_of(mnemonic: bytes) -> int:
    """A type written as text (BIND's mnemonics and TYPEnnn), cached."""
    got = _TYPES.get(mnemonic)
    if got is None:
        got = _TYPES[mnemonic] = int(T.from_text(mnemonic.decode("ascii")))
    return got


_TYPES: dict[bytes, int] = {}


_HEAD = struct.Struct("<HIqI16sIH")  # rdclass, chain TTL, written at, header length,
# header digest, rows, type sets


def _blob(data: bytes) -> bytes:
    return len(data).to_bytes(2, "little") + data


def encode(b: SnapshotBuilder) -> bytes:
    """The snapshot of ``b`` as bytes (see :func:`decode`)."""
    out = bytearray()
    for part in (FORMAT_TAG, b.origin_wire, chain_text(b.nsec3)):
        out += _blob(part)
    cols = b.cols
    out += _HEAD.pack(b.rdclass, b.chain_ttl, b.now, len(b.header), block_digest(b.header),
                      len(cols), len(b.table))  # fmt: skip
    for types in b.table:
        out += len(types).to_bytes(2, "little") + _column_bytes(array("H", types))
    out += _column_bytes(cols.lens)
    out += cols.digests
    out += cols.owner_lens
    out += len(cols.owners).to_bytes(4, "little") + cols.owners
    out += _column_bytes(cols.typesets)
    out += _column_bytes(cols.sigs)
    out += _column_bytes(cols.min_exp)
    out += _column_bytes(cols.max_inc)
    out += len(b.chain).to_bytes(4, "little") + _column_bytes(b.chain)
    out += _column_bytes(b.chain_bitmaps)
    out += len(b.bitmaps).to_bytes(4, "little")
    for bitmap in b.bitmaps:
        out += _blob(bitmap)
    out += b.pages
    out += cols.ngroups
    out += len(cols.group_types).to_bytes(4, "little") + _column_bytes(cols.group_types)
    out += cols.group_digests
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise SnapshotError("the snapshot is truncated")
        part = self.data[self.pos : self.pos + n]
        self.pos += n
        return part

    def blob(self) -> bytes:
        return bytes(self.take(int.from_bytes(self.take(2), "little")))

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")


def decode(data: bytes | memoryview) -> Snapshot:
    """Decode a snapshot; raises :class:`SnapshotError` when it is malformed.  (Whether it
    is authentic is the ledger file's MAC's business; whether it fits the run, the
    caller's.)"""
    r = _Reader(data)
    tag, origin_wire, chain = r.blob(), r.blob(), r.blob()
    if tag != FORMAT_TAG:
        raise SnapshotError(
            f"the snapshot was written by {tag.decode(errors='replace')!r}, this is "
            f"{FORMAT_TAG.decode()!r}"
        )
    rdclass, chain_ttl, written, header_len, header_digest, n, ntypes = _HEAD.unpack(
        r.take(_HEAD.size)
    )
    table = []
    for _ in range(ntypes):
        count = int.from_bytes(r.take(2), "little")
        table.append(tuple(_column("H", r.take(2 * count))))
    lens = _column("I", r.take(4 * n))
    digests = bytearray(r.take(DIGEST_SIZE * n))
    owner_lens = bytearray(r.take(n))
    owners = bytearray(r.take(r.u32()))
    cols = Columns(lens, digests, owner_lens, owners, _column("H", r.take(2 * n)),
                   _column("H", r.take(2 * n)), _column("q", r.take(8 * n)),
                   _column("q", r.take(8 * n)), bytearray(), array("H"),
                   bytearray())  # fmt: skip
    nchain = r.u32()
    chain_rows = _column("I", r.take(4 * nchain))
    chain_bitmaps = _column("H", r.take(2 * nchain))
    bitmaps = [r.blob() for _ in range(r.u32())]
    pages = bytes(r.take(DIGEST_SIZE * -(-n // PAGE)))
    cols.ngroups = bytearray(r.take(n))
    ngroups = r.u32()
    cols.group_types = _column("H", r.take(2 * ngroups))
    cols.group_digests = bytearray(r.take(2 * DIGEST_SIZE * ngroups))
    group_offsets = list(accumulate(cols.ngroups, initial=0))
    if group_offsets[-1] != ngroups:
        raise SnapshotError("the snapshot's groups do not agree")
    if r.pos != len(r.data):
        raise SnapshotError("the snapshot has trailing data")
    offsets = list(accumulate(owner_lens, initial=0))
    if offsets[-1] != len(owners) or (ntypes and max(cols.typesets, default=0) >= ntypes):
        raise SnapshotError("the snapshot's columns do not agree")
    if any(i >= n for i in chain_rows[-1:]) or any(i >= len(bitmaps) for i in chain_bitmaps):
        raise SnapshotError("the snapshot's chain index is out of range")
    return Snapshot(tag, origin_wire, rdclass, chain, chain_ttl, written, header_len,
                    bytes(header_digest), table, cols, offsets, chain_rows, chain_bitmaps,
                    bitmaps, pages, group_offsets)  # fmt: skip
