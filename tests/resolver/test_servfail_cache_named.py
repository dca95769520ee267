"""servfail-ttl against named: both resolvers, with ``servfail-ttl 1``, over a root whose
servers answer SERVFAIL for every name under ``broken.``, asked the same question twice at
once, send it upstream once; asked again after the TTL, they send it again.  Asked every
quarter second for 11 s, named resolves it again every second (its servfail-ttl is fixed),
dnsseal after 1, 2, 4 and 8 s (RFC 9520 s3.2 back-off, a deliberate difference); each
counts the questions its failure cache answered (named logs them at debug level 1,
dnsseal in /metrics), and those plus the resolutions are every question asked.

Each resolver has its own authority (a small UDP server on 127.0.0.1 that serves the root's
NS and address and SERVFAIL below ``broken.``) which counts the queries it gets for names
under ``broken.``: the count is what each resolver sent upstream for the client's question.
Validation is off in both (named: ``dnssec-validation no``; dnsseal: ``domain-insecure``
for the root), as the root here is not signed; QNAME minimisation is off in both, so the
question goes upstream as asked.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, require_tool, stop

from .bindtree import wait_listening

pytestmark = [pytest.mark.interop, pytest.mark.slow]

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
BROKEN = dns.name.from_text("broken.")
HINTS = ". 3600000 NS a.root.test.\na.root.test. 3600000 A 127.0.0.1\n"
SOA = "a.root.test. h.root.test. 1 1800 900 604800 86400"


class Authority:
    """The root for one resolver: its NS RRset and the address of a.root.test. answered,
    SERVFAIL for every name under broken.; counts the queries for names under broken."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.broken = 0
        self.times: list[float] = []  # when each query under broken. came (monotonic)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self.lock:
            return self.broken

    def resolutions(self) -> list[float]:
        """When a resolution asked: queries less than 0.1 s apart are one resolution's."""
        with self.lock:
            times = list(self.times)
        return [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] >= 0.1]

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                wire, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            if query.flags & dns.flags.QR or len(query.question) != 1:
                continue
            self.sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        q = query.question[0]
        reply = dns.message.make_response(query)
        reply.flags &= ~dns.flags.RA
        if q.name.is_subdomain(BROKEN):
            with self.lock:
                self.broken += 1
                self.times.append(time.monotonic())
            reply.set_rcode(dns.rcode.SERVFAIL)
            return reply
        reply.flags |= dns.flags.AA
        if q.name == dns.name.root and q.rdtype == dns.rdatatype.NS:
            reply.answer.append(dns.rrset.from_text(".", 3600000, "IN", "NS", "a.root.test."))
            reply.additional.append(
                dns.rrset.from_text("a.root.test.", 3600000, "IN", "A", "127.0.0.1")
            )
        elif q.name == dns.name.from_text("a.root.test.") and q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(q.name, 3600000, "IN", "A", "127.0.0.1"))
        else:  # NODATA (or NXDOMAIN: it does not matter here) with the root's SOA
            reply.authority.append(dns.rrset.from_text(".", 86400, "IN", "SOA", SOA))
        return reply

    def close(self) -> None:
        self.done.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def authorities() -> Iterator[dict[str, Authority]]:
    made = {who: Authority() for who in ("named", "dnsseal")}
    try:
        yield made
    finally:
        for auth in made.values():
            auth.close()


def _named(d: Path, upstream: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    (d / "root.hint").write_text(HINTS)
    conf = d / "named.conf"
    # `port` is where named sends its queries: the authority; it listens on its own port
    # through listen-on.  No control channel (no port 953).
    conf.write_text(
        f'options {{ directory "{d}"; pid-file "{d}/named.pid"; port {upstream};\n'
        f"  listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n"
        "  recursion yes; allow-recursion { 127.0.0.1; }; dnssec-validation no;\n"
        "  qname-minimization off; servfail-ttl 1; };\n"
        'controls { };\nzone "." { type hint; file "root.hint"; };\n'
    )
    log = d / "named.log"
    with log.open("wb") as out:
        # -d 1: a question answered from the SERVFAIL cache is logged ("servfail cache hit")
        proc = subprocess.Popen(
            [require_tool("named"), "-g", "-4", "-d", "1", "-c", str(conf)],
            stdout=out,
            stderr=out,
        )
    return proc, port, log


def _dnsseal(d: Path, upstream: int, http: int = 0) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    hints = d / "root.hints"
    hints.write_text(HINTS)
    conf = d / "resolver.toml"
    metrics = f'http = ["127.0.0.1@{http}"]\n' if http else ""
    conf.write_text(f'[resolver]\nservfail-ttl = 1\ndomain-insecure = ["."]\n{metrics}')
    args = [
        *DNSSEAL,
        "resolver",
        "--port",
        str(port),
        "--root-hints",
        str(hints),
        "--upstream-port",
        str(upstream),
        "--no-minimise",
        "--config",
        str(conf),
    ]
    log = d / "resolver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out)
    return proc, port, log


def _ask(port: int) -> dns.message.Message:
    q = dns.message.make_query("www.broken.", "A", use_edns=0)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=10)


