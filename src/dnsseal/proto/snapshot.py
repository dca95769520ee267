"""An immutable, answer-ready view of one signed zone.

A :class:`ZoneSnapshot` is built once from a dnspython zone (a presigned zone file, or later
the signer's output) and never changes: a new zone version is a new snapshot.  Building it
precomputes what answering needs on every query:

* per-name nodes with their RRsets and the RRSIGs covering each type;
* the zone cuts (delegations), the empty non-terminals and whether the zone has any DNAME;
* the NSEC chain sorted in canonical order, and the NSEC3 chain sorted by hash, so the record
  covering a name is one binary search away;
* NSEC3 owner names kept apart from the main tree: they are not names of the zone's
  namespace (RFC 5155 7.2.8), only their NSEC3 RRset can be asked for.

Nothing here signs or synthesises: a presigned zone is served exactly as it was signed.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import io
import pickle
import struct
import weakref
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.set
import dns.zone

from dnsseal.errors import InputError
from dnsseal.signer.denial import Nsec3Params
from dnsseal.zone import canonical, model
from dnsseal.zone.diff import ZoneDiff
from dnsseal.zone.diff import apply as apply_diff
from dnsseal.zone.text import parse_zone_text

NSEC = dns.rdatatype.NSEC
NSEC3 = dns.rdatatype.NSEC3
NSEC3PARAM = dns.rdatatype.NSEC3PARAM
RRSIG = dns.rdatatype.RRSIG
NS = dns.rdatatype.NS
SOA = dns.rdatatype.SOA
DNAME = dns.rdatatype.DNAME

CanonKey = tuple[bytes, ...]
NSEC3_CACHE_LIMIT = 10_000
SHA1_B32_LEN = 32  # a SHA-1 digest in base32hex


def canonical_key(name: dns.name.Name) -> CanonKey:
    """Sort key giving RFC 4034 section 6.1 canonical order (labels right to left, lower
    case, compared as octet strings).  A label already in lower case is the name's own
    object (a snapshot keeps these keys: no copy of every label)."""
    return tuple(
        label if (low := label.lower()) == label else low for label in reversed(name.labels)
    )


# Shared empty containers for the many snapshots that have no NSEC3 chain, cut, ENT...:
# never written to (a snapshot's containers are replaced, not changed, by update_from_model;
# nsec3_cache is written only when the zone has NSEC3 parameters).
_EMPTY: frozenset[Any] = frozenset()
_NO_NODES: dict[dns.name.Name, Node] = {}
_NO_NODES_BY_HASH: dict[int, Node] = {}
_NO_HASHES: list[int] = []
_NO_CACHE: dict[Key, int] = {}
_NO_SORT: list[bytes] = []
_NO_NSEC_NODES: list[Node] = []


def sort_key(canon: CanonKey) -> bytes:
    """A canonical-order key (labels root first, as :func:`canonical_key` gives them) as
    bytes whose plain byte order is the same order (RFC 4034 6.1): each label's octets,
    with 0 and 1 escaped as 01 01 and 01 02, then 00.  A key is a prefix of another's
    exactly when its labels are (the names below a name follow it).  The C lane bisects
    these with memcmp."""
    return b"".join(
        label.replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01") + b"\x00"
        for label in canon
    )


def _frozen(items: Iterable[Any]) -> frozenset[Any]:
    """``frozenset(items)``, the one shared empty frozenset when there are none."""
    got = frozenset(items)
    return got if got else _EMPTY


Key = tuple[bytes, ...]


def name_key(name: dns.name.Name) -> Key:
    """A name as its lower-case labels: the dict key of the hot path.  dnspython's
    ``Name.__hash__`` lowercases character by character in Python on every lookup; a tuple
    of bytes hashes in C and caches the hash of each label."""
    return tuple(label.lower() for label in name.labels)


class ZoneError(InputError):
    """The zone cannot be served (no SOA, unsupported NSEC3 parameters...)."""


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """The data at one owner name: RRsets by type and the RRSIG RRsets by covered type."""

    name: dns.name.Name
    rrsets: Mapping[int, dns.rrset.RRset] = field(default_factory=dict)
    sigs: Mapping[int, dns.rrset.RRset] = field(default_factory=dict)

    def with_sigs(self, rdtype: int, do: bool) -> list[dns.rrset.RRset]:
        """The RRset of ``rdtype`` followed, when ``do``, by its RRSIG RRset."""
        out = [self.rrsets[rdtype]]
        if do and rdtype in self.sigs:
            out.append(self.sigs[rdtype])
        return out


def nsec3_int(params: Nsec3Params, k: Key) -> int:
    """The NSEC3 hash (RFC 5155 5) of name key ``k`` as an integer (not memoised)."""
    return nsec3_digest(params, b"".join(bytes((len(label),)) + label for label in k))


def nsec3_digest(params: Nsec3Params, wire: bytes) -> int:
    """The NSEC3 hash of the lower-case wire name ``wire`` as an integer."""
    salt = params.salt
    digest = hashlib.sha1(wire + salt).digest()
    for _ in range(params.iterations):
        digest = hashlib.sha1(digest + salt).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class ZoneSnapshot:
    """One immutable version of a zone, ready for answering.  Build with :func:`build`."""

    origin: dns.name.Name
    serial: int
    ents: frozenset[dns.name.Name]
    cuts: frozenset[dns.name.Name]
    has_dname: bool
    # The NSEC owners' canonical order keys as bytes (sort_key), in that order (the byte
    # path's WireZone shares this list; never changed in place)
    nsec_sort: list[bytes]
    nsec3: Nsec3Params | None
    nsec3_hashes: list[int]  # NSEC3 owner hashes as integers (base32hex order), sorted
    nsec3_by_hash: dict[int, Node]
    nsec3_nodes: dict[dns.name.Name, Node]
    # id(rrset) -> (rrset, uncompressed wire, record count), filled lazily by the fast path
    wire_memo: dict[int, tuple[dns.rrset.RRset, bytes, int]] = field(default_factory=dict)
    nsec3_cache: dict[Key, int] = field(default_factory=dict)
    by_key: dict[Key, Node] = field(default_factory=dict)
    ent_keys: frozenset[Key] = frozenset()
    cut_keys: frozenset[Key] = frozenset()
    nsec_nodes: list[Node] = field(default_factory=list)  # the nodes of nsec_names, in order
    # Made by update_from_model: the snapshot this one was made from (weakly: it is not
    # kept alive for this) and the owners (name keys, NSEC3 owners too) where the two
    # differ.  Every other node is the same object in both, which lets the answer tables
    # of the previous version be updated at those owners alone (proto.wiretable).
    base: weakref.ref[ZoneSnapshot] | None = None
    changed: frozenset[Key] = frozenset()
    # negative_soa, made when first asked for (the byte path uses negative_wires instead)
    _negative: list[dns.rrset.RRset] | None = None

    @property
    def negative_soa(self) -> list[dns.rrset.RRset]:
        """The SOA and its RRSIG with the RFC 2308 negative TTL (see :func:`_negative_soa`),
        made on first use: most zones never answer negatively through the general path,
        and these dnspython objects cost about 2 KiB per zone."""
        got = self._negative
        if got is None:
            got = _negative_soa(self.apex)
            object.__setattr__(self, "_negative", got)
        return got

    @property
    def apex(self) -> Node:
        by_key = self.by_key
        got = by_key.get(self.origin.labels)
        return got if got is not None else by_key[name_key(self.origin)]

    @property
    def nodes(self) -> NodesByName:
        """The nodes of the zone's tree by owner name, in the order they were built: a
        view of :attr:`by_key` (no second dict per snapshot)."""
        return NodesByName(self.by_key)

    @property
    def nsec_names(self) -> list[dns.name.Name]:
        """The NSEC owners in canonical order (made on each call: test ``nsec_nodes``
        for whether the zone has an NSEC chain)."""
        return [node.name for node in self.nsec_nodes]

    @property
    def nsec_keys(self) -> list[CanonKey]:
        """The NSEC owners' canonical keys, in order (made on each call)."""
        return [canonical_key(node.name) for node in self.nsec_nodes]

    @property
    def signed(self) -> bool:
        """True when the zone carries a denial chain (NSEC or NSEC3) and so DNSSEC data."""
        return bool(self.nsec_nodes) or self.nsec3 is not None

    def exists(self, name: dns.name.Name) -> bool:
        """True if ``name`` owns data or is an empty non-terminal (RFC 4592 "exists")."""
        return self.exists_k(name_key(name))

    def exists_k(self, k: Key) -> bool:
        return k in self.by_key or k in self.ent_keys

    # -- NSEC ---------------------------------------------------------------------------

    def nsec_covering(self, name: dns.name.Name) -> Node | None:
        """The node of the NSEC whose owner is ``name`` or the last one before it in
        canonical order (so its NSEC matches or covers ``name``)."""
        return self.nsec_covering_k(name_key(name))

    def nsec_covering_k(self, k: Key) -> Node | None:
        if not self.nsec_sort:
            return None
        i = bisect.bisect_right(self.nsec_sort, sort_key(k[::-1])) - 1
        # Before the first owner (impossible inside the zone: the apex is first) wraps.
        return self.nsec_nodes[i]

    # -- NSEC3 --------------------------------------------------------------------------

    def nsec3_hash(self, name: dns.name.Name) -> str:
        """The lower-case base32hex NSEC3 hash label of ``name`` (RFC 5155 5)."""
        digest = self.nsec3_hash_k(name_key(name)).to_bytes(20, "big")
        return base64.b32hexencode(digest).decode("ascii").lower()

    def nsec3_hash_k(self, k: Key) -> int:
        """The NSEC3 hash of a name key as an integer, memoised: the closest encloser and
        wildcard of most denials are the same few names.  Integers order like the
        base32hex labels and need no base32 encoding (pure Python in the standard
        library, microseconds per hash)."""
        cache = self.nsec3_cache
        hit = cache.get(k)
        if hit is not None:
            return hit
        assert self.nsec3 is not None
        out = nsec3_int(self.nsec3, k)
        if len(cache) >= NSEC3_CACHE_LIMIT:
            cache.clear()
        cache[k] = out
        return out

    def nsec3_matching(self, k: Key) -> Node | None:
        """The NSEC3 node whose hashed owner equals the hash of name key ``k``, if any."""
        return self.nsec3_by_hash.get(self.nsec3_hash_k(k))

    def nsec3_covering(self, k: Key) -> Node | None:
        """The NSEC3 node covering (or matching) the hash of name key ``k`` (wrapping), or
        None when the zone has an NSEC3PARAM but no NSEC3 records (a chain not built yet):
        there is then no proof to give."""
        if not self.nsec3_hashes:
            return None
        h = self.nsec3_hash_k(k)
        i = bisect.bisect_right(self.nsec3_hashes, h) - 1
        return self.nsec3_by_hash[self.nsec3_hashes[i]]

    def record_wires(self) -> Iterator[tuple[dns.name.Name, bytes]]:
        """:meth:`records` as (owner, the RRset's records in uncompressed wire), in the same
        order, without making an RRset object or parsing a record (AXFR of a big zone)."""
        yield self.origin, dict(rrset_wires(self.apex.rrsets))[SOA]
        for node in (*self.nodes.values(), *self.nsec3_nodes.values()):
            at_apex = node.name == self.origin
            for rdtype, wire in rrset_wires(node.rrsets):
                if not (at_apex and rdtype == SOA):
                    yield node.name, wire
            for _, wire in rrset_wires(node.sigs):
                yield node.name, wire

    def records(self) -> Iterator[dns.rrset.RRset]:
        """Every RRset of the zone (for zone transfers), the SOA first."""
        yield self.apex.rrsets[SOA]
        for node in (*self.nodes.values(), *self.nsec3_nodes.values()):
            for rdtype, rrset in node.rrsets.items():
                if not (node.name == self.origin and rdtype == SOA):
                    yield rrset
            yield from node.sigs.values()


