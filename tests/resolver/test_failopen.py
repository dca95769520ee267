"""A validating resolver turns forged data into SERVFAIL: the fail-open paths of issue #20.

Each test serves a small signed hierarchy from the in-memory authority and lets an attacker
rewrite (or drop) replies on the way to the validator:

1. a DS or DNSKEY query below a trust anchor that gets no (usable) answer;
2. NSEC records taken from a wildcard expansion (RRSIG labels < owner labels) used as a
   denial, for a DS (downgrade of a signed child) or for a name a wildcard answers;
3. NXDOMAIN "proved" for an empty non-terminal (a covering NSEC whose next name is below the
   query name shows that the name exists);
4. the SOA of a negative answer with a broken or missing signature.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.service import ResolverService
from dnsseal.resolver.transport import Transport
from dnsseal.validator import verdict as v
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import Need, Query, Result

from .authority import Authority, config_for
from .zonebuild import EXPIRATION, INCEPTION, NOW, SignedZone, sign_zone

S = v.Security
T = dns.rdatatype
N = dns.name.from_text
Forger = Callable[[Need, dns.message.Message], dns.message.Message | None]


def drive(query: Query, auth: Authority, forge: Forger | None = None) -> Result:
    """Like ``authority.drive``, but the attacker may also drop a reply (None)."""
    step = query.start()
    for _ in range(1000):
        if isinstance(step, Result):
            return step
        reply: dns.message.Message | None = auth.answer(step.qname, step.rdtype)
        if forge is not None and reply is not None:
            reply = forge(step, reply)
        wire = None if reply is None else dns.message.from_wire(reply.to_wire(max_size=65535))
        step = query.feed(wire)
    raise AssertionError("query did not finish")


def run(auth: Authority, name: str, rdtype: str, forge: Forger | None = None) -> Result:
    return drive(Query(name, rdtype, config_for(auth), NOW), auth, forge)


def forging_transport(auth: Authority, forge: Forger) -> Transport:
    """The in-memory authority behind a network path the attacker controls."""

    async def exchange(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        need = Need(q.question[0].name, q.question[0].rdtype, (server,), dns.name.root)
        reply = forge(need, auth.answer(need.qname, need.rdtype))
        if reply is None:
            raise TimeoutError("dropped")
        reply.id = q.id
        return reply.to_wire(max_size=65535)

    return exchange


def serve(auth: Authority, forge: Forger, query: dns.message.Message) -> dns.message.Message:
    res = Resolver(config_for(auth), forging_transport(auth, forge), lambda: NOW)
    out = asyncio.run(ResolverService(res).handle(query.to_wire(), True))
    assert out is not None
    return dns.message.from_wire(out)


def _ede(msg: dns.message.Message) -> list[int]:
    return [int(o.code) for o in msg.options if isinstance(o, dns.edns.EDEOption)]


def _unsigned_a(reply: dns.message.Message, name: dns.name.Name) -> dns.message.Message:
    forged = dns.message.make_response(dns.message.make_query(name, "A", want_dnssec=True))
    forged.flags |= dns.flags.AA
    forged.answer = [dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.66")]
    return forged


def _rcode_reply(reply: dns.message.Message, rcode: int) -> dns.message.Message:
    out = dns.message.make_response(dns.message.make_query(reply.question[0].name, "DS"))
    out.set_rcode(rcode)
    return out


# --- 1. fail-open on missing answers ---------------------------------------------------


WWW_A = N("www.a.example.")


def _lose(target: str, rdtype: int, how: str, forge_data: bool) -> Forger:
    """Drop (or answer with ``how`` rcode) the ``target``/``rdtype`` query; optionally forge
    an unsigned A record for www.a.example."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        if need.qname == N(target) and need.rdtype == rdtype:
            if how == "drop":
                return None
            return _rcode_reply(reply, dns.rcode.from_text(how))
        if forge_data and need.qname == WWW_A and need.rdtype == T.A:
            return _unsigned_a(reply, WWW_A)
        return reply

    return forge


