"""The query state machine through an in-memory authority, time pinned.

The zones follow RFC 5155 Appendix A's layout (example. with NSEC3 salt aabbccdd, 12
iterations, opt-out, the names a, ai, c, ns1, ns2, *.w, x.w, x.y.w, xx) under a signed root,
re-signed here with fresh keys; the cases are Appendix B's: name error, no data, empty
non-terminal, referral to an opt-out unsigned zone, wildcard expansion, wildcard no data,
DS no data.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.validator import verdict as v
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import Need, Query

from .authority import Authority, config_for, drive
from .conftest import build
from .zonebuild import EXPIRATION, INCEPTION, NOW, SignedZone

S = v.Security


def run(auth: Authority, name: str, rdtype: str, now: int = NOW, mutate=None, **kw: object):  # type: ignore[no-untyped-def]
    return drive(Query(name, rdtype, config_for(auth, **kw), now), auth, mutate)


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode", "security"),
    [
        ("a.c.x.w.example.", "A", dns.rcode.NXDOMAIN, S.INSECURE),  # B.1 (opt-out span)
        ("ns1.example.", "MX", dns.rcode.NOERROR, S.SECURE),  # B.2 no data
        ("y.w.example.", "A", dns.rcode.NOERROR, S.SECURE),  # B.2.1 empty non-terminal
        ("mc.c.example.", "MX", dns.rcode.NOERROR, S.INSECURE),  # B.3 opt-out referral
        # B.4 wildcard: the next closer name is in an opt-out span, so no AD (RFC 5155 s9.2)
        ("a.z.w.example.", "MX", dns.rcode.NOERROR, S.INSECURE),
        # B.5 wildcard no data: the next closer z.w.example. is in an opt-out span too (as
        # Unbound's val_nsec3_b5_wcnodata; test_conformance_fixes checks it against Unbound)
        ("a.z.w.example.", "AAAA", dns.rcode.NOERROR, S.INSECURE),
        ("ai.example.", "DS", dns.rcode.NOERROR, S.SECURE),  # B.6-like DS no data
        ("a.example.", "DS", dns.rcode.NOERROR, S.SECURE),
        ("www.a.example.", "A", dns.rcode.NOERROR, S.SECURE),
        ("x.w.example.", "MX", dns.rcode.NOERROR, S.SECURE),
        ("www.insec.", "A", dns.rcode.NOERROR, S.INSECURE),  # NSEC-proven unsigned child
        ("nonexistent.", "A", dns.rcode.NXDOMAIN, S.SECURE),  # NSEC NXDOMAIN at the root
    ],
)
def test_rfc5155_appendix_b(
    authority: Authority, name: str, rdtype: str, rcode: int, security: v.Security
) -> None:
    r = run(authority, name, rdtype)
    assert (r.rcode, r.verdict.security) == (rcode, security), r.verdict
    assert r.links, "the chain is explained"


def test_name_error_without_opt_out_is_secure(hierarchy_no_optout: dict[str, SignedZone]) -> None:
    auth = Authority(list(hierarchy_no_optout.values()))
    r = run(auth, "a.c.x.w.example.", "A")
    assert (r.rcode, r.verdict.security) == (dns.rcode.NXDOMAIN, S.SECURE), r.verdict
    r = run(auth, "mc.c.example.", "MX")
    assert r.verdict.security is S.INSECURE
    assert "NSEC3 matching c.example." in r.verdict.reason


def test_wildcard_answer_is_returned_with_signatures(
    hierarchy_no_optout: dict[str, SignedZone],
) -> None:
    r = run(Authority(list(hierarchy_no_optout.values())), "a.z.w.example.", "MX")
    assert r.verdict.security is S.SECURE, r.verdict
    mx = [x for x in r.answer if x.rdtype == dns.rdatatype.MX]
    assert mx and mx[0].name == dns.name.from_text("a.z.w.example.")
    assert any("wildcard expansion" in link.text for link in r.links)
    # The proof that the expansion was allowed goes with it, for downstream validators.
    assert {x.rdtype for x in r.authority} == {dns.rdatatype.NSEC3, dns.rdatatype.RRSIG}


def test_qname_minimisation_asks_one_label_at_a_time(authority: Authority) -> None:
    run(authority, "www.a.example.", "A")
    first = authority.queries[:3]
    assert first[0] == ("example.", "A")  # RFC 9156 s2.1: minimised questions ask for A
    assert ("www.a.example.", "A") in authority.queries
    authority.queries.clear()
    run(authority, "www.a.example.", "A", minimise=False)
    assert authority.queries[0] == ("www.a.example.", "A")


@pytest.mark.parametrize(
    ("now", "ede"),
    [
        (EXPIRATION + 3600, v.EDE_SIGNATURE_EXPIRED),
        (INCEPTION - 3600, v.EDE_SIGNATURE_NOT_YET_VALID),
    ],
)
def test_pinned_time_outside_validity(authority: Authority, now: int, ede: int) -> None:
    r = run(authority, "www.a.example.", "A", now=now)
    assert r.verdict.security is S.BOGUS
    assert r.verdict.ede == ede


def _mutate_answer(fn):  # type: ignore[no-untyped-def]
    def mutate(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == dns.name.from_text("www.a.example.") and need.rdtype == 1:
            fn(reply)
        return reply

    return mutate


def _tamper(reply: dns.message.Message) -> None:
    reply.answer[0] = dns.rrset.from_text(reply.answer[0].name, 300, "IN", "A", "192.0.2.66")


def _strip_sigs(reply: dns.message.Message) -> None:
    reply.answer = [r for r in reply.answer if r.rdtype != dns.rdatatype.RRSIG]


def test_tampered_answer_is_bogus(authority: Authority) -> None:
    r = run(authority, "www.a.example.", "A", mutate=_mutate_answer(_tamper))
    assert (r.verdict.security, r.verdict.ede) == (S.BOGUS, v.EDE_DNSSEC_BOGUS)


def test_stripped_rrsig_is_bogus(authority: Authority) -> None:
    r = run(authority, "www.a.example.", "A", mutate=_mutate_answer(_strip_sigs))
    assert (r.verdict.security, r.verdict.ede) == (S.BOGUS, v.EDE_RRSIGS_MISSING)


def test_missing_nsec3_is_bogus(authority: Authority) -> None:
    def mutate(need: Need, reply: dns.message.Message) -> dns.message.Message:
        reply.authority = [
            r
            for r in reply.authority
            if r.rdtype not in (dns.rdatatype.NSEC3, dns.rdatatype.NSEC)
            and not (r.rdtype == dns.rdatatype.RRSIG and r.covers == dns.rdatatype.NSEC3)
        ]
        return reply

    r = run(authority, "nope.example.", "A", mutate=mutate)
    assert (r.verdict.security, r.verdict.ede) == (S.BOGUS, v.EDE_NSEC_MISSING)
    r = run(authority, "a.z.w.example.", "MX", mutate=mutate)  # wildcard without proof
    assert (r.verdict.security, r.verdict.ede) == (S.BOGUS, v.EDE_NSEC_MISSING)


def test_ds_mismatch_and_missing_dnskey() -> None:
    zones = build()
    root = zones["root"]
    wrong = root.ds()[0]
    bad = dns.rdata.from_text("IN", "DS", f"{wrong.key_tag} 13 2 {'00' * 32}")
    anchors = AnchorSet((TrustAnchor(dns.name.root, (bad,)),))  # type: ignore[arg-type]
    auth = Authority(list(zones.values()))
    r = run(auth, "www.a.example.", "A", anchors=anchors)
    assert r.verdict.security is S.BOGUS
    assert "digest does not match" in r.verdict.reason
    other = dns.rdata.from_text("IN", "DS", f"{(wrong.key_tag + 1) % 65536} 13 2 {'00' * 32}")
    anchors = AnchorSet((TrustAnchor(dns.name.root, (other,)),))  # type: ignore[arg-type]
    r = run(auth, "www.a.example.", "A", anchors=anchors)
    assert (r.verdict.security, r.verdict.ede) == (S.BOGUS, v.EDE_DNSKEY_MISSING)


def test_no_anchor_is_indeterminate_and_negative_anchor_insecure(authority: Authority) -> None:
    other = AnchorSet((TrustAnchor(dns.name.from_text("org."), ()),))
    r = run(authority, "www.a.example.", "A", anchors=other)
    assert r.verdict.security is S.INDETERMINATE
    root = config_for(authority).anchors
    nta = root.with_negative(dns.name.from_text("a.example."), NOW + 60)
    r = run(authority, "www.a.example.", "A", anchors=nta, mutate=_mutate_answer(_tamper))
    assert r.verdict.security is S.INSECURE
    assert "negative trust anchor" in r.verdict.reason
    r = run(authority, "www.a.example.", "A", now=NOW + 61, anchors=nta)
    assert r.verdict.security is S.SECURE  # the NTA expired


def test_no_server_answers_is_indeterminate(authority: Authority) -> None:
    q = Query("www.a.example.", "A", config_for(authority), NOW)
    step = q.start()
    assert isinstance(step, Need)
    result = q.feed(None)
    assert isinstance(result, Need)  # the minimised question failed: the full one is asked
    assert (result.qname, result.rdtype) == (dns.name.from_text("www.a.example."), 1)
    result = q.feed(None)
    assert not isinstance(result, Need)
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.verdict.ede == v.EDE_NO_REACHABLE_AUTHORITY


def test_dname_and_cname_chains_across_zones(authority: Authority) -> None:
    r = run(authority, "www.old.example.", "A")
    assert r.verdict.security is S.SECURE, r.verdict
    types = [x.rdtype for x in r.answer if x.rdtype != dns.rdatatype.RRSIG]
    assert types == [dns.rdatatype.DNAME, dns.rdatatype.CNAME, dns.rdatatype.A]
    r = run(authority, "alias.example.", "A")
    assert r.verdict.security is S.SECURE
    assert [x.rdtype for x in r.answer if x.rdtype != dns.rdatatype.RRSIG] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    r = run(authority, "alias.example.", "A", mutate=_mutate_answer(_tamper))
    assert r.verdict.security is S.BOGUS  # the target's data is checked in its own zone


def test_cname_loop_is_servfail(authority: Authority) -> None:
    r = run(authority, "loop1.example.", "A")
    assert r.rcode == dns.rcode.SERVFAIL
    assert "loop" in r.verdict.reason


def test_unsupported_algorithm_in_ds_is_insecure(authority: Authority) -> None:
    # RFC 6840 s5.2: a DS set with only unknown (253) or refused (RSAMD5) algorithms.
    for alg in (253, 1):
        ds = dns.rdata.from_text("IN", "DS", f"1 {alg} 2 {'00' * 32}")
        anchors = AnchorSet((TrustAnchor(dns.name.root, (ds,)),))  # type: ignore[arg-type]
        r = run(authority, "www.a.example.", "A", anchors=anchors)
        assert (r.verdict.security, r.verdict.ede) == (
            S.INSECURE,
            v.EDE_UNSUPPORTED_DNSKEY_ALGORITHM,
        ), r.verdict


def test_validated_ttl_is_capped_by_original_ttl(authority: Authority) -> None:
    def stretch(reply: dns.message.Message) -> None:
        a = reply.answer[0]
        reply.answer[0] = dns.rrset.from_rdata_list(a.name, 86400 * 7, list(a))

    r = run(authority, "www.a.example.", "A", mutate=_mutate_answer(stretch))
    assert r.verdict.security is S.SECURE  # the TTL is not signed data
    a = next(x for x in r.answer if x.rdtype == dns.rdatatype.A)
    assert a.ttl == 3600  # the RRSIG's original TTL
