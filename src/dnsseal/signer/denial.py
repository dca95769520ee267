"""Authenticated denial of existence: NSEC (RFC 4034 4, RFC 4035 2.3) and NSEC3 (RFC 5155)
chains and their type bitmaps, built from a zone's layout.

Bitmaps follow RFC 4035 2.3 and RFC 5155 7.1: at a delegation only NS, DS and the DNSSEC
types appear (glue is not authoritative); RRSIG appears wherever the name has a signed
RRset; an empty non-terminal's NSEC3 has an empty bitmap.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.name
import dns.rdatatype

from dnsseal.errors import InputError
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import type_bitmap
from dnsseal.zone.model import Layout, NameKind, OwnerName, RRset, Zone

T = dns.rdatatype
NSEC3_SHA1 = 1
NSEC3_FLAG_OPTOUT = 0x01
# RFC 9276 3.1: iterations MUST be 0 for new deployments; validators may treat high counts
# as insecure (RFC 9276 3.2), and above 100 as bogus.  We never sign above this.
MAX_ITERATIONS = 100
_DELEGATION_TYPES = frozenset({T.NS, T.DS})


def nsec_types(node: Mapping[int, RRset], kind: NameKind) -> set[int]:
    """The types an NSEC at this name lists (without NSEC3 / chain types of the zone)."""
    present = {t for t in node if t not in (T.NSEC, T.NSEC3)}
    if kind is NameKind.DELEGATION:
        present &= _DELEGATION_TYPES
    return present | {T.NSEC, T.RRSIG}


def nsec_chain(zone: Zone, lay: Layout, ttl: int) -> list[RRset]:
    """The NSEC RRsets of ``zone``: one per apex, authoritative and delegation name, in
    canonical order, the last pointing back to the apex."""
    return [rrset for rrset, _ in nsec_records(zone, lay, ttl)]


def _reversed_labels(name: dns.name.Name) -> tuple[bytes, ...]:
    return name.labels[::-1]


def nsec_records(zone: Zone, lay: Layout, ttl: int) -> list[tuple[RRset, bytes]]:
    """:func:`nsec_chain` with each owner's canonical wire form (made for the chain's
    next-name fields anyway, and what the signer needs)."""
    # A zone's owners are lower-case (the model's rule): canonical order is that of the
    # reversed labels, without canonical.sort_key's lower-casing of every label.
    names = sorted(
        (n for n, k in lay.kinds.items() if k is not NameKind.OCCLUDED), key=_reversed_labels
    )
    out: list[tuple[RRset, bytes]] = []
    bitmaps: dict[tuple[NameKind, tuple[int, ...]], bytes] = {}  # names share a few type sets
    wires = [canonical.name_wire(name) for name in names]
    for i, name in enumerate(names):
        node = zone.rrsets[name]
        kind = lay.kinds[name]
        key = (kind, tuple(node))
        bitmap = bitmaps.get(key)
        if bitmap is None:
            bitmap = bitmaps[key] = type_bitmap(nsec_types(node, kind))
        rdata = wires[i + 1 if i + 1 < len(wires) else 0] + bitmap
        out.append((RRset(name, T.NSEC, ttl, (rdata,)), wires[i]))
    return out


@dataclass(frozen=True, slots=True)
class Nsec3Params:
    """NSEC3 chain parameters (RFC 5155 4): SHA-1, ``iterations`` extra hashings, ``salt``,
    and opt-out (unsigned delegations get no NSEC3 and the flag is set)."""

    salt: bytes = b""
    iterations: int = 0
    opt_out: bool = False
    algorithm: int = NSEC3_SHA1

    def __post_init__(self) -> None:
        if not 0 <= self.iterations <= 0xFFFF:
            raise InputError(f"NSEC3 iterations {self.iterations} out of range")
        if len(self.salt) > 255:
            raise InputError("NSEC3 salt longer than 255 octets")

    @property
    def flags(self) -> int:
        return NSEC3_FLAG_OPTOUT if self.opt_out else 0

    def param_rdata(self) -> bytes:
        """NSEC3PARAM RDATA (flags are always 0 there, RFC 5155 4.1.2)."""
        return struct.pack("!BBHB", self.algorithm, 0, self.iterations, len(self.salt)) + self.salt


def check_iterations(iterations: int, *, force: bool) -> None:
    """Refuse NSEC3 iteration counts RFC 9276 advises against.

    Above :data:`MAX_ITERATIONS` is always refused; any count above 0 is refused unless
    ``force``.  Raises :class:`InputError`.
    """
    if iterations > MAX_ITERATIONS:
        raise InputError(
            f"NSEC3 iterations {iterations} refused: above {MAX_ITERATIONS} validators treat the "
            "zone as insecure or bogus (RFC 9276 section 3.2)"
        )
    if iterations > 0 and not force:
        raise InputError(
            f"NSEC3 iterations {iterations} refused: RFC 9276 section 3.1 says use 0 "
            "(extra iterations cost validators and add no protection); force to override"
        )


def nsec3_hash(name_wire: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5155 section 5 iterated SHA-1 of a canonical owner name."""
    digest = hashlib.sha1(name_wire + salt).digest()
    for _ in range(iterations):
        digest = hashlib.sha1(digest + salt).digest()
    return digest


