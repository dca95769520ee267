"""The query engine: query bytes in, response bytes out.

:class:`Engine` holds the served zones (current snapshot, retained older versions, transfer
ACL), the TSIG keyring and an answer cache.  :meth:`Engine.handle` is everything the server
does with a packet; sockets only frame bytes.  It never raises on hostile input: what cannot
be parsed gets FORMERR (or nothing, when not even the header is there), what we do not do gets
NOTIMP, names outside our zones get REFUSED.

Answers are cached as wire bytes keyed by transport and the query bytes after the ID (which
hold the flags, the question and the EDNS record), so a hit costs one dict lookup and a
two-byte patch of the ID.  A change to one zone drops only the answers it can have made:
those to a question at or below its origin (:meth:`Engine.replace_zone`).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset
import dns.tsig

from dnsseal.proto.acl import Acl
from dnsseal.proto.answer import Answer, lookup
from dnsseal.proto.fastpath import SimpleQuery, parse_simple, render_simple
from dnsseal.proto.snapshot import ZoneSnapshot, name_key
from dnsseal.proto.tsigauth import check_request
from dnsseal.proto.wiretable import WireTable
from dnsseal.proto.xfr import IxfrSource, Retained, refused, transfer
from dnsseal.zone.canonical import name_wire

log = logging.getLogger(__name__)

DEFAULT_UDP_PAYLOAD = 1232  # RFC 9715 / DNS flag day 2020
MIN_UDP_PAYLOAD = 512
TCP_MAX = 65535
CACHE_LIMIT = 200_000
# A zone's change drops its cached answers by reading every cached question (each cache
# holds answers of every zone): above this many entries the cache is dropped whole
# instead, so a change costs at most this many reads whatever the cache holds.
FILTER_LIMIT = 10_000  # (about 1 us per entry: 10 ms per cache at most)

IN = dns.rdataclass.IN
DS = dns.rdatatype.DS
XFR_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}
# Types that cannot be asked for in a plain query (RFC 6895 meta-types) -> rcode.
META_QTYPES = {
    dns.rdatatype.OPT: dns.rcode.FORMERR,
    dns.rdatatype.TSIG: dns.rcode.FORMERR,
    dns.rdatatype.TKEY: dns.rcode.NOTIMP,
    dns.rdatatype.MAILA: dns.rcode.NOTIMP,
    dns.rdatatype.MAILB: dns.rcode.NOTIMP,
}
ECHO_FLAGS = dns.flags.RD | dns.flags.CD


@dataclass(frozen=True, slots=True)
class ServedZone:
    """A zone as the engine serves it: the current snapshot, older versions kept for IXFR
    (oldest first) and who may transfer it."""

    snapshot: ZoneSnapshot
    history: tuple[Retained, ...] = ()  # snapshots, or steps to the next (VersionStep)
    allow_transfer: Acl = field(default_factory=Acl)
    # A zone answered online (a signaling zone, dnsseal.proto.signaling.online_answer):
    # (snapshot, qname, qtype, do, lookup's answer) -> the answer to send.  Such a zone
    # stays out of the byte table, so every answer of it comes through here.
    online: Callable[[ZoneSnapshot, dns.name.Name, int, bool, Answer], Answer] | None = None
    # A secondary's copy past its SOA expire: every query and transfer gets SERVFAIL (as
    # BIND), and the byte tables leave the zone to the general path.
    expired: bool = False


@dataclass(slots=True)
class Stats:
    """Counters for `dnsseal ctl status`."""

    queries: int = 0
    cache_hits: int = 0
    formerr: int = 0
    dropped: int = 0
    refused: int = 0
    transfers: int = 0
    by_rcode: dict[int, int] = field(default_factory=dict)  # rcode -> count


class Engine:
    """Answers queries for a set of zones, one per event loop.  Zone transfers may be run
    in a helper thread: that path only reads the zone set and never touches the cache."""

    def __init__(
        self,
        zones: Mapping[dns.name.Name, ServedZone] | None = None,
        keyring: Mapping[dns.name.Name, dns.tsig.Key] | None = None,
        udp_payload: int = DEFAULT_UDP_PAYLOAD,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.zones: dict[dns.name.Name, ServedZone] = dict(zones or {})
        self.zone_keys = {name_key(n): z for n, z in self.zones.items()}
        self.keyring: dict[dns.name.Name, dns.tsig.Key] = dict(keyring or {})
        self.udp_payload = udp_payload
        # TSIG time checks only (RFC 8945 5.2.3).  proto never reads the wall clock: the
        # server passes dnsseal.clock.now, tests pin it; without keys no time is needed.
        self.clock = clock
        self._need_clock()
        self.cache: dict[tuple[bool, bytes], bytes] = {}
        # The UDP listener's cache of byte-path responses: query after the ID -> response
        # after the ID.  Emptied with the zone set.
        self.udp_cache: dict[bytes, bytes] = {}
        self.stats = Stats()
        self.wire = WireTable(
            (z.snapshot for z in self.zones.values() if z.online is None and not z.expired),
            self.stats.by_rcode,
        )
        self.older_versions: IxfrSource | None = None  # IXFR history beyond memory
        # Secondaries configured but without a copy yet (name keys): SERVFAIL, as BIND,
        # rather than REFUSED (a zone we do not serve).
        self.pending: frozenset[tuple[bytes, ...]] = frozenset()

    def _need_clock(self) -> None:
        if self.keyring and self.clock is None:
            raise ValueError("Engine: a TSIG keyring needs a clock (TSIG time checks)")

    def set_zones(
        self,
        zones: Mapping[dns.name.Name, ServedZone],
        keyring: Mapping[dns.name.Name, dns.tsig.Key] | None = None,
    ) -> None:
        """Swap in a new zone set (and keyring); queries after this see only the new one.
        Only the zones that changed are rebuilt (:meth:`replace_zone`); finding them costs
        one comparison per zone."""
        if keyring is not None:
            self.keyring = dict(keyring)
            self._need_clock()
        changed = [o for o in self.zones if o not in zones]
        changed += [o for o, served in zones.items() if self.zones.get(o) is not served]
        for origin in changed:
            self._replace(origin, zones.get(origin))
        if changed:
            self._drop_cached(changed)

    def replace_zone(self, origin: dns.name.Name, served: ServedZone | None) -> None:
        """Serve ``served`` as the zone at ``origin`` (None: stop serving it).  Costs the
        work of that zone, whatever the number of zones served; the cached answers of the
        other zones stay."""
        self.replace_zones([(origin, served)])

    def replace_zones(self, zones: Iterable[tuple[dns.name.Name, ServedZone | None]]) -> None:
        """:meth:`replace_zone` for each (origin, version) of ``zones``, the cached answers
        filtered once for them all (a filter costs the cache's size, whatever the number
        of origins: a start serving its zones a batch at a time filters once a batch)."""
        origins = []
        for origin, served in zones:
            self._replace(origin, served)
            origins.append(origin)
        if origins:
            self._drop_cached(origins)

    def _replace(self, origin: dns.name.Name, served: ServedZone | None) -> None:
        if served is None:
            self.zones.pop(origin, None)
            self.zone_keys.pop(name_key(origin), None)
        else:
            self.zones[origin] = served
            self.zone_keys[name_key(origin)] = served
        # online and expired zones answer through the general path only
        byte_path = served is not None and served.online is None and not served.expired
        self.wire.replace_zone(origin, served.snapshot if served and byte_path else None)

    def _drop_cached(self, origins: Iterable[dns.name.Name]) -> None:
        """Drop the cached answers the zones at ``origins`` can have made, once their
        tables are complete: an answer comes from one zone (:meth:`find_zone`, chains
        stay inside it), the deepest at or above its question, so only the questions at
        or below a changed origin (a zone added or removed changes who answers below it
        too) can have another answer now.

        The UDP thread reads udp_cache once per batch, then wire (whose dicts changed in
        place): each cache is replaced by a filtered copy, never changed in place, so an
        answer made from the old version of a zone lands in the dict being dropped, and
        one put in it before the copy is filtered out with the zone's other answers."""
        under = frozenset(name_wire(o) for o in origins)
        self.cache = _without(self.cache, under, True)
        self.udp_cache = _without(self.udp_cache, under, False)

    def set_all_pending(self, origins: Iterable[dns.name.Name]) -> None:
        """Every zone waiting for its first data (see :meth:`set_pending`)."""
        pending = frozenset(name_key(o) for o in origins)
        if pending != self.pending:
            self.pending = pending
            self.cache = {}

    def set_pending(self, origin: dns.name.Name, pending: bool) -> None:
        """Mark the zone at ``origin`` as configured here but without data yet (a secondary
        before its first transfer): SERVFAIL until it is served, as BIND."""
        key = name_key(origin)
        if (key in self.pending) != pending:
            self.pending = self.pending | {key} if pending else self.pending - {key}
            self.cache = _without(self.cache, frozenset([name_wire(origin)]), True)

    def _is_pending(self, qname: dns.name.Name) -> bool:
        qk = name_key(qname)
        return any(qk[i:] in self.pending for i in range(len(qk)))

    # -- entry point ----------------------------------------------------------------------

    def handle(self, wire: bytes, tcp: bool, client: str = "") -> list[bytes]:
        """The response messages for one query (empty: send nothing).  ``client`` is the
        source address, used only for transfer ACLs."""
        self.stats.queries += 1
        key = (tcp, wire[2:])
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return [wire[:2] + hit]
        if len(wire) < 12 or wire[2] & 0x80:  # no header, or a response: never answer
            self.stats.dropped += 1
            return []
        fast = self.wire.answer(wire, tcp, self.udp_payload)
        if fast is not None:
            self._remember(key, fast)
            return [fast]
        simple = parse_simple(wire)
        if simple is not None:
            fast = self._fast(wire, simple, tcp)
            if fast is not None:
                self._remember(key, fast)
                return [fast]
        try:
            checked = check_request(wire, self.keyring, self.clock() if self.clock else 0)
        except Exception:  # any parse failure of hostile bytes is FORMERR, never a crash
            self.stats.formerr += 1
            # An opcode we do not implement is NOTIMP whatever its body (RFC 1035 4.1.1).
            opcode = (wire[2] >> 3) & 0xF
            rcode = dns.rcode.FORMERR if opcode == dns.opcode.QUERY else dns.rcode.NOTIMP
            return [_header_only(wire, rcode)]
        if checked.message is None:
            assert checked.response is not None
            log.info("[server] TSIG from %s: %s", client, checked.reason)
            return [checked.response]
        query = checked.message
        out = self._dispatch(query, wire, tcp, client)
        # Never cache what depends on who asks: transfers go through the ACL every time.
        cacheable = not query.had_tsig and not (
            query.question and query.question[0].rdtype in XFR_TYPES
        )
        if out and cacheable and len(out) == 1:
            self._remember(key, out[0])
        return out

    def _remember(self, key: tuple[bool, bytes], response: bytes) -> None:
        cache = self.cache
        if len(cache) >= CACHE_LIMIT:
            # Dropped whole rather than oldest first: one C call, so a UDP thread and the
            # event loop sharing this engine can never see the dict mid-iteration.
            cache.clear()
        cache[key] = response[2:]

    def _fast(self, wire: bytes, q: SimpleQuery, tcp: bool) -> bytes | None:
        """Answer a plain query without dnspython messages; None: use the general path."""
        if q.qclass != IN or q.qtype in XFR_TYPES or q.qtype in META_QTYPES:
            return None
        served = self.find_zone(q.qname, q.qtype)
        if served is None or served.expired:
            return None
        snap = served.snapshot
        ans = lookup(snap, q.qname, q.qtype, q.do, tcp)
        if served.online is not None:
            ans = served.online(snap, q.qname, q.qtype, q.do, ans)
        if tcp:
            max_size = TCP_MAX
        elif not q.edns:
            max_size = MIN_UDP_PAYLOAD
        else:
            max_size = max(MIN_UDP_PAYLOAD, min(q.payload, self.udp_payload))
        sections = (_dedup(ans.answer), _dedup(ans.authority), _dedup(ans.additional))
        out = render_simple(wire, q, snap, ans, sections, max_size, self.udp_payload)
        if out is None:
            return None  # too big uncompressed: the general path compresses or truncates
        by_rcode = self.stats.by_rcode
        by_rcode[ans.rcode] = by_rcode.get(ans.rcode, 0) + 1
        return out

    def _dispatch(
        self, query: dns.message.Message, wire: bytes, tcp: bool, client: str
    ) -> list[bytes]:
        if query.edns > 0:
            return [self._error(query, dns.rcode.BADVERS, tcp)]
        if query.opcode() != dns.opcode.QUERY:
            return [self._error(query, dns.rcode.NOTIMP, tcp)]
        if len(query.question) != 1 or query.answer:
            return [self._error(query, dns.rcode.FORMERR, tcp)]
        q = query.question[0]
        if q.rdtype in XFR_TYPES:
            return self._xfr(query, tcp, client)
        if q.rdtype in META_QTYPES:
            return [self._error(query, META_QTYPES[q.rdtype], tcp)]
        if q.rdclass != IN:
            return [self._error(query, dns.rcode.REFUSED, tcp)]
        served = self.find_zone(q.name, q.rdtype)
        if served is None and self.pending and self._is_pending(q.name):
            return [self._error(query, dns.rcode.SERVFAIL, tcp)]
        if served is None:
            self.stats.refused += 1
            return [self._error(query, dns.rcode.REFUSED, tcp)]
        if served.expired:
            return [self._error(query, dns.rcode.SERVFAIL, tcp)]
        do = query.edns >= 0 and bool(query.ednsflags & dns.flags.DO)
        ans = lookup(served.snapshot, q.name, q.rdtype, do, tcp)
        if served.online is not None:
            ans = served.online(served.snapshot, q.name, q.rdtype, do, ans)
        by_rcode = self.stats.by_rcode
        by_rcode[ans.rcode] = by_rcode.get(ans.rcode, 0) + 1
        if query.had_tsig:
            return [_render_message(query, ans, self._max_size(query, tcp))]
        return [render(wire, q.name, q.rdtype, q.rdclass, ans, query, self._max_size(query, tcp))]

    def find_zone(self, qname: dns.name.Name, qtype: int) -> ServedZone | None:
        """The deepest served zone containing ``qname``; for DS at a zone apex, the parent
        zone if we serve it (DS belongs to the parent side, RFC 4035 3.1.4.1)."""
        qk = name_key(qname)
        by_key = self.zone_keys
        start = 0
        if qtype == DS and qk in by_key and len(qk) > 1:
            start = 1
        for i in range(start, len(qk)):
            served = by_key.get(qk[i:])
            if served is not None:
                return served
        if start:  # no parent zone here: the child answers (NODATA at its apex)
            return by_key.get(qk)
        return None

    def _max_size(self, query: dns.message.Message, tcp: bool) -> int:
        if tcp:
            return TCP_MAX
        if query.edns < 0:
            return MIN_UDP_PAYLOAD
        return max(MIN_UDP_PAYLOAD, min(query.payload, self.udp_payload))

    def _error(self, query: dns.message.Message, rcode: int, tcp: bool) -> bytes:
        response = dns.message.make_response(query, our_payload=self.udp_payload)
        response.flags &= ~dns.flags.AA
        if rcode == dns.rcode.BADVERS:
            response.use_edns(0, 0, self.udp_payload)
        elif query.edns >= 0:
            response.use_edns(0, query.ednsflags & dns.flags.DO, self.udp_payload)
        response.set_rcode(dns.rcode.Rcode(rcode))
        return response.to_wire(max_size=self._max_size(query, tcp))

    def _xfr(self, query: dns.message.Message, tcp: bool, client: str) -> list[bytes]:
        q = query.question[0]
        served = self.zones.get(q.name)
        if served is None and name_key(q.name) in self.pending:
            return [self._error(query, dns.rcode.SERVFAIL, tcp)]
        if served is None:
            return [self._error(query, dns.rcode.NOTAUTH, tcp)]
        if not tcp and q.rdtype == dns.rdatatype.AXFR:
            return [self._error(query, dns.rcode.FORMERR, tcp)]  # RFC 5936 4.2: TCP only
        if served.expired:
            return [self._error(query, dns.rcode.SERVFAIL, tcp)]
        zone = served.snapshot.origin.to_text()
        keyname = query.keyname if query.had_tsig else None
        if not served.allow_transfer.allows(client, keyname):
            log.info("[%s] transfer refused to %s (key %s)", zone, client, keyname)
            return [refused(query)]
        if not tcp:
            # RFC 1995 2: IXFR over UDP gets the current SOA; the client retries over TCP.
            return transfer_soa_only(query, served.snapshot)
        self.stats.transfers += 1
        log.info(
            "[%s] %s to %s serial %d",
            zone,
            dns.rdatatype.to_text(q.rdtype),
            client,
            served.snapshot.serial,
        )
        return transfer(query, served.snapshot, served.history, self.older_versions)


