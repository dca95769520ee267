"""Aggressive use of DNSSEC-validated NSEC records (RFC 8198), Unbound's ``aggressive-nsec``.

After a secure negative answer from a zone signed with NSEC, the NSEC records that proved
it (and the zone's SOA) are kept until the smallest of their TTLs and the SOA MINIMUM
(RFC 8198 s5.4, RFC 9077).  A later question for a name those records already deny is
answered from them, with no upstream query: the validator's own proof functions
(:func:`dnsseal.validator.denial.prove_nxdomain` and ``prove_nodata``) are run over the kept
records, and only a secure proof is used.  The kept records were each verified with the
zone's keys when they arrived; nothing that did not verify is kept.  NSEC3 is not used
(hashed spans deny few names a resolver is ever asked again), as in Unbound.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal.validator import verdict as v
from dnsseal.validator.denial import prove_nodata, prove_nxdomain
from dnsseal.validator.limits import Budget, Limits
from dnsseal.validator.machine import Result, negative_ttl
from dnsseal.validator.rrsig import SigCheck

log = logging.getLogger(__name__)

NSEC_T = int(dns.rdatatype.NSEC)
SOA_T = int(dns.rdatatype.SOA)
RRSIG_T = int(dns.rdatatype.RRSIG)
MAX_ZONES = 1000
MAX_PER_ZONE = 2000


class _Zone:
    __slots__ = ("nsecs", "soa")

    def __init__(self, soa: tuple[int, list[dns.rrset.RRset]]) -> None:
        self.soa = soa  # (until, [SOA, its RRSIGs])
        self.nsecs: OrderedDict[dns.name.Name, tuple[int, list[dns.rrset.RRset]]] = OrderedDict()


def _sigs(section: tuple[dns.rrset.RRset, ...], rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
    return [
        r
        for r in section
        if r.rdtype == RRSIG_T and r.name == rrset.name and r.covers == rrset.rdtype
    ]


class NsecCache:
    """Validated NSEC records per zone; :meth:`answer` synthesizes denials from them."""

    def __init__(self, max_zones: int = MAX_ZONES, max_per_zone: int = MAX_PER_ZONE) -> None:
        self.max_zones = max_zones
        self.max_per_zone = max_per_zone
        self._zones: OrderedDict[dns.name.Name, _Zone] = OrderedDict()
        self.synthesized = 0

    def __len__(self) -> int:
        return sum(len(z.nsecs) for z in self._zones.values())

    def clear(self) -> None:
        self._zones.clear()

    def learn(self, result: Result, now: int) -> None:
        """Keep the NSEC proof of a secure negative ``result`` (anything else is ignored),
        also when it denies the target of a CNAME/DNAME chain in the answer."""
        if result.verdict.security is not v.Security.SECURE:
            return
        if result.rcode not in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR):
            return
        auth = result.authority
        soa = next((r for r in auth if r.rdtype == SOA_T), None)
        nsecs = [r for r in auth if r.rdtype == NSEC_T]
        if soa is None or not nsecs:
            return
        until = now + negative_ttl(auth)
        if until <= now:
            return
        zone = self._zones.get(soa.name)
        if zone is None:
            zone = self._zones[soa.name] = _Zone((until, [soa, *_sigs(auth, soa)]))
            while len(self._zones) > self.max_zones:
                self._zones.popitem(last=False)
        else:
            zone.soa = (until, [soa, *_sigs(auth, soa)])
            self._zones.move_to_end(soa.name)
        for nsec in nsecs:
            if not nsec.name.is_subdomain(soa.name):
                continue
            zone.nsecs[nsec.name] = (until, [nsec, *_sigs(auth, nsec)])
            zone.nsecs.move_to_end(nsec.name)
        while len(zone.nsecs) > self.max_per_zone:
            zone.nsecs.popitem(last=False)

    def answer(self, qname: dns.name.Name, rdtype: int, now: int) -> tuple[Result, int] | None:
        """A secure NXDOMAIN or NODATA for (qname, rdtype) proven by kept records, with the
        seconds it may still be cached; None when they do not prove it."""
        origin = next(
            (z for z in self._candidates(qname) if z in self._zones),
            None,
        )
        if origin is None:
            return None
        zone = self._zones[origin]
        if zone.soa[0] <= now:
            del self._zones[origin]
            return None
        section: list[dns.rrset.RRset] = list(zone.soa[1])
        until = zone.soa[0]
        trusted: dict[int, list[dns.rrset.RRset]] = {}  # id(NSEC RRset) -> it and its RRSIGs
        for owner, (expires, rrsets) in list(zone.nsecs.items()):
            if expires <= now:
                del zone.nsecs[owner]
                continue
            nsec = rrsets[0]
            if _relevant(nsec, qname, origin):
                section.extend(rrsets)
                trusted[id(nsec)] = rrsets
                until = min(until, expires)
        if not trusted:
            return None
        used: list[dns.rrset.RRset] = list(zone.soa[1])

        def verify(rrset: dns.rrset.RRset) -> SigCheck:
            rrsets = trusted.get(id(rrset))
            if rrsets is None or rrsets[0] is not rrset:
                return SigCheck(v.bogus(f"{rrset.name} NSEC is not in the aggressive cache"))
            if rrset not in used:
                used.extend(rrsets)
            return SigCheck(v.secure(f"{rrset.name} NSEC (validated earlier)"))

        budget = Budget(Limits())
        rcode = dns.rcode.NXDOMAIN
        proof = prove_nxdomain(qname, origin, section, verify, budget)
        if proof.verdict.security is not v.Security.SECURE:
            used[:] = list(zone.soa[1])
            rcode = dns.rcode.NOERROR
            proof = prove_nodata(qname, rdtype, origin, section, verify, budget)
            if proof.verdict.security is not v.Security.SECURE:
                return None
        self.synthesized += 1
        why = f"{proof.verdict.reason} (RFC 8198: from validated NSEC records of {origin})"
        log.debug("[%s] %s/%d synthesized: %s", origin, qname, rdtype, why)
        result = Result(qname, rdtype, rcode, (), tuple(used), v.secure(why), (), {})
        return result, until - now

    @staticmethod
    def _candidates(qname: dns.name.Name) -> list[dns.name.Name]:
        return [dns.name.Name(qname.labels[i:]) for i in range(len(qname.labels))]


def _relevant(nsec: dns.rrset.RRset, qname: dns.name.Name, origin: dns.name.Name) -> bool:
    """Whether ``nsec`` matches or covers ``qname`` or a wildcard that could answer it."""
    owner, nxt = nsec.name, nsec[0].next
    names = [qname]
    anc = qname
    while anc != origin and anc.is_subdomain(origin):
        anc = anc.parent()
        names.append(dns.name.Name((b"*", *anc.labels)))
        names.append(anc)
    for name in names:
        if name == owner:
            return True
        if owner < name and (name < nxt or nxt == origin or nxt <= owner):
            return True
    return False
