"""Bump in the wire: a hidden BIND primary serves an unsigned zone; dnsseal transfers it in
(TSIG), signs it and serves it signed; an update on the primary reaches dnsseal by NOTIFY
and IXFR and is served re-signed under a higher serial; the primary's zone is never touched;
a primary that is down leaves the old data served."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import pytest

from conftest import free_port, require_tool, wait_for_dns
from dnsseal.proto import xfrin
from dnsseal.proto.snapshot import build_from_model
from dnsseal.proto.xfr import transfer
from dnsseal.proto.xfrin import serial_gt
from dnsseal.server.service import AuthServer
from dnsseal.storage.serverconfig import TsigKey, load_config
from dnsseal.zone.model import Zone
from dnsseal.zone.text import parse_zone_text

from .conftest import TSIG_SECRET, axfr_verify, ctl, dnsseal_serve, stop, write_config

ZONE = "hid.example."
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})
SOURCE = f"""$ORIGIN {ZONE}
$TTL 2
@ SOA ns1 hostmaster 1 60 30 600 2
@ NS ns1
ns1 A 127.0.0.1
www A 192.0.2.80
mail A 192.0.2.25
@ MX 10 mail
"""


@contextmanager
def hidden_primary(d: Path, notify_port: int | None) -> Iterator[int]:
    """BIND's named on a free port serving ZONE unsigned: transfers and updates only with
    the TSIG key ``ddns``, NOTIFY only to dnsseal (``notify_port``), signed with that key
    (dnsseal's primaries line names it, so an unsigned NOTIFY would be refused)."""
    named = require_tool("named")
    d.mkdir(exist_ok=True)
    port = free_port()
    (d / "zone.db").write_text(SOURCE)
    also = f"also-notify {{ 127.0.0.1 port {notify_port} key ddns; }};" if notify_port else ""
    conf = d / "named.conf"
    conf.write_text(
        f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify explicit;
    {also}
}};
controls {{ }};
key ddns {{ algorithm hmac-sha256; secret "{TSIG_SECRET}"; }};
zone "{ZONE}" {{
    type primary;
    file "zone.db";
    allow-transfer {{ key ddns; }};
    allow-update {{ key ddns; }};
}};
"""
    )
    with (d / "named.log").open("ab") as logf:
        proc = subprocess.Popen([named, "-g", "-c", str(conf), "-n", "1"], stdout=logf, stderr=logf)
    try:
        wait_for_dns(port, ZONE, proc, timeout=20)  # type: ignore[arg-type]
        yield port
    finally:
        stop(proc)  # type: ignore[arg-type]


def nsupdate(port: int, script: str) -> None:
    body = f"server 127.0.0.1 {port}\nzone {ZONE}\n{script}\nsend\n"
    proc = subprocess.run(
        [require_tool("nsupdate"), "-y", f"hmac-sha256:ddns:{TSIG_SECRET}"],
        input=body,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def ask(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def soa_serial(port: int) -> int:
    r = ask(port, ZONE, "SOA")
    return int(next(rr for rr in r.answer if rr.rdtype == dns.rdatatype.SOA)[0].serial)


def types_at(msg: dns.message.Message) -> set[int]:
    return {rr.rdtype for rr in msg.answer}


def send_notify(port: int, source: str, signed: bool = True) -> dns.message.Message:
    """A NOTIFY for ZONE from ``source`` (a loopback address) to dnsseal on ``port``,
    TSIG-signed with the primary's key ``ddns`` unless ``signed`` is false."""
    q = dns.message.make_query(ZONE, "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    q.flags = dns.flags.AA | dns.opcode.to_flags(dns.opcode.NOTIFY)
    if signed:
        q.use_tsig(KEYRING, keyname="ddns")
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3, source=source)