def transfer_soa_only(query: dns.message.Message, snap: ZoneSnapshot) -> list[bytes]:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.answer = [snap.apex.rrsets[dns.rdatatype.SOA]]
    return [response.to_wire(max_size=65535)]


def _header_only(wire: bytes, rcode: int) -> bytes:
    """A bare response header (no sections) echoing the ID, opcode and RD of ``wire``."""
    qid, flags = struct.unpack_from("!HH", wire)
    flags = (flags & (0x7800 | dns.flags.RD)) | dns.flags.QR | (rcode & 0xF)
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def _sections(ans: Answer) -> Sequence[tuple[int, list[dns.rrset.RRset]]]:
    return (
        (dns.renderer.ANSWER, _dedup(ans.answer)),
        (dns.renderer.AUTHORITY, _dedup(ans.authority)),
        (dns.renderer.ADDITIONAL, _dedup(ans.additional)),
    )


def _dedup(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """Drop repeats (the same NSEC can both match and cover); repeats are the same object."""
    seen: set[int] = set()
    out = []
    for r in rrsets:
        if id(r) not in seen:
            seen.add(id(r))
            out.append(r)
    return out


def render(
    wire: bytes,
    qname: dns.name.Name,
    qtype: int,
    qclass: int,
    ans: Answer,
    query: dns.message.Message,
    max_size: int,
) -> bytes:
    """The response to ``query`` as wire bytes, at most ``max_size`` long.

    If the answer or authority section does not fit, the response is the question (and OPT)
    with TC set (RFC 2181 9, RFC 6891 7); if only referral glue does not fit, TC is set too
    (RFC 9471) and the glue that fits is kept.
    """
    qid = struct.unpack_from("!H", wire)[0]
    flags = dns.flags.QR | (query.flags & ECHO_FLAGS)
    if ans.aa:
        flags |= dns.flags.AA
    edns = query.edns >= 0
    ednsflags = 0
    if edns and query.ednsflags & dns.flags.DO:
        ednsflags |= dns.flags.DO
    rflags, rext = dns.rcode.to_flags(dns.rcode.Rcode(ans.rcode))
    flags |= rflags
    ednsflags |= rext
    r = dns.renderer.Renderer(qid, flags, max_size)  # type: ignore[no-untyped-call]
    r.add_question(qname, qtype, qclass)  # type: ignore[no-untyped-call]
    if edns:
        r.reserve(11)
    truncated = False
    try:
        for section, rrsets in _sections(ans):
            for rrset in rrsets:
                try:
                    r.add_rrset(section, rrset)  # type: ignore[no-untyped-call]
                except dns.exception.TooBig:
                    if section != dns.renderer.ADDITIONAL:
                        raise
                    truncated = True
    except dns.exception.TooBig:
        r = dns.renderer.Renderer(qid, flags | dns.flags.TC, max_size)  # type: ignore[no-untyped-call]
        r.add_question(qname, qtype, qclass)  # type: ignore[no-untyped-call]
    else:
        if truncated:
            r.flags |= dns.flags.TC
    if edns:
        r.release_reserved()
        r.add_edns(0, ednsflags, DEFAULT_UDP_PAYLOAD)  # type: ignore[no-untyped-call]
    r.write_header()  # type: ignore[no-untyped-call]
    wire_out: bytes = r.get_wire()  # type: ignore[no-untyped-call]
    return wire_out


def _render_message(query: dns.message.Message, ans: Answer, max_size: int) -> bytes:
    """Like :func:`render` but through dnspython's message (for TSIG-signed responses)."""
    response = dns.message.make_response(query, our_payload=DEFAULT_UDP_PAYLOAD)
    if not ans.aa:
        response.flags &= ~dns.flags.AA
    else:
        response.flags |= dns.flags.AA
    response.set_rcode(dns.rcode.Rcode(ans.rcode))
    for section, rrsets in _sections(ans):
        target = {
            dns.renderer.ANSWER: response.answer,
            dns.renderer.AUTHORITY: response.authority,
            dns.renderer.ADDITIONAL: response.additional,
        }[section]
        target += rrsets
    try:
        return response.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        response.answer = []
        response.authority = []
        response.additional = []
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=max_size)


