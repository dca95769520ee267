"""Dynamic update (RFC 2136) and NOTIFY in, answered by the main process.

:class:`Updates` answers the requests :func:`is_update` picks: an UPDATE is checked
(TSIG, allow-update or update-policy, prerequisites), applied to the zone's unsigned
version, re-signed and committed through the zone's handle
(:meth:`~dnsseal.server.zonehandle.ZoneHandle.commit`: journaled before the answer goes
out); a NOTIFY from a primary of a zone transferred in wakes its refresh
(:mod:`dnsseal.server.xfrin`), a NOTIFY(CDS) goes to DS automation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.proto.acl import Acl
from dnsseal.proto.tsigauth import check_request
from dnsseal.proto.update import Access, evaluate, zone_name
from dnsseal.server import dsdriver
from dnsseal.server.zonehandle import Transfers, ZoneHandle
from dnsseal.server.zonetable import ZoneTable

UPDATE_OPCODE = int(dns.opcode.UPDATE)
NOTIFY_OPCODE = int(dns.opcode.NOTIFY)
# Requests the main process answers itself (:meth:`Updates.handle_update`), not the engine.
MAIN_PROCESS_OPCODES = frozenset({UPDATE_OPCODE, NOTIFY_OPCODE})


def is_update(wire: bytes) -> bool:
    """Is this a request (not a response) that changes a zone: UPDATE, or a NOTIFY (from a
    primary of a zone transferred in)?  Both go to :meth:`Updates.handle_update`."""
    return len(wire) >= 12 and not wire[2] & 0x80 and (wire[2] >> 3) & 0xF in MAIN_PROCESS_OPCODES


def _header_only(wire: bytes, rcode: int) -> bytes:
    """A bare response header echoing the ID and opcode (the message could not be read)."""
    flags = 0x8000 | (wire[2] & 0x78) << 8 | rcode
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)


def notify_response(
    msg: dns.message.Message, rcode: int, zones: dict[str, ZoneHandle], client: str
) -> tuple[dns.message.Message, str, Transfers | None]:
    """The answer to a NOTIFY ``msg`` from ``client``, why (for the log), and the zone's
    secondary to wake (None: refused).  NOERROR+AA only from an address of one of the
    zone's primaries; REFUSED from anyone else; NOTAUTH for a zone we do not have."""
    response = dns.message.make_response(msg)
    response.flags |= dns.flags.AA
    if rcode != dns.rcode.NOERROR:
        response.set_rcode(dns.rcode.Rcode(rcode))
        return response, "unreadable", None
    if len(msg.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response, "NOTIFY needs exactly one question", None
    qname = msg.question[0].name
    state = next(
        (z for z in zones.values() if dns.name.from_text(z.name) == qname),
        None,
    )
    if state is None:
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.NOTAUTH)
        return response, f"not a zone of ours: {qname}", None
    addresses = {_norm(p.endpoint.host) for p in state.config.primaries}
    if _norm(client) not in addresses or state.secondary is None:
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.REFUSED)
        why = "no primaries" if not addresses else f"{client} is not one of its primaries"
        return response, f"{state.name}: {why}", None
    # As Knot: a primary written with a key must sign its NOTIFY with that key (a plain
    # secondary and a bump-in-the-wire zone alike).
    lines = [p for p in state.config.primaries if _norm(p.endpoint.host) == _norm(client)]
    keys = {dns.name.from_text(p.key) for p in lines if p.key is not None}
    signed_by = msg.keyname if msg.had_tsig else None
    if len(keys) == len(lines) and signed_by not in keys:
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.REFUSED)
        need = " or ".join(sorted(k.to_text(omit_final_dot=True) for k in keys))
        return response, f"{state.name}: NOTIFY not signed with key {need}", None
    return response, f"{state.name}: checking the primaries now", state.secondary


def _norm(addr: str) -> str:
    addr = addr.removeprefix("::ffff:")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(addr))
    return addr


log = logging.getLogger(__name__)


