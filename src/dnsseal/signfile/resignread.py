"""Reading an edited signed file for the fast re-sign (:mod:`dnsseal.signfile.resign`):
the unchanged blocks a re-sign needs after all, the changed text, and what the changed
text still holds of dnsseal's own output.

Every piece is read with the careful parser (:mod:`dnsseal.zone.fastparse`), never with
guesses: an unchanged block is context-free text (absolute owner, TTL and class on every
line), and a changed region is read after the line before it when its first line leaves
something out.  Anything the parser leaves to dnspython, and any directive, makes the
re-sign take the careful path (:class:`Fallback`).  Pure: bytes in, records out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dns.exception
import dns.name
import dns.rdatatype

from dnsseal.signfile.blockmatch import BlockMatch
from dnsseal.signfile.filesnapshot import Snapshot, block_digest, line_groups, type_of
from dnsseal.zone import fastparse, rdtext
from dnsseal.zone.model import OwnerName, RRset, Zone, ZoneBuilder
from dnsseal.zone.text import format_rrset

T = dns.rdatatype
Record = tuple[dns.name.Name, int, int, bytes]


class Fallback(Exception):
    """The fast re-sign cannot vouch for its result here; the message says why."""


def _name_of(text: bytes) -> OwnerName:
    """The owner name written as ``text`` (absolute, as dnsseal writes owners)."""
    if b"\\" not in text:
        return OwnerName.trusted(tuple(text.split(b".")) if text != b"." else (b"",))
    return OwnerName(dns.name.from_text(text.decode("ascii")).canonicalize().labels)


class ChangedText:
    """An edited signed file (``buf``) matched against its snapshot (``match``): reads
    rows, changed regions and groups of lines, and keeps what it read."""

    def __init__(self, buf: bytes, snap: Snapshot, match: BlockMatch,
                 origin: dns.name.Name) -> None:  # fmt: skip
        self.buf = buf
        self.view = memoryview(buf)
        self.snap = snap
        self.match = match
        self.origin = origin
        self.parsed: dict[int, list[Record]] = {}  # row -> its records, read from the file
        self.cache = fastparse.new_cache(origin)  # names and RDATA parts, for every piece
        # Of the changed text: its groups of lines by region, their records by offset.
        self.groups_of: dict[int, list[tuple[bytes, bytes, int, int, int]]] = {}
        self.group_records: dict[int, list[Record]] = {}
        self.row_names: dict[int, OwnerName] = {}

    def row_name(self, row: int) -> OwnerName:
        got = self.row_names.get(row)
        if got is None:
            got = self.row_names[row] = _name_of(self.snap.owner(row))
        return got

    def parse_row(self, row: int) -> list[Record]:
        """The records of an unchanged block (context-free: absolute owner, TTL, class)."""
        got = self.parsed.get(row)
        if got is None:
            start = self.match.at[row]
            text = bytes(self.view[start : start + self.snap.cols.lens[row]])
            records = fastparse.parse(text.decode("utf-8"), self.origin, self.cache)
            if records is None:  # pragma: no cover - our own text: a bug, not an edit
                raise Fallback(f"the block of {self.row_name(row)} needs the careful parser")
            got = self.parsed[row] = records
        return got

    def parse_changes(self, skip: frozenset[int] = frozenset()) -> list[Record]:
        """The records of the changed text, each region read after the line before it (for
        the owner and TTL a line may leave out).  Where every line of a region is one
        record in dnsseal's form, the records of each group of lines are kept too (by the
        group's offset in the file), for :meth:`known_groups`.  Regions starting at an
        offset in ``skip`` (lanes) are left out."""
        out: list[Record] = []
        buf = self.buf
        for start, end in self.match.changed:
            if start in skip:
                continue
            text = buf[start:end]
            if text.startswith(b"$") or b"\n$" in text:
                raise Fallback("a directive ($ORIGIN, $TTL, $INCLUDE) among the changes")
            first = text[: text.find(b"\n")]
            if first.count(b"\t") >= 4 and first.split(b"\t", 1)[0].endswith(b"."):
                before = b""  # a whole record (owner, TTL, class): no context needed
            else:  # the line before gives the owner and TTL a line may leave out
                before = buf[buf.rfind(b"\n", 0, max(start - 1, 0)) + 1 : start] if start else b""
            try:
                prefix = before.decode("utf-8")
                body = text.decode("utf-8")
            except UnicodeDecodeError:
                raise Fallback("changed text that is not UTF-8") from None
            got = fastparse.parse(prefix + body, self.origin, self.cache)
            if got is None:
                line = buf.count(b"\n", 0, start) + 1
                raise Fallback(f"the changes from line {line} need the careful parser")
            # The line before is a record of an unchanged block (one record: our lines
            # are whole records) or a comment of the header (none).
            records = got[0 if not prefix or prefix.startswith(";") else 1 :]
            out += records
            groups = self.groups_of[start] = list(line_groups(text))
            lines = text.count(b"\n") + (not text.endswith(b"\n"))
            grouped = sum(text.count(b"\n", s, e) for _, _, s, _, e in groups)
            if lines == grouped == len(records):  # line i is record i
                i = 0
                for _, _, s, _, e in groups:
                    k = text.count(b"\n", s, e)
                    self.group_records[start + s] = records[i : i + k]
                    i += k
        return out

    def known_groups(self, data: Zone, chain: Mapping[dns.name.Name, RRset]) -> tuple[
        list[Record], dict[tuple[dns.name.Name, int], tuple[bytes, ...]]
    ]:  # fmt: skip
        """What the changed text still holds of blocks that changed, group by group (an
        RRset's lines and its RRSIG lines, see :func:`~dnsseal.signfile.filesnapshot.line_groups`):

        * the records of groups whose RRSIG lines are as written and whose RRset (as the
          new zone has it: ``data`` and ``chain``) is as written: our own output, like an
          unchanged block (for ``previous``);
        * the RRSIG RDATA of groups whose RRSIG lines are as written but whose RRset is not
          (by its text written anew): our signatures over other data, which cannot fit it
          (left out instead of checked), by owner and covered type."""
        snap = self.snap
        gone = {snap.owner(j): j for j in self.match.missing}
        if not gone:
            return [], {}
        texts: list[bytes] = []  # to read: text as written, not read yet
        records: list[Record] = []
        stale: list[tuple[dns.name.Name, int, bytes, int]] = []
        old_groups: dict[int, dict[int, tuple[bytes, bytes]]] = {}
        for start, end in self.match.changed:
            region = self.buf[start:end]
            for owner, covered, s, sigs_at, e in self.groups_of.get(start, ()):  # (lanes: none)
                j = gone.get(owner)
                if j is None or not snap.cols.ngroups[j] or sigs_at == e:
                    continue
                try:
                    rtype = type_of(covered)
                except dns.exception.DNSException:
                    continue  # not a type: not our text
                row_groups = old_groups.get(j)
                if row_groups is None:
                    row_groups = old_groups[j] = snap.groups(j)
                old = row_groups.get(rtype)
                if old is None or old[1] != block_digest(region[sigs_at:e]):
                    continue  # the signatures are not (all) as written: checked as usual
                name = self.row_name(j)
                rrset = (data.rrsets.get(name) or {}).get(rtype)
                if rrset is None and name in chain and chain[name].rtype == rtype:
                    rrset = chain[name]
                if rrset is None:
                    continue  # nothing to sign any more: the signatures just go
                read = self.group_records.get(start + s)
                data_text = region[s:sigs_at]
                if data_text and old[0] == block_digest(data_text):
                    # The group as written (any other line of this type elsewhere changes
                    # the RRset: sign_rrsets compares it with the one these lines make).
                    if read is not None:
                        records += read
                    else:
                        texts.append(region[s:e])
                    continue
                rendered = ("\n".join(format_rrset(rrset, rdtext.labels_text(name.labels)))
                            + "\n").encode()  # fmt: skip
                if old[0] == block_digest(rendered):  # the RRset as written, reformatted
                    texts.append(rendered)
                    if read is not None:
                        records += [r for r in read if r[1] == T.RRSIG]
                    else:
                        texts.append(region[sigs_at:e])
                else:
                    stale.append((name, rtype, region[sigs_at:e], start + s))
        if texts:
            records += self.parse_own(b"".join(texts))
        dropped: dict[tuple[dns.name.Name, int], tuple[bytes, ...]] = {}
        for owner_name, rtype, sig_text, at in stale:
            read = self.group_records.get(at)
            sigs = read if read is not None else self.parse_own(sig_text)
            rds = tuple(rd for _, t, _, rd in sigs if t == T.RRSIG)
            dropped[(owner_name, rtype)] = dropped.get((owner_name, rtype), ()) + rds
        return records, dropped

    def parse_own(self, text: bytes) -> list[Record]:
        records = fastparse.parse(text.decode("utf-8"), self.origin, self.cache)
        if records is None:  # pragma: no cover - our own text
            raise Fallback("lines as written need the careful parser")
        return records

    def build(self, changes: Iterable[Record], rows: Iterable[int]) -> Zone:
        b = ZoneBuilder(self.origin)
        for j in sorted(rows):
            b.add_many(self.parse_row(j))
        b.add_many(changes)
        return b.build()
