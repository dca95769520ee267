"""The validating recursive service: UDP and TCP listeners that answer with the resolver.

Only clients in the allow list (default: loopback) get answers; others get REFUSED.
Answers follow RFC 4035 s3.2 and RFC 8914: AD on secure data when the client set DO or AD;
bogus data is SERVFAIL with an Extended DNS Error unless the client set CD (then the data
is returned without AD); RRSIGs and NSEC records (with the proofs of wildcard answers)
only when DO is set.  CD is copied into the response (RFC 4035 s3.2.2), DO is echoed
(RFC 3225 s3) and the OPT record offers 1232 octets (DNS flag day 2020).  Anything with
QR set is a response, never answered (RFC 1035 s4.1.1; that is how reflection loops start).
A query with RD clear is not resolved: it gets the cached answer or a referral to the closest
servers known (RFC 1034 s4.3.1).

UDP responses made from cached results are kept rendered (:mod:`.listener`), so a repeated
question is answered by the listener thread, in C where the datagram loop is given,
without parsing the query or building a message.

Every query is counted (:mod:`.metrics`): here the responses the event loop sends (UDP and
TCP) with the verdict and EDE codes of those built from a result; the listener threads
count their rendered answers (the C loop in its own words); ``[resolver] http`` serves the
counts as ``/metrics`` (:mod:`.http`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
import signal
import socket
import struct
from collections.abc import Coroutine, Sequence
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal import aio
from dnsseal.proto.fastpath import (
    DO_BIT,
    HEADER,
    OPT_FIXED,
    OPT_TYPE,
    QR,
    SimpleQuery,
    encode_rrset,
    parse_simple,
)
from dnsseal.resolver import metrics as resolver_metrics
from dnsseal.resolver.cache import DEFAULT_MAX_BYTES
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.http import MetricsListener
from dnsseal.resolver.listener import (
    AnswerCache,
    DatagramLoop,
    UdpListener,
    fast_path_safe,
    udp_socket,
)
from dnsseal.resolver.metrics import TCP, UDP_LOOP, UDP_THREAD, QueryTable, ResolverMetrics
from dnsseal.resolver.transport import network_transport
from dnsseal.storage.remotes import Endpoint
from dnsseal.validator.machine import Config, Result
from dnsseal.validator.names import same_name
from dnsseal.validator.verdict import Security

log = logging.getLogger(__name__)

# Like BIND's allow-recursion default (localhost): not an open resolver unless asked.
DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")
DNSSEC_TYPES = {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}
PAYLOAD = 1232
QNAME_POINTER = b"\xc0\x0c"  # the question's name, at offset 12


def _response(query: dns.message.Message) -> dns.message.Message:
    """An empty response to ``query``: ID, question, RD and CD copied, RA set, and with
    EDNS when the query had it (DO echoed, our payload)."""
    resp = dns.message.make_response(query, our_payload=PAYLOAD)
    resp.flags |= dns.flags.RA | (query.flags & dns.flags.CD)
    if query.edns >= 0:
        resp.use_edns(0, query.ednsflags & dns.flags.DO, PAYLOAD)
    return resp


def _aged(rrsets: list[dns.rrset.RRset], age: int) -> list[dns.rrset.RRset]:
    if not age:
        return rrsets
    out = []
    for r in rrsets:
        out.append(dns.rrset.from_rdata_list(r.name, max(0, r.ttl - age), list(r)))
    return out


def build_response(query: dns.message.Message, result: Result, age: int = 0) -> dns.message.Message:
    """The client's response for ``result`` (see the module docstring for the rules), TTLs
    counted down by ``age`` seconds spent in the cache."""
    resp = _response(query)
    do = bool(query.ednsflags & dns.flags.DO)
    cd = bool(query.flags & dns.flags.CD)
    sec = result.verdict.security
    ede = result.verdict.ede
    if result.rcode == dns.rcode.SERVFAIL or (sec is Security.BOGUS and not cd):
        resp.set_rcode(dns.rcode.SERVFAIL)
        _add_ede(resp, query, ede if ede is not None else 0, result.verdict.reason)
        return resp
    resp.set_rcode(dns.rcode.Rcode.make(result.rcode))

    def keep(rrset: dns.rrset.RRset) -> bool:
        return do or rrset.rdtype not in DNSSEC_TYPES

    resp.answer = _aged([r for r in result.answer if keep(r)], age)
    # Negative answers' SOA and proofs, and the proofs of wildcard expansions.
    resp.authority = _aged([r for r in result.authority if keep(r)], age)
    if sec is Security.SECURE and (do or query.flags & dns.flags.AD):
        resp.flags |= dns.flags.AD
    if ede is not None:
        _add_ede(resp, query, ede, result.verdict.reason)
    return resp


def _add_ede(resp: dns.message.Message, query: dns.message.Message, code: int, text: str) -> None:
    if query.edns >= 0:
        resp.use_edns(
            0,
            query.ednsflags & dns.flags.DO,
            PAYLOAD,
            options=[dns.edns.EDEOption(dns.edns.EDECode.make(code), text[:200])],
        )


def plain_query(wire: bytes) -> SimpleQuery | None:
    """The question of a plain query the service may answer without dnspython's parser: one
    uncompressed question, not ANY, and no EDNS options (padding, cookies and the rest go
    the general way); None for anything else."""
    q = parse_simple(wire)
    if q is None or q.qtype == dns.rdatatype.ANY:
        return None
    if q.edns and q.question_end + 11 != len(wire):
        return None
    return q


_PLAIN_RCODES = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
_RA, _RD_CD, _AD = int(dns.flags.RA), int(dns.flags.RD | dns.flags.CD), int(dns.flags.AD)


def render_plain(wire: bytes, q: SimpleQuery, result: Result, age: int, tcp: bool) -> bytes | None:
    """``build_response`` and ``to_wire`` for a plain query, as bytes (names uncompressed);
    None when the response needs the general path: SERVFAIL or an EDE to carry, an rcode
    other than NOERROR or NXDOMAIN, or not fitting the client's size uncompressed (the
    general path compresses, or truncates)."""
    do = q.do
    cd = q.flags & dns.flags.CD
    sec = result.verdict.security
    if (
        result.rcode not in _PLAIN_RCODES
        or result.verdict.ede is not None
        or (sec is Security.BOGUS and not cd)
    ):
        return None
    limit = 65535 if tcp else max(512, q.payload if q.edns else 512)
    flags = QR | (q.flags & _RD_CD) | _RA | int(result.rcode)
    if sec is Security.SECURE and (do or q.flags & _AD):
        flags |= _AD
    parts = [b"", wire[12 : q.question_end]]
    size = q.question_end + (11 if q.edns else 0)
    counts = [0, 0]
    for i, section in enumerate((result.answer, result.authority)):
        for rrset in section:
            if not do and rrset.rdtype in DNSSEC_TYPES:
                continue
            data, count = _rrset_wire(rrset, age, q.qname)
            parts.append(data)
            counts[i] += count
            size += len(data)
    if size > limit:
        return None
    if q.edns:
        parts.append(b"\x00" + OPT_FIXED.pack(OPT_TYPE, PAYLOAD, DO_BIT if do else 0, 0))
    qid = wire[0] << 8 | wire[1]
    parts[0] = HEADER.pack(qid, flags, 1, counts[0], counts[1], int(q.edns))
    return b"".join(parts)


def _rrset_wire(rrset: dns.rrset.RRset, age: int, qname: dns.name.Name) -> tuple[bytes, int]:
    """``rrset``, its TTL counted down by ``age`` (not below 0): an owner equal to the
    question's name as a pointer to it (as dnspython's renderer writes it, so the client
    sees the owner in the question's case), every other name uncompressed."""
    ttl = max(0, rrset.ttl - age) if age else rrset.ttl
    owner = QNAME_POINTER if same_name(rrset.name, qname) else None
    return encode_rrset(rrset, owner, ttl)