def rrset_wires(table: Mapping[int, dns.rrset.RRset]) -> Iterator[tuple[int, bytes]]:
    """(type or covered type, the RRset's records as uncompressed wire) for each RRset of
    ``table`` (a node's ``rrsets`` or ``sigs``): the stored wire of a :class:`WireRRsets`,
    untouched (no RRset object made, no record parsed); others rendered."""
    if isinstance(table, WireRRsets):
        yield from table.wires.items()
        return
    for key, rrset in table.items():
        f = io.BytesIO()
        rrset.to_wire(f)
        yield key, f.getvalue()


def wire_equal(
    a: Mapping[int, dns.rrset.RRset], b: Mapping[int, dns.rrset.RRset], key: int
) -> bool:
    """Whether RRset ``key`` is stored as the same wire in the tables ``a`` and ``b`` (False
    when either is not a :class:`WireRRsets` or lacks it: compare the records then)."""
    if isinstance(a, WireRRsets) and isinstance(b, WireRRsets):
        x, y = a.wires.get(key), b.wires.get(key)
        return x is not None and (x is y or x == y)
    return False


def _node_of(name: dns.name.Name, znode: dns.node.Node) -> Node:
    rrsets: dict[int, dns.rrset.RRset] = {}
    sigs: dict[int, dns.rrset.RRset] = {}
    for rds in znode.rdatasets:
        rrset = dns.rrset.RRset(name, rds.rdclass, rds.rdtype, rds.covers)
        rrset.update(rds)  # type: ignore[no-untyped-call]
        if rds.rdtype == RRSIG:
            sigs[rds.covers] = rrset
        else:
            rrsets[rds.rdtype] = rrset
    return Node(name, rrsets, sigs)


