"""The running server: UDP and TCP, pipelining, idle timeout, control socket, reloads."""

from __future__ import annotations

import os
import signal
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from .conftest import DNSSEAL, RunningServer, SignedZone, sign_zone, start_dnsseal, stop

pytestmark = pytest.mark.interop


def ask(server: RunningServer, name: str, rdtype: str, tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, want_dnssec=True)
    fn = dns.query.tcp if tcp else dns.query.udp
    return fn(q, "127.0.0.1", port=server.port, timeout=3)


def test_udp_and_tcp_answer_the_same(dnsseal_server: RunningServer) -> None:
    origin = dnsseal_server.zones["nsec3"].origin
    for name, rdtype in ((f"www.{origin}", "A"), (f"nope.{origin}", "A"), (origin, "DNSKEY")):
        udp = ask(dnsseal_server, name, rdtype)
        tcp = ask(dnsseal_server, name, rdtype, tcp=True)
        assert udp.rcode() == tcp.rcode()
        assert udp.answer == tcp.answer and udp.authority == tcp.authority
        assert udp.flags & dns.flags.AA


def test_tcp_pipelining_answers_every_query_in_one_connection(
    dnsseal_server: RunningServer,
) -> None:
    origin = dnsseal_server.zones["nsec"].origin
    queries = [
        dns.message.make_query(f"{n}.{origin}", "A", want_dnssec=True)
        for n in ("www", "mail", "nope", "x.wild", "alias") * 4
    ]
    payload = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
    with socket.create_connection(("127.0.0.1", dnsseal_server.port), timeout=5) as s:
        s.sendall(payload)  # all at once: the server must not wait for us between answers
        ids = set()
        buf = b""
        while len(ids) < len(queries):
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(65536)
                assert chunk, "connection closed early"
                buf += chunk
            n = struct.unpack("!H", buf[:2])[0]
            ids.add(dns.message.from_wire(buf[2 : 2 + n]).id)
            buf = buf[2 + n :]
    assert ids == {q.id for q in queries}


