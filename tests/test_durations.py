"""Durations and BIND time specifications."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import run_tool
from dnsseal.durations import (
    UNLIMITED,
    format_bind_time,
    format_duration,
    format_human_time,
    parse_bind_time,
    parse_duration,
    parse_when,
)
from dnsseal.errors import InputError

NOW = 1_790_000_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("P1Y", 365 * 86400), ("P60D", 60 * 86400), ("PT1H", 3600), ("P2W", 14 * 86400),
        ("P1M", 31 * 86400), ("P6M", 16_070_400), ("P1Y2M", 365 * 86400 + 62 * 86400),
        ("P1DT12H", 129600), ("PT90M", 5400), ("pt5m", 300),
        ("3600", 3600), ("1h30m", 5400), ("2w", 14 * 86400), ("1d", 86400), ("0", 0),
        ("1W2D3H4M5S", 788645),
    ],
)  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "1x", "h1", "P1.5D", "-1d", "1d 2h", "P1W2D", "P1YT1W"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_duration(text)


def test_unlimited() -> None:
    assert parse_duration("unlimited", allow_unlimited=True) == UNLIMITED
    with pytest.raises(InputError, match="not allowed"):
        parse_duration("unlimited")
    assert format_duration(UNLIMITED) == "unlimited"


@given(st.integers(min_value=0, max_value=10**10))
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW), ("now+1d", NOW + 86400), ("now-1h", NOW - 3600), ("+30d", NOW + 30 * 86400),
        ("-1w", NOW - 7 * 86400), ("+1y", NOW + 365 * 86400), ("+6mo", NOW + 180 * 86400),
        ("+90mi", NOW + 5400), ("+1d12h", NOW + 129600), ("+3600", NOW + 3600),
        ("20300101", 1893456000), ("20300101000001", 1893456001), ("1893456000", 1893456000),
        ("none", None), ("NONE", None),
    ],
)  # fmt: skip
def test_parse_when(text: str, expected: int | None) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["tomorrow", "+", "+5x", "2030-01-01", "20301301", "now*2"])
def test_parse_when_rejects(text: str) -> None:
    with pytest.raises(InputError, match="bad time"):
        parse_when(text, NOW)


def test_relative_to_base() -> None:
    assert parse_when("+1d", NOW, base=100) == 100 + 86400
    assert parse_when("now+1d", NOW, base=100) == NOW + 86400


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_bind_time_round_trip(ts: int) -> None:
    assert parse_bind_time(format_bind_time(ts)) == ts


def _strptime_time(text: str) -> int | None:
    """What parse_bind_time gave with strptime (None: InputError)."""
    s = text.strip()
    if not s.isdigit() or len(s) not in (8, 14):
        return None
    try:
        return calendar.timegm(time.strptime(s + "000000" * (len(s) == 8), "%Y%m%d%H%M%S"))
    except ValueError:
        return None


@given(
    st.one_of(
        st.text(alphabet="0123456789", min_size=8, max_size=14),
        st.builds(
            "{:04d}{:02d}{:02d}{:02d}{:02d}{:02d}".format,
            st.integers(0, 9999),
            st.integers(0, 13),
            st.integers(0, 32),
            st.integers(0, 25),
            st.integers(0, 60),
            st.integers(0, 62),
        ),
        st.text(min_size=8, max_size=14),
    )
)
def test_bind_time_parses_as_strptime_did(text: str) -> None:
    """Every date strptime took (Feb 29 only in leap years, seconds up to 61) and no
    other: the same seconds, the same refusals."""
    _same_as_strptime(text)


def _same_as_strptime(text: str) -> None:
    want = _strptime_time(text)
    if want is None:
        with pytest.raises(InputError):
            parse_bind_time(text)
    else:
        assert parse_bind_time(text) == want


@pytest.mark.parametrize("text", ["20240229000000", "20230229000000", "20261231235961",
                                  "20261231235962", "20261301000000", "00000101000000",
                                  "20260101", "20260230", "2026010124"])  # fmt: skip
def test_bind_time_edges_as_strptime(text: str) -> None:
    _same_as_strptime(text)


def test_human_time_matches_bind() -> None:
    assert format_human_time(1795299361) == "Sat Nov 21 22:16:01 2026"
    assert format_human_time(1796163363) == "Tue Dec  1 22:16:03 2026"


ISO_SAMPLES = ["P6M", "P1Y", "P1Y2M3DT4H5M6S", "P5W", "PT900H", "P1M", "P13M", "P40D", "6w2d"]


@pytest.mark.interop
def test_durations_as_dnssec_keygen_counts_them(tmp_path: Path) -> None:
    """BIND's own reading of named.conf durations (a month is 31 days, a year 365): the
    Lifetime that `dnssec-keygen -k POLICY` writes into each key's .state file."""
    lines = "ksk lifetime unlimited algorithm 13;\n"
    lines += "".join(f"zsk lifetime {d} algorithm 13;\n" for d in ISO_SAMPLES)
    conf = tmp_path / "p.conf"
    conf.write_text(f'dnssec-policy "p" {{ keys {{\n{lines}}}; }};\n')
    run_tool(["dnssec-keygen", "-q", "-K", tmp_path, "-k", "p", "-l", conf, "example"])
    theirs = sorted(
        int(line.split()[1])
        for f in tmp_path.glob("*.state")
        for line in f.read_text().splitlines()
        if line.startswith("Lifetime:") and line.split()[1] != "0"
    )
    assert theirs == sorted(parse_duration(d) for d in ISO_SAMPLES)


def test_offsets_count_months_as_30_days() -> None:
    # dnssec-settime "+1mo" (bin/dnssec/dnssectool.c) is 30 days, unlike named.conf's P1M
    assert parse_when("+1mo", NOW) == NOW + 30 * 86400
