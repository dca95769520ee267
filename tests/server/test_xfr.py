"""Zone transfers: AXFR and IXFR (RFC 1995) to allowed clients, TSIG, NOTIFY, and a real
Knot secondary that transfers by AXFR and then follows a change by NOTIFY + IXFR."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from conftest import free_port, require_tool, run_tool

from .conftest import (
    TSIG_SECRET,
    RunningServer,
    sign_zone,
    start_dnsseal,
    stop,
    wait_for_dns,
)

pytestmark = pytest.mark.interop

KEYRING = {dns.name.from_text("xfr"): dns.tsig.Key("xfr", TSIG_SECRET, dns.tsig.HMAC_SHA256)}


def records(zone: dns.zone.Zone) -> set[tuple[str, int, str]]:
    out = set()
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            for rd in rds:
                owner = name.derelativize(zone.origin).to_text().lower()
                out.add((owner, rds.ttl, rd.to_text().lower()))
    return out


def axfr(server_port: int, origin: str, keyring: dict | None = None) -> dns.zone.Zone:  # type: ignore[type-arg]
    zone = dns.zone.Zone(origin, relativize=False)
    query = dns.message.make_query(origin, "AXFR")
    if keyring:
        query.use_tsig(keyring, keyname="xfr")
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=server_port, timeout=5)
    return zone


def test_axfr_with_tsig_returns_the_whole_zone(dnsseal_server: RunningServer) -> None:
    z = dnsseal_server.zones["nsec3"]
    got = axfr(dnsseal_server.port, z.origin, KEYRING)
    want = dns.zone.from_file(str(z.path), z.origin, relativize=False)
    assert records(got) == records(want)


def test_transfer_acl(dnsseal_server: RunningServer) -> None:
    # nsec3 allows only the TSIG key; nsec allows 127.0.0.1 without a key
    with pytest.raises(dns.xfr.TransferError) as e:
        axfr(dnsseal_server.port, dnsseal_server.zones["nsec3"].origin)
    assert e.value.rcode == dns.rcode.REFUSED
    z = dnsseal_server.zones["nsec"]
    assert records(axfr(dnsseal_server.port, z.origin)) == records(
        dns.zone.from_file(str(z.path), z.origin, relativize=False)
    )
    # a wrong TSIG secret is NOTAUTH, never a transfer
    bad = {dns.name.from_text("xfr"): dns.tsig.Key("xfr", base64.b64encode(b"wrong").decode())}
    with pytest.raises((dns.xfr.TransferError, dns.tsig.PeerError, dns.exception.DNSException)):
        axfr(dnsseal_server.port, z.origin, bad)


def test_ixfr_from_retained_version_and_axfr_fallback(tmp_path: Path) -> None:
    zone = sign_zone(tmp_path / "z", "nsec", serial=1)
    v1 = dns.zone.from_file(str(zone.path), zone.origin, relativize=False)
    server = start_dnsseal(tmp_path, {"nsec": zone})
    try:
        sign_zone(tmp_path / "z", "nsec", serial=2, extra="added A 192.0.2.99\n")
        assert server.ctl("reload").returncode == 0
        sign_zone(tmp_path / "z", "nsec", serial=3, extra="added A 192.0.2.98\n")
        assert server.ctl("reload").returncode == 0
        v3 = dns.zone.from_file(str(zone.path), zone.origin, relativize=False)

        soas = [
            rr[0].serial
            for m in dns.query.xfr(
                "127.0.0.1", zone.origin, "IXFR", port=server.port, serial=1, timeout=5
            )
            for rr in m.answer
            if rr.rdtype == dns.rdatatype.SOA
        ]
        assert soas == [3, 1, 2, 2, 3, 3]  # incremental: per version, old SOA ... new SOA

        # dnspython applies the IXFR to version 1 and gets exactly version 3
        dns.query.inbound_xfr("127.0.0.1", v1, port=server.port, timeout=5)
        assert records(v1) == records(v3)

        # unknown serial: AXFR-style fallback; current serial: just the SOA
        q = dns.message.make_query(zone.origin, "IXFR")
        soa = v3.find_rrset(zone.origin, "SOA")
        q.authority.append(soa)
        r = dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=5)
        assert len(r.answer) == 1 and r.answer[0][0].serial == 3
        # over UDP: the current SOA only (RFC 1995 2)
        r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=5)
        assert len(r.answer) == 1 and r.answer[0][0].serial == 3
    finally:
        stop(server.proc)


@pytest.mark.slow
def test_knot_secondary_follows_by_notify_and_ixfr(tmp_path: Path) -> None:
    knotd = require_tool("knotd")
    kport = free_port()
    zone = sign_zone(tmp_path / "z", "nsec3", serial=1)
    server = start_dnsseal(tmp_path, {"nsec3": zone}, also_notify={"nsec3": [f"127.0.0.1@{kport}"]})
    kdir = tmp_path / "knot"
    kdir.mkdir()
    conf = kdir / "knot.conf"
    conf.write_text(
        f"""server:
    listen: 127.0.0.1@{kport}
    rundir: "{kdir}"
