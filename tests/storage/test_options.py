"""The table of options (dnsseal.storage.options): every row loads, every wrong value is a
one-line error naming its option path, a misspelt name gets a suggestion, the loader knows
exactly the table's names, and docs/configuration.md is what the table generates."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dnsseal.cli import configdoc
from dnsseal.errors import OptionError
from dnsseal.proto.rrl import RateLimitConfig
from dnsseal.resolver import settings as resolver_settings
from dnsseal.storage import options
from dnsseal.storage.serverconfig import (
    RATE_LIMIT_OPTIONS,
    SERVER_OPTIONS,
    ZONE_OPTIONS,
    ListenerLimits,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="
ZONE = 'zone."example.com"'
RESOLVER_SECTIONS = ("resolver", "resolver.stub-zone[]", "resolver.forward-zone[]")
SERVER_ROWS = [o for o in options.OPTIONS if o.section not in RESOLVER_SECTIONS]
RESOLVER_ROWS = [o for o in options.OPTIONS if o.section in RESOLVER_SECTIONS]


def toml_value(text: str) -> Any:
    return tomllib.loads(f"v = {text}")["v"]


def server_document(row: options.Option, value: Any, tmp: Path) -> tuple[dict[str, Any], str]:
    """A server config holding ``row``'s option set to ``value`` (and what it needs), and
    the option's path as messages write it."""
    name, section = row.name, row.section
    if section == "server":
        server: dict[str, Any] = {name: value}
        if name in ("http-tls-cert", "http-tls-key"):
            server = {"http-tls-cert": "c.pem", "http-tls-key": "k.pem", name: value}
        if name == "policies":
            (tmp / "policies.toml").write_text("[policy.mine]\ndnskey-ttl = 600\n")
        return {"server": server}, f"server.{name}"
    if section == "server.rate-limit":
        return {"server": {"rate-limit": {name: value}}}, f"server.rate-limit.{name}"
    if section == "key.NAME":
        return {"key": {"k": {"secret": SECRET, name: value}}}, f"key.k.{name}"
    if section == "acl":
        return {"key": {"xfr": {"secret": SECRET}}, "acl": {"x": value}}, "acl.x"
    if section == 'zone."NAME"':
        zname = "_signal.ns1.example.net" if name == "signaling" else "example.com"
        zone: dict[str, Any] = {"file": "z", "dnssec-policy": "default", name: value}
        if name in ("presigned", "policy"):
            del zone["dnssec-policy"]
        if name == "primaries":
            del zone["file"]
        if name == "ds-root":
            zone["ds-trust-anchors"] = "anchors"
        if name == "ds-trust-anchors":
            zone["ds-root"] = ["127.0.0.1"]
        if name in ("dsync-allow", "dsync-child"):  # a parent's options
            zone |= {"ds-automation": True, "dsync": True}
        doc = {
            "server": {"state-dir": "state"},
            "key": {"xfr": {"secret": SECRET}, "ddns": {"secret": SECRET}},
            "zone": {zname: zone},
        }
        return doc, f'zone."{zname}".{name}'
    if section == "policy.NAME":
        return {"policy": {"p": {name: value}}}, f"policy.p.{name}"
    if section == "policy.NAME.keys[]":
        key = {"role": "csk", "algorithm": "RSASHA256", name: value}
        return {"policy": {"p": {"keys": [key]}}}, f"policy.p.keys[0].{name}"
    if section == "policy.NAME.nsec3param":
        return {"policy": {"p": {"nsec3param": {name: value}}}}, f"policy.p.nsec3param.{name}"
    if section == 'catalog."NAME"':
        doc = {
            "server": {"state-dir": "state"},
            "key": {"xfr": {"secret": SECRET}},
            "zone": {"example.com.": {"file": "z", "dnssec-policy": "default"}},
            "catalog": {"catalog.invalid.": {name: value}},
        }
        return doc, f'catalog."catalog.invalid.".{name}'
    if section == "alerts":
        return {"alerts": {name: value}}, f"alerts.{name}"
    if section == "logging.channel.NAME":
        channel = {"destination": "file", "file": "x.log", name: value}
        return {"logging": {"channel": {"c": channel}}}, f"logging.channel.c.{name}"
    raise AssertionError(f"no test document for section {section}")


def ids(rows: list[options.Option]) -> list[str]:
    return [o.path for o in rows]


