"""The query, transfer, update, NOTIFY and signing counters of /metrics against a real
`dnsseal serve`, counted from what the clients saw.

* Every query is in ``dnsseal_queries_total{proto,qtype,rcode}``, whichever process (two
  here) and whichever lane answered it: the C datagram loop, the pure-Python loop, the
  general path, TCP.  The expected counts are tallied from the responses as dnspython,
  kdig and dig read them, never from the server's own numbers.
* ``dnsseal_responses_truncated_total`` counts the TC responses the client got.
* ``dnsseal_xfr_total`` counts the AXFR and IXFR that kdig and dig took (and the one
  refused), and the transfers a secondary zone took from BIND's named.
* ``dnsseal_updates_total`` counts nsupdate's updates by result;
  ``dnsseal_notify_sent_total`` is the number of NOTIFY messages a socket of this test
  received; ``dnsseal_zone_sign_duration_seconds`` has the full and incremental signing.
"""

from __future__ import annotations

import random
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client.parser import text_string_to_metric_families

from automation.conftest import TSIG_SECRET, dnsseal_serve, write_config, zone_text
from automation.test_bump import ZONE as HID_ZONE
from automation.test_bump import hidden_primary, primaries_config
from automation.test_bump import nsupdate as primary_update
from conftest import free_port, require_tool

from .conftest import Served, _up, wait_until, with_http

ZONE = "count.example."
BIG = " ".join(f'"{c * 250}"' for c in "abc")  # a TXT RRset too large for 512 octets
Key = tuple[str, str, str]  # proto, qtype, rcode


def counter_samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def query_counts(s: Served) -> Counter[Key]:
    got = counter_samples(s.metrics(), "dnsseal_queries_total")
    out: Counter[Key] = Counter()
    for labels, v in got.items():
        d = dict(labels)
        out[(d["proto"], d["qtype"], d["rcode"])] = int(v)
    return out


def one(s: Served, name: str, **labels: str) -> float:
    return counter_samples(s.metrics(), name).get(tuple(sorted(labels.items())), 0.0)


def seen(proto: str, wire: bytes) -> Key:
    """What a client saw: the response's question type and rcode, read by dnspython."""
    msg = dns.message.from_wire(wire, ignore_trailing=True, question_only=True)
    qtype = dns.rdatatype.to_text(msg.question[0].rdtype) if msg.question else "none"
    if msg.question and msg.question[0].rdtype > 263:  # the metric's bucket for the rest
        qtype = "other"
    return proto, qtype, dns.rcode.to_text(msg.rcode())


