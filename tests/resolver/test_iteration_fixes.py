"""Iterator fixes found by replaying Unbound's testbound scenarios (issue #20, see
tests/conformance/expected.toml).

- iter_lame_aaaa: a server that answers with an upward referral is lame, even with AA set.
  No server of a zone refers a resolver up the tree for a name in the zone: it answers with
  data, a referral down or a denial (RFC 1034 s4.3.2).  Unbound's response_type_from_server
  calls an NS RRset above the zone asked "lame" whatever the AA bit says; dnsseal took such
  a reply with AA for NODATA and passed an empty NOERROR on.
- iter_pcdirect, iter_pcnamerec: the child side of an out-of-zone name server's name
  delegates it again to a name that does not exist, or gives it a dead address; the
  parent's glue for it works, and is used (Unbound's parent-side fallback).
- iter_pcnamech, iter_pcnamechrec: the zone's own NS RRset (in its answers' authority
  section) names a server the parent's delegation does not; when the delegated one stops
  answering, a later query uses it.

Each test fails on the code before its fix.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.machine import Need, Query
from dnsseal.validator.msgview import Kind, classify
from dnsseal.validator.trustcache import DelegationCache

from .authority import Authority, _Answerer, config_for
from .test_failopen import _tree, drive
from .zonebuild import NOW, sign_zone

T = dns.rdatatype
N = dns.name.from_text


def _upward(qname: str, rdtype: str, aa: bool) -> dns.message.Message:
    """An empty NOERROR with the root's NS RRset in the authority section."""
    r = dns.message.make_response(dns.message.make_query(qname, rdtype))
    r.flags &= ~dns.flags.RA
    if aa:
        r.flags |= dns.flags.AA
    r.authority = [dns.rrset.from_text(".", 3600000, "IN", "NS", "a.root-servers.net.")]
    return r


def test_upward_referral_is_lame_with_or_without_aa() -> None:
    for aa in (True, False):
        msg = _upward("example.com.", "AAAA", aa)
        assert classify(msg, N("example.com."), T.AAAA, N("example.com.")) is Kind.LAME, aa


def test_ns_of_the_zone_itself_or_below_is_not_an_upward_referral() -> None:
    """The zone's own NS RRset with AA is an authoritative NODATA (Unbound: ANSWER), and an
    NS RRset below the zone is a referral: neither is taken for an upward referral."""
    msg = _upward("example.com.", "AAAA", True)
    msg.authority = [dns.rrset.from_text("example.com.", 300, "IN", "NS", "ns.example.com.")]
    assert classify(msg, N("example.com."), T.AAAA, N("example.com.")) is Kind.NODATA
    msg.authority = [dns.rrset.from_text("sub.example.com.", 300, "IN", "NS", "ns.sub.com.")]
    assert classify(msg, N("www.sub.example.com."), T.A, N("example.com.")) is Kind.REFERRAL


def test_authoritative_upward_referral_is_servfail_not_nodata(authority: Authority) -> None:
    """iter_lame_aaaa: the only server of a.example. answers AAAA with AA and a referral to
    the root: SERVFAIL (no server of the zone answered), not an empty NOERROR; the A query,
    answered properly, still works."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("www.a.example.") and need.rdtype == T.AAAA:
            return _upward("www.a.example.", "AAAA", True)
        return reply

    config = config_for(authority, anchors=AnchorSet(()))
    r = drive(Query("www.a.example.", "AAAA", config, NOW), authority, forge)
    assert r.rcode == dns.rcode.SERVFAIL, (r.rcode, r.verdict)
    r = drive(Query("www.a.example.", "A", config, NOW), authority, forge)
    assert r.rcode == dns.rcode.NOERROR and r.answer, (r.rcode, r.verdict)


PAR = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
kid NS ns.oth.
"""
OTH = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
"""
KID = """
@ 3600 SOA ns.oth. h 1 3600 300 3600000 3600
@ NS ns.oth.
www A 192.0.2.7
"""


def test_parent_glue_is_used_when_the_child_side_gives_no_address() -> None:
    """iter_pcdirect: kid.par. is served by ns.oth., whose address the root's referral to
    oth. carries as glue; oth.'s server refers ns.oth. A to a name that does not exist (a
    broken child-side delegation).  The parent's glue is used: kid.par. resolves."""
    par = sign_zone(PAR, "par")
    oth = sign_zone(OTH, "oth")
    auth = _tree(par, oth)
    kid = sign_zone(KID, "kid.par", unsigned=True)
    auth.zones[kid.origin] = kid

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        out = dns.message.make_response(
            dns.message.make_query(need.qname, need.rdtype, want_dnssec=True)
        )
        out.flags &= ~dns.flags.RA
        if need.qname == N("ns.oth.") and need.rdtype in (T.A, T.AAAA):
            out.flags |= dns.flags.RA
            out.authority = [dns.rrset.from_text("ns.oth.", 300, "IN", "NS", "broken.oth.")]
            return out
        if need.zone not in auth.zones:
            return reply
        # Each zone's server answers from its own zone only (the in-memory authority holds
        # them all and would answer the child's names from the child).
        _Answerer(auth.zones[need.zone], out).run(need.qname, need.rdtype)
        return out

    r = drive(Query("www.kid.par.", "A", config_for(auth), NOW), auth, forge)
    assert r.rcode == dns.rcode.NOERROR, (r.rcode, r.verdict)
    assert [x.rdtype for x in r.answer] == [T.A], r.answer
    assert any(q == ("broken.oth.", "A") for q in auth.queries), auth.queries


