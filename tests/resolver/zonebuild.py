"""Sign small test zones in memory: keys, NSEC or NSEC3 (with opt-out), RRSIGs.

Test helper only: it builds the data the validator checks, with dnspython's ``dns.dnssec.sign``
as the signing primitive and ECDSA P-256 keys, and lets tests break the result on purpose.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dns.rdtypes.ANY.DNSKEY import DNSKEY

T = dns.rdatatype
NOW = 1_700_000_000
INCEPTION = NOW - 86400
EXPIRATION = NOW + 30 * 86400


@dataclass
class SigningKey:
    private: Any
    dnskey: DNSKEY

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)


def make_key(ksk: bool = True, algorithm: int = 13) -> SigningKey:
    flags = 257 if ksk else 256
    priv: Any = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == 15
        else ec.generate_private_key(ec.SECP256R1())
    )
    return SigningKey(priv, dns.dnssec.make_dnskey(priv.public_key(), algorithm, flags=flags))


def nsec3_hash(name: dns.name.Name, salt: bytes, iterations: int) -> bytes:
    h = hashlib.sha1(name.canonicalize().to_wire() + salt).digest()
    for _ in range(iterations):
        h = hashlib.sha1(h + salt).digest()
    return h


def b32(h: bytes) -> str:
    return base64.b32hexencode(h).decode().lower().rstrip("=")


@dataclass
class Nsec3Params:
    salt: bytes = b""
    iterations: int = 0
    opt_out: bool = False


@dataclass
class SignedZone:
    origin: dns.name.Name
    zone: dns.zone.Zone
    keys: list[SigningKey]
    nsec3: Nsec3Params | None = None
    delegations: set[dns.name.Name] = field(default_factory=set)

    def ds(self, digest: str = "SHA256") -> list[dns.rdata.Rdata]:
        return [
            dns.dnssec.make_ds(self.origin, k.dnskey, digest)
            for k in self.keys
            if k.dnskey.flags & 1
        ]

    def rrset(self, name: str | dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        n = dns.name.from_text(name, self.origin) if isinstance(name, str) else name
        rds = self.zone.get_rdataset(n, rdtype)
        if rds is None:
            return None
        rrset = dns.rrset.RRset(n, rds.rdclass, rds.rdtype, rds.covers)
        rrset.update(rds)
        return rrset


def _types_bitmap(types: Iterable[int]) -> str:
    return " ".join(dns.rdatatype.to_text(t) for t in sorted(set(types)))


def sign_zone(
    text: str,
    origin: str,
    *,
    keys: list[SigningKey] | None = None,
    nsec3: Nsec3Params | None = None,
    inception: int = INCEPTION,
    expiration: int = EXPIRATION,
    extra_dnskeys: Iterable[DNSKEY] = (),
    unsigned: bool = False,
) -> SignedZone:
    """Parse ``text`` (master file, relative to ``origin``), add DNSKEYs and an NSEC or NSEC3
    chain, and sign every authoritative RRset with every key."""
    o = dns.name.from_text(origin)
    zone = dns.zone.from_text(text, o, relativize=False, check_origin=False)
    if unsigned:
        cuts0 = {n for n in zone.nodes if n != o and zone.get_rdataset(n, T.NS) is not None}
        return SignedZone(o, zone, [], None, cuts0)
    keys = keys if keys is not None else [make_key()]
    with zone.writer() as txn:
        rds = dns.rdataset.Rdataset(dns.rdataclass.IN, T.DNSKEY, ttl=3600)
        for k in keys:
            rds.add(k.dnskey)
        for extra in extra_dnskeys:
            rds.add(extra)
        txn.replace(o, rds)
    names = sorted(zone.nodes.keys())
    cuts = {n for n in names if n != o and zone.get_rdataset(n, T.NS) is not None}

    def below_cut(n: dns.name.Name) -> bool:
        return any(n != c and n.is_subdomain(c) for c in cuts)

    auth = [n for n in names if not below_cut(n)]
    soa_min = zone.get_rdataset(o, T.SOA)[0].minimum  # type: ignore[index]
    with zone.writer() as txn:
        if nsec3 is None:
            for i, n in enumerate(auth):
                nxt = auth[(i + 1) % len(auth)]
                types = [rds.rdtype for rds in zone.nodes[n].rdatasets] + [T.RRSIG, T.NSEC]
                txn.add(
                    n, soa_min, dns.rdata.from_text("IN", "NSEC", f"{nxt} {_types_bitmap(types)}")
                )
        else:
            salt = nsec3.salt.hex() or "-"
            txn.add(o, 0, dns.rdata.from_text("IN", "NSEC3PARAM", f"1 0 {nsec3.iterations} {salt}"))
            entries: dict[bytes, list[int]] = {}
            for n in auth:
                node_types = [rds.rdtype for rds in zone.nodes[n].rdatasets]
                if n in cuts and T.DS not in node_types and nsec3.opt_out:
                    continue
                signed = n not in cuts or T.DS in node_types
                types = node_types + ([T.RRSIG] if signed else [])
                if n == o:
                    types += [T.NSEC3PARAM]
                entries[nsec3_hash(n, nsec3.salt, nsec3.iterations)] = types
                anc = n.parent()
                while anc != o and anc.is_subdomain(o):
                    h = nsec3_hash(anc, nsec3.salt, nsec3.iterations)
                    if anc not in zone.nodes and h not in entries:
                        entries[h] = []
                    anc = anc.parent()
            ordered = sorted(entries)
            flags = 1 if nsec3.opt_out else 0
            for i, h in enumerate(ordered):
                nxt = ordered[(i + 1) % len(ordered)]
                owner = dns.name.from_text(b32(h), o)
                rd = dns.rdata.from_text(
                    "IN",
                    "NSEC3",
                    f"1 {flags} {nsec3.iterations} {salt} {b32(nxt).upper()} "
                    f"{_types_bitmap(entries[h])}",
                )
                txn.add(owner, soa_min, rd)
    signed = SignedZone(o, zone, keys, nsec3, cuts)
    resign(signed, inception=inception, expiration=expiration)
    return signed


def resign(signed: SignedZone, *, inception: int = INCEPTION, expiration: int = EXPIRATION) -> None:
    """(Re)create every RRSIG of the zone."""
    zone, o, cuts = signed.zone, signed.origin, signed.delegations
    with zone.writer() as txn:
        for n in list(zone.nodes.keys()):
            node = zone.nodes[n]
            for rds in list(node.rdatasets):
                if rds.rdtype == T.RRSIG:
                    txn.delete(n, rds.rdtype, rds.covers)
        for n in list(zone.nodes.keys()):
            if any(n != c and n.is_subdomain(c) for c in cuts):
                continue
            for rds in list(zone.nodes[n].rdatasets):
                if rds.rdtype == T.RRSIG or (n in cuts and rds.rdtype not in (T.DS, T.NSEC)):
                    continue
                for k in signed.keys:
                    if rds.rdtype != T.DNSKEY and k.dnskey.flags & 1 and len(signed.keys) > 1:
                        continue
                    sig = dns.dnssec.sign(
                        (n, rds),
                        k.private,
                        o,
                        k.dnskey,
                        inception=inception,
                        expiration=expiration,
                    )
                    txn.add(n, rds.ttl, sig)
