"""Read-only helpers over a DNS response: find RRsets and the RRSIGs that cover them, and
classify a response (answer, CNAME, DNAME, referral, NXDOMAIN, NODATA)."""

from __future__ import annotations

import copy
import enum
from collections.abc import Sequence

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.RRSIG import RRSIG

from dnsseal.validator.names import same_name

RRSIG_T = dns.rdatatype.RRSIG
NS_T = dns.rdatatype.NS
SOA_T = dns.rdatatype.SOA
CNAME_T = dns.rdatatype.CNAME
DNAME_T = dns.rdatatype.DNAME
DS_T = dns.rdatatype.DS
DNSKEY_T = dns.rdatatype.DNSKEY
# Header bits as plain ints: ``int(msg.flags) & QR`` costs less than an enum.Flag operation.
QR = int(dns.flags.QR)
AA = int(dns.flags.AA)
RA = int(dns.flags.RA)


class Kind(enum.Enum):
    ANSWER = "answer"
    CNAME = "cname"
    DNAME = "dname"
    REFERRAL = "referral"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    LAME = "lame"  # not authoritative, no answer, no referral, no SOA: the server is lame
    FAILURE = "failure"


def find(
    section: Sequence[dns.rrset.RRset], name: dns.name.Name, rdtype: int
) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.rdtype == rdtype and same_name(rrset.name, name):
            return rrset
    return None


def sigs_for(section: Sequence[dns.rrset.RRset], name: dns.name.Name, rdtype: int) -> list[RRSIG]:
    out: list[RRSIG] = []
    for rrset in section:
        if rrset.rdtype == RRSIG_T and same_name(rrset.name, name):
            out.extend(rd for rd in rrset if rd.type_covered == rdtype)
    return out


def attach_rrsigs(msg: dns.message.Message) -> dns.message.Message:
    """``msg`` with every RRSIG RRset moved to the section that holds the RRset it covers,
    when that is not the section it came in (a copy; ``msg`` is left alone).

    RFC 4035 s3.1.1 puts an RRSIG next to its RRset, but servers and middleboxes misplace
    them (an answer's RRSIG in the additional section, say); Unbound's parser attaches an
    RRSIG to its RRset wherever each appears.  Nothing is trusted by this: the signature is
    verified against the RRset as before, only the search for it no longer stops at the
    section boundary.  An RRSIG whose RRset is in no section stays where it is."""
    sections = (msg.answer, msg.authority, msg.additional)
    moves: list[tuple[int, dns.rrset.RRset, int]] = []
    for i, section in enumerate(sections):
        for rrset in section:
            if rrset.rdtype != RRSIG_T or find(section, rrset.name, rrset.covers) is not None:
                continue
            home = next(
                (j for j, s in enumerate(sections) if find(s, rrset.name, rrset.covers)), None
            )
            if home is not None:
                moves.append((i, rrset, home))
    if not moves:
        return msg
    out = copy.copy(msg)
    out.sections = [list(s) for s in msg.sections]
    new = (out.answer, out.authority, out.additional)
    for i, rrset, home in moves:
        new[i].remove(rrset)
        held = next(
            (
                r
                for r in new[home]
                if r.rdtype == RRSIG_T and r.name == rrset.name and r.covers == rrset.covers
            ),
            None,
        )
        if held is None:
            new[home].append(rrset)
        else:
            merged = dns.rrset.from_rdata_list(held.name, min(held.ttl, rrset.ttl), [*held, *rrset])
            new[home][new[home].index(held)] = merged
    out.index = {
        (n, r.name, r.rdclass, r.rdtype, r.covers, r.deleting): r
        for n, section in enumerate(out.sections)
        for r in section
    }
    return out


def of_type(section: Sequence[dns.rrset.RRset], rdtype: int) -> list[dns.rrset.RRset]:
    return [r for r in section if r.rdtype == rdtype]


def dname_for(section: Sequence[dns.rrset.RRset], qname: dns.name.Name) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.rdtype == DNAME_T and qname.is_subdomain(rrset.name) and qname != rrset.name:
            return rrset
    return None