@pytest.mark.parametrize("how", ["drop", "REFUSED", "SERVFAIL", "NOTIMP"])
@pytest.mark.parametrize(
    ("target", "forge_data"),
    [
        ("a.example.", False),  # the signer's DS: genuine signed data, chain cannot be built
        ("a.example.", True),  # forged unsigned data, the signer's DS never answered
        ("www.a.example.", True),  # forged unsigned data, the DS below the signer lost
        ("example.", True),
    ],
)
def test_unanswered_ds_below_an_anchor_is_bogus(
    authority: Authority, target: str, forge_data: bool, how: str
) -> None:
    r = run(authority, "www.a.example.", "A", _lose(target, T.DS, how, forge_data))
    assert r.verdict.security is S.BOGUS, r.verdict
    assert r.verdict.ede is not None


@pytest.mark.parametrize("how", ["drop", "REFUSED"])
def test_unanswered_dnskey_below_an_anchor_is_bogus(authority: Authority, how: str) -> None:
    r = run(authority, "www.a.example.", "A", _lose("a.example.", T.DNSKEY, how, True))
    assert r.verdict.security is S.BOGUS, r.verdict


def test_unanswered_ds_reaches_the_client_as_servfail_with_ede(authority: Authority) -> None:
    q = dns.message.make_query("www.a.example.", "A", want_dnssec=True)
    reply = serve(authority, _lose("www.a.example.", T.DS, "drop", True), q)
    assert reply.rcode() == dns.rcode.SERVFAIL, reply
    assert not reply.answer
    assert _ede(reply)
    plain = dns.message.make_query("www.a.example.", "A")  # no EDNS: still no data
    reply = serve(authority, _lose("www.a.example.", T.DS, "REFUSED", True), plain)
    assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer


def test_no_server_for_the_data_is_a_servfail_without_data(authority: Authority) -> None:
    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message | None:
        return None if need.qname == WWW_A and need.rdtype == T.A else reply

    r = run(authority, "www.a.example.", "A", forge)
    assert r.rcode == dns.rcode.SERVFAIL and not r.answer
    # A resolution failure (like delv's "resolution failed"), not a validation verdict.
    assert (r.verdict.security, r.verdict.ede) == (S.INDETERMINATE, v.EDE_NO_REACHABLE_AUTHORITY)
    reply = serve(authority, forge, dns.message.make_query("www.a.example.", "A"))
    assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer


def test_signer_above_the_anchor_is_bogus(authority: Authority) -> None:
    """With the only anchor at a.example., forged data for www.a.example. whose RRSIG names
    example. (no anchor there) must not come back as indeterminate data."""
    a = authority.zones[N("a.example.")]
    anchors = AnchorSet((TrustAnchor(a.origin, tuple(a.ds())),))  # type: ignore[arg-type]
    legit = drive(Query(WWW_A, "A", config_for(authority, anchors=anchors), NOW), authority)
    assert legit.verdict.security is S.SECURE, legit.verdict
    fake = "A 13 2 300 20300101000000 20200101000000 1 example. " + "AAAA" * 22

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == WWW_A and need.rdtype == T.A:
            out = _unsigned_a(reply, WWW_A)
            out.answer.append(dns.rrset.from_text(WWW_A, 300, "IN", "RRSIG", fake))
            return out
        return reply

    r = drive(Query(WWW_A, "A", config_for(authority, anchors=anchors), NOW), authority, forge)
    assert r.verdict.security is S.BOGUS, r.verdict


# --- 2. wildcard-expanded NSEC used as a denial -----------------------------------------

PAR = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
*.par. NS ns.elsewhere.
kid NS ns.kid
ns.kid A 127.0.0.1
"""
KID = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
"""


def _tree(*zones: SignedZone, times: tuple[int, int] = (INCEPTION, EXPIRATION)) -> Authority:
    """A signed root delegating (with DS) to each zone given."""
    body = "@ 3600 SOA ns.root. h 1 3600 300 3600000 3600\n@ NS ns.root.\nns.root. A 127.0.0.1\n"
    for z in zones:
        o = z.origin.to_text()
        body += f"{o} NS ns.{o}\nns.{o} A 127.0.0.1\n"
        body += "".join(f"{o} DS {d.to_text()}\n" for d in z.ds())
    root = sign_zone(body, ".", inception=times[0], expiration=times[1])
    return Authority([root, *zones])


