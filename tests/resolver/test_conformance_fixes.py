"""Validator fixes found by replaying Unbound's testbound scenarios (issue #20,
tests/conformance/expected.toml).  Each test serves a small signed hierarchy from the
in-memory authority (rewriting replies where the scenario's server misbehaves) and names the
scenarios it stands for.  The regression tests fail on the code before their fix; the safety
tests beside them (forged or padded input) show that a fix trusts nothing new; the last test
puts the same situations to a real Unbound.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.validator import verdict as v
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import PROBE_TYPE as PROBE
from dnsseal.validator.machine import Need, Query
from dnsseal.validator.msgview import attach_rrsigs

from .authority import Authority, _Answerer, config_for, drive
from .conftest import build
from .test_failopen import Forger, _renamed, _tree, run
from .test_failopen_unbound import TIMES, Scenario, _dnsseal, served_scenario
from .zonebuild import EXPIRATION, INCEPTION, NOW, SignedZone, resign, sign_zone

S = v.Security
T = dns.rdatatype
N = dns.name.from_text
Builder = Callable[[], tuple[Authority, Forger | None]]
__all__ = ["served_scenario"]  # the fixture serving an ORACLE scenario to Unbound


# --- rrsig-section: an RRSIG in another section than its RRset ---------------------------


def _move_sigs(qname: str, rdtype: int, covers: int, to: int) -> Forger:
    """A forger that moves, in the reply to (qname, rdtype), every RRSIG covering ``covers``
    to section ``to`` (1 answer, 2 authority, 3 additional)."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname != N(qname) or need.rdtype != rdtype:
            return reply
        moved = [r for s in reply.sections[1:] for r in s if r.rdtype == T.RRSIG]
        moved = [r for r in moved if r.covers == covers]
        for s in reply.sections[1:]:
            s[:] = [r for r in s if r not in moved]
        reply.sections[to].extend(moved)
        return reply

    return forge


def test_answer_rrsig_in_the_additional_section_is_attached(authority: Authority) -> None:
    """val_positive, val_adbit, val_noadwhennodo, val_spurious_ns, val_ta_algo_*,
    val_unalgo_anchor, iter_class_any: the RRSIG of the answer comes in the additional
    section; it is verified as if in place and goes back to the client in the answer."""
    r = run(authority, "www.a.example.", "A", _move_sigs("www.a.example.", T.A, T.A, 3))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    assert [x.rdtype for x in r.answer] == [T.A, T.RRSIG]


def test_misplaced_rrsig_of_a_referral_ds_and_of_a_denial_are_attached(
    authority: Authority,
) -> None:
    """The RRSIG of a DS answer and the NSEC3 RRSIGs of a NODATA, both moved to the
    additional section, still prove the chain and the denial."""
    forge_ds = _move_sigs("a.example.", T.DS, T.DS, 3)
    r = run(authority, "www.a.example.", "A", forge_ds)
    assert r.verdict.security is S.SECURE, r.verdict
    r = run(authority, "xx.example.", "TXT", _move_sigs("xx.example.", T.TXT, T.NSEC3, 3))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict


