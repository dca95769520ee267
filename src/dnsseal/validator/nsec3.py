"""NSEC3 denial proofs (RFC 5155 s8, RFC 9276).

Hashes are computed on bytes with hashlib and charged to the query's ``nsec3_hashes``
budget.  Responses with more NSEC3 RRsets than ``nsec3_per_proof`` are refused outright.
When the NSEC3 parameters use more than ``nsec3_iterations`` iterations, no hash is computed
at all: the NSEC3 records' signatures are checked first (a forged record must not turn a
bogus answer into an insecure one), then the answer is insecure with EDE 27 (RFC 9276 s3.2).
"""

from __future__ import annotations

import base64
import hashlib
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
    NSEC3_T,
    SOA,
    Proof,
    Verify,
    bitmap_types,
    fail,
    missing,
    signed_only,
    type_text,
    unsigned_records,
    verify_all,
)
from dnsseal.validator.limits import Budget
from dnsseal.validator.rrsig import name_wire

OPT_OUT = 0x01
SHA1 = 1


def nsec3_hash(name: dns.name.Name, salt: bytes, iterations: int) -> bytes:
    """RFC 5155 s5: IH(salt, owner, iterations) on the canonical wire name."""
    h = hashlib.sha1(name_wire(name) + salt).digest()
    for _ in range(iterations):
        h = hashlib.sha1(h + salt).digest()
    return h


def _b32hex(label: bytes) -> bytes | None:
    text = label.upper()
    try:
        return base64.b32hexdecode(text + b"=" * (-len(text) % 8))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Nsec3:
    rrset: dns.rrset.RRset
    owner_hash: bytes
    next_hash: bytes
    types: frozenset[int]
    opt_out: bool

    def covers(self, h: bytes) -> bool:
        if self.owner_hash < self.next_hash:
            return self.owner_hash < h < self.next_hash
        return h > self.owner_hash or h < self.next_hash


class _Chain:
    """The usable NSEC3 records of one response, with a memoised, budgeted hash."""

    def __init__(
        self,
        zone: dns.name.Name,
        records: list[_Nsec3],
        salt: bytes,
        iterations: int,
        budget: Budget,
    ) -> None:
        self.zone = zone
        self.records = records
        self.salt = salt
        self.iterations = iterations
        self.budget = budget
        self._hashes: dict[dns.name.Name, bytes] = {}

    def hash(self, name: dns.name.Name) -> bytes | None:
        h = self._hashes.get(name)
        if h is None:
            if not self.budget.take("nsec3_hashes"):
                return None
            h = nsec3_hash(name, self.salt, self.iterations)
            self._hashes[name] = h
        return h

    def match(self, h: bytes) -> _Nsec3 | None:
        return next((r for r in self.records if r.owner_hash == h), None)

    def cover(self, h: bytes) -> _Nsec3 | None:
        return next((r for r in self.records if r.covers(h)), None)

    def closest_encloser(
        self, qname: dns.name.Name
    ) -> tuple[dns.name.Name, dns.name.Name | None, _Nsec3] | Proof:
        """(closest encloser, next closer name or None if qname matched, matching NSEC3)."""
        name, prev = qname, None
        while name.is_subdomain(self.zone):
            h = self.hash(name)
            if h is None:
                return fail(f"NSEC3 proof for {qname}: {self.budget.describe()}")
            m = self.match(h)
            if m is not None:
                return name, prev, m
            if name == self.zone:
                break
            prev, name = name, name.parent()
        return missing(f"no NSEC3 matches an ancestor of {qname} (closest encloser proof)")