def build(zone: dns.zone.Zone) -> ZoneSnapshot:
    """Precompute a snapshot of ``zone`` (names may be relative or absolute).

    Raises :class:`ZoneError` if the zone has no SOA at its origin or its NSEC3PARAM names
    an unknown hash algorithm.
    """
    origin = zone.origin
    assert origin is not None
    nodes: dict[dns.name.Name, Node] = {}
    nsec3_nodes: dict[dns.name.Name, Node] = {}
    for rel, znode in zone.nodes.items():
        name = rel.derelativize(origin)
        node = _node_of(name, znode)
        types = set(node.rrsets) | set(node.sigs)
        if NSEC3 in node.rrsets and types <= {NSEC3} and len(name) == len(origin) + 1:
            nsec3_nodes[name] = node
        elif node.rrsets or node.sigs:
            nodes[name] = node
    if origin not in nodes or SOA not in nodes[origin].rrsets:
        raise ZoneError(f"zone {origin}: no SOA at the zone apex")
    soa = nodes[origin].rrsets[SOA]

    ents: set[dns.name.Name] = set()
    cuts: set[dns.name.Name] = set()
    has_dname = False
    for name, node in nodes.items():
        if NS in node.rrsets and name != origin:
            cuts.add(name)
        if DNAME in node.rrsets:
            has_dname = True
        parent = name
        while len(parent) > len(origin) + 1:
            parent = parent.parent()
            if parent in nodes or parent in ents:
                break
            ents.add(parent)

    params: Nsec3Params | None = None
    by_hash: dict[int, Node] = {}
    if NSEC3PARAM in nodes[origin].rrsets:
        for rd in nodes[origin].rrsets[NSEC3PARAM]:
            if rd.flags == 0:  # a chain being built has flags != 0: not the active one
                if rd.algorithm != 1:
                    raise ZoneError(f"zone {origin}: unknown NSEC3 hash algorithm {rd.algorithm}")
                params = Nsec3Params(
                    salt=bytes(rd.salt), iterations=rd.iterations, algorithm=rd.algorithm
                )
                break
        _index_nsec3(nsec3_nodes, by_hash)
    return _snapshot(
        origin,
        int(soa[0].serial),
        nodes,
        nsec3_nodes,
        by_hash,
        params,
        ents=_frozen(ents),
        cuts=_frozen(cuts),
        has_dname=has_dname,
        by_key={name_key(n): node for n, node in nodes.items()},
        ent_keys=_frozen(name_key(n) for n in ents),
        cut_keys=_frozen(name_key(n) for n in cuts),
    )


def _snapshot(
    origin: dns.name.Name,
    serial: int,
    nodes: dict[dns.name.Name, Node],
    nsec3_nodes: dict[dns.name.Name, Node],
    by_hash: dict[int, Node],
    params: Nsec3Params | None,
    *,
    ents: frozenset[dns.name.Name],
    cuts: frozenset[dns.name.Name],
    has_dname: bool,
    by_key: dict[Key, Node],
    ent_keys: frozenset[Key],
    cut_keys: frozenset[Key],
    wire_memo: dict[int, tuple[dns.rrset.RRset, bytes, int]] | None = None,
) -> ZoneSnapshot:
    """The snapshot of ``nodes``, with what follows from them (the NSEC owners in
    canonical order and their keys and nodes, the sorted NSEC3 hashes, the negative SOA)
    derived here once for both builders."""
    # Sorted by their sort keys (bytes in canonical order: one key made per name)
    owners = [node for node in nodes.values() if NSEC in node.rrsets]
    keys = [sort_key(canonical_key(node.name)) for node in owners]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return ZoneSnapshot(
        origin=origin,
        serial=serial,
        nsec_sort=[keys[i] for i in order] or _NO_SORT,
        nsec_nodes=[owners[i] for i in order] or _NO_NSEC_NODES,
        nsec3=params,
        nsec3_hashes=sorted(by_hash) if by_hash else _NO_HASHES,
        nsec3_cache={} if params is not None else _NO_CACHE,
        nsec3_by_hash=by_hash or _NO_NODES_BY_HASH,
        nsec3_nodes=nsec3_nodes or _NO_NODES,
        ents=ents,
        cuts=cuts,
        has_dname=has_dname,
        by_key=by_key,
        ent_keys=ent_keys,
        cut_keys=cut_keys,
        wire_memo={} if wire_memo is None else wire_memo,
    )


