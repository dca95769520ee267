"""checkds: ask the parent for the zone's DS RRset while a key waits on the parent.

With ``checkds = "yes"``, every :data:`CHECK_INTERVAL` seconds (while the key manager's plan
has a key whose DS should appear or disappear at the parent) each server is asked for the
zone's DS RRset: the ``parental-agents`` when configured, else the parent zone's own name
servers, found through the recursive ``server.resolvers`` (default: resolv.conf) and asked
directly without recursion on ``server.query-port`` (as BIND does for ``checkds yes``).
Only when *every* server answers and all agree is a fact fed to the key manager: ``DsSeen``
when the key's DS is at every server, ``DsWithdrawn`` when it is at none.  The per-server
expected and seen sets are kept for ``dnsseal ctl dnssec -status``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn, Fact
from dnsseal.keys.ds import make_ds
from dnsseal.keys.model import Key, RecordState
from dnsseal.proto import parentns
from dnsseal.proto.parentns import DsId, LookupFailed
from dnsseal.server.zonehandle import ZoneHandle
from dnsseal.storage.remotes import Endpoint, system_resolvers
from dnsseal.storage.serverconfig import ServerConfig

if TYPE_CHECKING:
    from dnsseal.server.zonetable import Maintainer

log = logging.getLogger(__name__)

CHECK_INTERVAL = 2.0  # seconds between checks while the parent is awaited
QUERY_TIMEOUT = 3.0
SHOULD_BE_THERE = (RecordState.RUMOURED, RecordState.OMNIPRESENT)
SHOULD_GO = (RecordState.UNRETENTIVE,)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Keys whose DS should appear at the parent, and keys whose DS should leave it."""

    publish: tuple[Key, ...]
    withdraw: tuple[Key, ...]

    def __bool__(self) -> bool:
        return bool(self.publish or self.withdraw)


def waiting_keys(keys: list[Key]) -> Waiting:
    """The keys the key manager cannot move until the parent's DS changes."""
    publish, withdraw = [], []
    for k in keys:
        st = k.state
        if st is None or st.ds is None:
            continue
        if st.ds is RecordState.RUMOURED and k.timings.ds_publish is None:
            publish.append(k)
        elif st.ds in SHOULD_GO and k.timings.ds_delete is None:
            withdraw.append(k)
    return Waiting(tuple(publish), tuple(withdraw))


def _ds_ids(key: Key) -> set[tuple[int, int, int, bytes]]:
    out = set()
    for digest in (1, 2, 4):
        ds = make_ds(key, digest)
        out.add((ds.key_tag, ds.algorithm, ds.digest_type, ds.digest))
    return out


async def _exchange(q: dns.message.Message, server: Endpoint) -> dns.message.Message:
    """``q`` to ``server`` over UDP (TCP when truncated).  Raises DNSException/OSError."""
    r = await dns.asyncquery.udp(q, server.host, timeout=QUERY_TIMEOUT, port=server.port)
    if r.flags & dns.flags.TC:
        r = await dns.asyncquery.tcp(q, server.host, timeout=QUERY_TIMEOUT, port=server.port)
    return r


async def query_agent(zone: str, agent: Endpoint, authoritative: bool = False) -> set[DsId] | None:
    """The DS RRset ``agent`` serves for ``zone`` (as (tag, alg, digest type, digest)), an
    empty set for NODATA/NXDOMAIN, None when it does not answer properly.  A parental
    agent may be a resolver (asked with RD=1); a parent name server (``authoritative``) is
    asked with RD=0 and must answer with AA."""
    q = (
        parentns.ds_query(dns.name.from_text(zone))
        if authoritative
        else dns.message.make_query(zone, dns.rdatatype.DS)
    )
    try:
        return parentns.read_ds(q, await _exchange(q, agent), authoritative)
    except (dns.exception.DNSException, OSError, LookupFailed) as e:
        log.info("[%s] checkds: %s did not answer: %s", zone, agent, e)
        return None