def _renamed(rrset: dns.rrset.RRset, owner: dns.name.Name) -> dns.rrset.RRset:
    new = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
    new.update(rrset)
    return new


def _expanded(z: SignedZone, wild: dns.name.Name, owner: dns.name.Name) -> list[dns.rrset.RRset]:
    """The NSEC of ``wild`` and its RRSIG as a wildcard expansion at ``owner`` would carry."""
    nsec = z.rrset(wild, T.NSEC)
    sigs = z.zone.get_rdataset(wild, T.RRSIG, T.NSEC)
    assert nsec is not None and sigs is not None
    sig = dns.rrset.RRset(wild, sigs.rdclass, T.RRSIG, T.NSEC)
    sig.update(sigs)
    return [_renamed(nsec, owner), _renamed(sig, owner)]


def _soa(z: SignedZone) -> list[dns.rrset.RRset]:
    soa = z.rrset(z.origin, T.SOA)
    sigs = z.zone.get_rdataset(z.origin, T.RRSIG, T.SOA)
    assert soa is not None and sigs is not None
    sig = dns.rrset.RRset(z.origin, sigs.rdclass, T.RRSIG, T.SOA)
    sig.update(sigs)
    return [soa, sig]


def test_wildcard_expanded_nsec_does_not_prove_an_insecure_delegation() -> None:
    """*.par. is a delegation (NS, no DS): its NSEC, replayed as an expansion at kid.par.,
    would "prove" kid.par. is an unsigned delegation and let forged data through."""
    kid = sign_zone(KID, "kid.par")
    par = sign_zone(PAR + "".join(f"kid DS {d.to_text()}\n" for d in kid.ds()), "par")
    auth = _tree(par)
    auth.zones[kid.origin] = kid
    www = N("www.kid.par.")
    assert run(auth, "www.kid.par.", "A").verdict.security is S.SECURE

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == kid.origin and need.rdtype == T.DS:
            out = dns.message.make_response(dns.message.make_query(kid.origin, "DS"))
            out.flags |= dns.flags.AA
            out.authority = _soa(par) + _expanded(par, N("*.par."), kid.origin)
            return out
        if need.qname == www and need.rdtype == T.A:
            return _unsigned_a(reply, www)
        return reply

    r = run(auth, "www.kid.par.", "A", forge)
    assert r.verdict.security is S.BOGUS, r.verdict
    assert "wildcard expansion" in r.verdict.reason


WC = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
* TXT "wildcard"
mail A 192.0.2.25
"""


def test_wildcard_expanded_nsec_does_not_deny_a_wildcard_answer() -> None:
    """b.wc. is answered by *.wc.; expansions of *.wc.'s own NSEC at a.wc. and !.wc. cover
    both b.wc. and *.wc., "proving" an NXDOMAIN that hides the wildcard's data."""
    wc = sign_zone(WC, "wc")
    auth = _tree(wc)
    legit = run(auth, "b.wc.", "TXT")
    assert (legit.rcode, legit.verdict.security) == (dns.rcode.NOERROR, S.SECURE), legit.verdict
    qname = N("b.wc.")

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname != qname:
            return reply
        out = dns.message.make_response(dns.message.make_query(qname, "TXT"))
        out.flags |= dns.flags.AA
        out.set_rcode(dns.rcode.NXDOMAIN)
        wild = N("*.wc.")
        out.authority = _soa(wc) + _expanded(wc, wild, N("a.wc.")) + _expanded(wc, wild, N("!.wc."))
        return out

    r = run(auth, "b.wc.", "TXT", forge)
    assert r.verdict.security is S.BOGUS, r.verdict


# --- 3. NXDOMAIN for a name that exists (empty non-terminal) ---------------------------