def test_misplaced_rrsig_is_still_verified(authority: Authority) -> None:
    """Attaching an RRSIG from another section trusts nothing: a forged A record with the
    genuine RRSIG in the additional section is bogus."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("www.a.example.") and need.rdtype == T.A:
            sigs = [r for r in reply.answer if r.rdtype == T.RRSIG]
            reply.answer = [dns.rrset.from_text("www.a.example.", 300, "IN", "A", "192.0.2.66")]
            reply.additional.extend(sigs)
            reply.flags |= dns.flags.AA
        return reply

    r = run(authority, "www.a.example.", "A", forge)
    assert r.verdict.security is S.BOGUS, r.verdict


_SIG = "{t} 13 2 300 20300101000000 20200101000000 {tag} example. AAAA"


def _rdatas(m: dns.message.Message) -> list[tuple[str, int, str]]:
    return sorted(
        (r.name.to_text(), r.rdtype, rd.to_text()) for s in m.sections for r in s for rd in r
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.example.", "b.example."]),
            st.sampled_from(["A", "TXT"]),
            st.sampled_from([1, 2, 3, None]),  # where the RRset is (None: absent)
            st.lists(st.sampled_from([1, 2, 3]), max_size=2),  # where its RRSIGs are
        ),
        max_size=5,
        unique_by=lambda x: (x[0], x[1]),
    )
)
def test_attach_rrsigs_moves_each_rrsig_to_its_rrset(layout: list[Any]) -> None:
    """Property: every RRSIG whose RRset is in the message ends up in that RRset's section,
    nothing is lost or added, the input is not changed, and a second pass changes nothing."""
    msg = dns.message.make_response(dns.message.make_query("a.example.", "A"))
    rdata = {"A": "192.0.2.1", "TXT": '"x"'}
    for tag, (name, rtype, home, sig_places) in enumerate(layout):
        if home is not None:
            msg.sections[home].append(dns.rrset.from_text(name, 300, "IN", rtype, rdata[rtype]))
        for n, place in enumerate(sig_places):
            sig = dns.rrset.from_text(
                name, 300, "IN", "RRSIG", _SIG.format(t=rtype, tag=tag * 2 + n)
            )
            msg.sections[place].append(sig)
    before = [list(s) for s in msg.sections]
    out = attach_rrsigs(msg)
    assert [list(s) for s in msg.sections] == before
    assert _rdatas(out) == _rdatas(msg)
    for name, rtype, home, sig_places in layout:
        covers = dns.rdatatype.from_text(rtype)
        placed = {
            i
            for i, s in enumerate(out.sections)
            for r in s
            if r.rdtype == T.RRSIG and r.name == N(name) and r.covers == covers
        }
        if sig_places:
            assert placed == ({home} if home is not None else set(sig_places)), (name, rtype)
    again = attach_rrsigs(out)
    assert [list(s) for s in again.sections] == [list(s) for s in out.sections]


# --- referral-ds: the DS RRset or its denial that comes with a referral -----------------


def _parent_referral(
    auth: Authority, parent: str, child: str, rdtype: int = PROBE
) -> dns.message.Message:
    """The referral ``parent``'s own server gives for ``child`` (asked with the minimised
    query's type): NS, then the signed DS RRset or the NSEC/NSEC3 records denying it (the
    in-memory authority serves every zone from one address, so it would answer from the
    child)."""
    r = dns.message.make_response(dns.message.make_query(child, rdtype, want_dnssec=True))
    _Answerer(auth.zones[N(parent)], r).run(N(child), rdtype)
    assert not r.flags & dns.flags.AA and r.authority[0].rdtype == T.NS
    return r


def _refer_and_lose_ds(auth: Authority, parent: str, child: str, ds_reply: str) -> Forger:
    """The minimised query for ``child`` is answered by the parent's referral; the parent's
    answer to ``child`` DS is dropped ("drop") or kept ("keep")."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == N(child) and need.rdtype == PROBE:
            return _parent_referral(auth, parent, child)
        if need.qname == N(child) and need.rdtype == T.DS and ds_reply == "drop":
            return None
        return reply

    return forge