class ResolverService:
    """Answers recursive queries; one task per query."""

    def __init__(
        self,
        resolver: Resolver,
        allow: Sequence[str] = DEFAULT_ALLOW,
        native: DatagramLoop | None = None,
        udp_threads: int = 1,
        metrics: ResolverMetrics | None = None,
    ) -> None:
        """``native``: the C datagram loop (``dnsseal.server._udpfast.Loop``) for the UDP
        threads, ``udp_threads`` of them per socket (counting in ``metrics``' query table
        when it was made with it)."""
        self.resolver = resolver
        self.metrics = metrics if metrics is not None else ResolverMetrics()
        self.allow = tuple(ipaddress.ip_network(n, strict=False) for n in allow)
        self.native = native
        self.udp_threads = udp_threads
        self.answers = AnswerCache()
        self._servers: list[asyncio.AbstractServer] = []
        self._listeners: list[UdpListener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    def allowed(self, client: str) -> bool:
        try:
            addr = ipaddress.ip_address(client.split("%", maxsplit=1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self.allow)

    async def handle(self, wire: bytes, tcp: bool, client: str = "127.0.0.1") -> bytes | None:
        """The wire response to one query from ``client`` (None: drop it), counted."""
        out = await self._answer(wire, tcp, client)
        self.metrics.count(TCP if tcp else UDP_LOOP, wire, out)
        return out

    async def _answer(self, wire: bytes, tcp: bool, client: str) -> bytes | None:
        if len(wire) < 12 or wire[2] & 0x80:
            return None  # too short to answer, or a response (QR=1): never answer those
        plain = plain_query(wire)
        if plain is not None and self.allowed(client):
            return await self._resolve(wire, None, plain, tcp)
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if not self.allowed(client):
            refused = _response(query)
            refused.flags &= ~dns.flags.RA
            refused.set_rcode(dns.rcode.REFUSED)
            return refused.to_wire()
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            resp = _response(query)
            resp.set_rcode(
                dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR
            )
            return resp.to_wire()
        q = query.question[0]
        if q.rdtype == dns.rdatatype.ANY:
            # RFC 8482: no ANY expansion; a small synthesized HINFO instead.
            resp = _response(query)
            resp.answer.append(dns.rrset.from_text(q.name, 3600, "IN", "HINFO", '"RFC8482" ""'))
            return resp.to_wire()
        return await self._resolve(wire, query, None, tcp)

    async def _resolve(
        self,
        wire: bytes,
        query: dns.message.Message | None,
        plain: SimpleQuery | None,
        tcp: bool,
    ) -> bytes:
        """Resolve the question of ``query`` (parsed by dnspython) or ``plain`` (read from
        ``wire`` by :func:`plain_query`) and render the answer."""
        if plain is not None:
            qname, qtype, flags = plain.qname, plain.qtype, plain.flags
        else:
            assert query is not None
            q = query.question[0]
            qname, qtype, flags = q.name, q.rdtype, query.flags
        answers = self.answers
        answers.tick(self.resolver.clock())
        generation = answers.generation
        try:
            if flags & dns.flags.RD:
                cd = bool(flags & dns.flags.CD)  # the SERVFAIL cache is keyed on it
                result, age = await self.resolver.resolve_client(qname, qtype, cd)
            else:
                result, age = await self._non_recursive(qname, qtype)
        except Exception:  # a bug must not take the service down; answer SERVFAIL
            log.exception("[%s] resolution failed", qname)
            resp = _response(query if query is not None else dns.message.from_wire(wire))
            resp.set_rcode(dns.rcode.SERVFAIL)
            return resp.to_wire()
        out = None if plain is None else render_plain(wire, plain, result, age, tcp)
        if out is not None:
            self.metrics.validated(result.verdict.security, ())
        else:
            if query is None:
                query = dns.message.from_wire(wire)
            resp = build_response(query, result, age)
            limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
            try:
                out = resp.to_wire(max_size=limit)
            except dns.exception.TooBig:
                resp.answer, resp.authority, resp.additional = [], [], []
                resp.flags |= dns.flags.TC
                out = resp.to_wire()
            self.metrics.validated(result.verdict.security, resp.options)
        if not tcp and self.resolver.is_cached(qname, qtype, self.resolver.clock()):
            answers.tick(self.resolver.clock())
            answers.put(wire, out, generation)
        return out

    async def _non_recursive(self, name: dns.name.Name, rdtype: int) -> tuple[Result, int]:
        """RD clear (RFC 1034 s4.3.1): the cached answer, else a referral to the closest
        servers known, as the validated NS RRset of their zone in the authority section
        (Unbound's allow_snoop answers).  The referral is judged like any answer: AD only
        when its NS RRset is secure, SERVFAIL when bogus."""
        hit = self.resolver.cached(name, rdtype, self.resolver.clock())
        if hit is not None:
            return hit
        ns = await self.resolver.referral(name)
        if ns.rcode != dns.rcode.NOERROR or not any(
            r.rdtype == dns.rdatatype.NS for r in ns.answer
        ):
            return dataclasses.replace(ns, qname=name, rdtype=rdtype), 0
        return dataclasses.replace(
            ns, qname=name, rdtype=rdtype, answer=(), authority=ns.answer, links=()
        ), 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on UDP and TCP ``port`` (0: one free for both)."""
        for attempt in range(20):
            sock = udp_socket(host, port)
            bound = sock.getsockname()
            try:
                server = await asyncio.start_server(self._tcp_client, host, bound[1])
            except OSError:
                sock.close()
                if port or attempt == 19:
                    raise
                continue  # the kernel's free UDP port is taken for TCP: try another
            break
        self._servers.append(server)
        try:
            self._listen_udp(sock, host)
        except BaseException:
            sock.close()
            await self.close()
            raise
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
        log.info("resolver listening on %s port %d", host, bound[1])
        return host, int(bound[1])

    def _listen_udp(self, sock: socket.socket, host: str) -> None:
        loop = asyncio.get_running_loop()

        def slow(data: bytes, addr: tuple[object, ...]) -> None:
            async def answer() -> None:
                out = await self.handle(data, False, str(addr[0]))
                if out is not None:
                    with contextlib.suppress(OSError):  # UDP may drop
                        sock.sendto(out, addr)

            self._spawn(answer())

        bound = str(sock.getsockname()[0])  # the address, also when --listen named a host
        native = self.native if fast_path_safe(bound, self.allow) else None
        if self.native is not None and native is None:
            log.info(
                "resolver: %s is not limited to allowed clients: UDP loop in Python",
                host,
            )
        queries = self.metrics.queries  # called per answer: no indirection
        count = None if queries is None else functools.partial(queries.count, UDP_THREAD)
        listener = UdpListener(
            sock,
            self.answers,
            loop,
            slow,
            self.allowed,
            native,
            self.udp_threads,
            count,
        )
        listener.start()
        self._listeners.append(listener)

    async def _tick(self) -> None:
        """Empty the rendered responses when the clock's second changes (TTLs count down)."""
        while True:
            self.answers.tick(self.resolver.clock())
            await asyncio.sleep(0.05)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        try:
            while True:
                try:
                    (length,) = struct.unpack("!H", await aio.wait_for(reader.readexactly(2), 30))
                    data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                await asyncio.sleep(0)  # (one loop turn per query: see the server's TCP loop)
                out = await self.handle(data, True, client)
                if out is None:
                    return
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for listener in self._listeners:
            await asyncio.get_running_loop().run_in_executor(None, listener.stop)
        for s in self._servers:
            s.close()
            await s.wait_closed()
        for task in list(self._tasks):
            task.cancel()


def _formerr(wire: bytes) -> bytes:
    qid, flags = struct.unpack("!HH", wire[:4])
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | dns.rcode.FORMERR, 0, 0, 0, 0)


async def serve_forever(
    config: Config,
    host: str,
    port: int,
    *,
    timeout: float = 2.0,
    state_file: Path | None = None,
    allow: Sequence[str] = (),
    aggressive_nsec: bool = False,
    cache_bytes: int = DEFAULT_MAX_BYTES,
    native: DatagramLoop | None = None,
    udp_threads: int = 1,
    queries: QueryTable | None = None,
    http: tuple[Endpoint, ...] = (),
) -> None:
    """Serve until SIGINT or SIGTERM.  With ``state_file``, managed (initial-*) trust
    anchors are kept current by RFC 5011 and their state persisted there.  ``queries``:
    the query counters (``native`` adds to them too); ``http``: where ``/metrics`` is
    served (none: nowhere).  The root is primed as soon as the listeners are ready
    (:meth:`Resolver.prime`), not at the first question, and with a root trust anchor its
    DNSKEY RRset is fetched and validated right after (the first question's chain walk
    and the RFC 5011 maintainer's first refresh find it cached).  Raises StorageError
    when an address cannot be bound."""
    from dnsseal.resolver.trustmaint import TrustMaintainer
    from dnsseal.resolver.warmup import warm_up

    try:
        log.info("[resolver] warm-up done in %.1f ms", await warm_up())
    except AssertionError as e:  # the service still runs; the first queries are slower
        log.error("[resolver] warm-up failed: %s", e)
    metrics = ResolverMetrics(queries)
    resolver = Resolver(
        config,
        metrics.counted(network_transport(timeout)),
        aggressive_nsec=aggressive_nsec,
        cache_bytes=cache_bytes,
    )
    service = ResolverService(resolver, allow or DEFAULT_ALLOW, native, udp_threads, metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # (ours before a listener answers)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await service.start(host, port)
    # In the background: the listeners are ready, a question waits for it (priming, then
    # the root's DNSKEY RRset when the root has a trust anchor).
    resolver.prime()
    listener = MetricsListener(functools.partial(resolver_metrics.render, service), http)
    try:
        await listener.start()
    except BaseException:
        await service.close()
        raise
    maint = None
    if state_file is not None:
        maint = asyncio.ensure_future(
            TrustMaintainer(resolver, config.anchors, state_file).run(stop)
        )
    await stop.wait()
    if maint is not None:
        await maint
    await listener.stop()
    await service.close()
