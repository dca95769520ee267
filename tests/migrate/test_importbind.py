"""`dnsseal import-bind` on a realistic named.conf (checked by named-checkconf first): the
config it writes is what `serve -c` loads, every skipped item has a note."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conftest import Dnsseal, run_tool
from dnsseal.storage.serverconfig import load_config

from .bindsetup import DDNS_SECRET, write_setup


@pytest.fixture
def setup_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bind"
    d.mkdir()
    write_setup(d, 5301, 5302, 5303, 5304)
    run_tool(["named-checkconf", d / "named.conf"], cwd=d)  # BIND agrees it is valid
    return d


@pytest.mark.interop
def test_realistic_setup(setup_dir: Path, tmp_path: Path, dnsseal: Dnsseal) -> None:
    out = tmp_path / "dnsseal" / "dnsseal.toml"
    out.parent.mkdir()
    r = dnsseal("import-bind", setup_dir / "named.conf", "-o", out)
    assert "4 zone(s): alpha.test, beta.test, gamma.test, delta.test" in r.output
    cfg = load_config(out)  # what serve -c does
    zones = {z.name: z for z in cfg.zones}
    assert set(zones) == {"alpha.test", "beta.test", "gamma.test", "delta.test"}
    assert cfg.key_dir == setup_dir / "keys"  # BIND's key directory, in place
    assert [str(e) for e in cfg.listen] == ["127.0.0.1@5301"]
    assert cfg.keys["ddns"].secret == __import__("base64").b64decode(DDNS_SECRET)
    assert set(cfg.policies) == {"migrate"}
    assert cfg.policies["migrate"].nsec3param is not None
    alpha, beta, gamma = zones["alpha.test"], zones["beta.test"], zones["gamma.test"]
    assert alpha.file == setup_dir / "alpha.test.zone" and alpha.policy == "migrate"
    assert alpha.allow_transfer == ("127.0.0.1", "key xfr")  # the ACL, expanded
    assert alpha.allow_update == ("key ddns",)
    assert beta.update_policy is not None and beta.allow_update == ()
    assert [str(e) for e in beta.also_notify] == ["127.0.0.1@5303"]
    assert [str(e) for e in beta.parental_agents] == ["127.0.0.1@5303"]
    assert beta.checkds == "yes"  # dnsseal's default with parental-agents, as BIND's
    assert alpha.parental_agents == () and alpha.checkds == "explicit"
    assert [str(p) for p in gamma.primaries] == ["127.0.0.1@5302 key xfr"]
    assert gamma.policy == "migrate"
    delta = zones["delta.test"]  # a plain secondary (BIND's `masters` spelling)
    assert [str(p) for p in delta.primaries] == ["127.0.0.1@5302"]
    assert delta.secondary and delta.policy is None
    assert delta.file == cfg.state_dir / "delta.test.xfr" if cfg.state_dir else False
    notes = r.stderr
    for item in ("controls", "statistics-channels", "logging", "pid-file"):
        assert item in notes
    assert "delta.test: a secondary: transferred anew from its primaries" in notes
    # each note names where the item is
    assert f"{setup_dir / 'named.conf'}:" in notes


def test_views_and_unsupported_items_are_notes(tmp_path: Path, dnsseal: Dnsseal) -> None:
    (tmp_path / "z").write_text("@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 127.0.0.1\n")
    conf = tmp_path / "named.conf"
    conf.write_text(
        f"""options {{ directory "{tmp_path}"; listen-on {{ any; }}; }};
view "inside" {{ match-clients {{ 10/8; }}; zone "v.test" {{ type primary; file "z"; }}; }};
zone "plain.test" {{ type primary; file "z"; allow-update {{ any; }}; }};
zone "signed.test" {{ type primary; file "z"; dnssec-policy default; checkds explicit;
    parental-agents {{ 192.0.2.53; 192.0.2.54 port 5353; }}; also-notify port 5301 {{ ::1; }}; }};