def test_signed_ds_of_a_referral_builds_the_chain(authority: Authority) -> None:
    """val_secds, val_ans_dsent, val_unalgo_ds, val_nsec3_cname_par/_sub,
    val_cnametodnametocnametopos, iter_dnsseclame_ds_ok: the DS is not asked again."""
    forge = _refer_and_lose_ds(authority, "example.", "a.example.", "drop")
    r = run(authority, "www.a.example.", "A", forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    assert ("a.example.", "DS") not in authority.queries


def test_ds_denial_of_a_referral_proves_the_insecure_delegation(authority: Authority) -> None:
    """val_unsecds_negcache, val_negcache_ds_nsec3, val_nsec3_nods_negcache,
    val_nsec3_b3_optout_negcache: the NSEC3 (opt-out) records of the referral to the
    unsigned c.example. prove it insecure without a DS query."""
    forge = _refer_and_lose_ds(authority, "example.", "c.example.", "drop")
    r = run(authority, "mc.c.example.", "MX", forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INSECURE), r.verdict


def test_forged_ds_or_denial_in_a_referral_is_not_trusted(authority: Authority) -> None:
    """A referral is judged exactly as the parent's DS answer: a DS RRset with a broken
    signature, or a denial that proves nothing for the child, sends the walk to the parent
    (genuine answer: secure), and with the parent's answer lost the chain is bogus."""
    for how in ("badsig", "denial"):
        for ds_reply in ("keep", "drop"):

            def forge(
                need: Need, reply: dns.message.Message, how: str = how, ds_reply: str = ds_reply
            ) -> dns.message.Message | None:
                if need.qname == N("a.example.") and need.rdtype == PROBE:
                    out = _parent_referral(authority, "example.", "a.example.")
                    if how == "badsig":
                        out.authority = [_broken_sigs(r) for r in out.authority]
                    else:  # the denial given for c.example., replayed for a.example.
                        denial = _parent_referral(authority, "example.", "c.example.")
                        out.authority = out.authority[:1] + denial.authority[1:]
                    return out
                if need.qname == N("a.example.") and need.rdtype == T.DS and ds_reply == "drop":
                    return None
                return reply

            r = run(authority, "www.a.example.", "A", forge)
            want = S.SECURE if ds_reply == "keep" else S.BOGUS
            assert r.verdict.security is want, (how, ds_reply, r.verdict)


def _broken_sigs(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    if rrset.rdtype != T.RRSIG:
        return rrset
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, T.RRSIG, rrset.covers)
    for rd in rrset:
        sig = bytearray(rd.signature)
        sig[5] ^= 0xFF
        out.add(rd.replace(signature=bytes(sig)), rrset.ttl)
    return out


PAR = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www CNAME www.kid
kid NS ns.kid
ns.kid A 127.0.0.1
"""
KID = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
"""


def test_nsec_denying_the_ds_that_came_with_a_cname_is_used() -> None:
    """val_cnametonsec, val_cnametooptin: the CNAME's answer carries the parent's NSEC
    proving its target's zone is an unsigned delegation; the DS query is not needed, and
    the NSEC goes back to the client with the CNAME."""
    par = sign_zone(PAR, "par")
    auth = _tree(par)
    kid = sign_zone(KID, "kid.par", unsigned=True)
    auth.zones[kid.origin] = kid
    nsec = par.rrset(N("kid.par."), T.NSEC)
    sigs = par.zone.get_rdataset(N("kid.par."), T.RRSIG, T.NSEC)
    assert nsec is not None and sigs is not None
    sig = dns.rrset.RRset(nsec.name, sigs.rdclass, T.RRSIG, T.NSEC)
    sig.update(sigs)

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == N("www.par.") and need.rdtype == T.A:
            reply.authority = [nsec, sig]
        if need.qname == N("kid.par.") and need.rdtype == T.DS:
            return None
        return reply

    r = run(auth, "www.par.", "A", forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INSECURE), r.verdict
    assert [x.rdtype for x in r.answer] == [T.CNAME, T.RRSIG, T.A]
    assert nsec in r.authority and sig in r.authority


def test_nsec_padding_of_a_cname_answer_cannot_spend_the_budget() -> None:
    """The signed NSECs passed on with a CNAME are capped: a CNAME answer padded with 70
    genuine NSEC RRsets of its zone stays secure (not 'budget exhausted')."""
    names = "".join(f"h{i:02d} A 192.0.2.{i}\n" for i in range(70)) + "cn CNAME h01\n"
    par = sign_zone(PAR + names, "par")
    auth = _tree(par)
    padding: list[dns.rrset.RRset] = []
    for i in range(70):
        owner = N(f"h{i:02d}.par.")
        nsec, sigs = par.rrset(owner, T.NSEC), par.zone.get_rdataset(owner, T.RRSIG, T.NSEC)
        assert nsec is not None and sigs is not None
        sig = dns.rrset.RRset(owner, sigs.rdclass, T.RRSIG, T.NSEC)
        sig.update(sigs)
        padding += [nsec, sig]

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("cn.par.") and need.rdtype == T.A:
            reply.authority = padding
        return reply

    r = run(auth, "cn.par.", "A", forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    assert sum(x.rdtype == T.NSEC for x in r.authority) == 8  # nsec3_per_proof of them


# --- nsec3-optout: a next closer name in an opt-out span (RFC 5155 s9.2) -----------------


def _parent_nodata(auth: Authority, parent: str, name: str) -> dns.message.Message:
    """The parent's NODATA for a name in an opt-out span: SOA, the NSEC3 matching the
    closest encloser and the opt-out NSEC3 covering the next closer name."""
    r = dns.message.make_response(dns.message.make_query(name, "MX", want_dnssec=True))
    r.flags |= dns.flags.AA
    answerer = _Answerer(auth.zones[N(parent)], r)
    answerer.soa()
    answerer.deny_ds(N(name))
    return r


def _optout_nodata(auth: Authority) -> Forger:
    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == N("c.example.") and need.rdtype == T.MX:
            return _parent_nodata(auth, "example.", "c.example.")
        return reply

    return forge


def test_wildcard_nodata_in_an_opt_out_span_is_insecure(
    authority: Authority, hierarchy_no_optout: dict[str, SignedZone]
) -> None:
    """val_nsec3_b5_wcnodata, val_nsec3_optout_ad (step 90): RFC 5155 B.5 with the next
    closer name z.w.example. covered by an opt-out NSEC3: no AD (Unbound agrees, below)."""
    r = run(authority, "a.z.w.example.", "AAAA")
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INSECURE), r.verdict
    assert any(x.rdtype == T.NSEC3 for x in r.authority)
    r = run(Authority(list(hierarchy_no_optout.values())), "a.z.w.example.", "AAAA")
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict


def test_nodata_in_an_opt_out_span_without_wildcard_is_insecure(authority: Authority) -> None:
    """val_nsec3_b5_wcnodata_nowc, val_nsec3_optout_ad (step 10): the parent answers NODATA
    for its unsigned delegation c.example. (no NSEC3 there, opt-out); insecure, not bogus."""
    r = run(authority, "c.example.", "MX", _optout_nodata(authority))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INSECURE), r.verdict


