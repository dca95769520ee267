"""serial-update-method (BIND's zone option) for inline-signed zones: increment (default),
unixtime and date, read from the config, used for the served serial, and refused when it
cannot apply."""

from __future__ import annotations

import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from conftest import free_port
from dnsseal.errors import OptionError
from dnsseal.storage.serverconfig import parse_config

from .conftest import dnsseal_serve, write_config, zone_text

ZONE = "serial.test."


def _served_serial(port: int) -> int:
    q = dns.message.make_query(ZONE, dns.rdatatype.SOA)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=5)
    return int(r.answer[0][0].serial)


def _zone_config(method: str, presigned: bool = False) -> str:
    kind = "presigned = true" if presigned else 'dnssec-policy = "default"'
    return (
        '[server]\nstate-dir = "state"\nkey-directory = "keys"\n\n'
        f'[zone."{ZONE}"]\nfile = "z"\n{kind}\nserial-update-method = {method}\n'
    )


def test_serial_method_read_from_config(tmp_path: Path) -> None:
    import tomllib

    cfg = parse_config(tomllib.loads(_zone_config('"unixtime"')), tmp_path)
    assert cfg.zones[0].serial_method == "unixtime"
    default = parse_config(
        tomllib.loads(
            _zone_config('"increment"').replace('serial-update-method = "increment"', "")
        ),
        tmp_path,
    )
    assert default.zones[0].serial_method == "increment"


@pytest.mark.parametrize(
    ("value", "presigned", "message"),
    [
        ('"keep"', False, "expected one of increment, unixtime, date"),
        ("5", False, "expected one of increment, unixtime, date, got integer 5"),
        ('"unixtime"', True, "only inline-signed zones get new serials"),
    ],
)
def test_serial_method_errors_name_the_option(
    tmp_path: Path, value: str, presigned: bool, message: str
) -> None:
    import tomllib

    with pytest.raises(OptionError) as err:
        parse_config(tomllib.loads(_zone_config(value, presigned)), tmp_path)
    assert f'zone."{ZONE}".serial-update-method' in str(err.value)
    assert message in str(err.value)


@pytest.mark.interop
@pytest.mark.parametrize("method", ["unixtime", "date"])
def test_served_serial_follows_the_method(tmp_path: Path, method: str) -> None:
    """The zone file says serial 1; the signed zone is served with the method's serial (as
    named does with serial-update-method unixtime/date for inline signing)."""
    port = free_port()
    write_config(
        tmp_path,
        port,
        {ZONE: zone_text(ZONE, serial=1)},
        zone_options={ZONE: f'serial-update-method = "{method}"'},
    )
    before = int(time.time())
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        serial = _served_serial(port)
    after = int(time.time())
    if method == "unixtime":
        assert before <= serial <= after
    else:
        days = {time.strftime("%Y%m%d", time.gmtime(t)) for t in (before, after)}
        assert str(serial)[:8] in days and len(str(serial)) == 10
