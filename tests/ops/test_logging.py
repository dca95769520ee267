"""`[logging]` (issue #17): channels to stderr, a rotated file and syslog; severities and
categories; useful INFO lines by default."""

from __future__ import annotations

import logging
import random
import re
import socket
import subprocess
import time
from pathlib import Path

import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from automation.conftest import DNSSEAL, TSIG_SECRET, dnsseal_serve, write_config, zone_text
from conftest import free_port
from dnsseal.errors import OptionError
from dnsseal.server import logsetup
from dnsseal.storage.serverconfig import LoggingConfig, parse_logging, parse_size

ZONE = "log.example."


def test_config_problems_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(OptionError) as e:
        parse_logging(
            {
                "channel": {
                    "a": {"destination": "file"},
                    "b": {"severity": "loud", "categories": ["dnssec", "dns"]},
                    "c": {"destination": "syslog", "facility": "local9", "size": "big"},
                }
            },
            tmp_path,
        )
    text = str(e.value)
    for where in (
        "logging.channel.a.file",
        "logging.channel.b.severity",
        "logging.channel.b.categories[1]",
        "logging.channel.c.facility",
        "logging.channel.c.size",
    ):
        assert where in text, text
    assert parse_logging(None, tmp_path) == LoggingConfig()
    assert parse_size("50M") == 50 * 1024 * 1024 and parse_size("10k") == 10240
    ok = parse_logging({"channel": {"f": {"destination": "file", "file": "x.log"}}}, tmp_path)
    assert ok.channels[0].file == tmp_path / "x.log"


@pytest.mark.parametrize(
    ("logger", "message", "category"),
    [
        (
            "dnsseal.server.update",
            "[z] UPDATE from 127.0.0.1 (key k) applied: serial 3",
            "update",
        ),
        ("dnsseal.server.zonehandle", "[z] DNSSEC: serial 3 signed and served in 0.1 s", "dnssec"),
        ("dnsseal.server.service", "[z] NOTIFY serial 3 to 127.0.0.1@53 acknowledged", "notify"),
        ("dnsseal.server.xfrin", "[z] transferred serial 4 from 192.0.2.1@53 (AXFR)", "xfer"),
        ("dnsseal.server.service", "[z] loaded serial 4 (10 names) in 0.01 s", "zone"),
        ("dnsseal.server.update", "[server] UPDATE from 192.0.2.9: BADSIG: TSIG", "security"),
        ("dnsseal.server.control", "[server] control socket /run/dnsseal.sock", "control"),
        ("dnsseal.server.service", "[server] listening on 127.0.0.1@53", "general"),
        ("asyncio", "Task exception was never retrieved", "general"),
    ],
)
def test_categories(logger: str, message: str, category: str) -> None:
    assert logsetup.category_of(logger, message) == category


def _category_by_every_rule(logger: str, message: str) -> str:
    """The rules of CATEGORY_RULES applied one by one, each regex on the whole message."""
    for prefix, pattern, cat in logsetup.CATEGORY_RULES:
        if (logger == prefix or logger.startswith(prefix + ".")) and (
            pattern is None or re.search(pattern, message)
        ):
            return cat
    return "general"


def test_categories_same_as_every_rule_applied() -> None:
    """category_of runs a rule's regex only on lines holding one of its words, and keeps
    each logger's rules: the same categories as every rule tried on every line."""
    words = ["TSIG", "rate limit", "not allowed", "refused by ACL", "NOTIFY", "UPDATE",
             "frozen", "thawed", "AXFR", "IXFR", "transfers", "refresh", "synced", "DNSSEC",
             "key", "keys", "signed", "loaded", "not loaded", "reloading", "served"]  # fmt: skip
    loggers = ["dnsseal.server.inline", "dnsseal.server.zonehandle", "dnsseal.server.xfrin",
               "dnsseal.server.zonectl", "dnsseal.proto.tsigauth", "dnsseal.keymgr.engine",
               "dnsseal.server.service", "dnsseal", "dnsseal2.x", "asyncio"]  # fmt: skip
    rng = random.Random(15)
    for _ in range(3000):
        parts = rng.sample(words, rng.randint(0, 3))
        message = "[z.example.] " + "".join(
            rng.choice(["", " ", "x", "_", "-", ": "]) + p for p in parts
        )
        logger = rng.choice(loggers)
        assert logsetup.category_of(logger, message) == _category_by_every_rule(logger, message), (
            logger,
            message,
        )