def referral_ns(
    msg: dns.message.Message, zone: dns.name.Name, qname: dns.name.Name
) -> dns.rrset.RRset | None:
    """The NS RRset of a referral: a non-authoritative NS RRset in the authority section
    for a zone strictly below ``zone`` and at or above ``qname``."""
    if msg.answer or msg.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in msg.authority:
        if (
            rrset.rdtype == NS_T
            and rrset.name != zone
            and rrset.name.is_subdomain(zone)
            and qname.is_subdomain(rrset.name)
        ):
            return rrset
    return None


def classify(
    msg: dns.message.Message, qname: dns.name.Name, rdtype: int, zone: dns.name.Name
) -> Kind:
    """What kind of response ``msg`` is to (qname, rdtype) asked of ``zone``'s servers."""
    rcode = msg.rcode()
    qr = int(msg.flags) & QR
    yx = rcode == dns.rcode.YXDOMAIN and qr
    if yx and dname_for(msg.answer, qname) is not None:
        return Kind.DNAME  # RFC 6672 s2.2: the DNAME substitution would be too long
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or not qr:
        return Kind.FAILURE
    if rdtype == CNAME_T and dname_for(msg.answer, qname) is not None:
        return Kind.DNAME  # the CNAME asked for is synthesized from the DNAME (RFC 6672 s5.3)
    if rdtype not in (CNAME_T, RRSIG_T) and dname_for(msg.answer, qname) is None:
        # a CNAME beside the asked data at the name (RFC 2181 s10.1 forbids it): whichever
        # comes first in the answer section is taken, as Unbound's scrubber does
        first = next(
            (
                r.rdtype
                for r in msg.answer
                if r.rdtype in (rdtype, CNAME_T) and same_name(r.name, qname)
            ),
            None,
        )
        if first == CNAME_T:
            return Kind.CNAME
    if find(msg.answer, qname, rdtype) is not None:
        return Kind.ANSWER
    if dname_for(msg.answer, qname) is not None:
        return Kind.DNAME  # RFC 6672 s2.2: it redirects every type asked below it, DNAME too
    if rdtype != CNAME_T and find(msg.answer, qname, CNAME_T) is not None:
        return Kind.CNAME
    if rcode == dns.rcode.NXDOMAIN:
        return Kind.NXDOMAIN
    if referral_ns(msg, zone, qname) is not None and not any(
        r.rdtype == SOA_T for r in msg.authority
    ):
        return Kind.REFERRAL
    if _lame(msg, zone):
        return Kind.LAME
    return Kind.NODATA


def _lame(msg: dns.message.Message, zone: dns.name.Name) -> bool:
    """A NOERROR reply with no answer that is not a referral below the zone asked (checked
    by the caller): an upward referral (NS above ``zone``), even with AA set, which no
    server of the zone sends (RFC 1034 s4.3.2 step 3: it answers with data, a referral
    down or a denial); or, without AA, a sideways referral or a recursive server's reply
    (RA set): Unbound's LAME and REC_LAME.  A bare empty NOERROR is NODATA, as Unbound
    reads it."""
    if msg.answer or any(r.rdtype == SOA_T for r in msg.authority):
        return False
    if any(
        r.rdtype == NS_T and r.name != zone and zone.is_subdomain(r.name) for r in msg.authority
    ):
        return True
    flags = int(msg.flags)
    if flags & AA:
        return False
    return bool(flags & RA) or any(r.rdtype == NS_T for r in msg.authority)


def addresses(msg: dns.message.Message, names: Sequence[dns.name.Name]) -> list[str]:
    """Glue addresses for ``names`` from the additional section, IPv4 first."""
    v4: list[str] = []
    v6: list[str] = []
    for rrset in msg.additional:
        if rrset.name in names:
            if rrset.rdtype == dns.rdatatype.A:
                v4.extend(rd.address for rd in rrset)
            elif rrset.rdtype == dns.rdatatype.AAAA:
                v6.extend(rd.address for rd in rrset)
    return v4 + v6
