"""The zone table: every configured zone by name, and handing their versions to the engine.

:class:`ZoneTable` holds the server's config and a
:class:`~dnsseal.server.zonehandle.ZoneHandle` per zone; :meth:`ZoneTable.swap_zones` gives
the query engine (and the worker processes) the versions set since the last swap, one
zone's cost each.  The drivers (maintenance, update, xfrin, checkds, DS automation) reach
the zones through it and the rest of the process through
:class:`~dnsseal.server.zonehandle.ServerHost`, never through the server itself (service.py,
the composition root, builds all of them and nothing imports it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import dns.name

from dnsseal import clock
from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import ZoneSnapshot
from dnsseal.server import catalog
from dnsseal.server.zonehandle import (
    ServerHost,
    ServerPort,
    ZoneHandle,
    commit_zone_set,
    keyring_of,
)
from dnsseal.server.zones import WAITING, expire_by_copy, load_one
from dnsseal.server.zonesync import MainLinks
from dnsseal.storage.serverconfig import ServerConfig
from dnsseal.zone.model import Zone

log = logging.getLogger(__name__)


class Maintainer(Protocol):
    """What a driver started for a zone (xfrin, checkds, DS automation) needs from the
    maintenance that started it (``server.maintenance.Maintenance``)."""

    @property
    def table(self) -> ZoneTable: ...

    @property
    def host(self) -> ServerHost: ...

    async def maintain(self, state: ZoneHandle, reason: str, force: bool = False) -> str | None: ...


class ZoneTable:
    """name -> :class:`ZoneHandle` for the zones of ``config``, served by ``engine``."""

    def __init__(
        self,
        config: ServerConfig,
        engine: Engine,
        zones: dict[str, ZoneHandle] | None = None,
        port: ServerPort | None = None,
        links: MainLinks | None = None,
    ) -> None:
        """``port``: given to every handle the table takes (:meth:`swap_zones`);
        ``links``: the main process's links to its workers (versions pushed to them)."""
        self.config = config
        self.engine = engine
        self.zones: dict[str, ZoneHandle] = dict(zones or {})
        self.port = port
        self.links = links
        self._unswapped: dict[str, ZoneHandle] = {}  # served set since the last swap
        self._pushed: dict[str, ZoneSnapshot] = {}  # inline zone -> version sent to workers

    def swap_zones(self, everything: bool = False) -> None:
        """Serve the current version of every zone whose ``served`` was set since the last
        swap: each costs its own work, not the number of zones.  ``everything`` (after a
        reload replaced the zone set or the config): the whole zone set and the TSIG keys,
        at one comparison per zone for the zones that did not change.  Called by the zone
        handles' commit path only (:class:`~dnsseal.server.zonehandle.Tables`)."""
        if everything:
            self._unswapped = {}
            served: dict[dns.name.Name, ServedZone] = {}
            for state in self.zones.values():
                state.on_served = self._note_served
                state.port = self.port
                if state.served is not None:
                    served[state.served.snapshot.origin] = state.served
            self.engine.set_zones(served, keyring_of(self.config))
            changed = list(self.zones.values())
            self.engine.set_all_pending(  # secondaries waiting for their first transfer
                dns.name.from_text(s.name)
                for s in changed
                if s.config.secondary and s.served is None
            )
        else:
            changed, self._unswapped = list(self._unswapped.values()), {}
            replaced: list[tuple[dns.name.Name, ServedZone | None]] = []
            secondaries: list[tuple[dns.name.Name, bool]] = []
            for state in changed:
                if self.zones.get(state.name) is not state:
                    continue  # no longer configured: the reload that dropped it swapped
                served_now = state.served
                origin = (
                    served_now.snapshot.origin
                    if served_now is not None
                    else dns.name.from_text(state.name)
                )
                replaced.append((origin, served_now))
                if state.config.secondary:
                    secondaries.append((origin, served_now is None))
            self.engine.replace_zones(replaced)  # (the cached answers filtered once for all)
            for origin, pending in secondaries:
                self.engine.set_pending(origin, pending)
        if self.links is not None:
            self._push_inline(changed)
        for state in changed:  # (pushed: a parked zone's model is read from its snapshot)
            if state.inline is not None and state.served is not None:
                state.inline.settle(state.served.snapshot)

    async def reload(
        self, host: ServerHost, initial: bool, problems: list[str]
    ) -> tuple[list[ZoneHandle], list[ZoneHandle]]:
        """Load every zone of :attr:`config` into the handle it has (or a new one): a
        presigned zone or a secondary's copy from its file (recorded in ``host``'s journal
        history when its serial moved), the catalogs from their members; then take the new
        zone set (zones no longer configured stop their drivers) and serve it all, the
        zones with a new version journaled and NOTIFY sent for them
        (:func:`~dnsseal.server.zonehandle.commit_zone_set`: one swap).  A zone with a
        problem keeps its previous version; the problems go to ``problems``.  Returns the
        zones with a new version and the inline-signed ones (for the maintenance to
        start)."""
        states: dict[str, ZoneHandle] = {}
        changed: list[ZoneHandle] = []
        inline: list[ZoneHandle] = []
        now = clock.now()
        for zcfg in self.config.zones:
            state = self.zones.get(zcfg.name) or ZoneHandle(zcfg)
            state.config = zcfg
            if zcfg.policy is not None:
                state.sync_acl()  # a changed allow-transfer applies now (catalogs)
                if not host.worker:
                    inline.append(state)
                states[zcfg.name] = state
                continue
            if zcfg.secondary and not zcfg.file.exists():
                # No copy yet: served once the first transfer is in (server.xfrin).
                state.error = state.error if state.served is not None else WAITING
                states[zcfg.name] = state
                continue
            started = time.monotonic()
            new_serial, problem = await asyncio.to_thread(
                load_one, state, self.config.ixfr_versions, now
            )
            state.error = problem
            if problem is None:
                expire_by_copy(state, now)  # a secondary's copy past its expire time
            if problem:
                problems.append(f"{zcfg.name}: {problem}")
                log.error("[%s] not loaded: %s", zcfg.name, problem)
            elif (new_serial or initial) and state.served is not None:
                snap = state.served.snapshot
                log.info("[%s] loaded serial %d (%d names) in %.2f s", zcfg.name, snap.serial,
                         len(snap.nodes), time.monotonic() - started)  # fmt: skip
                changed.append(state)
            states[zcfg.name] = state
        await catalog.refresh(
            self.config, self.zones, host, states, changed, now, problems
        )  # RFC 9432 catalogs
        for gone in set(self.zones) - set(states):
            for task in (self.zones[gone].timer, self.zones[gone].checkds_task):
                if task is not None:
                    task.cancel()
            secondary = self.zones[gone].secondary
            if secondary is not None:
                host.spawn(secondary.stop())
            if self.zones[gone].dump_task is not None:  # its signed copy: now, not later
                host.spawn(self.zones[gone].dump_now())
        self.zones = states
        # journal history, one swap of the whole zone set, NOTIFY: the handles' commit path
        await commit_zone_set(self, self.port, changed, now)
        return changed, inline

    def _note_served(self, state: ZoneHandle) -> None:
        self._unswapped[state.name] = state

    @staticmethod
    def _model_of(state: ZoneHandle) -> Zone | None:
        """The model of the version ``state`` serves, as the workers get it."""
        inline = state.inline
        model = inline.signed if inline is not None else None
        if state.config.secondary and state.secondary is not None:
            model = state.secondary.copy  # a plain secondary's transferred copy
        return model

    @classmethod
    def _pushed_form(cls, state: ZoneHandle) -> Zone | bytes | None:
        """What the workers get of the version ``state`` serves: a parked inline zone's
        packed form as it is kept (no model unpacked for the push, none held in the
        links' queue until its frame is made: a start pushes thousands), else its
        model."""
        inline = state.inline
        if inline is not None and not (state.config.secondary and state.secondary is not None):
            packed = inline.packed_signed
            if packed is not None:
                return packed
        return cls._model_of(state)

    def current_model(self, name: str) -> Zone | None:
        """The model of the version zone ``name`` serves (None: no such zone or none)."""
        state = self.zones.get(name)
        return self._model_of(state) if state is not None else None

    def _push_inline(self, states: list[ZoneHandle]) -> None:
        """Send the workers every version of ``states`` (inline-signed) they do not serve
        yet."""
        assert self.links is not None
        for state in states:
            served = state.served
            if served is None:
                continue
            snap = served.snapshot
            if self._pushed.get(state.name) is snap:
                continue
            form = self._pushed_form(state)
            if form is None:
                continue
            if isinstance(form, bytes):
                assert state.inline is not None
                serial = state.inline.signed_serial
            else:
                serial = form.soa().serial
            if serial != snap.serial:
                log.warning(
                    "[%s] serial %d served but the zone model has %s: workers not updated",
                    state.name,
                    snap.serial,
                    serial,
                )
                continue
            before = self._pushed.get(state.name)
            base = snap.base() if snap.base is not None else None
            self._pushed[state.name] = snap
            # A version made from the one pushed before: its changed owners are known.
            changed = snap.changed if before is not None and base is before else None
            self.links.push(state.name, snap.serial, form, changed)

    def find_state(self, zone: str) -> ZoneHandle:
        """The zone called ``zone`` (any case, final dot or not); raises LookupError."""
        name = zone.rstrip(".")
        state = self.zones.get(zone) or next(
            (z for z in self.zones.values() if z.name.rstrip(".").lower() == name.lower()), None
        )
        if state is None:
            raise LookupError(f"no zone {zone!r} in the configuration")
        return state


def preload(config: ServerConfig, now: int) -> dict[str, ZoneHandle]:
    """Load every configured zone synchronously (before the event loop and before forking
    workers, which then share the loaded snapshots copy-on-write)."""
    catalog.write_all(config, now)  # catalog files current before the workers fork and read them
    states: dict[str, ZoneHandle] = {}
    for zcfg in config.zones:
        state = ZoneHandle(zcfg)
        if zcfg.policy is not None:  # signed by the running server (server.maintenance)
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
