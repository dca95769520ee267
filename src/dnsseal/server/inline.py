"""Inline signing of one zone under a dnssec-policy: source + keys + policy + now -> versions.

An :class:`InlineZone` holds three things:

* ``unsigned``: the zone's data as the server maintains it (the source file plus dynamic
  updates), without the records the server manages (RRSIG, NSEC, NSEC3, NSEC3PARAM, the
  apex signing-state records (TYPE65534, :mod:`dnsseal.signer.signingstate`) and our own
  DNSKEY / CDS / CDNSKEY; a multi-signer peer's DNSKEY / CDS / CDNSKEY stay here);
* ``signed``: the version served, produced only by :meth:`maintain` and :meth:`update`;
* ``file_copy``: the source file as last applied, so a reload applies the file's edits as
  a diff (dynamic updates made since are kept).

Each call runs one key manager step (keys are created only when the plan says so, and a
key file that went missing is an error for the zone, never a reason to make a new key),
signs with the plan's keys (each signing what the plan says: the key set, the rest of
the zone, or both) and published sets, and returns a :class:`Version` (the new
signed zone, its record-level diff from the previous one, audit events) or None when
nothing changed.  The caller (``server.dnssec``) journals it before serving it.  Blocking
work (signing, key files): run it in a worker thread, one call per zone at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.findings import Severity
from dnsseal.keymgr import Facts, Plan, step
from dnsseal.keymgr.plan import Fact
from dnsseal.keys.ds import dnskey_rdata_wire, make_ds
from dnsseal.keys.model import Key, KeyState, RecordState
from dnsseal.policy.model import Policy
from dnsseal.proto.snapshot import ZoneSnapshot, snapshot_model
from dnsseal.server import counters, signpool
from dnsseal.server.offlineksk import ResponseKeys
from dnsseal.server.versions import (
    Version,
    data_diff,
    only_soa,
    pack_version,
    sig_expirations,
    signer_keyset_rdatas,
    unpack_own,
    zone_from_lines,
)
from dnsseal.signer import Nsec3Params, SigningKey, SignParams, sign_changes, sign_zone
from dnsseal.signer import signingstate as sstate
from dnsseal.signer.incremental import SIGNER_TYPES
from dnsseal.signer.keysel import KEYSET_TYPES, assign
from dnsseal.signer.rrsig import absolute_time, labels_field
from dnsseal.signer.sign import (
    SERIAL_POLICIES,
    check_keys,
    next_serial,
    prepare_zone,
    sign_rrsets,
    validity,
)
from dnsseal.signer.skr import without_keyset_sigs
from dnsseal.storage import bindserial, zonefile
from dnsseal.storage.journal import AuditEvent
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.storage.keydir import generate as keydir_generate
from dnsseal.zone import canonical
from dnsseal.zone.diff import Record, ZoneDiff, apply, diff
from dnsseal.zone.model import CHAIN_TYPES, RRset, Soa, Zone

log = logging.getLogger(__name__)
T = dns.rdatatype
IN = dns.rdataclass.IN

# The key set records the server publishes when a key asks the parent to remove its DS.
CDS_DELETE = dns.rdata.from_text(IN, T.CDS, "0 0 0 00")
CDNSKEY_DELETE = dns.rdata.from_text(IN, T.CDNSKEY, "0 3 0 AA==")
BACKDATE = 3600  # signatures start an hour ago (clock skew of validators)


class ZoneProblem(DnssealError):
    """The zone cannot be signed now (missing key file, no key to sign with, ...); the
    previous version stays served."""


def _is_signing_state(rtype: int, name: dns.name.Name, origin: dns.name.Name) -> bool:
    """Is this the server's signing-state RRset (TYPE65534 at the apex)?"""
    return rtype == sstate.PRIVATE_TYPE and name == origin


def _settled(k: SigningKey) -> bool:
    """Are all of the signatures ``k`` makes omnipresent (its signing done)?"""
    st = k.key.state
    if st is None:
        return False
    role = k.key.role
    wanted = (
        [st.krrsig] if role == "ksk" else [st.zrrsig] if role == "zsk" else [st.krrsig, st.zrrsig]
    )
    return all(w is RecordState.OMNIPRESENT for w in wanted)


def _plan_role(key: Key, keyset: bool, zone: bool) -> Key:
    """``key`` with the role the plan gives it now (a CSK whose zone signatures are gone
    signs only the key set; a successor CSK not yet signing the zone signs only the key
    set), so the signer's role rules sign exactly what the plan says."""
    if (key.role in ("ksk", "csk")) == keyset and (key.role in ("zsk", "csk")) == zone:
        return key
    state = key.state if key.state is not None else KeyState()
    return dataclasses.replace(key, state=state.replace(ksk=keyset, zsk=zone))


_KEY_RECORDS: dict[tuple[object, ...], tuple[tuple[int, bytes], ...]] = {}
_KEY_RECORDS_MAX = 65536  # keys remembered (a few hundred bytes each); then started again


def key_record_wires(
    key: Key, digests: tuple[int, ...], cdnskey: bool
) -> tuple[tuple[int, bytes], ...]:
    """(type, canonical RDATA) of the CDS (one per digest type in ``digests``) and, with
    ``cdnskey``, the CDNSKEY of ``key``: computed once per key and policy however often
    its zone is restored or re-signed (a restart of many zones made them for every key of
    every zone)."""
    dnskey = dnskey_rdata_wire(key)
    memo = (key.zone, dnskey, digests, cdnskey)
    found = _KEY_RECORDS.get(memo)
    if found is not None:
        return found
    out: list[tuple[int, bytes]] = []
    for digest in digests:
        ds = make_ds(key, digest)
        out.append(
            (T.CDS, struct.pack("!HBB", ds.key_tag, ds.algorithm, ds.digest_type) + ds.digest)
        )
    if cdnskey:
        out.append((T.CDNSKEY, dnskey))
    if len(_KEY_RECORDS) >= _KEY_RECORDS_MAX:
        _KEY_RECORDS.clear()
    made = _KEY_RECORDS[memo] = tuple(out)
    return made


STAMP_HEADER = "; source file "  # first line of the copy: the source it was made from
RACY_NS = 2_000_000_000  # a source changed this recently gets no stamp (read at restart)


