"""The iterator half of the query machine: which servers to ask, and what to ask them.

From the closest zone known (the delegation cache, stub zones, else the root's servers, primed
from the hints: see :class:`RootPriming`), follow
referrals to the servers of the zone that holds a name (with QNAME minimisation, RFC 9156:
one label at a time, asking type A, the full question when a minimised one fails), using
glue or resolving NS names (one at a time, within bounds against delegations to many names
that do not resolve: :data:`MAX_TARGET_NX`); ask another server of the zone after a lame
reply, or when the validating half (:mod:`.machine`) finds a reply that does not validate.
Like the rest of the machine it does no I/O: it yields :class:`Need` and is fed the replies.
"""

from __future__ import annotations

import copy
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.limits import Budget, Limits
from dnsseal.validator.msgview import (
    DNAME_T,
    DNSKEY_T,
    DS_T,
    NS_T,
    RRSIG_T,
    SOA_T,
    Kind,
    addresses,
    classify,
    find,
    referral_ns,
)
from dnsseal.validator.names import is_subdomain, parent_name, suffix
from dnsseal.validator.policy import DEFAULT_POLICY, AlgorithmPolicy
from dnsseal.validator.trustcache import DelegationCache, TrustCache

Server = tuple[str, int]
Reply = dns.message.Message | None


# The type of QNAME-minimised questions: A, as RFC 9156 s2.1 recommends (and Unbound asks),
# not RFC 7816's NS, which some servers mishandle and which reveals that a resolver probes.
PROBE_TYPE = int(dns.rdatatype.A)
AA = int(dns.flags.AA)  # header bits as plain ints (enum.Flag operations cost more)
RA = int(dns.flags.RA)
MAX_RETRIES = 4  # other servers asked for one question after lame or bogus replies
MAX_TTL = 86400  # a TTL that only caps: DelegationCache.put_servers never prolongs an entry
PRIME_RETRY = 60  # seconds the hints are used as they are after a priming query failed
# Address lookups of NS names that came without glue, per resolution (its sub-lookups
# included), as Unbound bounds them (iterator.h) since the NXNSAttack (CVE-2020-12662): a
# delegation to many names that do not resolve must not make one client question send
# unbounded queries.  A name counts as failed when neither its A nor its AAAA lookup got a
# NOERROR reply; once more than MAX_TARGET_NX names failed, no more are looked up.
MAX_TARGET_NX = 5
MAX_TARGET_COUNT = 64  # A and AAAA lookups of NS names in all
MAX_DP_TARGET_COUNT = 16  # ... of one zone's NS names
_ADDRESS_TYPES = (int(dns.rdatatype.A), int(dns.rdatatype.AAAA))


class RootPriming:
    """The root's servers as the last priming query found them (RFC 8109, now RFC 9609),
    shared between queries (mutable, like :class:`~.trustcache.DelegationCache`; pure: time
    is passed in).

    Before the first iteration from the root, a query asks a root hint for ``. NS`` (with DO,
    as every upstream question: s3.3) and takes the NS RRset of the answer with the addresses
    the additional section gives for its names (s3, s4; nothing else of the reply is used) as
    the root's servers, until that NS RRset's TTL runs out (s3.1: then it primes again).
    When priming fails (no server answers, or the reply holds no root NS RRset with an
    address), the hints serve as they are for :data:`PRIME_RETRY` seconds before priming is
    tried again (Unbound, too, keeps resolving from its hints); so do queries that start
    while a priming query is out."""

    def __init__(self) -> None:
        self._until = 0
        self._servers: tuple[Server, ...] = ()
        self.primed = 0  # priming queries answered with a usable root NS RRset

    def get(self, now: int) -> tuple[Server, ...] | None:
        """The primed servers (empty: use the hints) while they hold, else None: prime."""
        return self._servers if now < self._until else None

    def put(self, servers: tuple[Server, ...], ttl: int, now: int) -> None:
        """Keep the primed ``servers`` (empty: priming failed) for ``ttl`` seconds."""
        self._servers, self._until = servers, now + min(ttl, MAX_TTL)
        if servers:
            self.primed += 1

    def forget(self) -> None:
        """Prime again at the next query (new hints)."""
        self._until, self._servers = 0, ()


