"""Replays an Unbound testbound scenario against dnsseal's resolver.

The resolver under test is the one a client reaches: :class:`ResolverService.handle` on a
:class:`Resolver` whose transport is :class:`Replay` (answers from the scenario's RANGE
entries for the current step and the server's address) and whose clock is pinned to
``val-override-date`` plus the ``TIME_PASSES`` seconds so far.  No sockets, no sleeping.

Scenario options are translated by :data:`OPTIONS`; an option (or value) without a dnsseal
equivalent makes the run raise :class:`Unsupported`, so only ``expected.toml`` can turn a
scenario into a skip.

Answers are compared per the CHECK_ANSWER entry's MATCH keywords, like testbound's
``match_all``: header flags, rcode, EDNS DO bit, and every section as an unordered multiset of
records (owner and RDATA names compared case-insensitively, TTLs only with ``ttl``).  Two
deliberate differences, each stated with its reason in ``expected.toml`` under ``[policy]``:
the additional section is not compared, and the zone's NS RRset (with its RRSIGs) that Unbound
adds to the authority section of a positive answer is not expected.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conformance import rpl
from dnsseal.crypto import wire
from dnsseal.errors import CryptoError
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.hints import builtin_root_servers
from dnsseal.resolver.service import ResolverService
from dnsseal.validator import rrsig
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import Config, Result
from dnsseal.validator.policy import AlgorithmPolicy
from dnsseal.validator.trustcache import TrustCache

Server = tuple[str, int]
DSA_ALGORITHMS = frozenset({3, 6})  # RFC 2536 DSA, RFC 5155 DSA-NSEC3-SHA1
FAKE_SHA1_ALGORITHMS = frozenset({3, 5, 6, 7})  # DSA and RSASHA1, with and without NSEC3
CLIENT = "127.0.0.1"
FOREVER = 2**62


class Unsupported(Exception):
    """The scenario needs something dnsseal (or this harness) does not have."""


class Mismatch(AssertionError):
    """dnsseal's answer differs from the scenario's CHECK_ANSWER."""


# --- configuration ----------------------------------------------------------------------


@dataclass(slots=True)
class Setup:
    """What the scenario's config asks for, in dnsseal's terms."""

    root_servers: list[Server] = field(default_factory=list)
    aggressive_nsec: bool = True  # Unbound's default (unbound.conf(5): "Default is yes")
    anchors: list[tuple[dns.name.Name, dns.rdata.Rdata]] = field(default_factory=list)
    insecure: list[dns.name.Name] = field(default_factory=list)
    date: int | None = None  # epoch seconds; None with val-override-date "-1"
    dates_checked: bool = True
    minimise: bool = True  # Unbound's default qname-minimisation: yes
    fake_sha1: bool = False
    iterator_only: bool = False
    unsupported: list[str] = field(default_factory=list)
    stubs: list[tuple[dns.name.Name, tuple[Server, ...]]] = field(default_factory=list)
    forwards: list[tuple[dns.name.Name, tuple[Server, ...]]] = field(default_factory=list)
    forward_first: set[dns.name.Name] = field(default_factory=set)
    stub_first: set[dns.name.Name] = field(default_factory=set)


def _date(value: str) -> int | None:
    if value.strip() == "-1":
        return None
    return calendar.timegm(time.strptime(value.strip(), "%Y%m%d%H%M%S"))


def _yes(value: str) -> bool:
    return value.strip().lower() == "yes"


def _addr(value: str) -> Server:
    addr, _, port = value.strip().partition("@")
    return addr, int(port) if port else 53


# Options whose value does not change what a client sees from dnsseal, with why.
NEUTRAL: dict[str, str] = {
    "verbosity": "logging",
    "log-servfail": "logging",
    "val-log-level": "logging",
    "directory": "file locations",
    "trust-anchor-signaling": "RFC 8145 key-tag queries only add upstream traffic",
    "iter-scrub-promiscuous": "dnsseal uses no out-of-bailiwick data but glue",
    "rrset-roundrobin": "sections are compared unordered",
    "minimal-responses": "see [policy] minimal_responses in expected.toml",
    "access-control": "the harness queries from 127.0.0.1, which dnsseal allows",
    "ede": "EDE codes are compared only where MATCH ede= asks for one",
    "do-not-query-localhost": "the replay transport answers every address it knows",
    "harden-unknown-additional": "dnsseal never caches additional records but glue",
    "stub-prime": "dnsseal primes the root's servers (RFC 8109), never a stub zone's",
}
# Options that match dnsseal's fixed behaviour only for some values.
VALUES: dict[str, tuple[set[str], str]] = {
    "target-fetch-policy": ({"0 0 0 0 0"}, "dnsseal fetches NS addresses only when needed"),
    "harden-algo-downgrade": ({"no"}, "one validating algorithm suffices (RFC 6840 s5.11)"),
    "harden-referral-path": ({"no"}, "dnsseal does not validate the referral path"),
    "harden-dnssec-stripped": ({"yes"}, "dnsseal always requires signatures below an anchor"),
    "prefetch": ({"no"}, "dnsseal has no prefetch"),
    "module-config": ({"validator iterator"}, "dnsseal has no other modules"),
    "prefetch-key": ({"no"}, "dnsseal has no key prefetch"),
}


def read_setup(scenario: rpl.Scenario) -> Setup:
    setup = Setup()
    for clause in scenario.clauses:
        if clause.name == "server":
            for opt in clause.options:
                _server_option(setup, opt, scenario.source)
        elif clause.name in ("stub-zone", "forward-zone"):
            _zone_clause(setup, clause)
        elif clause.name == "tempfile":
            continue
        else:
            setup.unsupported.append(f"{clause.name}: no dnsseal equivalent")
    if not setup.root_servers and not any(z == dns.name.root for z, _ in setup.forwards):
        # No stub-zone for '.': Unbound starts from its built-in root hints, dnsseal from its
        # own (the same IANA addresses).  The replay transport answers them from the RANGEs
        # for those addresses, if any, and sends nothing anywhere (see the socket guard in
        # conftest.py).
        setup.root_servers.extend(builtin_root_servers())
    if setup.iterator_only and setup.anchors:
        setup.unsupported.append("module-config: iterator with trust anchors (validation off)")
    return setup


def _zone_clause(setup: Setup, clause: rpl.Clause) -> None:
    """stub-zone and forward-zone, as dnsseal's [resolver] stub-zone / forward-zone (a
    stub-zone for '.' gives the root servers; forward-first and stub-first as the zone's)."""
    stub = clause.name == "stub-zone"
    addr_key = "stub-addr" if stub else "forward-addr"
    first_key = "stub-first" if stub else "forward-first"
    name = clause.get("name")
    addrs = clause.get(addr_key)
    known = ("name", addr_key, "stub-prime", first_key)
    others = [o.key for o in clause.options if o.key not in known]
    first = any(_yes(v) for v in clause.get(first_key))
    if not name or not addrs or others:
        what = ", ".join(others) if others else f"{clause.name} without {addr_key}"
        setup.unsupported.append(f"{clause.name} ({what}): no dnsseal equivalent")
        return
    zone = dns.name.from_text(name[0])
    servers = tuple(_addr(a) for a in addrs)
    if stub and zone == dns.name.root:
        if first:  # nothing above the root to fall back to
            setup.unsupported.append("stub-zone '.' with stub-first: no dnsseal equivalent")
        setup.root_servers.extend(servers)
    elif stub:
        setup.stubs.append((zone, servers))
        if first:
            setup.stub_first.add(zone)
    else:
        setup.forwards.append((zone, servers))
        if first:
            setup.forward_first.add(zone)


