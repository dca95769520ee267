"""Catalog zones (RFC 9432): the ``[catalog."NAME"]`` table, the zone dnsseal writes for
it and its serial across changes and restarts.  The real consumers (Knot, BIND) are in
test_catalog_interop.py."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
import tomllib
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from conftest import free_port, stop, wait_for_dns
from dnsseal.errors import OptionError
from dnsseal.server.catalog import catalog_path, catalog_text, member_id, write_catalog
from dnsseal.storage.catalogconfig import CatalogConfig
from dnsseal.storage.remotes import Endpoint
from dnsseal.storage.serverconfig import ServerConfig, parse_config

from .conftest import DNSSEAL, sign_zone

KEY = 'secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="'
BASE = f"""
[server]
state-dir = "state"

[key.xfr]
{KEY}
[key.other]
{KEY}

[acl]
secondaries = ["192.0.2.0/24", "key xfr"]

[zone."a.example"]
file = "a"
presigned = true
allow-transfer = ["!192.0.2.9"]

[zone."b.example"]
file = "b"
presigned = true
also-notify = ["192.0.2.53"]
"""


def config(extra: str, base: str = BASE) -> ServerConfig:
    return parse_config(tomllib.loads(base + extra), Path("/etc/dnsseal"))


def test_members_default_to_every_zone_and_inherit_transfer_and_notify() -> None:
    c = config("""
