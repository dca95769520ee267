"""The resolver's counters and its ``/metrics`` page (Prometheus text format 0.0.4, written
with :mod:`dnsseal.exposition` like the authoritative server's).

What is counted, and where:

* queries, by transport, question type and the response's rcode, in the query counters of
  :class:`dnsseal.server.counters.QueryCounts` (one table per writer, so no two threads add
  to the same word without the GIL between them).  The command layer makes the table and
  gives it here (this layer does not import the server's) together with the C datagram
  loop, which adds the responses it sends from the rendered-response cache to the table's
  region :data:`C_LOOP` itself, no Python call per datagram.  The listener threads of the
  Python loop count theirs in :data:`UDP_THREAD`, the event loop its UDP answers in
  :data:`UDP_LOOP` and its TCP answers in :data:`TCP`;
* the validator's verdict and the Extended DNS Error codes sent, once per response the
  resolution path builds (:meth:`ResolverMetrics.validated`).  A response rendered from a
  cached result is also kept for the rest of that second and sent again to the same question
  by the listener threads (in C) without asking Python; those repeats are counted in the
  query table and in ``dnsseal_resolver_rendered_answers_total``, not here again: the C
  loop does not know a response's verdict;
* upstream exchanges by transport and outcome (:meth:`ResolverMetrics.counted`, a wrapper
  of the resolver's transport);
* the caches' entries, accounted bytes, hits, misses and evictions are read from the
  resolver at scrape time, and so are the failure cache's (servfail-ttl, RFC 9520) entries
  and the client questions it answered.

The numbers below repeat the layout of ``dnsseal.server.counters`` (tests check they agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype

from dnsseal import clock
from dnsseal.exposition import CONTENT_TYPE, Exposition, process_families
from dnsseal.resolver.cache import Cache
from dnsseal.resolver.transport import Expired, Server, Transport
from dnsseal.validator.verdict import Security

if TYPE_CHECKING:
    from dnsseal.resolver.service import ResolverService

__all__ = ["CONTENT_TYPE", "QueryTable", "ResolverMetrics", "render"]

# dnsseal.server.counters: the regions (writers) of a slot, the rows and columns of a table.
C_LOOP, UDP_THREAD, UDP_LOOP, TCP = 0, 1, 2, 3
QT_OTHER, QT_NONE = 264, 265
RC_DROPPED = 16


class QueryTable(Protocol):
    """The query counters (``dnsseal.server.counters.QueryCounts``) as used here."""

    def count(self, region: int, query: bytes, response: bytes | None) -> None: ...

    def totals(self) -> tuple[dict[tuple[str, int, int], int], int]: ...


class ResolverMetrics:
    """The resolver's counters; every method but :meth:`count` runs on the event loop."""

    def __init__(self, queries: QueryTable | None = None) -> None:
        """``queries``: the query table the C datagram loop (if any) also adds to; None:
        queries are not counted."""
        self.queries = queries
        self.started_at = clock.now()
        self.validation: dict[Security, int] = dict.fromkeys(Security, 0)
        self.ede: dict[int, int] = {}
        self.upstream: dict[tuple[str, str], int] = {}

    def count(self, region: int, query: bytes, response: bytes | None) -> None:
        """One query answered with ``response`` (None: dropped) by ``region``'s writer."""
        if self.queries is not None:
            self.queries.count(region, query, response)

    def validated(self, security: Security, options: Sequence[dns.edns.Option]) -> None:
        """A response built from a validated result: its verdict and the EDE codes of its
        EDNS ``options`` (none when the client sent no EDNS)."""
        self.validation[security] += 1
        for option in options:
            if isinstance(option, dns.edns.EDEOption):
                code = int(option.code)
                self.ede[code] = self.ede.get(code, 0) + 1

    def counted(self, transport: Transport) -> Transport:
        """``transport`` with every exchange counted by transport and outcome: ``answered``
        (a reply came), ``timeout``, ``deadline`` (the client question's
        resolver-query-timeout ended the wait first), or ``error`` (refused, reset, cut
        short)."""

        upstream = self.upstream

        def count(proto: str, outcome: str) -> None:
            upstream[proto, outcome] = upstream.get((proto, outcome), 0) + 1

        async def exchange(server: Server, wire: bytes, tcp: bool) -> bytes:
            proto = "tcp" if tcp else "udp"
            try:
                reply = await transport(server, wire, tcp)
            except Expired:
                count(proto, "deadline")
                raise
            except TimeoutError:
                count(proto, "timeout")
                raise
            except Exception:  # a cancelled exchange (BaseException) is not counted
                count(proto, "error")
                raise
            count(proto, "answered")
            return reply

        return exchange


