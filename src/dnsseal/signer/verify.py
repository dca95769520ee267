"""Zone verification: ``verify_zone(zone, now, options) -> list[Finding]``.

Checks what dnssec-verify checks and more: every RRset that must be signed is signed by
every algorithm of the DNSKEY RRset with a signature that verifies and is valid at ``now``;
no signatures on glue, occluded data or a delegation's NS; no RRSIG for a type that is not
there; DS only at cuts; the NSEC or NSEC3 chain complete with exact bitmaps and TTLs; NSEC3
parameters against RFC 9276; signatures that expire within a window.  Verdicts are data:
each problem is a :class:`~dnsseal.findings.Finding` whose code is listed in :data:`CODES`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype

from dnsseal.crypto import wire
from dnsseal.errors import CryptoError
from dnsseal.findings import Finding, Severity
from dnsseal.keys.model import FLAG_REVOKE, FLAG_SEP, FLAG_ZONE, key_tag
from dnsseal.signer import denial
from dnsseal.signer.rrsig import Rrsig, absolute_time, labels_field
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import bitmap_types
from dnsseal.zone.model import Layout, NameKind, RRset, Zone, layout

T = dns.rdatatype
E, W = Severity.ERROR, Severity.WARNING

# code -> (severity, RFC section, Extended DNS Error code)
CODES: dict[str, tuple[Severity, str, int | None]] = {
    "ZONE_UNSIGNED": (E, "RFC 4035 2.1", 10),
    "DNSKEY_UNSIGNED": (E, "RFC 4035 2.1", 10),
    "RRSIG_MISSING": (E, "RFC 4035 2.2; RFC 6840 5.11", 10),
    "RRSIG_BOGUS": (E, "RFC 4035 5.3.3", 6),
    "RRSIG_EXPIRED": (E, "RFC 4035 5.3.1", 7),
    "RRSIG_NOT_YET_VALID": (E, "RFC 4035 5.3.1", 8),
    "RRSIG_EXPIRES_SOON": (W, "RFC 4035 5.3.1", None),
    "RRSIG_UNKNOWN_KEY": (W, "RFC 4035 2.2", 9),
    "RRSIG_FIELDS": (E, "RFC 4035 5.3.1", 6),
    "RRSIG_ON_GLUE": (E, "RFC 4035 2.2", None),
    "RRSIG_ON_DELEGATION": (E, "RFC 4035 2.2", None),
    "RRSIG_STALE": (E, "RFC 4035 2.2", None),
    "RRSIG_TTL": (W, "RFC 4034 3", None),
    "DS_NOT_AT_CUT": (E, "RFC 4035 2.4", None),
    "GLUE_MISSING": (W, "RFC 1034 4.2.1", 22),
    "NSEC_MISSING": (E, "RFC 4035 2.3", 12),
    "NSEC_EXTRA": (E, "RFC 4035 2.3", None),
    "NSEC_NEXT": (E, "RFC 4034 4.1.1", 12),
    "NSEC_BITMAP": (E, "RFC 4034 4.1.2; RFC 4035 2.3", 12),
    "NSEC_TTL": (W, "RFC 9077 3", None),
    "NSEC3PARAM_MISSING": (E, "RFC 5155 7.2", None),
    "NSEC3_MISSING": (E, "RFC 5155 7.1", 12),
    "NSEC3_EXTRA": (E, "RFC 5155 7.1", None),
    "NSEC3_NEXT": (E, "RFC 5155 7.1", 12),
    "NSEC3_BITMAP": (E, "RFC 5155 7.1", 12),
    "NSEC3_PARAMS": (E, "RFC 5155 7.1", None),
    "NSEC3_ITERATIONS": (W, "RFC 9276 3.1", 27),
    "NSEC3_ITERATIONS_HIGH": (E, "RFC 9276 3.2", 27),
    "NSEC3_SALT": (W, "RFC 9276 3.1", None),
    "CHAIN_MIXED": (E, "RFC 5155 10.4", None),
    "RECORD_MALFORMED": (E, "RFC 4034", None),
}


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """``ksk_only`` (-x): the DNSKEY RRset need only be signed by KSKs (the default; kept
    for dnssec-verify compatibility).  ``ignore_ksk_flag`` (-z): any key may sign the DNSKEY
    RRset.  ``expire_within``: warn about signatures expiring within that many seconds.
    ``batch`` checks the signatures (default: in this process, see :func:`verify_sequential`;
    :class:`~dnsseal.signer.parallel.ProcessBatchVerifier` uses worker processes)."""

    ksk_only: bool = False
    ignore_ksk_flag: bool = False
    expire_within: int = 0
    batch: BatchVerifier | None = field(default=None, compare=False)


class _Report:
    def __init__(self) -> None:
        self.items: list[Finding] = []

    def add(self, code: str, owner: dns.name.Name, message: str, rrtype: int = 0) -> None:
        sev, rfc, ede = CODES[code]
        rt = dns.rdatatype.to_text(dns.rdatatype.RdataType(rrtype)) if rrtype else ""
        self.items.append(Finding(code, sev, owner.to_text(), message, rfc, rt, ede))


@dataclass(frozen=True, slots=True)
class _Dnskey:
    flags: int
    algorithm: int
    tag: int
    public: object
    raw: bytes


# ([(algorithm, public key)], [(key index, signature, signed data)]) -> verdicts in order.
BatchVerifier = Callable[
    [Sequence[tuple[int, bytes]], Sequence[tuple[int, bytes, bytes]]], list[bool]
]


def verify_sequential(
    keys: Sequence[tuple[int, bytes]], jobs: Sequence[tuple[int, bytes, bytes]]
) -> list[bool]:
    """The default :data:`BatchVerifier`: check each signature in this process."""
    objects: dict[int, object] = {}
    out = []
    for idx, sig, data in jobs:
        pub = objects.get(idx)
        if pub is None:
            pub = objects[idx] = wire.public_key_object(*keys[idx])
        out.append(wire.verify(keys[idx][0], pub, sig, data))
    return out


def _keys(zone: Zone, report: _Report) -> list[_Dnskey]:
    rr = zone.get(zone.origin, T.DNSKEY)
    out = []
    for rd in rr.rdatas if rr else ():
        if len(rd) < 4:
            report.add("RECORD_MALFORMED", zone.origin, "DNSKEY RDATA too short", T.DNSKEY)
            continue
        flags, proto, alg = int.from_bytes(rd[:2], "big"), rd[2], rd[3]
        if not flags & FLAG_ZONE or proto != 3:
            continue
        try:
            public = wire.public_key_object(alg, rd[4:])
        except CryptoError as e:
            report.add("RECORD_MALFORMED", zone.origin, f"DNSKEY: {e}", T.DNSKEY)
            continue
        out.append(_Dnskey(flags, alg, key_tag(flags, proto, alg, rd[4:]), public, rd[4:]))
    return out


def _split(zone: Zone) -> tuple[Zone, dict[dns.name.Name, RRset], dict[dns.name.Name, RRset]]:
    """(the zone's data without chain records, NSEC by owner, NSEC3 by owner)."""
    data: dict[dns.name.Name, dict[int, RRset]] = {}
    nsec: dict[dns.name.Name, RRset] = {}
    nsec3: dict[dns.name.Name, RRset] = {}
    for name, node in zone.rrsets.items():
        rest = {}
        for t, rr in node.items():
            if t == T.NSEC:
                nsec[name] = rr
            elif t == T.NSEC3:
                nsec3[name] = rr
            else:
                rest[t] = rr
        if rest:
            data[name] = rest
    return Zone(zone.origin, data, zone.rrsigs, zone.rdclass), nsec, nsec3


def verify_zone(zone: Zone, now: int, options: VerifyOptions | None = None) -> list[Finding]:
    """All findings about ``zone`` at time ``now``; an empty list means the zone is clean."""
    opts = options or VerifyOptions()
    report = _Report()
    keys = _keys(zone, report)
    data, nsec, nsec3 = _split(zone)
    lay = layout(data)
    if not keys:
        report.add("ZONE_UNSIGNED", zone.origin, "no DNSKEY RRset at the apex", T.DNSKEY)
        return report.items
    algorithms = {k.algorithm for k in keys if not k.flags & FLAG_REVOKE}
    _check_placement(zone, data, lay, nsec, nsec3, report)
    to_check = []
    for name, node in data.rrsets.items():
        kind = lay.kinds[name]
        for t, rr in node.items():
            if kind is NameKind.OCCLUDED or (kind is NameKind.DELEGATION and t != T.DS):
                continue
            to_check.append(rr)
    to_check += nsec.values()
    to_check += nsec3.values()
    jobs: list[tuple[int, bytes, bytes]] = []
    where: list[tuple[int, bytes, int]] = []
    for pos, rr in enumerate(to_check):
        for w, idx, sig, signed in _crypto_jobs(zone, rr, keys):
            jobs.append((idx, sig, signed))
            where.append((pos, w, idx))
    batch = opts.batch or verify_sequential
    verdicts = batch([(k.algorithm, k.raw) for k in keys], jobs) if jobs else []
    results = dict(zip(where, verdicts, strict=True))
    for pos, rr in enumerate(to_check):

        def verified(w: bytes, idx: int, pos: int = pos) -> bool:
            return results.get((pos, w, idx), False)

        _check_signatures(zone, rr, keys, algorithms, now, opts, report, verified)
    soa_ttl = data.soa().negative_ttl if data.get(zone.origin, T.SOA) else 0
    if nsec and nsec3:
        report.add("CHAIN_MIXED", zone.origin, "zone has both NSEC and NSEC3 records")
    if nsec3 or data.get(zone.origin, T.NSEC3PARAM):
        _check_nsec3(data, lay, nsec3, soa_ttl, report)
    else:
        _check_nsec(data, lay, nsec, soa_ttl, report)
    return sorted(
        report.items,
        key=lambda f: (canonical.sort_key(dns.name.from_text(f.owner)), f.rrtype, f.code),
    )


def _check_placement(
    zone: Zone,
    data: Zone,
    lay: Layout,
    nsec: dict[dns.name.Name, RRset],
    nsec3: dict[dns.name.Name, RRset],
    report: _Report,
) -> None:
    for name, node in data.rrsets.items():
        if T.DS in node and lay.kinds[name] in (NameKind.APEX, NameKind.AUTH):
            report.add("DS_NOT_AT_CUT", name, "DS record where there is no zone cut", T.DS)
        if lay.kinds[name] is NameKind.DELEGATION:
            for target in _ns_targets(node[T.NS]):
                has_address = data.get(target, T.A) or data.get(target, T.AAAA)
                if target.is_subdomain(name) and not has_address:
                    report.add("GLUE_MISSING", name,
                               f"NS target {target} is below the cut but has no address "
                               "records (glue)", T.NS)  # fmt: skip
    for name, sigs in zone.rrsigs.items():
        kind = lay.kinds.get(name)
        for covered in sigs:
            chain = (covered == T.NSEC and name in nsec) or (covered == T.NSEC3 and name in nsec3)
            if chain:
                continue
            if kind is NameKind.OCCLUDED:
                report.add(
                    "RRSIG_ON_GLUE",
                    name,
                    "signature on glue or occluded data, which is not authoritative",
                    covered,
                )
            elif data.get(name, covered) is None:
                report.add(
                    "RRSIG_STALE", name, "RRSIG for a type that does not exist here", covered
                )
            elif kind is NameKind.DELEGATION and covered != T.DS:
                report.add(
                    "RRSIG_ON_DELEGATION",
                    name,
                    "signature on non-authoritative data at a delegation",
                    covered,
                )


def _ns_targets(rrset: RRset) -> list[dns.name.Name]:
    out = []
    for rd in rrset.rdatas:
        try:
            out.append(canonical.name_from_wire(rd)[0])
        except ValueError:
            continue
    return out


def _sig_candidates(zone: Zone, rr: RRset, sig: Rrsig, keys: list[_Dnskey]) -> list[int]:
    """Indexes of the keys a well-formed RRSIG may be by (tags collide)."""
    if (
        sig.signer != zone.origin
        or sig.labels != labels_field(rr.name)
        or sig.original_ttl != rr.ttl
    ):
        return []
    return [i for i, k in enumerate(keys) if k.algorithm == sig.algorithm and k.tag == sig.key_tag]


def _crypto_jobs(
    zone: Zone, rr: RRset, keys: list[_Dnskey]
) -> Iterator[tuple[bytes, int, bytes, bytes]]:
    """(RRSIG wire, key index, signature, signed data) for every check ``rr`` needs."""
    sigset = zone.rrsigs.get(rr.name, {}).get(rr.rtype)
    if sigset is None:
        return
    owner = canonical.name_wire(rr.name)
    rrs_wire = canonical.rrset_wire(owner, rr.rtype, zone.rdclass, rr.ttl, rr.rdatas)
    for w in sigset.rdatas:
        try:
            sig = Rrsig.from_wire(w)
        except ValueError:
            continue
        signed = w[: len(w) - len(sig.signature)] + rrs_wire
        for idx in _sig_candidates(zone, rr, sig, keys):
            yield w, idx, sig.signature, signed


def _check_signatures(
    zone: Zone,
    rr: RRset,
    keys: list[_Dnskey],
    algorithms: set[int],
    now: int,
    opts: VerifyOptions,
    report: _Report,
    verified: Callable[[bytes, int], bool],
) -> None:
    sigset = zone.rrsigs.get(rr.name, {}).get(rr.rtype)
    good: set[int] = set()
    broken: set[int] = set()  # algorithms with a bad signature reported here
    is_keyset = rr.rtype == T.DNSKEY and rr.name == zone.origin
    sep_algs = {k.algorithm for k in keys if k.flags & FLAG_SEP and not k.flags & FLAG_REVOKE}
    good_sep: set[int] = set()
    if sigset is not None and sigset.ttl != rr.ttl:
        report.add("RRSIG_TTL", rr.name,
                   f"RRSIG TTL {sigset.ttl} differs from the RRset's TTL {rr.ttl}",
                   rr.rtype)  # fmt: skip
    for w in sigset.rdatas if sigset else ():
        try:
            sig = Rrsig.from_wire(w)
        except ValueError as e:
            report.add("RECORD_MALFORMED", rr.name, f"RRSIG: {e}", rr.rtype)
            continue
        if (
            sig.signer != zone.origin
            or sig.labels != labels_field(rr.name)
            or (sig.original_ttl != rr.ttl)
        ):
            report.add(
                "RRSIG_FIELDS",
                rr.name,
                f"RRSIG by key {sig.key_tag}: signer, labels or original TTL wrong",
                rr.rtype,
            )
            broken.add(sig.algorithm)
            continue
        cands = [k for k in keys if k.algorithm == sig.algorithm and k.tag == sig.key_tag]
        if not cands:
            report.add(
                "RRSIG_UNKNOWN_KEY",
                rr.name,
                f"RRSIG by key {sig.algorithm}/{sig.key_tag}, not in the DNSKEY RRset",
                rr.rtype,
            )
            continue
        key = next((keys[i] for i in _sig_candidates(zone, rr, sig, keys) if verified(w, i)),
                   None)  # fmt: skip
        if key is None:
            report.add(
                "RRSIG_BOGUS",
                rr.name,
                f"signature by key {sig.key_tag} does not verify (data or signature altered)",
                rr.rtype,
            )
            broken.add(sig.algorithm)
            continue
        inception = absolute_time(sig.inception, now)
        expiration = absolute_time(sig.expiration, now)
        if expiration < now:
            report.add(
                "RRSIG_EXPIRED",
                rr.name,
                f"signature by key {sig.key_tag} expired at {expiration}",
                rr.rtype,
            )
            broken.add(sig.algorithm)
            continue
        if inception > now:
            report.add(
                "RRSIG_NOT_YET_VALID",
                rr.name,
                f"signature by key {sig.key_tag} valid only from {inception}",
                rr.rtype,
            )
            broken.add(sig.algorithm)
            continue
        if opts.expire_within and expiration - now < opts.expire_within:
            report.add(
                "RRSIG_EXPIRES_SOON",
                rr.name,
                f"signature by key {sig.key_tag} expires at {expiration}",
                rr.rtype,
            )
        good.add(sig.algorithm)
        if key.flags & FLAG_SEP:
            good_sep.add(sig.algorithm)
    for alg in sorted(algorithms - good):
        if alg in broken:
            continue  # its broken signatures were reported above
        code = "DNSKEY_UNSIGNED" if is_keyset else "RRSIG_MISSING"
        report.add(code, rr.name, f"no signature by algorithm {alg}", rr.rtype)
    if is_keyset and not opts.ignore_ksk_flag:
        for alg in sorted((sep_algs & good) - good_sep):
            report.add(
                "DNSKEY_UNSIGNED",
                rr.name,
                f"DNSKEY RRset not signed by a KSK of algorithm {alg}",
                rr.rtype,
            )


def _expect_ttl(rr: RRset, ttl: int, code: str, report: _Report) -> None:
    if ttl and rr.ttl != ttl:
        report.add(code, rr.name, f"TTL {rr.ttl}, expected min(SOA TTL, MINIMUM) = {ttl}", rr.rtype)


def _check_nsec(
    data: Zone, lay: Layout, nsec: dict[dns.name.Name, RRset], ttl: int, report: _Report
) -> None:
    expected = sorted(
        (n for n, k in lay.kinds.items() if k is not NameKind.OCCLUDED), key=canonical.sort_key
    )
    exp_set = set(expected)
    for name in nsec:
        if name not in exp_set:
            report.add("NSEC_EXTRA", name, "NSEC at a name that is not authoritative", T.NSEC)
    for i, name in enumerate(expected):
        rr = nsec.get(name)
        if rr is None:
            report.add("NSEC_MISSING", name, "no NSEC record at this name", T.NSEC)
            continue
        _expect_ttl(rr, ttl, "NSEC_TTL", report)
        try:
            nxt, off = canonical.name_from_wire(rr.rdatas[0])
            types = bitmap_types(rr.rdatas[0][off:])
        except ValueError as e:
            report.add("RECORD_MALFORMED", name, f"NSEC: {e}", T.NSEC)
            continue
        want_next = expected[(i + 1) % len(expected)]
        if nxt.canonicalize() != want_next:
            report.add("NSEC_NEXT", name, f"next name {nxt}, expected {want_next}", T.NSEC)
        want = denial.nsec_types(data.rrsets[name], lay.kinds[name])
        if types != want:
            report.add(
                "NSEC_BITMAP", name, f"type bitmap {_types(types)}, expected {_types(want)}", T.NSEC
            )


def _types(types: Iterable[int]) -> str:
    return " ".join(dns.rdatatype.to_text(dns.rdatatype.RdataType(t)) for t in sorted(types))


def _check_nsec3(
    data: Zone, lay: Layout, nsec3: dict[dns.name.Name, RRset], ttl: int, report: _Report
) -> None:
    origin = data.origin
    param_rr = data.get(origin, T.NSEC3PARAM)
    params: tuple[int, int, bytes] | None = None
    if param_rr is None:
        report.add("NSEC3PARAM_MISSING", origin, "NSEC3 records but no NSEC3PARAM at the apex")
    else:
        p = param_rr.rdatas[0]
        params = (p[0], int.from_bytes(p[2:4], "big"), p[5 : 5 + p[4]])
    parsed: dict[bytes, tuple[RRset, int, bytes, set[int]]] = {}
    for name, rr in nsec3.items():
        rd = rr.rdatas[0]
        try:
            salt_len = rd[4]
            salt = rd[5 : 5 + salt_len]
            hlen = rd[5 + salt_len]
            nxt = rd[6 + salt_len : 6 + salt_len + hlen]
            types = bitmap_types(rd[6 + salt_len + hlen :])
            digest = _b32(name.labels[0])
        except (IndexError, ValueError) as e:
            report.add("RECORD_MALFORMED", name, f"NSEC3: {e}", T.NSEC3)
            continue
        this = (rd[0], int.from_bytes(rd[2:4], "big"), salt)
        if params is None:
            params = this
        elif this != params:
            report.add("NSEC3_PARAMS", name, "NSEC3 parameters differ from NSEC3PARAM", T.NSEC3)
        _expect_ttl(rr, ttl, "NSEC_TTL", report)
        parsed[digest] = (rr, rd[1], nxt, types)
    if params is None:
        return
    alg, iterations, salt = params
    if iterations > denial.MAX_ITERATIONS:
        report.add(
            "NSEC3_ITERATIONS_HIGH",
            origin,
            f"{iterations} NSEC3 iterations: validators treat the zone as insecure or bogus",
            T.NSEC3PARAM,
        )
    elif iterations:
        report.add(
            "NSEC3_ITERATIONS", origin, f"{iterations} NSEC3 iterations; use 0", T.NSEC3PARAM
        )
    if salt:
        report.add("NSEC3_SALT", origin, "NSEC3 salt set; RFC 9276 advises none", T.NSEC3PARAM)
    opt_out = any(flags & denial.NSEC3_FLAG_OPTOUT for _, flags, _, _ in parsed.values())
    required = denial.nsec3_included(data, lay, opt_out)
    allowed = denial.nsec3_included(data, lay, False)
    by_hash = {denial.nsec3_hash(canonical.name_wire(n), salt, iterations): n for n in allowed}
    for digest, name in by_hash.items():
        got = parsed.get(digest)
        if got is None:
            if name in required:
                report.add("NSEC3_MISSING", name, "no NSEC3 record for this name", T.NSEC3)
            continue
        want = required.get(name, allowed[name])
        if got[3] != want:
            report.add(
                "NSEC3_BITMAP",
                name,
                f"type bitmap {_types(got[3])}, expected {_types(want)}",
                T.NSEC3,
            )
    order = sorted(parsed)
    for i, digest in enumerate(order):
        rr, _, nxt, _ = parsed[digest]
        if digest not in by_hash:
            report.add("NSEC3_EXTRA", rr.name, "NSEC3 record that matches no name", T.NSEC3)
        if nxt != order[(i + 1) % len(order)]:
            report.add("NSEC3_NEXT", rr.name, "next hashed owner breaks the chain", T.NSEC3)
    del alg


def _b32(label: bytes) -> bytes:
    return base64.b32hexdecode(label.upper())
