"""Response rate limiting: the pure accounting (proto/rrl.py) with time as an argument, and
a live burst against ``dnsseal serve`` and BIND's named configured with the same
``rate-limit``, counting answered, slipped (TC) and dropped responses."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import free_port, require_tool, stop, wait_for_dns
from dnsseal.proto.rrl import Kind, RateLimitConfig, RateLimiter, Verdict, classify, slip_response
from server.conftest import DNSSEAL, SignedZone, sign_zone

WWW = b"\x03www\x07example\x00"
S, D, T = Verdict.SEND, Verdict.DROP, Verdict.SLIP


def burst(rl: RateLimiter, n: int, now: float, client: str = "192.0.2.1") -> list[Verdict]:
    return [rl.decide(client, Kind.ANSWER, WWW, 1, now) for _ in range(n)]


def test_burst_answers_rate_then_slips_every_second_one() -> None:
    rl = RateLimiter(RateLimitConfig(responses_per_second=5, slip=2))
    assert burst(rl, 11, 100.0) == [S] * 5 + [T, D, T, D, T, D]
    assert rl.limited == 6 and rl.slipped == 3


@pytest.mark.parametrize(
    ("slip", "expected"), [(0, [D] * 6), (1, [T] * 6), (3, [T, D, D, T, D, D])]
)
def test_slip_ratio(slip: int, expected: list[Verdict]) -> None:
    rl = RateLimiter(RateLimitConfig(responses_per_second=5, slip=slip))
    assert burst(rl, 11, 0.5)[5:] == expected


def test_accounts_are_per_network_and_per_name() -> None:
    rl = RateLimiter(RateLimitConfig(responses_per_second=2, ipv6_prefix_length=56))
    assert burst(rl, 3, 7.0, "192.0.2.1")[-1] != S
    assert burst(rl, 1, 7.0, "192.0.2.200") == [D]  # the same /24: the same account
    assert burst(rl, 2, 7.0, "198.51.100.1") == [S, S]  # another network: unaffected
    assert rl.decide("192.0.2.1", Kind.ANSWER, b"\x03ftp\x07example\x00", 1, 7.0) == S
    assert rl.decide("192.0.2.1", Kind.ANSWER, WWW, 28, 7.0) == S  # another type
    assert burst(rl, 3, 7.0, "2001:db8:0:1::1")[-1] != S
    assert burst(rl, 1, 7.0, "2001:db8:0:ff::2")[-1] != S  # same /56
    assert burst(rl, 1, 7.0, "2001:db8:0:100::1") == [S]


def test_credit_per_second_and_the_window_floor() -> None:
    rate, window = 5, 4
    rl = RateLimiter(RateLimitConfig(responses_per_second=rate, window=window, slip=0))
    burst(rl, 200, 10.0)  # deep in debt: the balance stops at -window * rate
    # One second of credit pays part of the debt, nothing is sent yet.
    assert burst(rl, 1, 11.0) == [D]
    # Quiet for `window` seconds: the balance is back to `rate`.
    assert burst(rl, rate + 1, 11.0 + window + 1) == [S] * rate + [D]


def test_quiet_longer_than_window_starts_afresh() -> None:
    rl = RateLimiter(RateLimitConfig(responses_per_second=3, window=2, slip=0))
    burst(rl, 50, 0.0)
    assert burst(rl, 4, 3.0) == [S, S, S, D]


def test_nxdomain_and_error_rates() -> None:
    cfg = RateLimitConfig(responses_per_second=10, nxdomains_per_second=1, errors_per_second=0)
    rl = RateLimiter(cfg)
    zone = b"\x07example\x00"
    assert [rl.decide("192.0.2.1", Kind.NXDOMAIN, zone, 0, 1.0) for _ in range(3)] == [S, T, D]
    assert all(rl.decide("192.0.2.1", Kind.ERROR, b"", 0, 1.0) == S for _ in range(50))


def test_log_only_and_exempt_clients_send_everything() -> None:
    rl = RateLimiter(RateLimitConfig(responses_per_second=1, log_only=True))
    assert burst(rl, 5, 1.0) == [S] * 5 and rl.limited == 4
    rl = RateLimiter(RateLimitConfig(responses_per_second=1, exempt_clients=("192.0.2.0/24",)))
    assert burst(rl, 5, 1.0) == [S] * 5 and rl.limited == 0


def test_table_is_bounded() -> None:
    rl = RateLimiter(RateLimitConfig(responses_per_second=1, max_table_size=100))
    for i in range(1000):
        rl.decide(f"10.{i // 256}.{i % 256}.1", Kind.ANSWER, WWW, 1, 1.0)
    assert len(rl) == 100


def _response(text: str) -> tuple[bytes, bytes]:
    q = dns.message.make_query("www.example.", "A")
    r = dns.message.from_text(text)
    r.id = q.id
    return q.to_wire(), r.to_wire()


def test_classify_charges_nxdomain_to_the_zone_and_referrals_to_the_cut() -> None:
    header = "id 1\nopcode QUERY\nflags QR {flags}\nrcode {rcode}\n;QUESTION\nwww.example. IN A\n"
    q, r = _response(
        header.format(flags="AA", rcode="NOERROR") + ";ANSWER\nwww.example. 60 IN A 192.0.2.1\n"
    )
    assert classify(q, r) == (Kind.ANSWER, WWW, 1)
    q, r = _response(
        header.format(flags="AA", rcode="NXDOMAIN")
        + ";AUTHORITY\nExample. 60 IN SOA ns. hm. 1 2 3 4 5\n"
    )
    assert classify(q, r) == (Kind.NXDOMAIN, b"\x07example\x00", 0)
    q, r = _response(
        header.format(flags="", rcode="NOERROR") + ";AUTHORITY\nwww.example. 60 IN NS ns.other.\n"
    )
    assert classify(q, r) == (Kind.REFERRAL, WWW, 0)
    q, r = _response(header.format(flags="AA", rcode="NOERROR"))
    assert classify(q, r) == (Kind.NODATA, WWW, 1)
    q, r = _response(header.format(flags="", rcode="REFUSED"))
    assert classify(q, r) == (Kind.ERROR, b"", 0)


def test_slip_response_is_the_question_with_tc() -> None:
    _, r = _response(
        "id 1\nopcode QUERY\nflags QR AA\n;QUESTION\nwww.example. IN A\n"
        ";ANSWER\nwww.example. 60 IN A 192.0.2.1\n"
    )
    m = dns.message.from_wire(slip_response(r))
    assert m.flags & dns.flags.TC and m.flags & dns.flags.QR
    assert m.id == dns.message.from_wire(r).id
    assert [str(x) for x in m.question] == ["www.example. IN A"] and not m.answer


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_hostile_bytes_never_raise(query: bytes, response: bytes) -> None:
    kind, _, _ = classify(query, response)
    assert kind in Kind
    if len(response) >= 12:
        assert len(slip_response(response)) >= 12


# -- live: dnsseal and named, the same burst ---------------------------------------------

SLIPPED_SHAPES: set[tuple[int, int, str]] = set()  # (server port, rcode, flags) seen
RATE, WINDOW, SLIP = 5, 15, 2
NXDOMAIN = dns.rcode.NXDOMAIN
BURST = 40


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> SignedZone:
    return sign_zone(tmp_path_factory.mktemp("rrlzone"), "nsec")


@contextlib.contextmanager
def dnsseal_rrl(d: Path, zone: SignedZone, rate_limit: str | None) -> Iterator[int]:
    port = free_port()
    conf = d / "dnsseal.toml"
    conf.write_text(
        "\n".join(
            [
                "[server]",
                f'listen = ["127.0.0.1@{port}"]',
                *([f"rate-limit = {rate_limit}"] if rate_limit else []),
                "",
                f'[zone."{zone.origin}"]',
                f'file = "{zone.path}"',
                "presigned = true",
                "",
            ]
        )
    )
    with (d / "dnsseal.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-v", "serve", "-c", str(conf)], stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, zone.origin, proc)
        yield port
    finally:
        stop(proc)


@contextlib.contextmanager
def named_rrl(d: Path, zone: SignedZone) -> Iterator[int]:
    named = require_tool("named")
    port = free_port()
    conf = d / "named.conf"
    conf.write_text(
        f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    minimal-responses yes;
    notify no;
    rate-limit {{ responses-per-second {RATE}; window {WINDOW}; slip {SLIP}; }};
}};
controls {{ }};
zone "{zone.origin}" {{ type primary; file "{zone.path}"; }};
"""
    )
    with (d / "named.log").open("wb") as logf:
        proc = subprocess.Popen(
            [named, "-g", "-c", str(conf), "-n", "1"], stdout=subprocess.DEVNULL, stderr=logf
        )
    try:
        # wait_for_dns's probes are SOA queries: they go to another account than www A
        wait_for_dns(port, zone.origin, proc)
        yield port
    finally:
        stop(proc)


