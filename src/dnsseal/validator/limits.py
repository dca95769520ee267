"""Hard limits against zones built to exhaust validators, counted per query.

:class:`Limits` is the configuration (frozen); :class:`Budget` counts what one query has
spent.  Every costly step asks the budget first; once any limit is hit the query is bogus
(the caller turns :attr:`Budget.exhausted` into a verdict), so hostile input costs at most
the limits, never more.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-query ceilings.  Defaults follow the spirit of BIND's max-validations-per-fetch and
    Unbound's NSEC3 limits, sized so an honest chain of a few zones fits comfortably."""

    signature_verifications: int = 64  # crypto verifications (and expired RRSIGs) per query
    rrsigs_per_rrset: int = 8  # RRSIGs looked at for one RRset
    keys_per_tag: int = 4  # DNSKEYs tried for one key tag (colliding tags)
    ds_failures: int = 4  # DS records whose digest did not match a DNSKEY
    nsec3_per_proof: int = 8  # NSEC3 RRsets accepted in one negative answer
    nsec3_hashes: int = 48  # NSEC3 hash computations per query
    nsec3_iterations: int = 50  # above this: insecure, EDE 27 (RFC 9276)
    queries: int = 150  # upstream queries per resolution
    cname_chain: int = 12  # CNAME/DNAME hops
    referrals: int = 40  # referrals followed per iteration


BUDGET_KINDS = {
    "signature_verifications",
    "rrsigs_per_rrset",
    "keys_per_tag",
    "ds_failures",
    "nsec3_hashes",
    "queries",
}


class Budget:
    """What one query has spent against :class:`Limits`.

    ``take(kind)`` adds one and returns False (remembering ``kind`` in :attr:`exhausted`) when
    that would pass the limit.  Per-RRset and per-tag limits are checked by the caller with
    :meth:`within`; they do not accumulate.
    """

    __slots__ = ("exhausted", "limits", "spent")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.spent: dict[str, int] = dict.fromkeys(BUDGET_KINDS, 0)
        self.exhausted: str | None = None

    def take(self, kind: str, n: int = 1) -> bool:
        if self.exhausted is not None:
            return False
        self.spent[kind] += n
        if self.spent[kind] > getattr(self.limits, kind):
            self.exhausted = kind
            return False
        return True

    def describe(self) -> str:
        if self.exhausted is None:
            return "within budget"
        return (
            f"budget exhausted: more than {getattr(self.limits, self.exhausted)} {self.exhausted}"
        )
