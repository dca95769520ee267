"""The resolver: drives :class:`dnsseal.validator.machine.Query` with a transport, a cache
and a clock.

Every :class:`~dnsseal.validator.machine.Need` becomes one query (EDNS0 with DO and CD,
RD clear, 1232-octet payload) to the listed servers in turn, and the chain-walk questions
the machine can name in advance (:meth:`~dnsseal.validator.machine.Query.prefetch`: a
signed zone's DNSKEY, its DS from the parent) are sent at the same time, so a cold
resolution takes one round trip per zone cut instead of three (Unbound prefetches a
signed delegation's DNSKEY); the machine is fed those replies when it asks, and judges
them as any other.  A truncated UDP reply is retried over TCP; SERVFAIL, REFUSED,
FORMERR, timeouts and replies that do not match the question move on to the next server,
and so does a TCP reply with TC set (RFC 2181 s9: a truncated reply is ignored).  When no
server of a question gave a usable reply, the ones that did not answer at all (a lost
datagram) are asked again, each at most :data:`ATTEMPTS` times for the question (Unbound's
OUTBOUND_MSG_RETRY; RFC 1035 s4.2.1 and RFC 1536 s1: retransmit, with back-off), at most
:data:`MAX_SENDS` sends in all (every silent server costs a timeout); a client question
(its alias targets included) is given up ``Config.query_timeout`` seconds after it started
(BIND's resolver-query-timeout): no more sends, the wait for the reply to a send under way
ends then too (not at that send's own timeout: :mod:`.transport`, as named), SERVFAIL with
EDE 22; a send cut short so is not counted against its server.  A
server that did not answer :data:`STRIKES` questions of one kind in a row (A, AAAA, any
other type: Unbound's infra cache keeps timeout_A, timeout_AAAA and timeout_other, so a
server that drops only AAAA queries still answers A) is skipped for that kind: for
:data:`BACKOFF_FIRST` seconds, then it gets one probe at a time, each holding it for its
retransmission timeout plus a second, the timeout starting at :data:`PROBE_RTO` and
doubling with every lost probe up to :data:`RTO_MAX` (probes 13, 25, 49, 97, then 121 s
apart), like Unbound's infra cache (which keeps asking a server until its retransmission
timeout has doubled past 12 s, about five losses in a row: one lost datagram must not take
a zone's only server away; then sets its probedelay to that timeout plus a second per
probe); when every server of a question is backing off, the question fails at once.  A
server that missed its last questions goes after the others of a question's list (at most
:data:`MAX_SERVERS_PER_NEED` are asked) for :data:`DEMOTE_FOR` seconds, as Unbound prefers
servers with a smaller retransmission timeout: unreachable servers first in a list (the
root hints' first four, say) do not take every question's places.
Caches (all bounded, see :mod:`.cache`):

- upstream replies per (name, type, zone) for their TTL, as wire bytes; the replies a
  resolution used are dropped when it ends bogus (a forged reply must not keep a name
  failing for its whole TTL);
- the DNAME RRsets of validated (secure) answers, so a name below a DNAME owner is
  synthesized (RFC 6672 s3.2) and only its target resolved (Unbound, too, synthesizes only
  from secure DNAMEs: an unvalidated one is asked again);
- final results per (name, type) for the smallest TTL of their records, negative ones for
  the SOA MINIMUM at most (RFC 2308 s5), bogus ones for at most :data:`BOGUS_TTL` (Unbound's
  val-bogus-ttl), packed to wire form without the chain links (``resolve`` returns the
  links only for a fresh resolution); a name's NXDOMAIN answers every type (RFC 2308 s5);
- the delegation cache (:class:`~dnsseal.validator.trustcache.DelegationCache`): each
  zone's servers and validated chain state, so a new name starts at its closest known zone;
- with ``aggressive_nsec``, validated NSEC records (:mod:`.aggressive`, RFC 8198);
- single validated RRsets (:mod:`.rrcache`): a cached CNAME answers QTYPE CNAME and is
  followed for other types, a DS is denied from the parent's NSEC that proved an insecure
  delegation plus the parent's SOA; the NXDOMAIN of a CNAME chain's target is kept for that
  target;
- client questions' SERVFAILs (:meth:`Resolver.resolve_client`: no server answered, none
  usably, the deadline passed, a failure judged bogus) for ``Config.servfail_ttl`` seconds,
  BIND's servfail-ttl (RFC 9520 s3: a resolver MUST cache resolution failures, at least 1 s),
  so a client repeating a question for a broken zone does not make upstream traffic every
  time; twice as long each time the question fails again once its failure's time is over,
  up to :data:`SERVFAIL_TTL_MAX` (RFC 9520 s3.2: resolvers SHOULD use an exponential or
  linear backoff for persistent failures, never over 5 minutes; named 9.18 keeps
  servfail-ttl fixed); keyed on the CD bit as BIND's: a CD=1 question is answered only a
  failure of a CD=1 question (it asked for the data whatever the validation, RFC 4035
  s3.2.2).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal import clock
from dnsseal.proto.fastpath import RR_FIXED, name_wire, rdata_wires
from dnsseal.resolver.aggressive import NsecCache
from dnsseal.resolver.cache import DEFAULT_MAX_BYTES, Cache, reply_ttl
from dnsseal.resolver.replyreader import read_reply
from dnsseal.resolver.rrcache import RRsetCache
from dnsseal.resolver.transport import (
    Expired,
    Transport,
    network_transport,
    start_deadline,
    time_left,
)
from dnsseal.validator.denial import prove_nodata
from dnsseal.validator.iterator import Iteration, RootPriming
from dnsseal.validator.limits import Budget, Limits
from dnsseal.validator.machine import Config, Need, Query, Result, negative_ttl
from dnsseal.validator.names import as_hashed, same_name, suffix
from dnsseal.validator.rrsig import SigCheck
from dnsseal.validator.trustcache import DelegationCache, TrustCache
from dnsseal.validator.verdict import (
    EDE_NO_REACHABLE_AUTHORITY,
    EDE_OTHER,
    Security,
    Verdict,
    bogus,
    indeterminate,
    secure,
    worst,
)

log = logging.getLogger(__name__)

PAYLOAD = 1232
RETRY_RCODES = {dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.NOTIMP}
MAX_SERVERS_PER_NEED = 4
ATTEMPTS = 5  # sends of one question to a server that does not answer (OUTBOUND_MSG_RETRY)
MAX_SENDS = 8  # sends of one question in all: silent servers cost a timeout each
STRIKES = 5  # unanswered queries in a row after which a server is skipped (for a kind...)
KIND_STRIKES = 3  # ... of which it missed this many in a row (Unbound's TIMEOUT_COUNT_MAX)
BACKOFF_FIRST = 5  # seconds a silent server is skipped before its first probe
PROBE_RTO = 12  # its retransmission timeout then (Unbound's PROBE_MAXRTO, 12 s) ...
RTO_MAX = 120  # ... doubling with every lost probe up to this (RTT_MAX_TIMEOUT, 120 s)
MAX_BACKOFF_ENTRIES = 10000
DEMOTE_FOR = 900  # seconds a server that missed goes after the others (Unbound's host TTL)
BOGUS_TTL = 60
PARSED_REPLIES = 256  # cached upstream replies also kept parsed (~10 KB each)
FAILURES_SHARE = 64  # the client questions' SERVFAILs may use 1/64 of the cache's memory
SERVFAIL_TTL_MAX = 30  # s: the longest a failure is kept as it backs off (BIND's servfail-ttl max)
FAILURE_MEMORY = 30  # s: a failure is remembered this long after its time, for the back-off

Server = tuple[str, int]
Silent = tuple[Server, int]  # a server and the kind of question it does not answer (_kind)
NXDOMAIN_KEY = -1  # results key type of a name's NXDOMAIN, which holds for every type
DNAME_KEY = -2  # results key type of a DNAME RRset an answer used, kept for synthesis
MAX_SYNTHESIS = 8  # DNAMEs from the cache followed for one question (a loop ends there)
# Types whose replies feed other resolutions (the chain walk, NS probes): kept as upstream
# replies even when they are also the question asked.
_SHARED_TYPES = {int(dns.rdatatype.DS), int(dns.rdatatype.DNSKEY), int(dns.rdatatype.NS)}


# When (on the resolver's clock) the client question being resolved must be given up
# (Config.query_timeout after it started): set by the outermost resolution, seen by the
# alias targets it resolves and the exchanges and prefetches it starts (tasks copy it).
# The same deadline is kept by the transport on the event loop's clock (start_deadline):
# the resolver's counts whole seconds (and may be pinned), the network's wait for a reply
# is cut at the very moment.
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=float("inf"))


# Set in the start-up task (Resolver.prime): the resolution of the root's DNSKEY RRset it
# runs after priming must not wait for the task it is part of.
_STARTING: contextvars.ContextVar[bool] = contextvars.ContextVar("starting", default=False)


def _log_priming_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("[resolver] root priming failed: %r", task.exception())


_PACKED_HEADER = struct.Struct("!HHHHHH")
_POINTER = _RDLEN = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class _Packed:
    """A cached result in wire form (a few hundred octets instead of ~10 KB of objects)."""

    qname: dns.name.Name
    rdtype: int
    rcode: int
    sections: bytes
    answers: int  # how many of the packed RRsets belong to the answer section
    verdict: Verdict

    @property
    def nbytes(self) -> int:
        return len(self.sections)

    @staticmethod
    def of(result: Result) -> _Packed:
        """The answer and authority RRsets as a message with no question (what
        :meth:`unpack` reads), written from the rdata fields (several times faster than
        ``Message.to_wire``): an owner name in full once, then as a pointer to it; names
        in rdata uncompressed."""
        out = [b""]
        size = 12
        owners: dict[bytes, bytes] = {}
        counts = [0, 0]
        for i, section in enumerate((result.answer, result.authority)):
            for rrset in section:
                name = name_wire(rrset.name)
                fixed = RR_FIXED.pack(rrset.rdtype, rrset.rdclass, rrset.ttl)
                for data in rdata_wires(rrset):
                    owner = owners.get(name)
                    if owner is None:
                        owner = name
                        if size < 0x4000:
                            owners[name] = _POINTER.pack(0xC000 | size)
                    rr = owner + fixed + _RDLEN.pack(len(data)) + data
                    out.append(rr)
                    size += len(rr)
                    counts[i] += 1
        out[0] = _PACKED_HEADER.pack(0, 0, 0, counts[0], counts[1], 0)
        return _Packed(
            result.qname,
            result.rdtype,
            result.rcode,
            b"".join(out),
            len(result.answer),
            result.verdict,
        )

    def unpack(self) -> Result:
        msg = read_reply(self.sections)
        return Result(
            self.qname,
            self.rdtype,
            self.rcode,
            tuple(msg.answer),
            tuple(msg.authority),
            self.verdict,
            (),
            {},
        )


def _scrubbed(result: Result) -> Result:
    """``result`` was made of a reply that had records of impossible length left out
    (``read_reply(scrub=True)``): say so with EDE 0 (Other), as Unbound's scrubber does,
    in place of a code of the verdict's own: the scrub is the first cause (a signature over
    the RRset as sent no longer verifies, say)."""
    why = f"{result.verdict.reason}; records of impossible length were removed from a reply"
    verdict = dataclasses.replace(result.verdict, reason=why, ede=EDE_OTHER)
    return dataclasses.replace(result, verdict=verdict)


def _timed_out(query: Query, name: dns.name.Name, t: int, timeout: float) -> Result:
    """SERVFAIL for a resolution that ran past its deadline (not a cached result: SERVFAIL;
    the failure cache keeps a client question's, see :meth:`Resolver.resolve_client`)."""
    why = f"no answer within resolver-query-timeout ({timeout * 1000:.0f} ms)"
    verdict = indeterminate(why, EDE_NO_REACHABLE_AUTHORITY)
    return Result(
        name, t, dns.rcode.SERVFAIL, (), (), verdict, tuple(query.links), dict(query.budget.spent)
    )


@dataclass(frozen=True, slots=True)
class _Failure:
    """A client question's SERVFAIL in the failure cache (see :meth:`Resolver.resolve_client`):
    the result without records or chain links (a SERVFAIL shows none), whether the question
    had CD set (BIND's NS_FAILCACHE_CD), until when (on the resolver's clock) it answers the
    question, and how many times the question had failed before, each once the failure
    before had run out (its back-off)."""

    result: Result
    cd: bool
    until: int
    streak: int


def _aged(rrsets: tuple[dns.rrset.RRset, ...], age: int) -> tuple[dns.rrset.RRset, ...]:
    """``rrsets`` with their TTLs counted down by ``age`` seconds in the cache."""
    if not age:
        return rrsets
    return tuple(dns.rrset.from_rdata_list(r.name, max(0, r.ttl - age), list(r)) for r in rrsets)


_OPT = b"\x00" + struct.pack("!HHIH", 41, PAYLOAD, 0x8000, 0)  # EDNS0, 1232 octets, DO
_FLAGS_CD, _FLAGS_RD = 0x0010, 0x0100
_ERRORS_WITHOUT_QUESTION = {
    dns.rcode.FORMERR,
    dns.rcode.SERVFAIL,
    dns.rcode.NOTIMP,
    dns.rcode.REFUSED,
}


def _kind(rdtype: int) -> int:
    """The kind of question a server's back-off is kept for: A, AAAA, or 0 for any other
    type (Unbound's timeout_A, timeout_AAAA, timeout_other)."""
    return rdtype if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) else 0


