"""Trusted DNSKEY sets shared between queries.

Validating a chain costs a DS and a DNSKEY signature check per zone; a resolver asking many
names under the same zones would repeat them for every query.  An entry is keyed by the
zone, the exact DNSKEY RRset content, the exact DS (or anchor) set it was validated against
and the algorithm policy, so any difference simply misses.  It lives until the earliest of
the RRset's TTL and its signatures' expiry.  Only secure outcomes are kept.  Pure: time is
passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence

import dns.name
import dns.rdata
import dns.rrset
from dns.rdtypes.ANY.RRSIG import RRSIG

from dnsseal.validator.names import suffix
from dnsseal.validator.policy import AlgorithmPolicy
from dnsseal.validator.rrsig import ZoneKey, canonical_rdata


def _content(rdatas: Iterable[dns.rdata.Rdata]) -> frozenset[bytes]:
    return frozenset(canonical_rdata(rd) for rd in rdatas)


_Key = tuple[bytes, ...]


def _key(name: dns.name.Name) -> _Key:
    """A key equal for names dnspython finds equal (case-insensitive; absolute names end
    in the empty label, so never equal a relative one), cheaper to hash than the Name."""
    return tuple([label.lower() for label in name.labels])


class TrustCache:
    """LRU of validated DNSKEY sets; ``get`` returns the trusted keys or None."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, tuple[int, int, tuple[ZoneKey, ...]]] = OrderedDict()
        self.hits = 0

    @staticmethod
    def key(
        zone: dns.name.Name,
        dnskeys: dns.rrset.RRset,
        ds: Iterable[dns.rdata.Rdata],
        anchor_keys: Iterable[dns.rdata.Rdata],
        policy: AlgorithmPolicy,
    ) -> Hashable:
        return (zone, _content(dnskeys), _content(ds), _content(anchor_keys), policy)

    def get(self, key: Hashable, now: int) -> tuple[ZoneKey, ...] | None:
        item = self._data.get(key)
        if item is None:
            return None
        stored, until, keys = item
        if not stored <= now < until:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return keys

    def put(
        self,
        key: Hashable,
        keys: tuple[ZoneKey, ...],
        ttl: int,
        sigs: Sequence[RRSIG],
        now: int,
    ) -> None:
        until = now + ttl
        for sig in sigs:
            left = (sig.expiration - now) & 0xFFFFFFFF
            if left < 0x80000000:
                until = min(until, now + left)
        if until <= now:
            return
        self._data[key] = (now, until, keys)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)