def _server_option(setup: Setup, opt: rpl.Option, source: str) -> None:
    key, value = opt.key, opt.value
    if key == "trust-anchor":
        rrset = rpl.record(value, source, opt.line)
        setup.anchors.extend((rrset.name, rd) for rd in rrset)
    elif key == "val-override-date":
        date = _date(value)
        setup.date = date
        setup.dates_checked = date is not None
    elif key == "qname-minimisation":
        setup.minimise = _yes(value)
    elif key == "fake-sha1":
        setup.fake_sha1 = _yes(value)
    elif key == "module-config" and value.split() == ["iterator"]:
        setup.iterator_only = True  # no validation: equivalent to dnsseal without anchors
    elif key == "aggressive-nsec" and value in ("yes", "no"):
        setup.aggressive_nsec = value == "yes"
    elif key == "domain-insecure":
        setup.insecure.append(dns.name.from_text(value))
    elif (
        (key == "local-zone" and value.split()[1:] == ["nodefault"])  # drops an RFC 6761 zone
        or key in NEUTRAL
        or (key in VALUES and value in VALUES[key][0])
    ):
        pass
    elif key in VALUES:
        setup.unsupported.append(f"{key}: {value} ({VALUES[key][1]})")
    else:
        setup.unsupported.append(f"{key}: {value}")


