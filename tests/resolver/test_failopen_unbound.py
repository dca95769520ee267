"""Unbound and delv as outside oracles for the hostile scenarios of test_failopen.py.

The in-memory authority (with the attacker's rewriting) is served over real UDP and TCP on
127.0.0.1, its zones signed to be valid now (delv cannot pin the clock).  A validating
Unbound (stub zones to that port, the same root DS) and dnsseal's resolver service (network
transport to the same port) each answer the client question: the rcode and AD bit must
agree, and match what the scenario says.  BIND's delv, asking the same server, gives a
second verdict for the scenarios where Unbound 1.17 itself is fooled or differs (listed in
``UNBOUND_DIFFERS``, each with the reason).
"""

from __future__ import annotations

import asyncio
import socketserver
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from conftest import free_port, require_tool, run_tool, stop
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.service import ResolverService
from dnsseal.resolver.transport import network_transport
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import Config, Need

from .authority import Authority
from .conftest import build
from .test_failopen import (
    ENT,
    KID,
    PAR,
    WC,
    Forger,
    _break_soa,
    _expanded,
    _lose,
    _soa,
    _tree,
    _unsigned_a,
)
from .zonebuild import SignedZone, sign_zone

pytestmark = [pytest.mark.interop, pytest.mark.slow]

T = dns.rdatatype
N = dns.name.from_text
NOW = int(time.time())
TIMES = (NOW - 3600, NOW + 7 * 86400)  # RRSIG inception and expiration around the real clock


class _Served:
    """The authority behind ``forge`` on a UDP and a TCP socket (threads, loopback only)."""

    def __init__(self, auth: Authority, forge: Forger | None) -> None:
        self.auth, self.forge = auth, forge
        served = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = served.reply(data, tcp=False)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    (n,) = struct.unpack("!H", self.rfile.read(2))
                except struct.error:
                    return
                out = served.reply(self.rfile.read(n), tcp=True)
                if out is not None:
                    self.wfile.write(struct.pack("!H", len(out)) + out)

        self.port = free_port()
        self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", self.port), Udp)
        try:
            self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Tcp)
        except OSError:
            self.udp.server_close()
            raise
        for server in (self.udp, self.tcp):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def reply(self, wire: bytes, tcp: bool) -> bytes | None:
        try:
            q = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if q.flags & dns.flags.QR or len(q.question) != 1:
            return None
        question = q.question[0]
        reply: dns.message.Message | None = self.auth.answer(question.name, question.rdtype)
        if self.forge is not None and reply is not None:
            need = Need(question.name, question.rdtype, (), dns.name.root)
            reply = self.forge(need, reply)
        if reply is None:
            return None
        reply.id = q.id
        out = reply.to_wire(max_size=65535)
        limit = max(512, q.payload) if q.edns >= 0 else 512
        if not tcp and len(out) > limit:
            reply.answer, reply.authority, reply.additional = [], [], []
            reply.flags |= dns.flags.TC
            out = reply.to_wire()
        return out

    def close(self) -> None:
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()


def _root_ds(auth: Authority) -> str:
    root = auth.zones[dns.name.root]
    return root.ds()[0].to_text()


