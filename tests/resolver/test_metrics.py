"""The resolver's ``/metrics`` (``[resolver] http``) against a real ``dnsseal resolver``
over the BIND-signed hierarchy served by ``named``: the counts are what the clients saw
(AD bits, rcodes, EDE codes as dnspython parses them), the upstream exchanges are what
named's own statistics channel counted, and Prometheus's parser and ``promtool check
metrics`` accept the text.  Run once with the C datagram loop answering repeats and once
with the Python loop (``DNSSEAL_UDP_LOOP=python``)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, require_tool, stop
from dnsseal.errors import OptionError
from dnsseal.resolver import metrics as resolver_metrics
from dnsseal.resolver.engine import ATTEMPTS
from dnsseal.resolver.http import MetricsListener
from dnsseal.resolver.settings import HTTP_PORT, parse_settings
from dnsseal.server import counters
from dnsseal.server import udp as server_udp
from dnsseal.storage.remotes import Endpoint

from .bindtree import build_tree, wait_for

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass(frozen=True)
class Named:
    directory: Path
    port: int
    stats: int  # named's statistics-channels port
    anchors: Path
    hints: Path

    def nsstats(self) -> Counter[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats}/json/v1/server") as r:
            return Counter(json.load(r)["nsstats"])


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Named]:
    """The signed tree (tests/resolver/bindtree.py) on a named whose statistics channel
    counts the queries it receives."""
    d = tmp_path_factory.mktemp("metrics-tree")
    files, root_ds = build_tree(d)
    port, stats = free_port(), free_port()
    zones = "".join(f'zone "{z}" {{ type primary; file "{p}"; }};\n' for z, p in files.items())
    conf = d / "named.conf"
    conf.write_text(
        f'options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; '
        f'listen-on-v6 {{ none; }}; pid-file "{d}/named.pid"; recursion no; '
        "dnssec-validation no; notify no; };\ncontrols { };\n"
        f"statistics-channels {{ inet 127.0.0.1 port {stats} allow {{ 127.0.0.1; }}; }};\n" + zones
    )
    with (d / "named.log").open("wb") as log:
        proc = subprocess.Popen(
            [require_tool("named"), "-g", "-c", str(conf)], stdout=log, stderr=log
        )
    try:
        wait_for(port, proc, d / "named.log")
        tag, alg, dt, digest = root_ds.split()
        anchors = d / "anchors.conf"
        anchors.write_text(f'trust-anchors {{ . static-ds {tag} {alg} {dt} "{digest}"; }};\n')
        hints = d / "root.hints"
        hints.write_text(". 3600000 NS ns.test.\nns.test. 3600000 A 127.0.0.1\n")
        yield Named(d, port, stats, anchors, hints)
    finally:
        stop(proc)


def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def samples(text: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(s: Samples, name: str, **labels: str) -> float:
    return sum(v for lab, v in s.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def scrape(http: int) -> tuple[str, Samples]:
    status, ctype, body = http_get(http, "/metrics")
    assert status == 200, body
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    return body.decode(), samples(body.decode())


# (name, type, DO, CD, TCP): secure, secure NXDOMAIN, bogus (a changed A record, expired
# signatures), bogus with CD, insecure (opt-out without DS; a DS proven absent), no EDNS.
QUERIES = [
    ("www.secure.test.", "A", True, False, False),
    ("nx.secure.test.", "A", True, False, False),
    ("www.nsec.test.", "TXT", True, False, True),
    ("www.tampered.test.", "A", True, False, False),
    ("www.expired.test.", "A", True, False, False),
    ("www.badsigner.test.", "A", True, False, True),
    ("www.expired.test.", "A", True, True, False),
    ("www.unsigned.test.", "A", True, False, False),
    ("www.insec.", "A", True, False, True),
    ("www.ldns.test.", "A", False, False, False),
]
REPEATS = 30  # of the first question, at once: most come from the rendered responses


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("loop", ["c", "python"])
def test_metrics_count_what_the_clients_saw(named: Named, tmp_path: Path, loop: str) -> None:
    port, http = free_port(), free_port(socket.SOCK_STREAM)
    # a server that never answers, for a stub zone: upstream timeouts, an indeterminate
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    conf = tmp_path / "resolver.toml"
    conf.write_text(
        f'[resolver]\nhttp = ["127.0.0.1@{http}"]\n[[resolver.stub-zone]]\nname = "dead.example."\n'
        f'stub-addr = ["127.0.0.1@{silent.getsockname()[1]}"]\n'
    )
    args = [*DNSSEAL, "resolver", "--port", str(port), "--config", str(conf), "--timeout", "0.5"]
    args += ["-a", str(named.anchors), "--root-hints", str(named.hints)]
    args += ["--upstream-port", str(named.port)]
    env = {k: v for k, v in os.environ.items() if k != server_udp.LOOP_ENV}
    if loop == "python":
        env[server_udp.LOOP_ENV] = "python"
    else:  # the resolver's repeats are answered in C
        assert server_udp._udpfast is not None
    log = tmp_path / "resolver.log"
    before = named.nsstats()
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, env=env)
    try:
        wait_for(port, proc, log, "secure.test.")
        seen: Counter[str] = Counter()  # what the clients saw, as dnspython parses it
        edes: Counter[str] = Counter()
        sent: Counter[str] = Counter()
        ad = 0

        def ask(name: str, rdtype: str, do: bool, cd: bool, tcp: bool) -> dns.message.Message:
            nonlocal ad
            q = dns.message.make_query(name, rdtype, want_dnssec=do, use_edns=0 if do else None)
            if cd:
                q.flags |= dns.flags.CD
            send = dns.query.tcp if tcp else dns.query.udp
            r = send(q, "127.0.0.1", port=port, timeout=10)
            sent["tcp" if tcp else "udp"] += 1
            seen[dns.rcode.to_text(r.rcode())] += 1
            ad += bool(r.flags & dns.flags.AD)
            for o in r.options:
                if isinstance(o, dns.edns.EDEOption):
                    edes[str(int(o.code))] += 1
            return r

        got = {(n, t, cd): ask(n, t, do, cd, tcp) for n, t, do, cd, tcp in QUERIES}
        for _ in range(REPEATS):
            assert ask(*QUERIES[0]).flags & dns.flags.AD
        assert ask("www.dead.example.", "A", True, False, False).rcode() == dns.rcode.SERVFAIL
        # the oracle agrees with the cases (tests/resolver/test_bind_interop.py)
        assert got["www.tampered.test.", "A", False].rcode() == dns.rcode.SERVFAIL
        assert got["www.expired.test.", "A", True].rcode() == dns.rcode.NOERROR
        assert edes == {"6": 1, "7": 2, "9": 1, "22": 1}, edes

        text, s = scrape(http)
        # every query, by transport and rcode; wait_for's SOA queries (one or a few) too
        assert total(s, "dnsseal_resolver_queries_total", proto="tcp") == sent["tcp"]
        soa = total(s, "dnsseal_resolver_queries_total", qtype="SOA")
        assert soa >= 1
        assert total(s, "dnsseal_resolver_queries_total", proto="udp") == sent["udp"] + soa
        for rcode, n in seen.items():
            extra = soa if rcode == "NOERROR" else 0
            assert total(s, "dnsseal_resolver_queries_total", rcode=rcode) == n + extra, rcode
        assert total(s, "dnsseal_resolver_queries_total", qtype="TXT") == 1
        # verdicts: each response built by the resolver; the repeats sent from rendered
        # responses are counted apart, and with them the AD bits add up
        rendered = total(s, "dnsseal_resolver_rendered_answers_total")
        assert 0 < rendered <= REPEATS
        validation = {lab["result"]: v for lab, v in s["dnsseal_validation_total"]}
        assert validation["bogus"] == 4  # tampered, expired (twice: once with CD), badsigner
        assert validation["insecure"] == 2
        assert validation["indeterminate"] == 1  # no server answered for dead.example.
        # AD only where the client set DO; the one without EDNS is secure without AD
        assert validation["secure"] + rendered == ad + 1 + soa
        assert {lab["code"]: v for lab, v in s["dnsseal_ede_total"]} == edes
        # upstream: what named received, by transport
        after = named.nsstats()
        up = {
            (lab["proto"], lab["result"]): v
            for lab, v in s["dnsseal_resolver_upstream_queries_total"]
        }
        # the silent server: the one question sent ATTEMPTS times, then it is backed off
        assert up[("udp", "timeout")] == ATTEMPTS
        assert ("tcp", "timeout") not in up
        received = after["Requestv4"] - before["Requestv4"]
        assert up[("udp", "answered")] + up.get(("tcp", "answered"), 0) == received
        assert up.get(("tcp", "answered"), 0) == after["ReqTCP"] - before["ReqTCP"]
        # the caches
        entries = {lab["cache"]: v for lab, v in s["dnsseal_resolver_cache_entries"]}
        assert entries["results"] >= len(QUERIES) - 2  # a bogus result is kept for a short while
        assert entries["replies"] > 0
        for lab, v in s["dnsseal_resolver_cache_bytes"]:
            assert 0 < v <= total(s, "dnsseal_resolver_cache_max_bytes", cache=lab["cache"])
        assert total(s, "dnsseal_resolver_cache_hits_total", cache="results") >= REPEATS - rendered
        assert total(s, "process_start_time_seconds") <= time.time()
        # Prometheus's own linter has nothing to say
        lint = subprocess.run(
            [require_tool("promtool"), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint
        # the listener serves /metrics only, and only reads
        assert http_get(http, "/metrics", "HEAD")[:2] == (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        assert http_get(http, "/")[0] == 404
        assert http_get(http, "/metrics", "POST")[0] == 405
    finally:
        stop(proc)
        silent.close()


def test_http_listener_that_cannot_bind_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http = taken.getsockname()[1]
        conf = tmp_path / "resolver.toml"
        conf.write_text(f'[resolver]\nhttp = ["127.0.0.1@{http}"]\n')
        hints = tmp_path / "root.hints"  # local: no test may prime or ask the IANA roots
        hints.write_text(". 3600000 NS a.root.\na.root. 3600000 A 127.0.0.1\n")
        p = subprocess.run(
            [
                *DNSSEAL,
                "resolver",
                "--port",
                str(free_port()),
                "--config",
                str(conf),
                "--root-hints",
                str(hints),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert p.returncode == 1, p
    lines = p.stderr.strip().splitlines()
    assert f"resolver.http[0] 127.0.0.1@{http}: cannot listen" in lines[-1], p.stderr
    assert "Traceback" not in p.stderr


def test_http_option() -> None:
    assert parse_settings("", "r.toml").http == ()
    s = parse_settings('[resolver]\nhttp = ["127.0.0.1", "::1@9100"]\n', "r.toml")
    assert [str(e) for e in s.http] == [f"127.0.0.1@{HTTP_PORT}", "::1@9100"]
    with pytest.raises(OptionError, match=r"resolver\.http\[1\]: 'localhost' is not an"):
        parse_settings('[resolver]\nhttp = ["127.0.0.1", "localhost"]\n', "r.toml")
    with pytest.raises(OptionError, match=r"resolver\.http: must be a list"):
        parse_settings('[resolver]\nhttp = "127.0.0.1"\n', "r.toml")


def test_query_counter_layout_is_the_servers() -> None:
    # resolver/ does not import server/: the numbers are repeated there
    assert (resolver_metrics.C_LOOP, resolver_metrics.UDP_THREAD) == (
        counters.C_LOOP,
        counters.UDP_THREAD,
    )
    assert (resolver_metrics.UDP_LOOP, resolver_metrics.TCP) == (counters.UDP_LOOP, counters.TCP)
    assert (resolver_metrics.QT_OTHER, resolver_metrics.QT_NONE) == (
        counters.QT_OTHER,
        counters.QT_NONE,
    )
    assert resolver_metrics.RC_DROPPED == counters.RC_DROPPED


def test_upstream_exchanges_by_outcome() -> None:
    m = resolver_metrics.ResolverMetrics()

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        if wire == b"slow":
            raise TimeoutError
        if wire == b"refused":
            raise ConnectionRefusedError
        if wire == b"stop":
            raise asyncio.CancelledError
        return b"reply"

    exchange = m.counted(transport)

    async def run() -> None:
        assert await exchange(("127.0.0.1", 53), b"q", False) == b"reply"
        assert await exchange(("127.0.0.1", 53), b"q", True) == b"reply"
        for wire, error in ((b"slow", TimeoutError), (b"refused", OSError)):
            with pytest.raises(error):
                await exchange(("127.0.0.1", 53), wire, False)
        with pytest.raises(asyncio.CancelledError):
            await exchange(("127.0.0.1", 53), b"stop", False)

    asyncio.run(run())
    assert m.upstream == {
        ("udp", "answered"): 1,
        ("tcp", "answered"): 1,
        ("udp", "timeout"): 1,
        ("udp", "error"): 1,
    }


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await reader.read()
    writer.close()
    return out


def test_the_listener_serves_metrics_only_and_survives_a_failing_scrape() -> None:
    pages = iter(["# HELP x y\n# TYPE x gauge\nx 1\n"])

    def render() -> str:
        return next(pages)  # then StopIteration: a bug in a scrape

    async def run() -> list[bytes]:
        listener = MetricsListener(render, (Endpoint("127.0.0.1", free_port(socket.SOCK_STREAM)),))
        await listener.start()
        port = listener.endpoints[0].port
        try:
            return [
                await _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
                await _raw(port, b"GET /metrics HTTP/1.1\r\n\r\n"),
                await _raw(port, b"GET /api/v1/zones HTTP/1.1\r\n\r\n"),
                await _raw(port, b"DELETE /metrics HTTP/1.1\r\n\r\n"),
                await _raw(port, b"nonsense\r\n\r\n"),
                await _raw(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n"),
            ]
        finally:
            await listener.stop()

    ok, failed, missing, delete, bad, big = asyncio.run(run())
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(
        b"\r\n\r\n# HELP x y\n# TYPE x gauge\nx 1\n"
    ), ok
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n" in ok
    assert failed.startswith(b"HTTP/1.1 500 "), failed
    assert missing.startswith(b"HTTP/1.1 404 ") and b"/metrics" in missing
    assert delete.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in delete
    assert bad.startswith(b"HTTP/1.1 400 "), bad
    assert big.startswith(b"HTTP/1.1 431 "), big
