"""RRset signature verification (RFC 4034 s3.1.8.1 and s6, RFC 4035 s5.3, RFC 6840 s5).

The signed data is built on bytes: the RRSIG RDATA without the signature, then each RR of
the set in canonical form (lowercased owner, wildcard-expanded per the labels field, the
RRSIG's original TTL, canonical RDATA), sorted by RDATA and without duplicates.  Time
windows use serial number arithmetic (RFC 1982, RFC 4034 s3.1.5) on 32-bit values.

Every RRSIG looked at costs one unit of the per-query signature budget, whether it is
checked cryptographically or rejected for its time window, so expired signatures cannot be
used to make a validator spin for free.
"""

from __future__ import annotations

import datetime
import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.ipv4
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.RRSIG import RRSIG
from dns.rdtypes.dnskeybase import DNSKEYBase
from dns.rdtypes.dsbase import DSBase
from dns.rdtypes.IN.A import A

from dnsseal.crypto import wire
from dnsseal.errors import CryptoError
from dnsseal.keys.model import key_tag as model_key_tag
from dnsseal.validator import verdict as v
from dnsseal.validator.limits import Budget
from dnsseal.validator.names import is_subdomain, name_text, same_name, suffix
from dnsseal.validator.policy import DEFAULT_POLICY, AlgorithmPolicy
from dnsseal.zone import canonical

WILDCARD = b"*"
ZONE_KEY_FLAG = 0x0100
REVOKE_FLAG = 0x0080
SEP_FLAG = 0x0001


def label_count(name: dns.name.Name) -> int:
    """The RRSIG labels value for an owner: labels without the root and a leading '*'."""
    n = len(name) - 1 if name.is_absolute() else len(name)
    if n > 0 and name.labels[0] == WILDCARD:
        n -= 1
    return n


def serial_le(a: int, b: int) -> bool:
    """a <= b in 32-bit serial number arithmetic (RFC 1982)."""
    return ((b - a) & 0xFFFFFFFF) < 0x80000000


def time_problem(sig: RRSIG, now: int) -> v.Verdict | None:
    """None if ``now`` is within the signature's validity window, else the bogus verdict."""
    now32 = now & 0xFFFFFFFF
    if not serial_le(now32, sig.expiration):
        return v.bogus(
            f"RRSIG by {sig.signer} tag {sig.key_tag} expired "
            f"(expiration {_fmt_time(sig.expiration)})",
            v.EDE_SIGNATURE_EXPIRED,
        )
    if not serial_le(sig.inception, now32):
        return v.bogus(
            f"RRSIG by {sig.signer} tag {sig.key_tag} not yet valid "
            f"(inception {_fmt_time(sig.inception)})",
            v.EDE_SIGNATURE_NOT_YET_VALID,
        )
    return None


def _fmt_time(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, tz=datetime.UTC).strftime("%Y%m%d%H%M%S")


name_wire = canonical.name_wire  # the canonical (lowercase, uncompressed) wire form


def signed_data(
    sig: RRSIG, owner: dns.name.Name, rdtype: int, rdclass: int, rdatas: Iterable[dns.rdata.Rdata]
) -> bytes:
    """The octets an RRSIG signs (RFC 4034 s3.1.8.1), with wildcard expansion (s6.2 step 3)."""
    head = struct.pack(
        "!HBBIIIH",
        sig.type_covered,
        sig.algorithm,
        sig.labels,
        sig.original_ttl,
        sig.expiration,
        sig.inception,
        sig.key_tag,
    )
    parts = [head, name_wire(sig.signer)]
    if sig.labels < label_count(owner):
        owner = dns.name.Name((WILDCARD, *owner.labels[-(sig.labels + 1) :]))
    rr_head = name_wire(owner) + struct.pack("!HHI", rdtype, rdclass, sig.original_ttl)
    ordered = sorted({canonical_rdata(rd) for rd in rdatas})
    for rd in ordered:
        parts.append(rr_head)
        parts.append(struct.pack("!H", len(rd)))
        parts.append(rd)
    return b"".join(parts)


_KEY_HEAD = struct.Struct("!HBB")  # DNSKEY flags, protocol, algorithm; DS tag, algorithm, type


