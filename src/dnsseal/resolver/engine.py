"""The resolver: drives :class:`dnsseal.validator.machine.Query` with a transport, a cache
and a clock.

Every :class:`~dnsseal.validator.machine.Need` becomes one query (EDNS0 with DO and CD,
RD clear, 1232-octet payload) to the listed servers in turn; a truncated UDP reply is
retried over TCP; SERVFAIL, REFUSED, FORMERR, timeouts and replies that do not match the
question move on to the next server.  Replies are cached per (name, type, zone) for their
TTL; final results per (name, type) for the smallest TTL of their records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnsseal import clock
from dnsseal.resolver.cache import Cache, reply_ttl
from dnsseal.resolver.transport import Transport, network_transport
from dnsseal.validator.machine import Config, Need, Query, Result
from dnsseal.validator.trustcache import TrustCache

log = logging.getLogger(__name__)

PAYLOAD = 1232
RETRY_RCODES = {dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.NOTIMP}
MAX_SERVERS_PER_NEED = 4


class Resolver:
    """Resolve and validate; ``clock`` returns epoch seconds (pin it in tests)."""

    def __init__(
        self,
        config: Config,
        transport: Transport | None = None,
        clock_fn: Callable[[], int] = clock.now,
        cache: Cache | None = None,
    ) -> None:
        if config.trust_cache is None:
            config = dataclasses.replace(config, trust_cache=TrustCache())
        self.config = config
        self.transport = transport or network_transport()
        self.clock = clock_fn
        self.cache = cache if cache is not None else Cache()
        self.results = Cache()
        self.upstream_queries = 0
        self._inflight: dict[tuple[dns.name.Name, int], asyncio.Future[Result]] = {}

    def with_config(self, config: Config) -> None:
        """Swap the configuration (new anchors); cached results are dropped (trusted key
        sets stay: they are keyed by the anchors they were validated with)."""
        if config.trust_cache is None:
            config = dataclasses.replace(config, trust_cache=self.config.trust_cache)
        self.config = config
        self.results = Cache()

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
        t = int(dns.rdatatype.RdataType.make(rdtype))
        now = self.clock()
        cached = self.results.get((name, t), now)
        if isinstance(cached, tuple):
            stored, result = cached
            return result, max(0, now - stored)
        return await self._shared(name, t), 0

    async def _shared(self, name: dns.name.Name, t: int) -> Result:
        key = (name, t)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self._resolve(name, t))
        self._inflight[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight.pop(key, None)
            else:
                task.add_done_callback(lambda _: self._inflight.pop(key, None))

    async def _resolve(self, name: dns.name.Name, t: int) -> Result:
        now = self.clock()
        query = Query(name, t, self.config, now)
        step = query.start()
        while isinstance(step, Need):
            reply = await self.exchange(step)
            step = query.feed(reply)
        ttls = [r.ttl for r in (*step.answer, *step.authority)]
        if step.rcode != dns.rcode.SERVFAIL and ttls:
            self.results.put((name, t), (now, step), min(ttls), now)
        return step

    async def exchange(self, need: Need) -> dns.message.Message | None:
        """One upstream question, from the cache or the first server that answers."""
        key = (need.qname, need.rdtype, need.zone)
        now = self.clock()
        cached = self.cache.get(key, now)
        if isinstance(cached, dns.message.Message):
            return cached
        query = dns.message.make_query(
            need.qname,
            dns.rdatatype.RdataType.make(need.rdtype),
            use_edns=0,
            want_dnssec=True,
            payload=PAYLOAD,
        )
        query.flags &= ~dns.flags.RD
        query.flags |= dns.flags.CD
        wire = query.to_wire()
        for server in need.servers[:MAX_SERVERS_PER_NEED]:
            reply = await self._one(server, wire, query)
            if reply is None or reply.rcode() in RETRY_RCODES:
                continue
            self.cache.put(key, reply, reply_ttl(reply, self.cache.max_ttl), now)
            return reply
        return None

    async def _one(
        self, server: tuple[str, int], wire: bytes, query: dns.message.Message
    ) -> dns.message.Message | None:
        for tcp in (False, True):
            self.upstream_queries += 1
            try:
                data = await self.transport(server, wire, tcp)
                reply = dns.message.from_wire(data, question_only=False)
            except (OSError, TimeoutError, EOFError, dns.exception.DNSException) as e:
                log.debug("%s#%d: %s", server[0], server[1], e)
                return None
            if not query.is_response(reply):
                log.debug("%s#%d: reply does not match the query", server[0], server[1])
                return None
            if reply.flags & dns.flags.TC and not tcp:
                continue  # truncated: retry over TCP
            return reply
        return None
