"""resolver-query-timeout against named: both resolvers, with the option at 10000 ms and a
root hint whose server never answers (a local UDP socket that reads and drops), answer a
client SERVFAIL after about that long.

dnsseal's sends time out after 4 s here (``--timeout 4``), so without the deadline it would
retransmit the priming query five times (20 s) before answering.  With it, no send goes out
after 10 s, and the one under way then (sent at 8 s) is not waited for past the deadline:
named 9.18 answers at 10.0x s, and so must dnsseal (it answered at 12 s when the send under
way kept its own 4 s timeout).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.edns
import dns.exception
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import pytest

from conftest import free_port, require_tool, stop
from dnsseal.validator.verdict import EDE_NO_REACHABLE_AUTHORITY

from .bindtree import wait_listening

pytestmark = [pytest.mark.interop, pytest.mark.slow]

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
TIMEOUT_MS = 10000


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP port on 127.0.0.1 that takes every datagram and never answers (no ICMP
    port-unreachable either, so a resolver has to wait for its timeouts)."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        yield port


def _ask(port: int) -> tuple[dns.message.Message, float]:
    q = dns.message.make_query("www.example.", "A", use_edns=0)
    start = time.monotonic()
    reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=40)
    return reply, time.monotonic() - start


def _named(d: Path, silent: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    (d / "root.hint").write_text(". 3600000 NS a.root.test.\na.root.test. 3600000 A 127.0.0.1\n")
    conf = d / "named.conf"
    # `port` is where named sends its queries (and would listen): the silent socket; it
    # listens on its own port through listen-on.  No control channel (no port 953).
    conf.write_text(
        f'options {{ directory "{d}"; pid-file "{d}/named.pid"; port {silent};\n'
        f"  listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n"
        "  recursion yes; allow-recursion { 127.0.0.1; }; dnssec-validation no;\n"
        f"  resolver-query-timeout {TIMEOUT_MS}; }};\n"
        'controls { };\nzone "." { type hint; file "root.hint"; };\n'
    )
    log = d / "named.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [require_tool("named"), "-g", "-c", str(conf)], stdout=out, stderr=out
        )
    return proc, port, log


def _dnsseal(d: Path, silent: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    hints = d / "root.hints"
    hints.write_text(". 3600000 NS a.root.test.\na.root.test. 3600000 A 127.0.0.1\n")
    conf = d / "resolver.toml"
    conf.write_text(f"[resolver]\nresolver-query-timeout = {TIMEOUT_MS}\n")
    args = [
        *DNSSEAL,
        "resolver",
        "--port",
        str(port),
        "--root-hints",
        str(hints),
        "--upstream-port",
        str(silent),
        "--timeout",
        "4",
        "--config",
        str(conf),
    ]
    log = d / "resolver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out)
    return proc, port, log


def test_both_give_up_a_question_to_a_silent_root_after_resolver_query_timeout(
    tmp_path: Path, silent_port: int
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    try:
        servers: dict[str, tuple[int, Path]] = {}
        for who, start in (("named", _named), ("dnsseal", _dnsseal)):
            d = tmp_path / who
            d.mkdir()
            proc, port, log = start(d, silent_port)
            started.append(proc)
            wait_listening(port, proc, log)
            servers[who] = (port, log)
        # Both questions at once: the test takes one deadline, not two.
        got: dict[str, tuple[dns.message.Message, float]] = {}
        errors: list[BaseException] = []

        def run(who: str, port: int) -> Callable[[], None]:
            def go() -> None:
                try:
                    got[who] = _ask(port)
                except BaseException as e:  # reported below, with the resolver's name
                    errors.append(e)

            return go

        threads = [threading.Thread(target=run(w, p)) for w, (p, _) in servers.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(45)
        assert not errors, errors
        named_reply, named_took = got["named"]
        ours, took = got["dnsseal"]
        assert named_reply.rcode() == dns.rcode.SERVFAIL
        assert ours.rcode() == dns.rcode.SERVFAIL
        codes = [o.code for o in ours.options if isinstance(o, dns.edns.EDEOption)]
        assert codes == [EDE_NO_REACHABLE_AUTHORITY]
        limit = TIMEOUT_MS / 1000
        assert limit - 1 <= named_took <= limit + 1, named_took
        # The send under way at the deadline ends there, as named's: not 2 s later.
        assert abs(took - named_took) <= 0.5, (took, named_took)
    finally:
        for proc in started:
            stop(proc)