@pytest.mark.parametrize("row", SERVER_ROWS, ids=ids(SERVER_ROWS))
def test_every_option_loads_with_its_example(row: options.Option, tmp_path: Path) -> None:
    doc, _ = server_document(row, toml_value(row.example), tmp_path)
    parse_config(doc, tmp_path)


def wrong_value(row: options.Option) -> Any:
    """A value of the wrong type for ``row``: a table where a scalar or a list goes, a
    number where a table goes."""
    return 7 if row.kind in ("table", "tables") else {"x": 1}


@pytest.mark.parametrize("row", SERVER_ROWS, ids=ids(SERVER_ROWS))
def test_a_wrong_value_is_one_line_naming_the_option(row: options.Option, tmp_path: Path) -> None:
    doc, path = server_document(row, wrong_value(row), tmp_path)
    with pytest.raises(OptionError) as e:
        parse_config(doc, tmp_path)
    assert e.value.option == path or e.value.option.startswith(f"{path}["), str(e.value)
    assert "\n" not in str(e.value), str(e.value)


CHECKED = [o for o in SERVER_ROWS if o.kind in ("integer", "seconds") and o.low != o.high]


@pytest.mark.parametrize("row", CHECKED, ids=ids(CHECKED))
def test_a_number_out_of_range_names_the_range(row: options.Option, tmp_path: Path) -> None:
    bad = (row.high + 1) if row.high is not None else (row.low or 0) - 1
    doc, path = server_document(row, int(bad), tmp_path)
    with pytest.raises(OptionError) as e:
        parse_config(doc, tmp_path)
    assert e.value.option == path, str(e.value)
    if row.section.startswith("policy."):
        assert "out of range" in e.value.message, str(e.value)
    elif row.kind == "integer":
        assert row.range_text() in e.value.message, str(e.value)
    else:
        assert "number of seconds" in e.value.message, str(e.value)


@pytest.mark.parametrize(
    ("text", "path", "suggestion"),
    [
        ("[server]\nlistne = []\n", "server.listne", "listen"),
        ('[zone."example.com"]\nfile = "z"\npresigned = true\nallow-transfr = []\n',
         'zone."example.com".allow-transfr', "allow-transfer"),
        (f"[key.k]\nsecret = '{SECRET}'\nalgoritm = 'hmac-sha256'\n", "key.k.algoritm",
         "algorithm"),
        ("[alerts]\nwebhok = 'http://x'\n", "alerts.webhok", "webhook"),
        ("[server]\nrate-limit = { windw = 5 }\n", "server.rate-limit.windw", "window"),
        ("[logging.channel.c]\nseverty = 'info'\n", "logging.channel.c.severty", "severity"),
        ("[zonne.x]\n", "zonne", "[zone]"),
        ("[policy.p]\nsignatures-valdity = 'P14D'\n", "policy.p.signatures-valdity",
         "signatures-validity"),
        ("[policy.p]\nkeys = [{ role = 'csk', algorithm = 13, lifetme = 'P1Y' }]\n",
         "policy.p.keys[0].lifetme", "lifetime"),
    ],
)  # fmt: skip
def test_a_misspelt_option_gets_a_suggestion(text: str, path: str, suggestion: str) -> None:
    with pytest.raises(OptionError) as e:
        parse_config(tomllib.loads(text), Path("/nonexistent"))
    assert e.value.option == path, str(e.value)
    assert f"did you mean {suggestion!r}" in e.value.message or (
        f"did you mean {suggestion}?" in e.value.message
    ), str(e.value)
    assert "\n" not in str(e.value)


def test_a_misspelt_resolver_option_gets_a_suggestion() -> None:
    with pytest.raises(OptionError) as e:
        resolver_settings.parse_settings("[resolver]\ncache-sise = 5\n", "r.toml")
    assert str(e.value) == "resolver.cache-sise: unknown option (did you mean 'cache-size'?)"


def test_an_unknown_option_far_from_any_lists_the_known_ones() -> None:
    with pytest.raises(OptionError) as e:
        parse_config({"server": {"zzzzzz": 1}}, Path("/nonexistent"))
    assert e.value.option == "server.zzzzzz"
    assert "known: " in e.value.message and "listen" in e.value.message


