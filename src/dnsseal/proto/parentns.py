"""Finding a zone's parent name servers through a recursive resolver (checkds without
parental-agents): the questions to ask and how to read the answers.

The steps, each one query to the resolver: ``SOA`` of the name just above the child (the
answer's SOA owner, or the SOA in the authority section of a NODATA/NXDOMAIN answer, is the
parent zone); ``NS`` of the parent zone; ``A`` and ``AAAA`` of each name server.  Then each
address is asked directly, without recursion, for the child's DS RRset (the server layer
does the sending; :func:`ds_query` and :func:`read_ds` build and read those).
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnsseal.errors import DnssealError

T = dns.rdatatype
DsId = tuple[int, int, int, bytes]  # key tag, algorithm, digest type, digest


class LookupFailed(DnssealError):
    """The resolver's answer does not say what we need (the reason is the message)."""


def resolver_query(qname: dns.name.Name, rtype: int) -> dns.message.Message:
    """A recursive query (RD=1) for the resolver."""
    return dns.message.make_query(qname, T.RdataType(rtype))


def _check(response: dns.message.Message, what: str) -> None:
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise LookupFailed(f"{what}: the resolver answered {dns.rcode.to_text(rcode)}")


def parent_zone(child: dns.name.Name, response: dns.message.Message) -> dns.name.Name:
    """The zone holding ``child.parent()``, from the resolver's answer to its SOA query.
    Raises LookupFailed when the answer names no zone above ``child``."""
    asked = child.parent()
    _check(response, f"SOA {asked}")
    owners = [rr.name for rr in response.answer if rr.rdtype == T.SOA and rr.name == asked]
    owners += [rr.name for rr in response.authority if rr.rdtype == T.SOA]
    for owner in owners:
        if child != owner and child.is_subdomain(owner) and asked.is_subdomain(owner):
            return owner
    raise LookupFailed(f"SOA {asked}: the answer names no zone above {child}")


def ns_names(zone: dns.name.Name, response: dns.message.Message) -> list[dns.name.Name]:
    """The name servers of ``zone`` in the resolver's answer to ``zone NS`` (sorted)."""
    _check(response, f"NS {zone}")
    names = {
        rd.target for rr in response.answer if rr.rdtype == T.NS and rr.name == zone for rd in rr
    }
    if not names:
        raise LookupFailed(f"NS {zone}: no name servers in the answer")
    return sorted(names)


def addresses(name: dns.name.Name, response: dns.message.Message) -> list[str]:
    """The A or AAAA addresses of ``name`` in the resolver's answer (CNAMEs followed)."""
    _check(response, f"address of {name}")
    target = name
    for rr in response.answer:
        if rr.rdtype == T.CNAME and rr.name == target:
            target = rr[0].target
    return sorted(
        rd.address for rr in response.answer if rr.rdtype in (T.A, T.AAAA) and rr.name == target
        for rd in rr
    )  # fmt: skip


def ds_query(child: dns.name.Name) -> dns.message.Message:
    """The child's DS RRset, asked of a parent server directly (RD=0)."""
    q = dns.message.make_query(child, T.DS)
    q.flags &= ~dns.flags.RD
    return q


def read_ds(
    query: dns.message.Message, response: dns.message.Message, authoritative: bool
) -> set[DsId]:
    """The DS set in ``response`` (empty for NODATA/NXDOMAIN).  With ``authoritative``,
    an answer without AA (a server that is not authoritative for the parent: lame) raises
    LookupFailed, as does any rcode other than NOERROR/NXDOMAIN."""
    _check(response, "DS")
    if authoritative and not response.flags & dns.flags.AA:
        raise LookupFailed("not authoritative for the parent zone (lame delegation)")
    qname = query.question[0].name
    return {
        (rd.key_tag, rd.algorithm, rd.digest_type, rd.digest)
        for rr in response.answer
        if rr.rdtype == T.DS and rr.name == qname
        for rd in rr
    }
