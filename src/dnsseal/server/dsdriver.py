"""DS automation inside the server: one task per zone with ``ds-automation`` or
``signaling`` (docs/ds-automation.md).

- A signaling zone (``signaling = true``) copies, every ``ds-interval`` seconds, the apex
  CDS/CDNSKEY of every inline-signed zone served here that names its host in its NS set and
  waits for its DS (:mod:`dnsseal.proto.signaling`).
- A parent (``ds-automation = true``) scans every delegation of its zone every
  ``ds-interval`` seconds (:mod:`dnsseal.server.dsauto`, the same code as ``dnsseal
  dsscan``), and applies SET / DELETE decisions to its own data.

Both change their zone only through the zone's commit path: under the zone's lock, the
inline zone's ``update`` (re-signed incrementally), then :meth:`Automation.publish`
(journal, signed copy, serve, NOTIFY), exactly as an RFC 2136 UPDATE does.  Every decision
that differs from the previous one for that child goes to the decision log
(:mod:`dnsseal.storage.dslog`) and to ``dnsseal ctl ds-log``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.DS import DS

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.proto import signaling
from dnsseal.proto.dsautomation import Action, Decision, ds_ttl
from dnsseal.server import checkds, dsauto
from dnsseal.server.zones import ZoneState
from dnsseal.storage import dslog
from dnsseal.storage.files import read_text
from dnsseal.storage.serverconfig import DsAutomation
from dnsseal.validator.anchors import parse_trust_anchors
from dnsseal.validator.machine import Config
from dnsseal.zone.diff import Record, ZoneDiff
from dnsseal.zone.model import Zone

if TYPE_CHECKING:
    from dnsseal.server.automation import Automation

log = logging.getLogger(__name__)
T = dns.rdatatype
IN = dns.rdataclass.IN
LOW_TTL = 60  # the DS TTL right after a change (capped by ds-ttl)
HOLD_INTERVALS = 10  # ... for this many scans
MEMORY = 200  # decisions kept in memory per zone

# zone name -> its driver (one per zone; the server's Automation starts and stops them)
DRIVERS: dict[str, DsDriver] = {}


class DsDriver:
    """The DS automation task of one zone."""

    def __init__(self, automation: Automation, state: ZoneState, options: DsAutomation) -> None:
        self.automation = automation
        self.state = state
        self.options = options
        self.entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=MEMORY)
        self.last: dict[dns.name.Name, tuple[str, str]] = {}
        self.changed_at: dict[dns.name.Name, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.options.interval)
            self.wake.clear()
            try:
                await self.run_once()
            except Exception:  # one bad pass must not end DS automation for the zone
                log.exception("[%s] DS automation pass failed", self.state.name)

    async def run_once(self) -> None:
        inline = self.state.inline
        if inline is None or inline.unsigned is None or inline.plan is None:
            return
        if self.options.signaling:
            await self._signaling()
        if self.options.parent:
            await self._parent()

    # -- committing -----------------------------------------------------------------------

    async def _commit(self, change: ZoneDiff, why: str) -> None:
        state = self.state
        inline = state.inline
        assert inline is not None
        async with state.lock:
            now = clock.now()
            version = await asyncio.to_thread(inline.update, change, now)
            await self.automation.publish(state, version, now)
        log.info("[%s] DS automation: %s", state.name, why)

    # -- the signaling zone ---------------------------------------------------------------

    async def _signaling(self) -> None:
        inline = self.state.inline
        assert inline is not None and inline.unsigned is not None
        children = []
        for other in self.automation.server.zones.values():
            if other is self.state or other.inline is None or other.inline.signed is None:
                continue
            waiting = bool(checkds.waiting_keys(other.inline.keys).publish)
            children.append(signaling.child_apex(other.inline.signed, waiting))
        want = signaling.wanted(inline.origin, children)
        change = signaling.signaling_diff(inline.unsigned, want)
        if change:
            owners = sorted({r[0].to_text() for r in (*change.added, *change.removed)})
            await self._commit(change, f"signaling records now for {', '.join(owners)}")

    # -- the parental agent ---------------------------------------------------------------

    def scanner(self) -> dsauto.Scanner:
        config = self.automation.server.config
        validation = None
        if self.options.trust_anchors is not None and self.options.root:
            path = self.options.trust_anchors
            anchors = parse_trust_anchors(read_text(path), str(path))
            roots = tuple((e.host, e.port) for e in self.options.root)
            validation = Config(roots, anchors, port=config.query_port)
        origin = dns.name.from_text(self.state.name)
        return dsauto.Scanner(origin, None, config.query_port, validation)

    async def _parent(self) -> None:
        inline = self.state.inline
        assert inline is not None and inline.unsigned is not None
        zone = inline.unsigned
        try:
            scanner = self.scanner()
        except DnssealError as e:
            log.error("[%s] DS automation: %s", self.state.name, e)
            return
        for child, names, glue in delegations(zone):
            current = ds_records(zone, child)
            now = clock.now()
            decision = await dsauto.scan_delegation(
                scanner, child, names, glue, [d for d, _ in current], now
            )
            await self._act(zone, child, decision, current, now)

    async def _act(
        self,
        zone: Zone,
        child: dns.name.Name,
        decision: Decision,
        current: list[tuple[DS, int]],
        now: int,
    ) -> None:
        ttl = ds_ttl(
            now,
            self.changed_at.get(child),
            self.options.ttl,
            min(LOW_TTL, self.options.ttl),
            int(HOLD_INTERVALS * self.options.interval),
        )
        applied = "no change"
        change = None
        if decision.action is not Action.KEEP:
            new = list(decision.ds) if decision.action is Action.SET else []
            change = ds_change(child, current, new, ttl)
            applied = f"{decision.action.value}: DS TTL {ttl}"
        elif current and any(t != ttl for _, t in current):
            # The low TTL after a change is over (or ds-ttl changed): same set, new TTL.
            change = ds_change(child, current, [d for d, _ in current], ttl)
            applied = f"DS TTL now {ttl}"
        if change:
            try:
                await self._commit(change, f"{child}: {applied}: {decision.reason}")
            except DnssealError as e:
                applied = f"not applied: {e}"
            else:
                if decision.action is not Action.KEEP:
                    self.changed_at[child] = now
        key = (decision.action.value, decision.reason)
        if self.last.get(child) == key and not change:
            return
        self.last[child] = key
        entry = dsauto.decision_record(decision, now, applied)
        entry["parent"] = self.state.name
        self.entries.append(entry)
        level = logging.INFO if decision.action is Action.KEEP else logging.WARNING
        log.log(level, "[%s] DS automation for %s: %s", self.state.name, child, decision.reason)
        state_dir = self.automation.server.config.state_dir
        if state_dir is not None:
            try:
                await asyncio.to_thread(dslog.append, state_dir, entry)
            except DnssealError as e:
                log.error("[%s] DS automation log: %s", self.state.name, e)


def delegations(
    zone: Zone,
) -> list[tuple[dns.name.Name, list[dns.name.Name], dict[dns.name.Name, list[str]]]]:
    """Every delegation of ``zone``: (child, NS names, glue addresses in the zone)."""
    out = []
    for name in zone.names():
        if name == zone.origin:
            continue
        ns = zone.get(name, T.NS)
        if ns is None:
            continue
        targets = sorted({dns.name.from_wire(w, 0)[0] for w in ns.rdatas})
        glue: dict[dns.name.Name, list[str]] = {}
        for t in targets:
            for rtype in (T.A, T.AAAA):
                rr = zone.get(t.canonicalize(), rtype)
                if rr is not None:
                    glue.setdefault(t, []).extend(_rdata(rtype, w).to_text() for w in rr.rdatas)
        out.append((name, targets, glue))
    return out


def _rdata(rtype: int, wire: bytes) -> dns.rdata.Rdata:
    return dns.rdata.from_wire(IN, T.RdataType(rtype), wire, 0, len(wire))


def ds_records(zone: Zone, child: dns.name.Name) -> list[tuple[DS, int]]:
    """The DS RDATA at ``child`` with the RRset's TTL."""
    rr = zone.get(child, T.DS)
    if rr is None:
        return []
    out = []
    for w in rr.rdatas:
        rd = _rdata(T.DS, w)
        if isinstance(rd, DS):
            out.append((rd, rr.ttl))
    return out