def primaries_config(d: Path, port: int, primary_port: int) -> Path:
    return write_config(
        d,
        port,
        {},
        extra=f"""
[zone."{ZONE}"]
primaries = ["127.0.0.1 port {primary_port} key ddns"]
dnssec-policy = "fast"
allow-transfer = ["127.0.0.1"]
""",
    )


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.interop
@pytest.mark.slow
def test_bind_primary_to_dnsseal_signed_by_notify_and_ixfr(tmp_path: Path) -> None:
    port = free_port()
    with hidden_primary(tmp_path / "named", port) as pport:
        primaries_config(tmp_path, port, pport)
        with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
            signed = axfr_verify(tmp_path, ZONE, port)
            assert signed.get_rdataset(ZONE, "DNSKEY") is not None
            assert signed.get_rdataset(f"www.{ZONE}", "A") is not None
            first = soa_serial(port)
            copy = tmp_path / "state" / "hid.example.xfr"
            assert "www" in copy.read_text()

            # A change on the primary: it NOTIFYs dnsseal, which transfers by IXFR.
            t0 = time.monotonic()
            nsupdate(pport, f"update add new.{ZONE} 2 A 192.0.2.99")

            def served() -> bool:
                r = ask(port, f"new.{ZONE}", "A")
                return r.rcode() == dns.rcode.NOERROR and dns.rdatatype.RRSIG in types_at(r)

            wait_until(served, 10, "the update to be served signed")
            assert time.monotonic() - t0 < 10
            assert serial_gt(soa_serial(port), first)
            axfr_verify(tmp_path, ZONE, port, "after.zone")
            log = (tmp_path / "out.txt").read_text()
            assert re.search(r"NOTIFY from 127\.0\.0\.1: hid\.example\.: checking", log), log
            assert f"transferred serial 2 from 127.0.0.1@{pport} (IXFR)" in log, log

            # The primary's zone is its own: unsigned, its serial, no record of ours.
            theirs = ask(pport, ZONE, "DNSKEY")
            assert not theirs.answer
            assert soa_serial(pport) == 2
            assert "DNSKEY" not in (tmp_path / "named" / "zone.db").read_text()

            # zone-status shows the transfer side; a NOTIFY from an address that is not
            # a primary is refused.
            status = ctl(tmp_path, "zone-status", ZONE)
            assert "hid.example" in status
            assert "primary-serial" in status and "last-transfer-result" in status
            assert send_notify(port, "127.0.0.2").rcode() == dns.rcode.REFUSED

        # The primary goes away; dnsseal, restarted, serves what it had and keeps trying.
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        # The primary line names the key ddns: an unsigned NOTIFY is refused, as for a
        # plain secondary (and as Knot does); the signed one is taken.
        assert send_notify(port, "127.0.0.1", signed=False).rcode() == dns.rcode.REFUSED
        r = send_notify(port, "127.0.0.1")
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        time.sleep(1)
        r = ask(port, f"new.{ZONE}", "A")
        assert r.rcode() == dns.rcode.NOERROR and dns.rdatatype.RRSIG in types_at(r)

        def failed() -> bool:
            return "refresh from 127.0.0.1@" in (tmp_path / "out.txt").read_text()

        wait_until(failed, 10, "the failed refresh to be logged")
        axfr_verify(tmp_path, ZONE, port, "down.zone")


@pytest.mark.interop
def test_transfer_status_and_a_bad_primary_keeps_the_data(tmp_path: Path) -> None:
    """In-process: the zone-status fields of a zone with primaries; a primary that starts
    refusing leaves the served data and says why."""
    port = free_port()

    async def scenario(pport: int) -> None:
        config = load_config(tmp_path / "dnsseal.toml")
        server = AuthServer(config, tmp_path / "dnsseal.toml")
        await server.start()
        try:
            state = server.find_state(ZONE)
            for _ in range(100):
                # served once signed, in the refresh that then plans the next one: wait
                # for both (the first transfer's refresh is over)
                if state.served is not None and server.automation.transfer_status(state).get(
                    "next-refresh"
                ):
                    break
                await asyncio.sleep(0.1)
            assert state.served is not None, state.error
            status = server.automation.transfer_status(state)
            assert status["primaries"] == [f"127.0.0.1@{pport} key ddns"]
            assert status["primary-serial"] == 1 and status["transferred-serial"] == 1
            assert "AXFR of serial 1" in str(status["last-transfer-result"])
            assert status["next-refresh"] is not None and status["expired"] is False
            # The key is wrong now: the primary refuses; the data stays served.
            server.config.keys["ddns"] = TsigKey("ddns", "hmac-sha256", b"not the secret")
            assert state.secondary is not None
            assert not await state.secondary.refresh()
            status = server.automation.transfer_status(state)
            assert str(status["last-transfer-result"]).startswith("failed: 127.0.0.1@"), status
            assert state.served is not None and state.served.snapshot.serial >= 1
            assert status["expired"] is False
            # Past the SOA's expire (600 s) since the last answer: still served, "expired".
            state.secondary.status.last_success = int(time.time()) - 601
            assert not await state.secondary.refresh()
            assert server.automation.transfer_status(state)["expired"] is True
            assert state.served is not None
        finally:
            await server.stop()

    with hidden_primary(tmp_path / "named", None) as pport:
        primaries_config(tmp_path, port, pport)
        asyncio.run(scenario(pport))


