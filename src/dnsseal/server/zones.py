"""Loading the configured zones into snapshots, keeping older versions for IXFR.

A :class:`ZoneSet` is rebuilt on every (re)load from the config: a zone whose file did not
change keeps its snapshot; a zone with a new serial gets a new snapshot and the old one goes
into its history; a zone that fails to load keeps serving its previous version (and the
error is reported), so a bad edit never takes a zone down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.name
import dns.rdatatype
import dns.tsig

from dnsseal.durations import format_human_time
from dnsseal.errors import DnssealError
from dnsseal.proto.acl import Acl
from dnsseal.proto.engine import ServedZone
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model
from dnsseal.proto.xfr import Retained
from dnsseal.storage.serverconfig import ServerConfig, ZoneConfig, file_signature
from dnsseal.storage.zonefile import read_zone
from dnsseal.zone.model import Zone
from dnsseal.zone.text import paused_gc

if TYPE_CHECKING:
    from dnsseal.server.inline import InlineZone
    from dnsseal.server.xfrin import Secondary

log = logging.getLogger(__name__)

WAITING = "waiting for the first transfer from the primaries"
EXPIRED = "expired: no primary answered within the SOA expire time"


@dataclass(slots=True)
class ZoneState:
    """What the server knows about one zone between reloads."""

    config: ZoneConfig
    _served: ServedZone | None = None  # the version served (see ``served``)
    signature: tuple[int, int] | None = None
    loaded_at: int = 0
    error: str | None = None
    notify_pending: bool = False
    notify_log: list[str] = field(default_factory=list)
    # Inline signing (zones with a dnssec-policy), driven by server.automation:
    inline: InlineZone | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one change at a time
    # The maintenance the server's one scheduler runs for this zone now (None between
    # runs: a sleeping zone is an entry in that scheduler's heap, not a task of its own;
    # see server.automation); cancelled when the zone goes.
    timer: asyncio.Task[None] | None = None
    checkds_task: asyncio.Task[None] | None = None  # server.checkds (parental agents)
    retry_at: int = 0  # after a failed maintenance: not before this
    parent_log: list[str] = field(default_factory=list)  # checkds: per agent, DS expected/seen
    secondary: Secondary | None = None  # zones with primaries: server.xfrin (bump in the wire)
    frozen: bool = False  # `dnsseal ctl freeze`: dynamic updates refused until thawed
    # Called with this state whenever ``served`` is set: the server notes which zones to
    # hand to the engine at its next swap, so a swap costs the zones that changed.
    on_served: Callable[[ZoneState], None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def served(self) -> ServedZone | None:
        """The version to serve (with its IXFR history and transfer ACL)."""
        return self._served

    @served.setter
    def served(self, value: ServedZone | None) -> None:
        self._served = value
        if self.on_served is not None:
            self.on_served(self)


def keyring_of(config: ServerConfig) -> dict[dns.name.Name, dns.tsig.Key]:
    keys = (k.to_dnspython() for k in config.keys.values())
    return {k.name: k for k in keys}


def load_one(
    state: ZoneState, versions: int, now: int, require_signed: bool = True
) -> tuple[bool, str | None]:
    """(Re)load one zone into ``state``.  Returns (new serial?, problem or None); on a
    problem the zone keeps its previous version."""
    cfg = state.config
    try:
        sig = file_signature(cfg.file)
    except OSError as e:
        return False, f"{cfg.file}: {e.strerror or e}"
    if state.served is not None and sig == state.signature:
        sync_acl(state)
        return False, None
    try:
        with paused_gc():
            # Wire-based all the way (fast master-file path, no dnspython object per
            # record): a 100k-host signed zone loads in seconds, not minutes.
            snap = build_from_model(read_zone(cfg.file, cfg.name))
    except DnssealError as e:
        return False, str(e)
    if require_signed and not cfg.secondary and not _is_signed(snap):
        return False, (
            f"{cfg.file} is not signed (no DNSKEY and RRSIGs at the apex) but the zone is "
            "configured presigned: give it a dnssec-policy to sign it here, or serve a file "
            "signed by `dnsseal signzone` or dnssec-signzone"
        )
    acl = transfer_acl(cfg)
    old = state.served
    history: tuple[Retained, ...] = ()
    new_serial = old is None or old.snapshot.serial != snap.serial
    if old is not None:
        history = old.history
        if new_serial:
            history = (*history, old.snapshot)[-versions:] if versions else ()
        else:
            log.warning(
                "[%s] file changed but serial %d did not: secondaries will not see the change",
                cfg.name,
                snap.serial,
            )
    state.served = ServedZone(snap, history, acl)
    state.signature = sig
    state.loaded_at = now
    return new_serial, None


def install(state: ZoneState, zone: Zone, versions: int, now: int) -> ZoneSnapshot:
    """Serve ``zone``, the secondary's new copy just written to its file: the version
    served until now goes into the IXFR history, and an expired zone is served again.
    Returns the new snapshot (for the journal)."""
    snap = build_from_model(zone)
    old = state.served
    history: tuple[Retained, ...] = ()
    if old is not None:
        history = old.history
        if old.snapshot.serial != snap.serial:
            history = (*history, old.snapshot)[-versions:] if versions else ()
    try:
        state.signature = file_signature(state.config.file)
    except OSError:
        state.signature = None
    state.served = ServedZone(snap, history, transfer_acl(state.config))
    state.loaded_at = now
    return snap


def copy_expires_at(state: ZoneState, refreshed: int) -> int | None:
    """When the secondary's copy served now expires (its SOA expire after ``refreshed``,
    the last time a primary answered); None when nothing is served."""
    if state.served is None:
        return None
    soa = state.served.snapshot.apex.rrsets[dns.rdatatype.SOA][0]
    return refreshed + int(soa.expire)


def set_expired(state: ZoneState, expired: bool) -> bool:
    """Mark the served copy expired (SERVFAIL to every query, as BIND) or live again.
    Returns whether that changed anything."""
    served = state.served
    if served is None or served.expired == expired:
        return False
    state.served = dataclasses.replace(served, expired=expired)
    return True


def refreshed_at(state: ZoneState) -> int | None:
    """When a primary last answered for this secondary, as recorded on its copy in the
    state directory (the file's modification time, as BIND: touched at each refresh that
    found the copy current), so a restart keeps the remaining expire time."""
    try:
        return int(state.config.file.stat().st_mtime)
    except OSError:
        return None


def expire_by_copy(state: ZoneState, now: int) -> bool:
    """A secondary's copy read from its file: expired when its primaries did not answer
    for the SOA expire time (the file's modification time says when one last did), live
    again when one did since.  The main process decides with its refresh loop; this is
    how a restart, and the worker processes (told by SIGHUP), see the same.  Returns
    whether that changed anything."""
    if not state.config.secondary or state.served is None:
        return False
    since = refreshed_at(state)
    end = copy_expires_at(state, since) if since is not None else None
    expired = end is not None and now >= end
    if not set_expired(state, expired):
        return False
    if expired:
        state.error = EXPIRED
        log.error("[%s] the copy expired at %s: answering SERVFAIL until a primary answers",
                  state.name, format_human_time(end or now))  # fmt: skip
    else:
        state.error = None
        log.info("[%s] a primary answered: serving serial %d again", state.name,
                 state.served.snapshot.serial)  # fmt: skip
    return True


def transfer_acl(cfg: ZoneConfig) -> Acl:
    return Acl.parse(f'zone."{cfg.name}".allow-transfer', list(cfg.allow_transfer))


def sync_acl(state: ZoneState) -> None:
    """Serve the version served now under the config's allow-transfer: a reload that
    changed only the config (a secondary added to a catalog's ACL) takes effect at once,
    not at the zone's next new version."""
    acl = transfer_acl(state.config)
    if state.served is not None and acl != state.served.allow_transfer:
        state.served = dataclasses.replace(state.served, allow_transfer=acl)
        log.info("[%s] allow-transfer changed", state.name)


def _is_signed(snap: ZoneSnapshot) -> bool:
    apex = snap.apex
    return dns.rdatatype.DNSKEY in apex.rrsets and dns.rdatatype.SOA in apex.sigs


def preload(config: ServerConfig, now: int) -> dict[str, ZoneState]:
    """Load every configured zone synchronously (before the event loop and before forking
    workers, which then share the loaded snapshots copy-on-write)."""
    from dnsseal.server.catalog import write_all  # (it imports this module)

    write_all(config, now)  # catalog files current before the workers fork and read them
    states: dict[str, ZoneState] = {}
    for zcfg in config.zones:
        state = ZoneState(zcfg)
        if zcfg.policy is not None:  # signed by the running server (server.automation)
            states[zcfg.name] = state
            continue
        if zcfg.secondary and not zcfg.file.exists():
            state.error = WAITING
            states[zcfg.name] = state
            continue
        _, problem = load_one(state, config.ixfr_versions, now)
        state.error = problem
        expire_by_copy(state, now)
        states[zcfg.name] = state
    return states