def test_both_send_a_failing_question_upstream_once_within_servfail_ttl(
    tmp_path: Path, authorities: dict[str, Authority]
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    try:
        ports: dict[str, int] = {}
        for who, start in (("named", _named), ("dnsseal", _dnsseal)):
            d = tmp_path / who
            d.mkdir()
            proc, port, log = start(d, authorities[who].port)
            started.append(proc)
            wait_listening(port, proc, log)
            ports[who] = port
        first: dict[str, dns.message.Message] = {}
        for who, port in ports.items():
            first[who] = _ask(port)
            assert first[who].rcode() == dns.rcode.SERVFAIL, who
        once = {who: authorities[who].count() for who in ports}
        assert all(n >= 1 for n in once.values()), once
        for who, port in ports.items():
            again = _ask(port)  # well within the second
            assert again.rcode() == dns.rcode.SERVFAIL, who
            if who == "dnsseal":
                ede = [o for o in again.options if isinstance(o, dns.edns.EDEOption)]
                assert ede == [o for o in first[who].options if isinstance(o, dns.edns.EDEOption)]
        assert {who: authorities[who].count() for who in ports} == once
        # dnsseal's clock counts whole seconds: the failure is kept until its second plus
        # the TTL has passed, so 1 to 2 s; named's for 1 s.
        time.sleep(2.1)
        for who, port in ports.items():
            assert _ask(port).rcode() == dns.rcode.SERVFAIL, who
        later = {who: authorities[who].count() for who in ports}
        assert all(later[who] > once[who] for who in ports), (once, later)
    finally:
        for proc in started:
            stop(proc)


ASKS = 44  # one every quarter second: 11 s


def _answers_from_failure_cache(http: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dnsseal_resolver_servfail_cache_answers_total":
                return float(sample.value)
    raise AssertionError("no dnsseal_resolver_servfail_cache_answers_total in /metrics")


def test_named_keeps_servfail_ttl_fixed_dnsseal_backs_off_persistent_failures(
    tmp_path: Path, authorities: dict[str, Authority]
) -> None:
    http = free_port(socket.SOCK_STREAM)
    started: list[subprocess.Popen[bytes]] = []
    try:
        ports: dict[str, int] = {}
        logs: dict[str, Path] = {}
        for who in ("named", "dnsseal"):
            d = tmp_path / who
            d.mkdir()
            if who == "named":
                proc, port, log = _named(d, authorities[who].port)
            else:
                proc, port, log = _dnsseal(d, authorities[who].port, http)
            started.append(proc)
            wait_listening(port, proc, log)
            ports[who], logs[who] = port, log
        for _ in range(ASKS):
            for who, port in ports.items():
                assert _ask(port).rcode() == dns.rcode.SERVFAIL, who
            time.sleep(0.25)
        named_at = authorities["named"].resolutions()
        ours_at = authorities["dnsseal"].resolutions()
        # Every question went upstream or was answered from the failure cache, as each
        # resolver counts them.
        named_hits = logs["named"].read_text().count("servfail cache hit www.broken/A (CD=0)")
        assert named_hits + len(named_at) == ASKS, (named_hits, named_at)
        assert _answers_from_failure_cache(http) + len(ours_at) == ASKS, ours_at
        # named: every 1 s and a bit (the questions are 0.25 s apart), to the end.
        named_gaps = [b - a for a, b in itertools.pairwise(named_at)]
        assert len(named_at) >= 8 and max(named_gaps) < 2, named_gaps
        # dnsseal: kept 1, 2, 4, 8 s (each from its whole second: at least that long).
        gaps = [b - a for a, b in itertools.pairwise(ours_at)]
        assert 3 <= len(gaps) <= 4, gaps
        for i, gap in enumerate(gaps):
            assert 2**i - 0.1 <= gap <= 2**i + 1.5, gaps
    finally:
        for proc in started:
            stop(proc)
