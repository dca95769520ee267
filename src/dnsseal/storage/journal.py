"""The zone journal and the key-event audit log, in SQLite in the state directory.

The journal keeps, per zone, a base version and every change after it as one transaction
(serial from, serial to, records removed, records added).  It serves three purposes:

* IXFR after a restart: the differences from a secondary's serial to the current one;
* crash safety: a change is committed here (fsync'd, ``synchronous=FULL``) *before* the
  server answers the update or serves the new version, so ``kill -9`` at any moment loses
  nothing that was acknowledged; replaying base + transactions rebuilds the zone;
* history people can read: records are stored in presentation format, one per line.

Beside the history, a zone's current version may also be stored packed (an opaque blob the
caller makes: :meth:`Journal.set_packed`), so a restart need not parse its text.  Triggers
in the database delete it whenever the zone's base or history changes (whoever writes, an
older dnsseal too): a packed version found is always the current one.

The audit log records, one row each, with the zone (empty for the server as a whole), the key
(``-`` for none) and a sentence: key events (created, every record state transition, purged,
DS seen / withdrawn, as the key manager reports them: event ``keymgr``), operator commands
(``operator``, naming who), configuration reloads (``reload``), signing-policy changes
(``policy``) and alerts raised and cleared (``alert``).

Records are RFC 1035 presentation lines with absolute names (``www.example. 300 IN A
192.0.2.1``); converting to and from zone objects is the caller's business.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dnsseal.errors import StorageError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS base (
    zone TEXT PRIMARY KEY,
    serial INTEGER NOT NULL,
    time INTEGER NOT NULL,
    records TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS txn (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    zone TEXT NOT NULL,
    serial_from INTEGER NOT NULL,
    serial_to INTEGER NOT NULL,
    time INTEGER NOT NULL,
    origin TEXT NOT NULL,
    removed TEXT NOT NULL,
    added TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS txn_zone ON txn (zone, id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    zone TEXT NOT NULL,
    key TEXT NOT NULL,
    event TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_zone ON audit (zone, id);
CREATE TABLE IF NOT EXISTS packed (
    zone TEXT PRIMARY KEY,
    serial INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS packed_base_in AFTER INSERT ON base
    BEGIN DELETE FROM packed WHERE zone = NEW.zone; END;
CREATE TRIGGER IF NOT EXISTS packed_base_out AFTER DELETE ON base
    BEGIN DELETE FROM packed WHERE zone = OLD.zone; END;
CREATE TRIGGER IF NOT EXISTS packed_txn_in AFTER INSERT ON txn
    BEGIN DELETE FROM packed WHERE zone = NEW.zone; END;
"""


@dataclass(frozen=True, slots=True)
class Transaction:
    """One committed change of a zone."""

    zone: str
    serial_from: int
    serial_to: int
    time: int
    origin: str  # "update", "reload", "resign", "keymgr", "transfer", ...
    removed: tuple[str, ...]
    added: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Base:
    zone: str
    serial: int
    time: int
    records: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    time: int
    zone: str
    key: str
    event: str
    message: str


def _lines(records: Sequence[str]) -> str:
    for r in records:
        if "\n" in r:
            raise ValueError(f"record text must be one line: {r!r}")
    return "\n".join(records)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split("\n")) if text else ()


def _zone_key(zone: str) -> str:
    z = zone.lower()
    return z if z.endswith(".") else z + "."


