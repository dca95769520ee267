"""The key model: one DNSSEC key with its timing metadata and key-manager state.

A key is identified by (algorithm, key tag, public key), never by tag alone: tags collide.
Timing fields and state fields are listed once, in tables that the file codecs, ``settime``
and ``keyinfo`` all read.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY

from dnsseal.errors import CryptoError
from dnsseal.keys import algorithms

FLAG_ZONE = 0x0100
FLAG_REVOKE = 0x0080
FLAG_SEP = 0x0001
PROTOCOL_DNSSEC = 3


def key_tag(flags: int, protocol: int, algorithm: int, public_key: bytes) -> int:
    """RFC 4034 Appendix B key tag over the DNSKEY rdata."""
    rdata = struct.pack("!HBB", flags, protocol, algorithm) + public_key
    if algorithm == 1:  # RSA/MD5: the tag is bits 16..31 of the modulus' last octets
        return int.from_bytes(rdata[-3:-1], "big")
    if len(rdata) % 2:
        rdata += b"\0"
    # the sum of the rdata as 16-bit words (one struct call, not a loop over octets)
    acc: int = sum(struct.unpack(f"!{len(rdata) // 2}H", rdata))
    acc += (acc >> 16) & 0xFFFF
    return acc & 0xFFFF


class RecordState(enum.Enum):
    """The states of the "Flexible and Robust Key Rollover" model, as BIND writes them."""

    HIDDEN = "hidden"
    RUMOURED = "rumoured"
    OMNIPRESENT = "omnipresent"
    UNRETENTIVE = "unretentive"
    NA = "na"

    @classmethod
    def parse(cls, text: str) -> RecordState:
        t = text.strip().lower()
        if t == "n/a":
            t = "na"
        return cls(t)


@dataclass(frozen=True, slots=True)
class TimingField:
    """One timing metadata field and its tag in each of BIND's three files."""

    attr: str
    private_tag: str | None  # in .private (None: BIND 9.18 rejects it there)
    key_tag: str | None  # as a comment in .key (None: not written there)
    state_tag: str  # in .state
    label: str  # for people (settime -p, keyinfo)


TIMING_FIELDS: tuple[TimingField, ...] = (
    TimingField("created", "Created", "Created", "Generated", "Created"),
    TimingField("publish", "Publish", "Publish", "Published", "Publish"),
    TimingField("activate", "Activate", "Activate", "Active", "Activate"),
    TimingField("revoke", "Revoke", "Revoke", "Revoked", "Revoke"),
    TimingField("inactive", "Inactive", "Inactive", "Retired", "Inactive"),
    TimingField("delete", "Delete", "Delete", "Removed", "Delete"),
    TimingField("ds_publish", "DSPublish", None, "DSPublish", "DS Publish"),
    TimingField("sync_publish", "SyncPublish", "SyncPublish", "PublishCDS", "SYNC Publish"),
    TimingField("sync_delete", "SyncDelete", "SyncDelete", "DeleteCDS", "SYNC Delete"),
    # BIND keeps the DS removal time in the .state file only.
    TimingField("ds_delete", None, None, "DSRemoved", "DS Delete"),
)
TIMING_BY_PRIVATE_TAG = {f.private_tag: f for f in TIMING_FIELDS if f.private_tag}
TIMING_BY_STATE_TAG = {f.state_tag: f for f in TIMING_FIELDS}
TIMING_BY_KEY_TAG = {f.key_tag: f for f in TIMING_FIELDS if f.key_tag}


@dataclass(frozen=True, slots=True)
class KeyTimings:
    """Timing metadata, seconds since the epoch or None when unset."""

    created: int | None = None
    publish: int | None = None
    activate: int | None = None
    revoke: int | None = None
    inactive: int | None = None
    delete: int | None = None
    ds_publish: int | None = None
    sync_publish: int | None = None
    sync_delete: int | None = None
    ds_delete: int | None = None

    def get(self, attr: str) -> int | None:
        value: int | None = getattr(self, attr)
        return value

    def replace(self, **changes: int | None) -> KeyTimings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class StateField:
    attr: str
    tag: str
    kind: str  # "num", "bool", "time", "state"


