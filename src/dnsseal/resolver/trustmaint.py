"""RFC 5011 maintenance in the resolver service: refresh managed (``initial-*``) anchors
when due, keep the state file current, and hand the resolver the anchors to use.

The decisions are :func:`dnsseal.validator.rfc5011.refresh`; this module fetches the DNSKEY
RRsets, schedules the next refresh and writes the state with :mod:`dnsseal.storage.atomic`
(a crash leaves either the old or the new file, never half of one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import dns.rdatatype

from dnsseal import aio, clock
from dnsseal.resolver.engine import Resolver
from dnsseal.storage import atomic
from dnsseal.storage.files import read_text
from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.rfc5011 import (
    ManagedZone,
    anchors_with,
    from_json,
    initial,
    refresh,
    to_json,
)

log = logging.getLogger(__name__)

MAX_SLEEP = 3600


class TrustMaintainer:
    """Owns the managed anchors of one resolver.

    On start the state file (if given and present) is loaded; managed anchors configured
    but not yet in the file start from their configured keys/DS, due at once.  Without a
    state file the state lives in memory only (lost on restart).
    """

    def __init__(
        self,
        resolver: Resolver,
        static: AnchorSet,
        state_path: Path | None,
        clock_fn: Callable[[], int] = clock.now,
    ) -> None:
        self.resolver = resolver
        self.static = static
        self.path = state_path
        self.clock = clock_fn
        now = clock_fn()
        saved: dict[object, ManagedZone] = {}
        if state_path is not None and state_path.exists():
            saved = {z.zone: z for z in from_json(read_text(state_path), str(state_path))}
        self.zones = [saved.get(a.zone) or initial(a, now) for a in static.anchors if a.managed]
        self._apply()

    def anchors(self) -> AnchorSet:
        return anchors_with(self.static, self.zones)

    def _apply(self) -> None:
        config = dataclasses.replace(self.resolver.config, anchors=self.anchors())
        self.resolver.with_config(config)

    def _save(self) -> None:
        if self.path is not None:
            atomic.replace(self.path, to_json(self.zones).encode())

    async def refresh_due(self) -> list[str]:
        """Refresh every managed zone whose time has come; returns what changed.  Waits
        for the resolver's start-up work first (:meth:`Resolver.prime` fetches and
        validates the root's DNSKEY RRset): the first refresh of a root anchor then reads
        that one validated result from the cache instead of asking again."""
        await self.resolver.started()
        now = self.clock()
        events: list[str] = []
        changed = False
        for i, mz in enumerate(self.zones):
            if mz.next_refresh > now:
                continue
            result = await self.resolver.resolve(mz.zone, dns.rdatatype.DNSKEY)
            rrset = next(
                (
                    r
                    for r in result.answer
                    if r.rdtype == dns.rdatatype.DNSKEY and r.name == mz.zone
                ),
                None,
            )
            sigs = [
                rd
                for r in result.answer
                if r.rdtype == dns.rdatatype.RRSIG
                and r.covers == dns.rdatatype.DNSKEY
                and r.name == mz.zone
                for rd in r
            ]
            new, ev = refresh(mz, rrset, sigs, now)
            if new != mz:
                self.zones[i] = new
                changed = True
            events.extend(ev)
        for e in events:
            log.info("%s", e)
        if changed:
            self._save()
            self._apply()
        return events

    def next_due(self) -> int | None:
        return min((z.next_refresh for z in self.zones), default=None)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.refresh_due()
            except Exception:  # keep serving with the anchors we have
                log.exception("RFC 5011 refresh failed")
            due = self.next_due()
            if due is None:
                return
            delay = min(MAX_SLEEP, max(1, due - self.clock()))
            with contextlib.suppress(TimeoutError):
                await aio.wait_for(stop.wait(), delay)