def build_config(setup: Setup) -> Config:
    by_zone: dict[dns.name.Name, list[dns.rdata.Rdata]] = {}
    for zone, rd in setup.anchors:
        by_zone.setdefault(zone, []).append(rd)
    anchors = AnchorSet(
        tuple(
            TrustAnchor(
                zone,
                tuple(r for r in rds if r.rdtype == dns.rdatatype.DS),  # type: ignore[misc]
                tuple(r for r in rds if r.rdtype == dns.rdatatype.DNSKEY),  # type: ignore[misc]
            )
            for zone, rds in by_zone.items()
        )
    )
    for zone in setup.insecure:
        anchors = anchors.with_negative(zone, FOREVER)
    policy = FakeSha1Policy() if setup.fake_sha1 else AlgorithmPolicy()
    return Config(
        root_servers=tuple(setup.root_servers),
        anchors=anchors,
        policy=policy,
        minimise=setup.minimise,
        trust_cache=TrustCache(),
        stubs=tuple(setup.stubs),
        forwards=tuple(setup.forwards),
        forward_first=frozenset(setup.forward_first),
        stub_first=frozenset(setup.stub_first),
    )


# --- the test-only crypto hook (fake-sha1) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class FakeSha1Policy(AlgorithmPolicy):
    """Test only: also accepts DSA (3, 6), which RFC 8624 s3.1 forbids validators to use.

    Unbound's ``fake-sha1: yes`` exists so that its DSA- and SHA-1-signed test data keeps
    working where the crypto library has no DSA or SHA-1; dnsseal refuses DSA by policy, so
    the scenarios' DSA chains need this hook.  It is reachable only from this harness."""

    def algorithm_supported(self, number: int) -> bool:
        return number in DSA_ALGORITHMS or AlgorithmPolicy.algorithm_supported(self, number)


class _Unchecked:
    """The "public key" of an algorithm whose signatures fake-sha1 does not check."""


_UNCHECKED = _Unchecked()


@dataclass(frozen=True, slots=True)
class DsaKey:
    """An RFC 2536 DSA public key: T, Q (20 octets), P, G, Y (64 + 8T octets each)."""

    p: int
    q: int
    g: int
    y: int

    @staticmethod
    def from_wire(data: bytes) -> DsaKey:
        size = 64 + 8 * data[0] if data else 0
        if not data or data[0] > 8 or len(data) != 21 + 3 * size:
            raise CryptoError(f"DSA public key of {len(data)} octets is malformed")
        q = int.from_bytes(data[1:21], "big")
        p, g, y = (
            int.from_bytes(data[21 + i * size : 21 + (i + 1) * size], "big") for i in range(3)
        )
        return DsaKey(p, q, g, y)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """FIPS 186 DSA over SHA-1.  The signature is RFC 2536's T|R|S or, as Unbound also
        accepts (its test data uses it), DER.  Plain integers: cryptography refuses the
        512-bit keys of the test data."""
        if len(signature) == 41:
            r = int.from_bytes(signature[1:21], "big")
            s = int.from_bytes(signature[21:41], "big")
        else:
            try:
                r, s = decode_dss_signature(signature)
            except ValueError:
                return False
        if not (0 < r < self.q and 0 < s < self.q):
            return False
        w = pow(s, -1, self.q)
        h = int.from_bytes(hashlib.sha1(data).digest(), "big")
        u1, u2 = h * w % self.q, r * w % self.q
        return pow(self.g, u1, self.p) * pow(self.y, u2, self.p) % self.p % self.q == r


class Patcher(Protocol):
    def setattr(self, target: object, name: str, value: object) -> None: ...


def install_test_crypto(
    patch: Patcher, fake_sha1: bool, dates_checked: bool = True, check_dsa: bool = True
) -> None:
    """Test only (pytest's ``monkeypatch``), for ``fake-sha1: yes`` scenarios, whose chains
    are DSA (3, 6) or RSASHA1 (5, 7).  ``check_dsa`` True: DSA signatures are really checked
    (what Unbound built with DSA does; ``fake-sha1`` only matters where the crypto library
    lacks DSA or SHA-1), RSASHA1 by dnsseal's own code.  ``check_dsa`` False: no signature of
    those algorithms is checked, as in Unbound's fake-sha1 fallback.  DS digests are always
    computed.  ``dates_checked`` False (``val-override-date: "-1"``): validity windows are not
    checked."""
    if fake_sha1:
        public_key = rrsig._public_key
        verify = wire.verify

        def patched_public_key(algorithm: int, key: bytes) -> Any:
            if algorithm in DSA_ALGORITHMS and check_dsa:
                return DsaKey.from_wire(key)
            if algorithm in FAKE_SHA1_ALGORITHMS and not check_dsa:
                return _UNCHECKED
            return public_key(algorithm, key)

        def patched_verify(algorithm: int, pub: Any, signature: bytes, data: bytes) -> bool:
            if pub is _UNCHECKED:
                return True
            if isinstance(pub, DsaKey):
                return pub.verify(signature, data)
            return verify(algorithm, pub, signature, data)

        patch.setattr(rrsig, "_public_key", patched_public_key)
        patch.setattr(wire, "verify", patched_verify)
    if not dates_checked:
        patch.setattr(rrsig, "time_problem", lambda sig, now: None)