def canonical_rdata(rd: dns.rdata.Rdata) -> bytes:
    """``rd.to_digestable()`` (RFC 4034 s6.2): the types without names in them, which are
    most of what a chain of trust signs, packed directly instead of through a file object."""
    if isinstance(rd, A):
        return dns.ipv4.inet_aton(rd.address)
    if isinstance(rd, DNSKEYBase):
        return _KEY_HEAD.pack(rd.flags, rd.protocol, rd.algorithm) + rd.key
    if isinstance(rd, DSBase):
        return _KEY_HEAD.pack(rd.key_tag, rd.algorithm, rd.digest_type) + rd.digest
    return rd.to_digestable()


@functools.lru_cache(maxsize=4096)
def _public_key(algorithm: int, key: bytes) -> Any:
    return wire.public_key_object(algorithm, key)


def key_tag(key: DNSKEY) -> int:
    """``dns.dnssec.key_id(key)`` (RFC 4034 appendix B), without its byte loop."""
    return _key_tag(key.flags, key.protocol, key.algorithm, key.key)


_key_tag = functools.lru_cache(maxsize=4096)(model_key_tag)


@dataclass(frozen=True, slots=True)
class ZoneKey:
    """A DNSKEY with its tag, precomputed once per DNSKEY RRset."""

    zone: dns.name.Name
    rdata: DNSKEY
    tag: int

    @staticmethod
    def of(zone: dns.name.Name, rd: DNSKEY) -> ZoneKey:
        return ZoneKey(zone, rd, key_tag(rd))

    @property
    def algorithm(self) -> int:
        return int(self.rdata.algorithm)

    def usable(self, policy: AlgorithmPolicy) -> bool:
        rd = self.rdata
        return (
            rd.protocol == 3
            and bool(int(rd.flags) & ZONE_KEY_FLAG)
            and not int(rd.flags) & REVOKE_FLAG
            and policy.algorithm_supported(int(rd.algorithm))
        )


@dataclass(frozen=True, slots=True)
class SigCheck:
    """The result of checking one RRset: the verdict, the tag of the key that verified it
    (secure only) and, for wildcard expansions, the closest encloser the labels field names."""

    verdict: v.Verdict
    key_tag: int | None = None
    wildcard_encloser: dns.name.Name | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.security is v.Security.SECURE