@dataclass(frozen=True, slots=True)
class Need:
    """Ask (qname, rdtype) of one of ``servers`` (authoritative for ``zone``), with EDNS,
    DO and CD set and RD clear; feed back the reply, or None if no server answered."""

    qname: dns.name.Name
    rdtype: int
    servers: tuple[Server, ...]
    zone: dns.name.Name
    recursive: bool = False  # a forwarder: set RD, it resolves the name itself
    fresh: bool = False  # another server's reply is wanted: not one from the reply cache


Zones = tuple[tuple[dns.name.Name, tuple[Server, ...]], ...]


@dataclass(frozen=True, slots=True)
class Config:
    """What a query needs besides the question: where to start, what to trust, limits."""

    root_servers: tuple[Server, ...]
    anchors: AnchorSet
    limits: Limits = field(default_factory=Limits)
    policy: AlgorithmPolicy = DEFAULT_POLICY
    minimise: bool = True
    port: int = 53  # for servers learnt from glue or NS resolution
    # Shared between queries (mutable); None: every query validates its chain from scratch.
    trust_cache: TrustCache | None = field(default=None, compare=False)
    # Zone cuts and chain states shared between queries (mutable); None: every query
    # starts at the root (or its stub zone) and walks the whole chain.
    delegations: DelegationCache | None = field(default=None, compare=False)
    # Unbound's stub-zone (iterate from these servers for names at or below the zone) and
    # forward-zone (send the question, with RD, to these resolvers); the deepest wins.
    stubs: Zones = ()
    forwards: Zones = ()
    # Unbound's forward-first: forward zones whose names are iterated (from the root or the
    # closest stub zone) when none of their forwarders gives a usable reply.
    forward_first: frozenset[dns.name.Name] = frozenset()
    # Unbound's stub-first: stub zones whose names are iterated from the root (or a
    # shallower stub zone) when their servers give no usable reply.
    stub_first: frozenset[dns.name.Name] = frozenset()
    # Shared between queries (mutable); None: no priming, the root hints are the root's
    # servers (a stub zone or forward zone for the root is never primed either).
    priming: RootPriming | None = field(default=None, compare=False)
    # Seconds the driver works on one client question (its CNAME targets included) before
    # it answers SERVFAIL (BIND's resolver-query-timeout, 10 s by default); the machine
    # itself never reads a clock.
    query_timeout: float = 10.0
    # Seconds the driver answers a client question's SERVFAIL again from its failure cache
    # (BIND's servfail-ttl, 1 s by default, 0: off; RFC 9520 s3) the first time; longer
    # when the question keeps failing (the driver's back-off, RFC 9520 s3.2).
    servfail_ttl: int = 1