def _unbound(d: Path, auth: Authority, upstream: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    stubs = "".join(
        f'stub-zone:\n  name: "{z.to_text()}"\n  stub-addr: 127.0.0.1@{upstream}\n'
        for z in auth.zones
    )
    conf = d / "unbound.conf"
    conf.write_text(
        "server:\n"
        f"  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n"
        '  username: ""\n  chroot: ""\n'
        f'  directory: "{d}"\n  pidfile: "{d}/unbound.pid"\n  use-syslog: no\n'
        f'  logfile: "{d}/unbound.log"\n  do-not-query-localhost: no\n'
        f'  trust-anchor: ". DS {_root_ds(auth)}"\n'
        '  qname-minimisation: no\n  module-config: "validator iterator"\n  ede: yes\n'
        "  val-log-level: 2\n  verbosity: 1\n  aggressive-nsec: no\n"
        '  local-zone: "example." nodefault\n'
        "remote-control:\n  control-enable: no\n" + stubs
    )
    run_tool(["unbound-checkconf", conf])
    proc = subprocess.Popen(
        [require_tool("unbound"), "-d", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = dns.message.make_query(".", "SOA")
    for _ in range(100):
        try:
            dns.query.udp(probe, "127.0.0.1", port=port, timeout=0.2)
            return proc, port
        except (OSError, dns.exception.Timeout):
            if proc.poll() is not None:
                break
    stop(proc)
    raise AssertionError(f"unbound did not start:\n{(d / 'unbound.log').read_text()}")


def _dnsseal(auth: Authority, upstream: int, query: dns.message.Message) -> dns.message.Message:
    root = auth.zones[dns.name.root]
    anchors = AnchorSet((TrustAnchor(dns.name.root, tuple(root.ds())),))  # type: ignore[arg-type]
    config = Config((("127.0.0.1", upstream),), anchors, port=upstream)
    res = Resolver(config, network_transport(2.0))
    out = asyncio.run(ResolverService(res).handle(query.to_wire(), False))
    assert out is not None
    return dns.message.from_wire(out)


# --- the scenarios ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    qname: str
    qtype: str
    build: Callable[[], tuple[Authority, Forger | None]]
    rcode: int
    ad: bool


def _hierarchy(forge: Forger | None = None, opt_out: bool = True) -> Callable[[], tuple]:  # type: ignore[type-arg]
    return lambda: (Authority(list(build(opt_out=opt_out, times=TIMES).values())), forge)


def _signed(text: str, origin: str) -> SignedZone:
    return sign_zone(text, origin, inception=TIMES[0], expiration=TIMES[1])


def _par() -> tuple[Authority, Forger]:
    kid = _signed(KID, "kid.par")
    par = _signed(PAR + "".join(f"kid DS {d.to_text()}\n" for d in kid.ds()), "par")
    auth = _tree(par, times=TIMES)
    auth.zones[kid.origin] = kid
    www = N("www.kid.par.")

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == kid.origin and need.rdtype == T.DS:
            out = dns.message.make_response(dns.message.make_query(kid.origin, "DS"))
            out.flags |= dns.flags.AA
            out.authority = _soa(par) + _expanded(par, N("*.par."), kid.origin)
            return out
        if need.qname == www and need.rdtype == T.A:
            return _unsigned_a(reply, www)
        return reply

    return auth, forge


def _wc() -> tuple[Authority, Forger]:
    wc = _signed(WC, "wc")
    qname, wild = N("b.wc."), N("*.wc.")

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname != qname:
            return reply
        out = dns.message.make_response(dns.message.make_query(qname, need.rdtype))
        out.flags |= dns.flags.AA
        out.set_rcode(dns.rcode.NXDOMAIN)
        out.authority = _soa(wc) + _expanded(wc, wild, N("a.wc.")) + _expanded(wc, wild, N("!.wc."))
        return out

    return _tree(wc, times=TIMES), forge


def _ent() -> tuple[Authority, Forger]:
    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("y.ent.") and need.rdtype == T.A:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply

    return _tree(_signed(ENT, "ent"), times=TIMES), forge


def _soa_broken(need: Need, reply: dns.message.Message) -> dns.message.Message:
    if need.qname == N("ns1.example.") and need.rdtype == T.MX:
        _break_soa("garble")(reply)
    return reply


def _lame(how: str) -> Forger:
    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname != N("www.insec.") or need.rdtype != T.A:
            return reply
        out = dns.message.make_response(dns.message.make_query(need.qname, "A"))
        if how == "recursive":
            out.flags |= dns.flags.RA
        elif how == "sideways":
            out.authority = [dns.rrset.from_text("insec.", 300, "IN", "NS", "ns.insec.")]
            out.additional = [dns.rrset.from_text("ns.insec.", 300, "IN", "A", "127.0.0.1")]
        elif how == "upward":
            out.authority = [dns.rrset.from_text(".", 300, "IN", "NS", "ns.root.")]
        return out

    return forge


def _ds_refused(target: str) -> Forger:
    lose = _lose(target, T.DS, "REFUSED", True)

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        out = lose(need, reply)
        assert out is not None
        return out

    return forge


def _on(qname: str, rdtype: int, change: Callable[[dns.message.Message], None]) -> Forger:
    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N(qname) and need.rdtype == rdtype:
            change(reply)
        return reply

    return forge


def _strip_answer_sigs(reply: dns.message.Message) -> None:
    reply.answer = [r for r in reply.answer if r.rdtype != T.RRSIG]


def _strip_denial(reply: dns.message.Message) -> None:
    denial = (T.NSEC, T.NSEC3)
    reply.authority = [
        r
        for r in reply.authority
        if r.rdtype not in denial and not (r.rdtype == T.RRSIG and r.covers in denial)
    ]


def _tamper(reply: dns.message.Message) -> None:
    a = reply.answer[0]
    reply.answer[0] = dns.rrset.from_text(a.name, a.ttl, "IN", "A", "192.0.2.66")


def _ds_denied_without_proof() -> tuple[Authority, Forger]:
    """DS a.example. answered NODATA with example.'s signed SOA and no NSEC3 at all."""
    auth = Authority(list(build(times=TIMES).values()))
    example = auth.zones[N("example.")]

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("a.example.") and need.rdtype == T.DS:
            out = dns.message.make_response(dns.message.make_query(need.qname, "DS"))
            out.flags |= dns.flags.AA
            out.authority = _soa(example)
            return out
        return reply

    return auth, forge


SCENARIOS = [
    Scenario(
        "stripped RRSIG",
        "www.a.example.",
        "A",
        _hierarchy(_on("www.a.example.", T.A, _strip_answer_sigs)),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "tampered data",
        "www.a.example.",
        "A",
        _hierarchy(_on("www.a.example.", T.A, _tamper)),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "NXDOMAIN without NSEC3",
        "nope.example.",
        "A",
        _hierarchy(_on("nope.example.", T.A, _strip_denial), opt_out=False),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "wildcard answer without proof",
        "a.z.w.example.",
        "MX",
        _hierarchy(_on("a.z.w.example.", T.MX, _strip_denial), opt_out=False),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "DS denied without NSEC3",
        "www.a.example.",
        "A",
        _ds_denied_without_proof,
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "secure NXDOMAIN",
        "nope.example.",
        "A",
        _hierarchy(opt_out=False),
        dns.rcode.NXDOMAIN,
        True,
    ),
    Scenario("insecure delegation", "www.insec.", "A", _hierarchy(), dns.rcode.NOERROR, False),
    Scenario("secure baseline", "www.a.example.", "A", _hierarchy(), dns.rcode.NOERROR, True),
    Scenario(
        "DS of the signer refused, data forged",
        "www.a.example.",
        "A",
        _hierarchy(_ds_refused("a.example.")),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "DS below the signer refused, data forged",
        "www.a.example.",
        "A",
        _hierarchy(_ds_refused("www.a.example.")),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "wildcard-expanded NSEC as insecure delegation",
        "www.kid.par.",
        "A",
        _par,
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario("wildcard-expanded NSEC as NXDOMAIN", "b.wc.", "TXT", _wc, dns.rcode.SERVFAIL, False),
    Scenario("NXDOMAIN for an ENT", "y.ent.", "A", _ent, dns.rcode.SERVFAIL, False),
    Scenario(
        "NODATA with a broken SOA RRSIG",
        "ns1.example.",
        "MX",
        _hierarchy(_soa_broken),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "lame: sideways",
        "www.insec.",
        "A",
        _hierarchy(_lame("sideways")),
        dns.rcode.SERVFAIL,
        False,
    ),
    Scenario(
        "lame: upward", "www.insec.", "A", _hierarchy(_lame("upward")), dns.rcode.SERVFAIL, False
    ),
    Scenario("lame: bare", "www.insec.", "A", _hierarchy(_lame("bare")), dns.rcode.NOERROR, False),
    Scenario(
        "wildcard in an opt-out span",
        "a.z.w.example.",
        "MX",
        _hierarchy(),
        dns.rcode.NOERROR,
        False,
    ),
    Scenario(
        "wildcard without opt-out",
        "a.z.w.example.",
        "MX",
        _hierarchy(opt_out=False),
        dns.rcode.NOERROR,
        True,
    ),
    Scenario(
        "CNAME query below a DNAME",
        "www.old.example.",
        "CNAME",
        _hierarchy(),
        dns.rcode.NOERROR,
        True,
    ),
    Scenario(
        "opt-out NXDOMAIN (RFC 5155 B.1)",
        "a.c.x.w.example.",
        "A",
        _hierarchy(),
        dns.rcode.NXDOMAIN,
        False,
    ),
]


# Where Unbound 1.17 (with stub zones, as configured here) itself differs, delv is the oracle.
UNBOUND_DIFFERS = {
    "wildcard-expanded NSEC as insecure delegation": "Unbound accepts the NSEC of the "
    "wildcard delegation *.par. replayed at kid.par. as proof of an unsigned delegation and "
    "hands out the forged A record (no AD); delv: broken trust chain",
    "NXDOMAIN for an ENT": "Unbound rewrites the NXDOMAIN into a secure NODATA (the NSEC "
    "shows y.ent. exists); delv, like dnsseal, refuses it (insecurity proof failed)",
    "lame: sideways": "Unbound takes a stub server's referral back to the zone asked as "
    "NODATA; delv: non-improving referral, failure",
    "CNAME query below a DNAME": "Unbound walks DS to the unsigned synthesized CNAME's owner, "
    "meets the DNAME and fails the chain; delv validates the DNAME (RFC 6672 s5.3.1)",
}


def _security(reply: dns.message.Message) -> str:
    if reply.rcode() == dns.rcode.SERVFAIL:
        return "bogus"
    return "secure" if reply.flags & dns.flags.AD else "insecure"


def _delv(d: Path, auth: Authority, upstream: int, name: str, rdtype: str) -> str:
    tag, alg, dt, digest = _root_ds(auth).split()
    anchors = d / "anchors.conf"
    anchors.write_text(f'trust-anchors {{ . static-ds {tag} {alg} {dt} "{digest}"; }};\n')
    args = ["delv", "-a", anchors, "@127.0.0.1", "-p", str(upstream), "+root=.", name, rdtype]
    p = run_tool(args, check=False, timeout=60)
    out = p.stdout + p.stderr
    if "resolution failed" in out and "ncache" not in out:
        return "bogus"
    if "fully validated" in out:
        return "secure"
    assert "unsigned answer" in out or "negative response" in out, out
    return "insecure"


@pytest.fixture
def served_scenario(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Scenario, Authority, int, int, Path]]:
    scenario: Scenario = request.param
    auth, forge = scenario.build()
    server = _Served(auth, forge)
    proc, port = _unbound(tmp_path, auth, server.port)
    try:
        yield scenario, auth, server.port, port, tmp_path
    finally:
        stop(proc)
        server.close()


@pytest.mark.parametrize(
    "served_scenario", SCENARIOS, indirect=True, ids=[s.name for s in SCENARIOS]
)
def test_dnsseal_agrees_with_the_oracle(
    served_scenario: tuple[Scenario, Authority, int, int, Path],
) -> None:
    scenario, auth, upstream, unbound_port, d = served_scenario
    query = dns.message.make_query(scenario.qname, scenario.qtype, want_dnssec=True)
    ours = _dnsseal(auth, upstream, query)

    def outcome(m: dns.message.Message) -> tuple[str, bool]:
        return dns.rcode.to_text(m.rcode()), bool(m.flags & dns.flags.AD)

    assert outcome(ours) == (dns.rcode.to_text(scenario.rcode), scenario.ad), f"dnsseal: {ours}"
    if scenario.name in UNBOUND_DIFFERS:
        assert _delv(d, auth, upstream, scenario.qname, scenario.qtype) == _security(ours)
        return
    theirs = dns.query.udp(query, "127.0.0.1", port=unbound_port, timeout=20)
    assert outcome(ours) == outcome(theirs), f"dnsseal: {ours}\nunbound: {theirs}"