def test_nodata_in_an_opt_out_span_needs_the_signed_proof(authority: Authority) -> None:
    """Without the opt-out covering NSEC3's signature (or without it at all) the NODATA is
    bogus: opt-out only lowers a proven answer to insecure."""
    for how in ("badsig", "nocover"):

        def forge(need: Need, reply: dns.message.Message, how: str = how) -> dns.message.Message:
            if need.qname == N("c.example.") and need.rdtype == T.MX:
                out = _parent_nodata(authority, "example.", "c.example.")
                nsec3 = [r for r in out.authority if r.rdtype == T.NSEC3]
                cover = nsec3[-1].name
                if how == "badsig":
                    out.authority = [
                        _broken_sigs(r) if r.name == cover else r for r in out.authority
                    ]
                else:
                    out.authority = [r for r in out.authority if r.name != cover]
                return out
            return reply

        r = run(authority, "c.example.", "MX", forge)
        assert r.verdict.security is S.BOGUS, (how, r.verdict)


# --- anchor-above: a DS RRset lives in the parent, a CNAME link in its own zone ----------


def _only_anchor_at_a(auth: Authority) -> AnchorSet:
    a = auth.zones[N("a.example.")]
    return AnchorSet((TrustAnchor(a.origin, tuple(a.ds())),))  # type: ignore[arg-type]


def test_ds_of_an_anchored_zone_is_judged_by_its_parent(authority: Authority) -> None:
    """val_qds_badanc: the only anchor is a.example.; its DS RRset is example.'s data, which
    no anchor covers: passed on without AD, not bogus."""
    config = config_for(authority, anchors=_only_anchor_at_a(authority))
    r = drive(Query("a.example.", "DS", config, NOW), authority)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INDETERMINATE), r.verdict
    assert [x.rdtype for x in r.answer] == [T.DS, T.RRSIG]


def test_cname_from_an_unanchored_zone_into_an_anchored_one(authority: Authority) -> None:
    """val_cnameinsectopos: alias.example. (no anchor) -> www.a.example. (anchored, secure):
    each link is judged in its own zone, so the answer is served (no AD); forged data in the
    anchored link, signed by the unanchored example., is still bogus."""
    config = config_for(authority, anchors=_only_anchor_at_a(authority))
    r = drive(Query("alias.example.", "A", config, NOW), authority)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INDETERMINATE), r.verdict
    assert [x.rdtype for x in r.answer if x.rdtype != T.RRSIG] == [T.CNAME, T.A]
    fake = "A 13 3 300 20300101000000 20200101000000 1 example. " + "AAAA" * 22

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("www.a.example.") and need.rdtype == T.A:
            reply.answer = [
                dns.rrset.from_text("www.a.example.", 300, "IN", "A", "192.0.2.66"),
                dns.rrset.from_text("www.a.example.", 300, "IN", "RRSIG", fake),
            ]
        return reply

    r = drive(Query("alias.example.", "A", config, NOW), authority, forge)
    assert r.verdict.security is S.BOGUS, r.verdict