class Iteration:
    """The servers a query learnt and asks; :class:`~.machine.Query` adds validation."""

    def __init__(self, config: Config, now: int) -> None:
        self.config = config
        self.now = now
        self.budget = Budget(config.limits)
        self.servers: dict[dns.name.Name, tuple[Server, ...]] = {dns.name.root: config.root_servers}
        self.servers.update(config.stubs)
        # The referral that led into each zone, with the parent it came from: its signed DS
        # RRset or DS denial (RFC 4035 s3.1.4) saves the chain walk a DS query.
        self._referrals: dict[dns.name.Name, tuple[dns.name.Name, dns.message.Message]] = {}
        # For asking another server after a lame or bogus reply: the servers asked so far
        # per question, and each zone's out-of-zone NS names that came without glue.
        self._retried: dict[tuple[dns.name.Name, dns.name.Name, int], set[Server]] = {}
        self._retries: dict[tuple[dns.name.Name, dns.name.Name, int], int] = {}
        self._unglued: dict[dns.name.Name, tuple[dns.name.Name, ...]] = {}
        self._glue: dict[dns.name.Name, tuple[str, ...]] = {}  # name server -> parent's glue
        # Zones entered on signed evidence (a referral with their DS, data they signed):
        # their DNSKEY RRset is worth fetching before the chain walk asks (see prefetch).
        self.signed: set[dns.name.Name] = set()
        self._primed = False
        # forward-first zones whose forwarders failed in this query: iterated instead.
        self._unforwarded: set[dns.name.Name] = set()
        # stub-first zones whose servers failed in this query: iterated from above instead.
        self._unstubbed: set[dns.name.Name] = set()
        # NS names looked up in this query -> the addresses found (empty: none), and the
        # lookups spent (see MAX_TARGET_NX and the limits after it).
        self._targets: dict[dns.name.Name, tuple[str, ...]] = {}
        self._target_lookups: dict[dns.name.Name, int] = {}  # per zone
        self._target_nx = 0

    def _prime(self) -> Generator[Need, Reply, None]:
        """Prime the root's servers (see :class:`RootPriming`) once per query, before it
        first asks them; stub and forward zones for the root are not primed."""
        priming = self.config.priming
        if self._primed or priming is None:
            return
        self._primed = True
        root = dns.name.root
        if any(zone == root for zone, _ in self.config.stubs) or self._forward(root):
            return
        known = priming.get(self.now)
        if known is None:
            # Queries that start meanwhile use the hints instead of priming too (Unbound
            # has them wait for the one priming query; either way it is sent once).
            priming.put((), PRIME_RETRY, self.now)
            hints = self.config.root_servers
            reply = yield from self._ask(root, NS_T, hints, root, fresh=True)
            servers, ttl = _primed(reply, self.config.port)
            if servers:
                priming.put(servers, ttl, self.now)
            else:
                priming.put((), PRIME_RETRY, self.now)
            known = servers
        if known:
            self.servers[root] = known

    def _ask(
        self,
        qname: dns.name.Name,
        rdtype: int,
        servers: tuple[Server, ...],
        zone: dns.name.Name,
        fresh: bool = False,
    ) -> Generator[Need, Reply, Reply]:
        forward = self._forward_for(qname, rdtype)
        if forward is not None:
            zone, servers = forward
        if not servers or not self.budget.take("queries"):
            return None
        reply = yield Need(qname, rdtype, servers, zone, forward is not None, fresh)
        return reply

    def _ask_elsewhere(
        self,
        qname: dns.name.Name,
        rdtype: int,
        zone: dns.name.Name,
        depth: int = 0,
        all_tried: bool = False,
    ) -> Generator[Need, Reply, tuple[bool, Reply]]:
        """Ask (qname, rdtype) of another server of ``zone`` after a lame or bogus reply
        (Unbound's lame and dnssec-lame handling); (False, None) when every one was tried.
        The first reply came from the first server that answered, normally the first
        listed; the others are asked one at a time, then the addresses of the zone's
        out-of-zone NS names that came without glue, looked up here.  ``all_tried``: no
        known server answered (the driver tried them all): only the looked-up ones."""
        if all_tried and self.servers.get(zone):
            self._retried.setdefault((zone, qname, rdtype), set()).update(self.servers[zone])
        server = yield from self._next_server(qname, rdtype, zone, depth)
        if server is None:
            return False, None
        reply = yield from self._ask(qname, rdtype, (server,), zone, fresh=True)
        return True, reply

    def _next_server(
        self, qname: dns.name.Name, rdtype: int, zone: dns.name.Name, depth: int
    ) -> Generator[Need, Reply, Server | None]:
        if self._forward_for(qname, rdtype) is not None or not self.servers.get(zone):
            return None
        key = (zone, qname, rdtype)
        tried = self._retried.setdefault(key, {self.servers[zone][0]})
        if self._retries.get(key, 0) >= MAX_RETRIES:
            return None
        for server in self.servers[zone]:
            if server not in tried:
                tried.add(server)
                self._retries[key] = self._retries.get(key, 0) + 1
                return server
        names = self._unglued.get(zone)
        shared = self.config.delegations
        if names is None:
            # Learnt by an earlier query (the delegation came from the cache).
            names = shared.names(zone, self.now) if shared is not None else ()
        if not names or depth >= 2:
            self._unglued[zone] = ()
            return None
        port = self.config.port
        more = list(self.servers[zone])
        for name in names:  # looked up by this query already (for another zone)
            more.extend((a, port) for a in self._targets.get(name, ()) if (a, port) not in more)
        if len(more) == len(self.servers[zone]):
            # One name at a time, until one has an address; the rest wait for the next call.
            untried = [n for n in names if n not in self._targets]
            found = yield from self._look_up_targets(zone, untried, depth)
            more.extend(s for s in found if s not in more)
        self._unglued[zone] = tuple(n for n in names if n not in self._targets)
        if len(more) == len(self.servers[zone]):
            return None  # none left with an address, or the lookups' bounds reached
        self.servers[zone] = tuple(more)
        # Later queries use them too: a cached delegation is extended (put_servers never
        # prolongs an entry, so MAX_TTL only caps); none is created here.
        known = shared.closest(zone, self.now) if shared is not None else None
        if shared is not None and known is not None and known[0] == zone:
            shared.put_servers(zone, tuple(more), MAX_TTL, self.now)
        return (yield from self._next_server(qname, rdtype, zone, depth))

    def _forward(self, name: dns.name.Name) -> tuple[dns.name.Name, tuple[Server, ...]] | None:
        """The forward zone ``name`` is under, unless a deeper stub zone covers it."""
        best: tuple[dns.name.Name, tuple[Server, ...]] | None = None
        for zone, servers in self.config.forwards:
            if zone in self._unforwarded:
                continue
            if name.is_subdomain(zone) and (best is None or len(zone) > len(best[0])):
                best = (zone, servers)
        if best is None:
            return None
        if any(
            name.is_subdomain(z) and len(z) > len(best[0]) and z not in self._unstubbed
            for z, _ in self.config.stubs
        ):
            return None
        return best

    def _forward_for(
        self, qname: dns.name.Name, rdtype: int
    ) -> tuple[dns.name.Name, tuple[Server, ...]] | None:
        """The forward zone that resolves (qname, rdtype).  A DS RRset lives in the parent
        zone (RFC 4035 s3.1.4.1): its question goes where the parent's names go, not to the
        child's forwarder (Unbound's forward_request strips a label for DS too)."""
        if rdtype == DS_T and qname != dns.name.root:
            qname = parent_name(qname)
        return self._forward(qname)

    def _known_zone(self, name: dns.name.Name) -> dns.name.Name:
        """The deepest zone at or above ``name`` whose servers this query or an earlier
        one (the delegation cache) learnt."""
        best = dns.name.root
        for zone in self.servers:
            if len(zone) > len(best) and is_subdomain(name, zone):
                best = zone
        shared = self.config.delegations
        if shared is not None:
            hit = shared.closest(name, self.now)
            if hit is not None and len(hit[0]) > len(best):
                best = hit[0]
                self.servers[best] = hit[1]
        return best

    def _learnt(self, zone: dns.name.Name, servers: tuple[Server, ...], ttl: int) -> None:
        self.servers[zone] = servers
        if self.config.delegations is not None:
            self.config.delegations.put_servers(zone, servers, ttl, self.now)

    def _iterate(
        self, qname: dns.name.Name, rdtype: int, depth: int = 0
    ) -> Generator[Need, Reply, tuple[Reply, dns.name.Name]]:
        """Follow referrals from the closest known zone to an authoritative reply; when that
        zone is a stub-first stub zone whose servers gave no usable reply, once more
        without it (Unbound's stub-first)."""
        while True:
            reply, zone = yield from self._iterate_from_known(qname, rdtype, depth)
            if (
                reply is not None
                or zone not in self.config.stub_first
                or zone == dns.name.root  # nothing above it (settings refuse it)
                or zone in self._unstubbed
                or not any(z == zone for z, _ in self.config.stubs)
            ):
                return reply, zone
            self._unstubbed.add(zone)
            self.servers.pop(zone, None)

    def _iterate_from_known(
        self, qname: dns.name.Name, rdtype: int, depth: int
    ) -> Generator[Need, Reply, tuple[Reply, dns.name.Name]]:
        forward = self._forward_for(qname, rdtype)
        while forward is not None:
            # A forwarder resolves the name itself: one question, with RD.
            reply = yield from self._ask(qname, rdtype, forward[1], forward[0])
            if reply is not None or forward[0] not in self.config.forward_first:
                return reply, forward[0]
            # forward-first: none of the forwarders answered usably (no reply, SERVFAIL,
            # REFUSED): resolve the name by iteration for the rest of this query, as
            # Unbound does, or through a shallower forward zone.
            self._unforwarded.add(forward[0])
            forward = self._forward_for(qname, rdtype)
        start = parent_name(qname) if rdtype == DS_T and qname != dns.name.root else qname
        zone = self._known_zone(start)
        cut = self._glueless_cut(start, zone)
        if cut is not None:
            # A delegation an earlier query kept though none of its NS names it tried had
            # an address: the names it did not try are tried now (Unbound keeps the
            # referral too: iter_nxns_cached).  When none has one either, the parent is
            # asked again: it may delegate differently by now (the lookups spent so far
            # still count against this query's bounds).
            entered = yield from self._enter_glueless(cut, depth)
            if entered:
                zone = cut
        if zone == dns.name.root:
            yield from self._prime()
        servers = self.servers[zone]
        minimise = self.config.minimise
        probe = len(zone) + 1
        for _ in range(self.config.limits.referrals):
            if minimise and probe < len(qname):
                ask, atype = suffix(qname.labels[-probe:]), PROBE_TYPE
            else:
                ask, atype, minimise = qname, rdtype, False
            reply = yield from self._ask(ask, atype, servers, zone)
            if reply is None and minimise:
                # The minimised question failed (REFUSED, SERVFAIL or no answer: servers
                # that mishandle names they have no data for): ask the full question
                # (RFC 9156 s2.3; Unbound's relaxed minimisation does the same).
                minimise = False
                continue
            while reply is None:
                # No known server answered (the driver tried them all): the zone's
                # out-of-zone NS names that came without glue may (iter_pcname).
                asked, reply = yield from self._ask_elsewhere(
                    ask, atype, zone, depth, all_tried=True
                )
                if not asked:
                    return None, zone
            reply = _scrubbed(reply, zone)
            kind = classify(reply, ask, atype, zone)
            cached: tuple[dns.message.Message, Kind] | None = None
            while _lame(kind, reply):
                # A lame server, a referral that leads nowhere or a recursive server's
                # cached answer: ask another of the zone's servers.  When every one only
                # recurses, its answer is what there is (as Unbound concludes).
                if kind is not Kind.LAME and cached is None:
                    cached = (reply, kind)
                asked, again = yield from self._ask_elsewhere(ask, atype, zone, depth)
                if not asked:
                    if cached is None:
                        return None, zone
                    reply, kind = cached
                    break
                if again is not None:
                    reply = _scrubbed(again, zone)
                    kind = classify(reply, ask, atype, zone)
            ns = referral_ns(reply, zone, ask) if kind is Kind.REFERRAL else None
            if ns is None and atype == NS_T and kind is Kind.ANSWER and ask != zone:
                ns = find(reply.answer, ask, NS_T)
            apex_ttl = _apex_ttl(reply, ask) if minimise and ask != zone else None
            if ns is None and apex_ttl is not None and int(reply.flags) & AA:
                # The minimised name is the apex of a zone these servers also serve (its
                # SOA or its own signatures came back with authority): a cut, same servers.
                zone = ask
                if _signs(reply, zone):
                    self.signed.add(zone)
                self._learnt(zone, servers, apex_ttl)
                probe = len(zone) + 1
                continue
            if ns is not None:
                if rdtype == DS_T and ns.name == qname:
                    if atype == DS_T:
                        return reply, zone  # a referral instead of the parent's DS answer
                    minimise = False  # DS lives in the parent: ask it here
                    continue
                if kind is Kind.ANSWER and int(reply.flags) & AA:
                    # They answered the child's NS with authority: they serve the child
                    # too, so keep asking them (no NS address lookups, as Unbound).
                    found = servers
                else:
                    found = yield from self._ns_servers(reply, ns, depth, zone)
                    if not found and kind is Kind.ANSWER:
                        found = servers  # they answered for the child (without AA)
                if not found:
                    if kind is Kind.REFERRAL:
                        self._keep_glueless(ns)
                    return None, zone
                if kind is Kind.REFERRAL:
                    self._referrals[ns.name] = (zone, reply)
                if find(reply.authority, ns.name, DS_T) is not None or _signs(reply, ns.name):
                    self.signed.add(ns.name)
                # Out-of-zone names without an IPv4 address in the reply: looked up (type A)
                # when the known servers fail, as Unbound fetches a missing address then.
                self._unglued[ns.name] = tuple(
                    rd.target
                    for rd in ns
                    if not rd.target.is_subdomain(ns.name) and not _has_v4(reply, rd.target)
                )
                zone, servers = ns.name, found
                self._learnt(zone, servers, ns.ttl)
                if self.config.delegations is not None:  # for later queries (_next_server)
                    self.config.delegations.put_names(zone, self._unglued[zone], ns.ttl, self.now)
                probe = len(zone) + 1
                continue
            if minimise:
                if kind in (Kind.NODATA, Kind.ANSWER):
                    probe += 1
                else:
                    minimise = False
                continue
            if int(reply.flags) & AA:
                # The zone's own NS RRset may name servers its parent's did not (iter_pcnamech:
                # RFC 2181 s5.4.1 ranks the child's above the parent's): kept as fallbacks.
                own = find(reply.authority, zone, NS_T)
                if own is not None and zone != dns.name.root:
                    self._note_unglued(zone, own, reply)
            return reply, zone
        return None, zone

    def _note_unglued(
        self, zone: dns.name.Name, ns: dns.rrset.RRset, reply: dns.message.Message
    ) -> None:
        """Remember ``zone``'s NS names from ``ns`` that are outside it and came without an
        address in ``reply`` (for :meth:`_next_server`, in this query and, through the
        delegation cache, in later ones)."""
        known = self._unglued.get(zone, ())
        new = tuple(
            rd.target
            for rd in ns
            if not rd.target.is_subdomain(zone)
            and not addresses(reply, [rd.target])
            and rd.target not in known
        )
        if not new:
            return
        self._unglued[zone] = (*known, *new)
        shared = self.config.delegations
        if shared is not None:
            names = tuple(dict.fromkeys((*shared.names(zone, self.now), *new)))
            shared.put_names(zone, names, ns.ttl, self.now)

    def _ns_servers(
        self, reply: dns.message.Message, ns: dns.rrset.RRset, depth: int, zone: dns.name.Name
    ) -> Generator[Need, Reply, tuple[Server, ...]]:
        """The addresses of ``ns``'s servers: glue, but only for names under ``zone`` (the
        zone whose servers sent the referral may only vouch for its own names, Unbound's
        harden-glue; the delegation cache would keep anything else for the NS TTL), else
        found by resolving the names."""
        names = [rd.target for rd in ns]
        port = self.config.port
        vouched = [n for n in names if n.is_subdomain(zone)]
        found = addresses(reply, vouched)
        shared = self.config.delegations
        if found:
            for name in vouched:
                glue = tuple(addresses(reply, [name]))
                if glue:
                    self._glue[name] = glue
                if shared is not None:
                    shared.put_host(name, glue, _glue_ttl(reply, name, ns.ttl), self.now)
            return tuple((a, port) for a in found)
        if shared is not None:
            known = [a for name in names for a in shared.host(name, self.now) or ()]
            if known:
                return tuple((a, port) for a in known)
        if depth >= 2:
            return ()
        looked_up = yield from self._look_up_targets(ns.name, names, depth)
        if looked_up:
            return looked_up
        for name in names:
            # No address from the child side (its own delegation of the name is broken, say:
            # iter_pcdirect): the parent's glue for the name, when a referral brought one
            # (Unbound's parent-side fallback).  Only in-bailiwick glue is kept in _glue.
            parent_glue = self._glue.get(name, ())
            if parent_glue:
                return tuple((a, port) for a in parent_glue)
        return ()

    def _look_up_targets(
        self, zone: dns.name.Name, names: Sequence[dns.name.Name], depth: int
    ) -> Generator[Need, Reply, tuple[Server, ...]]:
        """The addresses of the first of ``names`` (``zone``'s NS names without glue) that
        has any, looked up one name at a time (Unbound fetches targets on demand too): its
        A RRset, else its AAAA RRset; the child's addresses first, then the parent's glue
        for the name where it differs (iter_pcnamerec: when the child's are wrong, the
        engine falls back to the parent's).  Names under ``zone`` are skipped (without glue
        they cannot be resolved through it) and so are names this query looked up before
        without an address.  Empty when none has one or the bounds stop the lookups
        (:data:`MAX_TARGET_NX`, :data:`MAX_TARGET_COUNT`, :data:`MAX_DP_TARGET_COUNT`)."""
        port = self.config.port
        shared = self.config.delegations
        for name in names:
            if name.is_subdomain(zone):
                continue
            known = self._targets.get(name)
            if known is not None:
                if known:
                    return tuple((a, port) for a in known)
                continue
            if not self._may_look_up(zone):
                break
            self._targets[name] = ()
            failed = 0
            for rdtype in _ADDRESS_TYPES:
                # Both types, as Unbound sends both: a name may have only IPv6 addresses.
                if not self._may_look_up(zone):
                    break
                self._target_lookups[zone] = self._target_lookups.get(zone, 0) + 1
                sub, _ = yield from self._iterate(name, rdtype, depth + 1)
                rrset = find(sub.answer, name, rdtype) if sub is not None else None
                if rrset is not None:
                    found = tuple(rd.address for rd in rrset)
                    found += tuple(a for a in self._glue.get(name, ()) if a not in found)
                    self._targets[name] = found
                    if shared is not None:
                        shared.put_host(name, found, rrset.ttl, self.now)
                    return tuple((a, port) for a in found)
                if sub is None or sub.rcode() != dns.rcode.NOERROR:
                    failed += 1
            if failed == len(_ADDRESS_TYPES):
                self._target_nx += 1
        return ()

    def _may_look_up(self, zone: dns.name.Name) -> bool:
        """Whether one more NS name address lookup for ``zone`` is within the bounds."""
        if self._target_nx > MAX_TARGET_NX:
            return False
        if sum(self._target_lookups.values()) >= MAX_TARGET_COUNT:
            return False
        return self._target_lookups.get(zone, 0) < MAX_DP_TARGET_COUNT

    def _keep_glueless(self, ns: dns.rrset.RRset) -> None:
        """A referral to ``ns`` led nowhere (no NS name this query looked up had an
        address): keep its names this query did not try, for the NS TTL, so a later
        query in the zone tries those instead of asking the parent again (and is bounded
        anew: iter_nxns_cached)."""
        shared = self.config.delegations
        if shared is None:
            return
        untried = tuple(
            rd.target
            for rd in ns
            if not rd.target.is_subdomain(ns.name) and rd.target not in self._targets
        )
        if untried:
            shared.put_names(ns.name, untried, ns.ttl, self.now)

    def _glueless_cut(self, name: dns.name.Name, known: dns.name.Name) -> dns.name.Name | None:
        """The deepest zone above ``name`` and below ``known`` (the deepest zone whose
        servers are known) of which only NS names are known, kept by :meth:`_keep_glueless`
        (or whose servers left the delegation cache before its names)."""
        shared = self.config.delegations
        if shared is None:
            return None
        for i in range(len(name) - len(known)):
            zone = name if i == 0 else suffix(name.labels[i:])
            if zone not in self.servers and shared.names(zone, self.now):
                return zone
        return None

    def _enter_glueless(self, zone: dns.name.Name, depth: int) -> Generator[Need, Reply, bool]:
        """Find a server for ``zone`` (see :meth:`_glueless_cut`) among its NS names that
        are not known to fail, and learn it until the names expire; the names still untried
        are kept for the next query (every one tried: none are kept)."""
        shared = self.config.delegations
        assert shared is not None
        names = shared.names(zone, self.now)
        until = shared.names_until(zone, self.now)
        found: tuple[Server, ...] = ()
        if depth < 2:
            found = yield from self._look_up_targets(zone, names, depth)
        left = tuple(n for n in names if n not in self._targets)
        if found:
            self._learnt(zone, found, until - self.now)
            self._unglued[zone] = left
        elif left:
            shared.put_names(zone, left, until - self.now, self.now)
        else:
            shared.forget_names(zone)
        return bool(found)

    def _servers_of(self, zone: dns.name.Name) -> Generator[Need, Reply, tuple[Server, ...]]:
        """The servers of ``zone`` (a zone the chain walk reached); when no query has them
        any more (a chain state outlived the NS TTL), found again by iteration."""
        if zone == dns.name.root:
            yield from self._prime()
        if zone not in self.servers and self._known_zone(zone) != zone:
            yield from self._iterate(zone, DNSKEY_T)
        return self.servers.get(zone) or self.servers[self._known_zone(zone)]


