"""Versions of an inline-signed zone as records: the :class:`Version` the signer hands to
the journal, journal lines to and from records, and the facts about a version that
maintenance needs (signature expirations, signing keys, SOA-only changes)."""

from __future__ import annotations

import hashlib
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
from dnsseal.zone.model import Zone
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


def record_line(rec: Record) -> str:
    """A diff record as one presentation line with an absolute owner (journal format)."""
    name, rtype, ttl, wire = rec
    rt = dns.rdatatype.RdataType(rtype)
    rd = dns.rdata.from_wire(IN, rt, wire, 0, len(wire))
    return f"{name.to_text()} {ttl} IN {dns.rdatatype.to_text(rt)} {rd.to_text()}"


def zone_from_lines(lines: Iterable[str], origin: dns.name.Name) -> Zone:
    """A zone from journal lines (raises FileFormatError when they do not make one)."""
    return parse_zone_text("\n".join(sorted(lines)) + "\n", origin, path="<journal>")


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
