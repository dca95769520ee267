"""A TTL-honouring cache of upstream replies, keyed by question and the zone asked.

The TTL of an entry is the smallest TTL in the reply's answer and authority sections (for
a negative reply, also the SOA minimum, RFC 2308 s5), capped by ``max_ttl``; replies
without records are not cached.  Time is passed in, so tests can step it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import dns.message
import dns.rdatatype


def reply_ttl(msg: dns.message.Message, max_ttl: int) -> int:
    ttls: list[int] = []
    for section in (msg.answer, msg.authority):
        for rrset in section:
            ttls.append(rrset.ttl)
            if rrset.rdtype == dns.rdatatype.SOA and not msg.answer:
                ttls.append(rrset[0].minimum)
    return min([*ttls, max_ttl]) if ttls else 0


class Cache:
    """LRU with expiry; ``get`` returns None for missing or expired entries."""

    def __init__(self, max_entries: int = 20000, max_ttl: int = 86400) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self._data: OrderedDict[Hashable, tuple[int, object]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, now: int) -> object | None:
        item = self._data.get(key)
        if item is None or item[0] <= now:
            if item is not None:
                del self._data[key]
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: Hashable, value: object, ttl: int, now: int) -> None:
        if ttl <= 0:
            return
        self._data[key] = (now + min(ttl, self.max_ttl), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