def udp_exchange(port: int, wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:  # a new source port each
        c.settimeout(5)
        c.sendto(wire, ("127.0.0.1", port))
        return c.recv(65535)


def server_config(d: Path, port: int, http: int, workers: int, opts: str = "") -> None:
    conf = write_config(
        d,
        port,
        {ZONE: zone_text(ZONE, extra=f"big TXT {BIG}\n")},
        zone_options={ZONE: opts} if opts else None,
    )
    with_http(conf, http)
    text = conf.read_text().replace("[server]\n", f"[server]\nworkers = {workers}\n", 1)
    conf.write_text(text)


@contextmanager
def serving(d: Path, workers: int = 1, opts: str = "") -> Iterator[Served]:
    port, http = free_port(), free_port(socket.SOCK_STREAM)
    server_config(d, port, http, workers, opts)
    with dnsseal_serve(d, ["-c", "dnsseal.toml"], ZONE, port):
        s = Served(d, port, http)
        wait_until(lambda: _up(s), 15, "the HTTP listener")
        yield s


def questions(rng: random.Random) -> list[bytes]:
    """A mix for every UDP lane: names the C loop answers (again: the response cache),
    NXDOMAIN, the general path (NS, DNSKEY under DO, ANY), a TC answer, a message without
    a question (FORMERR), an unknown type."""
    out = []
    for i in range(120):
        kind = rng.randrange(9)
        if kind == 0:
            q = dns.message.make_query(f"www.{ZONE}", "A", want_dnssec=True)
        elif kind == 1:
            q = dns.message.make_query(f"nx{i}.{ZONE}", "A", want_dnssec=rng.random() < 0.5)
        elif kind == 2:
            q = dns.message.make_query(ZONE, "NS")
        elif kind == 3:
            q = dns.message.make_query(ZONE, "DNSKEY", want_dnssec=True)
        elif kind == 4:
            q = dns.message.make_query(f"big.{ZONE}", "TXT", use_edns=False)
        elif kind == 5:
            q = dns.message.make_query(f"mail.{ZONE}", "MX")
        elif kind == 6:
            q = dns.message.make_query(f"www.{ZONE}", 65280)  # private type: "other"
        elif kind == 7:
            q = dns.message.make_query(ZONE, "SOA")
        else:
            out.append(bytes([0x12, 0x34, 1, 0]) + bytes(8))  # no question: FORMERR
            continue
        out.append(q.to_wire())
    return out


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("loop", ["c", "python"])
def test_every_query_is_counted_once_across_processes_and_lanes(
    tmp_path: Path, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dnsseal.server import udp

    if loop == "python":
        monkeypatch.setenv(udp.LOOP_ENV, "python")
    else:
        assert udp.native_loop()  # the C loop is built: it answers (and counts) here
    kdig, dig = require_tool("kdig"), require_tool("dig")
    with serving(tmp_path, workers=2) as s:
        before = query_counts(s)
        trunc_before = one(s, "dnsseal_responses_truncated_total")
        xfr_before = counter_samples(s.metrics(), "dnsseal_xfr_total")
        expected: Counter[Key] = Counter()
        truncated = 0
        for wire in questions(random.Random(19)):
            response = udp_exchange(s.port, wire)
            expected[seen("udp", response)] += 1
            truncated += bool(response[2] & 0x02)
        assert truncated > 0
        # TCP: a connection per query, so that both processes accept some
        for i in range(30):
            q = dns.message.make_query(f"www.{ZONE}" if i % 2 else f"nx.{ZONE}", "A")
            r = dns.query.tcp(q, "127.0.0.1", port=s.port, timeout=5)
            expected[seen("tcp", r.to_wire())] += 1
        # kdig and dig: a UDP and a TCP query as they send them, an AXFR, an IXFR, an AXFR
        # of a zone not served here
        for argv, proto in (
            ([kdig, "@127.0.0.1", "-p", str(s.port), f"www.{ZONE}", "A", "+dnssec"], "udp"),
            ([dig, "@127.0.0.1", "-p", str(s.port), f"mail.{ZONE}", "MX", "+tcp"], "tcp"),
        ):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
            assert "status: NOERROR" in out.stdout
            expected[(proto, argv[5], "NOERROR")] += 1
        axfr = subprocess.run(
            [kdig, "@127.0.0.1", "-p", str(s.port), ZONE, "AXFR"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert f"big.{ZONE}" in axfr.stdout
        expected[("tcp", "AXFR", "NOERROR")] += 1
        ixfr = subprocess.run(
            [dig, "@127.0.0.1", "-p", str(s.port), ZONE, "IXFR=1"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert "SOA" in ixfr.stdout
        expected[("tcp", "IXFR", "NOERROR")] += 1
        refused = subprocess.run(
            [kdig, "@127.0.0.1", "-p", str(s.port), "other.example.", "AXFR"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        said = refused.stdout + refused.stderr  # kdig: "replied with error 'NOTAUTH'"
        status = "NOTAUTH" if "NOTAUTH" in said else "REFUSED"
        assert status in said, said
        expected[("tcp", "AXFR", status)] += 1

        def delta() -> Counter[Key]:
            now = query_counts(s)
            now.subtract(before)
            return +now

        # exactly what the clients saw: nothing lost, nothing counted twice
        assert delta() == expected
        assert one(s, "dnsseal_responses_truncated_total") - trunc_before == truncated
        xfr = counter_samples(s.metrics(), "dnsseal_xfr_total")

        def xfr_delta(**labels: str) -> float:
            k = tuple(sorted(labels.items()))
            return xfr.get(k, 0.0) - xfr_before.get(k, 0.0)

        out = {"zone": ZONE, "direction": "out"}
        assert xfr_delta(**out, type="AXFR", result="success") == 1
        assert xfr_delta(**out, type="IXFR", result="success") == 1
        assert xfr_delta(zone="", direction="out", type="AXFR", result=status) == 1
        assert "\ndnsseal_worker_processes 2\n" in s.metrics()
    assert "Traceback" not in (tmp_path / "out.txt").read_text()


@contextmanager
def notify_sink() -> Iterator[tuple[int, list[bytes]]]:
    """A UDP socket that acknowledges every NOTIFY it receives (a secondary's part)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    got: list[bytes] = []
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            try:
                wire, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = dns.message.from_wire(wire)
            got.append(wire)
            sock.sendto(dns.message.make_response(msg).to_wire(), addr)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield sock.getsockname()[1], got
    finally:
        done.set()
        t.join(5)
        sock.close()


def nsupdate(port: int, zone: str, script: str, key: bool) -> str:
    args = [require_tool("nsupdate")]
    if key:
        args += ["-y", f"hmac-sha256:ddns:{TSIG_SECRET}"]
    body = f"server 127.0.0.1 {port}\nzone {zone}\n{script}\nsend\n"
    p = subprocess.run(args, input=body, capture_output=True, text=True, timeout=30, check=False)
    return p.stdout + p.stderr


@pytest.mark.interop
def test_updates_notify_and_signing_are_counted(tmp_path: Path) -> None:
    with notify_sink() as (nport, notifies):
        opts = f'allow-update = ["key ddns"]\nalso-notify = ["127.0.0.1@{nport}"]'
        with serving(tmp_path, workers=2, opts=opts) as s:
            full = one(s, "dnsseal_zone_sign_duration_seconds", zone=ZONE, kind="full")
            assert 0 < full < 60
            out = nsupdate(s.port, ZONE, f"update add new.{ZONE} 2 A 192.0.2.7", key=True)
            assert "REFUSED" not in out, out
            r = dns.query.udp(dns.message.make_query(f"new.{ZONE}", "A"), "127.0.0.1", port=s.port)
            assert r.rcode() == dns.rcode.NOERROR and r.answer
            assert "REFUSED" in nsupdate(s.port, ZONE, f"update add x.{ZONE} 2 A 192.0.2.8", False)
            assert "NOTAUTH" in nsupdate(
                s.port, "nope.example.", "update add x.nope.example. 2 A 192.0.2.9", True
            )
            assert one(s, "dnsseal_updates_total", zone=ZONE, result="NOERROR") == 1
            assert one(s, "dnsseal_updates_total", zone=ZONE, result="REFUSED") == 1
            assert one(s, "dnsseal_updates_total", zone="", result="NOTAUTH") == 1
            inc = one(s, "dnsseal_zone_sign_duration_seconds", zone=ZONE, kind="incremental")
            assert 0 < inc < 60
            # every NOTIFY sent reached the sink (the zone also re-signs on its own: the two
            # agree once the last one has arrived)
            wait_until(lambda: notifies, 10, "a NOTIFY")
            wait_until(
                lambda: one(s, "dnsseal_notify_sent_total", zone=ZONE) == len(notifies),
                10,
                "the NOTIFY count to match the NOTIFYs received",
            )
            for wire in notifies:
                msg = dns.message.from_wire(wire)
                assert msg.opcode() == dns.opcode.NOTIFY and msg.question[0].name.to_text() == ZONE


@pytest.mark.interop
@pytest.mark.slow
def test_transfers_from_a_bind_primary_are_counted(tmp_path: Path) -> None:
    """named primary -> dnsseal secondary: the first transfer (AXFR), then an update on
    named that reaches dnsseal by NOTIFY and IXFR."""
    port, http = free_port(), free_port(socket.SOCK_STREAM)
    with hidden_primary(tmp_path / "named", port) as pport:
        with_http(primaries_config(tmp_path, port, pport), http)
        with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], HID_ZONE, port):
            s = Served(tmp_path, port, http)
            wait_until(lambda: _up(s), 15, "the HTTP listener")
            labels = {"zone": HID_ZONE, "direction": "in"}
            assert one(s, "dnsseal_xfr_total", **labels, type="AXFR", result="success") == 1
            primary_update(pport, f"update add new.{HID_ZONE} 2 A 192.0.2.99")
            wait_until(
                lambda: one(s, "dnsseal_xfr_total", **labels, type="IXFR", result="success"),
                15,
                "the IXFR to be counted",
            )
            log = (tmp_path / "out.txt").read_text()
            assert f"transferred serial 2 from 127.0.0.1@{pport} (IXFR)" in log
            assert one(s, "dnsseal_xfr_total", **labels, type="AXFR", result="success") == 1
            assert one(s, "dnsseal_xfr_total", **labels, type="IXFR", result="failure") == 0


@pytest.mark.interop
def test_a_transfer_the_primary_refuses_is_a_failure(tmp_path: Path) -> None:
    """named answers the SOA query but refuses the AXFR without the TSIG key."""
    port, http = free_port(), free_port(socket.SOCK_STREAM)
    with hidden_primary(tmp_path / "named", None) as pport:
        secondary = f"""
[zone."{HID_ZONE}"]
primaries = ["127.0.0.1 port {pport}"]
dnssec-policy = "fast"
"""
        conf = write_config(tmp_path, port, {ZONE: zone_text(ZONE)}, extra=secondary)
        with_http(conf, http)
        with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
            s = Served(tmp_path, port, http)
            wait_until(lambda: _up(s), 15, "the HTTP listener")
            labels = {"zone": HID_ZONE, "direction": "in", "type": "AXFR"}
            wait_until(
                lambda: one(s, "dnsseal_xfr_total", **labels, result="failure") >= 1,
                20,
                "the refused transfer to be counted",
            )
            assert one(s, "dnsseal_xfr_total", **labels, result="success") == 0
    assert "refresh from 127.0.0.1@" in (tmp_path / "out.txt").read_text()


def test_worker_slots_are_summed_after_a_fork() -> None:
    """The shared map: a forked process counting in its own slot is in the main process's
    totals."""
    import os

    from dnsseal.server import counters

    qc = counters.QueryCounts(2)
    query = dns.message.make_query(f"www.{ZONE}", "A")
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NXDOMAIN)
    wire = response.to_wire()
    qc.count(counters.TCP, query.to_wire(), wire)
    pid = os.fork()
    if pid == 0:  # the worker
        qc.attach(1)
        for _ in range(3):
            qc.count(counters.UDP_LOOP, query.to_wire(), wire)
        qc.count(counters.UDP_THREAD, query.to_wire(), None)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    table, truncated = qc.totals()
    a, nx = dns.rdatatype.A, dns.rcode.NXDOMAIN
    assert table == {("tcp", a, nx): 1, ("udp", a, nx): 3, ("udp", a, counters.RC_DROPPED): 1}
    assert truncated == 0


def test_c_layout_is_the_python_one() -> None:
    from dnsseal.server import _udpfast, counters

    assert (_udpfast.QT_SLOTS, _udpfast.RC_SLOTS, _udpfast.SLOT_WORDS, _udpfast.TRUNC_WORD) == (
        counters.QT_SLOTS,
        counters.RC_SLOTS,
        counters.SLOT_WORDS,
        counters.TRUNC_WORD,
    )


def test_no_question_and_cut_messages_have_a_row() -> None:
    from dnsseal.server import counters

    q = dns.message.make_query(f"www.{ZONE}", "AAAA").to_wire()
    assert counters.qtype_slot(q) == dns.rdatatype.AAAA
    assert counters.qtype_slot(q[:-3]) == counters.QT_NONE
    assert counters.qtype_slot(q[:12]) == counters.QT_NONE
    assert counters.qtype_slot(bytes(12)) == counters.QT_NONE
    assert counters.qtype_slot(dns.message.make_query("x.", 32769).to_wire()) == counters.QT_OTHER
