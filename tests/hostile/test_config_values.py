"""Broken server configurations, as a careless operator writes them (issue #13): every value
is type-checked when the file is loaded, and the error names the option path; ``dnsseal
serve`` stops before it creates anything on disk, with no traceback.

Each case here was a traceback before (``listen = 5``, ``parental-agents = 5``, top-level
``key = "x"``, ``acl = 1``, ``-p 70000``) or passed loading and then failed every request
(an ``allow-update`` element that is no address: every UPDATE logged a traceback and got no
reply).  A policy that ``dnsseal policy check`` rejects is refused by ``serve`` too.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.errors import OptionError
from dnsseal.storage.serverconfig import (
    SERVER_OPTIONS,
    ZONE_OPTIONS,
    default_config,
    parse_config,
)

DNSSEAL = Path(sys.executable).parent / "dnsseal"  # the console script next to python
ZONE = """\
$TTL 300
@ SOA ns1 hostmaster 1 3600 900 604800 300
@ NS ns1
ns1 A 192.0.2.1
"""
SIGNED_ZONE = '[server]\nstate-dir = "state"\n[zone."example.com"]\nfile = "z"\n'
PRESIGNED_ZONE = '[zone."example.com"]\nfile = "z"\npresigned = true\n'

# (config text, option path, what the message says)
CASES = [
    ("[server]\nlisten = 5\n", "server.listen",
     'expected a list of "ADDR[@PORT]" strings, got integer 5'),
    ("[server]\nlisten = [5]\n", "server.listen[0]",
     'expected an "ADDR[@PORT]" string, got integer 5'),
    ('[server]\nlisten = ["127.0.0.1@70000"]\n', "server.listen[0]", "port 70000 out of range"),
    ('server = "x"\n', "server", "expected the [server] table, got string 'x'"),
    ('key = "x"\n', "key", "expected [key.NAME] tables (TSIG keys), got string 'x'"),
    ("[key]\nk = 1\n", "key.k", "expected a table with algorithm and secret, got integer 1"),
    ("[key.k]\nsecret = 5\n", "key.k.secret", "expected a base64 string, got integer 5"),
    ('[key.k]\nsecret = "c2VjcmV0"\nalgorithm = 5\n', "key.k.algorithm", "unknown integer 5"),
    ('[key."a..b"]\nsecret = "c2VjcmV0"\n', 'key.a..b', "not a valid key name"),
    ("acl = 1\n", "acl", "expected a table of named lists, got integer 1"),
    ("[acl]\nx = 1\n", "acl.x", "expected a list of strings, got integer 1"),
    ('[acl]\nx = ["foo"]\n', "acl.x[0]", "'foo' is not an address, network"),
    ('zone = "x"\n', "zone", "expected tables"),
    ("[server]\ncontrol = 5\n", "server.control", "expected a path string, got integer 5"),
    ("[server]\nworkers = true\n", "server.workers",
     "expected an integer in 1..256, got boolean true"),
    ("[server]\ntcp-idle-timeout = true\n", "server.tcp-idle-timeout",
     "expected a number of seconds above 0, got boolean true"),
    ("[server]\nquery-port = 70000\n", "server.query-port",
     "expected an integer in 1..65535, got integer 70000"),
    ("[server]\nixfr-versions = -1\n", "server.ixfr-versions", "got integer -1"),
    ("[server]\nudp-payload = 100\n", "server.udp-payload", "in 512..4096, got integer 100"),
    ('[server]\nstate-dir = 5\n', "server.state-dir", "expected a path string"),
    ('[server]\npolicies = 5\n', "server.policies", "expected a path string"),
    ('[zone."example.com"]\nfile = 5\npresigned = true\n', 'zone."example.com".file',
     "expected a path string, got integer 5"),
    ('[zone."example.com"]\nfile = "z"\npresigned = "yes"\n', 'zone."example.com".presigned',
     "expected true or false, got string 'yes'"),
    (SIGNED_ZONE + "dnssec-policy = 5\n", 'zone."example.com".dnssec-policy',
     "expected a policy name, got integer 5"),
    (SIGNED_ZONE + 'dnssec-policy = "default"\nparental-agents = 5\n',
     'zone."example.com".parental-agents', 'expected a list of "ADDR[@PORT]" strings'),
    (SIGNED_ZONE + 'dnssec-policy = "default"\nparental-agents = [5]\n',
     'zone."example.com".parental-agents[0]', 'expected an "ADDR[@PORT]" string, got integer 5'),
    (PRESIGNED_ZONE + "also-notify = 5\n", 'zone."example.com".also-notify',
     "expected a list of"),
    (PRESIGNED_ZONE + "notify-key = 5\n", 'zone."example.com".notify-key',
     "expected a TSIG key name, got integer 5"),
    (PRESIGNED_ZONE + "checkds = 5\n", 'zone."example.com".checkds',
     "expected one of yes, explicit, no, got integer 5"),
    (PRESIGNED_ZONE + "allow-transfer = 5\n", 'zone."example.com".allow-transfer',
     "expected a list of strings, got integer 5"),
    (PRESIGNED_ZONE + 'allow-transfer = ["192.0.2.1", 5]\n',
     'zone."example.com".allow-transfer[1]', "expected a string, got integer 5"),
    (PRESIGNED_ZONE + 'allow-transfer = ["300.1.1.1/8"]\n',
     'zone."example.com".allow-transfer[0]', "'300.1.1.1/8' is not an address, network"),
    (SIGNED_ZONE + 'dnssec-policy = "default"\nallow-update = ["300.1.1.1/8"]\n',
     'zone."example.com".allow-update[0]', "'300.1.1.1/8' is not an address, network"),
    (SIGNED_ZONE + 'dnssec-policy = "default"\nallow-update = ["foo"]\n',
     'zone."example.com".allow-update[0]', "'foo' is not an address, network"),
    (SIGNED_ZONE + 'dnssec-policy = "default"\nallow-update = ["key nokey"]\n',
     'zone."example.com".allow-update[0]', "unknown TSIG key 'nokey'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "option", "message"), CASES, ids=[c[1] for c in CASES])
def test_value_of_the_wrong_type_names_its_option(text: str, option: str, message: str) -> None:
    with pytest.raises(OptionError) as e:
        parse_config(tomllib.loads(text), Path("/nonexistent"))
    assert e.value.option == option, str(e.value)
    assert message in e.value.message, str(e.value)


def test_all_problems_at_once() -> None:
    text = 'key = "x"\nacl = 1\n[server]\nlisten = 5\nworkers = "two"\n'
    with pytest.raises(OptionError) as e:
        parse_config(tomllib.loads(text), Path("/nonexistent"), Path("dnsseal.toml"))
    assert e.value.option == "dnsseal.toml"
    for option in ("server.listen:", "server.workers:", "acl:", "key:"):
        assert f"\n  {option}" in e.value.message


def test_named_acls_and_good_elements_still_load() -> None:
    text = (
        '[key.xfr]\nsecret = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="\n'
        '[acl]\nsec = ["192.0.2.0/24", "!10.1.2.3", "key xfr"]\n'
        + PRESIGNED_ZONE
        + 'allow-transfer = ["sec", "::1", "any", "!none"]\n'
    )
    cfg = parse_config(tomllib.loads(text), Path("/nonexistent"))
    assert cfg.zones[0].allow_transfer == ("192.0.2.0/24", "!10.1.2.3", "key xfr", "::1", "any",
                                           "!none")  # fmt: skip


def test_default_config_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match=r"--port: expected a port number in 1\.\.65535"):
        default_config(tmp_path / "zones", 70000)


def serve(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dnsseal serve ARGS`` in ``cwd``: expected to stop at once (a startup failure)."""
    return subprocess.run(
        [str(DNSSEAL), "serve", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env=os.environ,
    )


def assert_refused(r: subprocess.CompletedProcess[str], cwd: Path, before: set[str]) -> str:
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in cwd.iterdir()) == sorted(before), "created files"
    return r.stderr


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("[server]\nlisten = 5\n", "server.listen"),
        ('key = "x"\n', "key"),
        ("acl = 1\n", "acl"),
        (
            '[server]\nstate-dir = "state"\n[zone."example.com"]\nfile = "z.zone"\n'
            'dnssec-policy = "default"\nparental-agents = 5\n',
            'zone."example.com".parental-agents',
        ),
        (
            '[server]\nstate-dir = "state"\n[zone."example.com"]\nfile = "z.zone"\n'
            'dnssec-policy = "default"\nallow-update = ["300.1.1.1/8", "foo"]\n',
            'zone."example.com".allow-update[0]',
        ),
    ],
    ids=["listen", "key", "acl", "parental-agents", "allow-update"],
)
def test_serve_stops_with_the_option_and_creates_nothing(
    tmp_path: Path, text: str, option: str
) -> None:
    (tmp_path / "dnsseal.toml").write_text(text)
    (tmp_path / "z.zone").write_text("$ORIGIN example.com.\n" + ZONE)
    before = {p.name for p in tmp_path.iterdir()}
    err = assert_refused(serve(tmp_path, "-c", "dnsseal.toml"), tmp_path, before)
    assert f"{option}: " in err, err