def test_channels_file_rotation_syslog_and_default_lines(tmp_path: Path) -> None:
    port = free_port()
    syslog_path = tmp_path / "syslog.sock"
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(syslog_path))
    syslog.settimeout(5)
    extra = f"""
[logging.channel.updates]
destination = "file"
file = "log/updates.log"
categories = ["update", "dnssec"]
size = "2k"
versions = 2

[logging.channel.syslog]
destination = "syslog"
address = "{syslog_path}"
facility = "local3"
severity = "notice"

[logging.channel.stderr]
destination = "stderr"
"""
    write_config(
        tmp_path,
        port,
        {ZONE: zone_text(ZONE)},
        zone_options={ZONE: 'allow-update = ["key ddns"]'},
        extra=extra,
    )
    try:
        with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
            ring = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})
            for i in range(30):  # enough lines to rotate a 2 KiB file
                u = dns.update.UpdateMessage(ZONE, keyring=ring, keyalgorithm="hmac-sha256")
                u.add(f"h{i}", 2, "A", f"192.0.2.{i + 1}")
                assert dns.query.tcp(u, "127.0.0.1", port=port, timeout=10).rcode() == 0
            bad = dns.update.UpdateMessage(ZONE)  # no TSIG: refused
            bad.add("x", 2, "A", "192.0.2.1")
            assert (
                dns.query.tcp(bad, "127.0.0.1", port=port, timeout=10).rcode() == dns.rcode.REFUSED
            )
            # syslog takes notice and up: a zone file that does not parse is an error
            (tmp_path / "zones" / f"{ZONE}zone").write_text("garbage\n")
            subprocess_ctl(tmp_path)
            data = syslog.recv(65536).decode()
            assert data.startswith("<"), data  # <PRI>: facility local3 (19) * 8 + severity
            pri = int(data[1 : data.index(">")])
            assert pri // 8 == 19 and pri % 8 <= 5, data
            assert "dnsseal[" in data and "ERROR" in data
    finally:
        syslog.close()
    log = tmp_path / "log" / "updates.log"
    rotated = tmp_path / "log" / "updates.log.1"
    assert log.exists() and rotated.exists()
    assert not (tmp_path / "log" / "updates.log.3").exists()
    text = rotated.read_text() + log.read_text()
    assert f"update: INFO: [{ZONE}] UPDATE from 127.0.0.1 (key ddns.) applied: serial" in text
    assert "control:" not in text and "general:" not in text  # only its categories
    # stderr (default severity info): key events, the signed serial with its time taken
    out = (tmp_path / "out.txt").read_text()
    assert "dnssec: INFO: [log.example.] DNSSEC: key " in out
    assert "signed and served in " in out
    assert time.strftime("%Y-%m-%dT", time.gmtime()) in out  # ISO 8601 UTC stamps


def subprocess_ctl(d: Path) -> None:
    subprocess.run(
        [str(DNSSEAL), "ctl", "-c", str(d / "dnsseal.toml"), "reload"],
        check=False,
        capture_output=True,
        timeout=60,
    )


def test_verbose_twice_logs_debug_on_stderr(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        handlers = logsetup.configure(LoggingConfig(), verbose=2)
        assert [h.level for h in handlers] == [logging.DEBUG]
        assert root.level == logging.DEBUG
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)
