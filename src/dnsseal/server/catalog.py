"""Catalog zones (RFC 9432): the zones dnsseal serves, listed for its secondaries.

For each ``[catalog."NAME"]`` (:mod:`dnsseal.storage.catalogconfig`) the main process
writes the catalog zone to ``state-dir/NAME.catalog`` whenever its member list changes
(serial + 1; the first serial is the time, so a lost state directory still moves the serial
forward) and serves it like a presigned zone: AXFR, IXFR from the journal, NOTIFY to its
``also-notify``, its ``allow-transfer`` ACL.  The file is the catalog's state: a restart
with the same members keeps its serial, so secondaries transfer nothing.

The zone, for members ``example.com`` (group ``signed``) and ``example.net``::

    catalog.invalid.  0 SOA invalid. invalid. 1733570000 600 60 2147483646 0
    catalog.invalid.  0 NS invalid.
    version           0 TXT "2"
    <id>.zones        0 PTR example.com.
    group.<id>.zones  0 TXT "signed"
    <id>.zones        0 PTR example.net.

``<id>`` is the SHA-1 of the member's name in canonical wire form, in hex: unique, and the
same after a restart or on another primary (RFC 9432, "Member Node Name Change": a new
id tells the consumer to reset the zone).  Unsigned: consumers check catalogs with TSIG and
ACLs, not DNSSEC (RFC 9432, "Security Considerations").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dns.name
import dns.rdatatype

from dnsseal.errors import DnssealError
from dnsseal.server.zones import ZoneState, load_one
from dnsseal.storage import atomic
from dnsseal.storage.catalogconfig import CatalogConfig
from dnsseal.storage.serverconfig import ServerConfig, ZoneConfig, copy_name
from dnsseal.storage.zonefile import read_text

if TYPE_CHECKING:
    from dnsseal.server.zonehandle import ServerHost

log = logging.getLogger(__name__)

VERSION = "2"  # RFC 9432 schema version
# RFC 9432 example values: a huge expire, so a secondary cut off from us keeps its
# members instead of dropping them all when the catalog expires.
SOA_TIMERS = "600 60 2147483646 0"
_SOA_LINE = re.compile(rf"^@ SOA invalid\. invalid\. (\d+) {SOA_TIMERS}$", re.MULTILINE)


def member_id(zone: str | dns.name.Name) -> str:
    """The unique-N label of ``zone``: hex SHA-1 of its canonical wire name (stable)."""
    name = zone if isinstance(zone, dns.name.Name) else dns.name.from_text(zone)
    return _id_of(name.canonicalize().labels)


def _id_of(canonical: tuple[bytes, ...]) -> str:
    wire = b"".join(bytes((len(label),)) + label for label in canonical)
    return hashlib.sha1(wire, usedforsecurity=False).hexdigest()


def _txt(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def catalog_text(cat: CatalogConfig, serial: int) -> str:
    """The master-file text of catalog ``cat`` at ``serial`` (pure)."""
    origin = dns.name.from_text(cat.name).to_text()
    lines = [
        f"; catalog zone (RFC 9432) written by dnsseal from [catalog.{_txt(cat.name)}]",
        f"$ORIGIN {origin}",
        "$TTL 0",
        f"@ SOA invalid. invalid. {serial} {SOA_TIMERS}",  # _SOA_LINE reads it back
        "@ NS invalid.",
        f"version TXT {_txt(VERSION)}",
    ]
    groups = dict(cat.groups)
    members = []
    for member in cat.members:  # each name parsed once: catalogs of 10,000 zones
        name = dns.name.from_text(member)
        members.append((name.canonicalize().labels, name, member))
    # sorted (DNSSEC order): the same members give the same text, whatever the config's order
    members.sort(key=lambda m: m[0][::-1])
    for canonical, name, member in members:
        mid = _id_of(canonical)
        lines.append(f"{mid}.zones PTR {name.to_text()}")
        group = groups.get(member)
        if group is not None:
            lines.append(f"group.{mid}.zones TXT {_txt(group)}")
    return "\n".join(lines) + "\n"


def catalog_path(config: ServerConfig, cat: CatalogConfig) -> Path:
    """Where the catalog lives: ``state-dir/NAME.catalog``."""
    assert config.state_dir is not None  # storage.catalogconfig requires one
    return config.state_dir / f"{copy_name(cat.name)}.catalog"


def _without_serial(text: str) -> tuple[int | None, str]:
    """The serial of a catalog file this module wrote, and its text without it (None and
    the text as is: not ours).  The text is canonical (members sorted), so two versions
    hold the same records exactly when these texts are equal: a reload of 10,000 members
    compares strings instead of parsing two zones."""
    m = _SOA_LINE.search(text)
    if m is None:
        return None, text
    return int(m.group(1)), text[: m.start(1)] + text[m.end(1) :]


def write_catalog(config: ServerConfig, cat: CatalogConfig, now: int) -> int | None:
    """Write catalog ``cat`` to its file in the state directory when its records differ
    from the file's (serial + 1, or ``now`` for a new file).  Returns the new serial, or
    None when the file was current.  Raises StorageError (cannot write)."""
    path = catalog_path(config, cat)
    _, wanted = _without_serial(catalog_text(cat, 0))
    serial = now % 2**32
    if path.exists():
        try:
            old, text = _without_serial(read_text(path))
        except DnssealError as e:
            old, text = None, ""
            log.warning("[%s] catalog file unreadable, writing a new one: %s", cat.name, e)
        if old is not None:
            if text == wanted:
                return None
            serial = (old + 1) % 2**32 or 1
        else:
            log.warning("[%s] %s is not a catalog dnsseal wrote: replaced", cat.name, path)
    atomic.replace(path, catalog_text(cat, serial).encode())
    return serial


def write_all(config: ServerConfig, now: int) -> None:
    """Bring every catalog file up to date (the main process, before workers fork and
    read them); a problem is logged, the old file stays."""
    for cat in config.catalogs:
        try:
            write_catalog(config, cat, now)
        except DnssealError as e:
            log.error("[%s] catalog not written: %s", cat.name, e)


async def refresh(
    config: ServerConfig,
    zones: dict[str, ZoneState],
    host: ServerHost,
    states: dict[str, ZoneState],
    changed: list[ZoneState],
    now: int,
    problems: list[str],
) -> None:
    """On every (re)load: write each catalog whose members changed (main process only),
    load it into ``states`` like a presigned zone (kept history) and add it to ``changed``
    when its serial moved (the reload's commit journals it for IXFR and sends NOTIFY).
    Problems go to ``problems`` and the log; the catalog keeps its previous version."""
    for cat in config.catalogs:
        path = catalog_path(config, cat)
        zcfg = ZoneConfig(
            cat.name,
            path,
            True,
            allow_transfer=cat.allow_transfer,
            also_notify=cat.also_notify,
            notify_key=cat.notify_key,
        )
        state = zones.get(cat.name) or ZoneState(zcfg)
        state.config = zcfg
        states[cat.name] = state
        started = time.monotonic()
        if not host.worker:
            try:
                serial = await asyncio.to_thread(write_catalog, config, cat, now)
            except DnssealError as e:
                state.error = str(e)
                problems.append(f"{cat.name}: {e}")
                log.error("[%s] catalog not written: %s", cat.name, e)
                continue
            if serial is not None:
                log.info("[%s] catalog: %d members, serial %d", cat.name, len(cat.members), serial)
        new_serial, problem = await asyncio.to_thread(
            load_one, state, config.ixfr_versions, now, False
        )
        state.error = problem
        if problem:
            problems.append(f"{cat.name}: {problem}")
            log.error("[%s] catalog not loaded: %s", cat.name, problem)
            continue
        if not new_serial or state.served is None:
            continue
        snap = state.served.snapshot
        log.info("[%s] loaded catalog serial %d in %.2f s", cat.name, snap.serial,
                 time.monotonic() - started)  # fmt: skip
        changed.append(state)  # (journaled and NOTIFY sent by the reload's commit)
