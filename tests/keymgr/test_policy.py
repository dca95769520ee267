"""The dnssec-policy model: defaults, TOML and named.conf forms, checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Dnsseal, run_tool
from dnsseal.errors import FileFormatError
from dnsseal.policy import checks, model, namedconf, tomlfmt
from dnsseal.policy.build import PolicyErrors

NAMED_CONF = """
options { directory "/var/cache/bind"; /* a
multi-line comment */ };
# hash comment
// slash comment
dnssec-policy "normal" {
    keys {
        ksk key-directory lifetime P1Y algorithm ecdsap256sha256;   // the KSK
        zsk lifetime 60d algorithm 13;
    };
    dnskey-ttl 2h;
    publish-safety PT2H;
    nsec3param iterations 0 optout no salt-length 0;
    cds-digest-types { sha-256; sha-384; };
    purge-keys 0;
};
zone "example" { type primary; file "example.db"; dnssec-policy "normal"; };
"""


def test_builtin_default_matches_bind_918() -> None:
    p = model.DEFAULT
    assert p.keys == (model.KeySpec("csk", 13, model.UNLIMITED),)
    assert p.nsec3param is None
    expected = {
        "dnskey-ttl": 3600,
        "publish-safety": 3600,
        "retire-safety": 3600,
        "purge-keys": 90 * 86400,
        "signatures-refresh": 5 * 86400,
        "signatures-validity": 14 * 86400,
        "signatures-validity-dnskey": 14 * 86400,
        "max-zone-ttl": 86400,
        "zone-propagation-delay": 300,
        "parent-ds-ttl": 86400,
        "parent-propagation-delay": 3600,
    }
    assert {k: p.get(k) for k in expected} == expected
    assert model.INSECURE.keys == () and model.INSECURE.manage
    assert not model.NONE.manage
    assert checks.check_policy(model.DEFAULT) == []


def test_option_table_defaults_are_the_dataclass_defaults() -> None:
    p = model.Policy("x")
    for opt in model.OPTIONS:
        assert p.get(opt.name) == opt.default, opt.name


def test_intervals_hand_computed() -> None:
    p = model.DEFAULT
    assert p.ipub == 3600 + 300 + 3600
    assert p.iret_ksk == 3600 + 86400 + 3600
    assert p.sign_delay == 9 * 86400
    assert p.iret_zsk == 9 * 86400 + 300 + 86400 + 3600


def test_named_conf_import() -> None:
    pols = namedconf.parse(NAMED_CONF, "named.conf")
    p = pols["normal"]
    assert p.keys == (
        model.KeySpec("ksk", 13, 365 * 86400, None, True),
        model.KeySpec("zsk", 13, 60 * 86400),
    )
    assert p.dnskey_ttl == 7200 and p.publish_safety == 7200 and p.purge_keys == 0
    assert p.cds_digest_types == (2, 4)
    assert p.nsec3param == model.Nsec3Param(0, False, 0)
    assert tomlfmt.parse(tomlfmt.format(pols.values())) == pols


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('dnssec-policy "a" { dnskey-ttl 1h; ', 1, "never closed"),
        ('dnssec-policy "a" {\n dnskey-ttl 1h }; ', 2, "missing ';'"),
        ("/* x\n\n", 1, "unterminated"),
        ('dnssec-policy "a" {\n keys { ksk foo; }; };', 2, "unexpected 'foo'"),
    ],
)
def test_named_conf_errors_name_the_line(text: str, line: int, what: str) -> None:
    with pytest.raises(FileFormatError) as ei:
        namedconf.parse(text, "n.conf")
    assert ei.value.line == line and what in ei.value.message


BIND_NAMES = ["ecdsa256", "ECDSA384", "rsasha256", "RSASHA512", "ed25519", "Ed448",
              "ecdsap256sha256", "13", "8"]  # fmt: skip


@pytest.mark.interop
def test_algorithm_names_as_bind_reads_them(tmp_path: Path) -> None:
    """Every algorithm spelling BIND accepts in a dnssec-policy (aliases such as ecdsa256,
    any case, numbers) names the algorithm `dnssec-keygen -k POLICY` makes keys of."""
    for i, name in enumerate(BIND_NAMES):
        text = (f'dnssec-policy "p{i}" {{ manual-mode no; keys {{\n'
                f"  ksk lifetime unlimited algorithm {name};\n"
                f"  zsk lifetime P60D algorithm {name}; }}; }};\n")  # fmt: skip
        conf = tmp_path / f"p{i}.conf"
        conf.write_text(text.replace("manual-mode no; ", ""))  # BIND 9.18 lacks the option
        out = tmp_path / f"k{i}"
        out.mkdir()
        run_tool(["dnssec-keygen", "-q", "-K", out, "-k", f"p{i}", "-l", conf, "example"])
        theirs = {int(f.name.split("+")[1]) for f in out.glob("*.key")}
        ours = namedconf.parse(text, str(conf))[f"p{i}"]
        assert {k.algorithm for k in ours.keys} == theirs, name


def test_manual_mode_is_imported_and_round_trips() -> None:
    text = 'dnssec-policy "m" { manual-mode yes; keys { csk lifetime unlimited algorithm 13; }; };'
    pol = namedconf.parse(text, "n.conf")["m"]
    assert pol.manual_mode is True
    assert tomlfmt.parse(tomlfmt.format([pol]), "p.toml")["m"] == pol
    text = text.replace("manual-mode yes", "manual-mode no")
    assert namedconf.parse(text, "n.conf")["m"].manual_mode is False
    with pytest.raises(PolicyErrors) as ei:
        namedconf.parse(text.replace("manual-mode no", "manual-mode maybe"), "n.conf")
    assert "policy.m.manual-mode" in str(ei.value)


def test_toml_collects_every_problem_with_its_path() -> None:
    text = """