class _QueryIds:
    """Upstream query IDs (RFC 5452 s9.2: unpredictable) from the kernel's CSPRNG, read
    :data:`ID_BATCH` octets at a time: ``secrets.randbits`` costs a ``getrandom`` system
    call per query (one of the eleven of an exchange).  Unbound draws its IDs from its own
    seeded ChaCha20 (``arc4random``) in the same way.  A forked child starts a batch of its
    own, so no two processes send the same IDs."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> int:
        at = self._at
        if at + 2 > len(self._pool):
            self._pool = os.urandom(ID_BATCH)
            at = 0
        self._at = at + 2
        return (self._pool[at] << 8) | self._pool[at + 1]


ID_BATCH = 512  # octets: 256 query IDs per getrandom call
_IDS = _QueryIds()


def query_wire(need: Need) -> bytes:
    """The upstream query for ``need``: a random ID, CD set, RD only for a forwarder, EDNS0
    with DO and our payload (built directly: a dnspython message per query costs more
    than the round trip on a local network)."""
    flags = _FLAGS_CD | (_FLAGS_RD if need.recursive else 0)
    header = _QUERY_HEADER.pack(_IDS.next(), flags, 1, 0, 0, 1)
    labels = need.qname.labels
    qname: bytes | None
    if labels and labels[-1] == b"":  # absolute: its labels as they are (to_wire's form)
        qname = name_wire(need.qname)
    else:
        qname = need.qname.to_wire()  # raises NeedAbsoluteNameOrOrigin
    assert qname is not None  # (None only when writing to a file)
    return header + qname + _QUESTION_TAIL.pack(need.rdtype, 1) + _OPT


_QUERY_HEADER = struct.Struct("!HHHHHH")
_QUESTION_TAIL = struct.Struct("!HH")


ReplyKey = tuple[tuple[bytes, ...], int, tuple[bytes, ...]]


def reply_key(need: Need) -> ReplyKey:
    """The upstream reply cache's key for ``need``: (qname, type, zone), the names as their
    lower-cased label tuples, equal exactly when dnspython finds the names equal (absolute
    names end in the empty label).  A cold resolution looks each key up several times (the
    reply cache, the prefetches, the drop list); a tuple of bytes hashes in C where a
    ``Name`` hashes in a Python loop over its octets, every time."""
    return (
        tuple([label.lower() for label in need.qname.labels]),
        need.rdtype,
        tuple([label.lower() for label in need.zone.labels]),
    )


# The header bits read from every reply, as plain ints (an enum.Flag operation costs more).
_QR = int(dns.flags.QR)
_TC = int(dns.flags.TC)


def answers(reply: dns.message.Message, qid: bytes, need: Need) -> bool:
    """Whether ``reply`` is the response to the query with ID ``qid`` for ``need`` (ID, QR,
    opcode and the question, as dnspython's Message.is_response checks)."""
    if reply.id != int.from_bytes(qid, "big") or not int(reply.flags) & _QR:
        return False
    if reply.opcode() != dns.opcode.QUERY:
        return False
    if not reply.question:
        return reply.rcode() in _ERRORS_WITHOUT_QUESTION
    if len(reply.question) != 1:
        return False
    q = reply.question[0]
    return q.rdtype == need.rdtype and q.rdclass == 1 and same_name(q.name, need.qname)


class Resolver:
    """Resolve and validate; ``clock`` returns epoch seconds (pin it in tests)."""

    def __init__(
        self,
        config: Config,
        transport: Transport | None = None,
        clock_fn: Callable[[], int] = clock.now,
        cache: Cache | None = None,
        *,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        aggressive_nsec: bool = False,
    ) -> None:
        """``cache_bytes``: the memory upstream replies, results and single RRsets may use
        together (a half, three eighths, an eighth); ``aggressive_nsec``: answer denials
        from validated NSEC records (RFC 8198)."""
        if config.trust_cache is None:
            config = dataclasses.replace(config, trust_cache=TrustCache())
        if config.delegations is None:
            config = dataclasses.replace(config, delegations=DelegationCache())
        if config.priming is None:
            config = dataclasses.replace(config, priming=RootPriming())
        self.config = config
        self.transport = transport or network_transport()
        self.clock = clock_fn
        # The wall clock counts whole seconds: a deadline on it would pass up to a second
        # early, so with it the deadline is the transport's alone (see _expired).
        self._wall_clock = clock_fn is clock.now
        self.cache = cache if cache is not None else Cache(max_bytes=cache_bytes // 2)
        failures = cache_bytes // FAILURES_SHARE
        self.results = Cache(max_bytes=cache_bytes * 3 // 8 - failures)
        self.failures = Cache(max_bytes=failures)  # see resolve_client
        self.failure_answers = 0  # client questions answered from it
        self.rrsets = RRsetCache(max_bytes=cache_bytes // 8)
        self.nsec = NsecCache() if aggressive_nsec else None
        self._parsed: OrderedDict[Hashable, tuple[bytes, dns.message.Message]] = OrderedDict()
        self.upstream_queries = 0
        self._silent: dict[Silent, tuple[int, int]] = {}  # -> (probe at, its RTO)
        # server -> unanswered queries in a row, and (server, kind) -> the same for the kind
        self._strikes: dict[Server | Silent, int] = {}
        self.lost_replies = 0  # queries no server answered (timeout, network error)
        self._lost: dict[Silent, int] = {}  # -> lost_replies at its last loss
        self._missed: dict[Server, int] = {}  # -> when it last missed a question
        self._inflight: dict[tuple[dns.name.Name, int], asyncio.Future[Result]] = {}
        # Chain-walk questions sent ahead of the machine asking them (Query.prefetch), by
        # cache key; taken by the exchange that asks, or dropped when it ends unasked.
        self._prefetched: dict[Hashable, asyncio.Task[dns.message.Message | None]] = {}
        self._priming: asyncio.Task[None] | None = None  # see prime()
        # Whether a DNAME was ever kept for synthesis (_learn_dnames): until then no name
        # has one above it, and _synthesized looks nothing up.
        self._dnames_kept = False

    def with_config(self, config: Config) -> None:
        """Swap the configuration (new anchors); cached results are dropped (trusted key
        sets stay: they are keyed by the anchors they were validated with)."""
        if config.trust_cache is None:
            config = dataclasses.replace(config, trust_cache=self.config.trust_cache)
        if config.delegations is None:
            config = dataclasses.replace(config, delegations=self.config.delegations)
        if config.delegations is not None:
            config.delegations.forget_states()  # validated under the old anchors
        if config.priming is None:
            config = dataclasses.replace(config, priming=self.config.priming)
        if config.priming is not None and config.root_servers != self.config.root_servers:
            config.priming.forget()  # primed from other hints
        self.config = config
        self.results = Cache(max_bytes=self.results.max_bytes)
        self.failures.clear()
        self.rrsets.clear()
        if self.nsec is not None:
            self.nsec.clear()

    def prime(self) -> asyncio.Task[None]:
        """Prime the root's servers now, in the background, instead of at the first
        question (a service calls this once its listeners are ready): RFC 9609 s3 has a
        resolver prime when it starts with an empty cache, and Knot Resolver and PowerDNS
        Recursor prime at start.  It is the iteration's own priming step (the same ``. NS``
        to a hint, the same rules: none for a stub or forward zone of the root, the hints
        for :data:`~dnsseal.validator.iterator.PRIME_RETRY` seconds when it fails), so a
        first question finds the root's servers known.  A resolution that starts while it
        is out waits for it (Unbound's queries wait for its one priming query too) rather
        than asking the hints; no second priming query is sent.

        With a trust anchor for the root (and no negative one), the same task then fetches
        and validates the root's DNSKEY RRset, as a question ``. DNSKEY`` (Unbound probes
        its anchor's DNSKEY at start when it maintains it, RFC 5011): the reply and the
        validated key set land in the caches every later resolution reads, so the first
        question's chain walk sends no ``. DNSKEY`` and verifies nothing again, and the RFC
        5011 maintainer's first refresh finds the result cached.  The whole task is bounded
        by ``query_timeout`` from its start, like a client question.  Returns the task; a
        second call while it runs returns the same one."""
        if self._priming is None or self._priming.done():
            self._priming = asyncio.ensure_future(self._prime())
            self._priming.add_done_callback(_log_priming_failure)
        return self._priming

    async def _prime(self) -> None:
        # Bounded like a client question (resolver-query-timeout): the questions waiting
        # for it must not wait longer than their own deadline for a silent hint.
        now = self.clock()
        self._start_deadline(now)
        _STARTING.set(True)
        steps = Iteration(self.config, now)._prime()
        try:
            need = next(steps)
            while True:
                need = steps.send(await self.exchange(need))
        except StopIteration:
            pass
        if self._root_anchored(now) and not self._expired():
            # depth 1: within this task's deadline, not a new one of its own
            await self._resolve(dns.name.root, int(dns.rdatatype.DNSKEY), 1)

    def _start_deadline(self, now: int) -> None:
        """The question resolved in this context is given up ``query_timeout`` from now, on
        the resolver's clock and on the transport's (see :data:`_DEADLINE`)."""
        _DEADLINE.set(now + self.config.query_timeout)
        start_deadline(self.config.query_timeout)

    def _expired(self) -> bool:
        """Whether the question resolved in this context has run out of time: on the event
        loop's clock, to the moment (as named); with a clock of the resolver's own (a pinned
        or simulated one), also when that clock has reached the deadline.  (The wall clock
        the resolver reads counts whole seconds: a question that started late in a second
        would be given up to a second early on it.)"""
        if time_left() <= 0:
            return True
        return not self._wall_clock and self.clock() >= _DEADLINE.get()

    def _root_anchored(self, now: int) -> bool:
        anchor = self.config.anchors.closest(dns.name.root)
        return anchor is not None and self.config.anchors.negative_for(dns.name.root, now) is None

    async def started(self) -> None:
        """Wait for the start-up work of :meth:`prime` (priming, the root's keys), if any
        is still out; never raises."""
        await self._after_priming()

    async def _after_priming(self) -> None:
        """Wait for a priming started by :meth:`prime` that is still out (never raises,
        and a cancelled waiter leaves it running for the others); at once inside the
        start-up task itself."""
        priming = self._priming
        if priming is not None and not priming.done() and not _STARTING.get():
            await asyncio.wait((priming,))

    async def resolve(self, qname: dns.name.Name | str, rdtype: int | str) -> Result:
        """Resolve and validate (name, type); concurrent callers of the same question share
        one resolution, and results are cached for the smallest TTL of their records."""
        result, _ = await self.resolve_aged(qname, rdtype)
        return result

    async def resolve_aged(
        self, qname: dns.name.Name | str, rdtype: int | str
    ) -> tuple[Result, int]:
        """Like :meth:`resolve`, with the age in seconds of a cached result (0 if fresh), so
        a server can count TTLs down."""
        name = dns.name.from_text(qname) if isinstance(qname, str) else qname
        # The question's name is a key of every cache the resolution reads and fills: it
        # keeps its hash (a client's name comes as a plain dnspython Name).
        name = as_hashed(name)
        t = int(dns.rdatatype.RdataType.make(rdtype))
        now = self.clock()
        hit = self.cached(name, t, now)
        if hit is not None:
            return hit
        return await self._shared(name, t), 0

    async def resolve_client(
        self, qname: dns.name.Name, rdtype: int, cd: bool = False
    ) -> tuple[Result, int]:
        """A client's recursive question (RD=1; ``cd``: its CD bit): :meth:`resolve_aged`, and
        its SERVFAIL, whatever the cause (no server answered or none usably, the deadline
        passed, bogus), is kept for ``Config.servfail_ttl`` seconds at first (BIND's servfail-ttl,
        0: off): until then the same question is answered that SERVFAIL (verdict and EDE as they
        were, nothing added) without resolving again.  RFC 9520 s3 has a resolver cache
        resolution failures for at least 1 s and send no query again while one is cached; the
        clock counts whole seconds, so a failure is kept while it has not passed the failure's
        second plus the TTL (at least the TTL).  As BIND's SERVFAIL cache: a CD=1 question is
        answered only a failure of a CD=1 question, a CD=0 one any failure (a client that
        disabled checking wants whatever data there is, RFC 4035 s3.2.2, and must not get a
        validation failure of another client's question); an answer that did not fail drops
        the question's failure.

        Persistent failures back off (RFC 9520 s3.2: "Resolvers SHOULD employ an exponential
        or linear backoff algorithm to increase the cache duration for persistent resolution
        failures", and "MUST NOT" keep one longer than 5 minutes): when the question fails
        again after its failure's time ran out (within :data:`FAILURE_MEMORY` seconds), the
        new failure is kept twice as long as the one before, up to :data:`SERVFAIL_TTL_MAX`
        (1, 2, 4, 8, 16, 30, 30 s with the default): a broken zone's questions go upstream
        less and less often, and a repaired one answers within 30 s.  The first time is
        servfail-ttl, as BIND's (which keeps it fixed); 0 keeps nothing, so nothing backs
        off.  A CD=1 question resolved while a CD=0 failure still held does not lengthen
        the next time (that failure had not run out).  Answers from the failure cache are
        counted in :attr:`failure_answers`."""
        key = (qname, rdtype)
        now = self.clock()
        failed = self.failures.get(key, now)
        if not isinstance(failed, _Failure):
            failed = None
        elif now < failed.until and (failed.cd or not cd):
            self.failure_answers += 1
            return failed.result, 0
        result, age = await self.resolve_aged(qname, rdtype)
        if result.rcode == dns.rcode.SERVFAIL:
            ttl = self.config.servfail_ttl
            if ttl > 0:
                now = self.clock()
                streak = 0
                if failed is not None:
                    streak = failed.streak + 1 if now >= failed.until else failed.streak
                held = max(ttl, min(SERVFAIL_TTL_MAX, ttl << min(streak, 16)))
                kept = Result(qname, rdtype, result.rcode, (), (), result.verdict, (), {})
                # Answers while it has not passed its second plus ``held`` (the clock counts
                # whole seconds: at least ``held``), remembered FAILURE_MEMORY s beyond.
                failure = _Failure(kept, cd, now + held + 1, streak)
                self.failures.put(key, failure, held + 1 + FAILURE_MEMORY, now)
        elif failed is not None:
            self.failures.drop(key)
        return result, age

    def is_cached(self, name: dns.name.Name, t: int, now: int) -> bool:
        """Whether (name, t) is answered from the results cache (not resolved again)."""
        return (
            self.results.get((name, t), now) is not None
            or self.results.get((name, NXDOMAIN_KEY), now) is not None
        )

    def cached(self, name: dns.name.Name, t: int, now: int) -> tuple[Result, int] | None:
        """A result (and its age) answered without upstream queries: cached, a cached
        NXDOMAIN of the name (any type), or synthesized from validated NSEC records."""
        cached = self.results.get((name, t), now)
        if cached is None:
            cached = self.results.get((name, NXDOMAIN_KEY), now)
            if isinstance(cached, tuple):
                cached = (cached[0], dataclasses.replace(cached[1], rdtype=t))
        if isinstance(cached, tuple):
            stored, packed = cached
            assert isinstance(packed, _Packed)
            return packed.unpack(), max(0, now - stored)
        if self.nsec is not None and self.config.anchors.negative_for(name, now) is None:
            # Not below a negative trust anchor: nothing there is validated (RFC 7646 s2.1),
            # so the parent's NSEC must not deny it securely (Unbound: val_negcache_nta).
            made = self.nsec.answer(name, t, now)
            if made is not None:
                result, ttl = made
                self.results.put((name, t), (now, _Packed.of(result)), ttl, now)
                return result, 0
        return None

    async def referral(self, name: dns.name.Name) -> Result:
        """The referral a non-recursive query for ``name`` gets when nothing answers it from
        the cache (RFC 1034 s4.3.1, s4.3.2 step 4): the validated NS RRset of the deepest
        zone above ``name`` whose servers are known (the root's if none)."""
        now = self.clock()
        known = None
        if self.config.delegations is not None:
            known = self.config.delegations.closest(name, now)
        zone = known[0] if known is not None else dns.name.root
        result, _ = await self.resolve_aged(zone, dns.rdatatype.NS)
        return result

    async def _shared(self, name: dns.name.Name, t: int) -> Result:
        key = (name, t)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.get_running_loop().create_task(self._resolve(name, t))
        self._inflight[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight.pop(key, None)
            else:
                task.add_done_callback(lambda _: self._inflight.pop(key, None))

    async def _target(self, target: dns.name.Name, t: int, depth: int, now: int) -> Result:
        """The result for an alias's ``target``: from the cache (TTLs aged) or resolved."""
        cached = self.cached(target, t, now)
        if cached is None:
            return await self._resolve(target, t, depth + 1)
        rest, age = cached
        return dataclasses.replace(
            rest, answer=_aged(rest.answer, age), authority=_aged(rest.authority, age)
        )

    async def _resolve(self, name: dns.name.Name, t: int, depth: int = 0) -> Result:
        now = self.clock()
        if depth == 0:  # a client question (in its own task, see _shared)
            self._start_deadline(now)
        used: list[ReplyKey] = []
        made = await self._synthesized(name, t, now, depth)
        if made is None:
            made = await self._from_rrsets(name, t, now, depth)
        if made is not None:
            step = made
        else:
            if self._priming is not None and not self._priming.done():
                await self._after_priming()
                now = self.clock()
            query = Query(name, t, self.config, now)
            ahead: list[asyncio.Task[dns.message.Message | None]] = []
            scrubbed = False
            try:
                found = query.start()
                while isinstance(found, Need):
                    if self._expired():
                        break
                    for extra in query.prefetch(found):
                        self._prefetch(extra, found, ahead)
                    final = (
                        found.rdtype == t
                        and same_name(found.qname, name)
                        and t not in _SHARED_TYPES
                    )
                    reply = await self.exchange(found, used, keep=not final)
                    scrubbed = scrubbed or (reply is not None and bool(reply.errors))
                    found = query.feed(reply)
                if isinstance(found, Need) or (
                    found.rcode == dns.rcode.SERVFAIL and self._expired()
                ):
                    # Given up: whatever failed, the question ran out of time.
                    found = _timed_out(query, name, t, self.config.query_timeout)
            finally:
                self._unasked(ahead)
            step = _scrubbed(found) if scrubbed else found
            self._learn_dnames(step, now)
        bogus = step.verdict.security is Security.BOGUS
        if bogus:
            # What led to bogus may be forged: ask again next time, not for a whole TTL.
            for key in used:
                self.cache.drop(key)
        ttls = [r.ttl for r in (*step.answer, *step.authority)]
        if not step.answer and step.authority:
            ttls.append(negative_ttl(step.authority))  # RFC 2308 s5: the SOA MINIMUM too
        if bogus:
            ttls.append(BOGUS_TTL)
        if step.rcode != dns.rcode.SERVFAIL and ttls:
            packed = _Packed.of(step)
            self.results.put((name, t), (now, packed), min(ttls), now)
            if step.rcode == dns.rcode.NXDOMAIN and not step.answer and not bogus:
                self.results.put((name, NXDOMAIN_KEY), (now, packed), min(ttls), now)
            self._learn_target_nxdomain(step, min(ttls), now)
        self.rrsets.learn(step, now)
        if self.nsec is not None:
            self.nsec.learn(step, now)
        return step

    def _learn_target_nxdomain(self, result: Result, ttl: int, now: int) -> None:
        """The NXDOMAIN of a secure answer whose CNAME/DNAME chain ends in a name that does
        not exist is that final name's (RFC 6604 s2): keep it for the name, so another chain
        to it, or a question for it, is answered without asking.  Only with the validated
        denial of the final name (its zone's SOA in the authority section): the rcode
        itself is not signed, and a chain that is not secure may come from anyone."""
        if result.rcode != dns.rcode.NXDOMAIN or not result.answer:
            return
        if result.verdict.security is not Security.SECURE:
            return
        final, seen = result.qname, {result.qname}
        while True:
            cname = next(
                (r for r in result.answer if r.rdtype == dns.rdatatype.CNAME and r.name == final),
                None,
            )
            if cname is None:
                break
            final = cname[0].target
            if final in seen:
                return
            seen.add(final)
        soa = next((r for r in result.authority if r.rdtype == dns.rdatatype.SOA), None)
        if final == result.qname or soa is None or not final.is_subdomain(soa.name):
            return
        denial = Result(
            final, result.rdtype, result.rcode, (), result.authority, result.verdict, (), {}
        )
        self.results.put((final, NXDOMAIN_KEY), (now, _Packed.of(denial)), ttl, now)

    async def _from_rrsets(
        self, name: dns.name.Name, t: int, now: int, depth: int
    ) -> Result | None:
        """(name, t) built from single cached RRsets (:mod:`.rrcache`): a DS denial, a
        cached CNAME for QTYPE CNAME, or a cached CNAME followed to its target (resolved
        or cached); the verdict is the weakest of what was used.  None when the cache
        does not answer it."""
        if t == dns.rdatatype.DS:
            return self._ds_denial(name, now)
        if t in (dns.rdatatype.RRSIG, dns.rdatatype.ANY) or depth >= MAX_SYNTHESIS:
            return None
        hit = self.rrsets.get(name, int(dns.rdatatype.CNAME), now)
        if hit is None:
            return None
        links, verdict = hit
        if t == dns.rdatatype.CNAME:
            return Result(name, t, dns.rcode.NOERROR, links, (), verdict, (), {})
        target = links[0][0].target
        rest = await self._target(target, t, depth, now)
        return Result(
            name,
            t,
            rest.rcode,
            (*links, *rest.answer),
            rest.authority,
            worst(verdict, rest.verdict),
            rest.links,
            rest.spent,
        )

    def _ds_denial(self, name: dns.name.Name, now: int) -> Result | None:
        """NODATA for ``name`` DS from the parent's cached secure NSEC at ``name`` (kept
        when it proved an insecure delegation) and the parent's cached SOA, when the
        validator's own NODATA proof holds over them (Unbound's negative cache for DS)."""
        nsec = self.rrsets.get(name, int(dns.rdatatype.NSEC), now)
        if nsec is None or nsec[1].security is not Security.SECURE:
            return None
        signers = {rd.signer for r in nsec[0][1:] for rd in r}
        if len(signers) != 1:
            return None
        zone = signers.pop()
        if name == zone or not name.is_subdomain(zone):
            return None
        soa = self.rrsets.get(zone, int(dns.rdatatype.SOA), now)
        if soa is None or soa[1].security is not Security.SECURE:
            return None
        trusted = nsec[0][0]

        def verify(rrset: dns.rrset.RRset) -> SigCheck:
            if rrset is not trusted:
                return SigCheck(bogus(f"{rrset.name} is not the cached NSEC"))
            return SigCheck(secure(f"{rrset.name} NSEC (validated earlier)"))

        section = (*soa[0], *nsec[0])
        proof = prove_nodata(name, int(dns.rdatatype.DS), zone, section, verify, Budget(Limits()))
        if proof.verdict.security is not Security.SECURE:
            return None
        verdict = worst(worst(nsec[1], soa[1]), proof.verdict)
        return Result(name, int(dns.rdatatype.DS), dns.rcode.NOERROR, (), section, verdict, (), {})

    def _learn_dnames(self, result: Result, now: int) -> None:
        """Keep the DNAME RRsets (with their RRSIGs) of a secure result, so names below
        their owners are synthesized (RFC 6672 s3.2) instead of asked again.  Only secure
        ones, as Unbound ("normally, only secure DNAMEs allowed from cache", iter_dname_insec):
        an unvalidated DNAME redirects a whole subtree, and the zone may have changed below
        its owner since (RFC 6672 s3.4 leaves the choice to the resolver).  TTL 0 is not
        kept (RFC 2181 s8)."""
        if result.verdict.security is not Security.SECURE or result.rcode == dns.rcode.SERVFAIL:
            return
        for rrset in result.answer:
            if rrset.rdtype != dns.rdatatype.DNAME:
                continue
            sigs = [
                r
                for r in result.answer
                if r.rdtype == dns.rdatatype.RRSIG
                and r.covers == dns.rdatatype.DNAME
                and r.name == rrset.name
            ]
            kept = Result(
                rrset.name,
                int(dns.rdatatype.DNAME),
                dns.rcode.NOERROR,
                (rrset, *sigs),
                (),
                result.verdict,
                (),
                {},
            )
            ttl = min(r.ttl for r in kept.answer)
            self._dnames_kept = True
            self.results.put((rrset.name, DNAME_KEY), (now, _Packed.of(kept)), ttl, now)

    async def _synthesized(
        self, name: dns.name.Name, t: int, now: int, depth: int
    ) -> Result | None:
        """(name, t) answered through a cached DNAME above ``name``: the DNAME, the CNAME
        it synthesizes (RFC 6672 s3.2, TTL of the DNAME) and the resolution of the new
        name; the verdict is the weaker of the DNAME's and the target's.  None when no
        DNAME is cached above ``name``."""
        if t == dns.rdatatype.DS or depth >= MAX_SYNTHESIS or not self._dnames_kept:
            return None
        for i in range(1, len(name.labels) - 1):
            owner = suffix(name.labels[i:])
            hit = self.results.get((owner, DNAME_KEY), now)
            if not isinstance(hit, tuple):
                continue
            stored, packed = hit
            assert isinstance(packed, _Packed)
            dname = packed.unpack()
            age = max(0, now - stored)
            links = _aged(dname.answer, age)
            target = next(r for r in links if r.rdtype == dns.rdatatype.DNAME)[0].target
            try:
                new = name.relativize(owner).concatenate(target)
            except dns.name.NameTooLong:
                return None  # YXDOMAIN: let the servers say it (RFC 6672 s2.2)
            cname = dns.rrset.from_text(name, links[0].ttl, "IN", "CNAME", new.to_text())
            if t == dns.rdatatype.CNAME:
                return Result(
                    name, t, dns.rcode.NOERROR, (*links, cname), (), dname.verdict, (), {}
                )
            rest = await self._target(new, t, depth, now)
            verdict = worst(dname.verdict, rest.verdict)
            answer = (*links, cname, *rest.answer)
            return Result(
                name, t, rest.rcode, answer, rest.authority, verdict, rest.links, rest.spent
            )
        return None

    async def exchange(
        self,
        need: Need,
        used: list[ReplyKey] | None = None,
        keep: bool = True,
    ) -> dns.message.Message | None:
        """One upstream question, from the cache (unless ``need.fresh``: another server's
        reply is wanted) or the first server that answers; its cache key goes to ``used``;
        ``keep=False``: the reply is not cached (the result made of it will be)."""
        key = reply_key(need)
        if used is not None:
            used.append(key)
        ahead = None if need.fresh else self._prefetched.pop(key, None)
        if ahead is not None:
            return await asyncio.shield(ahead)
        return await self._fetch(need, key, keep)

    async def _fetch(self, need: Need, key: ReplyKey, keep: bool) -> dns.message.Message | None:
        now = self.clock()
        cached = None if need.fresh else self.cache.get(key, now)
        if isinstance(cached, bytes):
            return self._parse_cached(key, cached)
        kind = _kind(need.rdtype)
        servers = [s for s in dict.fromkeys(need.servers) if self._ready(s, kind, now)]
        if not servers:
            log.debug("%s/%d: every server is backing off", need.qname, need.rdtype)
            return None
        wire = query_wire(need)
        # Servers that missed their last questions (in the last DEMOTE_FOR seconds) go after
        # the others (a stable sort: the given order otherwise), so a few unreachable ones
        # first in the list do not take every question's MAX_SERVERS_PER_NEED places.
        servers = sorted(servers, key=lambda s: self._demoted(s, now))
        servers = servers[:MAX_SERVERS_PER_NEED]
        sends = 0
        for _ in range(ATTEMPTS):
            silent: list[Server] = []
            for server in servers:
                now = self.clock()
                if self._expired():
                    return None  # the resolution is given up (resolver-query-timeout)
                if not self._ready(server, kind, now):
                    continue  # another question's probe went to it meanwhile
                self._probing(server, kind, now)
                sends += 1
                mark = self.lost_replies
                got = await self._one(server, wire, need)
                if got is None:
                    if self._lost.get((server, kind), -1) > mark:
                        silent.append(server)  # no answer: worth a retransmission
                    continue
                reply, data = got
                if reply.rcode() in RETRY_RCODES:
                    continue
                if keep:
                    self.cache.put(key, data, reply_ttl(reply, self.cache.max_ttl), now)
                return reply
            # Nothing usable: send again to the servers that did not answer (a lost
            # datagram), unless they have started backing off meanwhile.
            now = self.clock()
            servers = [s for s in silent if self._ready(s, kind, now)][: MAX_SENDS - sends]
            if not servers:
                break
        return None

    def _demoted(self, server: Server, now: int) -> int:
        """How far back ``server`` goes in a question's list: its misses in a row, if the
        last was less than :data:`DEMOTE_FOR` seconds ago, else 0."""
        missed = self._missed.get(server)
        if missed is None or now - missed >= DEMOTE_FOR:
            return 0
        return self._strikes.get(server, 0)

    def _ready(self, server: Server, kind: int, now: int) -> bool:
        """Whether ``server`` may be asked a question of ``kind`` (not backing off)."""
        return self._silent.get((server, kind), (0, 0))[0] <= now

    def _probing(self, server: Server, kind: int, now: int) -> None:
        """A question of ``kind`` is about to go to ``server``: if it is backing off for
        that kind, this is its probe, which holds it for its retransmission timeout plus
        a second, so that no other probe goes out before this one has timed out (Unbound's
        probedelay)."""
        held = self._silent.get((server, kind))
        if held is not None:
            self._silent[(server, kind)] = (now + held[1] + 1, held[1])

    def _prefetch(
        self, need: Need, asked: Need, ahead: list[asyncio.Task[dns.message.Message | None]]
    ) -> None:
        """Send ``need`` now, in parallel with ``asked`` (unless it is the same question,
        already cached or already on its way); :meth:`exchange` hands the reply over when
        the machine asks it.  The task goes to ``ahead``, the resolution's own."""
        if (
            need.rdtype == asked.rdtype
            and same_name(need.qname, asked.qname)
            and same_name(need.zone, asked.zone)
        ):
            return
        key = reply_key(need)
        if key in self._prefetched:
            return
        if self.cache.get(key, self.clock()) is not None:
            return
        task = asyncio.get_running_loop().create_task(self._fetch(need, key, True))
        self._prefetched[key] = task
        ahead.append(task)

    def _unasked(self, ahead: list[asyncio.Task[dns.message.Message | None]]) -> None:
        """A resolution ended: its prefetches that no exchange took are forgotten once they
        finish (the reply cache keeps what they got)."""
        for task in ahead:
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[dns.message.Message | None]) -> None:
        for key, held in list(self._prefetched.items()):
            if held is task:
                del self._prefetched[key]
        if not task.cancelled() and task.exception() is not None:
            log.warning("a prefetch failed: %r", task.exception())

    def _parse_cached(self, key: Hashable, data: bytes) -> dns.message.Message:
        """A cached reply as a message; the hottest few stay parsed (parsing is half the
        cost of a new name in a known zone).  The machine only reads replies, so one
        parsed message can serve every query that needs it."""
        memo = self._parsed.get(key)
        if memo is not None and memo[0] is data:
            self._parsed.move_to_end(key)
            return memo[1]
        msg = read_reply(data, scrub=True)
        self._parsed[key] = (data, msg)
        if len(self._parsed) > PARSED_REPLIES:
            self._parsed.popitem(last=False)
        return msg

    def _heard(self, server: Server, rdtype: int) -> None:
        """``server`` answered a question of ``rdtype``'s kind: no more back-off for that
        kind, and its misses in a row start again from zero."""
        key = (server, _kind(rdtype))
        self._silent.pop(key, None)
        self._strikes.pop(key, None)
        self._strikes.pop(server, None)
        self._missed.pop(server, None)

    def _silence(self, server: Server, rdtype: int) -> None:
        """``server`` did not answer a question of ``rdtype``'s kind: once it missed
        :data:`STRIKES` questions in a row, :data:`KIND_STRIKES` of them of this kind, skip
        it for that kind for a while, longer each time it stays silent (Unbound blocks a
        server for a query type once its timeout has backed off past 12 s and three queries
        of the type went unanswered)."""
        self.lost_replies += 1
        server_kind = (server, _kind(rdtype))
        if len(self._lost) >= MAX_BACKOFF_ENTRIES:
            self._lost.clear()
        self._lost[server_kind] = self.lost_replies
        if len(self._strikes) >= MAX_BACKOFF_ENTRIES:
            self._strikes.clear()
        if len(self._missed) >= MAX_BACKOFF_ENTRIES:
            self._missed.clear()
        self._missed[server] = self.clock()
        strikes = self._strikes[server] = self._strikes.get(server, 0) + 1
        self._strikes[server_kind] = self._strikes.get(server_kind, 0) + 1
        if server_kind in self._silent:
            # A probe, lost: the next one waits for twice the timeout (the hold this probe
            # set when it was sent stays).
            probe_at, rto = self._silent[server_kind]
            self._silent[server_kind] = (probe_at, min(RTO_MAX, rto * 2))
            self._strikes.pop(server_kind, None)
            return
        if strikes < STRIKES:
            log.debug("%s#%d did not answer (%d in a row)", server[0], server[1], strikes)
            return
        for kind in (int(dns.rdatatype.A), int(dns.rdatatype.AAAA), 0):
            key = (server, kind)
            if self._strikes.get(key, 0) >= KIND_STRIKES and key not in self._silent:
                self._back_off(key)

    def _back_off(self, server_kind: Silent) -> None:
        """Skip ``server_kind`` for :data:`BACKOFF_FIRST` seconds, then probe it (see
        :meth:`_probing`), starting from a retransmission timeout of :data:`PROBE_RTO`."""
        self._strikes.pop(server_kind, None)
        if len(self._silent) >= MAX_BACKOFF_ENTRIES:
            now = self.clock()
            self._silent = {s: v for s, v in self._silent.items() if v[0] > now}
            if len(self._silent) >= MAX_BACKOFF_ENTRIES:
                self._silent.clear()
        self._silent[server_kind] = (self.clock() + BACKOFF_FIRST, PROBE_RTO)
        server, kind = server_kind
        log.info(
            "%s#%d did not answer %s queries: not asked them again for %d s, then probed",
            server[0],
            server[1],
            dns.rdatatype.to_text(dns.rdatatype.RdataType(kind)) if kind else "other",
            BACKOFF_FIRST,
        )

    async def _one(
        self, server: tuple[str, int], wire: bytes, need: Need
    ) -> tuple[dns.message.Message, bytes] | None:
        for tcp in (False, True):
            self.upstream_queries += 1
            try:
                data = await self.transport(server, wire, tcp)
            except Expired as e:
                # Cut at the question's deadline: the server did not get its time, so
                # this is no sign that it is silent (no strike, no retransmission).
                log.debug("%s#%d: %s", server[0], server[1], e)
                return None
            except (OSError, TimeoutError, EOFError) as e:
                log.debug("%s#%d: %s", server[0], server[1], e)
                self._silence(server, need.rdtype)
                return None
            self._heard(server, need.rdtype)
            try:
                reply = read_reply(data, scrub=True)
            except dns.exception.DNSException as e:
                log.debug("%s#%d: %s", server[0], server[1], e)
                return None
            if not answers(reply, wire[:2], need):
                log.debug("%s#%d: reply does not match the query", server[0], server[1])
                return None
            if int(reply.flags) & _TC:
                if not tcp:
                    continue  # truncated: retry over TCP
                # Truncated over TCP too: a reply with TC is ignored (RFC 2181 s9) and
                # there is no larger transport to retry on; try the next server (Unbound
                # drops such a reply too).
                log.debug("%s#%d: truncated reply over TCP", server[0], server[1])
                return None
            return reply, data
        return None
