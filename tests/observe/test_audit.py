"""The audit log: reloads, signing-policy changes and control commands (with who sent them)
are rows of their own; `--since` and the zone filter; the new options' errors."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from automation.conftest import ctl, zone_text
from dnsseal.errors import OptionError
from dnsseal.storage.journal import AuditEvent, Journal
from dnsseal.storage.serverconfig import parse_config

from .conftest import observed, wait_until

ZONE = "audit.example."


def test_reload_policy_change_and_commands_are_audited(tmp_path: Path) -> None:
    with observed(tmp_path, {ZONE: zone_text(ZONE)}) as s:
        conf = tmp_path / "dnsseal.toml"
        conf.write_text(
            conf.read_text().replace('dnssec-policy = "fast"', 'dnssec-policy = "fast3"')
        )
        ctl(tmp_path, "reload")

        def rows() -> list[dict[str, str]]:
            return list(s.json("/api/v1/audit")["audit"])

        wait_until(lambda: {"reload", "policy", "command"} <= {e["event"] for e in rows()}, 15,
                   "the reload, policy and command rows")  # fmt: skip
        got = rows()
        (policy,) = [e for e in got if e["event"] == "policy"]
        assert policy["zone"] == ZONE and policy["message"] == "dnssec-policy fast -> fast3"
        (reload,) = [e for e in got if e["event"] == "reload"]
        assert reload["zone"] == "" and reload["message"].startswith("configuration reloaded")
        (command,) = [e for e in got if e["event"] == "command"]
        assert command["message"].startswith(f"user {getpass.getuser()} (uid ")
        assert command["message"].endswith(": reload (done)")
        # read-only commands are not audited
        ctl(tmp_path, "dnssec", "-status", ZONE)
        ctl(tmp_path, "zones")
        assert len([e for e in rows() if e["event"] == "command"]) == 1
        # a zone's rows only, and the human form
        lines = ctl(tmp_path, "audit", ZONE).splitlines()
        assert lines and all(f"  {ZONE}  " in line for line in lines)
        assert any("keymgr: created (KSK" in line for line in lines)
        out = ctl(tmp_path, "audit", "--since", "+1d", "--json")
        assert out.strip() == ""
        bad = ctl(tmp_path, "audit", "--since", "whenever", ok=False)
        assert "--since: bad time 'whenever'" in bad
        bad = ctl(tmp_path, "audit", "nope.example", ok=False)
        assert "nope.example" in bad and "Traceback" not in bad
        reply = json.loads(ctl(tmp_path, "--json", "audit", ZONE, "--limit", "2"))
        assert len(reply["entries"]) == 2 and len(reply["result"]) == 2


def test_audit_log_since_and_zone(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        j.audit(AuditEvent(100, "a.example", "-", "reload", "one"))
        j.audit(AuditEvent(200, "b.example.", "k", "keymgr", "two"))
        j.audit(AuditEvent(300, "", "-", "reload", "three"))
        assert [e.message for e in j.audit_log()] == ["one", "two", "three"]
        assert [e.message for e in j.audit_log(since=200)] == ["two", "three"]
        assert [e.message for e in j.audit_log("A.EXAMPLE.")] == ["one"]
        assert [e.message for e in j.audit_log("b.example", since=201)] == []
        assert [e.zone for e in j.audit_log(limit=1)] == [""]
        assert [e.message for e in j.audit_log(event="reload")] == ["one", "three"]


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ('[server]\nhttp = ["localhost@80"]\n', "server.http[0]"),
        ('[server]\nhttp = "127.0.0.1@99999"\n', "server.http[0]"),
        ("[alerts]\ncommand = 5\n", "alerts.command"),
        ('[alerts]\nwebhook = "ftp://x"\n', "alerts.webhook"),
        ("[alerts]\npage = 1\n", "alerts.page"),
        ("[alerts]\ntimeout = 0\n", "alerts.timeout"),
    ],
)
def test_bad_http_and_alerts_options_name_the_option(text: str, option: str) -> None:
    import tomllib

    with pytest.raises(OptionError) as e:
        parse_config(tomllib.loads(text), Path("/tmp"))
    assert str(e.value).startswith(option)


def test_http_and_alerts_options() -> None:
    import tomllib

    text = (
        '[server]\nhttp = ["127.0.0.1@8053", "::1"]\n'
        '[alerts]\ncommand = ["/bin/true", "x"]\nwebhook = "http://127.0.0.1:9/a"\n'
    )
    cfg = parse_config(tomllib.loads(text), Path("/tmp"))
    assert [str(e) for e in cfg.http] == ["127.0.0.1@8053", "::1@8053"]
    assert cfg.alerts.command == ("/bin/true", "x")
    assert cfg.alerts.webhook == "http://127.0.0.1:9/a"
    assert parse_config({}, Path("/tmp")).http == ()