log:
  - target: "{kdir}/knot.log"
    any: debug
database:
    storage: "{kdir}"
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: {TSIG_SECRET}
remote:
  - id: primary
    address: 127.0.0.1@{server.port}
    key: xfr
acl:
  - id: notify_from_primary
    address: 127.0.0.1
    key: xfr
    action: notify
  - id: transfer_to_tests
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    storage: "{kdir}"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {zone.origin}
    master: primary
    acl: [notify_from_primary, transfer_to_tests]
"""
    )
    run_tool(["knotc", "-c", conf, "conf-check"])
    with (kdir / "stderr").open("wb") as err:
        knot = subprocess.Popen([knotd, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for_dns(kport, zone.origin, knot, timeout=30)

        def knot_serial() -> int:
            r = dns.query.udp(
                dns.message.make_query(zone.origin, "SOA"), "127.0.0.1", port=kport, timeout=2
            )
            return int(r.answer[0][0].serial)

        assert knot_serial() == 1
        sign_zone(tmp_path / "z", "nsec3", serial=2, extra="added A 192.0.2.99\n")
        assert server.ctl("reload").returncode == 0
        deadline = time.monotonic() + 20
        while knot_serial() != 2:
            assert time.monotonic() < deadline, (kdir / "knot.log").read_text()[-3000:]
            time.sleep(0.2)

        log = server.log.read_text()
        assert "AXFR to 127.0.0.1" in log  # the first transfer
        assert "IXFR to 127.0.0.1 serial 2" in log  # the change, after our NOTIFY
        assert "NOTIFY serial 2 to 127.0.0.1" in log and "acknowledged" in log
        knot_log = (kdir / "knot.log").read_text()
        assert "IXFR" in knot_log

        # Knot serves exactly the records we serve
        q = dns.message.make_query(f"added.{zone.origin}", "A", want_dnssec=True)
        a = dns.query.udp(q, "127.0.0.1", port=kport, timeout=2)
        b = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2)
        assert a.answer == b.answer and a.answer
        ours = axfr(server.port, zone.origin, KEYRING)
        assert records(axfr(kport, zone.origin)) == records(ours)
    finally:
        stop(knot)
        stop(server.proc)


def test_multi_message_axfr_is_tsig_signed_throughout(dnsseal_server: RunningServer) -> None:
    z = dnsseal_server.zones["nsec3"]
    messages = list(
        dns.query.xfr(
            "127.0.0.1",
            z.origin,
            port=dnsseal_server.port,
            keyring=KEYRING,
            keyname="xfr",
            timeout=5,
        )
    )  # dnspython verifies the TSIG of every message of the sequence
    # (this zone may fit one message since owners are compressed; the long signed
    # sequences are checked in tests/signer/test_xfr_wire.py)
    assert messages and all(m.had_tsig for m in messages)


def test_tsig_signed_query_gets_a_signed_answer(dnsseal_server: RunningServer) -> None:
    z = dnsseal_server.zones["nsec"]
    q = dns.message.make_query(f"www.{z.origin}", "A", want_dnssec=True)
    q.use_tsig(KEYRING, keyname="xfr")
    r = dns.query.udp(q, "127.0.0.1", port=dnsseal_server.port, timeout=3)
    assert r.had_tsig and r.answer and r.rcode() == dns.rcode.NOERROR


def _ixfr_soas(port: int, origin: str, serial: int) -> list[int]:
    return [
        rr[0].serial
        for m in dns.query.xfr("127.0.0.1", origin, "IXFR", port=port, serial=serial, timeout=5)
        for rr in m.answer
        if rr.rdtype == dns.rdatatype.SOA
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_ixfr_after_restart_comes_from_the_journal(tmp_path: Path, workers: int) -> None:
    """With workers the loaded version is journaled before the fork (server.workers):
    the same history, whichever process answers the IXFR."""
    state = tmp_path / "state"
    zone = sign_zone(tmp_path / "z", "nsec", serial=1)
    v1 = dns.zone.from_file(str(zone.path), zone.origin, relativize=False)
    server = start_dnsseal(tmp_path, {"nsec": zone}, state_dir=state, workers=workers)
    try:
        sign_zone(tmp_path / "z", "nsec", serial=2, extra="added A 192.0.2.99\n")
        assert server.ctl("reload").returncode == 0
    finally:
        stop(server.proc)
    # while the server is down the zone changes again
    sign_zone(tmp_path / "z", "nsec", serial=3, extra="added A 192.0.2.98\nnew TXT x\n")
    v3 = dns.zone.from_file(str(zone.path), zone.origin, relativize=False)
    server = start_dnsseal(tmp_path, {"nsec": zone}, state_dir=state, workers=workers)
    try:
        for _ in range(3 * workers):  # (connections spread over the processes)
            assert _ixfr_soas(server.port, zone.origin, 2) == [3, 2, 3, 3]
            assert _ixfr_soas(server.port, zone.origin, 1) == [3, 1, 2, 2, 3, 3]
        q = dns.message.make_query(zone.origin, "IXFR")
        q.authority.append(v1.find_rrset(zone.origin, "SOA"))
        dns.query.inbound_xfr("127.0.0.1", v1, port=server.port, timeout=5)
        assert records(v1) == records(v3)
        assert "served from the journal" in server.log.read_text()
        # a serial the journal never saw: AXFR-style answer (SOA only first and last)
        soas = _ixfr_soas(server.port, zone.origin, 0)
        assert soas == [3, 3]
    finally:
        stop(server.proc)


@pytest.mark.slow
def test_nsd_secondary_follows_by_notify_and_ixfr(tmp_path: Path) -> None:
    nsd = require_tool("nsd")
    nport = free_port()
    zone = sign_zone(tmp_path / "z", "optout", serial=1)
    server = start_dnsseal(
        tmp_path, {"optout": zone}, also_notify={"optout": [f"127.0.0.1@{nport}"]}
    )
    nd = tmp_path / "nsd"
    nd.mkdir()
    conf = nd / "nsd.conf"
    conf.write_text(
        f"""server:
    ip-address: 127.0.0.1
    port: {nport}
    username: ""
    chroot: ""
    zonesdir: "{nd}"
    database: ""
    zonelistfile: "{nd}/zone.list"
    xfrdfile: "{nd}/xfrd.state"
    xfrdir: "{nd}"
    pidfile: "{nd}/nsd.pid"
    logfile: "{nd}/nsd.log"
    server-count: 1
    verbosity: 2