class DelegationCache:
    """Zone cuts learnt by earlier queries, so a new name does not start at the root.

    For each zone: its servers (from a referral's NS and glue, until the NS TTL runs out)
    and, separately, its chain-of-trust state as the query machine left it (secure with its
    trusted keys, or a proven insecure delegation), until the earliest TTL or signature
    expiry of what proved it.  Bogus states are never stored (the machine only offers
    secure and proven-insecure ones).  States are opaque here; each is stored with the
    ``context`` it was built in (the trust anchors and algorithm policy) and only returned
    for an equal one.  A third table keeps the addresses of name server names (from glue
    the referring zone may vouch for, or found by resolving the name), so a zone whose NS
    names lie in another known zone needs no address lookup (Unbound answers those from its
    RRset cache).  A fourth keeps each zone's NS names that came without an address (from
    the referral, or from the zone's own NS RRset in an authoritative answer), to look up
    when the known servers fail.  The tables are LRUs of ``max_entries``.  Pure: time is
    passed in.
    """

    def __init__(self, max_entries: int = 10000) -> None:
        self.max_entries = max_entries
        # Keyed by lowercased label tuples (see _key), not by Name: tuple hashes are cheap.
        self._servers: OrderedDict[_Key, tuple[int, tuple[tuple[str, int], ...]]] = OrderedDict()
        self._states: OrderedDict[_Key, tuple[int, Hashable, object]] = OrderedDict()
        self._hosts: OrderedDict[dns.name.Name, tuple[int, tuple[str, ...]]] = OrderedDict()
        self._names: OrderedDict[dns.name.Name, tuple[int, tuple[dns.name.Name, ...]]] = (
            OrderedDict()
        )
        self.hits = 0

    def __len__(self) -> int:
        return len(self._servers) + len(self._states) + len(self._hosts) + len(self._names)

    def names(self, zone: dns.name.Name, now: int) -> tuple[dns.name.Name, ...]:
        """``zone``'s NS names known without an address (empty when none)."""
        item = self._names.get(zone)
        if item is None:
            return ()
        if item[0] <= now:
            del self._names[zone]
            return ()
        self._names.move_to_end(zone)
        return item[1]

    def put_names(
        self, zone: dns.name.Name, names: tuple[dns.name.Name, ...], ttl: int, now: int
    ) -> None:
        """Keep ``names`` for ``zone`` for ``ttl``, never past its cached servers' expiry
        (they are only a fallback for those servers)."""
        if ttl <= 0 or not names:
            return
        expires = now + ttl
        known = self._servers.get(_key(zone))
        if known is not None and known[0] > now:
            expires = min(expires, known[0])
        self._names[zone] = (expires, names)
        self._names.move_to_end(zone)
        while len(self._names) > self.max_entries:
            self._names.popitem(last=False)

    def names_until(self, zone: dns.name.Name, now: int) -> int:
        """When ``zone``'s NS names known without an address expire (0: none are known)."""
        item = self._names.get(zone)
        return item[0] if item is not None and item[0] > now else 0

    def forget_names(self, zone: dns.name.Name) -> None:
        """Drop ``zone``'s NS names known without an address (every one was tried)."""
        self._names.pop(zone, None)

    def host(self, name: dns.name.Name, now: int) -> tuple[str, ...] | None:
        """The known addresses of the name server name ``name``."""
        item = self._hosts.get(name)
        if item is None:
            return None
        if item[0] <= now:
            del self._hosts[name]
            return None
        self._hosts.move_to_end(name)
        self.hits += 1
        return item[1]

    def put_host(self, name: dns.name.Name, addrs: tuple[str, ...], ttl: int, now: int) -> None:
        if ttl <= 0 or not addrs:
            return
        self._hosts[name] = (now + ttl, addrs)
        self._hosts.move_to_end(name)
        while len(self._hosts) > self.max_entries:
            self._hosts.popitem(last=False)

    def closest(
        self, name: dns.name.Name, now: int
    ) -> tuple[dns.name.Name, tuple[tuple[str, int], ...]] | None:
        """The deepest zone at or above ``name`` whose servers are known, with them."""
        low = _key(name)
        for i in range(len(low) - 1):
            key = low[i:]
            item = self._servers.get(key)
            if item is None:
                continue
            if item[0] <= now:
                del self._servers[key]
                continue
            self._servers.move_to_end(key)
            self.hits += 1
            return suffix(name.labels[i:]), item[1]
        return None

    def put_servers(
        self, zone: dns.name.Name, servers: tuple[tuple[str, int], ...], ttl: int, now: int
    ) -> None:
        if ttl <= 0 or not servers or zone == dns.name.root:
            return  # the root's servers come from the configuration
        expires = now + ttl
        low = _key(zone)
        known = self._servers.get(low)
        if known is not None and known[0] > now:
            # Never prolong a cached delegation: a child's own NS answer re-learnt before
            # the parent's expired would keep a removed zone alive for ever ("ghost domain
            # names", CVE-2012-1192; Unbound's iter_ghost_* scenarios test exactly this).
            expires = min(expires, known[0])
        # Nor outlive the delegation it was learnt under: a zone's servers come from its
        # parent's servers, and when the parent's delegation goes, so does the child's.
        for i in range(1, len(low) - 1):
            parent = self._servers.get(low[i:])
            if parent is not None and parent[0] > now:
                expires = min(expires, parent[0])
                break
        self._servers[low] = (expires, servers)
        self._servers.move_to_end(low)
        while len(self._servers) > self.max_entries:
            self._servers.popitem(last=False)

    def state(self, zone: dns.name.Name, now: int, context: Hashable) -> object | None:
        key = _key(zone)
        item = self._states.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._states[key]
            return None
        if item[1] != context:
            return None
        self._states.move_to_end(key)
        self.hits += 1
        return item[2]

    def put_state(
        self, zone: dns.name.Name, state: object, until: int, now: int, context: Hashable
    ) -> None:
        if until <= now:
            return
        key = _key(zone)
        self._states[key] = (until, context, state)
        self._states.move_to_end(key)
        while len(self._states) > self.max_entries:
            self._states.popitem(last=False)

    def forget_states(self) -> None:
        """Drop every chain state (new trust anchors or policy); servers stay."""
        self._states.clear()
