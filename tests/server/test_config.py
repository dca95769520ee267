"""The server config (TOML): every error names its option path; ACL decisions."""

from __future__ import annotations

from pathlib import Path

import dns.name
import pytest

from dnsseal.errors import FileFormatError, OptionError, StorageError
from dnsseal.proto.acl import Acl
from dnsseal.storage.remotes import system_resolvers
from dnsseal.storage.serverconfig import (
    Endpoint,
    load_config,
    parse_config,
    parse_endpoint,
)

GOOD = """
[server]
listen = ["127.0.0.1@5300", "::1@5300", "[::1]:5301", "192.0.2.1:53"]
control = "ctl.sock"
tcp-idle-timeout = 5

[key.xfr]
algorithm = "hmac-sha256"
secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="

[acl]
secondaries = ["192.0.2.0/24", "!192.0.2.7", "key xfr"]

[zone."example.com"]
file = "zones/example.com.signed"
presigned = true
allow-transfer = ["!192.0.2.9", "secondaries"]
also-notify = ["192.0.2.2", "192.0.2.3@5353"]
notify-key = "xfr"
"""


def test_good_config(tmp_path: Path) -> None:
    conf = tmp_path / "dnsseal.toml"
    conf.write_text(GOOD)
    c = load_config(conf)
    assert c.listen == (
        Endpoint("127.0.0.1", 5300),
        Endpoint("::1", 5300),
        Endpoint("::1", 5301),
        Endpoint("192.0.2.1", 53),
    )
    assert c.control == tmp_path.resolve() / "ctl.sock"
    assert c.tcp_idle_timeout == 5
    (z,) = c.zones
    assert z.file == tmp_path.resolve() / "zones/example.com.signed"
    assert z.also_notify == (Endpoint("192.0.2.2", 53), Endpoint("192.0.2.3", 5353))
    assert z.allow_transfer == ("!192.0.2.9", "192.0.2.0/24", "!192.0.2.7", "key xfr")
    assert c.keys["xfr"].secret == b"secret-secret-secret-secret-0123"


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ('[server]\nlisten = ["nothere@53"]', "server.listen[0]"),
        ('[server]\nlisten = ["127.0.0.1@70000"]', "server.listen[0]"),
        ("[server]\ntcp-idle-timeout = -1", "server.tcp-idle-timeout"),
        ("[server]\nbogus = 1", "server.bogus"),
        (
            '[key.k]\nalgorithm = "hmac-foo"\nsecret = "c2VjcmV0"',
            "key.k.algorithm",
        ),
        ('[key.k]\nsecret = "not base64!"', "key.k.secret"),
        ('[zone."a.example"]\npresigned = true', 'zone."a.example".file'),
        ('[zone."a.example"]\nfile = "x"\npresigned = false', 'zone."a.example".presigned'),
        ('[zone."a.example"]\nfile = "x"\npresigned = true\nnotify-key = "k"', "notify-key"),
        (
            '[zone."a.example"]\nfile = "x"\npresigned = true\nallow-transfer = ["key nokey"]',
            'zone."a.example".allow-transfer[0]',
        ),
        (
            '[zone."a.example"]\nfile = "x"\npresigned = true\nalso-notify = ["x@1"]',
            'zone."a.example".also-notify[0]',
        ),
        ("[zones]\n", "zones"),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\nfile = "x"\ndnssec-policy = "nope"',
            'zone."a.example".dnssec-policy',
        ),
        ('[zone."a.example"]\nfile = "x"\ndnssec-policy = "default"', "server.state-dir"),
        (
            '[zone."a.example"]\nfile = "x"\npresigned = true\nallow-update = ["127.0.0.1"]',
            'zone."a.example".allow-update',
        ),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\nfile = "x"\n'
            'dnssec-policy = "default"\nallow-update = ["key nokey"]',
            'zone."a.example".allow-update[0]',
        ),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\nfile = "x"\n'
            'dnssec-policy = "default"\ncheckds = "maybe"',
            'zone."a.example".checkds',
        ),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\nfile = "x"\n'
            'dnssec-policy = "default"\nprimaries = ["192.0.2.1"]',
            'zone."a.example".file',
        ),
        (
            '[zone."a.example"]\nprimaries = ["192.0.2.1"]\npresigned = true',
            'zone."a.example".primaries',
        ),
        (
            '[zone."a.example"]\nprimaries = ["192.0.2.1"]\ndnssec-policy = "default"',
            'zone."a.example".primaries',
        ),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\ndnssec-policy = "default"\n'
            'primaries = ["192.0.2.1", "192.0.2.2 port 99999"]',
            'zone."a.example".primaries[1]',
        ),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\ndnssec-policy = "default"\n'
            'primaries = ["192.0.2.1 key nokey"]',
            'zone."a.example".primaries[0]',
        ),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\ndnssec-policy = "default"\n'
            'primaries = ["192.0.2.1 prot 53"]',
            'zone."a.example".primaries[0]',
        ),
        (
            '[server]\nstate-dir = "s"\n[zone."a.example"]\ndnssec-policy = "default"\n'
            "primaries = []",
            'zone."a.example".primaries',
        ),
        ('[server]\nresolvers = ["127.0.0.1", "resolver"]', "server.resolvers[1]"),
        ("[server]\nresolvers = []", "server.resolvers"),
        ("[server]\nquery-port = 0", "server.query-port"),
        ('[server]\npolicies = "missing.toml"', "server.policies"),
    ],
)
def test_errors_name_the_option(tmp_path: Path, text: str, option: str) -> None:
    import tomllib

    with pytest.raises(OptionError) as e:
        parse_config(tomllib.loads(text), tmp_path)
    assert option in str(e.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    import tomllib

    text = '[server]\nlisten = ["x"]\nbogus = 1\n[zone."a."]\npresigned = true\n'
    with pytest.raises(OptionError) as e:
        parse_config(tomllib.loads(text), tmp_path)
    for option in ("server.listen[0]", "server.bogus", 'zone."a.".file'):
        assert option in str(e.value)


def test_toml_syntax_error_has_the_line(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[server]\nlisten = ["127.0.0.1"\n')
    with pytest.raises(FileFormatError) as e:
        load_config(conf)
    assert e.value.path == str(conf) and e.value.line is not None


def test_endpoint_forms() -> None:
    assert parse_endpoint("o", "::1", 53) == Endpoint("::1", 53)
    assert parse_endpoint("o", "[2001:db8::1]:5300", 53) == Endpoint("2001:db8::1", 5300)
    with pytest.raises(OptionError):
        parse_endpoint("o", 5, 53)


def test_acl_first_match_wins() -> None:
    acl = Acl.parse("t", ["!192.0.2.7", "192.0.2.0/24", "key xfr", "::1"])
    key = dns.name.from_text("xfr")
    assert acl.allows("192.0.2.1", None)
    assert not acl.allows("192.0.2.7", None)
    assert not acl.allows("192.0.2.7", key)  # the negation matches first
    assert acl.allows("198.51.100.1", key)
    assert not acl.allows("198.51.100.1", dns.name.from_text("other"))
    assert acl.allows("::1", None)
    assert not acl.allows("::2", None)
    assert not Acl().allows("127.0.0.1", None)  # empty: nobody
    assert Acl.parse("t", ["any"]).allows("203.0.113.5", None)
    assert not Acl.parse("t", ["none", "any"]).allows("203.0.113.5", None)
    with pytest.raises(OptionError) as e:
        Acl.parse("zone.allow-transfer", ["192.0.2.300"])
    assert "zone.allow-transfer[0]" in str(e.value)


def test_inline_zone_options(tmp_path: Path) -> None:
    import tomllib

    (tmp_path / "p.toml").write_text('[policy.mine]\ndnskey-ttl = "PT5M"\n')
    text = """
[server]
state-dir = "state"
key-directory = "k"
policies = "p.toml"
[key.ddns]
secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="
[zone."a.example"]
file = "a.zone"
dnssec-policy = "mine"
allow-update = ["key ddns", "127.0.0.1"]
parental-agents = ["192.0.2.53", "192.0.2.54@5353"]
"""
    cfg = parse_config(tomllib.loads(text), tmp_path)
    z = cfg.zones[0]
    assert z.policy == "mine" and not z.presigned
    assert z.allow_update == ("key ddns", "127.0.0.1")
    assert [str(a) for a in z.parental_agents] == ["192.0.2.53@53", "192.0.2.54@5353"]
    assert z.checkds == "yes"  # the default once agents are given (BIND: explicit without)
    assert cfg.key_dir == tmp_path / "k" and "mine" in cfg.policies


def test_checkds_yes_without_agents_and_primaries(tmp_path: Path) -> None:
    import tomllib

    text = """
[server]
state-dir = "/var/lib/dnsseal"
resolvers = ["127.0.0.1 port 5399", "::1@53"]
query-port = 5300
[key.xfr]
secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="
[zone."a.example"]
file = "a.zone"
dnssec-policy = "default"
checkds = "yes"
[zone."b.example"]
primaries = ["192.0.2.1", "192.0.2.2 port 5301 key xfr", "192.0.2.3@5302"]
dnssec-policy = "default"
"""
    cfg = parse_config(tomllib.loads(text), tmp_path)
    a, b = cfg.zones
    assert a.checkds == "yes" and not a.parental_agents  # the parent's NS set is asked
    assert cfg.resolvers == (Endpoint("127.0.0.1", 5399), Endpoint("::1", 53))
    assert cfg.query_port == 5300
    assert [str(p) for p in b.primaries] == [
        "192.0.2.1@53",
        "192.0.2.2@5301 key xfr",
        "192.0.2.3@5302",
    ]
    assert b.file == Path("/var/lib/dnsseal/b.example.xfr")  # the copy, never a user file
    assert b.checkds == "explicit"  # BIND defaults to yes here; dnsseal asks for it
    plain = parse_config(tomllib.loads('[server]\nlisten = ["127.0.0.1"]'), tmp_path)
    assert plain.resolvers is None and plain.query_port == 53


def test_system_resolvers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n")
    assert system_resolvers(conf) == (Endpoint("192.0.2.53", 53), Endpoint("fe80::1", 53))
    conf.write_text("search example\n")
    with pytest.raises(OptionError) as e:
        system_resolvers(conf)
    assert "server.resolvers" in str(e.value)
    with pytest.raises(StorageError):
        system_resolvers(tmp_path / "missing")
