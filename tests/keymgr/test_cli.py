"""The policy and keys commands on real key directories, with BIND's tools as oracles."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest
from click.testing import CliRunner, Result

from conftest import free_port, require_tool, run_tool
from dnsseal.cli.main import cli
from dnsseal.keymgr import step
from dnsseal.keymgr.plan import Facts
from dnsseal.keys.model import RecordState
from dnsseal.policy import tomlfmt
from dnsseal.storage.keydir import KeyDirectory

from .test_policy import NAMED_CONF

O = RecordState.OMNIPRESENT  # noqa: E741
ZONE = dns.name.from_text("example.")
POLICY_TOML = """
[policy.kz]
keys = [
  { role = "ksk", lifetime = "P1Y", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "P60D", algorithm = "ECDSAP256SHA256" },
]
"""


def dnsseal(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_policy_check_ok_and_every_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(POLICY_TOML)
    r = dnsseal("policy", "check", good)
    assert r.exit_code == 0 and "1 policies OK (kz)" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[policy.p]\nfoo = 1\nsignatures-refresh = "P20D"\n'
        'keys = [ { role = "zsk", lifetime = "P1D", algorithm = 13 } ]\n'
        "nsec3param = { iterations = 10 }\n"
    )
    r = dnsseal("policy", "check", bad)
    assert r.exit_code == 1
    for path in (
        "policy.p.foo",
        "policy.p.keys[0].lifetime",
        "policy.p.keys",
        "policy.p.signatures-refresh",
        "policy.p.nsec3param.iterations",
    ):
        assert f"{bad}: {path}: " in r.output, path


@pytest.mark.interop
def test_policy_import_of_a_config_bind_accepts(tmp_path: Path) -> None:
    conf = tmp_path / "named.conf"
    # BIND 9.18 does not know cds-digest-types (9.20 does): leave it out for named-checkconf
    text = NAMED_CONF.replace('file "example.db";', 'file "/dev/null"; inline-signing yes;')
    conf.write_text(text.replace("cds-digest-types { sha-256; sha-384; };", ""))
    run_tool(["named-checkconf", conf])  # BIND agrees the input is valid
    r = dnsseal("policy", "import", conf)
    assert r.exit_code == 0, r.output
    pols = tomlfmt.parse(r.output)
    assert pols["normal"].dnskey_ttl == 7200 and len(pols["normal"].keys) == 2
    out = tmp_path / "p.toml"
    out.write_text(r.output)
    assert dnsseal("policy", "check", out).exit_code == 0


@pytest.mark.interop
def test_keys_run_status_checkds_rollover_and_bind_reads_the_directory(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(POLICY_TOML)
    base = ["-K", tmp_path, "-p", "kz", "-c", tmp_path / "p.toml"]
    r = dnsseal("keys", "run", "example", *base, "--now", "20260101000000")
    assert r.exit_code == 0, r.output
    assert r.output.count("created") == 2
    r = dnsseal("keys", "run", "example", *base, "--now", "20260103000000")
    assert "DS hidden -> rumoured" in r.output and "not yet seen at the parent" in r.output
    keys = KeyDirectory(tmp_path).keys(ZONE)
    ksk = next(k for k in keys if k.role == "ksk")
    zsk = next(k for k in keys if k.role == "zsk")
    r = dnsseal("keys", "status", "example", *base, "--now", "20260103000000")
    assert r.output.startswith("dnssec-policy: kz\ncurrent time:  Sat Jan  3 00:00:00 2026")
    assert f"key: {ksk.tag} (ECDSAP256SHA256), KSK" in r.output
    assert "  - ds:             rumoured" in r.output
    r = dnsseal("keys", "checkds", "example", *base, "--key", str(ksk.tag), "published",
                "--now", "20260103010000")  # fmt: skip
    assert "ds_publish set to 20260103010000" in r.output
    dnsseal("keys", "run", "example", *base, "--now", "20260105000000")
    ksk2 = next(k for k in KeyDirectory(tmp_path).keys(ZONE) if k.tag == ksk.tag)
    assert ksk2.state is not None and ksk2.state.ds is O
    # BIND's own tool reads what dnsseal wrote, with the same times
    out = run_tool(["dnssec-settime", "-p", "all", tmp_path / f"{ksk.basename}.key"]).stdout
    assert "DS Publish: Sat Jan  3 01:00:00 2026" in out
    assert "Inactive: Fri Jan  1 00:00:00 2027" in out
    assert "SYNC Publish: Fri Jan  2 01:05:00 2026" in out
    # operator rollover of the ZSK
    r = dnsseal(
        "keys", "rollover", "example", *base, "--key", str(zsk.tag), "--now", "20260106000000"
    )
    assert r.exit_code == 0 and "rolling over to" in r.output
    after = KeyDirectory(tmp_path).keys(ZONE)
    assert len(after) == 3
    new = next(k for k in after if k.state and k.state.predecessor == zsk.tag)
    out = run_tool(["dnssec-settime", "-p", "all", tmp_path / f"{new.basename}.key"]).stdout
    assert "Publish: Tue Jan  6 00:00:00 2026" in out
    # an ambiguous or unknown tag is a clear option error
    args = ["keys", "rollover", "example", *map(str, base), "--key", "1"]
    r = CliRunner().invoke(cli, args, standalone_mode=False)
    assert r.exit_code != 0 and "no key with tag 1" in str(r.exception)


@pytest.mark.interop
def test_bind_keys_are_adopted_without_changing_published_records(tmp_path: Path) -> None:
    common = ["-K", tmp_path, "-a", "ECDSAP256SHA256", "-L", "3600"]
    times = ["-P", "now-400d", "-A", "now-400d"]
    run_tool(["dnssec-keygen", *common, "-f", "KSK", *times, "-P", "sync", "now-399d", "example"])
    run_tool(["dnssec-keygen", *common, *times, "example"])
    keys = KeyDirectory(tmp_path).keys(ZONE)
    assert len(keys) == 2 and all(k.state is None for k in keys)
    p = tomlfmt.parse(POLICY_TOML.replace('"P1Y"', '"unlimited"').replace('"P60D"', '"unlimited"'))
    now = max(k.timings.activate or 0 for k in keys) + 400 * 86400
    plan = step(p["kz"], keys, Facts(), now)
    assert plan.created == [] and plan.to_generate == ()
    assert {k.id for k in plan.dnskeys} == {k.id for k in keys}
    ksk = next(k for k in keys if k.is_ksk)
    zsk = next(k for k in keys if not k.is_ksk)
    assert [k.id for k in plan.ksk_signers] == [ksk.id]
    assert [k.id for k in plan.zsk_signers] == [zsk.id]
    assert [k.id for k in plan.cds] == [ksk.id]
    st = plan.report(ksk).key.state
    assert st is not None and (st.dnskey, st.krrsig, st.ds, st.goal) == (O, O, O, O)
    assert all(not any("->" in c for c in r.changes) for r in plan.keys)
    # the command does the same on disk: no new key, BIND still reads every file
    toml = tmp_path / "p.toml"
    toml.write_text(tomlfmt.format(p.values()))
    r = dnsseal("keys", "run", "example", "-K", tmp_path, "-p", "kz", "-c", toml)
    assert r.exit_code == 0 and "created" not in r.output, r.output
    assert len(list(tmp_path.glob("*.key"))) == 2 and len(list(tmp_path.glob("*.state"))) == 2
    for f in tmp_path.glob("*.key"):
        run_tool(["dnssec-settime", "-p", "all", f])


def test_timeline_json_and_svg(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(POLICY_TOML)
    svg = tmp_path / "t.svg"
    r = dnsseal("keys", "timeline", "example", "-K", tmp_path, "-p", "kz", "-c",
                tmp_path / "p.toml", "--now", "20260101000000", "--until", "P150D",
                "--assume-ds-after", "PT2H", "--json", "--svg", svg)  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["bogus_windows"] == []
    what = [e["event"] for e in doc["events"]]
    assert what.count("key created") == 4  # KSK, ZSK and two ZSK successors
    assert "DS expected at the parent" in what and "removed: DNSKEY out of the zone" in what
    assert svg.read_text().startswith("<svg") and svg.read_text().count("<rect") > 10
    assert list(tmp_path.glob("*.key")) == []  # a what-if creates nothing


def test_daily_runs_roll_and_purge_key_files(tmp_path: Path) -> None:
    """Run the key manager once a day, as cron would: the ZSK rolls, the old key's files
    are deleted purge-keys after it is gone, and every step leaves BIND-readable files."""
    conf = tmp_path / "p.toml"
    conf.write_text(
        POLICY_TOML.replace('"P60D"', '"P12D"').replace(
            "[policy.kz]", '[policy.kz]\npurge-keys = "P1D"'
        )
    )
    base = ["-K", tmp_path, "-p", "kz", "-c", conf]
    first_zsk = None
    for day in range(27):
        r = dnsseal("keys", "run", "example", *base, "--now", f"+{day}d")
        assert r.exit_code == 0, r.output
        if first_zsk is None:
            first_zsk = next(k for k in KeyDirectory(tmp_path).keys(ZONE) if k.role == "zsk")
    assert first_zsk is not None
    left = KeyDirectory(tmp_path).keys(ZONE)
    assert first_zsk.id not in {k.id for k in left}
    assert not (tmp_path / f"{first_zsk.basename}.private").exists()
    assert len([k for k in left if k.role == "zsk"]) >= 2  # the successor and its successor


RNDC_KEY = 'key "rk" {{ algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"; }};'
NAMED_CONF_TEMPLATE = (
    RNDC_KEY
    + """
