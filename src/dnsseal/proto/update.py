"""Dynamic update (RFC 2136), pure: an UPDATE message and the zone's data -> a change.

:func:`evaluate` checks the zone section, the prerequisites (RFC 2136 2.4 / 3.2) against
the zone's current data and turns the update section (3.4) into a
:class:`~dnsseal.zone.diff.ZoneDiff` against that data, or says which rcode to answer.
Records the server manages (RRSIG, NSEC, NSEC3, NSEC3PARAM; DNSKEY / CDS / CDNSKEY below
the apex; the signing-state records, TYPE65534 at the apex, as BIND refuses them) are
REFUSED; the SOA is the server's (its serial follows every change), so SOA
updates are ignored, as is deleting the apex NS RRset (3.4.2.3/3.4.2.4).  Whether the
client may update the zone at all is the caller's ACL decision (:mod:`dnsseal.proto.acl`);
what it may change is :class:`Access` (``allow-update``: every type but the key set;
``update-policy``: the grant rules of :mod:`dnsseal.proto.grants`).

The key set (DNSKEY, CDS, CDNSKEY at the apex) belongs to the zone's dnssec-policy: a change
to it is REFUSED unless an ``update-policy`` rule names the type for the signer (a
multi-signer peer, RFC 8901 model 2).  Even then the zone's own keys can be neither added
nor deleted, a DNSKEY or CDNSKEY must be a valid zone key of an algorithm dnsseal
supports, the CDS/CDNSKEY DELETE records (RFC 8078 4) are refused (going insecure is the
policy's decision), and every CDS/CDNSKEY left must match a DNSKEY of the resulting key
set.  Data dnsseal's own verifier would reject is REFUSED rather than served: a malformed
DNSKEY, a DS where there is no zone cut.  See docs/update-security.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsseal.crypto import wire as keywire
from dnsseal.errors import CryptoError, UnsupportedAlgorithm
from dnsseal.keys.ds import DIGEST_TYPES
from dnsseal.keys.model import FLAG_ZONE, key_tag
from dnsseal.policy.grants import KEYSET_TYPES, UpdatePolicy
from dnsseal.signer.incremental import SIGNER_TYPES
from dnsseal.signer.signingstate import PRIVATE_TYPE
from dnsseal.zone import canonical
from dnsseal.zone.diff import Record, ZoneDiff, apply, diff_at
from dnsseal.zone.model import Zone

T = dns.rdatatype
IN = dns.rdataclass.IN
ANY = dns.rdataclass.ANY
NONE = dns.rdataclass.NONE
APEX_ONLY = frozenset({T.DNSKEY, T.CDS, T.CDNSKEY})
META = frozenset({T.ANY, T.AXFR, T.IXFR, T.MAILA, T.MAILB, T.OPT, T.TSIG, T.TKEY})


@dataclass(frozen=True, slots=True)
class Access:
    """What the sender of an UPDATE may change: ``policy`` None (``allow-update``): every
    type but the key set; else the ``update-policy`` rules for ``signer`` (its TSIG key
    name, None when unsigned)."""

    signer: dns.name.Name | None = None
    policy: UpdatePolicy | None = None

    def allows(self, owner: dns.name.Name, rtype: int, origin: dns.name.Name) -> bool:
        if self.policy is None:
            return rtype not in KEYSET_TYPES
        return self.policy.decide(self.signer, owner, rtype, origin)

    def who(self) -> str:
        return f"key {self.signer}" if self.signer is not None else "an unsigned request"


ALLOW_UPDATE = Access()


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """``rcode`` NOERROR with the ``change`` to make (possibly empty), or the error rcode
    and why."""

    rcode: int
    change: ZoneDiff = field(default_factory=ZoneDiff)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.rcode == dns.rcode.NOERROR


def zone_name(msg: dns.message.Message) -> dns.name.Name | None:
    """The zone an UPDATE is for (its single zone-section entry, SOA class IN)."""
    if msg.opcode() != dns.opcode.UPDATE or len(msg.question) != 1:
        return None
    z = msg.question[0]
    if z.rdtype != T.SOA or z.rdclass != IN:
        return None
    return z.name


def _tt(rtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType(rtype))


def _cls(rr: dns.rrset.RRset) -> int:
    """The class as sent: dnspython reads class ANY / NONE in UPDATE sections into
    ``deleting`` (with the zone's class in ``rdclass``)."""
    return int(rr.deleting) if rr.deleting is not None else int(rr.rdclass)


def _fail(rcode: int, reason: str) -> UpdateResult:
    return UpdateResult(rcode, ZoneDiff(), reason)


def _rrset_rdatas(zone: Zone, name: dns.name.Name, rtype: int) -> set[bytes]:
    rr = zone.get(name.canonicalize(), rtype)
    return set(rr.rdatas) if rr is not None else set()


def _name_exists(zone: Zone, name: dns.name.Name) -> bool:
    return bool(zone.rrsets.get(name.canonicalize()))


def check_prerequisites(zone: Zone, prereqs: Iterable[dns.rrset.RRset]) -> UpdateResult | None:
    """RFC 2136 3.2: None when every prerequisite holds, else the failure."""
    origin = zone.origin
    wanted: dict[tuple[dns.name.Name, int], set[bytes]] = {}
    for rr in prereqs:
        name = rr.name.canonicalize()
        if not name.is_subdomain(origin):
            return _fail(dns.rcode.NOTZONE, f"prerequisite {rr.name} is outside {origin}")
        if rr.ttl != 0:
            return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: TTL must be 0")
        if _cls(rr) == ANY:
            if len(rr):
                return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: RDATA with class ANY")
            if rr.rdtype == T.ANY:
                if not _name_exists(zone, name):
                    return _fail(dns.rcode.NXDOMAIN, f"{rr.name} does not exist")
            elif not _rrset_rdatas(zone, name, rr.rdtype):
                return _fail(dns.rcode.NXRRSET, f"{rr.name} {T.to_text(rr.rdtype)} does not exist")
        elif _cls(rr) == NONE:
            if len(rr):
                return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: RDATA with class NONE")
            if rr.rdtype == T.ANY:
                if _name_exists(zone, name):
                    return _fail(dns.rcode.YXDOMAIN, f"{rr.name} exists")
            elif _rrset_rdatas(zone, name, rr.rdtype):
                return _fail(dns.rcode.YXRRSET, f"{rr.name} {T.to_text(rr.rdtype)} exists")
        elif _cls(rr) == IN:
            key = (name, int(rr.rdtype))
            wanted.setdefault(key, set()).update(canonical.rdata_wire(rd) for rd in rr)
        else:
            return _fail(dns.rcode.FORMERR, f"prerequisite {rr.name}: class {_cls(rr)}")
    for (name, rtype), rdatas in wanted.items():  # value-dependent: whole RRsets equal
        if _rrset_rdatas(zone, name, rtype) != rdatas:
            return _fail(dns.rcode.NXRRSET, f"{name} {_tt(rtype)} differs")
    return None


def _prescan(
    zone: Zone, updates: Iterable[dns.rrset.RRset], access: Access, ours: frozenset[bytes]
) -> UpdateResult | None:
    """RFC 2136 3.4.1, our refusals of records the server manages, the sender's rights
    (3.3) and the check of what it adds."""
    origin = zone.origin
    for rr in updates:
        name = rr.name.canonicalize()
        if not name.is_subdomain(origin):
            return _fail(dns.rcode.NOTZONE, f"{rr.name} is outside {origin}")
        rtype = int(rr.rdtype)
        if _cls(rr) == IN:
            if rtype in META:
                return _fail(dns.rcode.FORMERR, f"{rr.name}: cannot add type {_tt(rtype)}")
        elif _cls(rr) == ANY:
            if rr.ttl != 0 or len(rr) or (rtype in META and rtype != T.ANY):
                return _fail(dns.rcode.FORMERR, f"{rr.name}: malformed delete")
        elif _cls(rr) == NONE:
            if rr.ttl != 0 or rtype in META:
                return _fail(dns.rcode.FORMERR, f"{rr.name}: malformed delete")
        else:
            return _fail(dns.rcode.FORMERR, f"{rr.name}: class {_cls(rr)}")
        if (
            rtype in SIGNER_TYPES
            or (rtype in APEX_ONLY and name != origin)
            or (rtype == PRIVATE_TYPE and name == origin)
        ):
            return _fail(
                dns.rcode.REFUSED,
                f"{rr.name} {_tt(rtype)}: maintained by the server, not by updates",
            )
        denied = _denied(zone, rr, name, rtype, access)
        if denied is not None:
            return _fail(dns.rcode.REFUSED, denied)
        if rtype in KEYSET_TYPES:
            bad = _check_keyset_record(origin, rr, rtype, ours)
            if bad is not None:
                return _fail(dns.rcode.REFUSED, f"{rr.name} {_tt(rtype)}: {bad}")
        if _cls(rr) == IN and rtype == T.DS:
            bad = next((b for rd in rr if (b := _check_ds(rd.to_digestable())) is not None), None)
            if bad is not None:
                return _fail(dns.rcode.REFUSED, f"{rr.name} DS: {bad}")
    return None


def _denied(
    zone: Zone, rr: dns.rrset.RRset, name: dns.name.Name, rtype: int, access: Access
) -> str | None:
    """Why ``access`` may not make this change (None: it may).  Deleting every RRset of a
    name needs the right to each type there (BIND's ssu_checkall); the apex SOA and NS and
    the key set are left alone by such a delete, so they need no right."""
    origin = zone.origin
    if _cls(rr) == ANY and rtype == T.ANY:
        types = [
            t
            for t in zone.rrsets.get(name, {})
            if not (name == origin and (t in (T.SOA, T.NS) or t in KEYSET_TYPES))
        ]
    else:
        types = [rtype]
    for t in types:
        if not access.allows(name, t, origin):
            if t in KEYSET_TYPES:
                return (
                    f"{name} {_tt(t)} is managed by the zone's dnssec-policy: only an "
                    f"update-policy rule naming {_tt(t)} lets a multi-signer peer change it "
                    f"({access.who()} has none)"
                )
            return f"{access.who()} may not change {name} {_tt(t)}"
    return None


def _check_key(rd: bytes, what: str) -> str | None:
    """Why ``rd`` (DNSKEY/CDNSKEY RDATA) is not a zone key dnsseal could verify with."""
    if len(rd) < 4:
        return f"{what} RDATA is too short"
    flags, proto, alg = int.from_bytes(rd[:2], "big"), rd[2], rd[3]
    if proto != 3:
        return f"{what} protocol {proto}, not 3"
    if not flags & FLAG_ZONE:
        return f"{what} without the Zone Key flag"
    try:
        keywire.check_supported(alg)
        keywire.public_key_object(alg, rd[4:])
    except (CryptoError, UnsupportedAlgorithm) as e:
        return f"not a valid key: {e}"
    return None


def _check_ds(rd: bytes) -> str | None:
    """Why ``rd`` (DS/CDS RDATA) has a digest that cannot be right (None: it may be)."""
    if len(rd) < 4:
        return "RDATA is too short"
    dt = DIGEST_TYPES.get(rd[3])
    if dt is None:
        return f"digest type {rd[3]} is not supported"
    size = hashlib.new(dt.hashlib_name).digest_size
    if len(rd) - 4 != size:
        return f"{dt.mnemonic} digest is {len(rd) - 4} octets, expected {size}"
    return None


def _is_delete_record(rtype: int, rd: bytes) -> bool:
    """The CDS / CDNSKEY DELETE record (RFC 8078 4): algorithm 0."""
    return (rtype == T.CDS and len(rd) >= 3 and rd[2] == 0) or (
        rtype == T.CDNSKEY and len(rd) >= 4 and rd[3] == 0
    )


def _check_keyset_record(
    origin: dns.name.Name, rr: dns.rrset.RRset, rtype: int, ours: frozenset[bytes]
) -> str | None:
    """Why an allowed key-set change cannot be made (None: it can)."""
    for rd in rr:
        wire = canonical.rdata_wire(rd)
        if _is_delete_record(rtype, wire):
            return "the DELETE record (RFC 8078) is the dnssec-policy's, not an update's"
        if (rtype != T.CDS and wire in ours) or (rtype == T.CDS and _cds_of(origin, wire, ours)):
            return "for one of the zone's own keys: the dnssec-policy publishes and removes those"
        if _cls(rr) != IN:
            continue
        bad = _check_key(wire, _tt(rtype)) if rtype != T.CDS else _check_ds(wire)
        if bad is not None:
            return bad
    return None


def _ds_digest(owner: dns.name.Name, dnskey: bytes, digest_type: int) -> bytes | None:
    dt = DIGEST_TYPES.get(digest_type)
    if dt is None:
        return None
    return hashlib.new(dt.hashlib_name, owner.to_digestable() + dnskey).digest()


def _keyset_consistent(zone: Zone, ours: frozenset[bytes]) -> str | None:
    """Every CDS and CDNSKEY of ``zone`` (the updated data) matches a DNSKEY of the key
    set that will be served (ours and the peers'); None if so, else which does not."""
    origin = zone.origin
    dnskeys = set(ours) | _rrset_rdatas(zone, origin, T.DNSKEY)
    for rd in _rrset_rdatas(zone, origin, T.CDNSKEY):
        if rd not in dnskeys:
            return "a CDNSKEY that is not in the DNSKEY RRset"
    for rd in _rrset_rdatas(zone, origin, T.CDS):
        if not _cds_of(origin, rd, dnskeys):
            tag, alg, dtype = int.from_bytes(rd[:2], "big"), rd[2], rd[3]
            return f"CDS {tag} {alg} {dtype} matches no key of the DNSKEY RRset"
    return None


def _cds_of(origin: dns.name.Name, cds: bytes, dnskeys: Iterable[bytes]) -> bool:
    """Is ``cds`` (DS RDATA) the digest of one of ``dnskeys`` (DNSKEY RDATA)?"""
    tag, alg, dtype, digest = int.from_bytes(cds[:2], "big"), cds[2], cds[3], cds[4:]
    return any(
        k[3] == alg
        and key_tag(int.from_bytes(k[:2], "big"), k[2], k[3], k[4:]) == tag
        and _ds_digest(origin, k, dtype) == digest
        for k in dnskeys
    )


def _ds_off_cut(zone: Zone, updates: Iterable[dns.rrset.RRset]) -> str | None:
    """A DS added where ``zone`` (the updated data) has no zone cut: dnsseal's verifier
    rejects that (DS_NOT_AT_CUT, RFC 4035 2.4)."""
    for rr in updates:
        name = rr.name.canonicalize()
        if _cls(rr) != IN or rr.rdtype != T.DS or zone.get(name, T.DS) is None:
            continue
        if name == zone.origin or zone.get(name, T.NS) is None:
            return f"{rr.name} DS: there is no zone cut (NS) at {rr.name}"
    return None


def evaluate(
    msg: dns.message.Message,
    zone: Zone,
    served: Zone | None = None,
    access: Access = ALLOW_UPDATE,
) -> UpdateResult:
    """Check an UPDATE for ``zone`` (its unsigned data) and compute the change.  The
    prerequisites are checked against ``served`` (the zone as served, DNSSEC records
    included) when given; the zone's own keys are the DNSKEYs ``served`` has and ``zone``
    does not.  ``access``: what the sender may change.  Updates apply in order (each sees
    the effect of the previous ones, RFC 2136 3.4.2)."""
    prereqs = msg.answer  # dnspython: the prerequisite section is the answer section
    updates = msg.authority  # and the update section the authority section
    ours = frozenset(
        _rrset_rdatas(served, zone.origin, T.DNSKEY) - _rrset_rdatas(zone, zone.origin, T.DNSKEY)
        if served is not None
        else ()
    )
    failed = check_prerequisites(served or zone, prereqs) or _prescan(zone, updates, access, ours)
    if failed is not None:
        return failed
    origin = zone.origin
    current = zone
    changed: set[dns.name.Name] = set()
    for rr in updates:
        name = rr.name.canonicalize()
        rtype = int(rr.rdtype)
        step_rm: list[Record] = []
        step_add: list[Record] = []
        if _cls(rr) == IN:
            if rtype == T.SOA:
                continue  # the server owns the SOA serial
            node = current.rrsets.get(name, {})
            if rtype == T.CNAME and any(t != T.CNAME for t in node):
                continue  # 3.4.2.2: no CNAME next to other data
            if rtype != T.CNAME and T.CNAME in node:
                continue
            existing = current.get(name, rtype)
            new = {canonical.rdata_wire(rd) for rd in rr}
            if existing is not None and existing.ttl != rr.ttl:
                # One TTL per RRset (RFC 2181 5.2): the new TTL applies to all of it.
                step_rm += [(name, rtype, existing.ttl, rd) for rd in existing.rdatas]
                new |= set(existing.rdatas)
            elif existing is not None:
                new -= set(existing.rdatas)
            if rtype == T.CNAME and existing is not None:
                step_rm += [(name, rtype, existing.ttl, rd) for rd in existing.rdatas]
                new = {canonical.rdata_wire(rd) for rd in rr}
            step_add += [(name, rtype, rr.ttl, rd) for rd in sorted(new)]
        elif _cls(rr) == ANY:
            node = current.rrsets.get(name, {})
            types = list(node) if rtype == T.ANY else [rtype]
            for t in types:
                if name == origin and t in (T.SOA, T.NS):
                    continue  # the apex keeps its SOA and NS (3.4.2.3)
                if name == origin and rtype == T.ANY and t in KEYSET_TYPES:
                    continue  # a peer's keys go only when named (docs/update-security.md)
                existing = node.get(t)
                if existing is not None:
                    step_rm += [(name, t, existing.ttl, rd) for rd in existing.rdatas]
        else:  # NONE: delete these records
            if rtype == T.SOA:
                continue
            existing = current.get(name, rtype)
            if existing is None:
                continue
            gone = {canonical.rdata_wire(rd) for rd in rr} & set(existing.rdatas)
            if name == origin and rtype == T.NS and gone == set(existing.rdatas):
                continue  # never the last apex NS
            step_rm += [(name, rtype, existing.ttl, rd) for rd in sorted(gone)]
        if step_rm or step_add:
            current = apply(current, ZoneDiff(tuple(step_rm), tuple(step_add)))
            changed.add(name)
    bad = _ds_off_cut(current, updates)
    if bad is None and any(rr.rdtype in KEYSET_TYPES for rr in updates):
        bad = _keyset_consistent(current, ours)
    if bad is not None:
        return _fail(dns.rcode.REFUSED, bad)
    # The net effect only: a record added then removed in one message is no change.
    # (Compared at the names changed only: O(change), not O(zone).)
    return UpdateResult(dns.rcode.NOERROR, diff_at(zone, current, changed))
