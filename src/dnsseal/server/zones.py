"""Loading the configured zones into snapshots, keeping older versions for IXFR.

A :class:`ZoneSet` is rebuilt on every (re)load from the config: a zone whose file did not
change keeps its snapshot; a zone with a new serial gets a new snapshot and the old one goes
into its history; a zone that fails to load keeps serving its previous version (and the
error is reported), so a bad edit never takes a zone down.
"""

from __future__ import annotations

import logging

import dns.rdatatype

from dnsseal.durations import format_human_time
from dnsseal.errors import DnssealError
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model
from dnsseal.server.zonehandle import (  # (ZoneState and the rest: re-exported for callers)
    ZoneHandle,
    ZoneState,
    is_signed,
    keyring_of,
    transfer_acl,
)
from dnsseal.server.zoneload import read_snapshot
from dnsseal.storage.serverconfig import file_signature
from dnsseal.zone.model import Zone

__all__ = ["ZoneHandle", "ZoneState", "keyring_of", "transfer_acl"]

log = logging.getLogger(__name__)

WAITING = "waiting for the first transfer from the primaries"
EXPIRED = "expired: no primary answered within the SOA expire time"


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
        # Wire-based all the way (fast master-file path, no dnspython object per record):
        # a 100k-host signed zone loads in seconds, not minutes; a large file is parsed in
        # a child process at the start (the parser's leftovers stay there).
        snap = read_snapshot(cfg.file, cfg.name, sig[1])
    except DnssealError as e:
        return False, str(e)
    if require_signed and not cfg.secondary and not is_signed(snap):
        return False, (
            f"{cfg.file} is not signed (no DNSKEY and RRSIGs at the apex) but the zone is "
            "configured presigned: give it a dnssec-policy to sign it here, or serve a file "
            "signed by `dnsseal signzone` or dnssec-signzone"
        )
    state.signature = sig
    return state.serve_loaded(snap, versions, now), None


def read_copy(state: ZoneState, zone: Zone) -> ZoneSnapshot:
    """The snapshot of ``zone``, the secondary's new copy just written to its file (served
    by :meth:`ZoneHandle.serve_loaded`, which also serves an expired zone again), and the
    file's signature noted on ``state`` (in a worker thread)."""
    snap = build_from_model(zone)
    try:
        state.signature = file_signature(state.config.file)
    except OSError:
        state.signature = None
    return snap


def copy_expires_at(state: ZoneState, refreshed: int) -> int | None:
    """When the secondary's copy served now expires (its SOA expire after ``refreshed``,
    the last time a primary answered); None when nothing is served."""
    if state.served is None:
        return None
    soa = state.served.snapshot.apex.rrsets[dns.rdatatype.SOA][0]
    return refreshed + int(soa.expire)


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
    if not state.set_expired(expired):  # (served by the (re)load's one swap)
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


def sync_acl(state: ZoneState) -> None:
    """The config's allow-transfer for the version served now (:meth:`ZoneHandle.sync_acl`)."""
    state.sync_acl()
