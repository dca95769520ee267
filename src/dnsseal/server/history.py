"""Zone history in the journal (SQLite in the state directory): IXFR survives restarts.

Every version the server loads is recorded as a change (records removed, records added,
in presentation format) from the journal's current version, so a secondary that was at a
serial we served before a restart still gets an IXFR.  Only the main process writes; worker
processes read.  The journal is opened per operation: loads run in worker threads and a
SQLite connection belongs to the thread that made it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsseal.errors import DnssealError
from dnsseal.proto.snapshot import SOA, ZoneSnapshot
from dnsseal.proto.xfr import Record, Retained, WireRecord, group_records, version_step
from dnsseal.storage.journal import Journal, Transaction
from dnsseal.zone.rdtext import labels_text
from dnsseal.zone.rrtext import rrset_wire_lines

log = logging.getLogger(__name__)

# Past this many changes the journal is rebased on the current version (its older history,
# and IXFR from it, is dropped): one full copy plus a bounded tail.
MAX_CHANGES = 100


def record_lines(snap: ZoneSnapshot) -> set[str]:
    """Every record of ``snap`` as one presentation line with absolute names (dnspython's
    text), read from the snapshot's stored wire: no RRset or Rdata object is made or left
    in the snapshot (reading its LazyRRsets would keep a big zone's records parsed)."""
    out: set[str] = set()
    owner: dns.name.Name | None = None
    owner_text, owner_len = "", 0
    for name, wire in snap.record_wires():
        if name is not owner:
            owner = name
            owner_text = labels_text(name.labels)
            owner_len = sum(len(label) + 1 for label in name.labels)
        out.update(rrset_wire_lines(owner_text, owner_len, wire))
    return out


# A version whose change must be computed (:func:`~dnsseal.proto.xfr.version_diff`, records
# parsed) is kept as a step only for zones up to this many names; a bigger one stays whole.
STEP_NAMES = 2000


def retain(
    kept: tuple[Retained, ...],
    old: ZoneSnapshot,
    new: ZoneSnapshot,
    change: tuple[Iterable[WireRecord], Iterable[WireRecord]] | None = None,
) -> tuple[Retained, ...]:
    """The IXFR history ``kept`` once ``new`` replaces ``old`` (trim it to the versions
    to keep): ``old`` goes in as the step to ``new`` (a few KiB, where ``old`` whole is
    about 20 KiB for a small zone: a re-sign shares no node with ``new``), its change
    given (``change``: removed, added records, SOAs included) or computed for a small
    zone; a big zone's version without its change stays whole.  A whole entry just
    before a step becomes a step itself (from it to ``old``): IXFR needs each entry's
    successor whole, or its change."""
    small = len(old.nodes) + len(old.nsec3_nodes) <= STEP_NAMES
    if change is None and not small:
        return (*kept, old)
    if kept and isinstance(kept[-1], ZoneSnapshot):
        if not small:
            return (*kept, old)
        kept = (*kept[:-1], version_step(kept[-1], old))
    return (*kept, version_step(old, new, change))


def _parse(line: str) -> Record:
    name, ttl, rdclass, rtype, rdata = line.split(None, 4)
    rrset = dns.rrset.from_text(name, int(ttl), rdclass, rtype, rdata)
    return (rrset.name, rrset.ttl, int(rrset.covers), rrset[0])


class JournalHistory:
    """Records loaded versions in ``state_dir``'s journal and answers IXFR from it."""

    def __init__(self, state_dir: Path, writer: bool) -> None:
        self.state_dir = state_dir
        self.writer = writer

    def record(self, snap: ZoneSnapshot, now: int) -> None:
        """Append the change from the journal's current version to ``snap`` (or store
        ``snap`` as the base when the journal does not know the zone yet)."""
        if not self.writer:
            return
        zone = snap.origin.to_text()
        with Journal(self.state_dir) as j:
            current = j.current_serial(zone)
            if current == snap.serial:
                return  # (a restart: the zone's records are not read, nor its pages touched)
            lines = record_lines(snap)
            if current is None:
                j.set_base(zone, snap.serial, sorted(lines), now)
                return
            replayed = j.replay(zone)
            assert replayed is not None
            old = replayed[1]
            removed, added = sorted(old - lines), sorted(lines - old)
            j.append(
                Transaction(zone, current, snap.serial, now, "reload", tuple(removed), tuple(added))
            )
            if j.transaction_count(zone) > MAX_CHANGES:
                j.set_base(zone, snap.serial, sorted(lines), now)
        log.info("[%s] journal: serial %d -> %d recorded", zone, current, snap.serial)

    def ixfr(self, snap: ZoneSnapshot, client_serial: int) -> list[dns.rrset.RRset] | None:
        """The IXFR body from ``client_serial`` to ``snap`` from the journal, or None."""
        zone = snap.origin.to_text()
        try:
            with Journal(self.state_dir) as j:
                changes = j.since(zone, client_serial)
        except DnssealError as e:
            log.warning("[%s] journal unreadable: %s", zone, e)
            return None
        if not changes or changes[-1].serial_to != snap.serial:
            return None
        soa_now = snap.apex.rrsets[SOA]
        body: list[dns.rrset.RRset] = [soa_now]
        for change in changes:
            for lines in (change.removed, change.added):
                records = [_parse(line) for line in lines]
                soa = [r for r in records if r[3].rdtype == SOA and r[0] == snap.origin]
                if len(soa) != 1:
                    return None  # every step of an IXFR starts with exactly one SOA
                body += group_records(soa) + group_records(r for r in records if r not in soa)
        body.append(soa_now)
        log.info("[%s] IXFR from serial %d served from the journal", zone, client_serial)
        return body