def _question_names(query: bytes) -> list[bytes] | None:
    """The question name of ``query`` (a query's bytes after its ID) and every name above
    it, each in lower-case wire form; None when the name cannot be read (compressed, cut
    short)."""
    n, i = len(query), 10  # (the flags and the four counts, then the question)
    starts: list[int] = []
    while i < n:
        length = query[i]
        if length == 0:
            name = query[10 : i + 1].lower()
            return [name[s - 10 :] for s in starts] + [b"\x00"]
        if length > 63:
            return None
        starts.append(i)
        i += 1 + length
    return None


def _without(cache: dict[Any, bytes], origins: frozenset[bytes], keyed: bool) -> dict[Any, bytes]:
    """A copy of ``cache`` without the answers to questions at or below ``origins`` (wire
    forms, lower case) nor those whose question cannot be read.  ``keyed``: the keys are
    (tcp, query) pairs, else queries.  Beyond :data:`FILTER_LIMIT` entries: empty."""
    if len(cache) > FILTER_LIMIT or b"\x00" in origins:
        return {}
    kept: dict[Any, bytes] = {}
    # (copied at once first: the UDP thread may add to ``cache`` while this runs)
    for key, value in cache.copy().items():
        names = _question_names(key[1] if keyed else key)
        if names is not None and origins.isdisjoint(names):
            kept[key] = value
    return kept