def test_serve_port_out_of_range_creates_nothing(tmp_path: Path) -> None:
    err = assert_refused(serve(tmp_path, "-p", "70000"), tmp_path, set())
    assert "70000" in err and len(err.strip().splitlines()) == 1, err


BAD_POLICY = """\
[policy.hasty]
signatures-refresh = "P14D"
signatures-validity = "P14D"
signatures-validity-dnskey = "P14D"
"""


def test_serve_refuses_a_policy_that_policy_check_rejects(tmp_path: Path) -> None:
    (tmp_path / "policies.toml").write_text(BAD_POLICY)
    check = subprocess.run(
        [str(DNSSEAL), "policy", "check", "policies.toml"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ,
    )
    assert check.returncode == 1
    problems = check.stdout.strip().splitlines()
    assert problems and all("policy.hasty.signatures-refresh" in p for p in problems)
    (tmp_path / "dnsseal.toml").write_text(
        '[server]\nlisten = ["127.0.0.1@5399"]\nstate-dir = "state"\npolicies = "policies.toml"\n'
        '[zone."example.com"]\nfile = "z.zone"\ndnssec-policy = "hasty"\n'
    )
    (tmp_path / "z.zone").write_text("$ORIGIN example.com.\n" + ZONE)
    before = {p.name for p in tmp_path.iterdir()}
    err = assert_refused(serve(tmp_path, "-c", "dnsseal.toml"), tmp_path, before)
    # the same problems, in the same words as `policy check`
    for p in problems:
        assert p.split(": ", 1)[1] in err, err


VALUES = st.sampled_from(
    [
        5,
        -1,
        0,
        70000,
        True,
        1.5,
        "x",
        "",
        "300.1.1.1/8",
        "127.0.0.1@99999",
        "key nokey",
        "!any",
        [],
        [5],
        ["x"],
        [[1]],
        ["key xfr"],
        ["127.0.0.1"],
        {},
        {"a": 1},
        datetime.date(2020, 1, 1),
    ]
)
PLACES = st.sampled_from(
    [("server", o) for o in sorted(SERVER_OPTIONS)]
    + [("zone", o) for o in sorted(ZONE_OPTIONS)]
    + [("presigned-zone", o) for o in sorted(ZONE_OPTIONS)]
    + [("key", o) for o in ("secret", "algorithm", "other")]
    + [("acl", "a"), ("acl", "b")]
    + [("top", t) for t in ("server", "key", "acl", "zone")]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(PLACES, VALUES), min_size=1, max_size=3))