# The key-manager fields of a .state file that are not timing metadata, in BIND's order
# (the shared times are written between ZSK and DNSKEYChange; see bindfmt).
STATE_HEAD_FIELDS: tuple[StateField, ...] = (
    StateField("lifetime", "Lifetime", "num"),
    StateField("predecessor", "Predecessor", "num"),
    StateField("successor", "Successor", "num"),
    StateField("ksk", "KSK", "bool"),
    StateField("zsk", "ZSK", "bool"),
)
STATE_TAIL_FIELDS: tuple[StateField, ...] = (
    StateField("dnskey_change", "DNSKEYChange", "time"),
    StateField("zrrsig_change", "ZRRSIGChange", "time"),
    StateField("krrsig_change", "KRRSIGChange", "time"),
    StateField("ds_change", "DSChange", "time"),
    StateField("dnskey", "DNSKEYState", "state"),
    StateField("zrrsig", "ZRRSIGState", "state"),
    StateField("krrsig", "KRRSIGState", "state"),
    StateField("ds", "DSState", "state"),
    StateField("goal", "GoalState", "state"),
)
STATE_FIELDS_BY_TAG = {f.tag: f for f in STATE_HEAD_FIELDS + STATE_TAIL_FIELDS}


@dataclass(frozen=True, slots=True)
class KeyState:
    """The key-manager part of a ``.state`` file (timings live in :class:`KeyTimings`)."""

    lifetime: int | None = None
    predecessor: int | None = None
    successor: int | None = None
    ksk: bool | None = None
    zsk: bool | None = None
    dnskey_change: int | None = None
    zrrsig_change: int | None = None
    krrsig_change: int | None = None
    ds_change: int | None = None
    dnskey: RecordState | None = None
    zrrsig: RecordState | None = None
    krrsig: RecordState | None = None
    ds: RecordState | None = None
    goal: RecordState | None = None
    extra: tuple[str, ...] = ()  # lines we do not know, kept verbatim

    def replace(self, **changes: object) -> KeyState:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PrivateMaterial:
    """The key material of a ``.private`` file: (tag, raw bytes) pairs in file order."""

    fields: tuple[tuple[str, bytes], ...]
    format_version: str = "v1.3"
    extra: tuple[str, ...] = ()  # unknown lines kept verbatim

    def get(self, tag: str) -> bytes | None:
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    @classmethod
    def reference(cls, label: str, engine: str | None = "pkcs11") -> PrivateMaterial:
        """Material that names a key held elsewhere (an HSM), as ``dnssec-keyfromlabel``
        writes it: ``Engine:`` (BIND 9.18 needs it to accept the file) and ``Label:``, each
        a NUL-terminated string."""
        fields = [] if engine is None else [("Engine", engine.encode() + b"\0")]
        fields.append(("Label", label.encode() + b"\0"))
        return cls(tuple(fields))

    @property
    def label(self) -> str | None:
        """The ``Label:`` reference (an RFC 7512 PKCS#11 URI) when the private key is held in
        a key store, not in the file."""
        return _c_string(self.get("Label"))

    @property
    def engine(self) -> str | None:
        return _c_string(self.get("Engine"))


# The .private tags that refer to a key held elsewhere instead of holding it (BIND's
# TAG_*_ENGINE and TAG_*_LABEL, any algorithm family).
REFERENCE_TAGS = ("Engine", "Label")


def _c_string(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class KeyId:
    """What identifies a key: tags alone collide, so the public key is part of it."""

    algorithm: int
    tag: int
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Key:
    """One DNSSEC key as stored in a key directory."""

    zone: dns.name.Name
    flags: int
    algorithm: int
    public_key: bytes
    protocol: int = PROTOCOL_DNSSEC
    ttl: int | None = None
    rdclass: int = dns.rdataclass.IN
    timings: KeyTimings = field(default_factory=KeyTimings)
    state: KeyState | None = None
    private: PrivateMaterial | None = None
    key_comments: tuple[str, ...] = ()  # unknown comment lines of the .key file
    tag: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "tag", key_tag(self.flags, self.protocol, self.algorithm, self.public_key)
        )

    @property
    def id(self) -> KeyId:
        return KeyId(self.algorithm, self.tag, self.public_key)

    @property
    def is_ksk(self) -> bool:
        """SEP flag set (a key-signing key, or a CSK)."""
        return bool(self.flags & FLAG_SEP)

    @property
    def is_revoked(self) -> bool:
        return bool(self.flags & FLAG_REVOKE)

    @property
    def role(self) -> str:
        """``ksk``, ``zsk`` or ``csk`` (from the state file when it says, else the flags)."""
        st = self.state
        if st is not None and st.ksk is not None and st.zsk is not None:
            if st.ksk and st.zsk:
                return "csk"
            return "ksk" if st.ksk else "zsk"
        return "ksk" if self.is_ksk else "zsk"

    @property
    def algorithm_info(self) -> algorithms.Algorithm:
        return algorithms.get(self.algorithm)

    @property
    def bits(self) -> int:
        return public_key_bits(self.algorithm, self.public_key)

    @property
    def basename(self) -> str:
        return key_basename(self.zone, self.algorithm, self.tag)

    def dnskey(self) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
        return dns.rdtypes.ANY.DNSKEY.DNSKEY(
            self.rdclass, dns.rdatatype.DNSKEY, self.flags, self.protocol, self.algorithm,
            self.public_key,
        )  # type: ignore[no-untyped-call]  # fmt: skip

    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode("ascii")

    def with_timings(self, timings: KeyTimings) -> Key:
        return dataclasses.replace(self, timings=timings)

    def with_state(self, state: KeyState | None) -> Key:
        return dataclasses.replace(self, state=state)

    @property
    def revoked_tag(self) -> int:
        """The tag the key has once revoked (RFC 5011: the REVOKE bit changes it)."""
        return key_tag(self.flags | FLAG_REVOKE, self.protocol, self.algorithm, self.public_key)

    def revoked(self) -> Key:
        """The same key with the REVOKE bit set (its tag changes, RFC 5011)."""
        return dataclasses.replace(self, flags=self.flags | FLAG_REVOKE)