class NodesByName(Mapping[dns.name.Name, Node]):
    """A snapshot's nodes by owner name (any case), in the order of its ``by_key``, which
    this reads: the snapshot keeps one dict of its names, by label tuple (the answer
    path's key), not a second one by :class:`dns.name.Name`."""

    __slots__ = ("_by_key",)

    def __init__(self, by_key: dict[Key, Node]) -> None:
        self._by_key = by_key

    def __getitem__(self, name: dns.name.Name) -> Node:
        got = self._by_key.get(name.labels)
        return got if got is not None else self._by_key[name_key(name)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, dns.name.Name):
            return False
        return name.labels in self._by_key or name_key(name) in self._by_key

    def __iter__(self) -> Iterator[dns.name.Name]:
        return (node.name for node in self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def values(self) -> ValuesView[Node]:
        return self._by_key.values()

    def items(self) -> ItemsView[dns.name.Name, Node]:
        return _NodeItems(self, self._by_key)


class _NodeItems(ItemsView[dns.name.Name, Node]):
    """(name, node) pairs straight from the nodes (no lookup by name per pair)."""

    __slots__ = ("_nodes",)

    def __init__(self, mapping: NodesByName, by_key: dict[Key, Node]) -> None:
        super().__init__(mapping)
        self._nodes = by_key

    def __iter__(self) -> Iterator[tuple[dns.name.Name, Node]]:
        return ((node.name, node) for node in self._nodes.values())


class WireRRsets(Mapping[int, dns.rrset.RRset]):
    """The RRsets (or RRSIG RRsets, by covered type) of one owner, each kept as one bytes
    object: its records in uncompressed response wire form.  They become dnspython RRsets
    (:class:`LazyRRset`) only when first asked for.

    Loading a zone then builds no dnspython object per record, and holds one object per
    RRset; an answer pays once for the RRsets it uses.  The stored wire goes into the
    snapshot's ``wire_memo`` with the RRset, ready for the fast renderer (see
    :func:`dnsseal.proto.fastpath.rrset_wire`)."""

    __slots__ = ("_done", "_memo", "_name", "counts", "wires")

    def __init__(
        self,
        name: dns.name.Name,
        src: Mapping[int, bytes],
        memo: dict[int, tuple[dns.rrset.RRset, bytes, int]],
        counts: dict[int, int] | None = None,
    ) -> None:
        """``src``: type -> the RRset's records as uncompressed response wire;
        ``counts``: the record count of the RRsets holding more than one (None: all one).
        The byte-level answer path reads ``wires`` and ``counts`` directly."""
        self._name = name
        self.wires = src
        self.counts = counts
        self._done: dict[int, dns.rrset.RRset] | None = None
        self._memo = memo

    def __getitem__(self, rdtype: int) -> dns.rrset.RRset:
        done = self._done
        if done is None:
            done = self._done = {}
        else:
            hit = done.get(rdtype)
            if hit is not None:
                return hit
        wire = self.wires[rdtype]
        rrset = LazyRRset(self._name, rdtype, wire)
        done[rdtype] = rrset
        self._memo[id(rrset)] = (rrset, wire, rrset._count)
        return rrset

    def __contains__(self, rdtype: object) -> bool:
        return rdtype in self.wires

    def __iter__(self) -> Iterator[int]:
        return iter(self.wires)

    def __len__(self) -> int:
        return len(self.wires)


IN = dns.rdataclass.IN
_RR_FIXED = struct.Struct("!HHIH")


# The slot descriptor holding a dnspython set's items (a dict), and RdataType members by
# value (dnspython's enum constructor costs microseconds per call).
_ITEMS: Any = dns.set.Set.__dict__["items"]
_RDTYPE: dict[int, dns.rdatatype.RdataType] = {}


def _rdtype(value: int) -> dns.rdatatype.RdataType:
    got = _RDTYPE.get(value)
    if got is None:
        got = _RDTYPE[value] = dns.rdatatype.RdataType(value)
    return got


class LazyRRset(dns.rrset.RRset):
    """A dnspython RRset whose RDATA objects are parsed from the stored response wire only
    when something reads them.  The fast renderer never does (it uses the wire memoised
    with the RRset), so the hot path builds no Rdata objects; the general path, CNAME/NS
    targets and wildcard copies see an ordinary RRset."""

    __slots__ = ("_count", "_src")

    def __init__(self, name: dns.name.Name, key: int, wire: bytes) -> None:
        """``wire``: the records of one RRset with owner ``name`` (uncompressed, as
        :func:`_response_wire` makes them); ``key``: the covered type for RRSIGs."""
        # The attributes dns.rrset.RRset.__init__ sets, without its per-call enum checks.
        owner = name_wire_len(name)
        rtype, _, ttl, _ = _RR_FIXED.unpack_from(wire, owner)
        _ITEMS.__set__(self, {})
        self.rdclass = IN
        self.rdtype = _rdtype(rtype)
        self.covers = _rdtype(key if rtype == RRSIG else 0)
        self.ttl = ttl
        self.name = name
        self.deleting = None
        self._src: bytes | None = wire
        self._count = len(rdata_spans(wire, owner))

    @property
    def items(self) -> dict[Any, None]:
        try:
            wire = self._src
        except AttributeError:  # a copy made by dnspython's clone protocol
            wire = None
        if wire is not None:
            # Parsed before the source is let go: a reader in another thread (a transfer
            # rendered off the event loop) meanwhile parses it too, never sees it empty.
            rtype = self.rdtype
            spans = rdata_spans(wire, name_wire_len(self.name))
            parsed = [dns.rdata.from_wire(IN, rtype, wire, i, n) for i, n in spans]
            _ITEMS.__set__(self, dict.fromkeys(parsed))
            self._src = None
        got: dict[Any, None] = _ITEMS.__get__(self)
        return got

    @items.setter
    def items(self, value: dict[Any, None]) -> None:
        _ITEMS.__set__(self, value)

    def unparsed(self) -> bytes | None:
        """The stored response wire while no reader has parsed it yet (None after)."""
        try:
            return self._src
        except AttributeError:  # a copy made by dnspython's clone protocol
            return None


def rrsig_expirations(rrset: dns.rrset.RRset) -> list[int]:
    """The expiration fields (32-bit, as on the wire) of the RRSIGs in ``rrset``, read from
    a :class:`LazyRRset`'s wire when it is still unparsed: walking every signature of a
    zone this way builds no Rdata objects (and leaves none cached in the snapshot)."""
    wire = rrset.unparsed() if isinstance(rrset, LazyRRset) else None
    if wire is None:
        return [int(rd.expiration) for rd in rrset]
    return wire_expirations(wire, name_wire_len(rrset.name))


def wire_expirations(wire: bytes, owner: int) -> list[int]:
    """The expiration fields of the RRSIG records in ``wire`` (uncompressed, owners
    ``owner`` octets long).  RRSIG RDATA: type covered (2), algorithm (1), labels (1),
    original TTL (4), then the signature expiration (4) (RFC 4034 s3.1)."""
    return [int.from_bytes(wire[p + 8 : p + 12], "big") for p, _ in rdata_spans(wire, owner)]


def name_wire_len(name: dns.name.Name) -> int:
    """The length of ``name`` in uncompressed wire form."""
    return sum(len(label) + 1 for label in name.labels)


def rdata_spans(wire: bytes, owner: int) -> list[tuple[int, int]]:
    """(offset, length) of each RDATA in ``wire`` (records whose owner takes ``owner``
    bytes)."""
    spans = []
    pos, end = 0, len(wire)
    while pos < end:
        pos += owner + 10
        rdlen = int.from_bytes(wire[pos - 2 : pos], "big")
        spans.append((pos, rdlen))
        pos += rdlen
    return spans


def _response_wire(owner: bytes, m: model.RRset) -> bytes:
    """The records of ``m`` as uncompressed response wire (``owner``: the owner's wire)."""
    return b"".join(owner + _RR_FIXED.pack(m.rtype, IN, m.ttl, len(rd)) + rd for rd in m.rdatas)


def build_from_model(zone: model.Zone) -> ZoneSnapshot:
    """Precompute a snapshot of the zone model ``zone`` (lower-case owners, wire RDATA, as
    :func:`dnsseal.zone.text.parse_zone_text` returns it) without building dnspython
    objects per record.  Answers are the same as from :func:`build` of the same zone
    (owner names and the names in RDATA come out lower-case: the model is canonical).

    Raises :class:`ZoneError` like :func:`build`.
    """
    return _assemble(zone.origin, _owner_wires(zone), lambda: zone.soa().serial)


# One owner's share of a snapshot as plain data: its name, its RRsets' response wire by
# type, the record counts of those holding more than one (None: all one), and the same
# for its RRSIG RRsets by covered type.
OwnerWires = tuple[
    dns.name.Name, dict[int, bytes], dict[int, int] | None, dict[int, bytes], dict[int, int] | None
]


def _owner_wires(zone: model.Zone) -> Iterator[OwnerWires]:
    empty: Mapping[int, model.RRset] = {}
    to_wire = _response_wire
    names = list(zone.rrsets)
    names += [n for n in zone.rrsigs if n not in zone.rrsets]  # RRSIG-only owners (rare)
    for name in names:
        data = zone.rrsets.get(name, empty)
        sigs = zone.rrsigs.get(name, empty)
        owner = b"".join(bytes((len(label),)) + label for label in name.labels)
        yield (
            name,
            {t: to_wire(owner, m) for t, m in data.items()},
            {t: len(m.rdatas) for t, m in data.items() if len(m.rdatas) != 1} or None,
            {t: to_wire(owner, m) for t, m in sigs.items()},
            {t: len(m.rdatas) for t, m in sigs.items() if len(m.rdatas) != 1} or None,
        )


def _assemble(
    origin: dns.name.Name, owners: Iterable[OwnerWires], serial: Callable[[], int]
) -> ZoneSnapshot:
    """The snapshot of the owners ``owners`` (see :data:`OwnerWires`) of the zone at
    ``origin``; ``serial`` gives the SOA serial once the apex is known to hold an SOA."""
    memo: dict[int, tuple[dns.rrset.RRset, bytes, int]] = {}
    depth = len(origin.labels)
    nodes: dict[dns.name.Name, Node] = {}
    nsec3_nodes: dict[dns.name.Name, Node] = {}
    by_key: dict[Key, Node] = {}
    cut_keys: set[Key] = set()
    has_dname = False
    for name, data_w, data_n, sigs_w, sigs_n in owners:
        node = Node(
            name, WireRRsets(name, data_w, memo, data_n), WireRRsets(name, sigs_w, memo, sigs_n)
        )
        labels = name.labels
        if (
            NSEC3 in data_w
            and len(labels) == depth + 1
            and len(data_w) == 1
            and all(t == NSEC3 for t in sigs_w)
        ):
            nsec3_nodes[name] = node
            continue
        nodes[name] = node
        by_key[labels] = node
        if NS in data_w and len(labels) > depth:
            cut_keys.add(labels)
        if DNAME in data_w:
            has_dname = True
    apex = nodes.get(origin)
    if apex is None or SOA not in apex.rrsets:
        raise ZoneError(f"zone {origin}: no SOA at the zone apex")
    ent_keys: set[Key] = set()
    for labels in by_key:
        for i in range(1, len(labels) - depth):
            parent = labels[i:]
            if parent in by_key or parent in ent_keys:
                break
            ent_keys.add(parent)
    params: Nsec3Params | None = None
    by_hash: dict[int, Node] = {}
    p = apex.rrsets.wires.get(NSEC3PARAM) if isinstance(apex.rrsets, WireRRsets) else None
    if p is not None:
        owner = name_wire_len(origin)
        for pos, rdlen in rdata_spans(p, owner):
            wire = p[pos : pos + rdlen]
            if wire[1] == 0:  # flags: a chain being built has flags != 0
                if wire[0] != 1:
                    raise ZoneError(f"zone {origin}: unknown NSEC3 hash algorithm {wire[0]}")
                iterations = int.from_bytes(wire[2:4], "big")
                params = Nsec3Params(
                    salt=wire[5 : 5 + wire[4]], iterations=iterations, algorithm=wire[0]
                )
                break
        _index_nsec3(nsec3_nodes, by_hash)
    return _snapshot(
        origin,
        serial(),
        nodes,
        nsec3_nodes,
        by_hash,
        params,
        ents=_frozen(dns.name.Name(k) for k in ent_keys),
        cuts=_frozen(by_key[k].name for k in cut_keys),
        has_dname=has_dname,
        wire_memo=memo,
        by_key=by_key,
        ent_keys=_frozen(ent_keys),
        cut_keys=_frozen(cut_keys),
    )


PACK_CHUNK = 5000  # owners per part of pack_owners


def pack_owners(zone: model.Zone, chunk: int = PACK_CHUNK) -> Iterator[bytes]:
    """What :func:`build_from_model` makes of ``zone`` before it makes any object it
    keeps (each owner's response wire, see :data:`OwnerWires`), as parts for
    :func:`unpack_snapshot`, made one at a time: the zone's origin and serial, then the
    owners ``chunk`` at a time.  Each is a pickle of plain tuples, dicts, bytes and ints,
    made and read in C."""
    try:
        serial: int | None = zone.soa().serial
    except ValueError:  # no SOA: unpack_snapshot raises ZoneError, as build_from_model
        serial = None
    yield pickle.dumps((zone.origin.labels, serial), pickle.HIGHEST_PROTOCOL)
    owners: list[tuple[Any, ...]] = []
    for name, *rest in _owner_wires(zone):
        owners.append((name.labels, *rest))
        if len(owners) >= chunk:
            yield pickle.dumps(owners, pickle.HIGHEST_PROTOCOL)
            owners = []
    if owners:
        yield pickle.dumps(owners, pickle.HIGHEST_PROTOCOL)


def unpack_snapshot(parts: Iterable[bytes | memoryview]) -> ZoneSnapshot:
    """The snapshot of the zone :func:`pack_owners` packed (in this process or one of its
    own: the owners are taken as they come, checked and lower-case when they were packed);
    the same as :func:`build_from_model` of that zone.  Its objects are made here in one
    pass, in the order they are kept, as the parts come (from another process, while it
    makes the next ones): a zone parsed there and unpacked here leaves none of the
    parser's freed memory between them.

    Raises :class:`ZoneError` like :func:`build_from_model`."""
    stream = iter(parts)
    origin_labels, serial = pickle.loads(next(stream))
    origin = model.OwnerName.trusted(origin_labels)
    trusted = model.OwnerName.trusted

    def named() -> Iterator[OwnerWires]:
        for part in stream:
            owners = pickle.loads(part)
            for i in range(len(owners)):
                # Each entry let go once taken: the next owner's objects reuse its memory.
                labels, data_w, data_n, sigs_w, sigs_n = owners[i]
                owners[i] = None
                name = origin if labels == origin_labels else trusted(labels)
                yield name, data_w, data_n, sigs_w, sigs_n

    def soa_serial() -> int:
        if serial is None:
            raise ZoneError(f"zone {origin}: no SOA at the zone apex")
        return int(serial)

    return _assemble(origin, named(), soa_serial)


def update_from_model(
    prev: ZoneSnapshot,
    zone: model.Zone,
    names: Iterable[dns.name.Name],
    full: Callable[[], model.Zone] | None = None,
    owns: Callable[[dns.name.Name], bool] | None = None,
) -> ZoneSnapshot:
    """:func:`build_from_model` of ``zone`` for a zone that differs from the one ``prev``
    was built from only at ``names`` (every owner a record was added or removed at: a
    version's diff), in O(those names): the nodes elsewhere are shared with ``prev``.

    Falls back to :func:`build_from_model` when a changed name moves a zone cut, a DNAME or
    the chain parameters, makes or ends an empty non-terminal, or the zone has no
    NSEC/NSEC3 chain to keep the name order from.  ``full``: when ``zone`` holds only the
    apex and the owners at ``names`` (and, in an NSEC3 zone, their hashed owners), the
    whole new version for that fallback (see :func:`update_from_diff`), and ``owns``:
    whether the new version has data at a name."""

    def build_from_model(partial: model.Zone) -> ZoneSnapshot:
        return _build_from_model(full() if full is not None else partial)

    origin = zone.origin
    depth = len(origin.labels)
    has_owner = owns if owns is not None else zone.rrsets.__contains__
    apex = zone.rrsets.get(origin, {})
    old_apex = prev.by_key.get(origin.labels)
    nsec3 = NSEC3PARAM in apex
    if (
        old_apex is None
        or (NSEC not in apex and not nsec3)
        or nsec3 != (prev.nsec3 is not None)
        or (
            apex.get(NSEC3PARAM) is not None
            and old_apex.rrsets.get(NSEC3PARAM) is not None
            and _param_changed(prev, apex[NSEC3PARAM])
        )
    ):
        return build_from_model(zone)
    memo = prev.wire_memo
    empty: Mapping[int, model.RRset] = {}
    # dict.copy, not dict(): it copies the table as it is, holes left by deleted keys and
    # all, where dict() of a dict with holes inserts every key again, comparing the keys
    # whose hashes collide (dnspython's name hash collides often: many thousands of
    # name comparisons for a 100k-name zone).
    nsec3_nodes = prev.nsec3_nodes.copy()
    by_key = prev.by_key.copy()
    by_hash = prev.nsec3_by_hash.copy()
    hashes = list(prev.nsec3_hashes)
    nsec_sort = list(prev.nsec_sort)
    nsec_nodes = list(prev.nsec_nodes)
    ents, ent_keys = prev.ents, prev.ent_keys
    # Owners as the model's names (hash kept, quick to compare), like build_from_model's.
    changed = sorted(
        {model.OwnerName.trusted(n.canonicalize().labels) for n in names}, key=canonical_key
    )
    for name in changed:
        data = zone.rrsets.get(name, empty)
        sigs = zone.rrsigs.get(name, empty)
        labels = name.labels
        old = by_key.get(labels)
        before = old.rrsets if old is not None else empty
        if (DNAME in data) != (DNAME in before) or (
            len(labels) > depth and (NS in data) != (NS in before)
        ):
            return build_from_model(zone)  # a zone cut or DNAME comes or goes
        is_nsec3 = (
            NSEC3 in data and len(labels) == depth + 1 and len(data) == 1
            and all(t == NSEC3 for t in sigs)
        )  # fmt: skip
        if old is not None or (not is_nsec3 and (data or sigs)):
            # A name of the zone's tree comes, goes or changes: its parent must stay a
            # node (or the apex), and a name that goes must have nothing below it.
            parent = labels[1:]
            if len(labels) > depth + 1 and parent not in by_key:
                return build_from_model(zone)
            if old is not None and not data:
                k = canonical_key(name)
                sk = sort_key(k)
                i = bisect.bisect_right(nsec_sort, sk)
                below = i < len(nsec_sort) and nsec_sort[i].startswith(sk)
                if below or (nsec3 and has_owner(_hashed_owner(prev, labels))):
                    return build_from_model(zone)  # (it stays as an empty non-terminal)
        if old is not None:
            del by_key[labels]
            if NSEC in old.rrsets:
                i = bisect.bisect_left(nsec_sort, sort_key(canonical_key(name)))
                del nsec_sort[i], nsec_nodes[i]
        old3 = nsec3_nodes.pop(name, None)
        if old3 is not None:
            label = labels[0]
            if len(label) == SHA1_B32_LEN and label.isalnum():
                with contextlib.suppress(ValueError):
                    h = int(label, 32)
                    if by_hash.pop(h, None) is not None:
                        del hashes[bisect.bisect_left(hashes, h)]
        if not data and not sigs:
            continue
        owner = b"".join(bytes((len(label),)) + label for label in labels)
        data_w = {t: _response_wire(owner, m) for t, m in data.items()}
        sigs_w = {t: _response_wire(owner, m) for t, m in sigs.items()}
        data_n = {t: len(m.rdatas) for t, m in data.items() if len(m.rdatas) != 1} or None
        sigs_n = {t: len(m.rdatas) for t, m in sigs.items() if len(m.rdatas) != 1} or None
        node = Node(
            name, WireRRsets(name, data_w, memo, data_n), WireRRsets(name, sigs_w, memo, sigs_n)
        )
        if is_nsec3:
            nsec3_nodes[name] = node
            one: dict[dns.name.Name, Node] = {name: node}
            added: dict[int, Node] = {}
            _index_nsec3(one, added)
            for h, n3 in added.items():
                if h not in by_hash:
                    bisect.insort(hashes, h)
                by_hash[h] = n3
            continue
        by_key[labels] = node
        if labels in ent_keys:  # an empty non-terminal that now has data
            ent_keys = _frozen(ent_keys - {labels})
            ents = _frozen(e for e in ents if e.labels != labels)
        if NSEC in data:
            k = canonical_key(name)
            sk = sort_key(k)
            i = bisect.bisect_left(nsec_sort, sk)
            nsec_sort.insert(i, sk)
            nsec_nodes.insert(i, node)
    if SOA not in by_key.get(origin.labels, Node(origin)).rrsets:
        raise ZoneError(f"zone {origin}: no SOA at the zone apex")
    return ZoneSnapshot(
        origin=origin,
        serial=zone.soa().serial,
        nsec_sort=nsec_sort or _NO_SORT,
        nsec_nodes=nsec_nodes or _NO_NSEC_NODES,
        nsec3=prev.nsec3,
        nsec3_hashes=hashes if hashes else _NO_HASHES,
        nsec3_cache={} if prev.nsec3 is not None else _NO_CACHE,
        nsec3_by_hash=by_hash or _NO_NODES_BY_HASH,
        nsec3_nodes=nsec3_nodes or _NO_NODES,
        ents=ents,
        cuts=prev.cuts,
        has_dname=prev.has_dname,
        by_key=by_key,
        ent_keys=ent_keys,
        cut_keys=prev.cut_keys,
        wire_memo=memo,
        base=weakref.ref(prev),
        changed=_frozen(name.labels for name in changed),
    )


_build_from_model = build_from_model


def node_model(node: Node) -> tuple[dict[int, model.RRset], dict[int, model.RRset]]:
    """The model RRsets of ``node`` (by type, and the RRSIG RRsets by covered type), read
    back from the response wire it stores (the RDATA in it is the model's canonical RDATA,
    in the model's order)."""
    out: tuple[dict[int, model.RRset], dict[int, model.RRset]] = ({}, {})
    name = node.name
    owner = name_wire_len(name)
    for table, got in zip((node.rrsets, node.sigs), out, strict=True):
        for key, wire in rrset_wires(table):
            rtype, _, ttl, _ = _RR_FIXED.unpack_from(wire, owner)
            rdatas = tuple(wire[p : p + n] for p, n in rdata_spans(wire, owner))
            if not isinstance(table, WireRRsets):  # (from dnspython: to canonical RDATA)
                rdatas = canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in table[key])
            got[key] = model.RRset(name, rtype, ttl, rdatas)
    return out


