"""Unsigned delegations proven by records that came earlier in the resolution, and forward
zones (issue #20: Unbound's val_cnametoinsecure, val_cnametooptout and val_fwdds, see
tests/conformance/expected.toml).

- A CNAME's reply carries the parent's signed NSEC/NSEC3 showing that the target is an
  unsigned delegation; the target's server (a forwarder, or a server of both zones) then
  answers NODATA with the parent's SOA and no denial.  The target is insecure (RFC 4035
  s5.2), not bogus.
- A forwarder answers the target with a referral into an opt-out span: that is its answer
  (Unbound sends nothing elsewhere), insecure when the chain proves the unsigned
  delegation, bogus when the child is signed (a referral denies nothing).
- A DS RRset lives in the parent zone (RFC 4035 s3.1.4.1): the DS of a forward zone's apex
  is asked of the parent's servers, not of the forwarder.

Each regression test fails on the code before the fix; the safety tests beside them show
that nothing unproven becomes insecure or secure.
"""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.validator import verdict as v
from dnsseal.validator.denial import bitmap_types
from dnsseal.validator.machine import Need, Query, Result

from .authority import Authority, _Answerer, config_for
from .test_conformance_fixes import _broken_sigs
from .test_failopen import Forger, _soa, _tree, drive, run
from .test_failopen_unbound import TIMES, Scenario, _dnsseal, served_scenario
from .zonebuild import NOW, Nsec3Params, SignedZone, b32, nsec3_hash, sign_zone

__all__ = ["served_scenario"]  # the fixture serving an ORACLE scenario to Unbound
S = v.Security
T = dns.rdatatype
N = dns.name.from_text
FORWARDER = ("127.0.0.9", 53)

PAR = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www CNAME unsafe
deep CNAME www.unsafe
unsafe NS ns.unsafe
ns.unsafe A 127.0.0.1
"""


def _signed(z: SignedZone, name: dns.name.Name, rdtype: int) -> list[dns.rrset.RRset]:
    """``name``'s ``rdtype`` RRset of ``z`` and its RRSIG RRset."""
    rrset = z.rrset(name, rdtype)
    sigs = z.zone.get_rdataset(name, T.RRSIG, rdtype)
    assert rrset is not None and sigs is not None
    sig = dns.rrset.RRset(name, sigs.rdclass, T.RRSIG, rdtype)
    sig.update(sigs)
    return [rrset, sig]


def _nsec3_owner(z: SignedZone, name: str) -> dns.name.Name:
    assert z.nsec3 is not None
    return dns.name.from_text(b32(nsec3_hash(N(name), z.nsec3.salt, z.nsec3.iterations)), z.origin)


def _cohosted(
    par: SignedZone, cname: str, proof: list[dns.rrset.RRset], drop_ds: bool = True
) -> Forger:
    """The reply to ``cname`` AAAA carries ``proof`` in its authority section; the target
    is answered NODATA with the parent's SOA and no denial (a server of both zones, as in
    val_cnametoinsecure); the target's DS queries are lost (``drop_ds``), so only ``proof``
    can tell."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == N(cname) and need.rdtype == T.AAAA:
            reply.authority = list(proof)
            return reply
        if need.qname.is_subdomain(N("unsafe.par.")) and need.rdtype == T.DS:
            return None if drop_ds else reply
        if need.qname.is_subdomain(N("unsafe.par.")) and need.rdtype == T.AAAA:
            out = dns.message.make_response(
                dns.message.make_query(need.qname, "AAAA", want_dnssec=True)
            )
            out.authority = _soa(par)
            return out
        return reply

    return forge


def _par(nsec3: bool) -> tuple[SignedZone, Authority]:
    par = sign_zone(PAR, "par", nsec3=Nsec3Params(b"", 1) if nsec3 else None)
    return par, _tree(par)


def _cut_proof(par: SignedZone, name: str = "unsafe.par.") -> list[dns.rrset.RRset]:
    """The parent's signed NSEC or NSEC3 showing ``name`` is a delegation without DS."""
    if par.nsec3 is None:
        return _signed(par, N(name), T.NSEC)
    return _signed(par, _nsec3_owner(par, name), T.NSEC3)