[policy.bad]
dnskey-ttl = "soon"
frobnicate = 1
keys = [ { role = "ksk", algorithm = "RSASHA1" }, { role = "zz", algorithm = 13 } ]
nsec3param = { iterations = 5, salt = 3 }
[policy.insecure]
[zones]
"""
    with pytest.raises(PolicyErrors) as ei:
        tomlfmt.parse(text, "p.toml")
    paths = [e.option for e in ei.value.errors]
    assert paths == [
        "zones",
        "policy.bad.dnskey-ttl",
        "policy.bad.frobnicate",
        "policy.bad.keys[0].algorithm",
        "policy.bad.keys[1].role",
        "policy.bad.nsec3param.salt",
        "policy.insecure",
    ]
    assert "p.toml" in str(ei.value)


def test_toml_syntax_error_names_line() -> None:
    with pytest.raises(FileFormatError) as ei:
        tomlfmt.parse("[policy.a]\ndnskey-ttl = = 3\n", "p.toml")
    assert ei.value.line == 2


def test_checks_report_unsafe_policies() -> None:
    p = model.Policy(
        "p",
        keys=(model.KeySpec("ksk", 13, 86400), model.KeySpec("zsk", 13, 10 * 86400)),
        signatures_refresh=3600,
        nsec3param=model.Nsec3Param(iterations=10),
    )
    found = {(e.option, e.message.split(" ")[0]) for e in checks.check_policy(p)}
    assert ("policy.p.keys[0].lifetime", "KSK") in found
    assert ("policy.p.keys[1].lifetime", "ZSK") in found  # 10d < Ipub + Dsgn (14d - 1h) + ...
    assert any(o == "policy.p.signatures-refresh" for o, _ in found)
    assert ("policy.p.nsec3param.iterations", "10") in found
    lonely = model.Policy("q", keys=(model.KeySpec("ksk", 13),))
    assert [e.option for e in checks.check_policy(lonely)] == ["policy.q.keys"]


durations = st.integers(min_value=0, max_value=3 * 365 * 86400)
key_specs = st.builds(
    model.KeySpec,
    role=st.sampled_from(model.ROLES),
    algorithm=st.sampled_from([8, 10, 13, 14, 15, 16]),
    lifetime=durations,
    bits=st.none(),
    key_directory=st.booleans(),
)
policies = st.builds(
    model.Policy,
    name=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(
        lambda n: n not in model.BUILTIN
    ),
    keys=st.lists(key_specs, max_size=4).map(tuple),
    nsec3param=st.none()
    | st.builds(
        model.Nsec3Param,
        st.integers(0, 65535),
        st.booleans(),
        st.integers(0, 255),
    ),
    dnskey_ttl=durations,
    publish_safety=durations,
    retire_safety=durations,
    purge_keys=durations,
    signatures_refresh=durations,
    signatures_validity=durations,
    signatures_validity_dnskey=durations,
    signatures_jitter=durations,
    max_zone_ttl=durations,
    zone_propagation_delay=durations,
    parent_ds_ttl=durations,
    parent_propagation_delay=durations,
    cdnskey=st.booleans(),
    cds_digest_types=st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=3).map(tuple),
    inline_signing=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(policies, max_size=3, unique_by=lambda p: p.name))
def test_toml_round_trip(pols: list[model.Policy]) -> None:
    text = tomlfmt.format(pols)
    assert tomlfmt.parse(text) == {p.name: p for p in pols}


ROLLOVER_STYLE = """
/* policies written the way BIND's rollover system tests write theirs */
dnssec-policy "prepub" {
\tsignatures-refresh P1W;
\tsignatures-validity P2W;
\tsignatures-validity-dnskey P2W;

\tdnskey-ttl 3600;
\tpublish-safety P1D;
\tretire-safety P2D;
\tpurge-keys PT1H;

\tkeys {
\t\tksk key-directory lifetime unlimited algorithm ecdsa256;
\t\tzsk key-directory lifetime P30D algorithm ecdsa256;
\t};

\tzone-propagation-delay PT1H;
\tmax-zone-ttl 1d;
};