def _primed(reply: Reply, port: int) -> tuple[tuple[Server, ...], int]:
    """The root's servers from a priming reply and how long they hold: the addresses the
    additional section gives for the names of the answer's root NS RRset (RFC 8109 s4),
    for that RRset's TTL.  ((), 0) when the reply is no such answer."""
    if reply is None or reply.rcode() != dns.rcode.NOERROR:
        return (), 0
    ns = find(reply.answer, dns.name.root, NS_T)
    if ns is None:
        return (), 0
    found = addresses(reply, [rd.target for rd in ns])
    return tuple((a, port) for a in dict.fromkeys(found)), int(ns.ttl)


def _scrubbed(reply: dns.message.Message, zone: dns.name.Name) -> dns.message.Message:
    """``reply`` from ``zone``'s servers without the DNAME RRsets (and their RRSIGs) of its
    answer section owned outside ``zone``: its servers have no authority there, and such a
    DNAME would redirect names of other zones (Unbound's scrubber drops them too:
    iter_scrub_dname_out_of_zone).  The same message when there is none (replies are
    shared, never changed in place)."""
    out = [
        r
        for r in reply.answer
        if (r.rdtype == DNAME_T or (r.rdtype == RRSIG_T and r.covers == DNAME_T))
        and not r.name.is_subdomain(zone)
    ]
    if not out:
        return reply
    scrubbed = copy.copy(reply)
    scrubbed.answer = [r for r in reply.answer if not any(r is o for o in out)]
    return scrubbed


