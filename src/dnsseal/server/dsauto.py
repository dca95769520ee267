"""The parental agent's I/O: ask a child's name servers and the signaling names, let
:mod:`dnsseal.proto.dsautomation` decide, and change the parent (RFC 2136 UPDATE or a
``dsset-`` file, as ``dnssec-cds`` keeps it).

Shared by ``dnsseal dsscan`` (a parent served elsewhere) and the server's ``ds-automation``
driver.  Every child name server address is asked directly (RD=0, DO=1, no cache) for the
DNSKEY, CDS and CDNSKEY RRsets; signaling names (RFC 9615) go through the validating
resolver, which starts from the configured root servers and trust anchors.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update
from dns.rdtypes.ANY.DS import DS

from dnsseal.errors import DnssealError, FileFormatError, StorageError
from dnsseal.proto.dsautomation import (
    QTYPES,
    Action,
    Decision,
    Params,
    ServerAnswer,
    SignalAnswer,
    decide,
    signal_name,
)
from dnsseal.storage import atomic
from dnsseal.storage.files import read_text
from dnsseal.storage.remotes import Endpoint
from dnsseal.validator import verdict as v
from dnsseal.validator.machine import Config, Need, Query, Result

log = logging.getLogger(__name__)

T = dns.rdatatype
QUERY_TIMEOUT = 3.0
PAYLOAD = 1232


class ScanError(DnssealError):
    """The parent could not be asked or changed (the message says which server and why)."""


@dataclass(frozen=True, slots=True)
class Scanner:
    """Where to ask.  ``parent_server``: an authoritative server of the parent zone (for the
    delegation and current DS); ``query_port``: the port of the child's name servers;
    ``validation``: where the validating resolution starts (root servers, trust anchors),
    for signaling names and NS addresses without glue; ``now`` is passed per scan."""

    parent: dns.name.Name
    parent_server: Endpoint | None
    query_port: int = 53
    validation: Config | None = None
    params: Params = field(default_factory=Params)
    timeout: float = QUERY_TIMEOUT


async def exchange(
    q: dns.message.Message, host: str, port: int, timeout: float = QUERY_TIMEOUT
) -> dns.message.Message:
    """``q`` over UDP, TCP when truncated.  Raises DNSException / OSError."""
    r = await dns.asyncquery.udp(q, host, timeout=timeout, port=port)
    if r.flags & dns.flags.TC:
        r = await dns.asyncquery.tcp(q, host, timeout=timeout, port=port)
    return r


def _query(qname: dns.name.Name, rdtype: int) -> dns.message.Message:
    q = dns.message.make_query(
        qname, T.RdataType(rdtype), use_edns=0, want_dnssec=True, payload=PAYLOAD
    )
    q.flags &= ~dns.flags.RD
    return q


async def delegation(
    scanner: Scanner, child: dns.name.Name
) -> tuple[list[dns.name.Name], dict[dns.name.Name, list[str]], list[DS]]:
    """The child's NS names, glue addresses and current DS set, from the parent server.
    Raises ScanError when the parent does not answer or has no delegation for ``child``."""
    ep = scanner.parent_server
    if ep is None:
        raise ScanError("no parent server to ask")
    try:
        ns_reply = await exchange(_query(child, T.NS), ep.host, ep.port, scanner.timeout)
        ds_reply = await exchange(_query(child, T.DS), ep.host, ep.port, scanner.timeout)
    except (dns.exception.DNSException, OSError) as e:
        raise ScanError(f"{ep} did not answer for {child}: {e or type(e).__name__}") from None
    for r, what in ((ns_reply, "NS"), (ds_reply, "DS")):
        if r.rcode() != dns.rcode.NOERROR:
            raise ScanError(f"{ep}: {what} {child}: {dns.rcode.to_text(r.rcode())}")
    names = sorted(
        {
            rd.target
            for rr in (*ns_reply.authority, *ns_reply.answer)
            if rr.rdtype == T.NS and rr.name == child
            for rd in rr
        }
    )
    if not names:
        raise ScanError(f"{ep}: no delegation for {child} in {scanner.parent}")
    if not ds_reply.flags & dns.flags.AA:
        raise ScanError(f"{ep} is not authoritative for {scanner.parent}")
    glue: dict[dns.name.Name, list[str]] = {}
    for rr in ns_reply.additional:
        if rr.rdtype in (T.A, T.AAAA) and rr.name in names:
            glue.setdefault(rr.name, []).extend(rd.address for rd in rr)
    current = [
        rd
        for rr in ds_reply.answer
        if rr.rdtype == T.DS and rr.name == child
        for rd in rr
        if isinstance(rd, DS)
    ]
    return names, glue, current


async def resolve(scanner: Scanner, qname: dns.name.Name, rdtype: int, now: int) -> Result | None:
    """Resolve and validate with the validator's state machine, uncached (every scan sees
    what the servers serve now).  None without a ``validation`` config."""
    if scanner.validation is None:
        return None
    query = Query(qname, rdtype, scanner.validation, now)
    step = query.start()
    while isinstance(step, Need):
        step = query.feed(await _ask(step, scanner.timeout))
    return step


async def _ask(need: Need, timeout: float) -> dns.message.Message | None:
    q = _query(need.qname, need.rdtype)
    q.flags |= dns.flags.CD
    for host, port in need.servers[:4]:
        try:
            r = await exchange(q, host, port, timeout)
        except (dns.exception.DNSException, OSError):
            continue
        if r.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR):
            continue
        return r
    return None


async def parent_zone(scanner: Scanner, child: dns.name.Name, now: int) -> dns.name.Name:
    """The zone holding ``child``'s delegation: the owner of the SOA in the (validated)
    answer to ``SOA <child minus a label>``.  Raises ScanError."""
    above = child.parent()
    soa = await resolve(scanner, above, T.SOA, now)
    if soa is None:
        raise ScanError("finding the parent needs trust anchors and a root (-a, --root)")
    owners = [rr.name for rr in (*soa.answer, *soa.authority) if rr.rdtype == T.SOA]
    parent = next((o for o in owners if above.is_subdomain(o) and o != child), None)
    if parent is None:
        raise ScanError(f"no zone above {child} found (SOA {above}: {soa.verdict.reason})")
    return parent


async def find_parent(
    scanner: Scanner, child: dns.name.Name, now: int
) -> tuple[dns.name.Name, Endpoint]:
    """The parent zone of ``child`` and one address of one of its name servers, found by
    validating resolution (``scanner.validation``).  Raises ScanError."""
    parent = await parent_zone(scanner, child, now)
    ns = await resolve(scanner, parent, T.NS, now)
    names = sorted(
        {rd.target for rr in (ns.answer if ns else ()) if rr.rdtype == T.NS for rd in rr}
    )
    assert scanner.validation is not None
    for name in names:
        for addr in await addresses(scanner, name, {}, now):
            return parent, Endpoint(addr, scanner.validation.port)
    raise ScanError(f"no address found for the name servers of {parent}")


async def addresses(
    scanner: Scanner, ns: dns.name.Name, glue: dict[dns.name.Name, list[str]], now: int
) -> list[str]:
    """The addresses of ``ns``: the glue, else what the resolver finds (A and AAAA)."""
    if ns in glue:
        return sorted(set(glue[ns]))
    out: set[str] = set()
    for rdtype in (T.A, T.AAAA):
        result = await resolve(scanner, ns, rdtype, now)
        if result is None:
            return []
        out |= {
            rd.address for rr in result.answer if rr.rdtype == rdtype and rr.name == ns for rd in rr
        }
    return sorted(out)


async def child_answer(
    scanner: Scanner, child: dns.name.Name, ns: dns.name.Name, address: str
) -> ServerAnswer:
    """DNSKEY, CDS and CDNSKEY from one address, directly and uncached."""
    label = f"{ns} {address}@{scanner.query_port}"
    replies: dict[int, dns.message.Message | None] = {}
    for rdtype in QTYPES:
        try:
            replies[rdtype] = await exchange(
                _query(child, rdtype), address, scanner.query_port, scanner.timeout
            )
        except (dns.exception.DNSException, OSError) as e:
            return ServerAnswer(label, error=f"no answer to {T.to_text(rdtype)}: {e or 'timeout'}")
    return ServerAnswer.from_replies(label, child, replies)


async def signals(
    scanner: Scanner, child: dns.name.Name, ns_names: Sequence[dns.name.Name], now: int
) -> list[SignalAnswer]:
    """The validated CDS/CDNSKEY at the signaling name under every out-of-domain NS."""
    out: list[SignalAnswer] = []
    for ns in ns_names:
        if ns.is_subdomain(child):
            continue
        name = signal_name(child, ns)
        got: dict[int, tuple[dns.rrset.RRset | None, v.Verdict]] = {}
        for rdtype in (T.CDS, T.CDNSKEY):
            result = await resolve(scanner, name, rdtype, now)
            if result is None:
                return out
            rrset = next(
                (rr for rr in result.answer if rr.rdtype == rdtype and rr.name == name), None
            )
            got[rdtype] = (rrset, result.verdict)
        out.append(
            SignalAnswer(ns, got[T.CDS][0], got[T.CDNSKEY][0], got[T.CDS][1], got[T.CDNSKEY][1])
        )
    return out


async def scan(
    scanner: Scanner, child: dns.name.Name, now: int, current: list[DS] | None = None
) -> Decision:
    """Ask the parent server for the delegation, then :func:`scan_delegation`.
    ``current``: the parent's DS set when the caller knows it better (a dsset file).
    Raises ScanError."""
    names, glue, served = await delegation(scanner, child)
    return await scan_delegation(
        scanner, child, names, glue, served if current is None else current, now
    )


async def scan_delegation(
    scanner: Scanner,
    child: dns.name.Name,
    names: Sequence[dns.name.Name],
    glue: dict[dns.name.Name, list[str]],
    ds_set: Sequence[DS],
    now: int,
) -> Decision:
    """Ask every address of every NS of ``child`` (and, for an insecure child, the
    signaling names), then decide."""
    answers: list[ServerAnswer] = []
    for ns in names:
        addrs = await addresses(scanner, ns, glue, now)
        if not addrs:
            answers.append(ServerAnswer(f"{ns}", error="no address found"))
            continue
        answers += await asyncio.gather(*(child_answer(scanner, child, ns, a) for a in addrs))
    sig = [] if ds_set else await signals(scanner, child, names, now)
    decision = decide(child, ds_set, answers, names, sig, now, scanner.params)
    log.debug(
        "[%s] DS automation for %s: %s: %s",
        scanner.parent,
        child,
        decision.action.value,
        decision.reason,
    )
    return decision


# --- acting ----------------------------------------------------------------------------


def update_message(
    parent: dns.name.Name,
    child: dns.name.Name,
    decision: Decision,
    ttl: int,
    key: dns.tsig.Key | None = None,
) -> dns.update.UpdateMessage:
    """The RFC 2136 UPDATE that applies ``decision`` (SET or DELETE) to the parent."""
    if key is not None:
        upd = dns.update.UpdateMessage(
            parent, keyring={key.name: key}, keyname=key.name, keyalgorithm=key.algorithm
        )
    else:
        upd = dns.update.UpdateMessage(parent)
    upd.delete(child, T.DS)
    if decision.action is Action.SET:
        upd.add(child, dns.rrset.from_rdata_list(child, ttl, list(decision.ds)))
    return upd


async def send_update(
    ep: Endpoint, message: dns.update.UpdateMessage, timeout: float = QUERY_TIMEOUT
) -> None:
    """Send the UPDATE over TCP; raises ScanError unless the server answers NOERROR."""
    try:
        r = await dns.asyncquery.tcp(message, ep.host, timeout=timeout, port=ep.port)
    except (dns.exception.DNSException, OSError) as e:
        raise ScanError(f"UPDATE to {ep} failed: {e or type(e).__name__}") from None
    if r.rcode() != dns.rcode.NOERROR:
        raise ScanError(f"UPDATE to {ep} refused: {dns.rcode.to_text(r.rcode())}")


def dsset_path(directory: Path, child: dns.name.Name) -> Path:
    return directory / f"dsset-{child.to_text()}"


def read_dsset(directory: Path, child: dns.name.Name) -> tuple[list[DS], int | None]:
    """The DS set and TTL (None when the file gives none, as dnssec-dsfromkey writes it) in
    ``dsset-CHILD.``; an absent file is an empty set.  Raises FileFormatError."""
    path = dsset_path(directory, child)
    if not path.exists():
        return [], None
    out: list[DS] = []
    ttl: int | None = None
    for n, line in enumerate(read_text(path).splitlines(), 1):
        words = line.split(";", 1)[0].split()
        if not words:
            continue
        try:
            i = [w.upper() for w in words].index("DS")
            owner = dns.name.from_text(words[0])
            rd = dns.rdata.from_text(dns.rdataclass.IN, T.DS, " ".join(words[i + 1 :]))
        except (ValueError, dns.exception.DNSException) as e:
            raise FileFormatError(str(path), n, f"not a DS record: {e or line}") from None
        if owner != child:
            raise FileFormatError(str(path), n, f"DS for {owner}, expected {child}")
        for w in words[1:i]:
            if w.isdigit():
                ttl = int(w)
        if isinstance(rd, DS):
            out.append(rd)
    return out, ttl


def dsset_text(child: dns.name.Name, ds: Sequence[DS], ttl: int) -> str:
    return "".join(f"{child.to_text()} {ttl} IN DS {d.to_text()}\n" for d in ds)


def write_dsset(directory: Path, child: dns.name.Name, decision: Decision, ttl: int) -> Path:
    """Write the new DS set (empty for DELETE) atomically, as ``dnssec-cds -i`` does, and,
    as it does, set the file's time to the inception of the signatures that authenticated
    the change: the next change must come with signatures at least as new (the change was
    accepted, so that inception is not older than the replay threshold it was checked
    against)."""
    path = dsset_path(directory, child)
    atomic.replace(path, dsset_text(child, decision.ds, ttl).encode())
    if decision.inception is not None:
        try:
            os.utime(path, (decision.inception, decision.inception))
        except OSError as e:
            raise StorageError(str(path), f"cannot set the time: {e.strerror or e}") from None
    return path


def dsset_mtime(directory: Path, child: dns.name.Name) -> int | None:
    """The modification time of ``dsset-CHILD.`` (None when absent): replay protection."""
    try:
        return int(dsset_path(directory, child).stat().st_mtime)
    except FileNotFoundError:
        return None


def decision_record(decision: Decision, now: int, applied: str) -> dict[str, Any]:
    """One line of the JSON decision log."""
    out = decision.to_dict()
    out["time"] = now
    out["applied"] = applied
    return out