# --- yxdomain: a DNAME substitution that would be too long (RFC 6672 s2.2) --------------

LONG = ".".join(["l" * 62] * 3) + ".target."  # 197 octets: with qname's labels, over 255
DPAR = f"""
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
d DNAME {LONG}
"""
TOO_LONG = N("x" * 60 + ".d.par.")


class _YxAuthority(Authority):
    """Answers TOO_LONG with YXDOMAIN and the signed DNAME, as BIND does."""

    def answer(self, qname: dns.name.Name, rdtype: int) -> dns.message.Message:
        if qname != TOO_LONG:
            return super().answer(qname, rdtype)
        par = self.zones[N("par.")]
        r = dns.message.make_response(dns.message.make_query(qname, rdtype, want_dnssec=True))
        r.flags |= dns.flags.AA
        r.set_rcode(dns.rcode.YXDOMAIN)
        _Answerer(par, r).add(r.answer, N("d.par."), T.DNAME)
        return r


def test_yxdomain_with_a_signed_dname_is_answered() -> None:
    """val_dnametoolong, iter_dname_yx: YXDOMAIN with the DNAME (and its RRSIG) goes back
    to the client instead of SERVFAIL; the DNAME is validated (a forged one is bogus)."""
    par = sign_zone(DPAR, "par")
    auth = _tree(par)
    yx = _YxAuthority(list(auth.zones.values()))
    r = run(yx, TOO_LONG.to_text(), "A")
    assert (r.rcode, r.verdict.security) == (dns.rcode.YXDOMAIN, S.SECURE), r.verdict
    assert [x.rdtype for x in r.answer] == [T.DNAME, T.RRSIG]

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == TOO_LONG:
            reply.answer = [_broken_sigs(x) for x in reply.answer]
        return reply

    r = run(yx, TOO_LONG.to_text(), "A", forge)
    assert r.verdict.security is S.BOGUS, r.verdict


# --- nsec-overreach: an NSEC whose next name is outside its zone (RFC 4034 s4.1.1) ------

OVER = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
wab A 192.0.2.1
"""


def test_nsec_whose_next_name_leaves_the_zone_proves_nothing() -> None:
    """val_nx_overreach: the signed NSEC wab.par. -> wzz.zzz. (next name outside par.)
    would cover www.par.; it is not a denial, so the NXDOMAIN is bogus (genuine: secure)."""
    par = sign_zone(OVER, "par")
    auth = _tree(par)
    r = run(auth, "www.par.", "A")
    assert (r.rcode, r.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE), r.verdict
    r = run(_overreaching(), "www.par.", "A")
    assert r.verdict.security is S.BOGUS, r.verdict


def _overreaching(times: tuple[int, int] = (INCEPTION, EXPIRATION)) -> Authority:
    """par. whose last NSEC, wab.par., points to wzz.zzz. instead of the apex."""
    par = sign_zone(OVER, "par", inception=times[0], expiration=times[1])
    wab = N("wab.par.")
    nsec = par.zone.get_rdataset(wab, T.NSEC)
    assert nsec is not None and nsec[0].next == N("par.")
    with par.zone.writer() as txn:
        txn.replace(wab, nsec.ttl, nsec[0].replace(next=N("wzz.zzz.")))
    resign(par, inception=times[0], expiration=times[1])
    return _tree(par, times=times)


# --- dname-wc: a wildcard-expanded DNAME (RFC 4592 s4.4) --------------------------------

WDNAME = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
*.w DNAME t.par.
www.t A 192.0.2.1
"""