def send_burst(
    port: int, qname: str, source: str, n: int = BURST, rcode: dns.rcode.Rcode = dns.rcode.NOERROR
) -> tuple[int, int, int]:
    """``n`` queries for ``qname`` (``{i}`` is replaced by the query's number) from
    ``source`` within one wall-clock second; returns (answered, slipped, dropped).
    Answers must have ``rcode``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        # start just after a second boundary: both servers count whole seconds
        time.sleep(1.02 - time.time() % 1)
        ids = set()
        for i in range(n):
            q = dns.message.make_query(qname.format(i=i), "A")
            q.id = i + 1
            ids.add(q.id)
            s.sendto(q.to_wire(), ("127.0.0.1", port))
        sent_at = time.time()
        assert sent_at % 1 < 0.9, "the burst took most of a second: counts would be unsure"
        answered = slipped = 0
        s.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while True:
                r = dns.message.from_wire(s.recv(4096))
                assert r.id in ids
                ids.discard(r.id)
                if r.flags & dns.flags.TC:
                    assert not r.answer and not r.authority
                    slipped += 1
                    SLIPPED_SHAPES.add((port, r.rcode(), dns.flags.to_text(r.flags)))
                else:
                    assert r.rcode() == rcode
                    assert r.answer or rcode != dns.rcode.NOERROR
                    answered += 1
        return answered, slipped, len(ids)


@pytest.mark.interop
@pytest.mark.slow
def test_burst_against_named(tmp_path: Path, zone: SignedZone) -> None:
    rate_limit = f"{{ responses-per-second = {RATE}, window = {WINDOW}, slip = {SLIP} }}"
    (tmp_path / "ours").mkdir()
    (tmp_path / "bind").mkdir()
    qname = f"www.{zone.origin}"
    SLIPPED_SHAPES.clear()
    with dnsseal_rrl(tmp_path / "ours", zone, rate_limit) as port:
        our_port = port
        ours = send_burst(port, qname, "127.0.0.1")
        # another client (another /24) is unaffected while the first one is limited
        other = send_burst(port, qname, "127.0.1.1", RATE)
        again = send_burst(port, qname, "127.0.0.1", 4)
        # random names that do not exist: one account, the zone's (NXDOMAIN)
        ours_nx = send_burst(port, f"nx{{i}}.{zone.origin}", "127.0.2.1", rcode=NXDOMAIN)
    with named_rrl(tmp_path / "bind", zone) as port:
        bind = send_burst(port, qname, "127.0.0.1")
        bind_nx = send_burst(port, f"nx{{i}}.{zone.origin}", "127.0.2.1", rcode=NXDOMAIN)
    print(f"answered/slipped/dropped of {BURST}: dnsseal {ours}, named {bind}")
    print(f"NXDOMAIN for random names: dnsseal {ours_nx}, named {bind_nx}")
    assert ours_nx == bind_nx
    # the slipped responses look the same too (rcode and flags, for answers and NXDOMAIN)
    shapes: dict[bool, set[tuple[int, str]]] = {True: set(), False: set()}
    for p, rcode, flags in SLIPPED_SHAPES:
        shapes[p == our_port].add((rcode, flags))
    print(f"slipped responses: dnsseal {sorted(shapes[True])}, named {sorted(shapes[False])}")
    assert shapes[True] == shapes[False]
    limited = BURST - RATE
    assert ours == (RATE, (limited + 1) // 2, limited // 2)
    assert ours == bind
    assert other == (RATE, 0, 0)
    # a second later, one second of credit (RATE) does not cover the debt: still limited
    assert again[0] == 0 and again[1] + again[2] == 4


@pytest.mark.slow
def test_off_by_default_and_tcp_never_limited(tmp_path: Path, zone: SignedZone) -> None:
    qname = f"www.{zone.origin}"
    with dnsseal_rrl(tmp_path, zone, None) as port:
        assert send_burst(port, qname, "127.0.0.1") == (BURST, 0, 0)
    (tmp_path / "on").mkdir()
    with dnsseal_rrl(tmp_path / "on", zone, "{ responses-per-second = 1, slip = 0 }") as port:
        send_burst(port, qname, "127.0.0.1", 10)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as t:
            for i in range(10):
                q = dns.message.make_query(qname, "A")
                wire = q.to_wire()
                t.sendall(struct.pack("!H", len(wire)) + wire)
                (n,) = struct.unpack("!H", t.recv(2, socket.MSG_WAITALL))
                r = dns.message.from_wire(t.recv(n, socket.MSG_WAITALL))
                assert r.answer and not r.flags & dns.flags.TC, i