def _set_wal(db: sqlite3.Connection) -> None:
    """Switch a connection to WAL.  Several openers of a new file at once (the server's
    threads at startup) may find it locked: SQLite does not wait on its busy timeout for
    this pragma, so wait here (30 s, as for every other statement)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Journal:
    """The journal and audit log of one state directory (``journal.sqlite``)."""

    FILENAME = "journal.sqlite"

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / self.FILENAME
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            _set_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise StorageError(
                    str(self.path), f"journal schema {row[0]}, this dnsseal reads {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as e:
            raise StorageError(str(self.path), f"cannot open journal: {e}") from None
        self._in_batch = False

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every write made inside (zones' versions and audit events
        at a start: one commit, so one fsync, for many zones instead of one each).  All
        or nothing: an error inside rolls every write of the batch back and is raised
        (StorageError for the journal's own)."""
        if self._in_batch:
            raise RuntimeError("journal batches do not nest")
        with self._txn():
            self._in_batch = True
            try:
                yield
            finally:
                self._in_batch = False

    @contextlib.contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        if self._in_batch:  # part of the batch's transaction: committed with it
            yield self._db
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise StorageError(str(self.path), f"journal write failed: {e}") from None

    # ------------------------------------------------------------------ zone history

    def set_base(self, zone: str, serial: int, records: Sequence[str], now: int) -> None:
        """Store a full version of ``zone`` and drop the transactions it supersedes.

        Used on first load and to compact the history (the caller decides how much IXFR
        history to keep by choosing when to rebase).
        """
        z = _zone_key(zone)
        with self._txn() as db:
            db.execute(
                "INSERT OR REPLACE INTO base (zone, serial, time, records) VALUES (?, ?, ?, ?)",
                (z, serial, now, _lines(records)),
            )
            db.execute("DELETE FROM txn WHERE zone = ?", (z,))

    def append(self, txn: Transaction) -> None:
        """Commit one change durably.  It must continue the zone's history: its
        ``serial_from`` is the serial of the last transaction (or of the base)."""
        z = _zone_key(txn.zone)
        with self._txn() as db:
            current = self._current_serial(db, z)
            if current is None:
                raise StorageError(str(self.path), f"{z}: no base version in the journal")
            if current != txn.serial_from:
                raise StorageError(
                    str(self.path),
                    f"{z}: change from serial {txn.serial_from} does not follow {current}",
                )
            db.execute(
                "INSERT INTO txn (zone, serial_from, serial_to, time, origin, removed, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    z,
                    txn.serial_from,
                    txn.serial_to,
                    txn.time,
                    txn.origin,
                    _lines(txn.removed),
                    _lines(txn.added),
                ),
            )

    @staticmethod
    def _current_serial(db: sqlite3.Connection, zone: str) -> int | None:
        row = db.execute(
            "SELECT serial_to FROM txn WHERE zone = ? ORDER BY id DESC LIMIT 1", (zone,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        row = db.execute("SELECT serial FROM base WHERE zone = ?", (zone,)).fetchone()
        return None if row is None else int(row[0])

    def current_serial(self, zone: str) -> int | None:
        return self._current_serial(self._db, _zone_key(zone))

    def transaction_count(self, zone: str) -> int:
        """How many changes follow the base (without reading them)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM txn WHERE zone = ?", (_zone_key(zone),)
        ).fetchone()
        return int(row[0])

    def base(self, zone: str) -> Base | None:
        row = self._db.execute(
            "SELECT zone, serial, time, records FROM base WHERE zone = ?", (_zone_key(zone),)
        ).fetchone()
        return None if row is None else Base(row[0], row[1], row[2], _split(row[3]))

    def transactions(self, zone: str) -> list[Transaction]:
        """Every change after the base, oldest first."""
        rows = self._db.execute(
            "SELECT zone, serial_from, serial_to, time, origin, removed, added FROM txn"
            " WHERE zone = ? ORDER BY id",
            (_zone_key(zone),),
        ).fetchall()
        return [Transaction(r[0], r[1], r[2], r[3], r[4], _split(r[5]), _split(r[6])) for r in rows]

    def since(self, zone: str, serial: int) -> list[Transaction] | None:
        """The changes from ``serial`` to the current version, for IXFR; None when the
        history does not reach back to ``serial`` (answer with AXFR instead)."""
        txns = self.transactions(zone)
        for i, t in enumerate(txns):
            if t.serial_from == serial:
                return txns[i:]
        if self.current_serial(zone) == serial:
            return []
        return None

    def replay(self, zone: str) -> tuple[int, set[str]] | None:
        """The current version rebuilt from the base and every transaction: (serial,
        records).  None when the journal knows nothing of ``zone``."""
        b = self.base(zone)
        if b is None:
            return None
        records = set(b.records)
        serial = b.serial
        for t in self.transactions(zone):
            records.difference_update(t.removed)
            records.update(t.added)
            serial = t.serial_to
        return serial, records

    def set_packed(self, zone: str, serial: int, data: bytes) -> bool:
        """Store ``data``, the zone's current version packed by the caller, when the
        journal's current serial is ``serial`` (write the version first, in the same
        transaction or before).  Any later change of the zone's history deletes it.
        Returns whether it was stored."""
        z = _zone_key(zone)
        with self._txn() as db:
            if self._current_serial(db, z) != serial:
                return False
            db.execute(
                "INSERT OR REPLACE INTO packed (zone, serial, data) VALUES (?, ?, ?)",
                (z, serial, data),
            )
        return True

    def packed(self, zone: str) -> tuple[int, bytes] | None:
        """(serial, data) of the zone's current version as :meth:`set_packed` stored it,
        or None when there is none (not stored, or the history changed since)."""
        z = _zone_key(zone)
        row = self._db.execute("SELECT serial, data FROM packed WHERE zone = ?", (z,)).fetchone()
        if row is None or self._current_serial(self._db, z) != row[0]:
            return None
        return int(row[0]), bytes(row[1])

    # -------------------------------------------------------------------- audit log

    def audit(self, event: AuditEvent) -> None:
        with self._txn() as db:
            db.execute(
                "INSERT INTO audit (time, zone, key, event, message) VALUES (?, ?, ?, ?, ?)",
                (
                    event.time,
                    _zone_key(event.zone) if event.zone else "",
                    event.key,
                    event.event,
                    event.message,
                ),
            )

    def audit_log(
        self,
        zone: str | None = None,
        limit: int = 1000,
        since: int | None = None,
        event: str | None = None,
    ) -> list[AuditEvent]:
        """The latest ``limit`` events (of ``zone``, at or after ``since``, of kind
        ``event``, each when given), oldest first."""
        where: list[str] = []
        args: list[str | int] = []
        if zone is not None:
            where.append("zone = ?")
            args.append(_zone_key(zone))
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if event is not None:
            where.append("event = ?")
            args.append(event)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT time, zone, key, event, message FROM audit{clause} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [AuditEvent(*r) for r in reversed(rows)]
