"""TTL-honouring LRU caches bounded by memory.

:func:`reply_ttl` gives an upstream reply's lifetime: the smallest TTL in its answer and
authority sections (for a negative reply, also the SOA MINIMUM field, RFC 2308 s5), capped
by ``max_ttl``; replies without records are not cached.

:class:`Cache` keeps values until they expire or until the memory it accounts for goes over
``max_bytes``, then drops the least recently used.  The account of an entry is
:data:`ENTRY_OVERHEAD` (the key, the Python objects around the value, measured with
tracemalloc in tests/resolver/test_cache.py) plus the octets of its payload
(:func:`payload_size`: the wire bytes the values are kept as).  Time is passed in, so tests
can step it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import dns.message
import dns.rdatatype

# What an entry costs besides its payload octets: the OrderedDict slot, the key tuple and
# its name, the expiry and value tuples, the packed result and its verdict (about 870
# octets measured for a result; a little more is counted so the bound holds).
ENTRY_OVERHEAD = 900
DEFAULT_MAX_BYTES = 64 << 20


def reply_ttl(msg: dns.message.Message, max_ttl: int) -> int:
    ttls: list[int] = []
    for section in (msg.answer, msg.authority):
        for rrset in section:
            ttls.append(rrset.ttl)
            if rrset.rdtype == dns.rdatatype.SOA and not msg.answer:
                ttls.append(rrset[0].minimum)
    return min([*ttls, max_ttl]) if ttls else 0


def payload_size(value: object) -> int:
    """The octets a cached value holds: bytes, the ``nbytes`` of packed objects, summed
    over tuples."""
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, tuple):
        return sum(payload_size(x) for x in value)
    nbytes = getattr(value, "nbytes", 0)
    return nbytes if isinstance(nbytes, int) else 0


class Cache:
    """LRU with expiry, bounded by ``max_entries`` and by ``max_bytes`` of accounted memory;
    ``get`` returns None for missing or expired entries."""

    def __init__(
        self,
        max_entries: int = 1_000_000,
        max_ttl: int = 86400,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, tuple[int, object]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evicted = 0

    def get(self, key: Hashable, now: int) -> object | None:
        item = self._data.get(key)
        if item is None or item[0] <= now:
            if item is not None:
                self.drop(key)
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: Hashable, value: object, ttl: int, now: int) -> None:
        if ttl <= 0:
            return
        self.drop(key)
        self._data[key] = (now + min(ttl, self.max_ttl), value)
        self.bytes += ENTRY_OVERHEAD + payload_size(value)
        while self._data and (len(self._data) > self.max_entries or self.bytes > self.max_bytes):
            _, (_, old) = self._data.popitem(last=False)
            self.bytes -= ENTRY_OVERHEAD + payload_size(old)
            self.evicted += 1

    def drop(self, key: Hashable) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self.bytes -= ENTRY_OVERHEAD + payload_size(item[1])

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)