def test_nsec_of_an_unsigned_delegation_from_the_cname_reply_makes_the_target_insecure() -> None:
    """val_cnametoinsecure (NSEC and NSEC3): the target unsafe.par. is answered NODATA with
    the parent's SOA and no denial; the parent's NSEC (NS, no DS) that came with the CNAME
    proves it is an unsigned delegation: NOERROR, insecure, with that NSEC and the SOA."""
    for nsec3 in (False, True):
        par, auth = _par(nsec3)
        proof = _cut_proof(par)
        for qname in ("www.par.", "deep.par."):  # the target at the cut, and below it
            r = run(auth, qname, "AAAA", _cohosted(par, qname, proof))
            assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INSECURE), (
                nsec3,
                qname,
                r.verdict,
            )
            assert [x.rdtype for x in r.answer] == [T.CNAME, T.RRSIG]
            assert all(x in r.authority for x in proof), r.authority
            assert _soa(par)[0] in r.authority


def test_a_cut_proof_that_does_not_verify_or_shows_no_cut_stays_bogus() -> None:
    """The same NODATA is bogus when what came with the CNAME proves no unsigned cut: the
    NSEC/NSEC3 with a broken signature, or the one of a name that is no delegation."""
    for nsec3 in (False, True):
        par, auth = _par(nsec3)
        broken = [_broken_sigs(x) for x in _cut_proof(par)]
        other = _signed(par, N("www.par."), T.NSEC) if not nsec3 else _cut_proof(par, "www.par.")
        for proof in (broken, other, []):
            r = run(auth, "www.par.", "AAAA", _cohosted(par, "www.par.", proof))
            assert r.verdict.security is S.BOGUS, (nsec3, proof, r.verdict)


KID = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
"""


def test_nsec_of_a_signed_delegation_does_not_make_the_target_insecure() -> None:
    """The parent's NSEC at a signed delegation (DS in its bitmap) proves no unsigned cut:
    a NODATA for the child's name with the parent's SOA and no denial is bogus."""
    kid = sign_zone(KID, "unsafe.par")
    body = PAR + "".join(f"unsafe DS {d.to_text()}\n" for d in kid.ds())
    par = sign_zone(body, "par")
    auth = _tree(par)
    auth.zones[kid.origin] = kid
    proof = _cut_proof(par)
    assert T.DS in bitmap_types(proof[0][0].windows)

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == N("www.par.") and need.rdtype == T.AAAA:
            reply.authority = list(proof)
        elif need.qname == N("unsafe.par.") and need.rdtype == T.AAAA:
            out = dns.message.make_response(
                dns.message.make_query(need.qname, "AAAA", want_dnssec=True)
            )
            out.authority = _soa(par)
            return out
        return reply

    r = run(auth, "www.par.", "AAAA", forge)
    assert r.verdict.security is S.BOGUS, r.verdict


# --- forward zones -----------------------------------------------------------------------

OPTOUT = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www CNAME www.content
content NS ns.content
ns.content A 127.0.0.1
"""


def _forwarded(auth: Authority, name: str, rdtype: str, forge: Forger) -> Result:
    """Resolve with every name forwarded to FORWARDER (forward-zone "."); the in-memory
    authority stands in for the forwarder (answering like the scenario's)."""
    config = config_for(auth, forwards=((dns.name.root, (FORWARDER,)),))
    return drive(Query(name, rdtype, config, NOW), auth, forge)


def _referral_only(par: SignedZone) -> Forger:
    """The forwarder answers www.content.par. with the parent's referral, NS only (no DS,
    no denial, no glue, no AA), as in val_cnametooptout."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname != N("www.content.par."):
            return reply
        out = dns.message.make_response(
            dns.message.make_query(need.qname, need.rdtype, want_dnssec=True)
        )
        _Answerer(par, out).run(need.qname, need.rdtype)
        assert out.authority and not out.answer
        out.authority = [r for r in out.authority if r.rdtype == T.NS]
        out.additional = []
        out.flags &= ~dns.flags.AA
        return out

    return forge


def test_forwarder_referral_into_an_opt_out_span_is_an_insecure_answer() -> None:
    """val_cnametooptout: the forwarder answers the CNAME's target with a referral (NS only)
    to content.par., which the opt-out NSEC3 that came with the CNAME shows may be unsigned:
    the referral is the forwarder's answer, insecure (NOERROR, no data, no AD)."""
    par = sign_zone(OPTOUT, "par", nsec3=Nsec3Params(b"\xab\xcd", 1, opt_out=True))
    auth = _tree(par)
    asked: list[Need] = []
    referral = _referral_only(par)

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        asked.append(need)
        if need.qname == N("www.par.") and need.rdtype == T.AAAA:
            _Answerer(par, reply).deny_ds(N("content.par."))
            return reply
        if need.qname == N("content.par.") and need.rdtype == T.DS:
            return None  # only the NSEC3 that came with the CNAME can tell
        return referral(need, reply)

    r = _forwarded(auth, "www.par.", "AAAA", forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INSECURE), r.verdict
    assert [x.rdtype for x in r.answer] == [T.CNAME, T.RRSIG]
    assert all(n.recursive for n in asked)
    assert not any(x.rdtype == T.NS for x in r.authority)