def test_wildcard_expanded_dname_is_bogus() -> None:
    """val_dnamewc: the DNAME of *.w.par., served as sub.w.par.'s with the wildcard's RRSIG
    (labels 2 < 3), and the CNAME synthesised from it: bogus, not secure."""
    par = sign_zone(WDNAME, "par")
    auth = _tree(par)
    qname, owner = N("www.sub.w.par."), N("sub.w.par.")
    dname = par.rrset(N("*.w.par."), T.DNAME)
    sigs = par.zone.get_rdataset(N("*.w.par."), T.RRSIG, T.DNAME)
    assert dname is not None and sigs is not None
    sig = dns.rrset.RRset(owner, sigs.rdclass, T.RRSIG, T.DNAME)
    sig.update(sigs)
    nsec = par.rrset(N("*.w.par."), T.NSEC)
    nsigs = par.zone.get_rdataset(N("*.w.par."), T.RRSIG, T.NSEC)
    assert nsec is not None and nsigs is not None
    nsec_sig = dns.rrset.RRset(N("*.w.par."), nsigs.rdclass, T.RRSIG, T.NSEC)
    nsec_sig.update(nsigs)
    assert run(auth, "www.t.par.", "A").verdict.security is S.SECURE

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname in (qname, owner):
            out = dns.message.make_response(dns.message.make_query(need.qname, need.rdtype))
            out.flags |= dns.flags.AA
            cname = dns.rrset.from_text(qname, 0, "IN", "CNAME", "www.t.par.")
            out.answer = [_renamed(dname, owner), sig, cname]
            # The NSEC *.w.par. -> par. proving that sub.w.par. itself does not exist.
            out.authority = [nsec, nsec_sig]
            return out
        return reply

    r = run(auth, "www.sub.w.par.", "A", forge)
    assert r.verdict.security is S.BOGUS, r.verdict
    assert "wildcard" in r.verdict.reason


# --- dname-qtype: a DNAME query below a DNAME owner -------------------------------------


def test_dname_query_below_a_dname_owner_follows_the_dname(authority: Authority) -> None:
    """val_dnameqtype (step 60): www.old.example. DNAME is redirected by old.example.'s
    DNAME like any other type; the synthesised CNAME is not data needing its own chain."""
    r = run(authority, "www.old.example.", "DNAME")
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    assert [x.rdtype for x in r.answer if x.rdtype != T.RRSIG] == [T.DNAME, T.CNAME]
    assert ("old.example.", "DS") not in authority.queries


# --- ds-referral: a DS query answered with the parent's referral ------------------------


def test_ds_query_answered_by_a_referral_takes_its_ds(authority: Authority) -> None:
    """iter_ds_referral: the parent answers a.example. DS with its referral to a.example.
    (NS, DS, RRSIG): the DS RRset is the answer, validated with example.'s keys; with a
    broken signature it is bogus."""
    for broken in (False, True):

        def forge(
            need: Need, reply: dns.message.Message, broken: bool = broken
        ) -> dns.message.Message:
            if need.qname == N("a.example.") and need.rdtype == T.DS:
                out = _parent_referral(authority, "example.", "a.example.")
                if broken:
                    out.authority = [_broken_sigs(r) for r in out.authority]
                return out
            return reply

        r = run(authority, "a.example.", "DS", forge)
        if broken:
            assert r.verdict.security is S.BOGUS, r.verdict
            continue
        assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
        assert [x.rdtype for x in r.answer] == [T.DS, T.RRSIG]


# --- rrset-cache: a DS asked later in the chain that came with a referral ---------------

CKID = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www CNAME kid.par.
"""


def test_ds_of_a_cname_target_comes_from_the_referral() -> None:
    """val_nsec3_cname_ds: www.kid.par. DS is a CNAME to the apex kid.par.; the DS of
    kid.par. the referral from par. carried answers the second link (the parent is not
    asked again: the test drops that question)."""
    kid = sign_zone(CKID, "kid.par")
    par = sign_zone(PAR + _ds_lines(kid), "par")
    auth = _tree(par)
    auth.zones[kid.origin] = kid

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == kid.origin and need.rdtype == PROBE:
            return _parent_referral(auth, "par.", "kid.par.")
        if need.qname == kid.origin and need.rdtype == T.DS:
            return None
        return reply

    r = run(auth, "www.kid.par.", "DS", forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    assert [x.rdtype for x in r.answer if x.rdtype != T.RRSIG] == [T.CNAME, T.DS]


def _ds_lines(z: SignedZone) -> str:
    rel = z.origin.relativize(z.origin.parent()).to_text()
    return "".join(f"{rel} DS {d.to_text()}\n" for d in z.ds())


# --- rrsig-qtype: an answer to QTYPE RRSIG ----------------------------------------------


def _rrsig_answer(auth: Authority, zone: str) -> Forger:
    """Answers ``name`` RRSIG with the RRSIG RRsets of ``name`` (as BIND does)."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.rdtype != T.RRSIG:
            return reply
        z = auth.zones[N(zone)]
        out = dns.message.make_response(dns.message.make_query(need.qname, "RRSIG"))
        out.flags |= dns.flags.AA
        for rds in z.zone.nodes[need.qname].rdatasets:
            if rds.rdtype == T.RRSIG:
                sig = dns.rrset.RRset(need.qname, rds.rdclass, T.RRSIG, rds.covers)
                sig.update(rds)
                out.answer.append(sig)
        return out

    return forge