# --- no network ----------------------------------------------------------------------------


class NetworkUsed(OSError):
    """Something in a replay tried to reach the network (see :func:`forbid_network`)."""


def forbid_network(patch: Patcher) -> list[str]:
    """Test only: make every new socket, connection and name lookup fail with
    :class:`NetworkUsed`, and record each attempt in the returned list, which the caller
    checks (the resolver treats OSError as a server that did not answer, so the exception
    alone could go unnoticed).  The replay transport is then provably the only one: with no
    stub-zone for '.', the resolver starts from the built-in root hints, real addresses, and
    nothing may be sent to them.  Sockets wrapping an existing descriptor (the event loop's
    self-pipe, from socket.socketpair) are allowed."""
    attempts: list[str] = []
    real = socket.socket

    def refuse(what: str) -> NetworkUsed:
        attempts.append(what)
        return NetworkUsed(f"replay: {what} (the replay transport is the only one)")

    class GuardedSocket(real):  # type: ignore[misc,valid-type]
        def __init__(
            self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
        ) -> None:
            if fileno is None:
                raise refuse(f"socket.socket({family}, {type})")
            super().__init__(family, type, proto, fileno)

    def blocked(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise refuse(f"{what}{args[1:]!r}")

        return call

    def blocked_async(what: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            raise refuse(f"{what}{args[1:]!r}")

        return call

    patch.setattr(socket, "socket", GuardedSocket)
    patch.setattr(socket, "create_connection", blocked("socket.create_connection"))
    patch.setattr(socket, "getaddrinfo", blocked("socket.getaddrinfo"))
    for cls, method in (
        (asyncio.base_events.BaseEventLoop, "create_datagram_endpoint"),
        (asyncio.base_events.BaseEventLoop, "create_connection"),
        (asyncio.base_events.BaseEventLoop, "getaddrinfo"),
        (asyncio.selector_events.BaseSelectorEventLoop, "sock_connect"),
    ):
        patch.setattr(cls, method, blocked_async(f"loop.{method}"))
    return attempts


# --- the upstream side ---------------------------------------------------------------------


@dataclass(slots=True)
class Pending:
    """An upstream query the resolver is waiting on."""

    server: Server
    query: dns.message.Message
    tcp: bool
    reply: asyncio.Future[bytes]

    def describe(self) -> str:
        q = self.query.question[0]
        tcp = " tcp" if self.tcp else ""
        return f"{self.server[0]}{tcp} {q.name} {dns.rdatatype.to_text(q.rdtype)}"


class Replay:
    """The resolver's transport.  Every upstream query waits in :attr:`pending` until the
    scenario's run loop (:func:`replay`) answers it: from the RANGE entries for the current
    step and the server's address, from a STEP REPLY, or with a timeout."""

    def __init__(self, scenario: rpl.Scenario) -> None:
        self.scenario = scenario
        self.pending: list[Pending] = []
        self.log: list[str] = []

    async def __call__(self, server: Server, query_wire: bytes, tcp: bool) -> bytes:
        query = dns.message.from_wire(query_wire)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        pending = Pending(server, query, tcp, future)
        self.pending.append(pending)
        try:
            return await future
        finally:
            if pending in self.pending:
                self.pending.remove(pending)

    def lookup(self, pending: Pending, step: int) -> rpl.Entry | None:
        """The range entry that answers ``pending`` at ``step`` (testbound keeps its ranges
        newest first: a later RANGE wins over an earlier one)."""
        for rng in reversed(self.scenario.ranges):
            if not rng.serves(step, pending.server[0]):
                continue
            for entry in rng.entries:
                if _selects(entry, pending.query, pending.tcp):
                    return entry
        return None

    def answered_later(self, pending: Pending, steps: list[int]) -> bool:
        """Whether a RANGE answers ``pending`` at one of ``steps``."""
        for rng in self.scenario.ranges:
            if not any(rng.serves(step, pending.server[0]) for step in steps):
                continue
            if any(_selects(entry, pending.query, pending.tcp) for entry in rng.entries):
                return True
        return False

    def answer(self, pending: Pending, entry: rpl.Entry, why: str) -> None:
        self.log.append(f"{pending.describe()} -> {why} line {entry.line}")
        self.pending.remove(pending)
        pending.reply.set_result(_reply(entry, pending.query).to_wire())

    def fail(self, pending: Pending, error: Exception, why: str) -> None:
        self.log.append(f"{pending.describe()} -> {why}")
        self.pending.remove(pending)
        pending.reply.set_exception(error)


def _selects(entry: rpl.Entry, query: dns.message.Message, tcp: bool) -> bool:
    m = entry.match
    q = query.question[0]
    if "opcode" in m and query.opcode() != entry.opcode:
        return False
    if "qtype" in m and q.rdtype != entry.qtype:
        return False
    if "qname" in m and q.name != entry.qname:
        return False
    if "subdomain" in m and (entry.qname is None or not q.name.is_subdomain(entry.qname)):
        return False
    if "DO" in m and not query.ednsflags & dns.flags.DO:
        return False
    if "noedns" in m and query.edns >= 0:
        return False
    if ("TCP" in m and not tcp) or ("UDP" in m and tcp):
        return False
    return not ("all" in m and compare(entry, query, ttl="ttl" in m))


def _reply(entry: rpl.Entry, query: dns.message.Message) -> dns.message.Message:
    msg = entry.message()
    # testbound hands a RANGE or STEP REPLY answer to the query it matched (fake_event.c
    # answer_callback_from_entry calls the pending query's callback), so the ID is never
    # compared and an entry without ADJUST copy_id still answers (val_negcache_ttl, step
    # 110).  The replay transport stands in for that delivery: the reply carries the
    # query's ID.
    msg.id = query.id
    if "copy_query" in entry.adjust:
        msg.question = [dns.rrset.RRset(r.name, r.rdclass, r.rdtype) for r in query.question]
    return msg


# --- comparing answers ---------------------------------------------------------------------

_FLAGS = ("QR", "AA", "TC", "RD", "RA", "AD", "CD")


def _flag_text(flags: int) -> str:
    return " ".join(f for f in _FLAGS if flags & getattr(dns.flags, f)) or "-"


def _records(
    rrsets: list[dns.rrset.RRset], ttl: bool
) -> list[tuple[str, int, int, int | None, bytes]]:
    out = []
    for rrset in rrsets:
        for rd in rrset:
            out.append(
                (
                    rrset.name.to_text().lower(),
                    int(rrset.rdtype),
                    int(rrset.rdclass),
                    rrset.ttl if ttl else None,
                    rd.to_digestable(dns.name.root),
                )
            )
    return sorted(out)


def _show(recs: list[tuple[str, int, int, int | None, bytes]]) -> str:
    lines = []
    for name, rdtype, rdclass, ttl, data in recs:
        try:
            text = dns.rdata.from_wire(
                dns.rdataclass.RdataClass(rdclass),
                dns.rdatatype.RdataType(rdtype),
                data,
                0,
                len(data),
            ).to_text()
        except Exception:  # malformed on purpose in some scenarios
            text = "\\# " + data.hex()
        t = "" if ttl is None else f" {ttl}"
        lines.append(
            f"    {name}{t} {dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype))} {text}"
        )
    return "\n".join(lines) or "    (empty)"


def _minimal(expected: dns.message.Message) -> None:
    """Drop what Unbound's ``minimal-responses: no`` adds to a positive answer: the zone's NS
    RRset and its RRSIGs in the authority section (see [policy] in expected.toml)."""
    if expected.rcode() != dns.rcode.NOERROR or not expected.answer:
        return
    qtype = expected.question[0].rdtype if expected.question else None
    if qtype in (dns.rdatatype.NS, dns.rdatatype.ANY):
        return
    kept = []
    for rrset in expected.authority:
        if rrset.rdtype == dns.rdatatype.NS:
            continue
        if rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == dns.rdatatype.NS:
            continue
        kept.append(rrset)
    expected.authority = kept


def compare(
    entry: rpl.Entry,
    got: dns.message.Message,
    *,
    ttl: bool = False,
    answer: bool = False,
    ede_alternatives: Mapping[int, frozenset[int]] | None = None,
) -> list[str]:
    """The differences between ``got`` and what ``entry`` describes, per its MATCH keywords
    (``answer``: ``got`` is the resolver's answer to a client, so [policy] applies;
    ``ede_alternatives``: EDE codes accepted in place of the one MATCH ede= names)."""
    want = entry.message()
    if answer:
        _minimal(want)
    m = entry.match
    diffs: list[str] = []
    full = "all" in m
    if (full or "opcode" in m) and want.opcode() != got.opcode():
        diffs.append(f"opcode: want {want.opcode()!r}, got {got.opcode()!r}")
    if (full or "rcode" in m) and want.rcode() != got.rcode():
        diffs.append(
            f"rcode: want {dns.rcode.to_text(want.rcode())}, got {dns.rcode.to_text(got.rcode())}"
        )
    if full:
        wf = want.flags & ~0x780F  # header flag bits (opcode and rcode masked off)
        gf = got.flags & ~0x780F
        if wf != gf:
            diffs.append(f"flags: want {_flag_text(wf)}, got {_flag_text(gf)}")
        if (want.edns >= 0) != (got.edns >= 0):
            diffs.append(
                f"EDNS: want {'OPT' if want.edns >= 0 else 'none'}, got "
                f"{'OPT' if got.edns >= 0 else 'none'}"
            )
        elif bool(want.ednsflags & dns.flags.DO) != bool(got.ednsflags & dns.flags.DO):
            diffs.append("EDNS DO bit differs")
    wq = [(r.name.to_text().lower(), r.rdtype) for r in want.question]
    gq = [(r.name.to_text().lower(), r.rdtype) for r in got.question]
    if full or "question" in m:
        if wq != gq:
            diffs.append(f"question: want {wq}, got {gq}")
    else:
        if "qname" in m and [q[0] for q in wq] != [q[0] for q in gq]:
            diffs.append(f"qname: want {wq}, got {gq}")
        if "qtype" in m and [q[1] for q in wq] != [q[1] for q in gq]:
            diffs.append(f"qtype: want {wq}, got {gq}")
    sections = []
    if full or "answer" in m:
        sections.append(("answer", want.answer, got.answer))
    if full:
        sections.append(("authority", want.authority, got.authority))
        if not answer:
            sections.append(("additional", want.additional, got.additional))
    for name, w, g in sections:
        wr, gr = _records(w, ttl), _records(g, ttl)
        if wr != gr:
            diffs.append(f"{name} section:\n  want:\n{_show(wr)}\n  got:\n{_show(gr)}")
    if entry.ede is not None:
        codes = [int(o.code) for o in got.options if isinstance(o, dns.edns.EDEOption)]
        if entry.ede == "any" and not codes:
            diffs.append("EDE: want one, got none")
        elif entry.ede != "any":
            want_ede = int(entry.ede)
            accepted = {want_ede} | set((ede_alternatives or {}).get(want_ede, ()))
            if not accepted & set(codes):
                diffs.append(f"EDE: want {entry.ede}, got {codes or 'none'}")
    return diffs


# --- running a scenario ---------------------------------------------------------------------


def signing_time(scenario: rpl.Scenario) -> int:
    """A time inside the scenario's RRSIG validity windows, for ``val-override-date: "-1"``
    (dates not checked): keeps TTL capping at signature expiry (RFC 4035 s5.3.3) from
    turning every TTL into 0."""
    inceptions: list[int] = []
    expirations: list[int] = []
    for rng in scenario.ranges:
        for entry in rng.entries:
            for section in entry.sections:
                for rrset in section:
                    if rrset.rdtype == dns.rdatatype.RRSIG:
                        inceptions.extend(rd.inception for rd in rrset)
                        expirations.extend(rd.expiration for rd in rrset)
    if not inceptions:
        return calendar.timegm((2020, 1, 1, 0, 0, 0))
    latest, earliest = max(inceptions), min(expirations)
    return int(latest + 1 if latest < earliest else min(inceptions) + 1)


def client_query(entry: rpl.Entry) -> dns.message.Message:
    """The client's query of a STEP QUERY entry (testbound adds EDNS only for DO)."""
    name, rdtype, rdclass = entry.question[0]
    query = dns.message.make_query(name, rdtype, rdclass)
    query.flags = entry.flags
    if entry.do:
        query.use_edns(0, dns.flags.DO, 4096)
    return query


@dataclass(slots=True)
class Outcome:
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # dnsseal's, one per client answer
    log: list[str] = field(default_factory=list)


class _Resolver(Resolver):
    """Keeps each question's last verdict, so a mismatch can show it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verdicts: dict[tuple[dns.name.Name, int], str] = {}

    async def resolve_aged(
        self, qname: dns.name.Name | str, rdtype: int | str
    ) -> tuple[Result, int]:
        result, age = await super().resolve_aged(qname, rdtype)
        vd = result.verdict
        self.verdicts[(result.qname, result.rdtype)] = f"{vd.security.value}: {vd.reason}"
        return result, age


REPLAYED_STEPS = frozenset(
    {"QUERY", "CHECK_ANSWER", "CHECK_OUT_QUERY", "REPLY", "TIMEOUT", "ERROR", "TRAFFIC", "NOTHING"}
)


def unreplayed_step(scenario: rpl.Scenario) -> rpl.Step | None:
    """The first step this harness cannot replay (None: all can be)."""
    for step in scenario.steps:
        if step.kind == "TIME_PASSES" and step.args[:1] == ("ELAPSE",):
            continue
        if step.kind not in REPLAYED_STEPS:
            return step
    return None


SETTLE_ROUNDS = 25  # loop turns without progress after which every task is blocked or done
MAX_ROUNDS = 20000  # answered queries + moments; testbound stops at 5000
WALL_TIMEOUT = 60.0  # seconds: a replay that blocks on something else fails instead of hanging


async def replay(
    scenario: rpl.Scenario, setup: Setup, ede_alternatives: Mapping[int, frozenset[int]]
) -> Outcome:
    """Run the scenario the way testbound's run loop does (raises :class:`Unsupported`):
    at each moment, a CHECK_OUT_QUERY that matches a pending upstream query passes; a
    CHECK_ANSWER with an answer waiting is checked; else a pending query that a RANGE entry
    answers at the current moment's step is answered; else the moment is done (a QUERY moves
    to the next moment first, so its upstream queries are answered at that moment's step).
    Upstream queries no entry answers, now or at a later step, time out at once: testbound
    would leave them pending forever, and dnsseal asks some questions Unbound does not; one
    a RANGE answers at a later step stays pending until then.  Failures are collected."""
    config = build_config(setup)
    transport = Replay(scenario)
    start = setup.date if setup.date is not None else signing_time(scenario)
    elapsed = 0.0

    def clock() -> int:
        return int(start + elapsed)

    resolver = _Resolver(
        config, transport=transport, clock_fn=clock, aggressive_nsec=setup.aggressive_nsec
    )
    service = ResolverService(resolver)
    outcome = Outcome(log=transport.log)
    answers: list[tuple[int, dns.message.Message, str]] = []
    tasks: list[asyncio.Task[None]] = []
    moments = scenario.steps

    async def ask(step: rpl.Step, query: dns.message.Message) -> None:
        out = await service.handle(query.to_wire(), False, CLIENT)
        if out is None:
            outcome.failures.append(f"step {step.number}: no answer to the query")
            return
        q = query.question[0]
        verdict = resolver.verdicts.get((q.name, q.rdtype), "(none)")
        outcome.verdicts.append(verdict)
        answers.append((step.number, dns.message.from_wire(out), verdict))

    async def settle() -> None:
        quiet = 0
        while quiet < SETTLE_ROUNDS:
            before = (len(transport.pending), sum(t.done() for t in tasks))
            await asyncio.sleep(0)
            quiet = (
                quiet + 1 if (len(transport.pending), sum(t.done() for t in tasks)) == before else 0
            )

    odd = unreplayed_step(scenario)
    if odd is not None:
        raise Unsupported(f"STEP {odd.kind} (line {odd.line}) is not replayed")
    now = 0
    rounds = 0
    try:
        while now < len(moments):
            rounds += 1
            if rounds > MAX_ROUNDS:
                outcome.failures.append(f"more than {MAX_ROUNDS} rounds: the replay loops")
                break
            await settle()
            mom = moments[now]
            if mom.kind == "CHECK_OUT_QUERY":
                assert mom.entry is not None
                hit = next(
                    (p for p in transport.pending if _selects(mom.entry, p.query, p.tcp)), None
                )
                if hit is not None:
                    transport.log.append(f"STEP {mom.number} CHECK_OUT_QUERY {hit.describe()}")
                    now += 1
                    if "copy_id" in mom.entry.adjust:
                        transport.answer(hit, mom.entry, f"STEP {mom.number}")
                    continue
            if mom.kind == "CHECK_ANSWER" and answers:
                assert mom.entry is not None
                outcome.checks += 1
                _check(mom, answers, outcome, ede_alternatives)
                now += 1
                continue
            found = next(
                (
                    (p, e)
                    for p in transport.pending
                    if (e := transport.lookup(p, mom.number)) is not None
                ),
                None,
            )
            if found is not None:
                transport.answer(found[0], found[1], "range")
                continue
            if transport.pending and mom.kind not in (
                "CHECK_OUT_QUERY",
                "REPLY",
                "TIMEOUT",
                "ERROR",
            ):
                # A query a RANGE of a later step answers stays pending, as in testbound
                # (iter_dnsseclame_bug: a server that answers only from step 30 on).
                later = [m.number for m in moments[now + 1 :]]
                hopeless = [p for p in transport.pending if not transport.answered_later(p, later)]
                for p in hopeless:
                    transport.fail(p, TimeoutError("no scenario entry"), "no entry: timeout")
                if hopeless:
                    continue
            now += 1
            if mom.kind == "QUERY":
                assert mom.entry is not None
                query = client_query(mom.entry)
                transport.log.append(f"STEP {mom.number} QUERY {query.question[0]}")
                tasks.append(asyncio.ensure_future(ask(mom, query)))
            elif mom.kind == "CHECK_ANSWER":
                outcome.checks += 1
                running = sum(not t.done() for t in tasks)
                outcome.failures.append(
                    f"step {mom.number}: no answer to check"
                    + (f" ({running} resolution(s) stalled)" if running else "")
                )
            elif mom.kind == "CHECK_OUT_QUERY":
                assert mom.entry is not None
                outcome.failures.append(
                    f"step {mom.number}: no upstream query matching CHECK_OUT_QUERY line "
                    f"{mom.entry.line} ({', '.join(p.describe() for p in transport.pending)})"
                )
            elif mom.kind in ("REPLY", "TIMEOUT", "ERROR"):
                if not transport.pending:
                    outcome.failures.append(f"step {mom.number}: {mom.kind} but no query pending")
                elif mom.kind == "REPLY":
                    assert mom.entry is not None
                    transport.answer(transport.pending[0], mom.entry, f"STEP {mom.number} REPLY")
                else:
                    error: Exception = TimeoutError() if mom.kind == "TIMEOUT" else OSError()
                    transport.fail(transport.pending[0], error, f"STEP {mom.number} {mom.kind}")
            elif mom.kind == "TIME_PASSES" and mom.args[:1] == ("ELAPSE",):
                elapsed += float(mom.args[1])
            # TRAFFIC and NOTHING: nothing to do (every exchange is answered before a moment)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if answers:
        outcome.failures.append(f"{len(answers)} answer(s) never checked")
    return outcome


def _check(
    step: rpl.Step,
    answers: list[tuple[int, dns.message.Message, str]],
    out: Outcome,
    ede_alternatives: Mapping[int, frozenset[int]],
) -> None:
    assert step.entry is not None
    if not answers:
        out.failures.append(f"step {step.number}: no answer to check")
        return
    first: list[str] = []
    for i, (_, msg, _) in enumerate(answers):
        diffs = compare(
            step.entry,
            msg,
            ttl="ttl" in step.entry.match,
            answer=True,
            ede_alternatives=ede_alternatives,
        )
        if not diffs:
            del answers[i]
            return
        if i == 0:
            first = diffs
    qnum, msg, verdict = answers.pop(0)
    out.failures.append(
        f"step {step.number} (CHECK_ANSWER line {step.entry.line}, query of step {qnum}):\n  "
        + "\n  ".join(first)
        + f"\n  dnsseal's verdict: {verdict}"
        + f"\n  --- dnsseal answered:\n{msg.to_text()}"
    )


def run(
    scenario: rpl.Scenario,
    patch: Patcher,
    ede_alternatives: Mapping[int, frozenset[int]] | None = None,
    check_dsa: bool = True,
) -> Outcome:
    """Read the config, install the test-only crypto hook, replay; raises :class:`Unsupported`
    if the scenario needs what dnsseal does not have.  ``ede_alternatives``: see
    :func:`compare`."""
    setup = read_setup(scenario)
    if setup.unsupported:
        raise Unsupported("; ".join(setup.unsupported))
    if setup.fake_sha1 or not setup.dates_checked:
        install_test_crypto(patch, setup.fake_sha1, setup.dates_checked, check_dsa)
    return asyncio.run(
        asyncio.wait_for(replay(scenario, setup, ede_alternatives or {}), WALL_TIMEOUT)
    )