def test_forwarder_referral_into_a_signed_zone_is_bogus() -> None:
    """A forwarder's referral to a signed child (its DS left out) is no answer and no
    denial: the chain reaches the signed child and the missing proof makes it bogus."""
    kid = sign_zone(KID, "content.par")
    body = OPTOUT + "".join(f"content DS {d.to_text()}\n" for d in kid.ds())
    par = sign_zone(body, "par", nsec3=Nsec3Params(b"\xab\xcd", 1, opt_out=True))
    auth = _tree(par)
    auth.zones[kid.origin] = kid
    r = _forwarded(auth, "www.par.", "AAAA", _referral_only(par))
    # Not passed on: bogus (the service answers SERVFAIL), or a resolution failure.
    assert r.verdict.security is S.BOGUS or r.rcode == dns.rcode.SERVFAIL, r.verdict
    assert r.verdict.security not in (S.SECURE, S.INSECURE), r.verdict


def test_ds_of_a_forward_zone_apex_is_asked_of_the_parent() -> None:
    """val_fwdds: kid.par. is a forward zone; its DS lives in par. and is asked of par.'s
    servers (RD clear), not of the forwarder (which answers SERVFAIL for it): secure."""
    kid = sign_zone(KID, "kid.par")
    par = sign_zone(OPTOUT + "".join(f"kid DS {d.to_text()}\n" for d in kid.ds()), "par")
    auth = _tree(par)
    auth.zones[kid.origin] = kid
    asked: list[Need] = []

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        asked.append(need)
        if need.recursive and need.rdtype == T.DS:
            out = dns.message.make_response(dns.message.make_query(need.qname, T.DS))
            out.set_rcode(dns.rcode.SERVFAIL)
            return out
        return reply

    config = config_for(auth, forwards=((kid.origin, (FORWARDER,)),))
    r = drive(Query("www.kid.par.", "A", config, NOW), auth, forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    ds = [n for n in asked if n.qname == kid.origin and n.rdtype == T.DS]
    assert ds and not any(n.recursive for n in ds)
    assert any(n.recursive and n.qname == N("www.kid.par.") for n in asked)


# --- the same situations put to a real Unbound ------------------------------------------


def _served_cohosted(qname: str, nsec3: bool, broken: bool = False) -> Scenario:
    def build_it() -> tuple[Authority, Forger | None]:
        params = Nsec3Params(b"", 1) if nsec3 else None
        par = sign_zone(PAR, "par", nsec3=params, inception=TIMES[0], expiration=TIMES[1])
        proof = _cut_proof(par)
        if broken:
            proof = [_broken_sigs(x) for x in proof]
        return _tree(par, times=TIMES), _cohosted(par, qname, proof, drop_ds=False)

    what = f"{'NSEC3' if nsec3 else 'NSEC'} cut proof with the CNAME {qname}"
    if broken:
        return Scenario(f"broken {what}", qname, "AAAA", build_it, dns.rcode.SERVFAIL, False)
    return Scenario(what, qname, "AAAA", build_it, dns.rcode.NOERROR, False)


ORACLE = [
    _served_cohosted("www.par.", nsec3=False),
    _served_cohosted("deep.par.", nsec3=False),
    _served_cohosted("www.par.", nsec3=True),
    _served_cohosted("www.par.", nsec3=False, broken=True),
]


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("served_scenario", ORACLE, indirect=True, ids=[s.name for s in ORACLE])
def test_unsigned_cut_proofs_agree_with_unbound(
    served_scenario: tuple[Scenario, Authority, int, int, Path],
) -> None:
    """val_cnametoinsecure served for real: dnsseal and Unbound agree on rcode and AD."""
    scenario, auth, upstream, unbound_port, _ = served_scenario
    query = dns.message.make_query(scenario.qname, scenario.qtype, want_dnssec=True)
    ours = _dnsseal(auth, upstream, query)
    theirs = dns.query.udp(query, "127.0.0.1", port=unbound_port, timeout=20)

    def outcome(m: dns.message.Message) -> tuple[str, bool]:
        return dns.rcode.to_text(m.rcode()), bool(m.flags & dns.flags.AD)

    assert outcome(ours) == (dns.rcode.to_text(scenario.rcode), scenario.ad), f"dnsseal: {ours}"
    assert outcome(ours) == outcome(theirs), f"dnsseal: {ours}\nunbound: {theirs}"