def test_the_loader_knows_exactly_the_table_s_names() -> None:
    # An option added to the loader alone (or to the table alone) fails here: adding an
    # option is one row in dnsseal.storage.options.
    hint = "add a row to dnsseal.storage.options.OPTIONS (then `make docs`) for: {}"
    server, zone = set(options.known("server")), set(options.known('zone."NAME"'))
    assert server == SERVER_OPTIONS, hint.format(SERVER_OPTIONS ^ server)
    assert zone == ZONE_OPTIONS, hint.format(ZONE_OPTIONS ^ zone)
    assert set(options.known("resolver")) == set(resolver_settings.OPTIONS)
    rows = {o.name for o in options.OPTIONS if o.section.startswith("policy.NAME")}
    from dnsseal.policy.build import KEY_FIELDS, NSEC3_FIELDS
    from dnsseal.policy.model import OPTIONS_BY_NAME

    assert rows == {*OPTIONS_BY_NAME, "keys", "nsec3param", *KEY_FIELDS, *NSEC3_FIELDS}
    assert set(options.known("key.NAME")) == {"algorithm", "secret"}


def test_defaults_in_the_table_are_those_the_code_uses() -> None:
    rrl = RateLimitConfig()
    for name, attr in RATE_LIMIT_OPTIONS.items():
        row = options.option("server.rate-limit", name)
        if row.default is not None:
            assert getattr(rrl, attr) == row.default, name
    limits = ListenerLimits()
    assert options.option("server", "tcp-clients").default == limits.tcp_clients
    assert (
        options.option("server", "tcp-clients-per-address").default
        == limits.tcp_clients_per_address
    )
    cfg = parse_config({}, Path("/x"))
    assert cfg.ixfr_versions == options.option("server", "ixfr-versions").default
    assert cfg.udp_payload == options.option("server", "udp-payload").default
    assert cfg.workers == options.option("server", "workers").default
    assert cfg.tcp_idle_timeout == options.option("server", "tcp-idle-timeout").default
    assert [str(e) for e in cfg.listen] == list(options.option("server", "listen").default)  # type: ignore[call-overload]
    defaults = resolver_settings.ResolverSettings()
    assert options.option("resolver", "cache-size").default == defaults.cache_bytes
    for field in dataclasses.fields(RateLimitConfig):
        dashed = field.name.replace("_", "-")
        assert options.lookup("server.rate-limit", dashed) is not None, dashed


def resolver_text(row: options.Option, value: str) -> tuple[str, str]:
    if row.section == "resolver":
        return f"[resolver]\n{row.name} = {value}\n", f"resolver.{row.name}"
    kind = row.section.removeprefix("resolver.").removesuffix("[]")
    fields = {"name": '"corp.example."', f"{kind[:-5]}-addr": '["10.0.0.53"]', row.name: value}
    body = "\n".join(f"{k} = {v}" for k, v in fields.items())
    return f"[[resolver.{kind}]]\n{body}\n", f"resolver.{kind}[0].{row.name}"


@pytest.mark.parametrize("row", RESOLVER_ROWS, ids=ids(RESOLVER_ROWS))
def test_resolver_options_load_and_a_wrong_value_names_them(row: options.Option) -> None:
    text, path = resolver_text(row, row.example)
    resolver_settings.parse_settings(text, "r.toml")
    bad = "7" if row.kind in ("table", "tables") else "{ x = 1 }"
    text, path = resolver_text(row, bad)
    with pytest.raises(OptionError) as e:
        resolver_settings.parse_settings(text, "r.toml")
    assert str(e.value).startswith(path.split("[")[0]), str(e.value)


def test_the_configuration_doc_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    if committed != configdoc.render():
        pytest.fail(
            "docs/configuration.md is stale (the table of options changed): regenerate it "
            f"with `{configdoc.COMMAND}` and commit it"
        )


def test_the_doc_names_every_option() -> None:
    text = configdoc.render()
    for row in options.OPTIONS:
        assert f"| `{row.name}` |" in text, row.path


def test_the_example_in_the_doc_loads(tmp_path: Path) -> None:
    text = configdoc.INTRO.split("```toml\n")[1].split("```")[0]
    (tmp_path / "zones").mkdir()
    cfg = parse_config(tomllib.loads(text), tmp_path)
    assert [z.name for z in cfg.zones] == ["example.com", "example.net", "example.org"]
    assert cfg.zones[0].policy == "standard" and "standard" in cfg.policies
    assert cfg.zones[0].allow_transfer == ("192.0.2.0/24", "key xfr")