[catalog."catalog.invalid"]
allow-transfer = ["secondaries"]
also-notify = ["192.0.2.53", "192.0.2.54@5300"]
notify-key = "xfr"
groups = { signed = ["B.example."] }
""")
    (cat,) = c.catalogs
    assert cat == CatalogConfig(
        "catalog.invalid",
        ("a.example", "b.example"),
        (("b.example", "signed"),),
        ("192.0.2.0/24", "key xfr"),
        (Endpoint("192.0.2.53", 53), Endpoint("192.0.2.54", 5300)),
        "xfr",
    )
    a, b = c.zones
    # the member's own elements first: its own "!192.0.2.9" still wins
    assert a.allow_transfer == ("!192.0.2.9", "192.0.2.0/24", "key xfr")
    assert a.also_notify == cat.also_notify and a.notify_key == "xfr"
    assert b.also_notify == cat.also_notify  # no duplicate target
    assert b.allow_transfer == ("192.0.2.0/24", "key xfr")


def test_listed_members_only() -> None:
    c = config('[catalog."cat.invalid"]\nmembers = ["b.example"]\n')
    assert c.catalogs[0].members == ("b.example",)
    assert c.zones[0].allow_transfer == ("!192.0.2.9",)  # a.example is not a member
    assert c.zones[0].notify_key is None


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        ('[catalog."a.example"]\n', "catalog.\"a.example\": 'a.example' is also a [zone]"),
        ('[catalog."c.invalid"]\nmembers = ["x.example"]\n', "members[0]: 'x.example' is not"),
        ('[catalog."c.invalid"]\nmembers = "a.example"\n', "members: expected a list"),
        ('[catalog."c.invalid"]\nzones = []\n', '"c.invalid".zones: unknown option'),
        ('[catalog."c.invalid"]\nnotify-key = "nokey"\n', "notify-key: unknown TSIG key"),
        ('[catalog."c.invalid"]\nallow-transfer = ["key nokey"]\n', "unknown TSIG key 'nokey'"),
        ('[catalog."c.invalid"]\nallow-transfer = ["bogus"]\n', "[0]: 'bogus' is not an addr"),
        ('[catalog."c.invalid"]\nalso-notify = ["x@y"]\n', "also-notify[0]"),
        (
            '[catalog."c.invalid"]\nmembers = ["a.example"]\ngroups = { g = ["b.example"] }\n',
            "groups.g[0]: 'b.example' is not a member",
        ),
        (
            '[catalog."c.invalid"]\ngroups = { g = ["a.example"], h = ["a.example"] }\n',
            "already in group 'g'",
        ),
        (
            '[catalog."c.invalid"]\nalso-notify = ["192.0.2.1"]\nnotify-key = "xfr"\n'
            '[zone."c.example"]\nfile = "c"\npresigned = true\nnotify-key = "other"\n',
            "zone.\"c.example\".notify-key: 'other', but its catalog",
        ),
        ('[catalog."c.invalid"]\n[catalog."C.INVALID."]\n', "the same zone as catalog"),
    ],
)
def test_bad_catalog_tables_name_the_option(extra: str, wanted: str) -> None:
    with pytest.raises(OptionError) as e:
        config(extra)
    assert wanted in str(e.value)


def test_a_catalog_needs_a_state_dir() -> None:
    with pytest.raises(OptionError) as e:
        config('[catalog."c.invalid"]\n', BASE.replace('state-dir = "state"', ""))
    assert "needs server.state-dir" in str(e.value)


def test_catalog_zone_text_read_by_dnspython() -> None:
    cat = CatalogConfig("catalog.invalid", ("a.example", "B.Example"), (("B.Example", 'q"g'),))
    zone = dns.zone.from_text(catalog_text(cat, 7), "catalog.invalid.", relativize=False)
    origin = dns.name.from_text("catalog.invalid.")
    assert zone.get_rdataset(origin, "SOA")[0].serial == 7
    assert zone.get_rdataset(origin, "NS")[0].target == dns.name.from_text("invalid.")
    (version,) = zone.get_rdataset(dns.name.from_text("version", origin), "TXT")
    assert version.strings == (b"2",)
    zones = dns.name.from_text("zones", origin)
    ptrs = {
        name.relativize(zones).to_text(): rds[0].target.to_text()
        for name, rds in zone.iterate_rdatasets("PTR")
    }
    # unique-N: SHA-1 of the canonical (lower-case) wire name, the same however it is spelt
    ids = {hashlib.sha1(dns.name.from_text(n).to_wire()).hexdigest(): n for n in ("a.example.",
           "b.example.")}  # fmt: skip
    assert {k: v.lower() for k, v in ptrs.items()} == ids
    assert member_id("B.Example") == member_id("b.example.")
    group = zone.get_rdataset(dns.name.from_text(f"group.{member_id('b.example')}", zones), "TXT")
    assert group[0].strings == (b'q"g',)


def _server_config(tmp_path: Path, members: tuple[str, ...]) -> tuple[ServerConfig, CatalogConfig]:
    cat = CatalogConfig("catalog.invalid", members)
    return ServerConfig(listen=(), control=None, zones=(), state_dir=tmp_path, catalogs=(cat,)), cat


def test_serial_moves_only_when_members_change(tmp_path: Path) -> None:
    conf, cat = _server_config(tmp_path, ("a.example",))
    assert write_catalog(conf, cat, 1_700_000_000) == 1_700_000_000  # new: the time
    path = catalog_path(conf, cat)
    before = path.stat().st_mtime_ns
    assert write_catalog(conf, cat, 1_800_000_000) is None  # same members: untouched
    assert path.stat().st_mtime_ns == before
    conf, cat = _server_config(tmp_path, ("a.example", "b.example"))
    assert write_catalog(conf, cat, 1_800_000_000) == 1_700_000_001
    conf, cat = _server_config(tmp_path, ("b.example", "a.example"))
    assert write_catalog(conf, cat, 1_800_000_000) is None  # the order does not matter
    conf, cat = _server_config(tmp_path, ("b.example",))
    assert write_catalog(conf, cat, 5) == 1_700_000_002
    # RFC 1982 wrap: 2**32 - 1 + 1 is 0, which we skip
    path.write_text(catalog_text(CatalogConfig("catalog.invalid", ()), 2**32 - 1))
    assert write_catalog(conf, cat, 5) == 1
    # a damaged file is replaced (the time as serial), never a traceback
    path.write_text("this is not a zone\n")
    assert write_catalog(conf, cat, 42) == 42
    zone = dns.zone.from_file(str(path), "catalog.invalid.", relativize=False)
    assert zone.get_rdataset("catalog.invalid.", "SOA")[0].serial == 42


def _start(d: Path, port: int, qname: str = "catalog.invalid") -> subprocess.Popen[bytes]:
    with (d / "log").open("ab") as log:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-v", "serve", "-c", str(d / "dnsseal.toml")],
            cwd=d,
            stdout=log,
            stderr=log,
        )
    wait_for_dns(port, qname, proc)
    return proc


def _serials(port: int, n: int = 20) -> set[int]:
    q = dns.message.make_query("catalog.invalid", "SOA")
    return {
        int(dns.query.udp(q, "127.0.0.1", port=port, timeout=2).answer[0][0].serial)
        for _ in range(n)
    }


def test_workers_serve_the_catalog_and_a_restart_keeps_its_serial(tmp_path: Path) -> None:
    """Two processes share the port (each answers some queries): both serve the catalog
    the main process wrote before forking, and a restart with the same zones keeps its
    serial (secondaries transfer nothing); after a reload that adds a zone, every process
    serves the next serial."""
    port = free_port()
    (tmp_path / "z").write_text("@ 300 SOA ns h 1 3600 900 604800 300\n@ 300 NS ns\n")
    (tmp_path / "dnsseal.toml").write_text(f"""
