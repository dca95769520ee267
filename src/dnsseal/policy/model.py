"""The dnssec-policy model: BIND's option names, defaults and meaning, as one table.

A :class:`Policy` is a frozen value.  Every scalar option is one row of :data:`OPTIONS`
(name as BIND spells it, kind, default, doc); the ``keys`` and ``nsec3param`` blocks have
their own small value types.  The built-in policies ``default``, ``insecure`` and ``none``
are those of BIND 9.18 (with the 9.20 defaults for the options 9.18 does not have yet:
``cdnskey``, ``cds-digest-types``, ``signatures-jitter``, ``inline-signing``).

Durations are seconds (ints); ``unlimited`` lifetimes are :data:`UNLIMITED` (0 here, as BIND
stores them in a ``.state`` file's ``Lifetime:``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from dnsseal.durations import DAY, HOUR, MINUTE

UNLIMITED = 0
DEFAULT_TTLSIG = 7 * DAY
Role = Literal["ksk", "zsk", "csk"]
ROLES: tuple[Role, ...] = ("ksk", "zsk", "csk")
OptionKind = Literal["duration", "bool", "digests"]


@dataclass(frozen=True, slots=True)
class Option:
    """One scalar dnssec-policy option: ``name`` as BIND spells it, ``attr`` on Policy."""

    name: str
    kind: OptionKind
    default: object
    doc: str

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("dnskey-ttl", "duration", HOUR, "TTL of the DNSKEY RRset (and CDS/CDNSKEY)."),
    Option(
        "publish-safety",
        "duration",
        HOUR,
        "Margin added to the publication interval before a new key is relied upon.",
    ),
    Option(
        "retire-safety",
        "duration",
        HOUR,
        "Margin added to the retire interval before an old key's records are removed.",
    ),
    Option(
        "purge-keys",
        "duration",
        90 * DAY,
        "How long after a key is completely hidden its files are deleted (0: keep).",
    ),
    Option(
        "signatures-refresh",
        "duration",
        5 * DAY,
        "Re-sign an RRset when its signature expires within this interval.",
    ),
    Option("signatures-validity", "duration", 14 * DAY, "Validity period of RRSIGs."),
    Option(
        "signatures-validity-dnskey",
        "duration",
        14 * DAY,
        "Validity period of the RRSIGs over DNSKEY, CDS and CDNSKEY.",
    ),
    Option(
        "signatures-jitter",
        "duration",
        12 * HOUR,
        "Spread signature expiry times over this interval (BIND 9.20).",
    ),
    Option(
        "max-zone-ttl",
        "duration",
        DAY,
        "Largest TTL in the zone; bounds how long signatures stay in caches.",
    ),
    Option(
        "zone-propagation-delay",
        "duration",
        5 * MINUTE,
        "Time for a zone change to reach all secondaries.",
    ),
    Option("parent-ds-ttl", "duration", DAY, "TTL of the DS RRset at the parent."),
    Option(
        "parent-propagation-delay",
        "duration",
        HOUR,
        "Time for a DS change to reach all of the parent's servers.",
    ),
    Option("cdnskey", "bool", True, "Publish CDNSKEY records next to CDS (BIND 9.20)."),
    Option(
        "cds-digest-types",
        "digests",
        (2,),
        "Digest types of the CDS records to publish (BIND 9.20; 2 = SHA-256).",
    ),
    Option(
        "inline-signing",
        "bool",
        True,
        "Keep the signed zone apart from the unsigned one (BIND 9.20).",
    ),
    Option(
        "offline-ksk",
        "bool",
        False,
        "The KSK is offline: the key set and its signatures come from an imported Signed Key "
        "Response (Knot, BIND 9.20); only pregenerated ZSKs sign here.",
    ),
    Option(
        "manual-mode",
        "bool",
        False,
        "The key manager proposes each step that would change what the zone publishes or "
        "signs (a new key, a record entering or leaving) and waits for the operator "
        "(`dnsseal ctl dnssec -step`, `keys step`; BIND 9.21 `rndc dnssec -step`).",
    ),
    Option(
        "skr-horizon",
        "duration",
        14 * DAY,
        "With offline-ksk: warn when the imported Signed Key Response ends within this.",
    ),
)
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}

# Digest type mnemonics accepted in cds-digest-types (RFC 8624 names, BIND spellings).
DIGEST_NAMES = {"sha-1": 1, "sha1": 1, "sha-256": 2, "sha256": 2, "sha-384": 4, "sha384": 4}
DIGEST_TEXT = {1: "sha-1", 2: "sha-256", 4: "sha-384"}


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One line of a ``keys { ... }`` block: ``ksk lifetime P1Y algorithm 13 256``."""

    role: Role
    algorithm: int
    lifetime: int = UNLIMITED  # seconds, UNLIMITED (0) for never
    bits: int | None = None
    key_directory: bool = False  # ``key-directory`` given
    # Where new keys of this line are made: None for files in the key directory, else a key
    # store location (a ``pkcs11:`` URI; BIND 9.20's ``key-store`` with ``pkcs11-uri``).
    key_store: str | None = None

    @property
    def ksk(self) -> bool:
        return self.role in ("ksk", "csk")

    @property
    def zsk(self) -> bool:
        return self.role in ("zsk", "csk")


