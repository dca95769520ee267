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

from dnsseal.validator.policy import AlgorithmPolicy
from dnsseal.validator.rrsig import ZoneKey


def _content(rdatas: Iterable[dns.rdata.Rdata]) -> frozenset[bytes]:
    return frozenset(rd.to_digestable() for rd in rdatas)


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
