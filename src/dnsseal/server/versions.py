"""Versions of an inline-signed zone as records: the :class:`Version` the signer hands to
the journal, journal lines to and from records, and the facts about a version that
maintenance needs (signature expirations, signing keys, SOA-only changes)."""

from __future__ import annotations

import hashlib
import marshal
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dnsseal.keys.model import key_tag
from dnsseal.signer.rrsig import absolute_time
from dnsseal.zone.diff import Record, ZoneDiff, diff
from dnsseal.zone.model import OwnerName, RRset, Zone
from dnsseal.zone.rdtext import labels_text
from dnsseal.zone.rrtext import record_text
from dnsseal.zone.text import parse_zone_text

T = dns.rdatatype
IN = dns.rdataclass.IN


@dataclass(frozen=True, slots=True)
class Version:
    """A new signed version: the zone, what changed since ``serial_from`` (None: the first
    version, store it whole), why, and the key events to audit."""

    zone: Zone
    diff: ZoneDiff
    serial_from: int | None
    reason: str

    @property
    def serial(self) -> int:
        return self.zone.soa().serial


# The last owner's labels and text: records come grouped by owner, its text is made once.
_LAST_OWNER: list[tuple[tuple[bytes, ...], str]] = [((), "")]


def record_line(rec: Record) -> str:
    """A diff record as one presentation line with an absolute owner (journal format):
    exactly dnspython's text (the journal removes records by matching it), made without
    building an Rdata object for the usual types (see :mod:`dnsseal.zone.rrtext`)."""
    name, rtype, ttl, wire = rec
    labels = name.labels
    last = _LAST_OWNER[0]
    if last[0] == labels:
        owner = last[1]
    else:
        owner = labels_text(labels) if name.is_absolute() else name.to_text()
        _LAST_OWNER[0] = (labels, owner)
    return record_text(owner, rtype, ttl, wire)


def zone_from_lines(lines: Iterable[str], origin: dns.name.Name) -> Zone:
    """A zone from journal lines (raises FileFormatError when they do not make one)."""
    return parse_zone_text("\n".join(sorted(lines)) + "\n", origin, path="<journal>")


PACKED_FORMAT = b"dnsseal zone 1"  # first item of a packed version


def pack_version(zone: Zone) -> bytes:
    """``zone`` as bytes for :func:`unpack_version` (kept in the journal beside the text
    of the version, so a restart need not parse it): owners as label tuples, RRsets as
    type, TTL and wire RDATA, in :mod:`marshal` (plain tuples of bytes and ints: no
    object of any other kind can come out of it)."""
    rrsets = tuple(
        (name.labels, tuple((int(t), int(r.ttl), r.rdatas) for t, r in node.items()))
        for name, node in zone.rrsets.items()
    )
    sigs = tuple(
        (name.labels, tuple((int(t), int(r.ttl), r.rdatas) for t, r in node.items()))
        for name, node in zone.rrsigs.items()
    )
    origin = zone.origin.labels
    return marshal.dumps((PACKED_FORMAT, origin, int(zone.rdclass), rrsets, sigs))


def _owner(labels: object, origin: tuple[bytes, ...]) -> OwnerName:
    """An owner name from packed labels, checked: lower-case labels of 1 to 63 octets
    ending with the origin's, 255 octets at most."""
    if (
        not isinstance(labels, tuple)
        or len(labels) < len(origin)
        or labels[len(labels) - len(origin) :] != origin
    ):
        raise ValueError("owner outside the zone")
    size = 0
    for i, label in enumerate(labels):
        if not isinstance(label, bytes) or label != label.lower():
            raise ValueError("bad label")
        if not (0 < len(label) < 64 or (not label and i == len(labels) - 1)):
            raise ValueError("bad label length")
        size += len(label) + 1
    if size > 255:
        raise ValueError("name too long")
    return OwnerName.trusted(labels)


