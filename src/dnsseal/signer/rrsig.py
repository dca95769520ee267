"""RRSIG records on bytes (RFC 4034 section 3): building the data to sign, packing and
parsing RRSIG RDATA.

The signed data is the RRSIG RDATA without its signature field, followed by the RRs of the
covered RRset in canonical form and order, each with the RRSIG's original TTL (RFC 4034
3.1.8.1).  For a wildcard owner the RRs carry the wildcard name itself and the labels field
does not count the ``*`` label.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.name

from dnsseal.zone import canonical

_FIXED = struct.Struct("!HBBIIIH")
MAX_U32 = 0xFFFFFFFF


def labels_field(name: dns.name.Name) -> int:
    """RRSIG labels: labels of the owner without the root and without a leading ``*``."""
    n = len(name.labels) - 1
    if name.labels and name.labels[0] == b"*":
        n -= 1
    return n


@dataclass(frozen=True, slots=True)
class Rrsig:
    """The fields of one RRSIG RDATA.  Times are 32-bit serial numbers (RFC 4034 3.1.5)."""

    type_covered: int
    algorithm: int
    labels: int
    original_ttl: int
    expiration: int
    inception: int
    key_tag: int
    signer: dns.name.Name
    signature: bytes = b""

    def head_wire(self) -> bytes:
        """The RDATA without the signature (the first part of the signed data)."""
        return _FIXED.pack(
            self.type_covered,
            self.algorithm,
            self.labels,
            self.original_ttl,
            self.expiration & MAX_U32,
            self.inception & MAX_U32,
            self.key_tag,
        ) + canonical.name_wire(self.signer)

    def to_wire(self) -> bytes:
        return self.head_wire() + self.signature

    @classmethod
    def from_wire(cls, wire: bytes) -> Rrsig:
        """Parse RRSIG RDATA; raises ValueError when malformed."""
        if len(wire) < _FIXED.size + 1:
            raise ValueError("RRSIG RDATA too short")
        covered, alg, labels, ttl, exp, inc, tag = _FIXED.unpack_from(wire)
        signer, off = canonical.name_from_wire(wire, _FIXED.size)
        return cls(covered, alg, labels, ttl, exp, inc, tag, signer, wire[off:])


def signed_data(head: bytes, owner_wire: bytes, rtype: int, rdclass: int, ttl: int,
                rdatas: tuple[bytes, ...]) -> bytes:  # fmt: skip
    """The octets an RRSIG signs: ``head`` (see :meth:`Rrsig.head_wire`) then the RRset in
    canonical form with the original TTL.  ``rdatas`` must be canonical and sorted."""
    return head + canonical.rrset_wire(owner_wire, rtype, rdclass, ttl, rdatas)


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982 serial-number comparison ``a < b`` on 32 bits."""
    a &= MAX_U32
    b &= MAX_U32
    return a != b and ((a < b and b - a < 2**31) or (a > b and a - b > 2**31))


def absolute_time(serial: int, now: int) -> int:
    """The epoch time closest to ``now`` that a 32-bit RRSIG time stands for."""
    base = now - (now & MAX_U32)
    t = base + (serial & MAX_U32)
    if t - now > 2**31:
        t -= 2**32
    elif now - t > 2**31:
        t += 2**32
    return t
