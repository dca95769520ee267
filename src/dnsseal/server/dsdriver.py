"""DS automation inside the server: one task per zone with ``ds-automation`` or
``signaling`` (docs/ds-automation.md).

- A signaling zone (``signaling = true``) copies, every ``ds-interval`` seconds, the apex
  CDS/CDNSKEY of every inline-signed zone served here that names its host in its NS set and
  waits for its DS (:mod:`dnsseal.proto.signaling`).
- A parent (``ds-automation = true``) scans every delegation of its zone every
  ``ds-interval`` seconds (:mod:`dnsseal.server.dsauto`, the same code as ``dnsseal
  dsscan``), and applies SET / DELETE decisions to its own data.

Both change their zone only through the zone's commit path: under the zone's lock, the
inline zone's ``update`` (re-signed incrementally), then :meth:`Maintainer.publish`
(journal, signed copy, serve, NOTIFY), exactly as an RFC 2136 UPDATE does.  Every decision
that differs from the previous one for that child goes to the decision log
(:mod:`dnsseal.storage.dslog`) and to ``dnsseal ctl ds-log``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DS import DS

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.keys.model import Key, KeyState
from dnsseal.policy.build import lookup
from dnsseal.proto import dsync, signaling
from dnsseal.proto.acl import Acl
from dnsseal.proto.answer import Answer
from dnsseal.proto.dsautomation import Action, Decision, ds_ttl
from dnsseal.proto.snapshot import ZoneSnapshot
from dnsseal.server import checkds, dsauto
from dnsseal.server.inline import BACKDATE
from dnsseal.server.zonehandle import ZoneHandle
from dnsseal.signer import SigningKey, SignParams
from dnsseal.signer.rrsig import labels_field
from dnsseal.signer.sign import sign_rrsets
from dnsseal.storage import dslog
from dnsseal.storage.files import read_text
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.storage.serverconfig import DsAutomation, ServerConfig
from dnsseal.validator.anchors import parse_trust_anchors
from dnsseal.validator.machine import Config
from dnsseal.validator.verdict import Security
from dnsseal.zone import canonical
from dnsseal.zone.diff import Record, ZoneDiff
from dnsseal.zone.model import RRset, Zone

if TYPE_CHECKING:
    from dnsseal.server.zonetable import Maintainer

log = logging.getLogger(__name__)
T = dns.rdatatype
IN = dns.rdataclass.IN
TICK = 1.0  # seconds between passes of the cheap duties
SOURCE_BURST, SOURCE_EVERY = 20, 1.0  # NOTIFY(CDS) per source: 20 at once, then 1/s
CHILD_BURST, CHILD_EVERY = 2, 5.0  # ... per child: 2 at once, then one per 5 s
CHILD_RETRY_MAX = 60.0  # the child's NOTIFY(CDS) retries back off up to this
LOW_TTL = 60  # the DS TTL right after a change (capped by ds-ttl)
HOLD_INTERVALS = 10  # ... for this many scans
MEMORY = 200  # decisions kept in memory per zone

# zone name -> its driver (one per zone; the server's Maintainer starts and stops them)
DRIVERS: dict[str, DsDriver] = {}


class DsDriver:
    """The DS automation task of one zone."""

    def __init__(self, automation: Maintainer, state: ZoneHandle, options: DsAutomation) -> None:
        self.automation = automation
        self.state = state
        self.options = options
        self.entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=MEMORY)
        self.last: dict[dns.name.Name, tuple[str, str]] = {}
        self.changed_at: dict[dns.name.Name, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.notified: set[dns.name.Name] = set()  # children named by a NOTIFY(CDS)
        self.per_source = dsync.RateLimit(SOURCE_BURST, SOURCE_EVERY)
        self.per_child = dsync.RateLimit(CHILD_BURST, CHILD_EVERY)
        self.sent_for: frozenset[bytes] | None = None  # child: the CDS set last notified
        self.attempts = 0
        self.next_try = 0.0
        self.refused = 0  # NOTIFY(CDS) refused since the last one taken
        # child -> inception of the signatures behind the last change (replay protection),
        # restored from the decision log so a restart does not forget it
        self.not_before: dict[dns.name.Name, int] = {}
        state_dir = automation.table.config.state_dir
        try:
            past = dslog.read(state_dir, state.name, last=10000) if state_dir else []
        except DnssealError as e:
            log.error("[%s] DS automation log: %s", state.name, e)
            past = []
        for entry in past:
            stamp = entry.get("inception")
            if entry.get("action") in ("set", "delete") and isinstance(stamp, int):
                self.not_before[dns.name.from_text(str(entry["child"]))] = stamp

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
        # A short tick for the cheap duties (signaling records, DSYNC, the child's
        # NOTIFY); the full scan of every delegation every ds-interval; children named
        # by a NOTIFY(CDS) at once.
        loop = asyncio.get_running_loop()
        next_scan = loop.time() + self.options.interval
        tick = min(self.options.interval, TICK)
        while True:
            with contextlib.suppress(TimeoutError):  # (not wait_for: see maintenance._schedule)
                async with asyncio.timeout(tick):
                    await self.wake.wait()
            self.wake.clear()
            opts = self.state.config.ds
            gone = self.automation.table.zones.get(self.state.name) is not self.state
            if gone or opts is None or not (opts.parent or opts.signaling or opts.dsync):
                # The zone left the configuration, or its DS automation did (a reload).
                if DRIVERS.get(self.state.name) is self:
                    del DRIVERS[self.state.name]
                log.info("[%s] DS automation stopped", self.state.name)
                return
            self.options = opts
            full = loop.time() >= next_scan
            if full:
                next_scan = loop.time() + self.options.interval
            try:
                await self.run_once(full)
            except Exception:  # one bad pass must not end DS automation for the zone
                log.exception("[%s] DS automation pass failed", self.state.name)

    async def run_once(self, full: bool = True) -> None:
        inline = self.state.inline
        if inline is None or inline.unsigned is None or inline.plan is None:
            return
        if self.options.signaling:
            await self._signaling()
        if self.options.parent:
            if self.options.dsync:
                await self._publish_dsync()
            notified, self.notified = self.notified, set()
            if full or notified:
                await self._parent(None if full else notified)
        elif self.options.dsync:
            await self._child_notify()

    # -- committing -----------------------------------------------------------------------

    async def _commit(self, change: ZoneDiff, why: str) -> None:
        state = self.state
        inline = state.inline
        assert inline is not None
        await state.change(lambda now: inline.update(change, now))
        log.info("[%s] DS automation: %s", state.name, why)

    # -- the signaling zone ---------------------------------------------------------------

    async def _signaling(self) -> None:
        inline = self.state.inline
        assert inline is not None and inline.unsigned is not None
        children = []
        for other in self.automation.table.zones.values():
            # (read once: a small zone's model is unpacked on each read, InlineZone.park)
            signed = other.inline.signed if other.inline is not None else None
            if other is self.state or other.inline is None or signed is None:
                continue
            waiting = bool(checkds.waiting_keys(other.inline.keys).publish)
            children.append(signaling.child_apex(signed, waiting))
        want = signaling.wanted(inline.origin, children)
        change = signaling.signaling_diff(inline.unsigned, want)
        if change:
            owners = sorted({r[0].to_text() for r in (*change.added, *change.removed)})
            await self._commit(change, f"signaling records now for {', '.join(owners)}")

    # -- the parental agent ---------------------------------------------------------------

    def scanner(self) -> dsauto.Scanner:
        config = self.automation.table.config
        validation = None
        if self.options.trust_anchors is not None and self.options.root:
            path = self.options.trust_anchors
            anchors = parse_trust_anchors(read_text(path), str(path))
            roots = tuple((e.host, e.port) for e in self.options.root)
            validation = Config(roots, anchors, port=config.query_port)
        origin = dns.name.from_text(self.state.name)
        return dsauto.Scanner(origin, None, config.query_port, validation)

    async def _parent(self, only: set[dns.name.Name] | None = None) -> None:
        inline = self.state.inline
        assert inline is not None and inline.unsigned is not None
        zone = inline.unsigned
        try:
            scanner = self.scanner()
        except DnssealError as e:
            log.error("[%s] DS automation: %s", self.state.name, e)
            return
        for child, names, glue in delegations(zone):
            if only is not None and child not in only:
                continue
            current = ds_records(zone, child)
            now = clock.now()
            # Replay protection: what was accepted last time is the floor for signatures.
            params = dataclasses.replace(scanner.params, not_before=self.not_before.get(child))
            decision = await dsauto.scan_delegation(
                dataclasses.replace(scanner, params=params),
                child,
                names,
                glue,
                [d for d, _ in current],
                now,
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
                    if decision.inception is not None:
                        self.not_before[child] = decision.inception
        key = (decision.action.value, decision.reason)
        if self.last.get(child) == key and not change:
            return
        self.last[child] = key
        entry = dsauto.decision_record(decision, now, applied)
        entry["parent"] = self.state.name
        self.entries.append(entry)
        level = logging.INFO if decision.action is Action.KEEP else logging.WARNING
        log.log(level, "[%s] DS automation for %s: %s", self.state.name, child, decision.reason)
        state_dir = self.automation.table.config.state_dir
        if state_dir is not None:
            try:
                await asyncio.to_thread(dslog.append, state_dir, entry)
            except DnssealError as e:
                log.error("[%s] DS automation log: %s", self.state.name, e)

    # -- RFC 9859: DSYNC and NOTIFY(CDS) --------------------------------------------------

    async def _publish_dsync(self) -> None:
        """Keep ``_dsync.<zone> DSYNC CDS|CDNSKEY NOTIFY <port> <first NS>`` in the zone,
        and ``<child>._dsync.<zone>`` for each ``dsync-child`` (RFC 9859 s2: the most
        specific one is the child's).  The DSYNC records under ``_dsync`` are the server's."""
        inline = self.state.inline
        assert inline is not None and inline.unsigned is not None
        zone = inline.unsigned
        ns = zone.get(zone.origin, T.NS)
        listen = self.automation.table.config.listen
        if ns is None or not listen:
            return
        target = min(dns.name.from_wire(w, 0)[0] for w in ns.rdatas)
        want = dsync_records(zone, target, listen[0].port, self.options.children)
        base = dsync.parent_owner(zone.origin)
        have = {
            (rr.name, int(T.DSYNC), rr.ttl, w)
            for rr in zone.iter_rrsets()
            if rr.rtype == T.DSYNC and rr.name.is_subdomain(base)
            for w in rr.rdatas
        }
        if want != have:
            owners = ", ".join(sorted({r[0].to_text() for r in want}))
            await self._commit(
                ZoneDiff(tuple(sorted(have - want)), tuple(sorted(want - have))),
                f"DSYNC: NOTIFY(CDS) to {target}:{listen[0].port} (DSYNC at {owners})",
            )

    def notify(
        self, child: dns.name.Name, client: str, key: dns.name.Name | None = None
    ) -> tuple[int, str | None]:
        """A NOTIFY(CDS) for ``child`` from ``client``, TSIG-signed with ``key`` (None:
        unsigned): (rcode, why it was refused or None)."""
        inline = self.state.inline
        if inline is None or inline.unsigned is None:
            return dns.rcode.SERVFAIL, None
        if self.options.notify_acl is not None:
            acl = Acl.parse(f'zone."{self.state.name}".dsync-allow', list(self.options.notify_acl))
            if not acl.allows(client, key):
                signed = f"signed with key {key}" if key is not None else "unsigned"
                return dns.rcode.REFUSED, f"not allowed by dsync-allow ({signed})"
        if inline.unsigned.get(child.canonicalize(), T.NS) is None or child == inline.origin:
            return dns.rcode.NOTAUTH, None
        now = asyncio.get_running_loop().time()
        if not self.per_source.allow(client, now):
            why = f"rate-limited: more than {SOURCE_BURST} NOTIFY(CDS) from {client}"
            return dns.rcode.REFUSED, why
        if not self.per_child.allow(child.canonicalize(), now):
            why = f"rate-limited: {child} was notified less than {CHILD_EVERY:g} s ago"
            return dns.rcode.REFUSED, why
        self.notified.add(child.canonicalize())
        self.wake.set()
        return dns.rcode.NOERROR, None

    async def _child_notify(self) -> None:
        """The child's half: once every name server serves the new CDS/CDNSKEY, NOTIFY(CDS)
        the parent's DSYNC target; again with growing pauses while a key still waits for
        the parent."""
        inline = self.state.inline
        assert inline is not None
        signed = inline.signed
        waits = checkds.waiting_keys(inline.keys)
        if signed is None or not waits:
            self.sent_for, self.attempts = None, 0
            return
        origin = signed.origin
        cds = frozenset(
            w for t in (T.CDS, T.CDNSKEY) if (rr := signed.get(origin, t)) for w in rr.rdatas
        )
        loop = asyncio.get_running_loop()
        if cds != self.sent_for:
            self.sent_for, self.attempts, self.next_try = cds, 0, 0.0
        if not cds or loop.time() < self.next_try:
            return
        scanner = self.scanner()
        now = clock.now()
        served = await self._everywhere(scanner, signed, cds, now)
        if served is not None:
            log.info("[%s] NOTIFY(CDS) waits: %s", self.state.name, served)
            return
        targets = await self._dsync_targets(scanner, origin, now)
        self.attempts += 1
        self.next_try = loop.time() + min(CHILD_RETRY_MAX, 2.0**self.attempts)
        if not targets:
            log.info("[%s] NOTIFY(CDS): no DSYNC target found at the parent", self.state.name)
            return
        tsig = self.state.config.notify_key
        for host, port in targets:
            msg = dsync.make_notify(origin, secrets.randbelow(65536))
            if tsig is not None:  # the parent may take NOTIFY(CDS) only signed (dsync-allow)
                key = self.automation.table.config.keys[tsig].to_dnspython()
                msg.use_tsig(key)
            try:
                r = await dsauto.exchange(msg, host, port, 2.0)
                result = dns.rcode.to_text(r.rcode())
            except (dns.exception.DNSException, OSError) as e:
                result = f"no answer ({e or type(e).__name__})"
            log.info("[%s] NOTIFY(CDS) to %s@%d: %s (try %d)", self.state.name, host, port,
                     result, self.attempts)  # fmt: skip

    async def _everywhere(
        self, scanner: dsauto.Scanner, signed: Zone, cds: frozenset[bytes], now: int
    ) -> str | None:
        """None when every address of every NS serves ``cds``; else which does not."""
        ns = signed.get(signed.origin, T.NS)
        names = sorted({dns.name.from_wire(w, 0)[0] for w in ns.rdatas}) if ns else []
        glue = _glue(signed, names)
        for name in names:
            addrs = await dsauto.addresses(scanner, name, glue, now)
            if not addrs:
                return f"no address for {name}"
            for a in addrs:
                got = await dsauto.child_answer(scanner, signed.origin, name, a)
                if got.error:
                    return f"{got.server}: {got.error}"
                seen = frozenset(
                    rd.to_digestable()
                    for t in (T.CDS, T.CDNSKEY)
                    if (rr := got.rrset(t)) is not None
                    for rd in rr
                )
                if seen != cds:
                    return f"{got.server} does not serve the new CDS/CDNSKEY yet"
        return None

    async def _dsync_targets(
        self, scanner: dsauto.Scanner, child: dns.name.Name, now: int
    ) -> list[tuple[str, int]]:
        try:
            parent = await dsauto.parent_zone(scanner, child, now)
        except dsauto.ScanError as e:
            log.info("[%s] NOTIFY(CDS): %s", self.state.name, e)
            return []
        # The most specific first: <child>._dsync.<parent>, then _dsync.<parent> (RFC 9859
        # s4.1).  A failed validation stops here: falling back on the zone-wide target
        # would let a forged denial of the child's own DSYNC redirect the NOTIFY.
        for owner in (dsync.child_owner(child, parent), dsync.parent_owner(parent)):
            result = await dsauto.resolve(scanner, owner, T.DSYNC, now)
            if result is None:
                return []
            if result.verdict.security in (Security.BOGUS, Security.INDETERMINATE):
                log.info("[%s] NOTIFY(CDS): DSYNC at %s: %s", self.state.name, owner,
                         result.verdict.reason)  # fmt: skip
                return []
            rds = [rd for rr in result.answer if rr.rdtype == T.DSYNC for rd in rr]
            found = dsync.notify_targets(rds)
            if found:
                out = []
                for target, port in found:
                    addrs = await dsauto.addresses(scanner, target, {}, now)
                    out += [(a, port) for a in addrs]
                return out
        return []


def dsync_records(
    zone: Zone,
    target: dns.name.Name,
    port: int,
    children: tuple[tuple[str, str, int | None], ...] = (),
) -> set[Record]:
    """The DSYNC records a ``dsync = true`` zone publishes: ``_dsync.<zone>`` naming
    ``target``/``port``, and for each ``dsync-child`` (child, target host, port or None)
    ``<child>._dsync.<zone>`` naming its own (names relative to the zone)."""
    ns = zone.get(zone.origin, T.NS)
    ttl = ns.ttl if ns is not None else zone.soa().minimum
    entries = [(dsync.parent_owner(zone.origin), target, port)]
    for child, host, p in children:
        name = dns.name.from_text(child, zone.origin)
        if name == zone.origin or not name.is_subdomain(zone.origin):
            log.warning("[%s] dsync-child %s: not below the zone", zone.origin, child)
            continue
        owner = dsync.child_owner(name, zone.origin)
        entries.append((owner, dns.name.from_text(host, zone.origin), p or port))
    return {
        (owner.canonicalize(), int(T.DSYNC), ttl, dsync.dsync_rdata(t, p, host).to_digestable())
        for owner, host, p in entries
        for t in dsync.NOTIFY_TYPES
    }


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
        glue = _glue(zone, targets)
        out.append((name, targets, glue))
    return out


def _rdata(rtype: int, wire: bytes) -> dns.rdata.Rdata:
    return dns.rdata.from_wire(IN, T.RdataType(rtype), wire, 0, len(wire))


def _glue(zone: Zone, names: list[dns.name.Name]) -> dict[dns.name.Name, list[str]]:
    glue: dict[dns.name.Name, list[str]] = {}
    for t in names:
        for rtype in (T.A, T.AAAA):
            rr = zone.get(t.canonicalize(), rtype)
            if rr is not None:
                glue.setdefault(t, []).extend(_rdata(rtype, w).to_text() for w in rr.rdatas)
    return glue


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


def start(automation: Maintainer, state: ZoneHandle) -> None:
    """Start (or keep) the zone's driver when its config asks for DS automation."""
    options = state.config.ds
    if options is None or not (options.parent or options.signaling or options.dsync):
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


def handle_notify(msg: dns.message.Message, client: str) -> bytes | None:
    """A NOTIFY(CDS/CDNSKEY) for a child of a ``ds-automation`` zone: the answer; None for
    any other NOTIFY (the caller answers those)."""
    child = dsync.read_notify(msg)
    if child is None:
        return None
    drivers = [
        d
        for d in DRIVERS.values()
        if d.options.parent and child.is_subdomain(dns.name.from_text(d.state.name))
    ]
    if not drivers:
        return None
    driver = max(drivers, key=lambda d: len(dns.name.from_text(d.state.name)))
    key = msg.keyname if msg.had_tsig else None
    rcode, blocked = driver.notify(child, client, key)
    level = logging.INFO
    if blocked and not blocked.startswith("rate-limited"):
        log.warning("[%s] NOTIFY(CDS) for %s from %s: REFUSED (%s)",
                    driver.state.name, child, client, blocked)  # fmt: skip
        return dsync.response(msg, rcode, blocked, dsync.EDE_PROHIBITED).to_wire()
    if blocked:  # one warning per flood, not one per packet
        driver.refused += 1
        level = logging.WARNING if driver.refused == 1 else logging.DEBUG
    elif driver.refused:
        log.warning("[%s] %d NOTIFY(CDS) refused (rate-limited) before this one",
                    driver.state.name, driver.refused)  # fmt: skip
        driver.refused = 0
    what = dns.rcode.to_text(dns.rcode.Rcode(rcode)) + (f" ({blocked})" if blocked else "")
    log.log(level, "[%s] NOTIFY(CDS) for %s from %s: %s", driver.state.name, child, client, what)
    return dsync.response(msg, rcode, blocked).to_wire()


OnlineHook = Callable[[ZoneSnapshot, dns.name.Name, int, bool, Answer], Answer]


def online(state: ZoneHandle) -> OnlineHook | None:
    """How the engine answers a signaling zone (``signaling = true``): online, with
    minimally covering NSEC records signed by the zone's keys as each answer is made
    (:func:`dnsseal.proto.signaling.online_answer`).  None for any other zone."""
    opts = state.config.ds
    inline = state.inline
    if opts is None or not opts.signaling or inline is None:
        return None
    sign = inline.online_signer()
    if sign is None:
        return None

    def answer(
        snap: ZoneSnapshot, qname: dns.name.Name, qtype: int, do: bool, ans: Answer
    ) -> Answer:
        return signaling.online_answer(snap, qname, qtype, do, ans, sign)

    return answer


# A worker's signing keys per signaling zone, kept while the version it serves is signed by
# the same keys: origin -> ((signer (algorithm, tag) pairs, published DNSKEYs), the keys)
_WORKER_KEYS: dict[
    dns.name.Name, tuple[tuple[frozenset[tuple[int, int]], frozenset[bytes]], list[SigningKey]]
] = {}


def worker_online(state: ZoneHandle, config: ServerConfig, snap: ZoneSnapshot) -> OnlineHook | None:
    """:func:`online` in a worker process (``server.workers`` > 1), which holds no
    InlineZone: the version ``snap`` the main process pushed is answered online too,
    signed with the keys that sign its data (their signatures cover the apex SOA, their
    DNSKEY is published in ``snap``: the ZSKs, or CSKs, of the plan that signed it; under
    an offline KSK the online ZSKs), loaded from the zone's key directory as the main
    process loads them.  No key material crosses the process boundary, and answering
    costs no round trip to the main process.  None for any other zone, or when no key
    file can sign (logged: the worker then serves the stored chain)."""
    zcfg = state.config
    opts = zcfg.ds
    if opts is None or not opts.signaling or zcfg.policy is None or config.key_dir is None:
        return None
    if not snap.signed:
        return None
    apex = snap.apex
    soa_sigs = apex.sigs.get(T.SOA)
    dnskeys = apex.rrsets.get(T.DNSKEY)
    if soa_sigs is None or dnskeys is None:
        return None
    signers = frozenset((rd.algorithm, rd.key_tag) for rd in soa_sigs)
    published = frozenset(canonical.rdata_wire(rd) for rd in dnskeys)
    cached = _WORKER_KEYS.get(snap.origin)
    try:
        policy = lookup(zcfg.policy, config.policies)
        if cached is not None and cached[0] == (signers, published):
            keys: list[SigningKey] = cached[1]
        else:
            keys = [
                SigningKey(_as_zsk(k))
                for k in KeyDirectory(config.key_dir).keys(snap.origin)
                if (k.algorithm, k.tag) in signers
                and k.private is not None
                and canonical.rdata_wire(k.dnskey()) in published
            ]
    except (DnssealError, OSError) as e:
        log.error("[%s] worker: signaling zone not answered online: %s", state.name, e)
        return None
    if not keys:
        log.error("[%s] worker: signaling zone not answered online: no key file in %s signs "
                  "serial %d", state.name, config.key_dir, snap.serial)  # fmt: skip
        return None
    _WORKER_KEYS[snap.origin] = ((signers, published), keys)
    origin = snap.origin
    validity = policy.signatures_validity

    def sign(rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
        now = clock.now()
        params = SignParams(inception=now - BACKDATE, expiration=now + validity, ksk_only=True)
        wires = canonical.canonical_rdatas(canonical.rdata_wire(rd) for rd in rrset)
        model = RRset(rrset.name.canonicalize(), int(rrset.rdtype), rrset.ttl, wires)
        owner = canonical.name_wire(model.name)
        made = sign_rrsets([(model, owner, labels_field(model.name))], {}, keys, params, now,
                           origin, IN)  # fmt: skip
        sigs = made.sigs.get(model.name, {}).get(model.rtype)
        if sigs is None or not sigs.rdatas:
            return None
        out = dns.rrset.RRset(rrset.name, IN, T.RRSIG, rrset.rdtype)
        for w in sigs.rdatas:
            out.add(dns.rdata.from_wire(IN, T.RRSIG, w, 0, len(w)), sigs.ttl)
        return out

    def answer(
        snap: ZoneSnapshot, qname: dns.name.Name, qtype: int, do: bool, ans: Answer
    ) -> Answer:
        return signaling.online_answer(snap, qname, qtype, do, ans, sign)

    return answer


def _as_zsk(key: Key) -> Key:
    """``key`` signing the zone's data only (a CSK, or a KSK signing the data during a
    roll, must not be taken for a key-set signer here: it signs one NSEC)."""
    state = key.state if key.state is not None else KeyState()
    return dataclasses.replace(key, state=state.replace(ksk=False, zsk=True))


def show(state_dir: object, zone: str) -> list[str]:
    """``dnsseal ctl ds-log ZONE``: the zone's recent decisions, one JSON object per line
    (from the log file when the server has a state directory, else from memory)."""
    driver = next((d for n, d in DRIVERS.items() if n.rstrip(".") == zone.rstrip(".")), None)
    if driver is None:
        raise LookupError(f"{zone}: no ds-automation in this zone")
    sd = driver.automation.table.config.state_dir
    entries = dslog.read(sd, driver.state.name) if sd is not None else list(driver.entries)
    return [json.dumps(e, sort_keys=True) for e in entries]