def hashed_owner(digest: bytes, origin: dns.name.Name) -> dns.name.Name:
    """The NSEC3 owner name of ``digest`` in the zone ``origin`` (RFC 5155 3)."""
    label = base64.b32hexencode(digest).lower()
    labels = (label, *origin.labels)
    if len(label) > 63 or sum(map(len, labels)) + len(labels) > 255:
        return OwnerName(labels)  # dnspython raises its error
    return OwnerName.trusted(labels)


def _included_types(node: Mapping[int, RRset], kind: NameKind, opt_out: bool) -> set[int] | None:
    """The types of a name's NSEC3 bitmap, or None when the name gets no NSEC3 (an unsigned
    delegation under opt-out)."""
    present = {t for t in node if t not in (T.NSEC, T.NSEC3)}
    if kind is NameKind.DELEGATION:
        present &= _DELEGATION_TYPES
        if T.DS not in present and opt_out:
            return None
        if T.DS in present:
            present.add(T.RRSIG)
    else:
        present.add(T.RRSIG)
    return present


def nsec3_included(zone: Zone, lay: Layout, opt_out: bool) -> dict[dns.name.Name, set[int]]:
    """Names that get an NSEC3 (with the types in its bitmap): apex, authoritative names,
    delegations (unsigned ones only without opt-out), and the empty non-terminals above
    them."""
    out: dict[dns.name.Name, set[int]] = {}
    for name, kind in lay.kinds.items():
        if kind is NameKind.OCCLUDED:
            continue
        present = _included_types(zone.rrsets[name], kind, opt_out)
        if present is not None:
            out[name] = present
    for parent in _empty_non_terminals(out, zone.origin):
        out[OwnerName(parent)] = set()
    return out


def _empty_non_terminals(
    names: Iterable[dns.name.Name], origin: dns.name.Name
) -> list[tuple[bytes, ...]]:
    """The labels of the names between ``origin`` and ``names`` that are not themselves
    among ``names`` (the empty non-terminals that get NSEC3 records), each once."""
    depth = len(origin.labels)
    have = list(names)
    seen = {name.labels for name in have}
    out: list[tuple[bytes, ...]] = []
    for name in have:
        labels = name.labels
        for i in range(1, len(labels) - depth):
            parent = labels[i:]
            if parent in seen:
                break
            seen.add(parent)
            out.append(parent)
    return out


def _nsec3_bitmaps(zone: Zone, lay: Layout, opt_out: bool) -> dict[dns.name.Name, bytes]:
    """:func:`nsec3_included` with each name's type bitmap, computed once per distinct set
    of RRset types and kind (a zone's names share a handful)."""
    memo: dict[tuple[NameKind, tuple[int, ...]], bytes | None] = {}
    out: dict[dns.name.Name, bytes] = {}
    rrsets = zone.rrsets
    for name, kind in lay.kinds.items():
        if kind is NameKind.OCCLUDED:
            continue
        key = (kind, tuple(rrsets[name]))
        if key in memo:
            bitmap = memo[key]
        else:
            types = _included_types(rrsets[name], kind, opt_out)
            bitmap = memo[key] = None if types is None else type_bitmap(types)
        if bitmap is not None:
            out[name] = bitmap
    for parent in _empty_non_terminals(out, zone.origin):
        out[OwnerName.trusted(parent)] = b""
    return out


def nsec3_chain(zone: Zone, lay: Layout, params: Nsec3Params, ttl: int) -> list[RRset]:
    """The NSEC3 RRsets of ``zone`` in hash order.  Raises :class:`InputError` on a hash
    collision (change the salt)."""
    return [rrset for rrset, _ in nsec3_records(zone, lay, params, ttl)]


def nsec3_records(
    zone: Zone, lay: Layout, params: Nsec3Params, ttl: int
) -> list[tuple[RRset, bytes]]:
    """:func:`nsec3_chain` with each owner's canonical wire form (what the signer needs).

    Built on bytes: one SHA-1 per name, bitmaps shared by type set, every owner label
    encoded in one pass (:func:`canonical.base32hex_digests`), owner names made without
    dnspython's validation once their length is checked.  Raises :class:`InputError` on a
    hash collision or when the owner names would exceed 255 octets."""
    origin = zone.origin
    origin_wire = canonical.name_wire(origin)
    if len(origin_wire) + 33 > 255:
        raise InputError(f"NSEC3 owner names under {origin} would be longer than 255 octets")
    included = _nsec3_bitmaps(zone, lay, params.opt_out)
    salt, iterations = params.salt, params.iterations
    sha1 = hashlib.sha1
    name_wire = canonical.name_wire
    hashed: dict[bytes, bytes] = {}
    for name, bitmap in included.items():
        digest = sha1(name_wire(name) + salt).digest()
        for _ in range(iterations):
            digest = sha1(digest + salt).digest()
        if digest in hashed:
            raise InputError(f"NSEC3 hash collision at {name}; choose another salt")
        hashed[digest] = bitmap
    order = sorted(hashed)
    labels = canonical.base32hex_digests(order)
    head = struct.pack("!BBHB", params.algorithm, params.flags, params.iterations, len(params.salt))
    head += params.salt
    tail = origin.labels
    trusted = OwnerName.trusted
    nsec3 = T.NSEC3
    out = []
    for i, digest in enumerate(order):
        nxt = order[i + 1] if i + 1 < len(order) else order[0]
        rdata = head + bytes((len(nxt),)) + nxt + hashed[digest]
        label = labels[i]
        owner = trusted((label, *tail))
        out.append((RRset(owner, nsec3, ttl, (rdata,)), bytes((len(label),)) + label + origin_wire))
    return out
