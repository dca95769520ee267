"""When the journal is rebased: an UPDATE's commit never writes the whole zone (a 100k-name
zone's text takes seconds); the rebase it puts off is done by the zone's delayed copy
write (:func:`zonehandle.compact`), and a bound holds however long that is put off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dnsseal.server import zonehandle
from dnsseal.server.versions import Version
from dnsseal.server.zonehandle import MAX_CHANGES, MAX_UPDATE_CHANGES, compact, journal_version
from dnsseal.storage.journal import Journal
from dnsseal.zone.diff import diff
from dnsseal.zone.model import Zone
from dnsseal.zone.text import parse_zone_text

ORIGIN = "example.com."


def zone(serial: int) -> Zone:
    return parse_zone_text(
        f"@ 300 IN SOA ns hostmaster {serial} 3600 600 86400 300\n"
        "@ 300 IN NS ns\n"
        "ns 300 IN A 192.0.2.1\n"
        f"h{serial} 300 IN A 192.0.2.2\n",
        ORIGIN,
    )


def commit(j: Journal, serial: int, reason: str) -> None:
    before, after = zone(serial - 1), zone(serial)
    journal_version(j, Version(after, diff(before, after), serial - 1, reason), 1000 + serial)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path) as j:
        journal_version(j, Version(zone(1), diff(zone(1), zone(1)), None, "load"), 1000)
        yield j


def test_updates_leave_the_rebase_to_the_delayed_copy_write(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zonehandle, "MAX_UPDATE_CHANGES", 3 * MAX_CHANGES)
    serial = 1
    for _ in range(MAX_CHANGES + 20):
        serial += 1
        commit(journal, serial, "update")
    # Past MAX_CHANGES: still appended, no base written in the commit.
    assert journal.transaction_count(ORIGIN) == MAX_CHANGES + 20
    base = journal.base(ORIGIN)
    assert base is not None and base.serial == 1
    # Not the journal's current version: nothing is rebased on it.
    assert not compact(journal, zone(serial - 1), 5000)
    assert compact(journal, zone(serial), 5000)
    base = journal.base(ORIGIN)
    assert base is not None and base.serial == serial
    assert journal.transaction_count(ORIGIN) == 0
    assert not compact(journal, zone(serial), 5001)  # (nothing to do now)


def test_the_update_bound_holds_when_no_copy_is_written(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zonehandle, "MAX_UPDATE_CHANGES", MAX_CHANGES + 10)
    serial = 1
    for _ in range(MAX_CHANGES + 11):
        serial += 1
        commit(journal, serial, "update")
    assert journal.transaction_count(ORIGIN) == 0
    base = journal.base(ORIGIN)
    assert base is not None and base.serial == serial
    assert MAX_UPDATE_CHANGES > MAX_CHANGES  # the real bound puts UPDATEs' rebases off


def test_other_versions_rebase_in_their_commit(journal: Journal) -> None:
    serial = 1
    for _ in range(MAX_CHANGES + 1):
        serial += 1
        commit(journal, serial, "maintenance")
    assert journal.transaction_count(ORIGIN) == 0
    base = journal.base(ORIGIN)
    assert base is not None and base.serial == serial
