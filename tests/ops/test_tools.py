"""checkzone / checkconf / tsig-keygen / journalprint against BIND's own tools, and
`ctl retransfer` against a real named primary (issue #17)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from automation.conftest import DNSSEAL, dnsseal_serve, write_config, zone_text
from automation.test_bump import ZONE as HID
from automation.test_bump import hidden_primary, nsupdate, primaries_config
from conftest import free_port, require_tool
from dnsseal.storage.serverconfig import load_config

HEAD = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 host 5 60 30 600 60\n"
ZONES = {
    "good": HEAD + "@ NS ns1\nns1 A 192.0.2.1\nwww AAAA 2001:db8::1\n",
    "ns-no-address": HEAD + "@ NS ns1\n@ NS ns2.other.net.\nwww A 192.0.2.1\n",
    "cname-and-other": HEAD + "@ NS ns1\nns1 A 192.0.2.1\nwww CNAME ns1\nwww A 192.0.2.3\n",
    "bad-address": HEAD + "@ NS ns1\nns1 A 192.0.2.1\nwww A 300.1.1.1\n",
    "no-ns": HEAD + "ns1 A 192.0.2.1\n",
    "warnings": HEAD + "@ NS ns1\nns1 A 192.0.2.1\n@ MX 10 alias\n@ MX 20 nomail\n"
    "alias CNAME ns1\nsub NS ns.sub\n_s._tcp SRV 0 0 1 alias\n",
    "ns-is-cname": HEAD + "@ NS ns1\nns1 CNAME www\nwww A 192.0.2.1\n",
}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.interop
@pytest.mark.parametrize("name", sorted(ZONES))
def test_checkzone_agrees_with_named_checkzone(tmp_path: Path, name: str) -> None:
    (tmp_path / "z.db").write_text(ZONES[name])
    bind = run([require_tool("named-checkzone"), "example.com", "z.db"], tmp_path)
    ours = run([str(DNSSEAL), "checkzone", "example.com", "z.db"], tmp_path)
    assert ours.returncode == bind.returncode, (bind.stdout, ours.stdout)
    assert ours.stderr == ""
    # BIND's "zone example.com/IN: ..." lines (findings, loaded serial, not loaded) are
    # ours too, word for word; a syntax error names the same file and line
    for line in bind.stdout.splitlines():
        if line.startswith("zone ") and "loading from master file" not in line:
            if "(out of zone) has no addresses records" in line:
                continue  # BIND's second, misspelt line about the same glue
            assert line in ours.stdout.splitlines(), (line, ours.stdout)
        m = re.match(r"dns_\w+: (z\.db:\d+): ", line)
        if m:
            assert m.group(1) in ours.stdout, (line, ours.stdout)
    if bind.returncode == 0:
        assert ours.stdout.splitlines()[-1] == "OK"


def test_checkzone_quiet_and_missing_file(tmp_path: Path) -> None:
    missing = run([str(DNSSEAL), "checkzone", "example.com", "nope.db"], tmp_path)
    assert missing.returncode == 1 and "nope.db" in missing.stdout
    assert "Traceback" not in missing.stderr
    (tmp_path / "z.db").write_text(ZONES["good"])
    quiet = run([str(DNSSEAL), "checkzone", "-q", "example.com", "z.db"], tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_checkconf_lists_every_problem_with_its_option_path(tmp_path: Path) -> None:
    port = free_port()
    conf = write_config(tmp_path, port, {"a.example.": zone_text("a.example.")})
    ok = run([str(DNSSEAL), "checkconf", "-z", str(conf)], tmp_path)
    assert ok.returncode == 0, ok
    assert ok.stdout.strip() == "zone a.example/IN: loaded serial 1"
    assert run([str(DNSSEAL), "checkconf", str(conf)], tmp_path).stdout == ""  # as named
    # a zone that does not load: -z says so, exit 1; without -z the config is fine
    (tmp_path / "zones" / "a.example.zone").write_text("$ORIGIN a.example.\n@ 2 SOA x\n")
    bad_zone = run([str(DNSSEAL), "checkconf", "-z", str(conf)], tmp_path)
    assert bad_zone.returncode == 1
    assert "zone a.example/IN: not loaded due to errors." in bad_zone.stdout
    assert "a.example.zone:2:" in bad_zone.stdout
    assert run([str(DNSSEAL), "checkconf", str(conf)], tmp_path).returncode == 0
    # several problems: one line each, with the option path
    text = conf.read_text().replace('allow-transfer = ["127.0.0.1"]', 'allow-transfer = ["nope"]')
    conf.write_text(text.replace("[server]", "[server]\nworkers = 0\nbogus = 1"))
    bad = run([str(DNSSEAL), "checkconf", str(conf)], tmp_path)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert any(line.startswith(f"{conf}: server.workers: ") for line in lines), lines
    assert any(line.startswith(f"{conf}: server.bogus: unknown option") for line in lines), lines
    assert any(line.startswith(f'{conf}: zone."a.example.".allow-transfer[0]') for line in lines)
    assert len(lines) == 3, lines
    assert "Traceback" not in bad.stderr


@pytest.mark.interop
def test_tsig_keygen_is_read_by_named_checkconf_and_dnsseal(tmp_path: Path) -> None:
    theirs = run([require_tool("tsig-keygen"), "-a", "hmac-sha512", "k1.example"], tmp_path)
    ours = run([str(DNSSEAL), "tsig-keygen", "-a", "hmac-sha512", "k1.example"], tmp_path)
    assert ours.returncode == 0
    secret = re.compile(r'secret "[^"]+"')
    # the same clause, but for the random secret
    assert secret.sub("S", ours.stdout) == secret.sub("S", theirs.stdout)
    (tmp_path / "named.conf").write_text(
        ours.stdout + 'zone "example.com" { type primary; file "z.db"; '
        "allow-update { key k1.example; }; };\n"
    )
    check = run([require_tool("named-checkconf"), "named.conf"], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    toml = run([str(DNSSEAL), "tsig-keygen", "--toml", "ddns.example"], tmp_path)
    (tmp_path / "dnsseal.toml").write_text(toml.stdout)
    config = load_config(tmp_path / "dnsseal.toml")
    key = config.keys["ddns.example"]
    assert key.algorithm == "hmac-sha256" and len(key.secret) == 32
    other = run([str(DNSSEAL), "tsig-keygen", "--toml", "ddns.example"], tmp_path)
    assert other.stdout != toml.stdout  # random
    bad = run([str(DNSSEAL), "tsig-keygen", "-a", "hmac-sha3"], tmp_path)
    assert bad.returncode == 2 and "hmac-sha3" in bad.stderr


def _records(lines: str, verb: str, rtype: str) -> set[str]:
    out = set()
    for line in lines.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == verb and f[4] == rtype:
            out.add(" ".join(f[1:2] + f[3:]).lower())  # owner, class, type, rdata (no TTL)
    return out


@pytest.mark.interop
def test_journalprint_matches_named_journalprint_and_retransfer(tmp_path: Path) -> None:
    """The same UPDATE applied by named (then named-journalprint on its .jnl) and by
    dnsseal (then dnsseal journalprint): the same records added and deleted.  Then dnsseal
    as a bump in the wire for named's zone: `ctl retransfer` transfers it anew."""
    script = (
        f"update add h1.{HID} 2 IN A 192.0.2.1\n"
        f'update add h1.{HID} 2 IN TXT "hello world"\n'
        f"update delete www.{HID} A\n"
    )
    with hidden_primary(tmp_path / "named", None) as pport:
        nsupdate(pport, script)
        deadline = time.monotonic() + 10
        jnl = tmp_path / "named" / "zone.db.jnl"
        while not jnl.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        bind = run([require_tool("named-journalprint"), str(jnl)], tmp_path)
        assert bind.returncode == 0, bind.stderr

        d = tmp_path / "dnsseal"
        d.mkdir()
        port = free_port()
        source = (tmp_path / "named" / "zone.db").read_text()
        write_config(d, port, {HID: source}, zone_options={HID: 'allow-update = ["key ddns"]'})
        with dnsseal_serve(d, ["-c", "dnsseal.toml"], HID, port):
            nsupdate(port, script)
        ours = run([str(DNSSEAL), "journalprint", "-c", "dnsseal.toml", HID], d)
        assert ours.returncode == 0, ours.stderr
        for verb, rtype in (("add", "A"), ("add", "TXT"), ("del", "A")):
            assert _records(ours.stdout, verb, rtype) == _records(bind.stdout, verb, rtype), (
                verb,
                rtype,
                bind.stdout,
                ours.stdout,
            )
        extra = run([str(DNSSEAL), "journalprint", "-x", "-c", "dnsseal.toml", HID], d)
        assert re.search(
            r"^serial \d+ -> \d+ at \d{4}-\d\d-\d\dT\S+Z \(update\)$", extra.stdout, re.M
        )
        nozone = run([str(DNSSEAL), "journalprint", "-c", "dnsseal.toml", "x.example"], d)
        assert nozone.returncode == 1 and "no zone 'x.example'" in nozone.stderr

        # retransfer: a secondary (bump in the wire) of named's zone
        s = tmp_path / "secondary"
        s.mkdir()
        sport = free_port()
        primaries_config(s, sport, pport)
        with dnsseal_serve(s, ["-c", "dnsseal.toml"], HID, sport):
            r = run([str(DNSSEAL), "ctl", "-c", "dnsseal.toml", "--json", "retransfer", HID], s)
            assert r.returncode == 0, r.stdout + r.stderr
            assert '"result": "AXFR of serial' in r.stdout, r.stdout
