"""NOTIFY (RFC 1996) messages: what a primary sends when a zone gets a new serial.

:func:`make_notify` builds the message (optionally TSIG-signed) and :func:`is_ack` checks a
reply; the server layer sends, waits and retries.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsig

from dnsseal.proto.snapshot import SOA, ZoneSnapshot

# Retry schedule in seconds (RFC 1996 3.6 leaves it to the implementation; BIND retries 5
# times with growing waits).
RETRY_TIMEOUTS = (1.0, 2.0, 4.0, 8.0, 15.0)


def make_notify(
    snap: ZoneSnapshot, qid: int, key: dns.tsig.Key | None = None
) -> dns.message.Message:
    """A NOTIFY for ``snap``'s zone carrying its current SOA in the answer section."""
    msg = dns.message.make_query(snap.origin, dns.rdatatype.SOA)
    msg.id = qid
    msg.set_opcode(dns.opcode.NOTIFY)
    msg.flags = dns.flags.AA | dns.opcode.to_flags(dns.opcode.NOTIFY)
    msg.answer.append(snap.apex.rrsets[SOA])
    if key is not None:
        msg.use_tsig({key.name: key}, keyname=key.name, algorithm=key.algorithm)
    return msg


def is_ack(notify: dns.message.Message, wire: bytes) -> bool:
    """True if ``wire`` is the secondary's acknowledgement of ``notify`` (same ID, opcode
    NOTIFY, QR set, NOERROR; TSIG verified when the NOTIFY was signed)."""
    try:
        reply = dns.message.from_wire(wire, keyring=notify.keyring, request_mac=notify.mac or b"")
    except (dns.exception.DNSException, ValueError):
        return False
    return (
        reply.id == notify.id
        and bool(reply.flags & dns.flags.QR)
        and reply.opcode() == dns.opcode.NOTIFY
        and reply.rcode() == dns.rcode.NOERROR
    )