class Updates:
    """UPDATE and NOTIFY for the zones of ``table`` (main process only)."""

    def __init__(self, table: ZoneTable) -> None:
        self.table = table

    async def handle_update(self, wire: bytes, client: str) -> bytes:
        """Answer one request :func:`is_update` picked.  UPDATE: checked, applied, re-signed
        and journaled (committed) before the answer goes out; served and sent by IXFR
        after.  NOTIFY: acknowledged (a primary of the zone) or refused, see
        :func:`notify_response`."""
        opname = "NOTIFY" if (wire[2] >> 3) & 0xF == NOTIFY_OPCODE else "UPDATE"
        try:
            checked = check_request(wire, self.table.engine.keyring, clock.now())
        except Exception:
            return _header_only(wire, dns.rcode.FORMERR)
        if checked.message is None:  # RFC 8945 5.3: NOTAUTH/FORMERR with the TSIG error
            assert checked.response is not None
            log.info("[server] %s from %s: TSIG: %s", opname, client, checked.reason)
            return checked.response
        msg = checked.message
        if opname == "NOTIFY":
            return self._notify(msg, client)
        rcode, why = await self._update(msg, client)
        response = dns.message.make_response(msg)
        response.set_rcode(dns.rcode.Rcode(rcode))
        if why:
            log.info(
                "[server] UPDATE from %s: %s: %s",
                client,
                dns.rcode.to_text(dns.rcode.Rcode(rcode)),
                why,
            )
        return response.to_wire()

    def _notify(self, msg: dns.message.Message, client: str) -> bytes:
        cds = dsdriver.handle_notify(msg, client)  # RFC 9859 NOTIFY(CDS) to a parent
        if cds is not None:
            return cds
        response, why, secondary = notify_response(msg, dns.rcode.NOERROR, self.table.zones, client)
        level = logging.INFO if secondary is not None else logging.WARNING
        log.log(level, "[server] NOTIFY from %s: %s", client, why)
        if secondary is not None:
            secondary.notify()
        return response.to_wire()

    async def _update(self, msg: dns.message.Message, client: str) -> tuple[int, str]:
        zname = zone_name(msg)
        if zname is None:
            return dns.rcode.FORMERR, "zone section must be one SOA question of class IN"
        state = next(
            (
                z
                for z in self.table.zones.values()
                if z.served is not None and z.served.snapshot.origin == zname
            ),
            None,
        )
        if state is None:
            return dns.rcode.NOTAUTH, f"not authoritative for {zname}"
        inline = state.inline
        if inline is None:
            return dns.rcode.REFUSED, f"{zname} is presigned: it cannot be updated"
        if state.frozen:  # as named: an operator edits the file (`dnsseal ctl thaw`)
            return dns.rcode.REFUSED, f"{state.name} is frozen: update refused"
        keyname = msg.keyname if msg.had_tsig else None
        policy = state.config.update_policy
        if policy is None:
            acl = Acl.parse(f'zone."{state.name}".allow-update', list(state.config.allow_update))
            if not acl.allows(client, keyname):
                return dns.rcode.REFUSED, f"{state.name}: update not allowed (key {keyname})"
        elif keyname is None:
            return dns.rcode.REFUSED, f"{state.name}: update-policy needs a TSIG-signed update"
        access = Access(keyname, policy)
        async with state.lock:
            if inline.unsigned is None or inline.plan is None:
                return dns.rcode.SERVFAIL, f"{state.name} is not signed yet"
            result = evaluate(msg, inline.unsigned, inline.signed, access)
            if not result.ok:
                return result.rcode, result.reason
            if not result.change:
                return dns.rcode.NOERROR, ""
            now = clock.now()
            started = time.monotonic()
            try:
                version = await asyncio.to_thread(inline.update, result.change, now)
                await state.commit(version, now, (), started)
            except DnssealError as e:
                log.error("[%s] UPDATE not applied: %s", state.name, e)
                return dns.rcode.SERVFAIL, str(e)
        log.info("[%s] UPDATE from %s (key %s) applied: serial %d", state.name, client,
                 keyname, version.serial)  # fmt: skip
        return dns.rcode.NOERROR, ""
