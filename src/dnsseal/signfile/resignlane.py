"""The common edit, done without reading the rest of its block: a block of a signed file
whose lines are all still in dnsseal's form, where only the data of some RRsets changed.

The fast re-sign (:mod:`dnsseal.signfile.resign`) reads a changed block whole: every record
parsed, every RRset through the signing step, the block formatted anew.  For an edit like
"this host's address changes" that is five or six RRsets for one.  A *lane* is such a block
taken group by group (an RRset's lines and its RRSIG lines, see
:func:`~dnsseal.signfile.filesnapshot.line_groups`), each compared with the snapshot's digests:

* a group as written is copied as it is (its RRset is the one signed, its signatures are
  ours and not due);
* a group whose RRSIG lines are as written but whose RRset's lines are not has its RRset
  read; written anew by the formatter it is either as written (the signatures stay) or not
  (they are ours over other data: the RRset is signed again).

The block keeps its types, so neither its name's place in the zone nor the chain changes.
:func:`find_lanes` only takes blocks where that holds for certain (the caller checks what
needs the whole zone: that no other text names the owner, that the chain plan does not
touch the block, that the name is authoritative) and everything else goes the general way.
Pure: bytes in, bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import dns.exception
import dns.rdatatype

from dnsseal.signfile.blockmatch import BlockMatch
from dnsseal.signfile.filesnapshot import Snapshot, block_digest, line_groups, type_of

T = dns.rdatatype
# Types a lane does not take: the apex's, a zone cut's, a DNAME (they change more than
# their RRset), and the signer's own.
_NOT_IN_LANES = frozenset({T.SOA, T.DNSKEY, T.CDS, T.CDNSKEY, T.NS, T.DS, T.DNAME,
                           T.NSEC3, T.NSEC3PARAM, T.RRSIG})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Group:
    """One group of lines of a lane, with offsets into the lane's ``text``; ``changed``:
    its RRset's lines are not as written (its RRSIG lines are)."""

    rtype: int
    start: int
    sigs_at: int
    end: int
    changed: bool
    old_data: bytes  # the snapshot's digest of the RRset's lines


@dataclass(frozen=True, slots=True)
class Lane:
    """A changed block taken group by group: its ``row`` in the snapshot, the offset of
    its text in the file (``at``), the text, the owner as written, its groups in order."""

    row: int
    at: int
    text: bytes
    owner: bytes
    groups: tuple[Group, ...]

    def signatures(self) -> int:
        """The RRSIG records of the block as it is in the file."""
        return self.text.count(b"\tRRSIG\t")


def find_lanes(buf: bytes, snap: Snapshot, match: BlockMatch, now: int,
               refresh: int) -> dict[int, Lane]:  # fmt: skip
    """The changed regions of ``buf`` that are lanes, by row (see the module docstring):
    the whole region is the lines, in dnsseal's form and order, of one owner whose block is
    gone from the file (``match.missing``), each group with the snapshot's RRSIG lines and
    with data lines, the types those of the row (none of :data:`_NOT_IN_LANES`), the row
    signed and not due for refresh (``now``, ``refresh``), NSEC records as written."""
    gone = {snap.owner(j): j for j in match.missing}
    if not gone:
        return {}
    cols = snap.cols
    regions = []
    count: dict[bytes, int] = {}
    for start, end in match.changed:
        region = buf[start:end]
        groups = list(line_groups(region))
        for owner in {g[0] for g in groups}:
            count[owner] = count.get(owner, 0) + 1
        regions.append((start, region, groups))
    lanes: dict[int, Lane] = {}
    for start, region, groups in regions:
        if not groups or groups[0][2] != 0 or groups[-1][4] != len(region):
            continue
        owner = groups[0][0]
        if count[owner] != 1 or any(g[0] != owner for g in groups):
            continue  # another owner here, or this one in another region too
        if any(a[4] != b[2] for a, b in pairwise(groups)):
            continue  # a line not in dnsseal's form between groups
        j = gone.get(owner, 0)
        if (
            j <= 0
            or snap.is_chain_row(j)
            or not cols.ngroups[j]
            or not cols.sigs[j]
            or cols.min_exp[j] - now <= refresh
            or cols.max_inc[j] > now
        ):
            continue
        lane = _lane(j, start, region, owner, groups, snap)
        if lane is not None:
            lanes[j] = lane
    return lanes


def _lane(row: int, at: int, text: bytes, owner: bytes,
          groups: Sequence[tuple[bytes, bytes, int, int, int]],
          snap: Snapshot) -> Lane | None:  # fmt: skip
    old = snap.groups(row)
    out: list[Group] = []
    last = -1
    for _, covered, start, sigs_at, end in groups:
        try:
            rtype = type_of(covered)
        except dns.exception.DNSException:
            return None
        before = old.get(rtype)
        if (
            before is None
            or rtype <= last  # the formatter's order (no SOA, DNSKEY, NS here: by number)
            or rtype in _NOT_IN_LANES
            or sigs_at in (start, end)  # no data lines (the RRset may be gone), no RRSIGs
            or before[1] != block_digest(text[sigs_at:end])
        ):
            return None
        changed = before[0] != block_digest(text[start:sigs_at])
        if changed and rtype == T.NSEC:
            return None  # the chain record is the signer's: an edited one is not a lane
        out.append(Group(rtype, start, sigs_at, end, changed, before[0]))
        last = rtype
    if {g.rtype for g in out} != set(old) or not any(g.changed for g in out):
        return None
    return Lane(row, at, text, owner, tuple(out))
