"""The SQLite zone journal and audit log: history, IXFR ranges, replay, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dnsseal.errors import StorageError
from dnsseal.storage.journal import AuditEvent, Journal, Transaction

BASE = ("example. 300 IN SOA ns.example. h.example. 1 3600 600 86400 300",
        "example. 300 IN NS ns.example.", "ns.example. 300 IN A 192.0.2.1")  # fmt: skip


def _soa(serial: int) -> str:
    return f"example. 300 IN SOA ns.example. h.example. {serial} 3600 600 86400 300"


def _change(j: Journal, old: int, new: int, added: tuple[str, ...] = (), removed=()) -> None:
    j.append(
        Transaction(
            "example.", old, new, 1000 + new, "update", (_soa(old), *removed), (_soa(new), *added)
        )
    )


def test_history_ixfr_ranges_and_replay(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        j.set_base("example.", 1, BASE, 1000)
        _change(j, 1, 2, ("www.example. 300 IN A 192.0.2.80",))
        _change(
            j, 2, 3, ("mail.example. 300 IN A 192.0.2.25",), ("www.example. 300 IN A 192.0.2.80",)
        )
        assert j.current_serial("EXAMPLE") == 3
        assert [t.serial_to for t in j.since("example.", 1) or []] == [2, 3]
        assert [t.serial_to for t in j.since("example.", 2) or []] == [3]
        assert j.since("example.", 3) == []
        assert j.since("example.", 7) is None  # not in history: AXFR
        serial, records = j.replay("example.") or (0, set())
    assert serial == 3
    assert records == {_soa(3), BASE[1], BASE[2], "mail.example. 300 IN A 192.0.2.25"}
    # Everything survives a reopen.
    with Journal(tmp_path) as j:
        assert j.replay("example.") == (serial, records)
        assert j.transactions("example.")[0].origin == "update"


def test_changes_must_follow_the_history(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        with pytest.raises(StorageError, match="no base version"):
            _change(j, 1, 2)
        j.set_base("example.", 5, BASE, 1000)
        with pytest.raises(StorageError, match="does not follow 5"):
            _change(j, 4, 6)
        _change(j, 5, 6)
        j.set_base("example.", 6, BASE, 2000)  # compaction drops superseded history
        assert j.transactions("example.") == []
        assert j.since("example.", 5) is None


def test_audit_log(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        for i in range(5):
            j.audit(AuditEvent(100 + i, "example.", f"13+{i}", "published", f"key {i} published"))
        j.audit(AuditEvent(200, "other.", "13+9", "created", "x"))
        events = j.audit_log("example", limit=3)
    assert [e.key for e in events] == ["13+2", "13+3", "13+4"]
    assert events[-1].message == "key 4 published"


def test_corrupt_journal_names_the_file(tmp_path: Path) -> None:
    (tmp_path / Journal.FILENAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=r"journal\.sqlite"):
        Journal(tmp_path)


WRITER = textwrap.dedent(
    """
    import sys
    from dnsseal.storage.journal import Journal, Transaction
    soa = lambda s: f"example. 300 IN SOA ns.example. h.example. {s} 3600 600 86400 300"
    j = Journal(sys.argv[1])
    j.set_base("example.", 0, [soa(0)], 0)
    s = 0
    while True:
        j.append(Transaction("example.", s, s + 1, s, "update", (soa(s),),
                             (soa(s + 1), f"h{s + 1}.example. 300 IN A 192.0.2.1")))
        s += 1
        print(s, flush=True)  # the acknowledgement: sent only after the commit returned
    """
)


def test_kill_9_loses_no_acknowledged_change(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    acked = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked = int(line)
            if acked >= 150:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with Journal(tmp_path) as j:
        serial, records = j.replay("example.") or (0, set())
    assert serial >= acked
    for s in range(1, acked + 1):
        assert f"h{s}.example. 300 IN A 192.0.2.1" in records


def test_a_batch_is_one_transaction(tmp_path: Path) -> None:
    """Writes inside ``batch()`` commit together, or not at all."""
    with Journal(tmp_path) as j:
        with j.batch():
            j.set_base("example.", 1, BASE, 1000)
            _change(j, 1, 2)
            j.audit(AuditEvent(1000, "example.", "-", "keymgr", "one"))
        assert j.current_serial("example.") == 2 and j.transaction_count("example.") == 1
        with pytest.raises(StorageError, match="does not follow"), j.batch():
            _change(j, 2, 3)
            j.audit(AuditEvent(1001, "example.", "-", "keymgr", "two"))
            _change(j, 7, 8)  # fails: the whole batch is rolled back
        assert j.current_serial("example.") == 2
        assert [e.message for e in j.audit_log()] == ["one"]
        _change(j, 2, 3)  # outside a batch: committed on its own, as before
    with Journal(tmp_path) as j:
        assert j.current_serial("example.") == 3 and j.transaction_count("example.") == 2


def test_a_packed_version_is_only_ever_the_current_one(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        j.set_base("example.", 1, BASE, 1000)
        assert not j.set_packed("example.", 7, b"other")  # not the current serial
        assert j.packed("example.") is None
        assert j.set_packed("example.", 1, b"one")
        assert j.packed("EXAMPLE") == (1, b"one")
        _change(j, 1, 2)  # any change of the history drops it
        assert j.packed("example.") is None
        assert j.set_packed("example.", 2, b"two")
        j.set_base("example.", 3, BASE, 1001)
        assert j.packed("example.") is None
        assert j.set_packed("example.", 3, b"three")
    # An older dnsseal knows nothing of it: its plain SQL writes drop it too (triggers).
    import sqlite3

    db = sqlite3.connect(tmp_path / Journal.FILENAME)
    with db:
        db.execute(
            "INSERT INTO txn (zone, serial_from, serial_to, time, origin, removed, added)"
            " VALUES ('example.', 3, 4, 1002, 'update', '', '')"
        )
    db.close()
    with Journal(tmp_path) as j:
        assert j.current_serial("example.") == 4 and j.packed("example.") is None
