"""TSIG on requests (RFC 8945 5.2-5.4), pure: check a request's signature at ``now`` and,
when it fails, make the error response the RFC asks for.

:func:`check_request` reads a request, verifies its TSIG record (if any) itself, in the
RFC's order, and returns either the message (its ``keyring`` set to the key, so
``dns.message.make_response`` signs the answer) or the response to send instead:

=========================================  ===========================================
key unknown, or another algorithm           NOTAUTH, TSIG error BADKEY, unsigned
MAC wrong (or empty)                        NOTAUTH, TSIG error BADSIG, unsigned
MAC longer than the hash, or shorter than   FORMERR, TSIG error BADSIG, unsigned
  max(10, half the hash) (5.2.2.1)
time signed outside the fudge (5.2.3)       NOTAUTH, BADTIME, signed; Other Data: our time,
                                            Time Signed: the request's
a correct but truncated MAC (5.2.4)         NOTAUTH, BADTRUNC, signed (our policy: full
                                            MACs only, like named's default)
=========================================  ===========================================

These are named's answers (9.18, checked on loopback by tests/hostile/test_tsig.py), so
nsupdate and dig report ``NOTAUTH(BADSIG)`` and the like.  Unsigned error responses carry
``now`` as their Time Signed.  Nothing here reads the clock: ``now`` is an argument.
"""

from __future__ import annotations

import hmac
import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

log = logging.getLogger(__name__)

BADSIG, BADKEY, BADTIME, BADTRUNC = 16, 17, 18, 22
TSIG_TYPE = int(dns.rdatatype.TSIG)
MIN_MAC = 10  # octets (RFC 8945 5.2.2.1)


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of :func:`check_request`: the ``message`` to answer (verified, or not
    signed at all) or the ``response`` (wire) to send instead, and why."""

    message: dns.message.Message | None
    response: bytes | None = None
    reason: str = ""


def _no_check(_msg: dns.message.Message, _name: dns.name.Name) -> bool:
    return False  # dnspython: a false key reads the TSIG record without verifying it


def check_request(wire: bytes, keyring: Mapping[dns.name.Name, dns.tsig.Key], now: int) -> Checked:
    """Read ``wire`` and check its TSIG record with ``keyring`` at ``now``.

    Raises what ``dns.message.from_wire`` raises for a message that cannot be read at all
    (the caller answers FORMERR)."""
    msg = dns.message.from_wire(wire, keyring=_no_check)
    if not msg.had_tsig:
        return Checked(msg)
    assert msg.tsig is not None
    owner = msg.tsig.name
    rd = msg.tsig[0]
    key = keyring.get(owner)
    if key is None:
        return _unsigned(msg, owner, rd, BADKEY, now, f"unknown TSIG key {owner}")
    if key.algorithm != rd.algorithm:
        return _unsigned(
            msg, owner, rd, BADKEY, now, f"key {owner} is {key.algorithm}, not {rd.algorithm}"
        )
    full = _mac(wire, key, rd)
    size = len(rd.mac)
    if size and (size > len(full) or size < max(MIN_MAC, len(full) // 2)):
        return _unsigned(
            msg,
            owner,
            rd,
            BADSIG,
            now,
            f"key {owner}: a MAC of {size} octets (RFC 8945 5.2.2.1)",
            rcode=dns.rcode.FORMERR,
        )
    if not size or not hmac.compare_digest(full[:size], rd.mac):
        return _unsigned(msg, owner, rd, BADSIG, now, f"key {owner}: bad MAC")
    if abs(rd.time_signed - now) > rd.fudge:
        other = struct.pack("!HI", (now >> 32) & 0xFFFF, now & 0xFFFFFFFF)
        why = f"key {owner}: signed at {rd.time_signed}, now is {now} (fudge {rd.fudge})"
        return _signed(msg, key, rd, BADTIME, rd.time_signed, other, why)
    if size < len(full):
        return _signed(msg, key, rd, BADTRUNC, now, b"", f"key {owner}: truncated MAC")
    msg.keyring = key
    return Checked(msg)


def _tsig_start(wire: bytes) -> int:
    """The offset of the TSIG record, the last of ``wire`` (already parsed, so sound)."""
    qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
    pos = 12
    for i in range(qd + an + ns + ar - 1):
        while True:  # the owner name: labels up to the root or a compression pointer
            length = wire[pos]
            if length >= 0xC0:
                pos += 2
                break
            pos += length + 1
            if length == 0:
                break
        if i < qd:
            pos += 4
        else:
            pos += 10 + struct.unpack_from("!H", wire, pos + 8)[0]
    return pos


def _mac(wire: bytes, key: dns.tsig.Key, rd: dns.rdtypes.ANY.TSIG.TSIG) -> bytes:
    """The full MAC of the request ``wire`` under ``key`` (RFC 8945 4.3.3)."""
    start = _tsig_start(wire)
    arcount = struct.unpack_from("!H", wire, 10)[0]
    unsigned = wire[:10] + struct.pack("!H", arcount - 1) + wire[12:start]
    signed, _ = dns.tsig.sign(  # type: ignore[no-untyped-call]
        unsigned, key, rd.replace(mac=b""), rd.time_signed
    )
    mac: bytes = signed.mac
    return mac


def _response(msg: dns.message.Message, rcode: int) -> bytes:
    response = dns.message.make_response(msg)  # unsigned: msg.keyring is not set
    response.flags &= ~dns.flags.AA
    response.set_rcode(dns.rcode.Rcode(rcode))
    return response.to_wire()


def _append(wire: bytes, owner: dns.name.Name, rd: dns.rdata.Rdata) -> bytes:
    rdata = rd.to_wire()
    assert rdata is not None
    rr = owner.to_digestable() + struct.pack("!HHIH", TSIG_TYPE, dns.rdataclass.ANY, 0, len(rdata))
    arcount = struct.unpack_from("!H", wire, 10)[0]
    return wire[:10] + struct.pack("!H", arcount + 1) + wire[12:] + rr + rdata


def _unsigned(
    msg: dns.message.Message,
    owner: dns.name.Name,
    rd: dns.rdtypes.ANY.TSIG.TSIG,
    error: int,
    now: int,
    why: str,
    rcode: int = dns.rcode.NOTAUTH,
) -> Checked:
    """RFC 8945 5.3.2: a key or MAC problem gets an unsigned answer (empty MAC)."""
    answer = rd.replace(time_signed=now, mac=b"", original_id=msg.id, error=error, other=b"")
    return Checked(None, _append(_response(msg, rcode), owner, answer), why)


def _signed(
    msg: dns.message.Message,
    key: dns.tsig.Key,
    rd: dns.rdtypes.ANY.TSIG.TSIG,
    error: int,
    time_signed: int,
    other: bytes,
    why: str,
) -> Checked:
    """RFC 8945 5.3.2: a time or truncation problem gets an answer signed with the key
    (the request's MAC is part of what the answer's MAC covers, 4.3.1)."""
    wire = _response(msg, dns.rcode.NOTAUTH)
    answer = rd.replace(time_signed=time_signed, mac=b"", original_id=msg.id, error=error)
    answer = answer.replace(other=other)
    signed, _ = dns.tsig.sign(  # type: ignore[no-untyped-call]
        wire, key, answer, time_signed, request_mac=rd.mac
    )
    return Checked(None, _append(wire, key.name, signed), why)
