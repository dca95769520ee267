"""The child operator's half of authenticated bootstrapping (RFC 9615 s3-5): the records of
a signaling zone ``_signal.<ns host>``.  PURE: zones in, records and diffs out.

For every zone served here whose apex NS set names the signaling zone's host, the CDS and
CDNSKEY RRsets of its apex are copied, unchanged, to ``_dsboot.<child>._signal.<host>``
while the child waits for its DS (RFC 9615 s5.1: they go away once the parent has it).
The signaling zone is signed like any zone (so a secondary that transfers it serves a
complete NSEC/NSEC3 chain), but dnsseal answers it online, as Knot's onlinesign module does
(:func:`online_answer`): every denial is one minimally covering NSEC at the query name
(RFC 4470, RFC 7129 appendix A), signed when asked, whose type bitmap lists CDS and CDNSKEY
(all but the type asked for), and NXDOMAIN is answered as NODATA.  The chain of signaling
names, which lists the zones the operator serves, cannot be walked.  There is no zone cut
at a signaling name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rrset

from dnsseal.proto.answer import Answer
from dnsseal.proto.dsautomation import signal_name
from dnsseal.proto.snapshot import ZoneSnapshot, name_key
from dnsseal.zone.diff import Record, ZoneDiff
from dnsseal.zone.model import RRset, Zone

T = dns.rdatatype
SIGNAL_TYPES = (T.CDS, T.CDNSKEY)
SIGNAL_LABEL = b"_signal"


@dataclass(frozen=True, slots=True)
class ChildApex:
    """What the signaling zone needs from one served zone."""

    origin: dns.name.Name
    ns: frozenset[dns.name.Name]
    rrsets: tuple[RRset, ...]  # its apex CDS and CDNSKEY RRsets (may be empty)
    waiting: bool  # a key waits for its DS at the parent


def host_of(signaling_origin: dns.name.Name) -> dns.name.Name | None:
    """The name server host a signaling zone stands for (``_signal.ns1.example.`` ->
    ``ns1.example.``), None when the name does not start with ``_signal``."""
    labels = signaling_origin.labels
    if len(labels) < 2 or labels[0].lower() != SIGNAL_LABEL:
        return None
    return dns.name.Name(labels[1:])


def child_apex(zone: Zone, waiting: bool) -> ChildApex:
    """The parts of ``zone`` (a signed or unsigned model) the signaling zone copies."""
    ns = zone.get(zone.origin, T.NS)
    names = frozenset(_ns_targets(ns)) if ns is not None else frozenset()
    rrsets = tuple(r for t in SIGNAL_TYPES if (r := zone.get(zone.origin, t)) is not None)
    return ChildApex(zone.origin, names, rrsets, waiting)


def _ns_targets(ns: RRset) -> Iterable[dns.name.Name]:
    for wire in ns.rdatas:
        yield dns.name.from_wire(wire, 0)[0].canonicalize()


def wanted(signaling_origin: dns.name.Name, children: Iterable[ChildApex]) -> set[Record]:
    """The signaling records the zone should hold now."""
    host = host_of(signaling_origin)
    if host is None:
        return set()
    out: set[Record] = set()
    for c in children:
        if not c.waiting or host.canonicalize() not in c.ns or not c.rrsets:
            continue
        owner = signal_name(c.origin, host).canonicalize()
        if not owner.is_subdomain(signaling_origin):
            continue
        for rr in c.rrsets:
            for rd in rr.rdatas:
                out.add((owner, rr.rtype, rr.ttl, rd))
    return out


def current(zone: Zone) -> set[Record]:
    """The signaling records in ``zone`` (CDS/CDNSKEY below its apex)."""
    return {
        (rr.name, rr.rtype, rr.ttl, rd)
        for rr in zone.iter_rrsets()
        if rr.rtype in SIGNAL_TYPES and rr.name != zone.origin
        for rd in rr.rdatas
    }


def signaling_diff(zone: Zone, want: set[Record]) -> ZoneDiff:
    """The change that turns ``zone``'s signaling records into ``want``."""
    have = current(zone)
    return ZoneDiff(tuple(sorted(have - want, key=_order)), tuple(sorted(want - have, key=_order)))


def _order(r: Record) -> tuple[str, int, bytes]:
    return (r[0].to_text(), r[1], r[3])


def zone_text(signaling_origin: dns.name.Name, want: set[Record]) -> str:
    """The records as master-file lines (``dnsseal signaling-zone``)."""
    import dns.rdata
    import dns.rdataclass

    lines = []
    for owner, rtype, ttl, wire in sorted(want, key=_order):
        rd = dns.rdata.from_wire(dns.rdataclass.IN, T.RdataType(rtype), wire, 0, len(wire))
        lines.append(f"{owner.to_text()} {ttl} IN {T.to_text(T.RdataType(rtype))} {rd.to_text()}")
    return "".join(line + "\n" for line in lines)


# -- answering a signaling zone online (Knot's onlinesign with nsec-bitmap [CDS, CDNSKEY]) --

