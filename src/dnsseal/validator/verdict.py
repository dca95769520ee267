"""Verdicts as data: the four DNSSEC outcomes (RFC 4033 s5), Extended DNS Error codes
(RFC 8914) and the links of a chain of trust, for ``--explain``."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Security(enum.Enum):
    """RFC 4033 s5 outcomes, ordered so that :func:`worst` can combine them."""

    SECURE = "secure"
    INSECURE = "insecure"
    INDETERMINATE = "indeterminate"
    BOGUS = "bogus"


_RANK = {
    Security.SECURE: 0,
    Security.INSECURE: 1,
    Security.INDETERMINATE: 2,
    Security.BOGUS: 3,
}

# RFC 8914 s4 (and the IANA registry) for the codes the validator reports.
EDE_OTHER = 0
EDE_UNSUPPORTED_DNSKEY_ALGORITHM = 1
EDE_UNSUPPORTED_DS_DIGEST = 2
EDE_DNSSEC_INDETERMINATE = 5
EDE_DNSSEC_BOGUS = 6
EDE_SIGNATURE_EXPIRED = 7
EDE_SIGNATURE_NOT_YET_VALID = 8
EDE_DNSKEY_MISSING = 9
EDE_RRSIGS_MISSING = 10
EDE_NO_ZONE_KEY_BIT = 11
EDE_NSEC_MISSING = 12
EDE_NO_REACHABLE_AUTHORITY = 22
EDE_NETWORK_ERROR = 23
EDE_UNSUPPORTED_NSEC3_ITERATIONS = 27

EDE_NAMES: dict[int, str] = {
    EDE_OTHER: "Other Error",
    EDE_UNSUPPORTED_DNSKEY_ALGORITHM: "Unsupported DNSKEY Algorithm",
    EDE_UNSUPPORTED_DS_DIGEST: "Unsupported DS Digest Type",
    EDE_DNSSEC_INDETERMINATE: "DNSSEC Indeterminate",
    EDE_DNSSEC_BOGUS: "DNSSEC Bogus",
    EDE_SIGNATURE_EXPIRED: "Signature Expired",
    EDE_SIGNATURE_NOT_YET_VALID: "Signature Not Yet Valid",
    EDE_DNSKEY_MISSING: "DNSKEY Missing",
    EDE_RRSIGS_MISSING: "RRSIGs Missing",
    EDE_NO_ZONE_KEY_BIT: "No Zone Key Bit Set",
    EDE_NSEC_MISSING: "NSEC Missing",
    EDE_NO_REACHABLE_AUTHORITY: "No Reachable Authority",
    EDE_NETWORK_ERROR: "Network Error",
    EDE_UNSUPPORTED_NSEC3_ITERATIONS: "Unsupported NSEC3 Iterations Value",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """An outcome with the sentence that explains it and the EDE code to send (or None)."""

    security: Security
    reason: str
    ede: int | None = None

    @property
    def ede_name(self) -> str:
        return EDE_NAMES.get(self.ede, "") if self.ede is not None else ""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"security": self.security.value, "reason": self.reason}
        if self.ede is not None:
            out["ede"] = self.ede
            out["ede_text"] = self.ede_name
        return out


SECURE = Verdict(Security.SECURE, "validated")


def secure(reason: str) -> Verdict:
    return Verdict(Security.SECURE, reason)


def insecure(reason: str, ede: int | None = None) -> Verdict:
    return Verdict(Security.INSECURE, reason, ede)


def bogus(reason: str, ede: int = EDE_DNSSEC_BOGUS) -> Verdict:
    return Verdict(Security.BOGUS, reason, ede)


def indeterminate(reason: str, ede: int = EDE_DNSSEC_INDETERMINATE) -> Verdict:
    return Verdict(Security.INDETERMINATE, reason, ede)


def worst(a: Verdict, b: Verdict) -> Verdict:
    """The weaker of two verdicts (a chain is only as secure as its weakest link)."""
    return b if _RANK[b.security] > _RANK[a.security] else a


@dataclass(frozen=True, slots=True)
class Link:
    """One step of a chain of trust, as ``--explain`` prints it."""

    zone: str
    kind: str  # "anchor", "DS", "DNSKEY", "RRSIG", "denial", "cut", "CNAME", ...
    text: str
    security: Security

    def to_dict(self) -> dict[str, str]:
        return {
            "zone": self.zone,
            "kind": self.kind,
            "text": self.text,
            "security": self.security.value,
        }