def test_rrsig_query_is_not_validated_into_a_chain_walk(authority: Authority) -> None:
    """val_rrsig (now under [differ]): RRSIG RRsets are not signed (RFC 4035 s2.2).  Below a
    trust anchor the answer is bogus at once, without walking DS down to its owner; outside
    the anchored tree it is passed on without AD."""
    forge = _rrsig_answer(authority, "example.")
    r = run(authority, "xx.example.", "RRSIG", forge)
    assert r.verdict.security is S.BOGUS and "RFC 4035 s2.2" in r.verdict.reason, r.verdict
    assert ("xx.example.", "DS") not in authority.queries
    config = config_for(authority, anchors=_only_anchor_at_a(authority))
    r = drive(Query("xx.example.", "RRSIG", config, NOW), authority, forge)
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.INDETERMINATE), r.verdict
    assert {x.covers for x in r.answer} == {T.A, T.HINFO, T.AAAA}


# --- Unbound as the outside oracle for the fixes above ----------------------------------


def _served(forge_for: Callable[[Authority], Forger | None], opt_out: bool = True) -> Builder:
    def build_it() -> tuple[Authority, Forger | None]:
        auth = Authority(list(build(opt_out=opt_out, times=TIMES).values()))
        return auth, forge_for(auth)

    return build_it


ORACLE = [
    Scenario(
        "answer RRSIG in the additional section",
        "www.a.example.",
        "A",
        _served(lambda auth: _move_sigs("www.a.example.", T.A, T.A, 3)),
        dns.rcode.NOERROR,
        True,
    ),
    Scenario(
        "NSEC3 RRSIGs of a NODATA in the additional section",
        "xx.example.",
        "TXT",
        _served(lambda auth: _move_sigs("xx.example.", T.TXT, T.NSEC3, 3)),
        dns.rcode.NOERROR,
        True,
    ),
    Scenario(
        "wildcard NODATA in an opt-out span (RFC 5155 B.5)",
        "a.z.w.example.",
        "AAAA",
        _served(lambda auth: None),
        dns.rcode.NOERROR,
        False,
    ),
    Scenario(
        "wildcard NODATA without opt-out",
        "a.z.w.example.",
        "AAAA",
        _served(lambda auth: None, opt_out=False),
        dns.rcode.NOERROR,
        True,
    ),
    Scenario(
        "parent NODATA in an opt-out span",
        "c.example.",
        "MX",
        _served(_optout_nodata),
        dns.rcode.NOERROR,
        False,
    ),
    Scenario(
        "NSEC next name outside the zone",
        "www.par.",
        "A",
        lambda: (_overreaching(TIMES), None),
        dns.rcode.SERVFAIL,
        False,
    ),
]


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("served_scenario", ORACLE, indirect=True, ids=[s.name for s in ORACLE])
def test_fixes_agree_with_unbound(
    served_scenario: tuple[Scenario, Authority, int, int, Path],
) -> None:
    scenario, auth, upstream, unbound_port, _ = served_scenario
    query = dns.message.make_query(scenario.qname, scenario.qtype, want_dnssec=True)
    ours = _dnsseal(auth, upstream, query)
    theirs = dns.query.udp(query, "127.0.0.1", port=unbound_port, timeout=20)

    def outcome(m: dns.message.Message) -> tuple[str, bool]:
        return dns.rcode.to_text(m.rcode()), bool(m.flags & dns.flags.AD)

    assert outcome(ours) == (dns.rcode.to_text(scenario.rcode), scenario.ad), f"dnsseal: {ours}"
    assert outcome(ours) == outcome(theirs), f"dnsseal: {ours}\nunbound: {theirs}"