zone "hint" {{ type hint; file "root.hints"; }};
zone "fwd.test" {{ type forward; forwarders {{ 192.0.2.1; }}; }};
"""
    )
    out = tmp_path / "out.toml"
    r = dnsseal("import-bind", conf, "-o", out)
    assert "view inside: views are not supported yet" in r.stderr
    assert "type hint is not served" in r.stderr and "type forward is not served" in r.stderr
    assert "plain.test: no dnssec-policy: served as it is (presigned)" in r.stderr
    assert "dynamic update needs an inline-signed zone" in r.stderr
    data = tomllib.loads(out.read_text())
    assert data["server"]["listen"] == ["0.0.0.0@53", "::@53"]  # v6: BIND's default
    assert data["zone"]["plain.test"] == {"file": str(tmp_path / "z"), "presigned": True}
    signed = data["zone"]["signed.test"]
    assert signed["checkds"] == "explicit"
    assert signed["parental-agents"] == ["192.0.2.53@53", "192.0.2.54@5353"]
    assert signed["also-notify"] == ["::1@5301"]
    load_config(out)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zone x {\n type primary\n};", "named.conf:3: missing ';' before '}'"),
        ('include "nowhere.conf";', "nowhere.conf: no such file"),
        ('include "named.conf";', "named.conf:1: include cycle"),
        ("\n\ndnssec-policy p {\n dnskey-ttl forever;\n};", "named.conf:3: dnssec-policy p"),
        (
            "dnssec-policy p { keys { ksk lifetime unlimited algorithm 13 banana; }; };",
            "named.conf:1: dnssec-policy p: unexpected 'banana' in key line",
        ),
        (
            'zone "x" { type primary; file "z"; dnssec-policy "nope"; };',
            "dnssec-policy 'nope' is not defined",
        ),
        (
            'zone "x" { type secondary; primaries { 192.0.2.1 key k; }; dnssec-policy default; };',
            "unknown TSIG key 'k'",
        ),
    ],
)
def test_bad_input_is_one_line_and_nothing_written(
    tmp_path: Path, dnsseal: Dnsseal, text: str, message: str
) -> None:
    conf = tmp_path / "named.conf"
    conf.write_text(text)
    out = tmp_path / "out.toml"
    r = dnsseal("import-bind", conf, "-o", out, ok=False)
    assert r.exit_code == 1
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.output + r.stderr
    assert not out.exists()


def test_transferred_zone_links_bind_serial_files(
    setup_dir: Path, tmp_path: Path, dnsseal: Dnsseal
) -> None:
    # gamma.test is transferred in: dnsseal's copy lives in its state directory, so BIND's
    # signed copy and journal are linked there for the serial to continue from them.
    (setup_dir / "gamma.test.bk.signed").write_text("signed")
    (setup_dir / "gamma.test.bk.signed.jnl").write_text("journal")
    out = tmp_path / "d" / "dnsseal.toml"
    out.parent.mkdir()
    dnsseal("import-bind", setup_dir / "named.conf", "-o", out, "--state-dir", "st")
    for suffix in (".signed", ".signed.jnl"):
        link = out.parent / "st" / f"gamma.test.xfr{suffix}"
        assert link.is_symlink()
        assert link.resolve() == (setup_dir / f"gamma.test.bk{suffix}").resolve()
    assert not (out.parent / "st" / "alpha.test.xfr.signed").exists()


def test_listen_defaults_are_binds(tmp_path: Path, dnsseal: Dnsseal) -> None:
    # Debian's named.conf.options has only listen-on-v6 { any; }: BIND still listens on
    # every IPv4 address (listen-on defaults to any).
    conf = tmp_path / "named.conf"
    conf.write_text('options { directory "/var/cache/bind"; listen-on-v6 { any; }; port 5353; };')
    dnsseal("import-bind", conf, "-o", tmp_path / "out.toml")
    data = tomllib.loads((tmp_path / "out.toml").read_text())
    assert data["server"]["listen"] == ["0.0.0.0@5353", "::@5353"]
    assert data["server"]["key-directory"] == "/var/cache/bind"  # BIND's default


@pytest.mark.interop
def test_dry_run_and_unsynced_journal_note(
    setup_dir: Path, tmp_path: Path, dnsseal: Dnsseal
) -> None:
    (setup_dir / "alpha.test.zone.jnl").write_bytes(b";BIND LOG V9.2\n\x00" + bytes(48))
    out = tmp_path / "never.toml"
    r = dnsseal("import-bind", setup_dir / "named.conf", "-o", out, "-n")
    assert not out.exists() and not out.with_name("never.policies.toml").exists()
    assert '[zone."alpha.test"]' in r.stdout and "[policy.migrate]" in r.stdout
    assert "alpha.test.zone.jnl holds dynamic updates" in r.stderr
    assert "rndc sync -clean" in r.stderr


def test_config_serve_would_refuse_is_not_written(tmp_path: Path, dnsseal: Dnsseal) -> None:
    # BIND takes a TSIG secret shorter than the MAC; dnsseal (RFC 8945 6.2) does not.
    (tmp_path / "z").write_text("@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 127.0.0.1\n")
    conf = tmp_path / "named.conf"
    conf.write_text(
        f'key short {{ algorithm hmac-sha256; secret "c2hvcnQ="; }};\n'
        f'options {{ directory "{tmp_path}"; }};\n'
        'zone "a.test" { type primary; file "z"; dnssec-policy default; '
        "allow-transfer { key short; }; };\n"
    )
    out = tmp_path / "out" / "dnsseal.toml"
    out.parent.mkdir()
    r = dnsseal("import-bind", conf, "-o", out, ok=False)
    assert r.exit_code == 1
    assert "key.short.secret: 5 octets: hmac-sha256 needs at least 32" in r.stderr, r.stderr
    assert "/tmp/tmp" not in r.stderr  # no scratch paths
    assert list(out.parent.iterdir()) == []