def unpack_version(data: bytes, origin: dns.name.Name) -> Zone | None:
    """The zone :func:`pack_version` packed, or None when ``data`` is not one of
    ``origin`` in this format (the caller then reads the version's text)."""
    try:
        fmt, origin_labels, rdclass, rrsets, sigs = marshal.loads(data)
        if fmt != PACKED_FORMAT or origin_labels != origin.canonicalize().labels:
            return None
        apex = _owner(origin_labels, origin_labels)
        owners = {origin_labels: apex}
        out: list[dict[dns.name.Name, dict[int, RRset]]] = [{}, {}]
        for table, packed in zip(out, (rrsets, sigs), strict=True):
            for labels, node in packed:
                name = owners.get(labels)
                if name is None:
                    name = owners[labels] = _owner(labels, origin_labels)
                if not node:
                    raise ValueError("empty node")
                made: dict[int, RRset] = {}
                for t, ttl, rdatas in node:
                    if not (isinstance(t, int) and isinstance(ttl, int)):
                        raise ValueError("bad RRset")
                    if not (isinstance(rdatas, tuple) and rdatas):
                        raise ValueError("bad RRset")
                    if not all(isinstance(rd, bytes) for rd in rdatas):
                        raise ValueError("bad RDATA")
                    made[t] = RRset(name, T.RRSIG if table is out[1] else t, ttl, rdatas)
                table[name] = made
        if not isinstance(rdclass, int) or T.SOA not in out[0].get(apex, {}):
            return None
        return Zone(apex, out[0], out[1], dns.rdataclass.RdataClass.make(rdclass))
    except (ValueError, TypeError, EOFError, IndexError):
        return None


def unpack_own(data: bytes) -> Zone:
    """The zone :func:`pack_version` packed in this process (never bytes read from
    elsewhere: nothing is checked; :func:`unpack_version` checks)."""
    _, origin_labels, rdclass, rrsets, sigs = marshal.loads(data)
    owners: dict[tuple[bytes, ...], OwnerName] = {}
    out: list[dict[dns.name.Name, dict[int, RRset]]] = [{}, {}]
    for table, packed, sig in ((out[0], rrsets, False), (out[1], sigs, True)):
        for labels, node in packed:
            name = owners.get(labels)
            if name is None:
                name = owners[labels] = OwnerName.trusted(labels)
            table[name] = {t: RRset(name, T.RRSIG if sig else t, ttl, rdatas)
                           for t, ttl, rdatas in node}  # fmt: skip
    apex = owners.get(origin_labels) or OwnerName.trusted(origin_labels)
    return Zone(apex, out[0], out[1], dns.rdataclass.RdataClass.make(rdclass))


def sig_expirations(zone: Zone, now: int) -> list[int]:
    """Every RRSIG expiration time of ``zone`` (epoch seconds)."""
    out = []
    for node in zone.rrsigs.values():
        for rr in node.values():
            for wire in rr.rdatas:
                out.append(absolute_time(struct.unpack_from("!I", wire, 8)[0], now))
    return out


def only_soa(change: ZoneDiff, origin: dns.name.Name) -> bool:
    """Does ``change`` touch nothing but the SOA and its signatures?"""
    for name, rtype, _, wire in (*change.removed, *change.added):
        if name != origin:
            return False
        if rtype == T.SOA:
            continue
        if rtype == T.RRSIG and struct.unpack_from("!H", wire)[0] == T.SOA:
            continue
        return False
    return True


# The CDS digest types a key set may carry (SHA-1 too: an old signer's CDS is still ours)
_CDS_DIGESTS = ((1, "sha1"), (2, "sha256"), (4, "sha384"))


def signer_keyset_rdatas(zone: Zone) -> set[bytes]:
    """DNSKEY/CDNSKEY RDATA (and their CDS) of the apex DNSKEYs whose tag signs in ``zone``.
    The CDS RDATA are computed from the wire forms (RFC 4034 s5.1.4), not through text: a
    restart does this for every zone."""
    tags = {
        struct.unpack_from("!H", wire, 16)[0]
        for node in zone.rrsigs.values()
        for rr in node.values()
        for wire in rr.rdatas
    }
    dnskeys = zone.get(zone.origin, T.DNSKEY)
    owner = zone.origin.canonicalize().to_wire()
    assert owner is not None
    out: set[bytes] = set()
    for wire in dnskeys.rdatas if dnskeys else ():
        if len(wire) < 4:
            continue
        flags, protocol, algorithm = struct.unpack_from("!HBB", wire)
        tag = key_tag(flags, protocol, algorithm, wire[4:])
        if tag not in tags:
            continue
        out.add(wire)
        for number, name in _CDS_DIGESTS:
            digest = hashlib.new(name, owner + wire).digest()
            out.add(struct.pack("!HBB", tag, algorithm, number) + digest)
    return out


def data_diff(old: Zone, new: Zone) -> ZoneDiff:
    """The records two versions of the source file differ in, SOA aside."""
    change = diff(old, new)
    return ZoneDiff(
        tuple(r for r in change.removed if r[1] != T.SOA),
        tuple(r for r in change.added if r[1] != T.SOA),
    )