controls {{ inet 127.0.0.1 port {cport} allow {{ 127.0.0.1; }} keys {{ "rk"; }}; }};
options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
          pid-file "{d}/named.pid"; recursion no; }};
dnssec-policy "kz" {{ keys {{ ksk lifetime unlimited algorithm 13;
                             zsk lifetime P60D algorithm 13; }}; }};
zone "example" {{ type primary; file "{d}/example.db"; dnssec-policy "kz";
                  key-directory "{d}/keys"; inline-signing yes; }};
"""
)


@pytest.mark.interop
def test_bind_takes_over_a_key_directory_run_by_dnsseal(tmp_path: Path) -> None:
    """named serves the keys dnsseal made, creates none, and `rndc dnssec -status` says
    what `dnsseal keys status` says, line for line."""
    keydir = tmp_path / "keys"
    keydir.mkdir()
    conf = tmp_path / "p.toml"
    conf.write_text(POLICY_TOML.replace('"P1Y"', '"unlimited"'))
    for when in ("-3d", "-1d", "now"):
        assert dnsseal("keys", "run", "example", "-K", keydir, "-p", "kz", "-c", conf,
                       "--now", when).exit_code == 0  # fmt: skip
    ours = {k.tag for k in KeyDirectory(keydir).keys(ZONE)}
    (tmp_path / "example.db").write_text(
        "$TTL 300\n@ SOA ns1 host 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n"
    )
    port, cport = free_port(), free_port()
    named_conf = tmp_path / "named.conf"
    named_conf.write_text(NAMED_CONF_TEMPLATE.format(d=tmp_path, port=port, cport=cport))
    rndc_conf = tmp_path / "rndc.conf"
    rndc_conf.write_text(
        RNDC_KEY.format() + f' options {{ default-key "rk"; default-server 127.0.0.1; '
        f"default-port {cport}; }};"
    )
    run_tool(["named-checkconf", named_conf])
    proc = subprocess.Popen(
        [require_tool("named"), "-g", "-c", str(named_conf)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        served: set[int] = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not served:
            time.sleep(0.3)
            q = dns.message.make_query("example.", dns.rdatatype.DNSKEY)
            try:
                resp = dns.query.udp(q, "127.0.0.1", port=port, timeout=1)
            except (dns.exception.Timeout, OSError):
                continue
            for rrset in resp.answer:
                if rrset.rdtype == dns.rdatatype.DNSKEY:
                    served = {dns.dnssec.key_id(rd) for rd in rrset}
        bind_status = run_tool(["rndc", "-c", rndc_conf, "dnssec", "-status", "example"]).stdout
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert served == ours, out[-3000:]
    assert {k.tag for k in KeyDirectory(keydir).keys(ZONE)} == ours  # BIND made no new key
    r = dnsseal("keys", "status", "example", "-K", keydir, "-p", "kz", "-c", conf)

    def shape(text: str) -> list[str]:
        """Header and per-key blocks (BIND lists keys in directory order: sort them)."""
        skip = ("current time:", "  waiting:")
        lines = [x.rstrip() for x in text.strip().splitlines() if not x.startswith(skip)]
        blocks = "\n".join(lines).split("\n\nkey: ")
        return blocks[:1] + sorted(blocks[1:])

    assert shape(r.output) == shape(bind_status)


def test_policy_check_reads_named_conf_too(tmp_path: Path) -> None:
    conf = tmp_path / "named.conf"
    conf.write_text(NAMED_CONF)
    r = dnsseal("policy", "check", conf)
    assert r.exit_code == 0 and "1 policies OK (normal)" in r.output
    conf.write_text(NAMED_CONF.replace("dnskey-ttl 2h;", "dnskey-tll 2h;"))
    r = dnsseal("policy", "check", conf)
    assert r.exit_code == 1 and "policy.normal.dnskey-tll: unknown option" in r.output


def test_keys_commands_refuse_a_policy_that_policy_check_refuses(tmp_path: Path) -> None:
    """Regression: `keys run -c` ran a policy whose ZSK lifetime is shorter than a rollover
    (which `policy check` and `serve` refuse), and made keys under it."""
    conf = tmp_path / "p.toml"
    conf.write_text(
        '[policy.short]\nkeys = [ { role = "ksk", lifetime = "unlimited", algorithm = 13 },'
        ' { role = "zsk", lifetime = "P1D", algorithm = 13 } ]\n'
    )
    for cmd in ("run", "timeline"):
        r = CliRunner().invoke(
            cli, ["keys", cmd, "example", "-K", str(tmp_path), "-p", "short", "-c", str(conf)]
        )
        assert r.exit_code != 0, r.output
        assert "policy.short.keys[1].lifetime" in r.output, r.output
        assert "Traceback" not in r.output
    assert not list(tmp_path.glob("K*")), "no key made under a refused policy"


def test_policy_check_refuses_a_csk_under_offline_ksk(tmp_path: Path) -> None:
    """As BIND's kaspconf does (its checkconf test bad-offline-ksk): with offline-ksk the
    KSK's private key is elsewhere, so a CSK, which also signs the zone, cannot work."""
    conf = tmp_path / "p.toml"
    conf.write_text(
        '[policy.off]\noffline-ksk = true\nkeys = [ { role = "ksk", algorithm = 13 },'
        ' { role = "zsk", algorithm = 13 }, { role = "csk", algorithm = 13 } ]\n'
    )
    r = dnsseal("policy", "check", conf)
    assert r.exit_code == 1
    assert f"{conf}: policy.off.keys[2].role: a CSK cannot be used with offline-ksk" in r.output
    conf.write_text(
        '[policy.off]\noffline-ksk = true\nkeys = [ { role = "ksk", algorithm = 13 },'
        ' { role = "zsk", algorithm = 13 } ]\n'
    )
    assert dnsseal("policy", "check", conf).exit_code == 0


def test_keys_commands_under_offline_ksk_make_no_key(tmp_path: Path) -> None:
    """Regression: `keys run` under an offline-ksk policy made a KSK in the online key
    directory (whose private key must never be here) and `keys timeline` planned KSK rolls.
    Under offline-ksk the keys come from `ksr keygen` and the signed key response."""
    conf = tmp_path / "p.toml"
    conf.write_text(
        '[policy.off]\noffline-ksk = true\nkeys = [ { role = "ksk", algorithm = 13 },'
        ' { role = "zsk", algorithm = 13 } ]\n'
    )
    base = ["example", "-K", str(tmp_path), "-p", "off", "-c", str(conf)]
    for cmd in (["run"], ["timeline"], ["run", "--dry-run"][:1]):
        r = CliRunner().invoke(cli, ["keys", *cmd, *base])
        assert r.exit_code != 0 and "uses offline-ksk" in r.output, r.output
        assert "Traceback" not in r.output
    assert not list(tmp_path.glob("K*")), "no key made under offline-ksk"
    r = CliRunner().invoke(cli, ["keys", "status", *base])
    assert r.exit_code == 0 and "No keys." in r.output, r.output
