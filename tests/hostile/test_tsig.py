"""TSIG failures (RFC 8945 5.2-5.4) get what named answers: NOTAUTH (FORMERR for a MAC of
an impossible length) with the TSIG error in a TSIG record, unsigned for key and MAC
problems, signed for BADTIME and BADTRUNC; nsupdate and dig report the TSIG error.  A TSIG
secret shorter than the HMAC's output is refused when the config is loaded (6.2).

named 9.18 and dnsseal serve the same zone with the same keys on loopback; every case is
sent to both and the answers compared field by field.
"""

from __future__ import annotations

import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.tsig
import dns.update
import pytest

from conftest import require_tool
from dnsseal.proto.tsigauth import check_request

from .updatehelpers import (
    DNSSEAL,
    SECRET,
    ZONE,
    Server,
    dnsseal_server,
    exchange,
    named_server,
    nsupdate,
    sign,
    tsig_reply,
    update_rcode,
)

interop = pytest.mark.interop
slow = pytest.mark.slow

WRONG = b"x" * 32
SHA256, SHA512 = dns.tsig.HMAC_SHA256, dns.tsig.HMAC_SHA512


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    d = tmp_path_factory.mktemp("tsig")
    with (
        named_server(d / "named", allow_update=["key ddns"]) as named,
        dnsseal_server(d / "dnsseal", allow_update=["key ddns"]) as ours,
    ):
        yield {"named": named, "dnsseal": ours}


def _update_wire(label: str) -> bytes:
    u = dns.update.UpdateMessage(ZONE)
    u.add(f"{label}.{ZONE}", 300, "A", "192.0.2.9")
    return u.to_wire()


def _query_wire() -> bytes:
    return dns.message.make_query(ZONE, "SOA").to_wire()


# name -> (key name, secret, algorithm, seconds off the clock, MAC octets kept)
CASES: dict[str, tuple[str, bytes, dns.name.Name, int, int | None]] = {
    "bad MAC": ("ddns", WRONG, SHA256, 0, None),
    "unknown key": ("nokey", SECRET, SHA256, 0, None),
    "other algorithm": ("ddns", SECRET, SHA512, 0, None),
    "time outside fudge": ("ddns", SECRET, SHA256, -3600, None),
    "time ahead": ("ddns", SECRET, SHA256, 3600, None),
    "truncated MAC (16 of 32)": ("ddns", SECRET, SHA256, 0, 16),
    "MAC too short (8)": ("ddns", SECRET, SHA256, 0, 8),
    "empty MAC": ("ddns", SECRET, SHA256, 0, 0),
}
EXPECTED = {
    "bad MAC": ("NOTAUTH", "BADSIG"),
    "unknown key": ("NOTAUTH", "BADKEY"),
    "other algorithm": ("NOTAUTH", "BADKEY"),
    "time outside fudge": ("NOTAUTH", "BADTIME"),
    "time ahead": ("NOTAUTH", "BADTIME"),
    "truncated MAC (16 of 32)": ("NOTAUTH", "BADTRUNC"),
    "MAC too short (8)": ("FORMERR", "BADSIG"),
    "empty MAC": ("NOTAUTH", "BADSIG"),
}


@interop
@slow
@pytest.mark.parametrize("kind", ["UPDATE", "QUERY"])
@pytest.mark.parametrize("case", list(CASES))
def test_tsig_failure_answers_match_named(servers: dict[str, Server], case: str, kind: str) -> None:
    keyname, secret, alg, skew, mac_len = CASES[case]
    now = int(time.time())
    seen = {}
    for who, server in servers.items():
        body = _update_wire(f"t-{who}") if kind == "UPDATE" else _query_wire()
        wire = sign(body, keyname, secret, alg, now + skew, mac_len=mac_len)
        reply = tsig_reply(exchange(server.port, wire))
        assert reply is not None, f"{who}: no answer to {case}"
        seen[who] = reply
        assert (reply.rcode, reply.error) == EXPECTED[case], (who, reply)
        assert reply.algorithm == alg.to_text(), (who, reply)
        signed = EXPECTED[case][1] in ("BADTIME", "BADTRUNC")
        assert (reply.mac_len or 0) > 0 if signed else reply.mac_len == 0, (who, reply)
        if EXPECTED[case][1] == "BADTIME":
            # the request's time is echoed; Other Data holds the server's clock
            assert reply.time_signed == now + skew, (who, reply)
            assert reply.other is not None and len(reply.other) == 6
            assert abs(int.from_bytes(reply.other, "big") - now) < 30, (who, reply)
        else:
            assert reply.time_signed is not None and abs(reply.time_signed - now) < 30
    named, ours = seen["named"], seen["dnsseal"]
    assert (ours.rcode, ours.error, ours.mac_len, ours.algorithm) == (
        named.rcode,
        named.error,
        named.mac_len,
        named.algorithm,
    )