# A new key is made again at most this often when its tag collides (the odds of even two
# collisions in a row are about (keys of the zone / 2**15)**2).
MAX_TAG_TRIES = 100


def tag_collides(key: Key, others: Iterable[Key]) -> bool:
    """Does ``key`` collide with one of ``others`` of its algorithm: its tag or its
    revoked tag (RFC 5011) the tag or revoked tag of the other?  BIND's key manager's
    rule (``keymgr_keyid_conflict``); dnssec-keygen's (``key_collision``) is the same bar
    revoked against revoked, which only differs for keys of different flags."""
    mine = {key.tag, key.revoked_tag}
    return any(
        k.algorithm == key.algorithm and (k.tag in mine or k.revoked_tag in mine) for k in others
    )


def new_key(
    make: Callable[[], Key],
    existing: Iterable[Key],
    *,
    collided: Callable[[Key], None] | None = None,
) -> Key:
    """A key from ``make`` that collides with none of ``existing`` (:func:`tag_collides`):
    one that does is thrown away and another made, as dnssec-keygen and BIND's key manager
    do, so that a tag (revoked or not) names one key of the zone and algorithm.  The one
    loop of the project for it: the key manager, ``keygen`` and ``ksr keygen`` call it.
    ``collided(key)`` hears of each key thrown away.  Raises :class:`CryptoError` after
    :data:`MAX_TAG_TRIES` keys (and what ``make`` raises)."""
    others = list(existing)
    zone = "?"
    for _ in range(MAX_TAG_TRIES):
        key = make()
        if not tag_collides(key, others):
            return key
        zone = key.zone.to_text()
        if collided is not None:
            collided(key)
    raise CryptoError(
        f"{zone}: could not make a key whose tag collides with no existing key "
        f"({MAX_TAG_TRIES} tries)"
    )


_FILE_TEXT: dict[dns.name.Name, str] = {}  # zone -> zone_file_text (names compare caseless)
_FILE_TEXT_MAX = 65536  # zones remembered; then started again


def zone_file_text(zone: dns.name.Name) -> str:
    """The zone name as it appears in key file names: lower case, absolute, escaped.
    Made once per zone (a start names each zone's key files a dozen times)."""
    text = _FILE_TEXT.get(zone)
    if text is None:
        # BIND replaces '/' (it cannot appear in a file name) with its decimal escape.
        text = zone.canonicalize().to_text().replace("/", "\\047")
        if len(_FILE_TEXT) >= _FILE_TEXT_MAX:
            _FILE_TEXT.clear()
        _FILE_TEXT[zone] = text
    return text


def key_basename(zone: dns.name.Name, algorithm: int, tag: int) -> str:
    return f"K{zone_file_text(zone)}+{algorithm:03d}+{tag:05d}"


def public_key_bits(algorithm: int, public_key: bytes) -> int:
    """The key size in bits as BIND reports it (RSA modulus length; curve size)."""
    alg = algorithms.ALGORITHMS.get(algorithm)
    if alg is not None and alg.family == "rsa":
        if not public_key:
            return 0
        if public_key[0] == 0:
            if len(public_key) < 3:
                return 0
            exp_len = struct.unpack("!H", public_key[1:3])[0]
            mod = public_key[3 + exp_len :]
        else:
            exp_len = public_key[0]
            mod = public_key[1 + exp_len :]
        return int.from_bytes(mod, "big").bit_length()
    if alg is not None:
        return alg.default_bits
    return len(public_key) * 8