def _chain(
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
    budget: Budget,
) -> _Chain | Proof:
    limit = budget.limits.nsec3_per_proof
    total = sum(1 for r in authority if r.rdtype == NSEC3_T)
    if total > limit:
        return fail(f"{total} NSEC3 RRsets in one answer (limit {limit})")
    rrsets, skipped = signed_only(authority, NSEC3_T)
    if not rrsets and skipped:
        return unsigned_records("NSEC3", skipped)
    records: list[_Nsec3] = []
    params: tuple[bytes, int] | None = None
    for rrset in rrsets:
        if rrset.name.parent() != zone or len(rrset) != 1:
            continue
        rd = rrset[0]
        # RFC 5155 s8.1/s8.2: unknown hash algorithms and flags are ignored.
        if rd.algorithm != SHA1 or rd.flags & ~OPT_OUT:
            continue
        owner_hash = _b32hex(rrset.name.labels[0])
        if owner_hash is None:
            continue
        if params is None:
            params = (rd.salt, rd.iterations)
        elif params != (rd.salt, rd.iterations):
            continue
        records.append(
            _Nsec3(rrset, owner_hash, rd.next, bitmap_types(rd.windows), bool(rd.flags & OPT_OUT))
        )
    if params is None:
        return missing(f"no usable NSEC3 record of {zone}")
    salt, iterations = params
    if iterations > budget.limits.nsec3_iterations:
        bad = verify_all([r.rrset for r in records], verify)
        if bad is not None:
            return Proof(bad)
        return Proof(
            v.insecure(
                f"NSEC3 records of {zone} use {iterations} iterations (more than "
                f"{budget.limits.nsec3_iterations}); answer treated as insecure (RFC 9276)",
                v.EDE_UNSUPPORTED_NSEC3_ITERATIONS,
            )
        )
    return _Chain(zone, records, salt, iterations, budget)


def _unsigned_cut(
    name: dns.name.Name, m: _Nsec3, zone: dns.name.Name, verify: Verify
) -> Proof | None:
    """An insecure proof when ``m``, the NSEC3 matching ``name`` (the name asked or its
    closest encloser), shows an unsigned delegation (NS, no SOA, no DS): what is asked is
    in, or at the apex of, a child zone whose data cannot be validated (RFC 4035 s5.2,
    RFC 5155 s8.9; Unbound's proveNodata and proveClosestEncloser).  None when it does not,
    or when ``m`` does not verify as itself."""
    if name == zone or NS not in m.types or SOA in m.types or DS in m.types:
        return None
    if DNAME in m.types or verify_all([m.rrset], verify) is not None:
        return None
    return Proof(
        v.insecure(f"the NSEC3 matching {name} shows an unsigned delegation (NS, no DS)"),
        delegation=True,
    )


def nxdomain(
    qname: dns.name.Name,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
    budget: Budget,
) -> Proof:
    chain = _chain(zone, authority, verify, budget)
    if isinstance(chain, Proof):
        return chain
    found = chain.closest_encloser(qname)
    if isinstance(found, Proof):
        return found
    ce, nc, m = found
    if nc is None:
        return fail(f"NXDOMAIN for {qname}, but an NSEC3 record matches it")
    cut = _unsigned_cut(ce, m, zone, verify)
    if cut is not None:
        return cut
    if DNAME in m.types or (NS in m.types and SOA not in m.types and ce != zone):
        return fail(f"the closest encloser {ce} of {qname} is a delegation or DNAME")
    h_nc = chain.hash(nc)
    wild = dns.name.Name((b"*", *ce.labels))
    h_w = chain.hash(wild)
    if h_nc is None or h_w is None:
        return fail(f"NSEC3 proof for {qname}: {budget.describe()}")
    nc_cover = chain.cover(h_nc)
    if nc_cover is None:
        return missing(f"no NSEC3 covers the next closer name {nc}")
    if chain.match(h_w) is not None:
        return fail(f"NXDOMAIN for {qname}, but the wildcard {wild} exists")
    w_cover = chain.cover(h_w)
    if w_cover is None:
        return missing(f"no NSEC3 covers the wildcard {wild}")
    bad = verify_all([m.rrset, nc_cover.rrset, w_cover.rrset], verify)
    if bad is not None:
        return Proof(bad)
    if nc_cover.opt_out:
        return Proof(
            v.insecure(f"NXDOMAIN for {qname} is covered by an opt-out NSEC3 (RFC 5155 s9.2)")
        )
    return Proof(
        v.secure(f"NSEC3: closest encloser {ce}, next closer {nc} covered, no wildcard {wild}")
    )


