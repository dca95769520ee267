"""Authoritative answers from a zone snapshot: the RFC 1034 4.3.2 algorithm with DNSSEC.

:func:`lookup` takes a snapshot and one question and returns an :class:`Answer`: the rcode,
the AA flag and the RRsets of each section.  It covers exact matches, CNAME chains inside the
zone, DNAME substitution with a synthesised CNAME (RFC 6672), wildcard synthesis (RFC 4592),
NXDOMAIN and NODATA, referrals with DS or the proof that there is none, DS queries answered
from the parent side of a cut and ANY (RFC 8482: one RRset over UDP).  With the DO bit the
RRSIGs and the denial proofs of RFC 4035 3.1.3 (NSEC) and RFC 5155 7.2 (NSEC3, opt-out
included) are added; without it no DNSSEC record is returned unless asked for by type.

Responses are minimal (like BIND's ``minimal-responses yes`` and Knot): no NS in the
authority section of positive answers, and the additional section holds only referral glue.
Records come from the snapshot as signed; the only synthesised records are the ones the
protocol requires (wildcard expansions with the wildcard's own RRSIGs, DNAME's CNAME).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rrset

from dnsseal.proto.snapshot import DNAME, NS, NSEC, NSEC3, Key, Node, ZoneSnapshot, name_key

CNAME = dns.rdatatype.CNAME
DS = dns.rdatatype.DS
ANY = dns.rdatatype.ANY
RRSIG = dns.rdatatype.RRSIG
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
IN = dns.rdataclass.IN
WILDCARD = b"*"

# A CNAME/DNAME chain longer than this inside one zone is cut short (BIND uses 16).
MAX_CHAIN = 16


@dataclass(slots=True)
class Answer:
    """What to put in a response: rcode, AA and the RRsets of each section (in order)."""

    rcode: int = dns.rcode.NOERROR
    aa: bool = True
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    fresh: set[int] = field(default_factory=set)  # ids of RRsets synthesised for this answer


def lookup(
    snap: ZoneSnapshot, qname: dns.name.Name, qtype: int, do: bool, tcp: bool = False
) -> Answer:
    """Answer ``qname``/``qtype`` (class IN, ``qname`` at or under ``snap.origin``).

    ``do`` adds DNSSEC records; ``tcp`` lifts the RFC 8482 single-RRset limit on ANY.
    Chains (CNAME, DNAME) are followed while they stay inside this zone; the rcode is the one
    of the last name (RFC 6604).
    """
    ans = Answer()
    seen = [qname]  # a list: hashing a dnspython Name costs more than comparing a few
    name = qname
    for _ in range(MAX_CHAIN):
        target = _step(snap, name, qtype, do and snap.signed, tcp, ans, first=name is qname)
        if target is None or target in seen or not target.is_subdomain(snap.origin):
            break
        seen.append(target)
        name = target
    return ans


def _step(
    snap: ZoneSnapshot,
    qname: dns.name.Name,
    qtype: int,
    do: bool,
    tcp: bool,
    ans: Answer,
    first: bool,
) -> dns.name.Name | None:
    """Answer one name of a chain into ``ans``; return the next name to chase, if any.

    Names are handled as keys (tuples of lower-case labels): suffixes are slices."""
    qk = name_key(qname)
    n, o = len(qk), len(snap.origin)
    ce = qk[n - o :]
    exact = True
    if snap.cut_keys or snap.has_dname or qk not in snap.by_key:
        for depth in range(o, n + 1):
            here = qk[n - depth :]
            if depth > o:
                if here in snap.cut_keys and not (depth == n and qtype == DS):
                    if not first:
                        return None  # a chain into a delegation: the resolver follows it
                    _referral(snap, snap.by_key[here], here, do, ans)
                    return None
                if not snap.exists_k(here):
                    exact = False
                    break
                ce = here
            if snap.has_dname and depth != n:
                dnode = snap.by_key.get(here)
                if dnode is not None and DNAME in dnode.rrsets:
                    return _dname(dnode, qname, do, ans)
    if exact:
        return _exact(snap, qname, qk, qtype, do, tcp, ans)
    return _nonexistent(snap, qname, qk, qtype, ce, do, tcp, ans)


def _exact(
    snap: ZoneSnapshot,
    qname: dns.name.Name,
    qk: Key,
    qtype: int,
    do: bool,
    tcp: bool,
    ans: Answer,
) -> dns.name.Name | None:
    node = snap.by_key.get(qk)
    if node is None:  # empty non-terminal
        _nodata(snap, qk, None, do, ans)
        return None
    if qk in snap.cut_keys:  # only DS gets here: answered from the parent side
        if DS in node.rrsets:
            ans.answer += node.with_sigs(DS, do)
        else:
            _nodata(snap, qk, node, do, ans)
        return None
    return _from_node(snap, qname, qk, node, qtype, do, tcp, ans, wildcard=False)


def _from_node(
    snap: ZoneSnapshot,
    qname: dns.name.Name,
    qk: Key,
    node: Node,
    qtype: int,
    do: bool,
    tcp: bool,
    ans: Answer,
    wildcard: bool,
) -> dns.name.Name | None:
    """Answer from ``node`` (the name itself, or the wildcard that matched ``qname``)."""
    rename = _renamer(qname, ans) if wildcard else _same
    if qtype == ANY:
        types = list(node.rrsets)
        if not tcp:
            types = types[:1]
        for t in types:
            ans.answer += [rename(r) for r in node.with_sigs(t, do)]
        return None
    if qtype in node.rrsets:
        ans.answer += [rename(r) for r in node.with_sigs(qtype, do)]
        if qtype == NS and not wildcard:
            _addresses(snap, node.rrsets[NS], do, ans)
        return None
    if CNAME in node.rrsets:
        ans.answer += [rename(r) for r in node.with_sigs(CNAME, do)]
        target: dns.name.Name = node.rrsets[CNAME][0].target
        return target
    if qtype == RRSIG and node.sigs and not wildcard:
        # Like ANY (RFC 8482): over UDP the signatures of one type only.
        sigs = list(node.sigs.values())
        ans.answer += sigs if tcp else sigs[:1]
        return None
    if wildcard:
        _wildcard_nodata(snap, qk, node, do, ans)
    else:
        _nodata(snap, qk, node, do, ans)
    return None


def _same(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    return rrset


def _renamer(qname: dns.name.Name, ans: Answer) -> Callable[[dns.rrset.RRset], dns.rrset.RRset]:
    def rename(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        out = dns.rrset.RRset(qname, rrset.rdclass, rrset.rdtype, rrset.covers)
        out.update(rrset)  # type: ignore[no-untyped-call]
        ans.fresh.add(id(out))
        return out

    return rename


def _soa(snap: ZoneSnapshot, do: bool, ans: Answer) -> None:
    ans.authority += snap.negative_soa if do else snap.negative_soa[:1]


def _add_denial(node: Node | None, rdtype: int, do: bool, ans: Answer) -> None:
    if node is not None and rdtype in node.rrsets:
        ans.authority += node.with_sigs(rdtype, do)


def nodata(snap: ZoneSnapshot, qk: Key, node: Node | None, do: bool, ans: Answer) -> None:
    """Public name of :func:`_nodata` (the byte-level answer path uses it)."""
    _nodata(snap, qk, node, do, ans)


def _nodata(snap: ZoneSnapshot, qk: Key, node: Node | None, do: bool, ans: Answer) -> None:
    """NOERROR with no answer: SOA, and with DO the NSEC/NSEC3 of the name (RFC 4035
    3.1.3.1, RFC 5155 7.2.3), or for an empty non-terminal the NSEC covering it, or for an
    opt-out name without NSEC3 the closest encloser proof (RFC 5155 7.2.4)."""
    _soa(snap, do, ans)
    if not do:
        return
    if snap.nsec_nodes:
        if node is not None and NSEC in node.rrsets:
            _add_denial(node, NSEC, do, ans)
        else:
            _add_denial(snap.nsec_covering_k(qk), NSEC, do, ans)
    elif snap.nsec3 is not None:
        match = snap.nsec3_matching(qk)
        if match is not None:
            _add_denial(match, NSEC3, do, ans)
        else:
            _nsec3_closest_encloser(snap, qk, qk[1:], do, ans)


def _nsec3_closest_encloser(snap: ZoneSnapshot, qk: Key, ce: Key, do: bool, ans: Answer) -> Key:
    """Add the closest encloser proof (RFC 5155 7.2.1): the NSEC3 matching the closest
    provable encloser and the one covering the next closer name.  Returns the encloser.

    With opt-out the closest existing ancestor may have no NSEC3 (an empty non-terminal
    leading only to insecure delegations); we walk up to the first one that has one."""
    match = snap.nsec3_matching(ce)
    while match is None and len(ce) > len(snap.origin):
        ce = ce[1:]
        match = snap.nsec3_matching(ce)
    _add_denial(match, NSEC3, do, ans)
    next_closer = qk[len(qk) - len(ce) - 1 :]
    _add_denial(snap.nsec3_covering(next_closer), NSEC3, do, ans)
    return ce


def _nonexistent(
    snap: ZoneSnapshot,
    qname: dns.name.Name,
    qk: Key,
    qtype: int,
    ce: Key,
    do: bool,
    tcp: bool,
    ans: Answer,
) -> dns.name.Name | None:
    """``qname`` does not exist; ``ce`` is its closest encloser.  Synthesise from
    ``*.ce`` if there is one (RFC 4592), otherwise NXDOMAIN with its proof."""
    wc = (WILDCARD, *ce)
    wnode = snap.by_key.get(wc)
    if wnode is not None:
        before = len(ans.answer)
        target = _from_node(snap, qname, qk, wnode, qtype, do, tcp, ans, wildcard=True)
        if len(ans.answer) > before and do:
            # The expansion is only valid with the proof that qname itself does not exist:
            # the NSEC covering it, or the NSEC3 covering the next closer name.
            if snap.nsec_nodes:
                _add_denial(snap.nsec_covering_k(qk), NSEC, do, ans)
            elif snap.nsec3 is not None:
                next_closer = qk[len(qk) - len(ce) - 1 :]
                _add_denial(snap.nsec3_covering(next_closer), NSEC3, do, ans)
        return target
    nxdomain(snap, qk, ce, do, ans)
    return None


def nxdomain(snap: ZoneSnapshot, qk: Key, ce: Key, do: bool, ans: Answer) -> None:
    """Fill ``ans`` as NXDOMAIN for name key ``qk`` whose closest encloser ``ce`` has no
    wildcard child: the SOA and, with ``do``, the NSEC covering ``qk`` and the one covering
    ``*.ce`` (RFC 4035 3.1.3.2), or the NSEC3 closest encloser proof and the NSEC3
    covering the wildcard (RFC 5155 7.2.2).  ``do`` must already include ``snap.signed``."""
    ans.rcode = dns.rcode.NXDOMAIN
    _soa(snap, do, ans)
    if not do:
        return
    if snap.nsec_nodes:
        _add_denial(snap.nsec_covering_k(qk), NSEC, do, ans)
        _add_denial(snap.nsec_covering_k((WILDCARD, *ce)), NSEC, do, ans)
    elif snap.nsec3 is not None:
        provable = _nsec3_closest_encloser(snap, qk, ce, do, ans)
        _add_denial(snap.nsec3_covering((WILDCARD, *provable)), NSEC3, do, ans)


def _wildcard_nodata(snap: ZoneSnapshot, qk: Key, wnode: Node, do: bool, ans: Answer) -> None:
    """The wildcard matches but has no data of the type: RFC 4035 3.1.3.4 / RFC 5155 7.2.5."""
    _soa(snap, do, ans)
    if not do:
        return
    if snap.nsec_nodes:
        _add_denial(snap.nsec_covering_k(qk), NSEC, do, ans)
        _add_denial(wnode, NSEC, do, ans)
    elif snap.nsec3 is not None:
        wk = name_key(wnode.name)
        _nsec3_closest_encloser(snap, qk, wk[1:], do, ans)
        _add_denial(snap.nsec3_matching(wk), NSEC3, do, ans)


def _referral(snap: ZoneSnapshot, node: Node, cut: Key, do: bool, ans: Answer) -> None:
    """A delegation: NS (unsigned), DS or the proof of no DS (RFC 4035 3.1.4, RFC 5155
    7.2.7 with opt-out), and the addresses of name servers held in this zone (glue)."""
    ans.aa = False
    ns = node.rrsets[NS]
    ans.authority.append(ns)
    if do:
        if DS in node.rrsets:
            ans.authority += node.with_sigs(DS, do)
        elif snap.nsec_nodes:
            _add_denial(node, NSEC, do, ans)
        elif snap.nsec3 is not None:
            match = snap.nsec3_matching(cut)
            if match is not None:
                _add_denial(match, NSEC3, do, ans)
            else:
                _nsec3_closest_encloser(snap, cut, cut[1:], do, ans)
    # Only in-domain glue (RFC 9471): sibling addresses are not needed to follow it.
    _addresses(snap, ns, False, ans, under=node.name)


def _addresses(
    snap: ZoneSnapshot,
    ns: dns.rrset.RRset,
    do: bool,
    ans: Answer,
    under: dns.name.Name | None = None,
) -> None:
    """Add the A/AAAA RRsets of the name servers in ``ns`` that this zone holds (glue, or
    authoritative data with its RRSIGs when ``do``), only those under ``under`` if given."""
    for rd in ns:
        target = rd.target
        if not target.is_subdomain(under or snap.origin):
            continue
        tnode = snap.by_key.get(name_key(target))
        if tnode is None:
            continue
        for t in (A, AAAA):
            if t in tnode.rrsets:
                ans.additional += tnode.with_sigs(t, do)


def _dname(dnode: Node, qname: dns.name.Name, do: bool, ans: Answer) -> dns.name.Name | None:
    """DNAME substitution (RFC 6672 3.1): the DNAME and a synthesised, unsigned CNAME."""
    dname = dnode.rrsets[DNAME]
    ans.answer += dnode.with_sigs(DNAME, do)
    try:
        target = qname.relativize(dnode.name).derelativize(dname[0].target)
    except dns.name.NameTooLong:
        ans.rcode = dns.rcode.YXDOMAIN
        return None
    cname = dns.rrset.RRset(qname, IN, CNAME)
    rdata = dns.rdtypes.ANY.CNAME.CNAME(IN, CNAME, target)  # type: ignore[no-untyped-call]
    cname.add(rdata, dname.ttl)
    ans.answer.append(cname)
    ans.fresh.add(id(cname))
    return target
