"""Warm-up: one resolution through every layer before the first client's, so that client
does not pay for Python's first-use costs (lazy imports of dnspython's record classes and
of the crypto bindings, first signature checks, first caches): about 10 ms of a cold
resolution on this machine, more than the upstream round trips themselves.

A throw-away :class:`~dnsseal.resolver.engine.Resolver` (its own caches, nothing shared
with the service's) resolves three questions against a one-zone root signed here with a
key made for the purpose and trusted through its own DS: an answer, an NXDOMAIN proved by
NSEC, and a NODATA.  No packet is sent: the transport answers in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

from dnsseal import clock
from dnsseal.resolver.engine import Resolver
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import Config
from dnsseal.validator.verdict import Security

log = logging.getLogger(__name__)

ROOT = dns.name.root
SERVER = ("192.0.2.1", 53)  # never contacted: the transport below answers in memory
QUESTIONS = ((".", "SOA"), ("warm-up.", "A"), (".", "TXT"))


class _Root:
    """A signed root zone holding SOA, NS, DNSKEY and one NSEC (. -> .)."""

    def __init__(self, now: int) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(key.public_key(), 13, flags=257)
        texts: dict[dns.rdatatype.RdataType, str] = {
            dns.rdatatype.SOA: ". h. 1 3600 600 86400 300",
            dns.rdatatype.NS: "ns.warm-up.",
            dns.rdatatype.NSEC: ". NS SOA RRSIG NSEC DNSKEY",
        }
        self.rrsets: dict[int, list[dns.rrset.RRset]] = {}
        keys = dns.rrset.from_rdata_list(ROOT, 300, [self.dnskey])
        made = [dns.rrset.from_text(ROOT, 300, "IN", t, x) for t, x in texts.items()]
        for rrset in [keys, *made]:
            sig = dns.dnssec.sign(
                rrset, key, ROOT, self.dnskey, inception=now - 60, expiration=now + 3600
            )
            sigs = dns.rrset.from_rdata_list(ROOT, 300, [sig])
            self.rrsets[rrset.rdtype] = [rrset, sigs]

    def answer(self, wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        name, rdtype = q.question[0].name, q.question[0].rdtype
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if name == ROOT and rdtype in self.rrsets:
            r.answer = list(self.rrsets[rdtype])
        else:
            if name != ROOT:
                r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority = [*self.rrsets[dns.rdatatype.SOA], *self.rrsets[dns.rdatatype.NSEC]]
        return r.to_wire()


async def warm_up() -> float:
    """Run the warm-up; returns the milliseconds it took.  Raises AssertionError if the
    resolutions do not validate (a broken installation: better known at start)."""
    t0 = time.perf_counter()
    now = clock.now()
    root = _Root(now)
    ds = dns.dnssec.make_ds(ROOT, root.dnskey, "SHA256")
    anchors = AnchorSet((TrustAnchor(ROOT, (ds,)),))

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        return root.answer(wire)

    resolver = Resolver(Config((SERVER,), anchors), transport, lambda: now)
    for name, rdtype in QUESTIONS:
        result = await resolver.resolve(name, rdtype)
        if result.verdict.security is not Security.SECURE:
            raise AssertionError(f"warm-up {name} {rdtype}: {result.verdict.reason}")
    # The first socket exchange costs too: one datagram to ourselves.
    loop = asyncio.get_running_loop()
    transport_, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    transport_.close()
    ms = (time.perf_counter() - t0) * 1000
    log.debug("[resolver] warm-up took %.1f ms", ms)
    return ms