ENT = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
x.y A 192.0.2.5
"""


def test_nxdomain_for_an_empty_non_terminal_is_bogus() -> None:
    """ns.ent. NSEC x.y.ent. shows y.ent. exists (an ENT): it proves NODATA, never NXDOMAIN,
    even though it also covers *.y.ent."""
    ent = sign_zone(ENT, "ent")
    auth = _tree(ent)
    legit = run(auth, "y.ent.", "A")
    assert (legit.rcode, legit.verdict.security) == (dns.rcode.NOERROR, S.SECURE), legit.verdict

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("y.ent.") and need.rdtype == T.A:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply

    r = run(auth, "y.ent.", "A", forge)
    assert r.verdict.security is S.BOGUS, (r.rcode, r.verdict)


def test_nxdomain_for_an_ent_does_not_end_a_ds_walk() -> None:
    """The DS walk to k.y.ent. asks DS y.ent.; a forged NXDOMAIN (the ENT's own covering
    NSEC) must not end the walk as if nothing existed below y.ent."""
    k = sign_zone(KID, "k.y.ent")
    ent = sign_zone(
        ENT + "k.y NS ns.k.y\nns.k.y A 127.0.0.1\n" + "".join(f"k.y DS {d}\n" for d in k.ds()),
        "ent",
    )
    auth = _tree(ent)
    auth.zones[k.origin] = k
    assert run(auth, "www.k.y.ent.", "A").verdict.security is S.SECURE

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("y.ent.") and need.rdtype == T.DS:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if need.qname == N("www.k.y.ent.") and need.rdtype == T.A:
            return _unsigned_a(reply, need.qname)
        return reply

    r = run(auth, "www.k.y.ent.", "A", forge)
    assert r.verdict.security is S.BOGUS, r.verdict
    assert "y.ent" in r.verdict.reason or any("y.ent" in link.text for link in r.links)


# --- 4. the SOA of a negative answer ------------------------------------------------------


def _break_soa(how: str) -> Callable[[dns.message.Message], None]:
    def broken(r: dns.rrset.RRset) -> dns.rrset.RRset | None:
        if r.rdtype == T.RRSIG and r.covers == T.SOA:
            if how == "strip":
                return None
            if how == "garble":
                rds = [rd.replace(signature=os.urandom(64)) for rd in r]
                return dns.rrset.from_rdata_list(r.name, r.ttl, rds)
        if r.rdtype == T.SOA and how == "serial":
            return dns.rrset.from_rdata_list(r.name, r.ttl, [rd.replace(serial=4242) for rd in r])
        return r

    def apply(reply: dns.message.Message) -> None:
        reply.authority = [x for x in map(broken, reply.authority) if x is not None]

    return apply


@pytest.mark.parametrize("how", ["garble", "strip", "serial"])
@pytest.mark.parametrize(
    ("name", "rdtype", "rcode"),
    [
        ("ns1.example.", "MX", dns.rcode.NOERROR),  # NSEC3 NODATA
        ("y.w.example.", "A", dns.rcode.NOERROR),  # NSEC3 empty non-terminal
        ("nonexistent.", "A", dns.rcode.NXDOMAIN),  # NSEC NXDOMAIN at the root
        ("ai.example.", "DS", dns.rcode.NOERROR),
    ],
)
def test_negative_answer_with_a_broken_soa_is_bogus(
    authority: Authority, name: str, rdtype: str, rcode: int, how: str
) -> None:
    legit = run(authority, name, rdtype)
    assert (legit.rcode, legit.verdict.security) == (rcode, S.SECURE), legit.verdict
    qname, qtype = N(name), dns.rdatatype.from_text(rdtype)

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == qname and need.rdtype == qtype:
            _break_soa(how)(reply)
        return reply

    r = run(authority, name, rdtype, forge)
    assert r.verdict.security is S.BOGUS, (how, r.verdict)


def test_broken_soa_is_servfail_at_the_service(authority: Authority) -> None:
    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("ns1.example.") and need.rdtype == T.MX:
            _break_soa("garble")(reply)
        return reply

    q = dns.message.make_query("ns1.example.", "MX", want_dnssec=True)
    reply = serve(authority, forge, q)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert not reply.flags & dns.flags.AD


def test_nxdomain_for_an_nsec3_empty_non_terminal_is_bogus(authority: Authority) -> None:
    """y.w.example. is an ENT with its own NSEC3 (RFC 5155 B.2.1): a reply turned into
    NXDOMAIN carries the NSEC3 that matches it, which proves it exists."""

    def forge(need: Need, reply: dns.message.Message) -> dns.message.Message:
        if need.qname == N("y.w.example.") and need.rdtype == T.A:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply

    r = run(authority, "y.w.example.", "A", forge)
    assert r.verdict.security is S.BOGUS, r.verdict
