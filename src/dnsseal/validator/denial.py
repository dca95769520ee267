"""Authenticated denial of existence: the shared shape of NSEC and NSEC3 proofs.

A proof function takes the authority section's RRsets, the question, the zone whose keys
sign the proof, and a ``verify`` callback that checks one RRset's signatures (the caller
binds keys, time and budget).  Only the records a proof actually uses are verified, so a
response padded with extra records costs the validator nothing but a scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import dns.rrset

from dnsseal.validator import verdict as v
from dnsseal.validator.limits import Budget
from dnsseal.validator.rrsig import SigCheck

Verify = Callable[[dns.rrset.RRset], SigCheck]

NS = int(dns.rdatatype.NS)
SOA = int(dns.rdatatype.SOA)
DS = int(dns.rdatatype.DS)
CNAME = int(dns.rdatatype.CNAME)
DNAME = int(dns.rdatatype.DNAME)
NSEC_T = int(dns.rdatatype.NSEC)
NSEC3_T = int(dns.rdatatype.NSEC3)
RRSIG_T = int(dns.rdatatype.RRSIG)


@dataclass(frozen=True, slots=True)
class Proof:
    """The outcome of a denial proof.

    ``delegation`` is True when a DS denial shows the name is a delegation point (so the
    child is insecure); ``exists`` when it shows the name exists without being a cut.
    """

    verdict: v.Verdict
    delegation: bool = False
    exists: bool = False

    @property
    def ok(self) -> bool:
        return self.verdict.security in (v.Security.SECURE, v.Security.INSECURE)


def bitmap_types(windows: Sequence[tuple[int, bytes]]) -> frozenset[int]:
    """The types in an NSEC/NSEC3 type bitmap (RFC 4034 s4.1.2)."""
    out: set[int] = set()
    for window, bitmap in windows:
        base = window * 256
        for i, byte in enumerate(bitmap):
            if byte:
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        out.add(base + i * 8 + bit)
    return frozenset(out)


def signed_only(
    authority: Sequence[dns.rrset.RRset], rdtype: int
) -> tuple[list[dns.rrset.RRset], int]:
    """The ``rdtype`` RRsets that have at least one RRSIG in the section (unsigned ones can
    only be padding or forgeries; skipping them keeps them from shadowing the real proof),
    and how many were skipped."""
    signed = {r.name for r in authority if r.rdtype == RRSIG_T and r.covers == rdtype}
    records = [r for r in authority if r.rdtype == rdtype]
    kept = [r for r in records if r.name in signed]
    return kept, len(records) - len(kept)


def unsigned_records(kind: str, skipped: int) -> Proof:
    return Proof(v.bogus(f"{skipped} {kind} record(s) without RRSIGs", v.EDE_RRSIGS_MISSING))


def missing(what: str) -> Proof:
    return Proof(v.bogus(what, v.EDE_NSEC_MISSING))


def fail(what: str) -> Proof:
    return Proof(v.bogus(what))


def verify_all(rrsets: Sequence[dns.rrset.RRset], verify: Verify) -> v.Verdict | None:
    """None if every RRset verifies as itself, else the first failure.

    A denial record whose verifying RRSIG has fewer labels than its owner came from a
    wildcard expansion (RFC 4035 s5.3.4): it is ``*.<encloser>``'s NSEC/NSEC3 replayed under
    another name and proves nothing about that name (RFC 4035 s5.4, RFC 6840 s4.1/s5.3).
    """
    seen: set[int] = set()
    for rrset in rrsets:
        if id(rrset) in seen:
            continue
        seen.add(id(rrset))
        check = verify(rrset)
        if not check.ok:
            return check.verdict
        if check.wildcard_encloser is not None:
            return v.bogus(
                f"{type_text(rrset.rdtype)} at {rrset.name} is a wildcard expansion (RRSIG "
                f"labels below its owner's) and cannot prove a denial (RFC 4035 s5.3.4)"
            )
    return None


def type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


def _dispatch(authority: Sequence[dns.rrset.RRset]) -> str:
    if any(r.rdtype == NSEC3_T for r in authority):
        return "nsec3"
    if any(r.rdtype == NSEC_T for r in authority):
        return "nsec"
    return ""


def prove_nxdomain(
    qname: dns.name.Name,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
    budget: Budget,
) -> Proof:
    """Prove that ``qname`` does not exist in ``zone`` and no wildcard could answer it."""
    from dnsseal.validator import nsec, nsec3

    kind = _dispatch(authority)
    if kind == "nsec3":
        return nsec3.nxdomain(qname, zone, authority, verify, budget)
    if kind == "nsec":
        return nsec.nxdomain(qname, zone, authority, verify)
    return missing(f"no NSEC or NSEC3 proves that {qname} does not exist")


def prove_nodata(
    qname: dns.name.Name,
    qtype: int,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
    budget: Budget,
) -> Proof:
    """Prove that ``qname`` has no ``qtype`` RRset (including the empty non-terminal and
    wildcard NODATA cases); for DS, also says whether ``qname`` is a delegation."""
    from dnsseal.validator import nsec, nsec3

    kind = _dispatch(authority)
    if kind == "nsec3":
        return nsec3.nodata(qname, qtype, zone, authority, verify, budget)
    if kind == "nsec":
        return nsec.nodata(qname, qtype, zone, authority, verify)
    return missing(f"no NSEC or NSEC3 proves that {qname} has no {type_text(qtype)}")


def prove_wildcard(
    qname: dns.name.Name,
    encloser: dns.name.Name,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
    budget: Budget,
) -> Proof:
    """Prove that a wildcard expansion was allowed: no name closer to ``qname`` than
    ``encloser`` (from the RRSIG labels field) exists (RFC 4035 s5.3.4, RFC 5155 s8.8)."""
    from dnsseal.validator import nsec, nsec3

    kind = _dispatch(authority)
    if kind == "nsec3":
        return nsec3.wildcard(qname, encloser, zone, authority, verify, budget)
    if kind == "nsec":
        return nsec.wildcard(qname, encloser, zone, authority, verify)
    return missing(f"wildcard answer for {qname} without a proof that {qname} does not exist")