def _source_stamp(st: os.stat_result, now_ns: int) -> str | None:
    """What identifies the source file as read: device, inode, size, mtime and ctime (a
    write, a rename over it or a chmod changes them; the ctime cannot be set back).  None
    when it changed within RACY_NS of ``now_ns``: file times tick at the kernel's coarse
    clock, so a same-size rewrite within one tick would otherwise look unchanged."""
    if st.st_ctime_ns >= now_ns - RACY_NS:
        return None
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _with_serial(zone: Zone, serial: int, soa_from: Zone | None = None) -> Zone:
    """``zone`` with its SOA (taken from ``soa_from`` when given) set to ``serial``."""
    src = (soa_from or zone).soa()
    soa = Soa(src.mname, src.rname, serial, src.refresh, src.retry, src.expire, src.minimum,
              src.ttl)  # fmt: skip
    apex = dict(zone.rrsets[zone.origin])
    apex[T.SOA] = RRset(zone.origin, T.SOA, soa.ttl, (soa.rdata_wire(),))
    rrsets = dict(zone.rrsets)
    rrsets[zone.origin] = apex
    return Zone(zone.origin, rrsets, zone.rrsigs, zone.rdclass)


def _sign_full(
    zone: Zone, keys: Sequence[SigningKey], params: SignParams, now: int, previous: Zone | None
) -> Zone:
    """A full signing pass: a zone's first (``previous`` None) in the helper process while a
    start of many zones has one (:mod:`~dnsseal.server.signpool`), else here."""
    if previous is None:
        made = signpool.sign(zone, keys, params, now)
        if made is not None:
            return made
    return sign_zone(zone, keys, params, now, previous=previous).zone


# Zones of at most this many owners (data and signature tables counted apart) keep their
# models packed between changes (InlineZone.park); see docs/zones-benchmarks.md for the
# cost of unpacking them per change.
PARK_NAMES = 200
# Orders a settle (InlineZone.settle, from the event loop) with a new version set or
# packed (in the change's worker thread): a settle never replaces a newer version.
_FORM_LOCK = threading.Lock()
# One KeyDirectory per key directory, shared by its zones (its only state, the directory's
# listing, is per directory anyway): not a Path and an object per zone.
_KEY_DIRS: dict[Path, KeyDirectory] = {}
_NO_POLICIES: Mapping[str, Policy] = types.MappingProxyType({})


def _key_directory(path: Path) -> KeyDirectory:
    got = _KEY_DIRS.get(path)
    if got is None:
        got = _KEY_DIRS.setdefault(path, KeyDirectory(path))
    return got


def _model(form: Zone | bytes | ZoneSnapshot | None) -> Zone | None:
    """The model of a zone kept as a model, packed (:func:`pack_version`) or as the
    snapshot served (:meth:`InlineZone.settle`)."""
    if isinstance(form, bytes):
        return unpack_own(form)
    if isinstance(form, ZoneSnapshot):
        return snapshot_model(form)
    return form


def _retained(plan: Plan) -> Plan:
    """What of a step's plan is kept until the next step (for the status page, checkds,
    ``dnssec -status``, the signer): each key's changes were logged and audited just after
    the step and the discarded key material deleted by the step's apply, so neither is
    kept (a new key's seven changes cost ~0.7 KiB a zone); the sentences said per key and
    per zone (what a key waits for, manual-mode's pending steps), the same in many zones,
    are interned."""
    keys = tuple(
        r
        if not r.changes and r.waiting is None
        else dataclasses.replace(
            r, changes=(), waiting=sys.intern(r.waiting) if r.waiting is not None else None
        )
        for r in plan.keys
    )
    pending = tuple(sys.intern(p) for p in plan.pending)
    return dataclasses.replace(plan, keys=keys, pending=pending, discarded=())