def verify_rrset(
    rrset: dns.rrset.RRset,
    sigs: Sequence[RRSIG],
    keys: Sequence[ZoneKey],
    zone: dns.name.Name,
    now: int,
    budget: Budget,
    policy: AlgorithmPolicy = DEFAULT_POLICY,
) -> SigCheck:
    """Check ``rrset`` against its RRSIGs with the trusted ``keys`` of ``zone``.

    Secure as soon as one RRSIG verifies (RFC 4035 s5.3.3).  Otherwise bogus with the most
    telling reason: RRSIGs missing, expired, not yet valid, no matching DNSKEY, or a failed
    signature.  Budgets: at most ``rrsigs_per_rrset`` RRSIGs, ``keys_per_tag`` keys per tag,
    and one unit of ``signature_verifications`` per RRSIG tried.
    """
    owner = rrset.name
    what = _What(owner, rrset.rdtype)
    limits = budget.limits
    candidates = [
        s
        for s in sigs
        if s.type_covered == rrset.rdtype
        and same_name(s.signer, zone)
        and policy.algorithm_supported(int(s.algorithm))
    ]
    if not candidates:
        if sigs and any(
            not same_name(s.signer, zone) for s in sigs if s.type_covered == rrset.rdtype
        ):
            signers = sorted({str(s.signer) for s in sigs})
            return SigCheck(
                v.bogus(f"{what} is signed by {', '.join(signers)}, not by zone {zone}")
            )
        return SigCheck(v.bogus(f"no usable RRSIG for {what} in zone {zone}", v.EDE_RRSIGS_MISSING))
    owner_labels = label_count(owner)
    by_tag: dict[tuple[int, int], list[ZoneKey]] = {}
    for k in keys:
        by_tag.setdefault((k.tag, k.algorithm), []).append(k)
    # An RRSIG here stands for "no DNSKEY with its tag": common on the way to success (a
    # DNSKEY RRset signed by a KSK and a ZSK, checked with the DS-matched keys only), so its
    # reason is written only when nothing verifies (_no_key), in the same place in the list.
    problems: list[v.Verdict | RRSIG] = []
    for tried, sig in enumerate(candidates):
        if tried >= limits.rrsigs_per_rrset:
            problems.append(v.bogus(f"more than {limits.rrsigs_per_rrset} RRSIGs for {what}"))
            break
        if not budget.take("signature_verifications"):
            return SigCheck(v.bogus(f"{what}: {budget.describe()}"))
        if sig.labels > owner_labels:
            problems.append(v.bogus(f"RRSIG labels {sig.labels} > {owner_labels} for {what}"))
            continue
        if not is_subdomain(owner, sig.signer):
            problems.append(v.bogus(f"signer {sig.signer} is not an ancestor of {owner}"))
            continue
        late = time_problem(sig, now)
        if late is not None:
            problems.append(late)
            continue
        matching = by_tag.get((sig.key_tag, int(sig.algorithm)), [])
        if not matching:
            problems.append(sig)
            continue
        data = signed_data(sig, owner, rrset.rdtype, rrset.rdclass, rrset)
        for n, k in enumerate(matching):
            if n >= limits.keys_per_tag:
                problems.append(
                    v.bogus(f"more than {limits.keys_per_tag} DNSKEYs with tag {k.tag}")
                )
                break
            if n > 0 and not budget.take("signature_verifications"):
                return SigCheck(v.bogus(f"{what}: {budget.describe()}"))
            try:
                pub = _public_key(k.algorithm, k.rdata.key)
            except CryptoError as e:
                problems.append(v.bogus(f"DNSKEY {k.tag} of {zone} is malformed: {e}"))
                continue
            if wire.verify(k.algorithm, pub, sig.signature, data):
                encloser = None
                if sig.labels < owner_labels:
                    encloser = suffix(owner.labels[-(sig.labels + 1) :])
                reason = f"{what} signed by {name_text(zone)} key {k.tag}"
                return SigCheck(v.secure(reason), k.tag, encloser)
        else:
            problems.append(v.bogus(f"RRSIG of {what} by key {sig.key_tag} does not verify"))
    written = [_no_key(p, zone, what) if isinstance(p, RRSIG) else p for p in problems]
    return SigCheck(_pick(written, what))


def _no_key(sig: RRSIG, zone: dns.name.Name, what: _What) -> v.Verdict:
    return v.bogus(
        f"no DNSKEY {sig.key_tag}/{sig.algorithm} in {zone} for the RRSIG of {what}",
        v.EDE_DNSKEY_MISSING,
    )


class _What:
    """``owner/TYPE`` for a reason, formatted only when a reason is written (the owner is
    not remembered by :func:`name_text`: it is a new name for each question)."""

    __slots__ = ("owner", "rdtype")

    def __init__(self, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
        self.owner = owner
        self.rdtype = rdtype

    def __str__(self) -> str:
        text = _TYPE_TEXT.get(self.rdtype)
        if text is None:
            text = _TYPE_TEXT[self.rdtype] = dns.rdatatype.to_text(self.rdtype)
        # A zone's keys and DS are named over and over; other owners are new each question.
        owner = name_text(self.owner) if self.rdtype in _APEX_TYPES else self.owner.to_text()
        return f"{owner}/{text}"


_TYPE_TEXT: dict[int, str] = {}  # at most 65536 short strings
_APEX_TYPES = frozenset((dns.rdatatype.DNSKEY, dns.rdatatype.DS))


# Which reason to report when every RRSIG failed: the most specific one.
_EDE_PREFERENCE = (
    v.EDE_SIGNATURE_EXPIRED,
    v.EDE_SIGNATURE_NOT_YET_VALID,
    v.EDE_DNSKEY_MISSING,
    v.EDE_DNSSEC_BOGUS,
)


def _pick(problems: list[v.Verdict], what: _What) -> v.Verdict:
    if not problems:
        return v.bogus(f"no RRSIG verifies {what}")
    bogus_sig = [p for p in problems if "does not verify" in p.reason]
    if bogus_sig:
        return bogus_sig[0]
    for ede in _EDE_PREFERENCE:
        for p in problems:
            if p.ede == ede:
                return p
    return problems[0]