def snapshot_model(snap: ZoneSnapshot) -> model.Zone:
    """The zone model ``snap`` was built from (names as the snapshot holds them)."""
    rrsets: dict[dns.name.Name, dict[int, model.RRset]] = {}
    rrsigs: dict[dns.name.Name, dict[int, model.RRset]] = {}
    for name, node in (*snap.nodes.items(), *snap.nsec3_nodes.items()):
        data, sigs = node_model(node)
        if data:
            rrsets[name] = data
        if sigs:
            rrsigs[name] = sigs
    return model.Zone(snap.origin, rrsets, rrsigs)


def update_from_diff(prev: ZoneSnapshot, change: ZoneDiff) -> ZoneSnapshot:
    """The snapshot of the version made by applying ``change`` to the one ``prev`` was
    built from (by :func:`build_from_model` or this), without that version's model: the
    owners ``change`` touches (and the apex) are read back from ``prev``
    (:func:`node_model`), changed, and built as :func:`update_from_model` does, in O(the
    change); only its fallback (a zone cut, DNAME, chain parameter or empty non-terminal
    changing) reads back the whole zone.  A worker process keeps no model of the zones it
    serves this way."""
    origin = prev.origin
    names = {r[0] for r in (*change.removed, *change.added)}
    wanted = {*names, origin}
    rrsets: dict[dns.name.Name, dict[int, model.RRset]] = {}
    rrsigs: dict[dns.name.Name, dict[int, model.RRset]] = {}
    for name in wanted:
        node = prev.by_key.get(name_key(name)) or prev.nsec3_nodes.get(name)
        if node is None:
            continue
        data, sigs = node_model(node)
        if data:
            rrsets[node.name] = data
        if sigs:
            rrsigs[node.name] = sigs
    zone = apply_diff(model.Zone(origin, rrsets, rrsigs), change)

    def owns(name: dns.name.Name) -> bool:
        """Whether the new version has data at ``name`` (outside the change: as before)."""
        if name in names:
            return name in zone.rrsets
        return name in prev.nsec3_nodes or name_key(name) in prev.by_key

    return update_from_model(
        prev, zone, names, full=lambda: apply_diff(snapshot_model(prev), change), owns=owns
    )