def test_notify_from_elsewhere_is_refused_and_unknown_zone_notauth(tmp_path: Path) -> None:
    """No primary running: the zone waits for its first transfer, NOTIFY answers follow
    RFC 1996 (NOERROR+AA from a primary, REFUSED from others, NOTAUTH for other zones)."""
    port = free_port()
    dead = free_port()
    primaries_config(tmp_path, port, dead)

    async def scenario() -> None:
        server = AuthServer(load_config(tmp_path / "dnsseal.toml"), tmp_path / "dnsseal.toml")
        await server.start()
        try:
            loop = asyncio.get_running_loop()

            def notify(zone: str, source: str) -> dns.message.Message:
                q = dns.message.make_query(zone, "SOA")
                q.set_opcode(dns.opcode.NOTIFY)
                q.use_tsig(KEYRING, keyname="ddns")
                return dns.query.udp(q, "127.0.0.1", port=port, timeout=3, source=source)

            ok = await loop.run_in_executor(None, notify, ZONE, "127.0.0.1")
            assert ok.rcode() == dns.rcode.NOERROR and ok.flags & dns.flags.AA
            assert ok.opcode() == dns.opcode.NOTIFY
            other = await loop.run_in_executor(None, notify, ZONE, "127.0.0.3")
            assert other.rcode() == dns.rcode.REFUSED
            unknown = await loop.run_in_executor(None, notify, "nope.example.", "127.0.0.1")
            assert unknown.rcode() == dns.rcode.NOTAUTH
            state = server.find_state(ZONE)
            assert state.served is None
            assert state.error == "waiting for the first transfer from the primaries"
        finally:
            await server.stop()

    asyncio.run(scenario())


# -- the pure transfer reader (proto.xfrin), against dnsseal's own transfer side ---------

ORIGIN = dns.name.from_text("x.example.")


def model(serial: int, hosts: int = 3, ns: bool = True) -> Zone:
    lines = [f"$ORIGIN {ORIGIN}", f"@ 60 SOA ns h {serial} 60 30 600 60"]
    if ns:
        lines.append("@ 60 NS ns")
    lines += ["ns 60 A 127.0.0.1"] + [
        f"h{i}-{serial % 2} 60 A 192.0.2.{i % 250}" for i in range(hosts)
    ]
    return parse_zone_text("\n".join(lines) + "\n", ORIGIN)


def run_transfer(
    q: dns.message.Message, current: int | None, primary: Zone, history: list[Zone]
) -> xfrin.Result:
    keyring = q.keyring if q.had_tsig else None
    served_q = dns.message.from_wire(q.to_wire(), keyring=keyring)
    snaps = [build_from_model(z) for z in history]
    wires = transfer(served_q, build_from_model(primary), snaps)
    inbound = xfrin.Inbound(q, current)
    done = [inbound.feed(w) for w in wires]
    assert done[-1] and not any(done[:-1])
    assert inbound.result is not None
    return inbound.result


def test_ixfr_axfr_and_up_to_date_read_back() -> None:
    z1, z2, z3 = model(1), model(2), model(3)
    result = run_transfer(xfrin.transfer_query(ORIGIN, 1, 1), 1, z3, [z1, z2])
    assert result.kind is xfrin.Kind.INCREMENTAL and len(result.deltas) == 2
    assert [(d.start, d.end) for d in result.deltas] == [(1, 2), (2, 3)]
    assert xfrin.apply_transfer(ORIGIN, z1, result) == z3
    # A serial the primary no longer has: the answer is the whole zone (AXFR style).
    result = run_transfer(xfrin.transfer_query(ORIGIN, 2, 1), 1, z3, [z2])
    assert result.kind is xfrin.Kind.FULL
    assert xfrin.apply_transfer(ORIGIN, z1, result) == z3
    result = run_transfer(xfrin.transfer_query(ORIGIN, 3, 3), 3, z3, [z1])
    assert result.kind is xfrin.Kind.UP_TO_DATE
    assert xfrin.apply_transfer(ORIGIN, z3, result) is z3
    result = run_transfer(xfrin.transfer_query(ORIGIN, 4, None), None, z3, [])
    assert result.kind is xfrin.Kind.FULL and xfrin.apply_transfer(ORIGIN, None, result) == z3
    # An IXFR that does not fit our copy (it is at 2, the change starts at 1) is refused.
    result = run_transfer(xfrin.transfer_query(ORIGIN, 5, 1), 1, z2, [z1])
    with pytest.raises(xfrin.TransferError, match="starts at 1, our copy is at 3"):
        xfrin.apply_transfer(ORIGIN, z3, result)


