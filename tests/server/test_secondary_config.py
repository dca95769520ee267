"""Plain secondaries in the config and the NOTIFY rules: a zone with ``primaries`` and no
dnssec-policy is a secondary (it was refused before); checkconf accepts it; NOTIFY from a
primary written with a key must carry that key."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.tsigkeyring
import pytest

from conftest import Dnsseal
from dnsseal.errors import OptionError
from dnsseal.server.update import notify_response
from dnsseal.server.zones import ZoneState
from dnsseal.storage.serverconfig import load_config

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="
CONFIG = f"""
[server]
listen = ["127.0.0.1@5300"]
state-dir = "state"

[key.xfr]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[key.other]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[zone."sec.example"]
primaries = ["192.0.2.1@5301 key xfr", "192.0.2.2"]
allow-transfer = ["127.0.0.1"]
also-notify = ["127.0.0.1@5302"]
"""


def test_primaries_without_policy_is_a_secondary(tmp_path: Path) -> None:
    conf = tmp_path / "dnsseal.toml"
    conf.write_text(CONFIG)
    (z,) = load_config(conf).zones
    assert z.secondary and z.policy is None and z.presigned
    assert z.file == tmp_path.resolve() / "state" / "sec.example.xfr"
    assert [str(p) for p in z.primaries] == ["192.0.2.1@5301 key xfr", "192.0.2.2@53"]
    assert [str(e) for e in z.also_notify] == ["127.0.0.1@5302"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('state-dir = "state"', ""), "transferring a zone in needs server.state-dir"),
        (("also-notify", 'file = "z"\nalso-notify'), "a zone with primaries has no file"),
        (("also-notify", 'allow-update = ["key xfr"]\nalso-notify'), "needs an inline-signed"),
        (('key xfr"', 'key nope"'), "unknown TSIG key 'nope'"),
    ],
)
def test_secondary_mistakes_name_the_option(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    conf = tmp_path / "dnsseal.toml"
    conf.write_text(CONFIG.replace(*change, 1))
    with pytest.raises(OptionError, match=message):
        load_config(conf)


def test_checkconf_accepts_a_secondary(tmp_path: Path, dnsseal: Dnsseal) -> None:
    conf = tmp_path / "dnsseal.toml"
    conf.write_text(CONFIG)
    r = dnsseal("checkconf", "-z", conf)
    assert "transferred from its primaries" in r.output


def _notify(keyname: str | None) -> dns.message.Message:
    q = dns.message.make_query("sec.example.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    q.flags = dns.flags.AA | dns.opcode.to_flags(dns.opcode.NOTIFY)
    if keyname is not None:
        ring = dns.tsigkeyring.from_text({keyname: ("hmac-sha256", SECRET)})
        q.use_tsig(ring, keyname=keyname)
        q = dns.message.from_wire(q.to_wire(), keyring=ring)  # as received: had_tsig
    return q


@pytest.mark.parametrize(
    ("client", "key", "rcode"),
    [
        ("192.0.2.1", "xfr", dns.rcode.NOERROR),  # the primary, with its key
        ("192.0.2.1", None, dns.rcode.REFUSED),  # its key missing
        ("192.0.2.1", "other", dns.rcode.REFUSED),  # signed, but not with its key
        ("192.0.2.2", None, dns.rcode.NOERROR),  # a primary written without a key
        ("192.0.2.9", "xfr", dns.rcode.REFUSED),  # not a primary at all
    ],
)
@pytest.mark.parametrize("signs", [False, True], ids=["plain", "bump-in-the-wire"])
def test_notify_from_the_primaries_with_their_keys(
    tmp_path: Path, client: str, key: str | None, rcode: int, signs: bool
) -> None:
    # The same rule whether the zone is served as transferred or signed here: a
    # bump-in-the-wire zone took an unsigned NOTIFY from a primary written with a key.
    conf = tmp_path / "dnsseal.toml"
    policy = 'dnssec-policy = "default"\n' if signs else ""
    conf.write_text(CONFIG.replace("allow-transfer", policy + "allow-transfer"))
    (zcfg,) = load_config(conf).zones
    assert zcfg.secondary != signs
    state = ZoneState(zcfg)

    class Awake:
        def notify(self) -> None:
            pass

    state.secondary = Awake()  # type: ignore[assignment]
    response, why, wake = notify_response(
        _notify(key), dns.rcode.NOERROR, {zcfg.name: state}, client
    )
    assert response.rcode() == rcode, why
    assert (wake is not None) == (rcode == dns.rcode.NOERROR)
    assert bool(response.flags & dns.flags.AA) == (rcode == dns.rcode.NOERROR)
