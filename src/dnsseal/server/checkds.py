"""checkds: ask the parental agents for the zone's DS RRset while a key waits on the parent.

With ``checkds = "yes"`` and ``parental-agents`` configured, every
:data:`CHECK_INTERVAL` seconds (while the key manager's plan has a key whose DS should
appear or disappear at the parent) each agent is asked for the zone's DS RRset.  Only when
*every* agent answers and all agree is a fact fed to the key manager: ``DsSeen`` when the
key's DS is at every agent, ``DsWithdrawn`` when it is at none.  The per-agent expected and
seen sets are kept for ``dnsseal ctl dnssec -status``.
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
import dns.rcode
import dns.rdatatype

from dnsseal import clock
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn, Fact
from dnsseal.keys.ds import make_ds
from dnsseal.keys.model import Key, RecordState
from dnsseal.server.zones import ZoneState
from dnsseal.storage.serverconfig import Endpoint

if TYPE_CHECKING:
    from dnsseal.server.automation import Automation

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


async def query_agent(zone: str, agent: Endpoint) -> set[tuple[int, int, int, bytes]] | None:
    """The DS RRset ``agent`` serves for ``zone`` (as (tag, alg, digest type, digest)), an
    empty set for NODATA/NXDOMAIN, None when it does not answer properly."""
    q = dns.message.make_query(zone, dns.rdatatype.DS)
    try:
        r = await dns.asyncquery.udp(q, agent.host, timeout=QUERY_TIMEOUT, port=agent.port)
        if r.flags & dns.flags.TC:
            r = await dns.asyncquery.tcp(q, agent.host, timeout=QUERY_TIMEOUT, port=agent.port)
    except (dns.exception.DNSException, OSError) as e:
        log.info("[%s] checkds: %s did not answer: %s", zone, agent, e)
        return None
    if r.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    out = set()
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.DS and rrset.name == q.question[0].name:
            for rd in rrset:
                out.add((rd.key_tag, rd.algorithm, rd.digest_type, rd.digest))
    return out


async def check(state: ZoneState) -> list[Fact]:
    """Ask every agent once; the facts all of them agree on.  Updates ``state.parent_log``."""
    inline = state.inline
    assert inline is not None
    waits = waiting_keys(inline.keys)
    agents = state.config.parental_agents
    if not waits or not agents:
        return []
    zone = inline.name
    seen = await asyncio.gather(*(query_agent(zone, a) for a in agents))
    expected = {k.tag for k in inline.keys if k.state and k.state.ds in SHOULD_BE_THERE}
    lines = []
    for agent, got in zip(agents, seen, strict=True):
        shown = (
            "no answer" if got is None else (", ".join(str(t[0]) for t in sorted(got)) or "none")
        )
        lines.append(
            f"parental agent {agent}: DS expected for {sorted(expected) or 'none'}, seen: {shown}"
        )
    state.parent_log = lines
    if any(s is None for s in seen):
        return []
    now = clock.now()
    facts: list[Fact] = []
    for k in waits.publish:
        ids = _ds_ids(k)
        if all(ids & s for s in seen if s is not None):
            log.info("[%s] checkds: DS for key %d seen at every parental agent", zone, k.tag)
            facts.append(DsSeen(k.id, now))
    for k in waits.withdraw:
        ids = _ds_ids(k)
        if not any(ids & s for s in seen if s is not None):
            log.info("[%s] checkds: DS for key %d gone from every parental agent", zone, k.tag)
            facts.append(DsWithdrawn(k.id, now))
    return facts


async def run(automation: Automation, state: ZoneState) -> None:
    """The checkds loop of one zone (``checkds = "yes"`` with agents)."""
    while True:
        await asyncio.sleep(CHECK_INTERVAL)
        if state.inline is None or state.config.checkds != "yes":
            continue
        try:
            facts = await check(state)
        except Exception:  # keep checking: one bad answer must not end the loop
            log.exception("[%s] checkds failed", state.name)
            continue
        if facts:
            for f in facts:
                state.inline.request(f)
            await automation.maintain(state, "checkds")