@dataclass(frozen=True, slots=True)
class Nsec3Param:
    """``nsec3param iterations N optout yes|no salt-length N``."""

    iterations: int = 0
    optout: bool = False
    salt_length: int = 0


@dataclass(frozen=True, slots=True)
class Policy:
    """A dnssec-policy.  ``keys`` empty means "no keys": for ``insecure``, go unsigned
    safely.  ``manage`` false is the ``none`` policy: dnsseal leaves the zone alone."""

    name: str
    keys: tuple[KeySpec, ...] = ()
    nsec3param: Nsec3Param | None = None
    dnskey_ttl: int = HOUR
    publish_safety: int = HOUR
    retire_safety: int = HOUR
    purge_keys: int = 90 * DAY
    signatures_refresh: int = 5 * DAY
    signatures_validity: int = 14 * DAY
    signatures_validity_dnskey: int = 14 * DAY
    signatures_jitter: int = 12 * HOUR
    max_zone_ttl: int = DAY
    zone_propagation_delay: int = 5 * MINUTE
    parent_ds_ttl: int = DAY
    parent_propagation_delay: int = HOUR
    cdnskey: bool = True
    cds_digest_types: tuple[int, ...] = (2,)
    inline_signing: bool = True
    offline_ksk: bool = False
    manual_mode: bool = False
    skr_horizon: int = 14 * DAY
    manage: bool = True

    def get(self, option: str) -> object:
        """The value of a scalar option by its BIND name."""
        return getattr(self, OPTIONS_BY_NAME[option].attr)

    def replace(self, **changes: object) -> Policy:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # RFC 7583 intervals, as BIND's keymgr computes them -------------------------------

    @property
    def ttlsig(self) -> int:
        """TTLsig: the longest a zone signature may stay in a cache.  ``max-zone-ttl 0``
        (no limit, as in the built-in ``insecure`` policy) counts as one week, the
        resolvers' usual max-cache-ttl (BIND: lib/dns/kasp.c dns_kasp_zonemaxttl with
        fallback, DEFAULT_TTLSIG)."""
        return self.max_zone_ttl or DEFAULT_TTLSIG

    @property
    def sign_delay(self) -> int:
        """Dsgn: how long until every RRset carries a signature of a new ZSK."""
        return max(0, self.signatures_validity - self.signatures_refresh)

    @property
    def ipub(self) -> int:
        """Ipub: publication interval of a DNSKEY (TTL + propagation + safety)."""
        return self.dnskey_ttl + self.zone_propagation_delay + self.publish_safety

    @property
    def ipub_first(self) -> int:
        """IpubC when the zone is first signed: the signatures must be everywhere too."""
        return max(self.dnskey_ttl, self.ttlsig) + (
            self.zone_propagation_delay + self.publish_safety
        )

    @property
    def iret_ksk(self) -> int:
        """Iret for a KSK: the old DS leaves every cache."""
        return self.parent_propagation_delay + self.parent_ds_ttl + self.retire_safety

    @property
    def iret_zsk(self) -> int:
        """Iret for a ZSK: every signature of the old key leaves every cache."""
        return self.sign_delay + self.zone_propagation_delay + self.ttlsig + self.retire_safety

    def roll_duration(self, role: Role) -> int:
        """The least time a roll of ``role`` needs from successor publication to the old
        key's removal (the DS step counted as instantaneous)."""
        zsk = self.ipub + self.iret_zsk
        ksk = self.ipub + self.iret_ksk
        return {"zsk": zsk, "ksk": ksk, "csk": max(zsk, ksk)}[role]


DEFAULT = Policy(name="default", keys=(KeySpec("csk", 13, UNLIMITED),))
# BIND 9.18's built-in "insecure" (named -C): no keys, max-zone-ttl 0.
INSECURE = Policy(name="insecure", keys=(), max_zone_ttl=0)
NONE = Policy(name="none", keys=(), manage=False)
BUILTIN: dict[str, Policy] = {p.name: p for p in (DEFAULT, INSECURE, NONE)}
BLOCKS = ("keys", "nsec3param")

__all__ = [
    "BUILTIN",
    "DEFAULT",
    "INSECURE",
    "NONE",
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "UNLIMITED",
    "KeySpec",
    "Nsec3Param",
    "Option",
    "Policy",
    "Role",
]