async def _resolve(
    resolvers: tuple[Endpoint, ...], qname: dns.name.Name, rtype: int
) -> dns.message.Message:
    """Ask the resolvers in turn until one answers."""
    problems = []
    for r in resolvers:
        try:
            return await _exchange(parentns.resolver_query(qname, rtype), r)
        except (dns.exception.DNSException, OSError) as e:
            problems.append(f"{r}: {e or type(e).__name__}")
    rt = dns.rdatatype.to_text(dns.rdatatype.RdataType(rtype))
    raise LookupFailed(f"{rt} {qname}: no resolver answered ({'; '.join(problems)})")


async def parent_servers(zone: str, config: ServerConfig) -> list[tuple[str, Endpoint]]:
    """The parent zone's name servers and their addresses (``query-port``), found through
    the resolvers.  Raises LookupFailed, StorageError/OptionError (no resolvers known)."""
    resolvers = config.resolvers
    if resolvers is None:
        resolvers = await asyncio.to_thread(system_resolvers)
    child = dns.name.from_text(zone)
    parent = parentns.parent_zone(
        child, await _resolve(resolvers, child.parent(), dns.rdatatype.SOA)
    )
    names = parentns.ns_names(parent, await _resolve(resolvers, parent, dns.rdatatype.NS))
    out: list[tuple[str, Endpoint]] = []
    for name in names:
        for rtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = await _resolve(resolvers, name, rtype)
                found = parentns.addresses(name, answer)
            except LookupFailed as e:
                log.info("[%s] checkds: %s", zone, e)
                continue
            out += [(name.to_text(), Endpoint(a, config.query_port)) for a in found]
    if not out:
        listed = ", ".join(n.to_text() for n in names)
        raise LookupFailed(f"no address found for the name servers of {parent}: {listed}")
    return out


async def check(state: ZoneHandle, config: ServerConfig | None = None) -> list[Fact]:
    """Ask every parental agent (or, without agents and with ``config``, every name server
    of the parent zone) once; the facts all of them agree on.  Updates
    ``state.parent_log``."""
    inline = state.inline
    assert inline is not None
    waits = waiting_keys(inline.keys)
    agents = state.config.parental_agents
    if not waits or (not agents and config is None):
        return []
    zone = inline.name
    expected = {k.tag for k in inline.keys if k.state and k.state.ds in SHOULD_BE_THERE}
    want = f"DS expected for {sorted(expected) or 'none'}"
    if agents:
        servers = [(f"parental agent {a}", a) for a in agents]
    else:
        assert config is not None
        try:
            found = await parent_servers(zone, config)
        except (LookupFailed, DnssealError) as e:
            log.warning("[%s] checkds: parent name servers not found: %s", zone, e)
            state.parent_log = [f"parent name servers: not found ({e}); {want}"]
            return []
        servers = [(f"parent NS {name} {ep}", ep) for name, ep in found]
    seen = await asyncio.gather(*(query_agent(zone, ep, not agents) for _, ep in servers))
    lines = []
    for (label, _), got in zip(servers, seen, strict=True):
        shown = (
            "no answer" if got is None else (", ".join(str(t[0]) for t in sorted(got)) or "none")
        )
        lines.append(f"{label}: {want}, seen: {shown}")
    state.parent_log = lines
    if any(s is None for s in seen):
        return []
    now = clock.now()
    kind = "parental agent" if agents else "parent name server"
    facts: list[Fact] = []
    for k in waits.publish:
        ids = _ds_ids(k)
        if all(ids & s for s in seen if s is not None):
            log.info("[%s] checkds: DS for key %d seen at every %s", zone, k.tag, kind)
            facts.append(DsSeen(k.id, now))
    for k in waits.withdraw:
        ids = _ds_ids(k)
        if not any(ids & s for s in seen if s is not None):
            log.info("[%s] checkds: DS for key %d gone from every %s", zone, k.tag, kind)
            facts.append(DsWithdrawn(k.id, now))
    return facts


async def run(automation: Maintainer, state: ZoneHandle) -> None:
    """The checkds loop of one zone (``checkds = "yes"``)."""
    while True:
        await asyncio.sleep(CHECK_INTERVAL)
        if state.inline is None or state.config.checkds != "yes":
            continue
        try:
            facts = await check(state, automation.table.config)
        except Exception:  # keep checking: one bad answer must not end the loop
            log.exception("[%s] checkds failed", state.name)
            continue
        if facts:
            for f in facts:
                state.inline.request(f)
            await automation.maintain(state, "checkds")