def _qtype_label(row: int) -> str:
    if row == QT_OTHER:
        return "other"
    if row == QT_NONE:
        return "none"
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(row))


def _rcode_label(column: int) -> str:
    if column == RC_DROPPED:
        return "dropped"
    try:
        return dns.rcode.to_text(dns.rcode.Rcode(column))
    except ValueError:
        return str(column)


Samples = Iterable[tuple[Mapping[str, str], float]]


def _caches(ex: Exposition, caches: Mapping[str, Cache]) -> None:
    def each(attr: str) -> Samples:
        return [({"cache": k}, getattr(c, attr)) for k, c in caches.items()]

    ex.family(
        "dnsseal_resolver_cache_entries",
        "gauge",
        'Entries in the cache: "replies" (upstream replies), "results" (validated results).',
        [({"cache": k}, len(c)) for k, c in caches.items()],
    )
    ex.family(
        "dnsseal_resolver_cache_bytes",
        "gauge",
        "Memory the cache accounts for (an estimate: payload octets plus a fixed overhead "
        "per entry); entries are dropped least recently used above the limit.",
        each("bytes"),
    )
    ex.family(
        "dnsseal_resolver_cache_max_bytes",
        "gauge",
        "The cache's memory limit (half of resolver.cache-size each).",
        each("max_bytes"),
    )
    ex.family("dnsseal_resolver_cache_hits_total", "counter", "Lookups found.", each("hits"))
    ex.family(
        "dnsseal_resolver_cache_misses_total",
        "counter",
        "Lookups not found or expired.",
        each("misses"),
    )
    ex.family(
        "dnsseal_resolver_cache_evictions_total",
        "counter",
        "Entries dropped for room before they expired.",
        each("evicted"),
    )


def render(service: ResolverService) -> str:
    """One scrape of ``service``."""
    m = service.metrics
    ex = Exposition()
    ex.family(
        "dnsseal_validation_total",
        "counter",
        "The validator's verdicts of the responses the resolver built for clients (secure, "
        "insecure, bogus, indeterminate); repeats sent from the rendered-response cache "
        "within the same second are not counted again.",
        [({"result": s.value}, n) for s, n in m.validation.items()],
    )
    ex.family(
        "dnsseal_ede_total",
        "counter",
        "Extended DNS Error codes (RFC 8914) in the responses the resolver built for clients.",
        [({"code": str(c)}, n) for c, n in sorted(m.ede.items())],
    )
    table: dict[tuple[str, int, int], int] = {}
    truncated = 0
    if m.queries is not None:
        table, truncated = m.queries.totals()
    ex.family(
        "dnsseal_resolver_queries_total",
        "counter",
        "Queries received, by transport, question type and the response's rcode (every "
        'answer path, the C datagram loop included; rcode "dropped": no response sent, '
        'qtype "none": no question, "other": a type above 263).',
        [
            ({"proto": proto, "qtype": _qtype_label(qt), "rcode": _rcode_label(rc)}, n)
            for (proto, qt, rc), n in sorted(table.items())
        ],
    )
    ex.family(
        "dnsseal_resolver_responses_truncated_total",
        "counter",
        "Responses sent with the TC bit (too large for the client's UDP payload).",
        [({}, truncated)],
    )
    ex.family(
        "dnsseal_resolver_rendered_answers_total",
        "counter",
        "UDP queries answered by the listener threads from responses rendered within the "
        "same second (no resolution, no validation).",
        [({}, service.answers.hits)],
    )
    ex.family(
        "dnsseal_resolver_upstream_queries_total",
        "counter",
        "Queries sent to authoritative servers (or forwarders), by transport and outcome: "
        "answered, timeout, deadline (resolver-query-timeout ended the wait), error.",
        [({"proto": p, "result": r}, n) for (p, r), n in sorted(m.upstream.items())],
    )
    resolver = service.resolver
    _caches(ex, {"replies": resolver.cache, "results": resolver.results})
    ex.family(
        "dnsseal_resolver_servfail_cache_answers_total",
        "counter",
        "Client questions answered SERVFAIL from the failure cache (servfail-ttl, RFC 9520) "
        "without resolving them again.",
        [({}, resolver.failure_answers)],
    )
    ex.family(
        "dnsseal_resolver_servfail_cache_entries",
        "gauge",
        "Client questions whose failed resolution the failure cache holds: answering them, "
        "or remembered for a while after, so a persistent failure is kept longer next time "
        "(expired ones until they are looked up again, as in the other caches).",
        [({}, len(resolver.failures))],
    )
    process_families(ex, m.started_at)
    return ex.text()