def ds_change(
    child: dns.name.Name, current: list[tuple[DS, int]], new: list[DS], ttl: int
) -> ZoneDiff:
    """Remove the current DS records, add ``new`` with ``ttl``."""
    removed: tuple[Record, ...] = tuple((child, T.DS, t, rd.to_digestable()) for rd, t in current)
    added: tuple[Record, ...] = tuple((child, T.DS, ttl, rd.to_digestable()) for rd in new)
    return ZoneDiff(removed, added)


# -- hooks for the server ----------------------------------------------------------------


def start(automation: Automation, state: ZoneState) -> None:
    """Start (or keep) the zone's driver when its config asks for DS automation."""
    options = state.config.ds
    if options is None or not (options.parent or options.signaling):
        return
    driver = DRIVERS.get(state.name)
    if driver is None or driver.state is not state:
        driver = DsDriver(automation, state, options)
        DRIVERS[state.name] = driver
    driver.options = options
    driver.start()


async def stop_all() -> None:
    for driver in list(DRIVERS.values()):
        await driver.stop()
    DRIVERS.clear()


def show(state_dir: object, zone: str) -> list[str]:
    """``dnsseal ctl ds-log ZONE``: the zone's recent decisions, one JSON object per line
    (from the log file when the server has a state directory, else from memory)."""
    driver = next((d for n, d in DRIVERS.items() if n.rstrip(".") == zone.rstrip(".")), None)
    if driver is None:
        raise LookupError(f"{zone}: no ds-automation in this zone")
    sd = driver.automation.server.config.state_dir
    entries = dslog.read(sd, driver.state.name) if sd is not None else list(driver.entries)
    return [json.dumps(e, sort_keys=True) for e in entries]