@interop
@slow
@pytest.mark.parametrize("case", ["time outside fudge", "truncated MAC (16 of 32)"])
def test_signed_error_answers_verify_with_the_key(servers: dict[str, Server], case: str) -> None:
    """BADTIME and BADTRUNC answers are signed with the key, over the request's MAC (RFC
    8945 4.3.1, 5.3.2): dnspython checks the MAC the way a client does."""
    keyname, secret, alg, skew, mac_len = CASES[case]
    now = int(time.time())
    key = dns.tsig.Key(keyname, secret, alg)
    for who, server in servers.items():
        wire = sign(_query_wire(), keyname, secret, alg, now + skew, mac_len=mac_len)
        request = dns.message.from_wire(wire, keyring=lambda _m, _n: False)
        assert request.tsig is not None
        reply = exchange(server.port, wire)
        assert reply is not None
        unchecked = dns.message.from_wire(reply, keyring=lambda _m, _n: False)
        assert unchecked.tsig is not None
        t = unchecked.tsig[0]
        owner = dns.name.from_text(keyname)
        start = len(reply) - len(t.to_wire()) - 10 - len(owner.to_wire())
        arcount = struct.unpack_from("!H", reply, 10)[0]
        body = reply[:10] + struct.pack("!H", arcount - 1) + reply[12:start]
        expected, _ = dns.tsig.sign(
            body, key, t.replace(mac=b""), t.time_signed, request_mac=request.tsig[0].mac
        )
        assert len(t.mac) == 32 and t.mac == expected.mac, who


@interop
@slow
def test_nsupdate_reports_the_tsig_error(servers: dict[str, Server]) -> None:
    """What users see: `update failed: NOTAUTH(BADSIG)` / `NOTAUTH(BADKEY)` from both
    servers (dnsseal used to answer a bare FORMERR)."""
    wrong = "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc0NTY="
    for who, server in servers.items():
        bad = nsupdate(server.port, f"update add n1.{ZONE} 300 A 192.0.2.1", secret=wrong)
        assert update_rcode(bad) == "NOTAUTH(BADSIG)", (who, bad.stderr)
        unknown = nsupdate(server.port, f"update add n1.{ZONE} 300 A 192.0.2.1", key="nokey")
        assert update_rcode(unknown) == "NOTAUTH(BADKEY)", (who, unknown.stderr)
        good = nsupdate(server.port, f"update add n1.{ZONE} 300 A 192.0.2.1")
        assert update_rcode(good) == "NOERROR", (who, good.stderr)


@interop
@slow
def test_dig_with_a_wrong_secret_sees_notauth_badsig(servers: dict[str, Server]) -> None:
    dig = require_tool("dig")
    wrong = "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc0NTY="
    for who, server in servers.items():
        at = ["@127.0.0.1", "-p", str(server.port)]
        out = subprocess.run(
            [dig, *at, "-y", f"hmac-sha256:ddns:{wrong}", ZONE, "SOA"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        assert "status: NOTAUTH" in out, (who, out)
        assert "BADSIG" in out, (who, out)


@pytest.mark.parametrize(
    ("secret", "octets"),
    [("", 0), ("c2VjcmV0", 6), ("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAx", 30)],
)
def test_short_tsig_secret_is_refused_at_load(tmp_path: Path, secret: str, octets: int) -> None:
    """RFC 8945 6.2: an empty secret used to load and then authenticate updates; a
    secret shorter than the HMAC's 32 octets is now a one-line config error."""
    (tmp_path / "z.zone").write_text(
        f"$ORIGIN {ZONE}\n@ 300 SOA ns1 hm 1 60 30 600 300\n@ 300 NS ns1\nns1 300 A 127.0.0.1\n"
    )
    (tmp_path / "dnsseal.toml").write_text(
        f"""[server]
listen = ["127.0.0.1@1"]
state-dir = "state"
[key.ddns]
algorithm = "hmac-sha256"
secret = "{secret}"
[zone."{ZONE}"]
file = "z.zone"
dnssec-policy = "default"
allow-update = ["key ddns"]
"""
    )
    proc = subprocess.run(
        [str(DNSSEAL), "serve", "-c", "dnsseal.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "Traceback" not in err
    assert f"key.ddns.secret: {octets} octets: hmac-sha256 needs at least 32" in err, err
    assert "several problems" not in err  # nothing reported twice or as a consequence


@pytest.mark.parametrize(("offset", "error"), [(0, None), (300, None), (301, "BADTIME")])
def test_the_time_check_uses_the_now_it_is_given(offset: int, error: str | None) -> None:
    """proto.tsigauth reads no clock: the fudge window is checked against ``now``."""
    signed_at = 1_800_000_000
    wire = sign(_query_wire(), "ddns", SECRET, SHA256, signed_at)
    keyring = {dns.name.from_text("ddns"): dns.tsig.Key("ddns", SECRET, SHA256)}
    for now in (signed_at + offset, signed_at - offset):
        checked = check_request(wire, keyring, now)
        if error is None:
            assert checked.message is not None and checked.message.keyring is not None
        else:
            reply = tsig_reply(checked.response)
            assert reply is not None and (reply.rcode, reply.error) == ("NOTAUTH", error)
            assert reply.other == now.to_bytes(6, "big")