def test_any_value_anywhere_is_an_option_error_or_fine(
    edits: list[tuple[tuple[str, str], object]],
) -> None:
    data: dict[str, Any] = {
        "server": {"state-dir": "s"},
        "key": {"xfr": {"secret": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="}},
        "acl": {"a": ["127.0.0.1"]},
        "zone": {
            "example.com": {"file": "z", "dnssec-policy": "default"},
            "example.org": {"file": "z", "presigned": True},
        },
    }
    tops = []
    for (where, option), value in edits:
        if where == "server":
            data["server"][option] = value
        elif where == "zone":
            data["zone"]["example.com"][option] = value
        elif where == "presigned-zone":
            data["zone"]["example.org"][option] = value
        elif where == "key":
            data["key"]["xfr"][option] = value
        elif where == "acl":
            data["acl"][option] = value
        else:
            tops.append((option, value))
    for option, value in tops:
        data[option] = value
    try:
        parse_config(data, Path("/nonexistent"))
    except OptionError as e:
        assert e.message


def test_the_shared_port_type_refuses_70000() -> None:
    """cli.types.PORT, for every command's -p/--port: click's one-line usage error."""
    import click
    from click.testing import CliRunner

    from dnsseal.cli.types import PORT

    @click.command()
    @click.option("-p", "--port", type=PORT, default=53)
    def cmd(port: int) -> None:
        click.echo(port)

    assert CliRunner().invoke(cmd, ["-p", "65535"]).output == "65535\n"
    r = CliRunner().invoke(cmd, ["-p", "70000"])
    assert r.exit_code == 2
    assert "Invalid value for '-p' / '--port': 70000 is not in the range 1<=x<=65535" in r.output