[server]
listen = ["127.0.0.1@{port}"]
control = "ctl.sock"
state-dir = "state"
workers = 2

[zone."a.example"]
file = "z"
dnssec-policy = "default"

[catalog."catalog.invalid"]
""")
    proc = _start(tmp_path, port)
    try:
        (serial,) = _serials(port)
    finally:
        stop(proc)
    time.sleep(0.2)
    proc = _start(tmp_path, port)
    try:
        assert _serials(port) == {serial}
        text = (tmp_path / "state" / "catalog.invalid.catalog").read_text()
        assert f"{member_id('a.example')}.zones PTR a.example." in text
        conf = tmp_path / "dnsseal.toml"
        conf.write_text(
            conf.read_text().replace(
                "[catalog.", '[zone."b.example"]\nfile = "z"\ndnssec-policy = "default"\n[catalog.'
            )
        )
        ctl = [str(DNSSEAL), "ctl", "-s", str(tmp_path / "ctl.sock"), "reload"]
        assert subprocess.run(ctl, capture_output=True, timeout=60, check=False).returncode == 0
        deadline = time.monotonic() + 10
        while _serials(port) != {serial + 1}:  # the workers reload on SIGHUP, after us
            assert time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.1)
    finally:
        stop(proc)


def _axfr_rcode(port: int, zone: str) -> int:
    q = dns.message.make_query(zone, "AXFR")
    return int(dns.query.tcp(q, "127.0.0.1", port=port, timeout=5).rcode())


@pytest.mark.parametrize("via_catalog", [True, False])
def test_a_changed_allow_transfer_applies_on_reload(tmp_path: Path, via_catalog: bool) -> None:
    """A secondary added to the catalog's allow-transfer (or to the zones' own) may
    transfer the catalog and its members after `dnsseal ctl reload`, though no zone file
    changed.  Before, an unchanged presigned file, or an inline zone with nothing to
    re-sign, kept the ACL it was loaded with: REFUSED until the next restart or signing."""
    port = free_port()
    (tmp_path / "z").write_text("@ 300 SOA ns h 1 3600 900 604800 300\n@ 300 NS ns\n")
    signed = sign_zone(tmp_path / "signed", "nsec", origin="presigned.example")
    conf = tmp_path / "dnsseal.toml"
    text = f"""
[server]
listen = ["127.0.0.1@{port}"]
control = "ctl.sock"
state-dir = "state"

[key.xfr]
{KEY}

[zone."inline.example"]
file = "z"
dnssec-policy = "default"
{"" if via_catalog else 'allow-transfer = ["key xfr"]'}

