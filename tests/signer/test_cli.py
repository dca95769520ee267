"""dnsseal signzone options: times, serial, NSEC3 refusals, key selection, clear errors."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import dns.rdatatype
import pytest

from conftest import Dnsseal
from dnsseal import clock
from dnsseal.keys.model import KeyTimings
from dnsseal.signer.rrsig import Rrsig
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.zone.text import format_zone, parse_zone_text

from .conftest import FEATURE_ZONE, make_key, zone_from

T = dns.rdatatype
DAY = 86400


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A key directory with a KSK and a ZSK (our own keys, BIND files) and a zone file."""
    kd = tmp_path / "keys"
    kd.mkdir()
    d = KeyDirectory(kd)
    d.create(make_key(13, ksk=True))
    d.create(make_key(13))
    src = tmp_path / "example.com"
    src.write_text(FEATURE_ZONE)
    return kd, src


def sig_times(path: Path) -> set[tuple[int, int]]:
    z = parse_zone_text(path.read_text(), "example.com.")
    return {
        (s.inception, s.expiration)
        for node in z.rrsigs.values()
        for rr in node.values()
        for s in map(Rrsig.from_wire, rr.rdatas)
    }


def test_times_serial_and_default_origin(dnsseal: Dnsseal, setup: tuple[Path, Path]) -> None:
    kd, src = setup
    out = src.with_name("out")
    before = clock.now()
    dnsseal("signzone", "-K", kd, "-S", "-q", "-f", out, "-s", "now-2h", "-e", "+10d",
            "-N", "unixtime", src)  # fmt: skip
    after = clock.now()
    times = sig_times(out)
    assert len(times) == 1
    inc, exp = times.pop()
    assert before - 2 * 3600 <= inc <= after - 2 * 3600
    assert exp == inc + 10 * DAY  # "+10d" is relative to the start time, as in BIND
    # The zone's serial 2024010101 is ahead of unixtime: it steps by one instead.
    assert parse_zone_text(out.read_text(), "example.com.").soa().serial == 2024010102
    src.write_text(FEATURE_ZONE.replace("2024010101", "7"))
    dnsseal("signzone", "-K", kd, "-S", "-q", "-f", out, "-N", "unixtime", src)
    serial = parse_zone_text(out.read_text(), "example.com.").soa().serial
    assert before <= serial <= clock.now()
    dnsseal("signzone", "-K", kd, "-S", "-q", "-a", "-f", out, "-e", "20351231", "-j", "2d",
            src)  # fmt: skip
    exps = {e for _, e in sig_times(out)}
    deadline = calendar.timegm(time.strptime("20351231", "%Y%m%d"))
    assert max(exps) <= deadline and min(exps) >= deadline - 2 * DAY and len(exps) > 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-3", "-", "-H", "5"], "RFC 9276"),
        (["-3", "-", "-H", "101", "--force-iterations"], "RFC 9276"),
        (["-3", "xyz"], "not hexadecimal"),
        (["-A"], "only meaningful with NSEC3"),
        (["-e", "tomorrow"], "-e"),
        (["-s", "now+1d", "-e", "now+1h"], "after inception"),
        (["-j", "lots"], "-j"),
        (["-e", "20991231"], "RFC 4034"),
    ],
)
def test_bad_options_are_named(dnsseal: Dnsseal, setup: tuple[Path, Path], args: list[str],
                               message: str) -> None:  # fmt: skip
    kd, src = setup
    r = dnsseal("signzone", "-K", kd, "-S", "-o", "example.com", *args, src, ok=False)
    assert r.exit_code != 0
    assert message in r.output + r.stderr


def test_forced_iterations_sign_and_verify_warns(dnsseal: Dnsseal,
                                                 setup: tuple[Path, Path]) -> None:  # fmt: skip
    kd, src = setup
    out = src.with_name("forced")
    dnsseal("signzone", "-K", kd, "-S", "-q", "-f", out, "-3", "ab", "-H", "3",
            "--force-iterations", src)  # fmt: skip
    r = dnsseal("verify", "-o", "example.com", out, ok=False)
    assert r.exit_code == 2 and "NSEC3_ITERATIONS" in r.output and "NSEC3_SALT" in r.output


def test_without_s_uses_keys_whose_dnskey_is_in_the_zone(
    dnsseal: Dnsseal, setup: tuple[Path, Path]
) -> None:
    kd, src = setup
    r = dnsseal("signzone", "-K", kd, src, ok=False)
    assert r.exit_code != 0 and "no signing key" in r.output + r.stderr
    ksk, zsk = make_key(13, ksk=True), make_key(13)
    src.write_text(
        FEATURE_ZONE
        + f"@ DNSKEY {ksk.flags} 3 13 {ksk.public_key_b64()}\n"
        + f"@ DNSKEY {zsk.flags} 3 13 {zsk.public_key_b64()}\n"
    )
    dnsseal("signzone", "-K", kd, "-q", src)
    r = dnsseal("verify", "-o", "example.com", src.with_name("example.com.signed"))
    assert r.exit_code == 0


def test_smart_signing_respects_timing(dnsseal: Dnsseal, tmp_path: Path) -> None:
    now = clock.now()
    kd = tmp_path / "k"
    kd.mkdir()
    d = KeyDirectory(kd)
    d.create(make_key(13, ksk=True))
    d.create(make_key(13).with_timings(KeyTimings(publish=now - DAY, activate=now - DAY)))
    # A pre-published successor: in the DNSKEY RRset, not signing.
    d.create(make_key(13, n=1).with_timings(KeyTimings(publish=now - 60, activate=now + DAY)))
    # A deleted key: gone from the zone.
    d.create(make_key(13, n=2).with_timings(KeyTimings(publish=now - 9 * DAY,
                                                       delete=now - DAY)))  # fmt: skip
    src = tmp_path / "z"
    src.write_text(format_zone(zone_from()))
    dnsseal("signzone", "-o", "example.com", "-K", kd, "-S", "-q", src)
    z = parse_zone_text(src.with_name("z.signed").read_text(), "example.com.")
    dnskey = z.get(z.origin, T.DNSKEY)
    assert dnskey is not None and len(dnskey.rdatas) == 3
    signers = {
        Rrsig.from_wire(w).key_tag for node in z.rrsigs.values() for rr in node.values()
        for w in rr.rdatas
    }  # fmt: skip
    assert signers == {make_key(13, ksk=True).tag, make_key(13).tag}


def test_missing_zone_file_and_bad_zone_are_clear(dnsseal: Dnsseal, tmp_path: Path) -> None:
    r = dnsseal("signzone", "-o", "example.com", tmp_path / "nope", ok=False)
    assert r.exit_code == 1 and "nope" in r.output + r.stderr
    bad = tmp_path / "bad"
    bad.write_text("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nx A 1.2.3\n")
    r = dnsseal("verify", "-o", "example.com", bad, ok=False)
    assert r.exit_code == 1 and str(bad) in r.output + r.stderr