def _param_changed(prev: ZoneSnapshot, param: model.RRset) -> bool:
    p = prev.nsec3
    if p is None:
        return True
    wire = param.rdatas[0]
    return (wire[0], int.from_bytes(wire[2:4], "big"), wire[5 : 5 + wire[4]]) != (
        p.algorithm,
        p.iterations,
        p.salt,
    )


def _hashed_owner(prev: ZoneSnapshot, labels: tuple[bytes, ...]) -> dns.name.Name:
    """The NSEC3 owner name of the name ``labels`` in ``prev``'s chain."""
    assert prev.nsec3 is not None
    digest = nsec3_int(prev.nsec3, tuple(label.lower() for label in labels))
    label = base64.b32hexencode(digest.to_bytes(20, "big")).lower()
    return dns.name.Name((label, *prev.origin.labels))


def _index_nsec3(nsec3_nodes: Mapping[dns.name.Name, Node], by_hash: dict[int, Node]) -> None:
    """Fill ``by_hash`` with the NSEC3 nodes by the integer of their hashed owner label
    (``int(label, 32)`` reads base32hex); labels that are no SHA-1 hash are left out."""
    for name, node in nsec3_nodes.items():
        label = name.labels[0]
        if len(label) != SHA1_B32_LEN or not label.isalnum():
            continue
        try:
            by_hash[int(label, 32)] = node
        except ValueError:
            continue