def nodata(
    qname: dns.name.Name,
    qtype: int,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
    budget: Budget,
) -> Proof:
    chain = _chain(zone, authority, verify, budget)
    if isinstance(chain, Proof):
        return chain
    tname = type_text(qtype)
    h = chain.hash(qname)
    if h is None:
        return fail(f"NSEC3 proof for {qname}: {budget.describe()}")
    m = chain.match(h)
    if m is not None:
        if qtype in m.types or (CNAME in m.types and qtype != CNAME):
            return fail(f"NSEC3 for {qname} lists {tname} or CNAME, yet the answer is empty")
        delegation = False
        if qtype == DS:
            if SOA in m.types and qname != dns.name.root:
                return fail(f"the NSEC3 denying DS at {qname} comes from the child zone")
            delegation = NS in m.types
        elif NS in m.types and SOA not in m.types:
            cut = _unsigned_cut(qname, m, zone, verify)
            if cut is not None:
                return cut
            return fail(f"an NSEC3 from the parent side of the delegation {qname} denies {tname}")
        bad = verify_all([m.rrset], verify)
        if bad is not None:
            return Proof(bad)
        what = "delegation without DS" if delegation else f"no {tname}"
        return Proof(v.secure(f"NSEC3 matching {qname} proves {what}"), delegation, exists=True)
    found = chain.closest_encloser(qname)
    if isinstance(found, Proof):
        return found
    ce, nc, mce = found
    if nc is None:  # unreachable: qname did not match above
        return missing(f"no NSEC3 proves that {qname} has no {tname}")
    if qtype != DS:
        cut = _unsigned_cut(ce, mce, zone, verify)
        if cut is not None:
            return cut
    h_nc = chain.hash(nc)
    if h_nc is None:
        return fail(f"NSEC3 proof for {qname}: {budget.describe()}")
    nc_cover = chain.cover(h_nc)
    if nc_cover is None:
        return missing(f"no NSEC3 covers the next closer name {nc}")
    if qtype == DS:
        # RFC 5155 s8.6: no match, but an opt-out span covers the next closer name.
        if not nc_cover.opt_out:
            return missing(f"no NSEC3 matches {qname} and the covering one is not opt-out")
        bad = verify_all([mce.rrset, nc_cover.rrset], verify)
        if bad is not None:
            return Proof(bad)
        return Proof(
            v.insecure(f"opt-out NSEC3 covers {nc}: an unsigned delegation may exist there"),
            delegation=True,
        )
    wild = dns.name.Name((b"*", *ce.labels))
    h_w = chain.hash(wild)
    if h_w is None:
        return fail(f"NSEC3 proof for {qname}: {budget.describe()}")
    wm = chain.match(h_w)
    if wm is None and nc_cover.opt_out:
        # RFC 5155 s9.2 (Unbound's proveNodata case 5): no match, no wildcard, but the next
        # closer name is in an opt-out span: only an unsigned delegation can be there, so
        # the answer is insecure (a signed name would have an NSEC3 of its own).
        bad = verify_all([mce.rrset, nc_cover.rrset], verify)
        if bad is not None:
            return Proof(bad)
        return Proof(v.insecure(f"NODATA for {qname}: the next closer {nc} is in an opt-out span"))
    if wm is None or qtype in wm.types or CNAME in wm.types:
        return missing(f"no NSEC3 proves that {qname} has no {tname}")
    bad = verify_all([mce.rrset, nc_cover.rrset, wm.rrset], verify)
    if bad is not None:
        return Proof(bad)
    if nc_cover.opt_out:
        # As for a wildcard answer: the next closer name may be an unsigned delegation.
        return Proof(
            v.insecure(f"wildcard NODATA for {qname}: the next closer {nc} is in an opt-out span")
        )
    return Proof(v.secure(f"NSEC3 proves the wildcard {wild} has no {tname}"))


def wildcard(
    qname: dns.name.Name,
    encloser: dns.name.Name,
    zone: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    verify: Verify,
    budget: Budget,
) -> Proof:
    chain = _chain(zone, authority, verify, budget)
    if isinstance(chain, Proof):
        return chain
    depth = len(encloser) + 1
    if len(qname) < depth:
        return fail(f"wildcard encloser {encloser} is not above {qname}")
    nc = dns.name.Name(qname.labels[-depth:])
    h = chain.hash(nc)
    if h is None:
        return fail(f"NSEC3 proof for {qname}: {budget.describe()}")
    cover = chain.cover(h)
    if cover is None:
        return missing(f"wildcard answer for {qname} without an NSEC3 covering {nc}")
    bad = verify_all([cover.rrset], verify)
    if bad is not None:
        return Proof(bad)
    if cover.opt_out:
        # As for NXDOMAIN (RFC 5155 s9.2): an opt-out span may hide an unsigned delegation
        # at the next closer name, so the expansion is not authenticated.
        return Proof(
            v.insecure(f"wildcard answer for {qname}: the next closer {nc} is in an opt-out span")
        )
    return Proof(v.secure(f"NSEC3 covering {nc} proves {qname} is a wildcard expansion"))
