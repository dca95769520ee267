"""NSEC denial proofs (RFC 4035 s5.4, RFC 6840 s4.1 and s4.3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dns.name
import dns.rrset

from dnsseal.validator import verdict as v
from dnsseal.validator.denial import (
    CNAME,
    DNAME,
    DS,
    NS,
    NSEC_T,
    SOA,
    Proof,
    Verify,
    bitmap_types,
    fail,
    missing,
    signed_only,
    type_text,
    verify_all,
)


@dataclass(frozen=True, slots=True)
class _Nsec:
    rrset: dns.rrset.RRset
    owner: dns.name.Name
    next: dns.name.Name
    types: frozenset[int]

    def covers(self, name: dns.name.Name) -> bool:
        """owner < name < next in canonical order; the last NSEC wraps to the apex."""
        if self.owner < self.next:
            return bool(self.owner < name < self.next)
        return bool(name > self.owner or name < self.next)

    def is_delegation(self) -> bool:
        return NS in self.types and SOA not in self.types


def _records(zone: dns.name.Name, authority: Sequence[dns.rrset.RRset]) -> list[_Nsec]:
    out = []
    rrsets, _ = signed_only(authority, NSEC_T)
    for rrset in rrsets:
        if not rrset.name.is_subdomain(zone) or len(rrset) != 1:
            continue
        rd = rrset[0]
        if not rd.next.is_subdomain(zone):
            # RFC 4034 s4.1.1: the next name is in the zone (the last NSEC's is the apex); one
            # that points out of it would deny names of another zone.
            continue
        out.append(_Nsec(rrset, rrset.name, rd.next, bitmap_types(rd.windows)))
    return out


def _cover(records: list[_Nsec], name: dns.name.Name) -> _Nsec | None:
    for r in records:
        if r.covers(name):
            # An NSEC at a delegation or DNAME above ``name`` says nothing about it
            # (RFC 6840 s4.1, RFC 4035 s5.4 last paragraph).
            if name.is_subdomain(r.owner) and (r.is_delegation() or DNAME in r.types):
                continue
            return r
    return None


def _unsigned_cut(
    qname: dns.name.Name, strict: bool, zone: dns.name.Name, records: list[_Nsec], verify: Verify
) -> Proof | None:
    """An insecure proof when a signed NSEC of ``zone`` at ``qname`` (unless ``strict``) or
    above it shows an unsigned delegation (NS, no SOA, no DS): ``qname`` is then in (or at
    the apex of) a child zone whose data cannot be validated (RFC 4035 s5.2; Unbound's
    val_nsec_proves_insecuredelegation).  ``strict`` for DS, which lives on the parent side
    (the NSEC at ``qname`` is its denial), and for NXDOMAIN (an NSEC at ``qname`` shows that
    it exists).  An NSEC that does not verify as itself (bad signature, wildcard expansion)
    is passed over: it proves nothing either way."""
    for r in records:
        if r.owner == zone or not qname.is_subdomain(r.owner) or (strict and r.owner == qname):
            continue
        if not r.is_delegation() or DS in r.types:
            continue
        if verify_all([r.rrset], verify) is not None:
            continue
        return Proof(
            v.insecure(f"NSEC at {r.owner} shows an unsigned delegation: {qname} is below it"),
            delegation=True,
        )
    return None


def _closest_encloser(name: dns.name.Name, r: _Nsec) -> dns.name.Name:
    n = max(name.fullcompare(r.owner)[2], name.fullcompare(r.next)[2])
    return dns.name.Name(name.labels[-n:]) if n else dns.name.root


def nxdomain(
    qname: dns.name.Name, zone: dns.name.Name, authority: Sequence[dns.rrset.RRset], verify: Verify
) -> Proof:
    records = _records(zone, authority)
    cut = _unsigned_cut(qname, True, zone, records, verify)
    if cut is not None:
        return cut
    cover = _cover(records, qname)
    if cover is None:
        return missing(f"no NSEC covers {qname}")
    if cover.next.is_subdomain(qname):
        # owner < qname < next with next below qname: qname is an empty non-terminal.
        return fail(f"NXDOMAIN for {qname}, but NSEC {cover.owner} -> {cover.next} shows it exists")
    ce = _closest_encloser(qname, cover)
    if not ce.is_subdomain(zone):
        ce = zone
    wild = dns.name.Name((b"*", *ce.labels))
    if any(r.owner == wild for r in records):
        return fail(f"NXDOMAIN for {qname}, but the wildcard {wild} exists")
    wcover = _cover(records, wild)
    if wcover is None:
        return missing(f"no NSEC proves that the wildcard {wild} does not exist")
    bad = verify_all([cover.rrset, wcover.rrset], verify)
    if bad is not None:
        return Proof(bad)
    return Proof(
        v.secure(f"NSEC {cover.owner} -> {cover.next} proves {qname} does not exist; no {wild}")
    )


def nodata(
    qname: dns.name.Name,
    qtype: int,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
) -> Proof:
    records = _records(zone, authority)
    cut = _unsigned_cut(qname, qtype == DS, zone, records, verify)
    if cut is not None:
        return cut
    tname = type_text(qtype)
    match = next((r for r in records if r.owner == qname), None)
    if match is not None:
        if qtype in match.types or (CNAME in match.types and qtype != CNAME):
            return fail(f"NSEC at {qname} lists {tname} or CNAME, yet the answer is empty")
        delegation = False
        if qtype == DS:
            if SOA in match.types and qname != dns.name.root:
                return fail(f"the NSEC denying DS at {qname} comes from the child zone")
            delegation = NS in match.types
        elif match.is_delegation():
            return fail(f"an NSEC from the parent side of the delegation {qname} denies {tname}")
        bad = verify_all([match.rrset], verify)
        if bad is not None:
            return Proof(bad)
        what = "delegation without DS" if delegation else f"no {tname}"
        return Proof(v.secure(f"NSEC at {qname} proves {what}"), delegation=delegation, exists=True)
    cover = _cover(records, qname)
    if cover is None:
        return missing(f"no NSEC proves that {qname} has no {tname}")
    if cover.next.is_subdomain(qname):
        bad = verify_all([cover.rrset], verify)
        if bad is not None:
            return Proof(bad)
        return Proof(
            v.secure(f"NSEC {cover.owner} -> {cover.next} proves {qname} is an empty non-terminal"),
            exists=True,
        )
    ce = _closest_encloser(qname, cover)
    wild = dns.name.Name((b"*", *ce.labels))
    wmatch = next((r for r in records if r.owner == wild), None)
    if wmatch is None or qtype in wmatch.types or CNAME in wmatch.types:
        return missing(f"no NSEC proves that {qname} has no {tname}")
    bad = verify_all([cover.rrset, wmatch.rrset], verify)
    if bad is not None:
        return Proof(bad)
    return Proof(v.secure(f"NSEC proves the wildcard {wild} has no {tname}"))


def wildcard(
    qname: dns.name.Name,
    encloser: dns.name.Name,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
) -> Proof:
    records = _records(zone, authority)
    cover = _cover(records, qname)
    if cover is None or any(r.owner == qname for r in records):
        return missing(f"wildcard answer for {qname} without an NSEC proving {qname} is absent")
    # The NSEC must also show that no name between the wildcard's parent and qname exists
    # (RFC 4035 s5.3.4): its closest encloser must be the one the RRSIG labels field names.
    ce = _closest_encloser(qname, cover)
    if ce != encloser:
        return fail(f"wildcard *.{encloser} cannot answer {qname}: {ce} exists closer to it")
    bad = verify_all([cover.rrset], verify)
    if bad is not None:
        return Proof(bad)
    return Proof(
        v.secure(f"NSEC {cover.owner} -> {cover.next} proves {qname} is a wildcard expansion")
    )