def load_text(text: str, origin: dns.name.Name | str, path: str = "<zone>") -> ZoneSnapshot:
    """A snapshot of the master-file ``text`` of zone ``origin`` (the server's loader):
    parsed by :func:`dnsseal.zone.text.parse_zone_text` (its fast path when the file is
    plain) and built with :func:`build_from_model`.

    Raises :class:`dnsseal.errors.FileFormatError` naming ``path`` (and the line) for bad
    text, :class:`ZoneError` for a zone that cannot be served.
    """
    return build_from_model(parse_zone_text(text, origin, path=path))


def _negative_soa(apex: Node) -> list[dns.rrset.RRset]:
    """The SOA (and RRSIG) for negative answers: TTL min(SOA TTL, SOA MINIMUM) (RFC 2308 3),
    applied to the RRSIG too, as BIND and Knot do."""
    soa = apex.rrsets[SOA]
    ttl = min(soa.ttl, soa[0].minimum)
    out = []
    for rrset in (soa, apex.sigs.get(SOA)):
        if rrset is not None:
            copy = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
            copy.update(rrset)  # type: ignore[no-untyped-call]
            copy.ttl = ttl
            out.append(copy)
    return out


def negative_wires(snap: ZoneSnapshot) -> tuple[tuple[bytes, int], tuple[bytes, int]] | None:
    """The uncompressed wire and record count of :attr:`ZoneSnapshot.negative_soa`'s SOA,
    and of the SOA with its RRSIGs, made from the apex's stored response wire with the
    negative TTL written in (no dnspython object made); None when the apex does not
    store wire (a snapshot from :func:`build`) or holds other than one SOA record."""
    apex = snap.apex
    data, sigs = apex.rrsets, apex.sigs
    if not isinstance(data, WireRRsets) or not isinstance(sigs, WireRRsets):
        return None
    owner = name_wire_len(snap.origin)
    soa = data.wires[SOA]
    if len(rdata_spans(soa, owner)) != 1:
        return None
    ttl = min(int.from_bytes(soa[owner + 4 : owner + 8], "big"), int.from_bytes(soa[-4:], "big"))
    soa = _with_ttl(soa, owner, ttl)
    sig = sigs.wires.get(SOA)
    if sig is None:
        return (soa, 1), (soa, 1)
    return (soa, 1), (soa + _with_ttl(sig, owner, ttl), 1 + len(rdata_spans(sig, owner)))


def _with_ttl(wire: bytes, owner: int, ttl: int) -> bytes:
    """The records of ``wire`` (owners ``owner`` octets long) with their TTL set to ``ttl``."""
    ttl_wire = ttl.to_bytes(4, "big")
    parts = []
    for pos, rdlen in rdata_spans(wire, owner):
        head = pos - 10
        parts.append(wire[head - owner : head + 4] + ttl_wire + wire[head + 8 : pos + rdlen])
    return b"".join(parts)


def occluded(snap: ZoneSnapshot, name: dns.name.Name) -> dns.name.Name | None:
    """The zone cut at or above ``name`` (below the apex), or None if ``name`` is not at or
    under a delegation."""
    n = name
    while len(n) > len(snap.origin):
        if n in snap.cuts:
            return n
        n = n.parent()
    return None
