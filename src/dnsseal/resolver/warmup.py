"""Warm-up: one resolution through every layer before the first client's, so that client
does not pay for Python's first-use costs (lazy imports of dnspython's record classes and
of the crypto bindings, first signature checks, first socket exchange): about 10 ms of a
cold resolution on this machine, more than the upstream round trips themselves.

A throw-away :class:`~dnsseal.resolver.service.ResolverService` (its own resolver and
caches, nothing shared with the real one) answers four questions, as a client would ask
them, about a two-level tree signed here with keys made for the purpose (a root, and
``warm-up.`` delegated with a DS), the root trusted through its own DS: an answer, an
NXDOMAIN and a NODATA proved by NSEC, and the child's DS.  No packet leaves the process:
the transport answers in memory, and one datagram goes to a socket of our own on
127.0.0.1 through the real UDP exchange.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

from dnsseal import clock
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.service import ResolverService
from dnsseal.resolver.transport import udp_exchange
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import Config

log = logging.getLogger(__name__)

T = dns.rdatatype.RdataType
ROOT = dns.name.root
CHILD = dns.name.from_text("warm-up.")
SERVER = ("192.0.2.1", 53)  # never contacted: the transport below answers in memory
QUESTIONS: tuple[tuple[str, str, int], ...] = (
    ("www.warm-up.", "A", 0),
    ("nx.warm-up.", "A", 3),  # NXDOMAIN
    ("warm-up.", "TXT", 0),  # NODATA
    ("warm-up.", "DS", 0),
)


@dataclass
class _Zone:
    origin: dns.name.Name
    now: int
    texts: dict[tuple[str, T], str]
    rrsets: dict[tuple[dns.name.Name, T], list[dns.rrset.RRset]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(key.public_key(), 13, flags=257)
        made = [dns.rrset.from_rdata_list(self.origin, 300, [self.dnskey])]
        for (owner, rdtype), text in self.texts.items():
            rd = dns.rdata.from_text("IN", rdtype, text, origin=self.origin, relativize=False)
            made.append(
                dns.rrset.from_rdata_list(dns.name.from_text(owner, self.origin), 300, [rd])
            )
        for rrset in made:
            if rrset.rdtype == T.NS and rrset.name != self.origin:
                self.rrsets[(rrset.name, T.NS)] = [rrset]  # a delegation: not signed
                continue
            sig = dns.dnssec.sign(
                rrset,
                key,
                self.origin,
                self.dnskey,
                inception=self.now - 60,
                expiration=self.now + 3600,
            )
            sigs = dns.rrset.from_rdata_list(rrset.name, 300, [sig])
            self.rrsets[(rrset.name, T(rrset.rdtype))] = [rrset, sigs]

    def get(self, name: dns.name.Name, rdtype: T) -> list[dns.rrset.RRset]:
        return self.rrsets.get((name, rdtype), [])


class _Tree:
    """The root (with the DS of ``warm-up.``) and ``warm-up.``, both NSEC-signed."""

    def __init__(self, now: int) -> None:
        self.child = _Zone(
            CHILD,
            now,
            {
                ("@", T.SOA): "ns h. 1 3600 600 86400 300",
                ("@", T.NS): "ns",
                ("ns", T.A): "192.0.2.1",
                ("www", T.A): "192.0.2.2",
                ("@", T.NSEC): "ns NS SOA RRSIG NSEC DNSKEY",
                ("ns", T.NSEC): "www A RRSIG NSEC",
                ("www", T.NSEC): "@ A RRSIG NSEC",
            },
        )
        ds = dns.dnssec.make_ds(CHILD, self.child.dnskey, "SHA256")
        self.root = _Zone(
            ROOT,
            now,
            {
                ("@", T.SOA): "ns.warm-up. h. 1 3600 600 86400 300",
                ("@", T.NS): "ns.warm-up.",
                ("warm-up", T.NS): "ns.warm-up.",
                ("warm-up", T.DS): ds.to_text(),
                ("@", T.NSEC): "warm-up NS SOA RRSIG NSEC DNSKEY",
                ("warm-up", T.NSEC): "@ NS DS RRSIG NSEC",
            },
        )
        self.glue = dns.rrset.from_text("ns.warm-up.", 300, "IN", "A", SERVER[0])

    def answer(self, wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        name, rdtype = q.question[0].name, T(q.question[0].rdtype)
        r = dns.message.make_response(q)
        # A server copies CD into its response (RFC 4035 s3.1.6), and every upstream query
        # sets it: the reader then meets the flags words real replies carry (each new one
        # costs it an enum pseudo-member, made here rather than in a client's question).
        r.flags |= q.flags & dns.flags.CD
        in_child = name.is_subdomain(CHILD) and not (name == CHILD and rdtype == T.DS)
        zone = self.child if in_child else self.root
        if not in_child and name.is_subdomain(CHILD) and rdtype != T.DS:
            # The root refers: NS, the signed DS, glue.
            r.authority = [*self.root.get(CHILD, T.NS), *self.root.get(CHILD, T.DS)]
            r.additional = [self.glue]
            return r.to_wire()
        r.flags |= dns.flags.AA
        found = zone.get(name, rdtype)
        if found:
            r.answer = list(found)
            return r.to_wire()
        exists = any(owner == name for owner, _ in zone.rrsets)
        if not exists:
            r.set_rcode(dns.rcode.NXDOMAIN)
        denial = [
            rrsets
            for (owner, t), rrsets in zone.rrsets.items()
            if t == T.NSEC and (owner == name or owner < name < rrsets[0][0].next)
        ]
        apex = zone.get(zone.origin, T.NSEC)
        r.authority = [*zone.get(zone.origin, T.SOA), *(x for d in denial for x in d)]
        if not exists and apex and apex not in denial:
            r.authority.extend(apex)  # no wildcard: *.<apex> sorts right after the apex
        return r.to_wire()


async def warm_up() -> float:
    """Run the warm-up; returns the milliseconds it took.  Raises AssertionError if an
    answer is not the expected one with AD (a broken installation: better known at
    start)."""
    t0 = time.perf_counter()
    now = clock.now()
    tree = _Tree(now)
    ds = dns.dnssec.make_ds(ROOT, tree.root.dnskey, "SHA256")
    anchors = AnchorSet((TrustAnchor(ROOT, (ds,)),))

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        return tree.answer(wire)

    service = ResolverService(Resolver(Config((SERVER,), anchors), transport, lambda: now))
    for name, rdtype, rcode in QUESTIONS:
        query = dns.message.make_query(name, rdtype, want_dnssec=True)
        out = await service.handle(query.to_wire(), False)
        reply = dns.message.from_wire(out) if out is not None else None
        if reply is None or reply.rcode() != rcode or not reply.flags & dns.flags.AD:
            raise AssertionError(f"warm-up {name} {rdtype}: {reply}")
    await _echo()
    ms = (time.perf_counter() - t0) * 1000
    log.debug("[resolver] warm-up took %.1f ms", ms)
    return ms


async def _echo() -> None:
    """One real upstream UDP exchange, with a socket of ours on 127.0.0.1 as the server."""

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    try:
        host, port = echo.get_extra_info("sockname")[:2]
        await udp_exchange((host, port), b"\x12\x34warm-up", 1.0)
    finally:
        echo.close()