DENIAL_TYPES = (T.NSEC, T.NSEC3)
# Sign one RRset now with the zone's keys: its RRSIG RRset (None: no key can sign).
OnlineSign = Callable[[dns.rrset.RRset], "dns.rrset.RRset | None"]


def next_name(name: dns.name.Name) -> dns.name.Name | None:
    """The immediate successor of ``name`` in canonical order that is below it
    (``\\000.name``, RFC 4470 s3.1.2); None when that would be longer than 255 octets."""
    if sum(len(label) + 1 for label in name.labels) + 2 > 255:
        return None
    return dns.name.Name((b"\x00", *name.labels))


def minimal_nsec(snap: ZoneSnapshot, owner: dns.name.Name, qtype: int) -> dns.rrset.RRset | None:
    """The NSEC at ``owner`` that covers nothing but ``owner`` itself: next name
    ``\\000.owner``, types: those at ``owner``, RRSIG and NSEC, and CDS and CDNSKEY
    unless asked for (the types may not exist; ``qtype`` must not be in the bitmap, so the
    NSEC proves NODATA for it and a resolver that caches NSEC aggressively never denies a
    signaling record because of it).  TTL: min(SOA TTL, SOA minimum) (RFC 9077)."""
    nxt = next_name(owner)
    if nxt is None:
        return None
    node = snap.by_key.get(name_key(owner))
    types: set[int] = {T.RRSIG, T.NSEC}
    if node is not None:
        types |= {t for t in node.rrsets if t not in DENIAL_TYPES}
    if node is None or T.CNAME not in node.rrsets:
        types |= set(SIGNAL_TYPES)
    types.discard(qtype)
    if qtype == T.NSEC:
        types.add(T.NSEC)
    bitmap = dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes([T.RdataType.make(t) for t in sorted(types)])
    rd = dns.rdtypes.ANY.NSEC.NSEC(dns.rdataclass.IN, T.NSEC, nxt, bitmap)  # type: ignore[no-untyped-call]
    ttl = snap.negative_soa[0].ttl
    out = dns.rrset.RRset(owner, dns.rdataclass.IN, T.NSEC)
    out.add(rd, ttl)
    return out


def _final_name(ans: Answer, qname: dns.name.Name) -> dns.name.Name:
    """The name a CNAME chain in the answer ends at (the one a denial is about)."""
    name = qname
    for _ in range(len(ans.answer)):
        cname = next((r for r in ans.answer if r.rdtype == T.CNAME and r.name == name), None)
        if cname is None:
            break
        name = cname[0].target
    return name


def online_answer(
    snap: ZoneSnapshot,
    qname: dns.name.Name,
    qtype: int,
    do: bool,
    ans: Answer,
    sign: OnlineSign,
) -> Answer:
    """``ans`` (what :func:`dnsseal.proto.answer.lookup` gave for this question) as the
    online signer answers it: the zone's own NSEC/NSEC3 records are never shown; a negative
    answer (NXDOMAIN too, which becomes NODATA, RFC 4470 s3.2 "white lies" taken one step
    further as Knot does) gets the one NSEC of :func:`minimal_nsec` at the name it is
    about, signed by ``sign`` now; a question for NSEC (or an ANY answered with the NSEC
    RRset) gets that NSEC as the answer.
    Referrals, wildcard expansions and answers without DO are returned as they are (Knot
    too answers NXDOMAIN without DO)."""
    if not do or not snap.signed or not ans.aa or ans.rcode not in (0, dns.rcode.NXDOMAIN):
        return ans
    if any(id(r) in ans.fresh for r in ans.answer):
        return ans  # a wildcard expansion: its proof is the chain's (none in these zones)
    # lookup puts the SOA in the authority section of negative answers only
    negative = any(r.rdtype == T.SOA for r in ans.authority)
    asks_nsec = qtype == T.NSEC and not any(r.rdtype == T.CNAME for r in ans.answer)
    # ANY may pick the NSEC RRset (RFC 8482): it is replaced like an answer to NSEC
    asks_nsec = asks_nsec or (not negative and any(r.rdtype in DENIAL_TYPES for r in ans.answer))
    if not negative and not asks_nsec:
        return ans
    owner = _final_name(ans, qname)
    nsec = minimal_nsec(snap, owner, qtype)
    if nsec is None:
        return ans
    rrsig = sign(nsec)
    if rrsig is None:
        return ans

    def keep(r: dns.rrset.RRset) -> bool:
        return r.rdtype not in DENIAL_TYPES and not (
            r.rdtype == T.RRSIG and r.covers in DENIAL_TYPES
        )

    out = Answer(
        rcode=dns.rcode.NOERROR,
        aa=True,
        answer=[r for r in ans.answer if keep(r)],
        authority=[r for r in ans.authority if keep(r)],
        additional=list(ans.additional),
        fresh={*ans.fresh, id(nsec), id(rrsig)},
    )
    if asks_nsec:
        out.answer += [nsec, rrsig]
        out.authority = [r for r in out.authority if T.SOA not in (r.rdtype, r.covers)]
    else:
        out.authority += [nsec, rrsig]
    return out
