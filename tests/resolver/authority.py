"""An in-memory authoritative server for signed test zones, answering like BIND does
(referrals with DS or denial, glue, CNAME, DNAME, wildcards, NSEC/NSEC3 proofs), and a
driver that runs a validator Query against it with no sockets."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal.resolver.transport import Transport
from dnsseal.validator.iterator import RootPriming
from dnsseal.validator.machine import Config, Need, Query, Result

from .zonebuild import SignedZone, T, b32, nsec3_hash

Mutator = Callable[[Need, dns.message.Message], dns.message.Message]


class Authority:
    """Serves every zone it holds from one address, like one ``named`` with many zones."""

    def __init__(self, zones: list[SignedZone]) -> None:
        self.zones = {z.origin: z for z in zones}
        self.queries: list[tuple[str, str]] = []

    def _zone_for(self, qname: dns.name.Name, rdtype: int) -> SignedZone | None:
        best = None
        for origin, z in self.zones.items():
            if qname.is_subdomain(origin) and (best is None or len(origin) > len(best.origin)):
                if rdtype == T.DS and qname == origin and origin != dns.name.root:
                    continue  # DS is answered by the parent
                best = z
        return best

    def answer(self, qname: dns.name.Name, rdtype: int) -> dns.message.Message:
        self.queries.append((qname.to_text(), dns.rdatatype.to_text(rdtype)))
        q = dns.message.make_query(qname, rdtype, want_dnssec=True)
        r = dns.message.make_response(q)
        r.flags &= ~dns.flags.RA
        z = self._zone_for(qname, rdtype)
        if z is None:
            r.set_rcode(dns.rcode.REFUSED)
            return r
        _Answerer(z, r).run(qname, rdtype)
        return r


class _Answerer:
    def __init__(self, z: SignedZone, r: dns.message.Message) -> None:
        self.z = z
        self.r = r
        self.names = sorted(z.zone.nodes.keys())

    def add(
        self,
        section: list[dns.rrset.RRset],
        name: dns.name.Name,
        rdtype: int,
        owner: dns.name.Name | None = None,
    ) -> bool:
        rrset = self.z.rrset(name, rdtype)
        if rrset is None:
            return False
        if owner is not None:
            new = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype)
            new.update(rrset)
            rrset = new
        if rrset not in section:
            section.append(rrset)
        sigs = self.z.zone.get_rdataset(name, T.RRSIG, rdtype)
        if sigs is not None:
            s = dns.rrset.RRset(owner or name, sigs.rdclass, T.RRSIG, rdtype)
            s.update(sigs)
            if s not in section:
                section.append(s)
        return True

    def exists(self, name: dns.name.Name) -> bool:
        return any(n.is_subdomain(name) for n in self.names if not self._is_nsec3_owner(n))

    def _is_nsec3_owner(self, n: dns.name.Name) -> bool:
        rds = self.z.zone.get_rdataset(n, T.NSEC3)
        return rds is not None

    def run(self, qname: dns.name.Name, rdtype: int) -> None:
        z, r, o = self.z, self.r, self.z.origin
        # Delegations between the apex and qname.
        for cut in sorted(z.delegations, key=len):
            if qname.is_subdomain(cut) and not (qname == cut and rdtype == T.DS):
                r.authority.append(z.rrset(cut, T.NS))  # type: ignore[arg-type]
                if not self.add(r.authority, cut, T.DS):
                    self.deny_ds(cut)
                for rd in z.rrset(cut, T.NS) or []:
                    self.add(r.additional, rd.target, T.A)
                return
        r.flags |= dns.flags.AA
        # DNAME above qname.
        anc = qname.parent() if qname != o else None
        while anc is not None and anc.is_subdomain(o):
            if z.rrset(anc, T.DNAME) is not None:
                self.add(r.answer, anc, T.DNAME)
                target = qname.relativize(anc).derelativize(z.rrset(anc, T.DNAME)[0].target)  # type: ignore[index]
                r.answer.append(dns.rrset.from_text(qname, 0, "IN", "CNAME", target.to_text()))
                return
            anc = anc.parent() if anc != o else None
        if qname in z.zone.nodes and not self._is_nsec3_owner(qname):
            if self.add(r.answer, qname, rdtype):
                if rdtype == T.NS:
                    for rd in z.rrset(qname, T.NS) or []:
                        self.add(r.additional, rd.target, T.A)
                return
            if self.add(r.answer, qname, T.CNAME):
                return
            self.soa()
            self.deny_type(qname, rdtype)
            return
        if self.exists(qname):  # empty non-terminal
            self.soa()
            self.deny_type(qname, rdtype)
            return
        ce = qname.parent()
        while not self.exists(ce):
            ce = ce.parent()
        wild = dns.name.Name((b"*", *ce.labels))
        if wild in z.zone.nodes:
            if self.add(r.answer, wild, rdtype, owner=qname) or self.add(
                r.answer, wild, T.CNAME, owner=qname
            ):
                self.deny_closer(qname, ce)
                return
            self.soa()
            self.deny_closer(qname, ce)
            self.deny_type(wild, rdtype)
            return
        r.set_rcode(dns.rcode.NXDOMAIN)
        self.soa()
        self.deny_closer(qname, ce)
        self.deny_name(wild, ce)

    def soa(self) -> None:
        self.add(self.r.authority, self.z.origin, T.SOA)

    # --- proofs ----------------------------------------------------------------------
    def _nsec_before(self, name: dns.name.Name) -> dns.name.Name:
        owners = [n for n in self.names if self.z.zone.get_rdataset(n, T.NSEC) is not None]
        prev = owners[-1]
        for n in owners:
            if n <= name:
                prev = n
        return prev

    def _nsec3_owner(self, name: dns.name.Name, match: bool) -> dns.name.Name | None:
        p = self.z.nsec3
        assert p is not None
        h = b32(nsec3_hash(name, p.salt, p.iterations))
        owners = sorted((n.labels[0].decode(), n) for n in self.names if self._is_nsec3_owner(n))
        if match:
            return next((n for label, n in owners if label == h), None)
        prev = owners[-1][1]
        for label, n in owners:
            if label < h:
                prev = n
        return prev

    def _proof(self, name: dns.name.Name, match: bool) -> None:
        if self.z.nsec3 is None:
            self.add(self.r.authority, name if match else self._nsec_before(name), T.NSEC)
            return
        owner = self._nsec3_owner(name, match)
        if owner is not None:
            self.add(self.r.authority, owner, T.NSEC3)

    def deny_type(self, name: dns.name.Name, rdtype: int) -> None:
        if rdtype == T.DS and name in self.z.delegations:
            self.deny_ds(name)
            return
        if self.z.nsec3 is None and name not in self.z.zone.nodes:
            self._proof(name, match=False)  # ENT: the NSEC before it
            return
        self._proof(name, match=True)

    def deny_ds(self, cut: dns.name.Name) -> None:
        if self.z.nsec3 is not None and self._nsec3_owner(cut, True) is None:
            self._proof(cut.parent(), match=True)
            self._proof(cut, match=False)
            return
        self._proof(cut, match=True)

    def deny_closer(self, qname: dns.name.Name, ce: dns.name.Name) -> None:
        closer = dns.name.Name(qname.labels[-(len(ce) + 1) :])
        if self.z.nsec3 is None:
            self._proof(qname, match=False)
            return
        self._proof(ce, match=True)
        self._proof(closer, match=False)

    def deny_name(self, wild: dns.name.Name, ce: dns.name.Name) -> None:
        self._proof(wild, match=False)


def drive(
    query: Query,
    authority: Authority,
    mutate: Mutator | None = None,
    max_steps: int = 1000,
) -> Result:
    """Run ``query`` to completion against ``authority`` through wire format."""
    step = query.start()
    for _ in range(max_steps):
        if isinstance(step, Result):
            return step
        reply = authority.answer(step.qname, step.rdtype)
        if mutate is not None:
            reply = mutate(step, reply)
        step = query.feed(dns.message.from_wire(reply.to_wire(max_size=65535)))
    raise AssertionError("query did not finish")


def config_for(authority: Authority, **kw: object) -> Config:
    from dnsseal.validator.anchors import AnchorSet, TrustAnchor

    root = authority.zones.get(dns.name.root)
    anchors = kw.pop("anchors", None)
    if anchors is None:
        assert root is not None
        anchors = AnchorSet((TrustAnchor(dns.name.root, tuple(root.ds())),))  # type: ignore[arg-type]
    return Config((("127.0.0.1", 53),), anchors, **kw)  # type: ignore[arg-type]


def primed(config: Config, now: int) -> Config:
    """``config`` with its root hints taken as primed (RFC 8109) at ``now`` for a day: for
    tests of how the root's servers are asked, whose root zone names other servers than the
    hints (priming would replace them)."""
    priming = RootPriming()
    priming.put(config.root_servers, 86400, now)
    return dataclasses.replace(config, priming=priming)


def memory_transport(
    auth: Authority, truncate_udp: bool = False, log: list[bool] | None = None
) -> Transport:
    async def exchange(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        r = auth.answer(q.question[0].name, q.question[0].rdtype)
        r.id = q.id
        if log is not None:
            log.append(tcp)
        if truncate_udp and not tcp:
            r.flags |= dns.flags.TC
            r.answer, r.authority, r.additional = [], [], []
        return r.to_wire(max_size=65535)

    return exchange