class InlineZone:
    """One inline-signed zone; see the module docstring."""

    # A server keeps one per zone (tens of thousands): slots, not a dict per instance.
    __slots__ = (
        "_copy_stamp",
        "_copy_unread",
        "_file_copy",
        "_offline",
        "_read_stamp",
        "_served_before",
        "_signed",
        "_signed_serial",
        "_signed_source",
        "_signed_version",
        "_unsigned",
        "copy_dirty",
        "events",
        "file_sig",
        "key_dir",
        "keydir",
        "keys",
        "last_signed",
        "name",
        "next_resign",
        "origin",
        "pending",
        "plan",
        "policies",
        "policy",
        "serial_method",
        "sig_horizon",
        "source",
        "source_problem",
        "state_dir",
    )

    def __init__(
        self,
        name: str,
        source: Path,
        policy: Policy,
        key_dir: Path,
        state_dir: Path,
        *,
        policies: Mapping[str, Policy] | None = None,
        serial_method: str = "increment",
    ) -> None:
        self.origin = dns.name.from_text(name).canonicalize()
        self.name = self.origin.to_text()
        self.source = source
        self.policy = policy
        self.policies = dict(policies) if policies else _NO_POLICIES  # (not a dict per zone)
        self.keydir = _key_directory(key_dir)
        self.key_dir = key_dir
        self.state_dir = state_dir
        # Zone models, or between changes (small zones, :meth:`park`) packed as bytes
        self._unsigned: Zone | bytes | None = None
        self._signed: Zone | bytes | ZoneSnapshot | None = None
        self._signed_version = 0  # counts the versions set (see signed_serial)
        self._signed_serial: tuple[int, int | None] = (-1, None)  # (its version, serial)
        self._file_copy: Zone | None = None
        self._copy_unread = False  # file_copy is the copy on disk, read when first needed
        self._read_stamp: str | None = None  # the source file as last read (_source_stamp)
        self._copy_stamp: str | None = None  # ... and as the copy on disk says
        self.copy_dirty = False
        self.file_sig: tuple[int, int] | None = None
        self.plan: Plan | None = None
        self.keys: list[Key] = []
        self.pending: list[Fact] = []  # facts for the next key manager step
        self.next_resign: int | None = None
        self.last_signed: int | None = None
        self.sig_horizon: int | None = None  # earliest signature expiration
        self.events: list[AuditEvent] = []  # key events not yet in the audit log
        self.source_problem: str | None = None  # why the last source edit was not taken
        self._offline: ResponseKeys | None = None  # made when first used (offline-ksk)
        # BIND's serial-update-method for every new version: increment, unixtime or date
        # (signer.sign.SERIAL_POLICIES); "keep" would serve changed data under an old serial
        if serial_method not in SERIAL_POLICIES or serial_method == "keep":
            raise ValueError(f"serial_method {serial_method!r}: increment, unixtime or date")
        self.serial_method = serial_method
        self._served_before: int | bool | None = False  # False: not looked for yet
        self._signed_source: int | None = None  # serial of a source file that came signed

    # -- the models, packed between changes -------------------------------------------

    @property
    def signed(self) -> Zone | None:
        r"""The version served (a model unpacked anew on each read while :meth:`park`\ ed:
        keep the one read rather than reading it again)."""
        return _model(self._signed)

    @signed.setter
    def signed(self, zone: Zone | None) -> None:
        with _FORM_LOCK:
            self._signed = zone
            self._signed_version += 1

    @property
    def signed_serial(self) -> int | None:
        """The SOA serial of the version served (None: none yet), read from it once per
        version: a status read of a :meth:`park`-ed zone does not unpack it each time."""
        version = self._signed_version  # (read first: a version set meanwhile is seen)
        known, serial = self._signed_serial
        if known != version:
            signed = self.signed
            serial = signed.soa().serial if signed is not None else None
            self._signed_serial = (version, serial)
        return serial

    @property
    def unsigned(self) -> Zone | None:
        """The zone's data as maintained (see the module docstring; as :attr:`signed`)."""
        return _model(self._unsigned)

    @unsigned.setter
    def unsigned(self, zone: Zone | None) -> None:
        self._unsigned = zone

    @property
    def parked(self) -> bool:
        """Are the models packed (:meth:`park`; the signed one perhaps read from the
        snapshot served: :meth:`settle`)?"""
        return isinstance(self._signed, (bytes, ZoneSnapshot))

    @property
    def packed_signed(self) -> bytes | None:
        """The version served as :meth:`park` packed it (:func:`pack_version`), or None
        when it is kept as a model (or :meth:`settle`-d): what the workers get of a parked
        zone, with no model unpacked for them."""
        signed = self._signed
        return signed if isinstance(signed, bytes) else None

    def settle(self, snap: ZoneSnapshot) -> bool:
        r"""``snap``, built from the version :attr:`signed` holds, is served (and was
        pushed to the workers): a :meth:`park`\ ed zone drops its own packed form and
        reads its model back from ``snap`` (:func:`snapshot_model`: the same records)
        when a change or a reader needs it, the snapshot being kept anyway (3 KiB per
        zone of 7 names).  Checked by origin and serial (a zone serves one version per
        serial); True when done."""
        with _FORM_LOCK:  # (a change's thread may set a newer version meanwhile)
            if (
                isinstance(self._signed, bytes)
                and snap.origin == self.origin
                and snap.serial == self.signed_serial
            ):
                self._signed = snap
                return True
        return False

    def park(self) -> bool:
        """Keep the signed and unsigned models packed (:func:`pack_version`: one bytes
        object each, a third of the model's size) until the next change needs them
        (:meth:`maintain`, :meth:`update`, :meth:`clear_signing_state` unpack them first),
        for a zone of at most :data:`PARK_NAMES` owners; a larger one keeps its models (a
        change in it must not pay O(zone)).  True when packed.  Nothing else changes: a
        read of :attr:`signed` gives the same records."""
        signed, unsigned = self._signed, self._unsigned
        if not isinstance(signed, Zone) or not isinstance(unsigned, Zone):
            return isinstance(signed, (bytes, ZoneSnapshot))
        if len(signed.rrsets) + len(signed.rrsigs) > PARK_NAMES:
            return False
        packed_unsigned = pack_version(unsigned)
        made = signpool.made_of(signed)  # (a first signing in the helper: packed there)
        packed = made.packed if made is not None else pack_version(signed)
        with _FORM_LOCK:
            if self._signed is not signed:  # (a version set meanwhile: not this one)
                return False
            self._signed_serial = (self._signed_version, signed.soa().serial)  # (not unpacked)
            self._signed = packed  # (each read of one attribute sees one form)
            self._unsigned = packed_unsigned
        return True

    def _unpark(self) -> None:
        """The models unpacked and kept (a change is coming)."""
        self._signed = _model(self._signed)
        self._unsigned = _model(self._unsigned)

    @property
    def offline(self) -> ResponseKeys:
        """The imported signed key response (used under offline-ksk).  Kept only once the
        policy has an offline KSK: for any other zone (the status page asks every zone)
        an empty one, as a response never loaded is, and not kept."""
        if self._offline is None:
            made = ResponseKeys(self.origin, self.key_dir)
            if not self.policy.offline_ksk:
                return made
            self._offline = made
        return self._offline

    def _response_rdatas(self) -> set[bytes]:
        """The key set records of the imported response (none before one is used)."""
        return self._offline.keyset_rdatas() if self._offline is not None else set()

    # -- files --------------------------------------------------------------------------

    @property
    def copy_path(self) -> Path:
        return self.state_dir / f"{self.name.rstrip('.') or 'root'}.source"

    @property
    def signed_path(self) -> Path:
        return self.state_dir / f"{self.name.rstrip('.') or 'root'}.signed"

    @property
    def file_copy(self) -> Zone | None:
        """The source file as last applied (None: none yet)."""
        if self._copy_unread:
            self._file_copy = zonefile.read_zone(self.copy_path, self.origin)
            self._copy_unread = False  # (after the read: a failed one is tried again)
        return self._file_copy

    @file_copy.setter
    def file_copy(self, zone: Zone | None) -> None:
        self._file_copy, self._copy_unread = zone, False

    def restore(self, lines: Iterable[str] | Zone | None) -> None:
        """Start from the journal's current version (``lines``, or the version itself
        when it was kept packed; None when the journal does not know the zone) and the
        copy of the source file applied last.  When the copy
        says it was made from the source file as it is now (same file, size and times,
        see :func:`_source_stamp`), neither is read: the version restored already holds
        that file's data, and the copy is read only once the file changes."""
        if lines is None:
            return
        self.signed = lines if isinstance(lines, Zone) else zone_from_lines(lines, self.origin)
        self.unsigned = self._strip(self.signed)
        try:
            with self.copy_path.open(encoding="utf-8", errors="replace") as f:
                first = f.readline()
        except FileNotFoundError:
            return
        except OSError as e:
            raise ZoneProblem(f"{self.copy_path}: {e.strerror or e}") from None
        self._copy_unread = True
        if first.startswith(STAMP_HEADER):
            self._copy_stamp = first[len(STAMP_HEADER) :].strip()
        try:
            st = self.source.stat()
        except OSError:
            st = None  # the maintenance says why
        stamp = _source_stamp(st, time.time_ns()) if st is not None else None
        if st is not None and stamp is not None and stamp == self._copy_stamp:
            self.file_sig = (st.st_mtime_ns, st.st_size)  # taken: _read_source skips it
            self._read_stamp = stamp
            return
        self.file_copy  # noqa: B018  (read now, as before: the source is read next)

    def _strip(self, zone: Zone) -> Zone:
        """``zone`` without what the server manages (foreign key-set records stay).  Ours:
        the keys in the key directory, and any DNSKEY that signs in ``zone`` (so a key
        whose files went missing is never mistaken for a peer's), at the apex only: CDS and
        CDNSKEY below it are data (a signaling zone's ``_dsboot`` records, RFC 9615)."""
        ours: set[bytes] | None = None  # made (keys loaded) only if the apex has a key set
        origin = zone.origin
        out: dict[dns.name.Name, dict[int, RRset]] = {}
        # The zone's RRsets are kept as they are (canonical already), filtered only.
        for name, node in zone.rrsets.items():
            kept: dict[int, RRset] = {}
            for t, rr in node.items():
                if t in SIGNER_TYPES or _is_signing_state(t, name, origin):
                    continue
                keep = rr
                if t in KEYSET_TYPES and name == origin:
                    if ours is None:
                        ours = self._our_keyset_rdatas() | signer_keyset_rdatas(zone)
                    rdatas = tuple(rd for rd in rr.rdatas if rd not in ours)
                    if not rdatas:
                        continue
                    if len(rdatas) != len(rr.rdatas):
                        keep = RRset(rr.name, t, rr.ttl, rdatas)
                kept[t] = keep
            if kept:
                out[name] = kept
        return Zone(origin, out, {}, zone.rdclass)

    def online_signer(self) -> Callable[[dns.rrset.RRset], dns.rrset.RRset | None] | None:
        """For a signaling zone answered online (:func:`dnsseal.proto.signaling.online_answer`):
        a function that signs one RRset now with the keys that sign the zone's data in the
        plan of the version served, as the next re-sign would (None before the first plan).
        Thread-safe: it only reads the keys captured here and the clock."""
        plan = self.plan
        if plan is None:  # under offline-ksk the plan's signers are the online ZSKs
            return None
        keys = self._signing_keys(plan)
        origin = self.origin

        def sign(rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
            now = clock.now()
            params = self._params(now, self.serial_method)
            wires = canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in rrset)
            model = RRset(rrset.name.canonicalize(), int(rrset.rdtype), rrset.ttl, wires)
            owner = canonical.name_wire(model.name)
            made = sign_rrsets([(model, owner, labels_field(model.name))], {}, keys, params,
                               now, origin, IN)  # fmt: skip
            sigs = made.sigs.get(model.name, {}).get(model.rtype)
            if sigs is None or not sigs.rdatas:
                return None
            out = dns.rrset.RRset(rrset.name, IN, T.RRSIG, rrset.rdtype)
            for w in sigs.rdatas:
                out.add(dns.rdata.from_wire(IN, T.RRSIG, w, 0, len(w)), sigs.ttl)
            return out

        return sign

    def _our_keyset_rdatas(self) -> set[bytes]:
        """DNSKEY, CDS and CDNSKEY RDATA of every key in the key directory, and DELETE."""
        out = {canonical.rdata_wire(CDS_DELETE), canonical.rdata_wire(CDNSKEY_DELETE)}
        digests, cdnskey = tuple(self.policy.cds_digest_types), self.policy.cdnskey
        for k in self._load_keys():
            out.update(wire for _, wire in key_record_wires(k, digests, cdnskey))
            out.add(dnskey_rdata_wire(k))
        return out | self._response_rdatas()

    def _load_keys(self) -> list[Key]:
        if not self.key_dir.is_dir():
            try:
                self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise ZoneProblem(f"{self.key_dir}: cannot create key directory: {e}") from None
        return self.keydir.keys(self.origin)

    def _read_source(self) -> Zone | None:
        """The source file when it changed since the last call (None: unchanged)."""
        try:
            st = self.source.stat()
        except OSError as e:
            raise ZoneProblem(f"{self.source}: {e.strerror or e}") from None
        sig = (st.st_mtime_ns, st.st_size)
        if sig == self.file_sig:
            return None
        zone = zonefile.read_zone(self.source, self.origin)
        self.file_sig = sig
        self._read_stamp = _source_stamp(st, time.time_ns())
        if self.signed is None and T.SOA in zone.rrsigs.get(zone.origin, {}):
            # A signed source (BIND with inline-signing no signs its file in place): that
            # serial was served with other signatures; ours must come after it.
            self._signed_source = zone.soa().serial
        return self._strip(zone)

    # -- keys ---------------------------------------------------------------------------

    def _key_records(self, key: Key, *, cds: bool) -> list[dns.rdata.Rdata]:
        """CDS (per the policy's digest types) and CDNSKEY for ``key``."""
        if not cds:
            return []
        wires = key_record_wires(key, tuple(self.policy.cds_digest_types), self.policy.cdnskey)
        return [dns.rdata.from_wire(IN, T.RdataType(rt), w, 0, len(w)) for rt, w in wires]

    def _check_key_files(self, keys: Sequence[Key]) -> None:
        """A key this zone was signed with must still have its files: never replace it."""
        have = {dnskey_rdata_wire(k) for k in keys} | self._response_rdatas()
        missing = []
        for name in self.keydir.missing_keys(self.origin):  # (its listing: no stat, no scan)
            missing.append(f"{name} (its .state file is there)")
        if self.signed is not None and self.unsigned is not None:
            served = self.signed.get(self.origin, T.DNSKEY)
            foreign = self.unsigned.get(self.origin, T.DNSKEY)
            foreign_set = set(foreign.rdatas) if foreign else set()
            for wire in served.rdatas if served else ():
                if wire not in have and wire not in foreign_set:
                    rd = dns.rdata.from_wire(IN, T.DNSKEY, wire, 0, len(wire))
                    tag = dns.dnssec.key_id(rd)  # type: ignore[arg-type]
                    missing.append(f"the key files of DNSKEY {tag} (served now)")
        if missing:
            raise ZoneProblem(
                f"missing key file(s) in {self.key_dir}: {', '.join(missing)}; restore them "
                "(dnsseal never generates a key to replace a missing one)"
            )

    def _step(self, now: int) -> Plan:
        """One key manager step: the zone's keys read (from the key directory's listing
        and cache), the plan made by the pure key manager (new key material from the key
        store, no file touched), then carried out by :meth:`KeyDirectory.apply`, which
        does every write of the step.  Raises DnssealError (ZoneProblem, StorageError,
        KeyExists, CryptoError); the facts then wait for the next step."""
        # (read here, once per zone: from the plan to the signed version no file is read)
        self._previous_server_serial()
        if self.policy.offline_ksk:
            return self._offline_step(now)
        keys = self._load_keys()
        self._check_key_files(keys)
        plan = step(self.policy, keys, Facts(tuple(self.pending)), now, zone=self.origin,
                    keygen=keydir_generate)  # fmt: skip
        self.keydir.apply(plan, keys)
        self.pending = []
        events = self.events
        for r in plan.keys:
            for change in r.changes:
                events.append(AuditEvent(now, self.name, r.key.basename, "keymgr", change))
            if r.changes:  # one line a key a step (a new key has 7 changes), each audited
                log.info("[%s] DNSSEC: key %d: %s", self.name, r.key.tag, "; ".join(r.changes))
        for f in plan.problems:
            if f.severity is Severity.ERROR:
                log.error("[%s] DNSSEC: %s", self.name, f.message)
        if plan.pending and (self.plan is None or self.plan.pending != plan.pending):
            log.info("[%s] DNSSEC: manual-mode: step waiting for `dnsseal ctl dnssec -step %s`: "
                     "%s", self.name, self.name, "; ".join(plan.pending))  # fmt: skip
        self.plan = _retained(plan)
        self.keys = [r.key for r in plan.keys if not r.purge]
        return plan

    def _offline_step(self, now: int) -> Plan:
        """The key manager's step under an offline KSK (:mod:`dnsseal.server.offlineksk`)."""
        keys = self._load_keys()
        self.plan = self.offline.step(self.policy, keys, now)
        self.pending = []
        self.keys = keys
        return self.plan

    def _keyset_from_response(self, zone: Zone) -> Zone:
        return self.offline.install(zone) if self.policy.offline_ksk else zone

    def _signing_keys(self, plan: Plan) -> list[SigningKey]:
        """The keys for the signer: published per the plan's DNSKEY set, signing the key
        set when the plan has the key's KRRSIG, the rest when it has its ZRRSIG (not by
        the key's ksk/zsk role: during a CSK roll the two differ)."""
        pub = {k.id for k in plan.dnskeys}
        ksk = {k.id for k in plan.ksk_signers}
        zsk = {k.id for k in plan.zsk_signers}
        out = []
        for k in self.keys:
            active = (k.id in ksk or k.id in zsk) and k.id in pub and k.private is not None
            key = _plan_role(k, k.id in ksk, k.id in zsk) if active else k
            out.append(SigningKey(key, publish=k.id in pub, active=active))
        return out

    def _signing_state(self, plan: Plan, keys: Sequence[SigningKey], full: bool) -> RRset | None:
        """The signing-state records of the next version (``full``: every key signs all)."""
        return sstate.next_rrset(
            self.origin,
            self.signed,
            published={(k.algorithm, k.tag) for k in plan.dnskeys},
            signing={(k.key.algorithm, k.key.tag) for k in keys if k.active},
            full=full,
            settled={(k.key.algorithm, k.key.tag) for k in keys if k.active and _settled(k)},
        )

    def signing_states(self) -> list[sstate.SigningState]:
        """The signing-state records of the version served (``signing -list``)."""
        return sstate.states_of(self.signed)[0] if self.signed is not None else []

    def _keyset_records(self, plan: Plan, base: Zone) -> dict[int, RRset]:
        """The CDS and CDNSKEY RRsets to publish (ours plus a peer's from ``base``)."""
        ttl = self.policy.dnskey_ttl
        rdatas: dict[int, set[bytes]] = {T.CDS: set(), T.CDNSKEY: set()}
        if plan.cds_delete:
            rdatas[T.CDS].add(canonical.rdata_wire(CDS_DELETE))
            rdatas[T.CDNSKEY].add(canonical.rdata_wire(CDNSKEY_DELETE))
        else:
            for k in plan.cds:
                for rd in self._key_records(k, cds=True):
                    rdatas[int(rd.rdtype)].add(canonical.rdata_wire(rd))
            for t in (T.CDS, T.CDNSKEY):
                peer = base.get(base.origin, t)
                if peer is not None:
                    rdatas[t] |= set(peer.rdatas)
        return {
            t: RRset(base.origin, t, ttl, canonical.canonical_rdatas(rds))
            for t, rds in rdatas.items()
            if rds
        }

    # -- signing ------------------------------------------------------------------------

    def _params(self, now: int, serial: str) -> SignParams:
        pol = self.policy
        validity = pol.signatures_validity
        shortest = min(validity, pol.signatures_validity_dnskey)
        refresh = min(pol.signatures_refresh, shortest - 1)
        # Jitter never reaches into the refresh window: that would re-sign at once.
        jitter = max(0, min(pol.signatures_jitter, (shortest - refresh) // 2))
        nsec3 = None
        if pol.nsec3param is not None:
            p = pol.nsec3param
            salt = self._current_salt(p.salt_length)
            nsec3 = Nsec3Params(salt=salt, iterations=p.iterations, opt_out=p.optout)
        return SignParams(
            inception=now - BACKDATE,
            expiration=now + validity,
            keyset_expiration=now + pol.signatures_validity_dnskey,
            jitter=jitter,
            refresh=refresh,
            nsec3=nsec3,
            serial=serial,
            ksk_only=True,
            dnskey_ttl=self._dnskey_ttl(),
        )

    def _dnskey_ttl(self) -> int:
        ttl = self.offline.dnskey_ttl() if self.policy.offline_ksk else None
        return ttl if ttl is not None else self.policy.dnskey_ttl  # the response's TTL

    def _current_salt(self, length: int) -> bytes:
        """Keep the salt in use when its length still fits the policy (a new salt means a
        whole new chain)."""
        if self.signed is not None:
            param = self.signed.get(self.origin, T.NSEC3PARAM)
            if param is not None and param.rdatas:
                wire = param.rdatas[0]
                salt = wire[5 : 5 + wire[4]]
                if len(salt) == length:
                    return salt
        return os.urandom(length)

    def _input(
        self, plan: Plan, serial: int | None, keep_sigs: bool, keys: Sequence[SigningKey]
    ) -> Zone:
        """What to sign: the data, our CDS/CDNSKEY, the peer's DNSKEYs, the signing-state
        records, the signatures of the version served (kept while valid) and the serial to
        continue from."""
        assert self.unsigned is not None
        base = self.unsigned
        rrsets = {n: dict(node) for n, node in base.rrsets.items()}
        apex = rrsets[base.origin]
        for t in (T.CDS, T.CDNSKEY, sstate.PRIVATE_TYPE):
            apex.pop(t, None)
        apex.update(self._keyset_records(plan, base))
        state = self._signing_state(plan, keys, full=not keep_sigs)
        if state is not None:
            apex[sstate.PRIVATE_TYPE] = state
        sigs = self.signed.rrsigs if self.signed is not None and keep_sigs else {}
        zone = Zone(base.origin, rrsets, sigs, base.rdclass)
        if serial is not None:
            zone = _with_serial(zone, serial)
        return zone

    def _previous_server_serial(self) -> int | None:
        """The highest serial another server (BIND) served for this zone from the same
        source file, read once from the files it left beside it (``file.signed``, its
        journal, ``file.jnl``), or the serial of a source file that came signed; None
        when there are none."""
        if self._served_before is False:
            found = bindserial.bind_serials(self.source, self.name)
            self._served_before = bindserial.highest(list(found.values()))
            if found:
                where = ", ".join(f"{p.name} {s}" for p, s in found.items())
                log.info("[%s] serial served before by BIND: %s", self.name, where)
        assert not isinstance(self._served_before, bool)
        if self._signed_source is None:
            return self._served_before
        known = [self._signed_source]
        return bindserial.highest(known + ([self._served_before] if self._served_before else []))

    def _continue_from(self, serial: int) -> tuple[int, bool]:
        """``serial`` (the version served or the source's), or the serial BIND served when
        that is newer; True when the signer must step past it (the served serial never goes
        back, or secondaries that have BIND's stop following)."""
        before = self._previous_server_serial()
        if before is not None and ((before - serial) & 0xFFFFFFFF) < 2**31:
            if before != serial or self.signed is None:
                log.info("[%s] continuing after serial %d (served by BIND)", self.name, before)
            return before, True
        return serial, False

    def _behind_bind(self, zone: Zone) -> bool:
        """Is ``zone``'s serial (a version restored from the journal) not newer than one
        BIND served since?  Then it must not be served again as it is."""
        before = self._previous_server_serial()
        return before is not None and ((before - zone.soa().serial) & 0xFFFFFFFF) < 2**31

    def _sign(self, plan: Plan, now: int, keep_sigs: bool = True) -> Zone:
        prev = self.signed
        serial: int | None = None
        if prev is not None and self.unsigned is not None:
            serial = prev.soa().serial
            # A source serial ahead of ours wins (an operator's choice); never go back.
            src = self.unsigned.soa().serial
            if ((src - serial) & 0xFFFFFFFF) < 2**31:
                serial = src
        assert self.unsigned is not None
        serial, past_bind = self._continue_from(
            serial if serial is not None else self.unsigned.soa().serial
        )
        keys = self._signing_keys(plan)
        zone = self._input(plan, serial, keep_sigs, keys)
        if not any(k.active for k in keys):
            if plan.ksk_signers or plan.zsk_signers:
                raise ZoneProblem(
                    "no key can sign (private key missing?): "
                    + "; ".join(f.message for f in plan.problems)
                )
            # Unsigned (the end of going insecure): data only, with a new serial.
            plain = Zone(zone.origin, zone.rrsets, {}, zone.rdclass)
            new = (
                next_serial(plain.soa().serial, self.serial_method, now)
                if prev or past_bind
                else None
            )
            return _with_serial(plain, new) if new is not None else plain
        # The first version keeps the source's serial under "increment"; unixtime and date
        # apply at once, as named serves its first signed version (checked against 9.18).
        first = "keep" if self.serial_method == "increment" else self.serial_method
        params = self._params(now, self.serial_method if prev is not None or past_bind else first)
        if self.policy.offline_ksk:
            zone = self.offline.prepare(zone)
        signed = counters.timed_sign(
            self.name, "full", _sign_full, zone, keys, params, now, prev if keep_sigs else None
        )
        return self._keyset_from_response(signed)

    def _timers(self, zone: Zone, now: int) -> None:
        if self.policy.offline_ksk:  # the key set's signatures are renewed by bundles
            zone = without_keyset_sigs(zone)
        exps = sig_expirations(zone, now)
        self.sig_horizon = min(exps) if exps else None
        refresh = min(self.policy.signatures_refresh, self.policy.signatures_validity - 1)
        self.next_resign = max(now + 1, min(exps) - refresh + 1) if exps else None

    def _finish(self, new: Zone, now: int, reason: str, change: ZoneDiff | None = None) -> Version:
        """Make ``new`` the served version (``change``: its diff, when already known)."""
        prev = self.signed
        known = change is not None
        if change is None:
            change = diff(prev, new) if prev is not None else ZoneDiff((), ())
        version = Version(new, change, prev.soa().serial if prev else None, reason)
        self.signed = new
        self.last_signed = now
        if known and prev is not None and self.sig_horizon is not None:
            self._timers_after(change, now)
        else:
            self._timers(new, now)
        return version

    def _timers_after(self, change: ZoneDiff, now: int) -> None:
        """:meth:`_timers` from the signatures a change added (O(change)): the earliest
        expiration can only come sooner through them.  (One that went keeps the horizon
        where it was: the timer then runs early, finds nothing due and looks again.)"""
        assert self.sig_horizon is not None
        exps = [self.sig_horizon]
        exps += [absolute_time(int.from_bytes(r[3][8:12], "big"), now)
                 for r in change.added if r[1] == T.RRSIG]  # fmt: skip
        if self.policy.offline_ksk:
            exps = exps[:1]  # the key set's signatures are renewed by bundles
        self.sig_horizon = min(exps)
        refresh = min(self.policy.signatures_refresh, self.policy.signatures_validity - 1)
        self.next_resign = max(now + 1, self.sig_horizon - refresh + 1)

    def take_events(self) -> list[AuditEvent]:
        """The key events since the last call (for the audit log)."""
        out, self.events = self.events, []
        return out

    def maintain(self, now: int, *, reason: str = "resign", force: bool = False) -> Version | None:
        """Re-read the source if it changed, run the key manager, re-sign what is due.
        Returns the new version, or None when the zone served stays right as it is
        (``force``: re-sign every RRset and make a new version anyway).  Raises
        ZoneProblem, FileFormatError or StorageError; then nothing changed."""
        self._unpark()
        saved = (self.unsigned, self.file_sig)
        try:
            return self._maintain(now, reason, force)
        except BaseException:
            self.unsigned, self.file_sig = saved  # nothing changed: the edits come again
            raise
        finally:
            self.park()

    def _maintain(self, now: int, reason: str, force: bool) -> Version | None:
        try:
            new_file = self._read_source()
            self.source_problem = None
        except DnssealError as e:
            if self.unsigned is None:
                raise
            # A bad edit must not stop the signatures from being refreshed: keep signing
            # the data we have and say why the file was not taken.
            self.source_problem = str(e)
            log.error("[%s] source not reloaded (still serving the previous data): %s",
                      self.name, e)  # fmt: skip
            new_file = None
        edits: ZoneDiff | None = None
        if new_file is not None:
            if self.unsigned is None or self.file_copy is None:
                self.unsigned = new_file
            else:
                edits = data_diff(self.file_copy, new_file)
                self.unsigned = self._apply_file_edits(new_file, edits)
        assert self.unsigned is not None
        plan = self._step(now)
        if new_file is None and not force and self._still_served(plan, now):
            assert self.signed is not None
            self._timers(self.signed, now)  # what a pass finding only the SOA changed did
            return None
        incremental = not force and not self.policy.offline_ksk
        if edits is not None and incremental and self._keyset_unchanged(plan):
            new = self._sign_edits(edits, plan, now)
        else:
            new = self._sign(plan, now, keep_sigs=not force)
        if new_file is not None:
            self.file_copy = new_file
            # written by save_source_copy, after the journal; a restart reads the file again
            # and finds no edit: the copy on disk is already this one
            self.copy_dirty = self.copy_dirty or edits is None or bool(edits)
        prev = self.signed
        if prev is not None and not force:
            change = diff(prev, new)
            if (not change or only_soa(change, self.origin)) and not self._behind_bind(prev):
                self._timers(prev, now)
                return None
        why = "reload" if new_file is not None and reason == "resign" else reason
        return self._finish(new, now, why)

    def _still_served(self, plan: Plan, now: int) -> bool:
        """Would a signing pass now (keeping signatures, :meth:`_sign`) change nothing but
        the SOA serial of the version served?  Then :meth:`maintain` need not make it only
        to throw it away (a restart of many zones made one per zone).  True only when the
        records the signer starts from (the data, our DNSKEY, CDS, CDNSKEY, signing-state
        records, NSEC3PARAM: :func:`~dnsseal.signer.sign.prepare_zone` of the pass's input)
        are those served, the chain is of the policy's kind, no signature is due (inception
        passed, expiration beyond the refresh window) and every signed RRset carries one
        signature of each key the plan has sign it, no other.  Anything else: False (the
        pass runs, as before).  Raises what the pass would raise for unusable keys."""
        prev = self.signed
        if prev is None or self.unsigned is None or self.policy.offline_ksk:
            return False
        origin = prev.origin
        prev_apex_sigs = prev.rrsigs.get(origin, {})
        if T.SOA not in prev_apex_sigs or T.DNSKEY not in prev_apex_sigs:
            return False
        keys = self._signing_keys(plan)
        if not any(k.active for k in keys) or self._behind_bind(prev):
            return False
        params = self._params(now, self.serial_method)
        zone = self._input(plan, prev.soa().serial, True, keys)
        check_keys(zone, keys, params)  # (what sign_zone raises first)
        refresh = validity(params, now)[2]
        data = _with_serial(prepare_zone(zone, keys, params, now), prev.soa().serial)
        # The data (SOA, key sets and NSEC3PARAM included) as served, the chain aside.
        found = 0  # names of the data served
        for name, node in prev.rrsets.items():
            want = data.rrsets.get(name)
            have = {t: (r.ttl, r.rdatas) for t, r in node.items() if t not in CHAIN_TYPES}
            if want is None:
                if have:
                    return False
                continue
            found += 1
            if len(want) != len(have):
                return False
            for t, r in want.items():
                if have.get(t) != (r.ttl, r.rdatas):
                    return False
        if found != len(data.rrsets):
            return False
        # The chain: the policy's kind, its TTL (and NSEC3 flags) as the signer makes them.
        apex = prev.rrsets[origin]
        ttl = data.soa().negative_ttl
        if params.nsec3 is None:
            nsec = apex.get(T.NSEC)
            if nsec is None or nsec.ttl != ttl:
                return False
        else:
            if T.NSEC in apex:
                return False
            flags = params.nsec3.flags
            for node in prev.rrsets.values():
                n3 = node.get(T.NSEC3)
                if n3 is not None and (n3.ttl != ttl or any(w[1] != flags for w in n3.rdatas)):
                    return False
        # The signatures: exactly one per signing key, none due.
        who = assign(keys, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
        keyset = sorted((keys[i].key.algorithm, keys[i].key.tag) for i in who.keyset)
        other = sorted((keys[i].key.algorithm, keys[i].key.tag) for i in who.other)
        if not keyset or not other:
            return False
        unpack = struct.Struct("!IIH").unpack_from  # expiration, inception, key tag
        for node in prev.rrsigs.values():
            for t, rr in node.items():
                got = []
                for w in rr.rdatas:
                    if len(w) < 18:
                        return False
                    exp, inc, tag = unpack(w, 8)
                    if absolute_time(inc, now) > now or absolute_time(exp, now) - now <= refresh:
                        return False
                    got.append((w[2], tag))
                if sorted(got) != (keyset if t in KEYSET_TYPES else other):
                    return False
        return True

    def source_copy_due(self) -> bool:
        """Will :meth:`save_source_copy` write the copy (or its stamp)?"""
        restamp = self._read_stamp is not None and self._read_stamp != self._copy_stamp
        return self.copy_dirty or restamp

    def save_source_copy(self) -> None:
        """Write the copy of the source file applied last.  Call it once the version made
        from it is in the journal: after a crash in between, the edits are applied again
        (written first, they would be taken as applied and lost)."""
        if self.source_copy_due() and self.file_copy is not None:
            # the stamp of the file read last: file_copy is that file (see restore)
            stamp = self._read_stamp
            header = [f"{STAMP_HEADER[2:]}{stamp}"] if stamp is not None else []  # "; " added
            zonefile.write_zone(self.copy_path, self.file_copy, header=header)
            self.copy_dirty = False
            self._copy_stamp = stamp
            # The copy on disk is this one: read it back when the source changes next (as
            # after a restart) rather than keep it (a small zone's copy is as large as its
            # packed versions together).
            self._file_copy, self._copy_unread = None, True

    def _keyset_unchanged(self, plan: Plan) -> bool:
        """Would the plan's CDS/CDNSKEY sets and the signing-state records leave the
        served ones as they are?"""
        if self.signed is None or self.unsigned is None:
            return False
        wanted = self._keyset_records(plan, self.unsigned)
        state = self._signing_state(plan, self._signing_keys(plan), full=False)
        if state is not None:
            wanted[sstate.PRIVATE_TYPE] = state
        for t in (T.CDS, T.CDNSKEY, sstate.PRIVATE_TYPE):
            have = self.signed.get(self.origin, t)
            want = wanted.get(t)
            if (have.rdatas if have else ()) != (want.rdatas if want else ()):
                return False
        return True

    def _sign_edits(self, edits: ZoneDiff, plan: Plan, now: int) -> Zone:
        """The source file's edits applied to the served version by
        :func:`~dnsseal.signer.sign_changes` (only what they touch is re-signed)."""
        assert self.signed is not None and self.unsigned is not None
        keys = self._signing_keys(plan)
        if not any(k.active for k in keys):
            return self._sign(plan, now)
        old_soa = self.signed.get(self.origin, T.SOA)
        assert old_soa is not None
        serial = self.signed.soa().serial
        src = self.unsigned.soa().serial
        if ((src - serial) & 0xFFFFFFFF) < 2**31:
            serial = src  # the operator's serial is ahead: continue from it
        serial = self._continue_from(serial)[0]
        new_soa = _with_serial(self.unsigned, serial).get(self.origin, T.SOA)
        assert new_soa is not None
        soa_out = tuple((self.origin, T.SOA, old_soa.ttl, rd) for rd in old_soa.rdatas)
        soa_in = tuple((self.origin, T.SOA, new_soa.ttl, rd) for rd in new_soa.rdatas)
        change = ZoneDiff(edits.removed + soa_out, edits.added + soa_in)
        params = self._params(now, self.serial_method)
        result = counters.timed_sign(
            self.name, "incremental", sign_changes, self.signed, change, keys, params, now
        )
        log.info(
            "[%s] reload: %d records out, %d in, signed incrementally",
            self.name,
            len(edits.removed),
            len(edits.added),
        )
        return result.zone

    def _apply_file_edits(self, new_file: Zone, edits: ZoneDiff) -> Zone:
        """``unsigned`` with the source file's ``edits`` (SOA fields but the serial from
        ``new_file``: the serial follows the file only when it moves ahead of ours)."""
        assert self.unsigned is not None
        merged = apply(self.unsigned, edits)
        return _with_serial(merged, new_file.soa().serial, soa_from=new_file)

    def update(self, change: ZoneDiff, now: int) -> Version:
        """Apply a dynamic update's change (already checked) and re-sign incrementally.
        The apex signing-state records are the server's: an update's additions or
        deletions of them are ignored (as BIND ignores them)."""
        self._unpark()
        try:
            return self._update(change, now)
        finally:
            self.park()

    def _update(self, change: ZoneDiff, now: int) -> Version:
        assert self.unsigned is not None and self.signed is not None and self.plan is not None
        change = self._without_signing_state(change)
        unsigned = apply(self.unsigned, change)
        keys = self._signing_keys(self.plan)
        if not any(k.active for k in keys):
            self.unsigned = unsigned
            prev = self.signed
            plain = _with_serial(unsigned, next_serial(prev.soa().serial, self.serial_method, now))
            return self._finish(plain, now, "update")
        # Until the re-signing timer is due, no kept signature needs refreshing and the
        # keys are the plan's: the signer may fix the chain where the change is (O(change)).
        fresh = self.next_resign if not self.policy.offline_ksk else None
        params = self._params(now, self.serial_method)
        signed = counters.timed_sign(
            self.name, "incremental", sign_changes, self.signed, change, keys, params, now,
            fresh_until=fresh,
        )  # fmt: skip
        self.unsigned = unsigned
        if self.policy.offline_ksk:
            return self._finish(self._keyset_from_response(signed.zone), now, "update")
        return self._finish(signed.zone, now, "update", signed.diff)

    def _without_signing_state(self, change: ZoneDiff) -> ZoneDiff:
        def ours(rec: Record) -> bool:
            return _is_signing_state(rec[1], rec[0], self.origin)

        if not any(ours(r) for r in (*change.removed, *change.added)):
            return change
        log.info("[%s] update: TYPE65534 at the apex is the server's; ignored", self.name)
        return ZoneDiff(
            tuple(r for r in change.removed if not ours(r)),
            tuple(r for r in change.added if not ours(r)),
        )

    def clear_signing_state(self, which: sstate.KeyRef | None, now: int) -> Version | None:
        """``signing -clear``: a version without the completed signing-state records (of
        key ``which``, all when None), re-signed incrementally; None when there are none
        to clear."""
        self._unpark()
        try:
            return self._clear_signing_state(which, now)
        finally:
            self.park()

    def _clear_signing_state(self, which: sstate.KeyRef | None, now: int) -> Version | None:
        assert self.signed is not None and self.plan is not None
        gone = tuple(sstate.cleared_records(self.signed, which))
        if not gone:
            return None
        keys = self._signing_keys(self.plan)
        result = sign_changes(
            self.signed, ZoneDiff(gone, ()), keys, self._params(now, self.serial_method), now
        )
        if self.policy.offline_ksk:
            return self._finish(self._keyset_from_response(result.zone), now, "signing -clear")
        return self._finish(result.zone, now, "signing -clear", result.diff)

    def request(self, fact: Fact) -> None:
        """Queue a fact (DS seen / withdrawn, rollover) for the next key manager step."""
        self.pending.append(fact)

    def next_wakeup(self) -> int | None:
        """When :meth:`maintain` should run next (key event or signature refresh)."""
        times = [t for t in (self.next_resign, self.plan.next_event if self.plan else None) if t]
        return min(times) if times else None
