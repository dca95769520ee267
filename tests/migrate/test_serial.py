"""The first serial dnsseal serves for a zone taken over from BIND continues from the
highest serial BIND served (its signed file, its journals), never from the source's."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from conftest import run_tool
from dnsseal.policy.build import lookup
from dnsseal.server.inline import InlineZone
from dnsseal.storage import bindserial

from .bindsetup import SERIAL, zone_text

NOW = 1_800_000_000
ZONE = "alpha.test."


def _journal(path: Path, begin: int, end: int) -> None:
    """A BIND journal header (lib/dns/journal.c: magic, begin, end) without transactions
    past it: all :mod:`bindserial` reads."""
    path.write_bytes(b";BIND LOG V9.2\n\x00" + struct.pack(">IIII", begin, 0, end, 0) + bytes(32))


def _signed_text(path: Path, serial: int) -> None:
    path.write_text(zone_text(ZONE, serial))


def _served(d: Path) -> int:
    z = InlineZone(ZONE, d / "zone", lookup("default", {}), d / "keys", d / "state")
    v = z.maintain(NOW)
    assert v is not None
    return v.zone.soa().serial


@pytest.fixture
def d(tmp_path: Path) -> Path:
    (tmp_path / "zone").write_text(zone_text(ZONE, SERIAL))
    (tmp_path / "state").mkdir()
    return tmp_path


def test_no_bind_files_the_source_serial_is_kept(d: Path) -> None:
    assert _served(d) == SERIAL


def test_continues_after_the_signed_journal(d: Path) -> None:
    # The case: the source says ...01, BIND served ...05 (journal ahead of .signed).
    _signed_text(d / "zone.signed", SERIAL + 2)
    _journal(d / "zone.signed.jnl", SERIAL + 2, SERIAL + 4)
    assert _served(d) == SERIAL + 5


def test_continues_after_the_unsigned_journal(d: Path) -> None:
    _journal(d / "zone.jnl", SERIAL, SERIAL + 7)  # dynamic updates BIND took
    assert _served(d) == SERIAL + 8


def test_source_ahead_of_bind_wins(d: Path) -> None:
    (d / "zone").write_text(zone_text(ZONE, SERIAL + 100))
    _signed_text(d / "zone.signed", SERIAL + 2)
    assert _served(d) == SERIAL + 100


def test_same_serial_as_bind_is_stepped_past(d: Path) -> None:
    _signed_text(d / "zone.signed", SERIAL)  # BIND signed without bumping (new content)
    assert _served(d) == SERIAL + 1


def test_restored_journal_behind_bind_is_not_served_again(d: Path) -> None:
    # dnsseal served ...02, then BIND took over again and served ...09, now dnsseal again.
    first = InlineZone(ZONE, d / "zone", lookup("default", {}), d / "keys", d / "state")
    v = first.maintain(NOW)
    assert v is not None and v.zone.soa().serial == SERIAL
    again = InlineZone(ZONE, d / "zone", lookup("default", {}), d / "keys", d / "state")
    again.signed = v.zone
    again.unsigned = first.unsigned
    again.file_copy = first.file_copy
    _journal(d / "zone.signed.jnl", SERIAL + 3, SERIAL + 9)
    v2 = again.maintain(NOW + 60)
    assert v2 is not None, "the restored version (older than BIND's) was kept"
    assert v2.zone.soa().serial == SERIAL + 10


@pytest.mark.interop
def test_raw_signed_file_written_by_bind_tools(d: Path) -> None:
    # BIND's default for inline signing is the raw format; named-compilezone writes it.
    text = d / "signed.txt"
    _signed_text(text, SERIAL + 41)
    run_tool(["named-compilezone", "-F", "raw", "-o", d / "zone.signed", ZONE, text])
    assert bindserial.bind_serials(d / "zone", ZONE) == {d / "zone.signed": SERIAL + 41}
    assert _served(d) == SERIAL + 42


def test_broken_leftovers_are_ignored(d: Path) -> None:
    (d / "zone.signed").write_bytes(b"\x00\x00\x00\x02\x00\x00\x00\x01garbage")
    (d / "zone.signed.jnl").write_bytes(b"not a journal")
    assert bindserial.bind_serials(d / "zone", ZONE) == {}
    assert _served(d) == SERIAL


def test_highest_is_rfc1982() -> None:
    assert bindserial.highest([]) is None
    assert bindserial.highest([5, 2**32 - 10, 7]) == 7  # 7 is after the wrap
    assert bindserial.highest([1, 3, 2]) == 3


@pytest.mark.parametrize(
    ("method", "source", "bind", "expected"),
    [
        ("increment", SERIAL, SERIAL + 4, SERIAL + 5),
        ("unixtime", NOW - 5000, NOW - 1000, NOW),  # unixtime serials: the clock is ahead
        ("unixtime", SERIAL, SERIAL + 4, SERIAL + 5),  # the clock is behind: step by one
        ("date", SERIAL, SERIAL + 4, 2027011500),  # NOW is 2027-01-15: YYYYMMDD00
    ],
)
def test_serial_update_method_after_bind(
    d: Path, method: str, source: int, bind: int, expected: int
) -> None:
    (d / "zone").write_text(zone_text(ZONE, source))
    _journal(d / "zone.signed.jnl", bind - 1, bind)
    z = InlineZone(ZONE, d / "zone", lookup("default", {}), d / "keys", d / "state",
                   serial_method=method)  # fmt: skip
    v = z.maintain(NOW)
    assert v is not None and v.zone.soa().serial == expected
    # and every later version follows the same method, never going back
    later = z.maintain(NOW + 86400 * 40, force=True)
    assert later is not None and later.zone.soa().serial > expected


def test_unixtime_behind_bind_steps_by_one(d: Path) -> None:
    (d / "zone").write_text(zone_text(ZONE, NOW - 5000))
    _journal(d / "zone.signed.jnl", NOW + 10, NOW + 500)  # BIND's clock ran ahead
    z = InlineZone(ZONE, d / "zone", lookup("default", {}), d / "keys", d / "state",
                   serial_method="unixtime")  # fmt: skip
    v = z.maintain(NOW)
    assert v is not None and v.zone.soa().serial == NOW + 501


@pytest.mark.interop
def test_source_signed_in_place_by_bind_is_stepped_past(d: Path) -> None:
    # BIND with inline-signing no (a dynamic zone) signs its file in place: the file's
    # serial is the one it served, with its own signatures.
    run_tool(["dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", "-f", "KSK", ZONE])
    zone = d / "zone"
    run_tool(["dnssec-signzone", "-q", "-z", "-K", d, "-S", "-o", ZONE, "-f", zone, zone], cwd=d)
    assert "RRSIG" in (d / "zone").read_text()
    assert _served(d) == SERIAL + 1


def test_text_signed_file_forms(tmp_path: Path) -> None:
    src = tmp_path / "z"
    forms = {
        "rrsig first": "a.test. 60 IN RRSIG SOA 13 2 300 20270101000000 20261201000000 1 "
        "a.test. AAAA\na.test. 60 IN SOA ns hm 77 1 2 3 4\n",
        "parenthesis": "$ORIGIN a.test.\n@ IN SOA ns hm ( ; comment\n  78 ; serial\n 1 2 3 4 )\n",
        "bind dump": "a.test.\t\t\t      300 IN SOA\tns1.a.test. hm.a.test. 79 60 30 600 2\n",
    }
    for i, (what, text) in enumerate(forms.items()):
        Path(f"{src}.signed").write_text(text)
        assert bindserial.bind_serials(src, "a.test.") == {Path(f"{src}.signed"): 77 + i}, what
