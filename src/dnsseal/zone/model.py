"""The zone model: RRsets on canonical bytes, and the layout of a zone (apex, cuts, glue).

A :class:`Zone` holds the RRsets of one zone with owner names lower-cased and RDATA in
canonical wire form (see :mod:`dnsseal.zone.canonical`).  Signatures are kept apart from the
data they cover, keyed by owner and covered type, because every DNSSEC operation looks them up
that way.  Values are frozen; building a changed zone makes a new one.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rdataclass
import dns.rdatatype

from dnsseal.zone import canonical

T = dns.rdatatype
# Types that are the zone's DNSSEC chain rather than its data: a signer rebuilds them.
CHAIN_TYPES = frozenset({T.NSEC, T.NSEC3})


@dataclass(frozen=True, slots=True)
class RRset:
    """One RRset: owner (lower-case), type, TTL and canonical RDATA (unique, sorted)."""

    name: dns.name.Name
    rtype: int
    ttl: int
    rdatas: tuple[bytes, ...]

    def with_rdatas(self, rdatas: Iterable[bytes]) -> RRset:
        return RRset(self.name, self.rtype, self.ttl, canonical.canonical_rdatas(rdatas))


class NameKind(enum.Enum):
    """Where a name sits in the zone (RFC 4035 2.2 and 2.3, RFC 6672 for DNAME)."""

    APEX = "apex"
    AUTH = "auth"  # authoritative data: signed
    DELEGATION = "delegation"  # a zone cut below the apex: only DS (and NSEC) signed
    OCCLUDED = "occluded"  # below a cut or a DNAME: glue and occluded data, never signed


# The SOAs parsed last, by RDATA and TTL (a Soa is immutable): one zone's is asked for about
# 8 times in each start or signing pass (serial, negative TTL, the signer, the snapshot).
# Measured (a start of 1,500 zones, each ask's distance in distinct SOAs since the last ask
# of the same): 83% (restart 77%) of asks come back within 64 others; the rest, one or two
# a zone, a whole batch later (twice the zone count), which only a memo of every zone's SOA
# catches: 4,096 did below 2,000 zones (3.2 MiB kept in the main process), none at 10,000.
# Full, the older half goes (inserted first): the asks just made stay.
_SOA_MEMO: dict[tuple[bytes, int], Soa] = {}
_SOA_MEMO_MAX = 512


@dataclass(frozen=True, slots=True)
class Soa:
    mname: dns.name.Name
    rname: dns.name.Name
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    ttl: int

    _TAIL = struct.Struct("!IIIII")

    @classmethod
    def from_rrset(cls, rrset: RRset) -> Soa:
        wire = rrset.rdatas[0]
        memo = _SOA_MEMO.get((wire, rrset.ttl))
        if memo is not None:
            return memo
        mname, off = canonical.name_from_wire(wire)
        rname, off = canonical.name_from_wire(wire, off)
        serial, refresh, retry, expire, minimum = cls._TAIL.unpack_from(wire, off)
        made = cls(mname, rname, serial, refresh, retry, expire, minimum, rrset.ttl)
        if len(_SOA_MEMO) >= _SOA_MEMO_MAX:
            for old in list(_SOA_MEMO)[: _SOA_MEMO_MAX // 2]:
                _SOA_MEMO.pop(old, None)  # (another thread may have dropped it)
        _SOA_MEMO[wire, rrset.ttl] = made
        return made

    def rdata_wire(self) -> bytes:
        return (
            canonical.name_wire(self.mname)
            + canonical.name_wire(self.rname)
            + self._TAIL.pack(self.serial, self.refresh, self.retry, self.expire, self.minimum)
        )

    @property
    def negative_ttl(self) -> int:
        """min(SOA TTL, SOA MINIMUM): the TTL of NSEC and NSEC3 records (RFC 9077)."""
        return min(self.ttl, self.minimum)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Zone:
    """The RRsets of one zone.

    ``rrsets`` maps owner -> type -> RRset for everything except RRSIG; ``rrsigs`` maps
    owner -> covered type -> the RRSIG RRset (rtype RRSIG) covering it.  All owners are
    lower-case and at or below ``origin``.
    """

    origin: dns.name.Name
    rrsets: Mapping[dns.name.Name, Mapping[int, RRset]]
    rrsigs: Mapping[dns.name.Name, Mapping[int, RRset]] = field(default_factory=dict)
    rdclass: int = dns.rdataclass.IN

    def get(self, name: dns.name.Name, rtype: int) -> RRset | None:
        node = self.rrsets.get(name)
        return node.get(rtype) if node is not None else None

    def soa(self) -> Soa:
        rrset = self.get(self.origin, T.SOA)
        if rrset is None or not rrset.rdatas:
            raise ValueError(f"{self.origin}: zone has no SOA at its apex")
        return Soa.from_rrset(rrset)

    def names(self) -> list[dns.name.Name]:
        """Owner names holding data (not counting RRSIG-only names), in canonical order."""
        return sorted(self.rrsets, key=canonical.sort_key)

    def iter_rrsets(self) -> Iterator[RRset]:
        for node in self.rrsets.values():
            yield from node.values()

    def record_count(self) -> int:
        return sum(len(r.rdatas) for r in self.iter_rrsets())


# Each octet d as its three base-9 digits (d = 81a + 9b + c, a <= 3), one table per digit.
_NINES = [
    bytes.maketrans(bytes(range(256)), bytes(48 + (d // k) % 9 for d in range(256)))
    for k in (81, 9, 1)
]
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def name_hash(labels: tuple[bytes, ...]) -> int:
    """What :class:`dns.name.Name`'s ``__hash__`` returns for these labels, in C loops.

    dnspython folds the lower-cased octets of all labels as ``h = 9 * h + octet``, one
    octet at a time in Python: the octets are the digits of a number in base 9, except
    that they exceed 8.  Split every octet into its three base-9 digits and the sum is
    three base-9 numerals, each parsed by ``int(..., 9)``.  (The same integer, so
    ``hash()`` reduces it the same way.)"""
    data = b"".join(labels).translate(_LOWER)
    if not data:
        return 0
    if len(data) > 255:  # not a valid name (and int() limits the digits): dnspython's way
        return int(dns.name.Name(labels).__hash__())
    a, b, c = _NINES
    return (
        81 * int(data.translate(a), 9) + 9 * int(data.translate(b), 9) + int(data.translate(c), 9)
    )


class OwnerName(dns.name.Name):
    """A lower-case owner name whose hash is computed once.

    dnspython hashes and compares names byte by byte in Python; a zone's dictionaries do
    that millions of times, so the builder gives every owner one of these (equal and
    hash-equal to the plain :class:`dns.name.Name`)."""

    __slots__ = ("_hash",)
    _hash: int

    def __init__(self, labels: Iterable[bytes | str]) -> None:
        super().__init__(labels)
        object.__setattr__(self, "_hash", name_hash(self.labels))

    @classmethod
    def trusted(cls, labels: tuple[bytes, ...]) -> OwnerName:
        """An owner name from labels the caller has already checked (each 1..63 octets but
        the last, which is empty; 255 octets at most in wire form): skips dnspython's
        conversion and validation, the costly part of making a name."""
        name = object.__new__(cls)
        object.__setattr__(name, "labels", labels)
        object.__setattr__(name, "_hash", name_hash(labels))
        return name

    def __hash__(self) -> int:
        h: int = self._hash
        return h

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if isinstance(other, OwnerName):
            return self._hash == other._hash and self.labels == other.labels
        return bool(super().__eq__(other))  # type: ignore[no-untyped-call]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __reduce__(self) -> tuple[type[dns.name.Name], tuple[tuple[bytes, ...]]]:
        return (dns.name.Name, (self.labels,))


# A builder entry: a finished RRset taken as a whole, or (TTL, RDATA set) being collected.
_Pending = RRset | tuple[int, set[bytes]]


class ZoneBuilder:
    """Collects records (any order, duplicates allowed) into a :class:`Zone`."""

    def __init__(self, origin: dns.name.Name, rdclass: int = dns.rdataclass.IN) -> None:
        self.rdclass = rdclass
        self._owners: dict[tuple[bytes, ...], OwnerName] = {}
        self.origin: dns.name.Name = self.owner(origin)
        self._data: dict[dns.name.Name, dict[int, _Pending]] = {}
        self._sigs: dict[dns.name.Name, dict[int, _Pending]] = {}

    def owner(self, name: dns.name.Name) -> OwnerName:
        """The one :class:`OwnerName` of this builder for ``name`` (any case)."""
        got = self._owners.get(name.labels)
        if got is None:
            if isinstance(name, OwnerName):
                got = name
            else:
                canon = name.canonicalize()
                got = self._owners.get(canon.labels) or OwnerName.trusted(canon.labels)
            self._owners[name.labels] = got
            self._owners[got.labels] = got
        return got

    def add(self, name: dns.name.Name, rtype: int, ttl: int, rdata: bytes) -> None:
        """Add one record.  An RRSIG goes to the signatures under its covered type.  TTLs of
        one RRset that differ are reduced to the smallest (RFC 2181 5.2)."""
        name = self.owner(name)
        if rtype == T.RRSIG:
            covered = struct.unpack_from("!H", rdata)[0]
            table, key = self._sigs, covered
        else:
            table, key = self._data, rtype
        node = table.setdefault(name, {})
        old = node.get(key)
        if old is None:
            node[key] = (ttl, {rdata})
            return
        if isinstance(old, RRset):
            old = (old.ttl, set(old.rdatas))
        old[1].add(rdata)
        node[key] = (min(ttl, old[0]), old[1])

    def add_many(self, records: Iterable[tuple[dns.name.Name, int, int, bytes]]) -> None:
        """:meth:`add` for many ``(name, type, TTL, RDATA)`` records (same rules, less
        overhead per record: consecutive records of one owner look it up once)."""
        rrsig = int(T.RRSIG)
        last: dns.name.Name | None = None
        name: dns.name.Name = self.origin
        data_node: dict[int, _Pending] = {}
        for given, rtype, ttl, rdata in records:
            if given is not last:
                last = given
                name = self.owner(given)
                data_node = self._data.setdefault(name, {})
            if rtype == rrsig:
                self.add(name, rtype, ttl, rdata)
                continue
            old = data_node.get(rtype)
            if old is None:
                data_node[rtype] = (ttl, {rdata})
            elif isinstance(old, RRset):
                data_node[rtype] = (min(ttl, old.ttl), {*old.rdatas, rdata})
            else:
                old[1].add(rdata)
                if ttl < old[0]:
                    data_node[rtype] = (ttl, old[1])
        for name in [n for n, node in self._data.items() if not node]:
            del self._data[name]  # owners seen only with RRSIGs

    def add_rrset(self, rrset: RRset) -> None:
        """Add a whole RRset.  A data RRset that is the first for its owner and type is
        kept as it is (RRsets are immutable; zone versions share them)."""
        if rrset.rtype != T.RRSIG and rrset.rdatas:
            name = self.owner(rrset.name)
            node = self._data.setdefault(name, {})
            if rrset.rtype not in node:
                node[rrset.rtype] = rrset if rrset.name is name else RRset(
                    name, rrset.rtype, rrset.ttl, rrset.rdatas)  # fmt: skip
                return
        for rd in rrset.rdatas:
            self.add(rrset.name, rrset.rtype, rrset.ttl, rd)

    def build(self) -> Zone:
        def freeze(table: dict[dns.name.Name, dict[int, _Pending]],
                   rtype: int | None) -> dict[dns.name.Name, dict[int, RRset]]:  # fmt: skip
            out: dict[dns.name.Name, dict[int, RRset]] = {}
            for name, node in table.items():
                frozen = out[name] = {}
                for t, entry in node.items():
                    if isinstance(entry, RRset):
                        frozen[t] = entry
                    else:
                        ttl, rds = entry
                        frozen[t] = RRset(name, t if rtype is None else rtype, ttl,
                                          tuple(sorted(rds)))  # fmt: skip
            return out

        return Zone(
            self.origin, freeze(self._data, None), freeze(self._sigs, T.RRSIG), self.rdclass
        )


@dataclass(frozen=True, slots=True)
class Layout:
    """What each owner name of a zone is (:class:`NameKind`), plus its empty non-terminals."""

    kinds: Mapping[dns.name.Name, NameKind]
    empty_non_terminals: frozenset[dns.name.Name]

    def kind(self, name: dns.name.Name) -> NameKind | None:
        return self.kinds.get(name)


def layout(zone: Zone) -> Layout:
    """Classify every owner name of ``zone``.

    A name with NS below the apex is a delegation; anything below a delegation or below a
    DNAME owner is occluded (glue included).  Empty non-terminals are names between the apex
    and an authoritative or delegation name that own no data themselves.  (Works on label
    tuples: owner names are lower-case, so equal names have equal labels.)
    """
    origin = zone.origin
    depth = len(origin.labels)
    cuts = {n.labels for n, node in zone.rrsets.items() if n != origin and T.NS in node}
    dnames = {n.labels for n, node in zone.rrsets.items() if T.DNAME in node}
    stops = cuts | dnames
    kinds: dict[dns.name.Name, NameKind] = {}
    for name in zone.rrsets:
        labels = name.labels
        if len(labels) <= depth:  # only the apex: every owner is at or below it
            kinds[name] = NameKind.APEX
            continue
        kind = NameKind.DELEGATION if labels in cuts else NameKind.AUTH
        if stops:
            if labels[1:] in dnames:
                kind = NameKind.OCCLUDED
            else:
                for i in range(1, len(labels) - depth):
                    if labels[i:] in stops:
                        kind = NameKind.OCCLUDED
                        break
        kinds[name] = kind
    present = {n.labels for n in kinds}
    ents: dict[tuple[bytes, ...], dns.name.Name] = {}
    for name, kind in kinds.items():
        if kind is NameKind.AUTH or kind is NameKind.DELEGATION:
            labels = name.labels
            for i in range(1, len(labels) - depth):
                parent = labels[i:]
                if parent in present:
                    break
                if parent not in ents:
                    ents[parent] = OwnerName.trusted(parent)
    return Layout(kinds, frozenset(ents.values()))