dnssec-policy "enable" {
\tdnskey-ttl 300;
\tmax-zone-ttl PT12H;
\tzone-propagation-delay PT5M;
\tretire-safety PT20M;
\tpublish-safety PT5M;
\tparent-propagation-delay 1h;
\tparent-ds-ttl 2h;
\tnsec3param iterations 0 optout no salt-length 0;
\tkeys { csk lifetime P6M algorithm 13; };
};
"""


@pytest.mark.interop
def test_bind_rollover_style_policies_import(dnsseal: Dnsseal, tmp_path: Path) -> None:
    """named-checkconf accepts the file, `dnsseal policy import` converts it, and each key
    line's lifetime is the one `dnssec-keygen -k` writes."""
    conf = tmp_path / "kasp.conf"
    conf.write_text(ROLLOVER_STYLE)
    run_tool(["named-checkconf", conf])
    toml_text = dnsseal("policy", "import", conf).stdout
    pols = tomlfmt.parse(toml_text)
    assert set(pols) == {"prepub", "enable"}
    assert pols["prepub"].publish_safety == 86400 and pols["prepub"].purge_keys == 3600
    assert pols["enable"].nsec3param == model.Nsec3Param(0, False, 0)
    for name, pol in pols.items():
        out = tmp_path / name
        out.mkdir()
        run_tool(["dnssec-keygen", "-q", "-K", out, "-k", name, "-l", conf, "example"])
        theirs = sorted(
            int(line.split()[1])
            for f in out.glob("*.state")
            for line in f.read_text().splitlines()
            if line.startswith("Lifetime:")
        )
        assert theirs == sorted(k.lifetime for k in pol.keys), name
        algs = {int(f.name.split("+")[1]) for f in out.glob("*.key")}
        assert algs == {k.algorithm for k in pol.keys}
