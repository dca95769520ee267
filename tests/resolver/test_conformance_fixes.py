"""Validator fixes found by replaying Unbound's testbound scenarios (issue #20,
tests/conformance/expected.toml).  Each test serves a small signed hierarchy from the
in-memory authority (rewriting replies where the scenario's server misbehaves) and fails on
the code before its fix; the scenarios it stands for are named in its docstring.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal.validator import verdict as v
from dnsseal.validator.machine import Need

from .authority import Authority
from .test_failopen import Forger, run

S = v.Security
T = dns.rdatatype
N = dns.name.from_text


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
