"""Server configs and policy files accept each other where it makes sense (issue #17):
`dnsseal policy check` reads the policies of a server config ([policy.NAME] tables and the
file server.policies names), `checkconf` and `serve` read [policy.NAME] tables, `serve`
refuses a policy-only file with a sentence saying what it is, and a named.conf given to
checkconf points at import-bind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import Dnsseal

DNSSEAL = Path(sys.executable).parent / "dnsseal"
ZONE = """\
$ORIGIN example.com.
$TTL 300
@ SOA ns1 hostmaster 1 3600 900 604800 300
@ NS ns1
ns1 A 192.0.2.1
"""
POLICY = """\
[policy.fast]
dnskey-ttl = "PT10M"
keys = [{ role = "csk", lifetime = "unlimited", algorithm = "ECDSAP384SHA384" }]
"""
SERVER = """\
[server]
state-dir = "state"
policies = "more.toml"

[zone."example.com"]
file = "example.com.zone"
dnssec-policy = "fast"
"""
MORE = '[policy.other]\nkeys = [{ role = "csk", algorithm = 13 }]\n'


def setup(tmp: Path, server: str = SERVER, policy: str = POLICY) -> Path:
    (tmp / "example.com.zone").write_text(ZONE)
    (tmp / "more.toml").write_text(MORE)
    conf = tmp / "dnsseal.toml"
    conf.write_text(server + "\n" + policy)
    return conf


def test_policy_check_reads_the_policies_of_a_server_config(
    tmp_path: Path, dnsseal: Dnsseal
) -> None:
    conf = setup(tmp_path)
    r = dnsseal("policy", "check", conf)
    assert r.output.strip() == f"{conf}: 2 policies OK (fast, other)", r.output
    dnsseal("checkconf", "-z", conf)


def test_a_bad_inline_policy_has_the_same_path_in_policy_check_and_checkconf(
    tmp_path: Path, dnsseal: Dnsseal
) -> None:
    conf = setup(tmp_path, policy=POLICY + 'dnskey-tll = "1h"\n')
    r = dnsseal("policy", "check", conf, ok=False)
    assert r.exit_code == 1
    assert (
        r.output.splitlines()
        == [f"{conf}: policy.fast.dnskey-tll: unknown option (did you mean 'dnskey-ttl'?)"]
        or "policy.fast.dnskey-tll: unknown option" in r.output
    ), r.output
    r = dnsseal("checkconf", conf, ok=False)
    assert r.exit_code == 1
    assert r.output.startswith(f"{conf}: policy.fast.dnskey-tll: unknown option"), r.output


def test_a_policy_unsafe_for_policy_check_stops_checkconf(tmp_path: Path, dnsseal: Dnsseal) -> None:
    hasty = POLICY.replace(
        'dnskey-ttl = "PT10M"',
        'signatures-refresh = "P14D"\nsignatures-validity = "P14D"\n'
        'signatures-validity-dnskey = "P14D"',
    )
    conf = setup(tmp_path, policy=hasty)
    pc = dnsseal("policy", "check", conf, ok=False)
    cc = dnsseal("checkconf", conf, ok=False)
    assert pc.exit_code == cc.exit_code == 1
    paths = {line.split(": ")[1] for line in pc.output.splitlines()}
    assert paths and all(f"{conf}: {p}: " in cc.output for p in paths), (pc.output, cc.output)


def test_a_policy_defined_twice_is_an_error(tmp_path: Path, dnsseal: Dnsseal) -> None:
    conf = setup(tmp_path, policy=POLICY.replace("[policy.fast]", "[policy.other]"))
    conf.write_text(conf.read_text().replace('"fast"', '"other"'))
    for cmd in ("checkconf", "policy"):
        args = ("checkconf", conf) if cmd == "checkconf" else ("policy", "check", conf)
        r = dnsseal(*args, ok=False)
        assert r.exit_code == 1 and "policy.other: defined twice" in r.output, r.output


def test_checkconf_of_a_policy_file_warns_and_serve_refuses_it(
    tmp_path: Path, dnsseal: Dnsseal
) -> None:
    pfile = tmp_path / "policies.toml"
    pfile.write_text(POLICY)
    r = dnsseal("checkconf", pfile)
    assert "warning: defines dnssec-policies (fast) but no zones" in r.output, r.output
    dnsseal("policy", "check", pfile)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run(
        [str(DNSSEAL), "serve", "-c", str(pfile)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=os.environ, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "defines dnssec-policies (fast) but no zones" in err and "server.policies" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_checkconf_of_a_named_conf_points_at_import_bind(tmp_path: Path, dnsseal: Dnsseal) -> None:
    conf = tmp_path / "named.conf"
    conf.write_text('options {\n\tdirectory "/var/cache/bind";\n};\nzone "example.com" {\n'
                    '\ttype primary;\n\tfile "db.example.com";\n};\n')  # fmt: skip
    r = dnsseal("checkconf", conf, ok=False)
    assert r.exit_code == 1
    assert f"dnsseal import-bind {conf} -o dnsseal.toml" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


def test_checkconf_checks_the_resolver_section(tmp_path: Path, dnsseal: Dnsseal) -> None:
    conf = setup(tmp_path, policy=POLICY + '\n[resolver]\ncache-size = "lots"\n')
    r = dnsseal("checkconf", conf, ok=False)
    assert r.exit_code == 1
    assert r.output.strip() == f"{conf}: resolver.cache-size: 'lots' is not a size (e.g. \"64m\")"


def test_keys_commands_take_a_server_config_for_their_policies(
    tmp_path: Path, dnsseal: Dnsseal
) -> None:
    conf = setup(tmp_path)
    r = dnsseal("keys", "timeline", "-K", tmp_path, "-c", conf, "-p", "fast", "--json",
                "--until", "P1D", "example.com")  # fmt: skip
    assert json.loads(r.output)["policy"] == "fast"
    r = dnsseal("keys", "timeline", "-K", tmp_path, "-c", conf, "-p", "other", "--until", "P1D",
                "example.com")  # fmt: skip
    assert "csk" in r.output.lower(), r.output