[zone."presigned.example"]
file = "{signed.path}"
presigned = true
{"" if via_catalog else 'allow-transfer = ["key xfr"]'}
"""
    if via_catalog:
        text += '[catalog."catalog.invalid"]\nallow-transfer = ["key xfr"]\n'
    conf.write_text(text)
    proc = _start(tmp_path, port, "presigned.example")
    try:
        zones = ("inline.example", "presigned.example")
        if via_catalog:
            zones = ("catalog.invalid", *zones)
        deadline = time.monotonic() + 20
        while _signed_soa(port, "inline.example") is None:
            assert time.monotonic() < deadline, (tmp_path / "log").read_text()
            time.sleep(0.1)
        assert {z: _axfr_rcode(port, z) for z in zones} == dict.fromkeys(zones, 5)  # REFUSED
        conf.write_text(text.replace('allow-transfer = ["key xfr"]', 'allow-transfer = ["any"]'))
        reload = subprocess.run(
            [str(DNSSEAL), "ctl", "-s", str(tmp_path / "ctl.sock"), "reload"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert reload.returncode == 0, reload.stdout + reload.stderr
        assert {z: _axfr_rcode(port, z) for z in zones} == dict.fromkeys(zones, 0)
    finally:
        stop(proc)


def _signed_soa(port: int, zone: str) -> int | None:
    q = dns.message.make_query(zone, "SOA", want_dnssec=True)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    return int(r.answer[0][0].serial) if len(r.answer) == 2 else None


def test_the_startup_lines_stay_short_with_many_zones(tmp_path: Path) -> None:
    """Regression: the startup text gave every zone five lines (DS, three dig commands),
    the catalog zone too (a DS and a DNSKEY query for an unsigned zone): 10,000 zones made
    50,000 lines.  Now at most INTRO_ZONES zones are listed, the dig lines once."""
    port = free_port()
    (tmp_path / "z").write_text("@ 300 SOA ns h 1 3600 900 604800 300\n@ 300 NS ns\n")
    zones = "".join(
        f'[zone."z{i:02}.example"]\nfile = "z"\ndnssec-policy = "default"\n' for i in range(12)
    )
    (tmp_path / "dnsseal.toml").write_text(f"""
[server]
listen = ["127.0.0.1@{port}"]
state-dir = "state"
key-directory = "keys"
{zones}
[catalog."catalog.invalid"]
""")
    proc = _start(tmp_path, port)
    try:
        deadline = time.monotonic() + 60
        while "dnsseal serving" not in (tmp_path / "log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        stop(proc)
    text = (tmp_path / "log").read_text()
    assert "dnsseal serving 13 zone(s)" in text
    assert text.count("  try:") == 1 and text.count("nonexistent.") == 1
    listed = re.findall(r"^  (\S+) serial \d+ from .* \((.*)\)$", text, re.M)
    assert len(listed) == 10 and "... and 3 more" in text
    signed = [name for name, how in listed if how.startswith("signed")]
    assert text.count("DS for the parent:") == len(signed)
    assert listed[0] == ("catalog.invalid.", "catalog zone, RFC 9432")  # catalogs first
    assert all(how.startswith("signed") for _, how in listed[1:])


def test_ctl_reload_of_the_catalog_puts_a_hand_edit_right(tmp_path: Path) -> None:
    """Regression: `ctl reload catalog.invalid` took the presigned path, which demands a
    signed zone, and failed.  The catalog is dnsseal's own: it is written again from the
    configuration (a hand edit undone) and served."""
    port = free_port()
    (tmp_path / "z").write_text("@ 300 SOA ns h 1 3600 900 604800 300\n@ 300 NS ns\n")
    (tmp_path / "dnsseal.toml").write_text(f"""
[server]
listen = ["127.0.0.1@{port}"]
control = "ctl.sock"
state-dir = "state"
key-directory = "keys"

[zone."a.example"]
file = "z"
dnssec-policy = "default"

[catalog."catalog.invalid"]
""")
    proc = _start(tmp_path, port)
    try:
        (serial,) = _serials(port, 3)
        path = tmp_path / "state" / "catalog.invalid.catalog"
        good = path.read_text()
        path.write_text(good.replace(f"{member_id('a.example')}.zones", "bogus.zones"))
        ctl = [str(DNSSEAL), "ctl", "-s", str(tmp_path / "ctl.sock"), "reload", "catalog.invalid"]
        r = subprocess.run(ctl, capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        # written again from the configuration, as a new version (the file had changed)
        assert path.read_text() == good.replace(f" {serial} ", f" {serial + 1} ", 1)
        assert _serials(port, 3) == {serial + 1}
        q = dns.message.make_query(f"{member_id('a.example')}.zones.catalog.invalid", "PTR")
        reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
        assert [rd.target.to_text() for rr in reply.answer for rd in rr] == ["a.example."]
    finally:
        stop(proc)
