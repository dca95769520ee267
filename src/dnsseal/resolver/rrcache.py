"""Validated RRsets, each with its RRSIGs, verdict and TTL (part of Unbound's RRset cache).

Results are cached per question (:mod:`.engine`); a few answers are built from single
RRsets another question brought instead:

- a CNAME answers QTYPE CNAME for its owner, and a question of any other type for that
  owner follows it (RFC 1034 s3.6.2, s4.3.2 step 3a);
- a DS question is denied by the parent's NSEC at that name (a delegation without DS) that
  proved an insecure delegation during a chain walk, with the parent zone's SOA from a
  negative answer (RFC 4035 s3.1.4.1, RFC 2308 s3: the SOA goes with a negative answer).

Only RRsets of results validated secure or proven insecure are kept, each with the verdict
of the whole result it came from (the weakest of its links: never more than it earned);
nothing from a bogus or failed resolution, nothing judged "indeterminate".  An answer built
from cached RRsets has the weakest verdict of those it used.  Entries are wire bytes (an
RRset and its RRSIGs: a few hundred octets) accounted like every cache entry
(:data:`~.cache.ENTRY_OVERHEAD`), and count down their TTLs.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal.resolver.cache import Cache
from dnsseal.resolver.replyreader import read_reply
from dnsseal.validator.machine import Result
from dnsseal.validator.verdict import Security, Verdict, secure

CNAME_T = int(dns.rdatatype.CNAME)
DNAME_T = int(dns.rdatatype.DNAME)
SOA_T = int(dns.rdatatype.SOA)
NSEC_T = int(dns.rdatatype.NSEC)
RRSIG_T = int(dns.rdatatype.RRSIG)
KEPT_TYPES = frozenset({CNAME_T, SOA_T, NSEC_T})
_TRUSTED = (Security.SECURE, Security.INSECURE)


@dataclass(frozen=True, slots=True)
class _Entry:
    stored: int  # when it was cached (TTLs count down from there)
    wire: bytes  # the RRset, then its RRSIG RRsets
    verdict: Verdict

    @property
    def nbytes(self) -> int:
        return len(self.wire)


def _sigs(section: tuple[dns.rrset.RRset, ...], rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
    return [
        r
        for r in section
        if r.rdtype == RRSIG_T and r.name == rrset.name and r.covers == rrset.rdtype
    ]


class RRsetCache:
    """(owner, type) -> the RRset, its RRSIGs and its verdict, for its smallest TTL."""

    def __init__(self, max_bytes: int) -> None:
        self.cache = Cache(max_bytes=max_bytes)

    def __len__(self) -> int:
        return len(self.cache)

    @property
    def bytes(self) -> int:
        return self.cache.bytes

    def clear(self) -> None:
        self.cache.clear()

    def learn(self, result: Result, now: int) -> None:
        """Keep the CNAME, SOA and NSEC RRsets of a secure or insecure ``result`` (and the
        NSEC proofs of its chain walk, which verified with their zone's keys)."""
        if result.rcode == dns.rcode.SERVFAIL or result.verdict.security not in _TRUSTED:
            return
        dnames = [r.name for r in result.answer if r.rdtype == DNAME_T]
        for section in (result.answer, result.authority):
            for rrset in section:
                if rrset.rdtype not in KEPT_TYPES:
                    continue
                sigs = _sigs(section, rrset)
                if rrset.rdtype == CNAME_T and not sigs and dnames:
                    continue  # synthesized from a DNAME: the DNAME is what is kept
                self.put(rrset, sigs, result.verdict, now)
        proofs = result.proofs
        for rrset in proofs:
            if rrset.rdtype == NSEC_T:
                self.put(
                    rrset,
                    _sigs(proofs, rrset),
                    secure(f"{rrset.name} NSEC proved an insecure delegation"),
                    now,
                )

    def put(
        self,
        rrset: dns.rrset.RRset,
        sigs: list[dns.rrset.RRset],
        verdict: Verdict,
        now: int,
    ) -> None:
        if verdict.security not in _TRUSTED:
            return
        msg = dns.message.Message(id=0)
        msg.answer = [rrset, *sigs]
        ttl = min(r.ttl for r in msg.answer)
        self.cache.put((rrset.name, rrset.rdtype), _Entry(now, msg.to_wire(), verdict), ttl, now)

    def get(
        self, name: dns.name.Name, rdtype: int, now: int
    ) -> tuple[tuple[dns.rrset.RRset, ...], Verdict] | None:
        """The RRset (first) and its RRSIGs with their TTLs counted down, and its verdict."""
        entry = self.cache.get((name, rdtype), now)
        if not isinstance(entry, _Entry):
            return None
        age = max(0, now - entry.stored)
        rrsets = read_reply(entry.wire).answer
        aged = tuple(
            dns.rrset.from_rdata_list(r.name, max(0, r.ttl - age), list(r)) for r in rrsets
        )
        return aged, entry.verdict