ROOT_PC = """
@ 3600 SOA ns.root. h 1 3600 300 3600000 3600
@ NS ns.root.
ns.root. A 127.0.0.1
par. NS ns.par.
par. NS ns.oth.tld.
ns.par. A 127.0.0.66
tld. NS ns.tld.
ns.tld. A 127.0.0.1
"""
TLD_PC = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
oth NS ns.oth
ns.oth A 127.0.0.1
"""
OTH_PC = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.66
"""
PAR_PC = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
@ NS ns.oth.tld.
ns A 127.0.0.66
www A 192.0.2.8
"""
DEAD = "127.0.0.66"


def test_parent_glue_is_tried_when_the_child_side_address_fails() -> None:
    """iter_pcnamerec: par.'s glued server (127.0.0.66) is dead; its other name server
    ns.oth.tld. has no glue, and its own zone gives it the dead address too, while the glue
    of tld.'s referral to oth.tld. says 127.0.0.1, which works: that address is tried."""
    zones = [
        sign_zone(ROOT_PC, ".", unsigned=True),
        sign_zone(TLD_PC, "tld", unsigned=True),
        sign_zone(OTH_PC, "oth.tld", unsigned=True),
        sign_zone(PAR_PC, "par", unsigned=True),
    ]
    auth = Authority(zones)

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if all(address == DEAD for address, _ in need.servers):
            return None  # the engine asked every listed server: none answered
        out = dns.message.make_response(
            dns.message.make_query(need.qname, need.rdtype, want_dnssec=True)
        )
        _Answerer(auth.zones[need.zone], out).run(need.qname, need.rdtype)
        return out

    config = config_for(auth, anchors=AnchorSet(()))
    r = drive(Query("www.par.", "A", config, NOW), auth, forge)
    assert r.rcode == dns.rcode.NOERROR, (r.rcode, r.verdict)
    assert [x.rdtype for x in r.answer] == [T.A], r.answer


ROOT_CH = """
@ 3600 SOA ns.root. h 1 3600 300 3600000 3600
@ NS ns.root.
ns.root. A 127.0.0.1
par. NS ns.par.
ns.par. A 127.0.0.44
tld. NS ns.tld.
ns.tld. A 127.0.0.1
"""
TLD_CH = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
oth NS ns.oth
ns.oth A 127.0.0.55
"""
OTH_CH = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.55
"""
PAR_CH = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
@ NS ns.oth.tld.
ns A 127.0.0.44
www A 192.0.2.8
mail A 192.0.2.9
"""


def test_the_childs_extra_name_server_is_used_when_the_parents_fails() -> None:
    """iter_pcnamech, iter_pcnamechrec: the root delegates par. to ns.par. only; par.'s own
    NS RRset, in the authority section of its answers, also names ns.oth.tld.  When
    ns.par. stops answering, a later query (delegation from the cache) looks that name up
    and asks it."""
    zones = [
        sign_zone(ROOT_CH, ".", unsigned=True),
        sign_zone(TLD_CH, "tld", unsigned=True),
        sign_zone(OTH_CH, "oth.tld", unsigned=True),
        sign_zone(PAR_CH, "par", unsigned=True),
    ]
    auth = Authority(zones)
    par = auth.zones[N("par.")]
    dead: set[str] = set()

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if all(address in dead for address, _ in need.servers):
            return None
        out = dns.message.make_response(
            dns.message.make_query(need.qname, need.rdtype, want_dnssec=True)
        )
        _Answerer(auth.zones[need.zone], out).run(need.qname, need.rdtype)
        if need.zone == par.origin and out.answer:
            out.authority.append(par.rrset(par.origin, T.NS))  # type: ignore[arg-type]
        return out

    config = config_for(auth, anchors=AnchorSet(()), delegations=DelegationCache())
    r = drive(Query("www.par.", "A", config, NOW), auth, forge)
    assert r.rcode == dns.rcode.NOERROR and r.answer, (r.rcode, r.verdict)
    dead.add("127.0.0.44")
    r = drive(Query("mail.par.", "A", config, NOW + 10), auth, forge)
    assert r.rcode == dns.rcode.NOERROR, (r.rcode, r.verdict)
    assert [x.rdtype for x in r.answer] == [T.A], r.answer