remote-control:
    control-enable: no
key:
    name: xfr
    algorithm: hmac-sha256
    secret: "{TSIG_SECRET}"
zone:
    name: {zone.origin}
    zonefile: "{nd}/secondary.zone"
    request-xfr: 127.0.0.1@{server.port} xfr
    allow-notify: 127.0.0.1 xfr
    provide-xfr: 127.0.0.1 NOKEY
"""
    )
    run_tool(["nsd-checkconf", conf])
    proc = subprocess.Popen(
        [nsd, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_dns(nport, zone.origin, proc, timeout=30)

        def serial() -> int:
            r = dns.query.udp(
                dns.message.make_query(zone.origin, "SOA"), "127.0.0.1", port=nport, timeout=2
            )
            return int(r.answer[0][0].serial)

        assert serial() == 1
        sign_zone(tmp_path / "z", "optout", serial=2, extra="added A 192.0.2.99\n")
        assert server.ctl("reload").returncode == 0
        deadline = time.monotonic() + 20
        while serial() != 2:
            assert time.monotonic() < deadline, (nd / "nsd.log").read_text()[-3000:]
            time.sleep(0.2)
        assert "IXFR to 127.0.0.1 serial 2" in server.log.read_text()
        ours = axfr(server.port, zone.origin, KEYRING)
        assert records(axfr(nport, zone.origin)) == records(ours)
    finally:
        stop(proc)
        stop(server.proc)