def test_tsig_multi_message_transfer_and_tampering() -> None:
    key = dns.tsig.Key("ddns", TSIG_SECRET, "hmac-sha256")
    big = model(7, hosts=1500)
    q = xfrin.transfer_query(ORIGIN, 9, None, key)
    served_q = dns.message.from_wire(q.to_wire(), keyring=q.keyring)
    wires = transfer(served_q, build_from_model(big), [])
    assert len(wires) > 2  # several messages, one TSIG sequence
    inbound = xfrin.Inbound(q, None)
    assert [inbound.feed(w) for w in wires][-1]
    assert inbound.result is not None
    assert xfrin.apply_transfer(ORIGIN, None, inbound.result) == big
    # A byte changed in the second message breaks the TSIG chain.
    bad = bytearray(wires[1])
    bad[-100] ^= 0xFF
    inbound = xfrin.Inbound(q, None)
    inbound.feed(wires[0])
    with pytest.raises(xfrin.TransferError):
        inbound.feed(bytes(bad))
    # An unsigned answer to a signed query is not taken.
    plain = transfer(dns.message.from_wire(xfrin.transfer_query(ORIGIN, 9, None).to_wire()),
                     build_from_model(model(1)), [])  # fmt: skip
    with pytest.raises(xfrin.TransferError, match="not signed"):
        xfrin.Inbound(q, None).feed(plain[0])


def _answer(q: dns.message.Message, texts: list[str], rcode: int = 0) -> bytes:
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.Rcode(rcode))
    for t in texts:
        name, ttl, rtype, rdata = t.split(None, 3)
        r.answer.append(dns.rrset.from_text(name, int(ttl), "IN", rtype, rdata))
    return r.to_wire()


SOA1 = "x.example. 60 SOA . . 1 60 30 600 60"
SOA2 = "x.example. 60 SOA . . 2 60 30 600 60"


@pytest.mark.parametrize(
    ("texts", "rcode", "why"),
    [
        ([SOA1, "x.example. 60 NS ns.x.example.", "evil.other. 60 A 192.0.2.1", SOA1], 0,
         "outside the zone"),
        ([SOA2, "x.example. 60 NS ns.x.example.", SOA1], 0, "ends with serial 1"),
        ([], dns.rcode.REFUSED, "REFUSED"),
        (["www.x.example. 60 A 192.0.2.1"], 0, "does not start with the zone's SOA"),
    ],
)  # fmt: skip
def test_malformed_transfers_are_refused(texts: list[str], rcode: int, why: str) -> None:
    q = xfrin.transfer_query(ORIGIN, 11, None)
    with pytest.raises(xfrin.TransferError, match=why):
        xfrin.Inbound(q, None).feed(_answer(q, texts, rcode))


def test_a_transferred_zone_needs_its_ns_and_the_ixfr_must_fit() -> None:
    q = xfrin.transfer_query(ORIGIN, 12, None)
    inbound = xfrin.Inbound(q, None)
    assert inbound.feed(_answer(q, [SOA1, "www.x.example. 60 A 192.0.2.1", SOA1]))
    assert inbound.result is not None
    with pytest.raises(xfrin.TransferError, match="no NS"):
        xfrin.apply_transfer(ORIGIN, None, inbound.result)
    # IXFR 1 -> 2 that removes a record our copy does not have: out of sync.
    q = xfrin.transfer_query(ORIGIN, 13, 1)
    inbound = xfrin.Inbound(q, 1)
    body = [SOA2, SOA1, "nothere.x.example. 60 A 192.0.2.7", SOA2, "new.x.example. 60 A 192.0.2.8"]
    assert inbound.feed(_answer(q, [*body, SOA2]))
    assert inbound.result is not None and inbound.result.kind is xfrin.Kind.INCREMENTAL
    with pytest.raises(xfrin.TransferError, match="out of sync"):
        xfrin.apply_transfer(ORIGIN, model(1), inbound.result)
    soa = xfrin.soa_query(ORIGIN, 14)
    assert not soa.flags & dns.flags.RD
    with pytest.raises(xfrin.TransferError, match="not authoritative"):
        xfrin.read_soa_serial(soa, _answer(soa, [SOA2]))