def test_idle_tcp_connections_are_closed(dnsseal_server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", dnsseal_server.port), timeout=10) as s:
        start = time.monotonic()
        assert s.recv(10) == b""  # the server closes after tcp-idle-timeout (2 s)
        assert time.monotonic() - start < 8


def test_ipv6(signed_zones: dict[str, SignedZone], tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.fail("this machine has no ::1; the IPv6 test needs loopback IPv6")
    server = start_dnsseal(tmp_path, {"nsec": signed_zones["nsec"]}, v6=True)
    try:
        origin = signed_zones["nsec"].origin
        q = dns.message.make_query(f"www.{origin}", "AAAA", want_dnssec=True)
        for fn in (dns.query.udp, dns.query.tcp):
            r = fn(q, "::1", port=server.port, timeout=3)
            assert r.rcode() == dns.rcode.NOERROR and r.answer
    finally:
        stop(server.proc)


def test_control_socket(dnsseal_server: RunningServer) -> None:
    mode = stat.S_IMODE(os.stat(dnsseal_server.control).st_mode)
    assert mode == 0o600
    status = dnsseal_server.ctl("status")
    assert status.returncode == 0, status.stderr
    assert "zones: 3" in status.stdout
    origin = dnsseal_server.zones["optout"].origin
    zs = dnsseal_server.ctl("zone-status", origin)
    assert zs.returncode == 0, zs.stderr
    assert "serial: 1" in zs.stdout and "denial: NSEC3" in zs.stdout
    missing = dnsseal_server.ctl("zone-status", "nothere.example.")
    assert missing.returncode == 1 and "no zone" in missing.stderr


def test_reload_by_ctl_and_sighup_serves_new_serial(
    signed_zones: dict[str, SignedZone], tmp_path: Path
) -> None:
    zone = sign_zone(tmp_path / "z", "nsec", serial=10)
    server = start_dnsseal(tmp_path, {"nsec": zone})
    try:
        name = f"added.{zone.origin}"
        assert ask(server, name, "A").rcode() == dns.rcode.NXDOMAIN
        sign_zone(tmp_path / "z", "nsec", serial=11, extra="added A 192.0.2.99\n")
        r = server.ctl("reload")
        assert r.returncode == 0, r.stdout + r.stderr
        assert ask(server, name, "A").rcode() == dns.rcode.NOERROR
        assert ask(server, zone.origin, "SOA").answer[0][0].serial == 11

        sign_zone(tmp_path / "z", "nsec", serial=12)
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while ask(server, zone.origin, "SOA").answer[0][0].serial != 12:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
        assert ask(server, name, "A").rcode() == dns.rcode.NXDOMAIN

        # a broken zone file keeps the previous version and reports the problem
        (tmp_path / "z" / "zone.signed").write_text("this is not a zone\n")
        r = server.ctl("reload")
        assert r.returncode == 1 and "zone.signed" in r.stderr
        assert ask(server, zone.origin, "SOA").answer[0][0].serial == 12

        stopped = server.ctl("stop")
        assert stopped.returncode == 0
        assert server.proc.wait(timeout=10) == 0
        assert not server.control.exists()
    finally:
        stop(server.proc)


def test_config_errors_name_the_option(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[server]\nlisten = ["127.0.0.1@99999"]\n[zone."x."]\npresigned = true\n')
    r = subprocess.run(
        [str(DNSSEAL), "serve", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 1
    assert "server.listen[0]" in r.stderr
    assert 'zone."x.".file' in r.stderr


def test_default_mode_serves_presigned_and_signs_unsigned(
    signed_zones: dict[str, SignedZone], tmp_path: Path
) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    z = signed_zones["nsec"]
    (zones / f"{z.origin}signed").write_text(z.path.read_text())
    plain_text = "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
    (zones / "plain.example.zone").write_text(plain_text)
    from conftest import free_port

    port = free_port()
    with (tmp_path / "out.txt").open("wb") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "serve", "-p", str(port)], cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        from .conftest import wait_for_dns

        wait_for_dns(port, z.origin, proc)
        deadline = time.monotonic() + 5
        text = ""
        while "control:" not in text and time.monotonic() < deadline:
            time.sleep(0.1)
            text = (tmp_path / "out.txt").read_text()
        assert f"dig @127.0.0.1 -p {port} {z.origin}" in text
        assert f"DS for the parent: {z.ds}".lower() in text.lower()
        assert "plain.example. serial 1" in text
        assert "dnssec-policy 'default'" in text
        q = dns.message.make_query("plain.example.", "SOA", want_dnssec=True)
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
        assert r.rcode() == dns.rcode.NOERROR
        assert {rr.rdtype for rr in r.answer} == {dns.rdatatype.SOA, dns.rdatatype.RRSIG}
        assert list((tmp_path / "keys").glob("Kplain.example.+013+*.private"))
        assert (zones / "plain.example.zone").read_text() == plain_text  # never modified
        assert dns.rdatatype.SOA in {
            rr.rdtype
            for rr in dns.query.udp(
                dns.message.make_query(z.origin, "SOA"), "127.0.0.1", port=port, timeout=3
            ).answer
        }
    finally:
        stop(proc)


def _children(pid: int) -> list[int]:
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat_file.parent.name))
    return out


def test_worker_processes_share_the_port(
    signed_zones: dict[str, SignedZone], tmp_path: Path
) -> None:
    zone = sign_zone(tmp_path / "z", "nsec", serial=5)
    server = start_dnsseal(tmp_path, {"nsec": zone}, workers=2)
    try:
        deadline = time.monotonic() + 20
        while len(_children(server.proc.pid)) != 1:  # exactly one extra worker, no more
            assert time.monotonic() < deadline
            time.sleep(0.2)
        (worker,) = _children(server.proc.pid)
        time.sleep(3)  # the worker loads the zone and binds the shared port
        assert _children(worker) == []  # a worker never spawns workers
        for _ in range(20):  # new source ports spread over both processes
            assert ask(server, f"www.{zone.origin}", "A").answer
        sign_zone(tmp_path / "z", "nsec", serial=6)
        assert server.ctl("reload").returncode == 0
        deadline = time.monotonic() + 10
        while {ask(server, zone.origin, "SOA").answer[0][0].serial for _ in range(10)} != {6}:
            assert time.monotonic() < deadline, "a worker did not reload"
            time.sleep(0.2)
        assert server.ctl("stop").returncode == 0
        assert server.proc.wait(timeout=15) == 0
        assert not Path(f"/proc/{worker}").exists()
    finally:
        stop(server.proc)


def test_reload_does_not_drop_queries(signed_zones: dict[str, SignedZone], tmp_path: Path) -> None:
    import threading

    zone = sign_zone(tmp_path / "z", "nsec3", serial=20)
    server = start_dnsseal(tmp_path, {"nsec3": zone})
    answered: list[int] = []
    failures: list[str] = []
    done = threading.Event()

    def query_loop() -> None:
        q = dns.message.make_query(f"www.{zone.origin}", "A", want_dnssec=True)
        while not done.is_set():
            try:
                r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2)
                answered.append(len(r.answer))
            except Exception as e:  # every failure is reported below
                failures.append(repr(e))

    try:
        thread = threading.Thread(target=query_loop)
        thread.start()
        for serial in (21, 22):
            sign_zone(tmp_path / "z", "nsec3", serial=serial, extra=f"s{serial} A 192.0.2.9\n")
            assert server.ctl("reload").returncode == 0
        done.set()
        thread.join()
        assert failures == [] and len(answered) > 20 and all(answered)
        assert ask(server, zone.origin, "SOA").answer[0][0].serial == 22
    finally:
        done.set()
        stop(server.proc)
