"""A signaling zone served by several processes (``server.workers = 2``) is answered
online by every one of them (#18).

The worker processes hold no InlineZone; they used to serve the stored NSEC chain of the
signaling zone, which lists (and so leaks) every child the operator serves.  Here each
process in turn answers alone (the other is stopped with SIGSTOP: the kernel then gives
every datagram of the shared UDP socket to the running one), then both together from many
source ports: every denial must be the minimally covering NSEC at the query name, and
validate with dnspython (the zone's DNSKEY) and with BIND's ``delv``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from automation.conftest import write_config
from conftest import free_port, require_tool, stop, wait_for_dns

from .test_signaling_validated import CASES, CHILD, SIGNAL, ZONE, _minimal

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
T = dns.rdatatype

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def signaling_setup(d: Path, port: int, policy: str = "fast", server: str = "") -> Path:
    """A signaling zone for ns1.provider.test and a child zone it signals for; ``server``:
    more ``[server]`` options."""
    signal_zone = (
        f"$ORIGIN {ZONE}\n$TTL 2\n@ SOA ns1.provider.test. h 1 60 30 600 2\n"
        "@ NS ns1.provider.test.\n"
    )
    child = (
        f"$ORIGIN {CHILD}\n$TTL 2\n@ SOA ns1.provider.test. h 1 60 30 600 2\n"
        "@ NS ns1.provider.test.\nwww A 192.0.2.80\n"
    )
    conf = write_config(
        d,
        port,
        {ZONE: signal_zone, CHILD: child},
        policies={ZONE: policy, CHILD: "fast"},
        zone_options={ZONE: "signaling = true\nds-interval = 1"},
    )
    conf.write_text(conf.read_text().replace("[server]\n", f"[server]\n{server}", 1))
    return conf


def ask(port: int, name: str, rtype: str) -> dns.message.Message:
    """The answer from 127.0.0.1@port, asked from a new source port (again on a timeout: a
    datagram taken by a process just before it was stopped is never answered)."""
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    for _ in range(4):
        with contextlib.suppress(dns.exception.Timeout):
            return dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    raise AssertionError(f"no answer to {name} {rtype}")


def dnskeys(port: int) -> dns.rrset.RRset:
    (rrset,) = [rr for rr in ask(port, ZONE, "DNSKEY").answer if rr.rdtype == T.DNSKEY]
    return rrset


def check_online(port: int, keys: dns.rrset.RRset, cases: list[tuple[str, str, int, bool]]) -> int:
    """Ask every case (a new socket, so a new source port, each time): every denial is the
    online NSEC and every RRset validates with ``keys``.  Returns the denials seen."""
    origin = dns.name.from_text(ZONE)
    denials = 0
    for name, rtype, rcode, has_answer in cases:
        r = ask(port, name, rtype)
        assert r.rcode() == rcode and bool(r.answer) == has_answer, (name, rtype, r)
        if not has_answer or rtype == "NSEC":
            _minimal(r, name, rtype)
            denials += 1
        for section in (r.answer, r.authority):
            data = [rr for rr in section if rr.rdtype != T.RRSIG]
            for rr in data:
                (sig,) = [
                    s for s in section
                    if s.rdtype == T.RRSIG and s.covers == rr.rdtype and s.name == rr.name
                ]  # fmt: skip
                dns.dnssec.validate(rr, sig, {origin: keys})  # raises when it does not
    return denials


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """``pid`` (a process this test started, or its worker) stopped meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def delv_all(d: Path, port: int, keys: dns.rrset.RRset) -> None:
    """BIND's delv validates every case, trusting the zone's KSK (or CSK)."""
    (ksk,) = [rd for rd in keys if rd.flags & 1]
    ds = dns.dnssec.make_ds(ZONE, ksk, "SHA256")
    anchors = d / "anchors.conf"
    anchors.write_text(
        f'trust-anchors {{ "{ZONE}" static-ds {ds.key_tag} {ds.algorithm} '
        f'{ds.digest_type} "{ds.digest.hex().upper()}"; }};\n'
    )
    delv = require_tool("delv")
    for name, rtype, _, has_answer in CASES:
        out = subprocess.run(
            [delv, "@127.0.0.1", "-p", str(port), "-a", str(anchors), f"+root={ZONE}",
             name, rtype],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "fully validated" in out.stdout, (name, rtype, out.stdout, out.stderr)
        negative = "; negative response, fully validated" in out.stdout
        assert negative == (not has_answer), (name, rtype, out.stdout)


def wait_signal(d: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the signaling name holds the child's CDS in 20 answers in a row (every
    process serves the version that has it)."""
    wait_for_dns(port, ZONE, proc, timeout=30)
    deadline = time.monotonic() + 40
    while not all(ask(port, SIGNAL, "CDS").answer for _ in range(20)):
        assert proc.poll() is None, (d / "out.txt").read_text()[-4000:]
        assert time.monotonic() < deadline, (d / "out.txt").read_text()[-4000:]
        time.sleep(0.3)


def test_every_process_answers_the_signaling_zone_online(tmp_path: Path) -> None:
    d = tmp_path
    port = free_port()
    signaling_setup(d, port, server="workers = 2\n")
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        wait_signal(d, port, proc)
        (worker,) = children_of(proc.pid)
        keys = dnskeys(port)
        # The worker alone, then the main process alone.
        for other in (proc.pid, worker):
            with paused(other):
                assert check_online(port, keys, CASES) == 9
                delv_all(d, port, keys)
        # Both, from many source ports.
        assert check_online(port, keys, CASES * 10) == 90
        # A new version (the child's signaling record goes when its DS is seen, or the
        # zone is re-signed): the worker serves it online too.
        before = ask(port, ZONE, "SOA").answer[0][0].serial
        deadline = time.monotonic() + 60
        while ask(port, ZONE, "SOA").answer[0][0].serial == before:
            assert time.monotonic() < deadline, (d / "out.txt").read_text()[-4000:]
            time.sleep(0.5)
        time.sleep(1)
        with paused(proc.pid):
            assert check_online(port, dnskeys(port), CASES) == 9
        text = (d / "out.txt").read_text()
        assert "not answered online" not in text and "Traceback" not in text, text[-4000:]
    finally:
        stop(proc)