def _has_v4(reply: dns.message.Message, name: dns.name.Name) -> bool:
    """Whether ``reply``'s additional section gives an IPv4 address for ``name``."""
    return find(reply.additional, name, dns.rdatatype.A) is not None


def _lame(kind: Kind, reply: dns.message.Message) -> bool:
    """Whether an iterative reply is no answer from the zone: lame (see :func:`classify`),
    data from a server that recurses (RA) without authority (no AA): its cache speaks, not
    the zone (Unbound's REC_LAME, RFC 1034 s4.3.1: only authoritative data has AA), or a
    bare empty NOERROR (no SOA, no NS): RFC 2308 s2.2's NODATA type 3, which Unbound only
    believes when no other server of the zone says more.  The last two are used when every
    server answers so."""
    if kind is Kind.LAME:
        return True
    if kind in (Kind.REFERRAL, Kind.FAILURE):
        return False
    if kind is Kind.NODATA and not reply.answer and not reply.authority:
        return True
    flags = int(reply.flags)
    return bool(flags & RA) and not flags & AA


def _apex_ttl(reply: dns.message.Message, name: dns.name.Name) -> int | None:
    """When ``reply`` shows ``name`` is a zone apex (an authority SOA owned by it, or data
    signed by it as the zone), how long that is known: the TTL of what shows it."""
    for r in reply.authority:
        if r.rdtype == SOA_T and r.name == name:
            return int(r.ttl)
    for r in reply.answer:
        if r.rdtype == RRSIG_T and r.name == name and any(sig.signer == name for sig in r):
            return int(r.ttl)
    return None


def _signs(reply: dns.message.Message, zone: dns.name.Name) -> bool:
    """Whether ``reply`` holds a signature made by ``zone`` (so it has keys)."""
    return any(
        r.rdtype == RRSIG_T and any(sig.signer == zone for sig in r)
        for section in (reply.answer, reply.authority)
        for r in section
    )


def _glue_ttl(reply: dns.message.Message, name: dns.name.Name, ns_ttl: int) -> int:
    """How long the glue for ``name`` in ``reply`` may be kept: its smallest TTL, at most
    the NS RRset's (glue is only as current as the delegation it came with)."""
    ttls = [
        r.ttl
        for r in reply.additional
        if r.name == name and r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
    ]
    return min([*ttls, ns_ttl])
