"""Incoming zone transfers, as a secondary: the SOA check, the IXFR/AXFR request, and the
responses read into a whole zone or a list of differences (RFC 1995, RFC 5936).

No sockets here: the caller sends :func:`soa_query` / :func:`transfer_query`, frames the
answers and feeds each response message to :meth:`Inbound.feed` until it returns True, then
takes :attr:`Inbound.result` and makes the new zone with :func:`apply_transfer`.  Every way a
response can be wrong raises :class:`TransferError` with the reason; the zone stays as it was.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from dnsseal.errors import DnssealError
from dnsseal.zone import canonical
from dnsseal.zone.diff import Record, ZoneDiff, apply, records
from dnsseal.zone.model import Zone, ZoneBuilder

T = dns.rdatatype
SOA = T.SOA


class TransferError(DnssealError):
    """A transfer (or SOA check) failed: no answer, refused, or a malformed response."""


def serial_gt(a: int, b: int) -> bool:
    """RFC 1982: is serial ``a`` newer than ``b``?"""
    return a != b and ((a - b) & 0xFFFFFFFF) < 2**31


def _sign(msg: dns.message.Message, key: dns.tsig.Key | None) -> dns.message.Message:
    if key is not None:
        msg.use_tsig({key.name: key}, keyname=key.name, algorithm=key.algorithm)
    return msg


def soa_query(
    zone: dns.name.Name, qid: int, key: dns.tsig.Key | None = None
) -> dns.message.Message:
    """The refresh check: SOA for ``zone``, no recursion wanted."""
    q = dns.message.make_query(zone, SOA)
    q.id = qid
    q.flags &= ~dns.flags.RD
    return _sign(q, key)


def read_soa_serial(query: dns.message.Message, wire: bytes) -> int:
    """The serial in an authoritative answer to :func:`soa_query`.  Raises TransferError."""
    msg = _parse(query, wire)
    rcode = msg.rcode()
    if rcode != dns.rcode.NOERROR:
        raise TransferError(f"SOA query answered {dns.rcode.to_text(rcode)}")
    if not msg.flags & dns.flags.AA:
        raise TransferError("SOA answer is not authoritative (the primary does not serve it)")
    zone = query.question[0].name
    for rrset in msg.answer:
        if rrset.rdtype == SOA and rrset.name == zone and len(rrset):
            return int(rrset[0].serial)
    raise TransferError("SOA answer carries no SOA record")


def transfer_query(
    zone: dns.name.Name, qid: int, serial: int | None, key: dns.tsig.Key | None = None
) -> dns.message.Message:
    """IXFR from ``serial`` (our SOA in the authority section) or, without one, AXFR."""
    if serial is None:
        q = dns.message.make_query(zone, T.AXFR)
    else:
        q = dns.message.make_query(zone, T.IXFR)
        soa = dns.rrset.from_text(zone, 0, "IN", "SOA", f". . {serial} 0 0 0 0")
        q.authority.append(soa)
    q.id = qid
    q.flags &= ~dns.flags.RD
    return _sign(q, key)


def _parse(
    query: dns.message.Message,
    wire: bytes,
    ctx: dns.tsig.HMACTSig | dns.tsig.GSSTSig | None = None,
    multi: bool = False,
) -> dns.message.Message:
    try:
        msg = dns.message.from_wire(
            wire,
            keyring=query.keyring,
            request_mac=query.mac or b"",
            xfr=query.question[0].rdtype in (T.AXFR, T.IXFR),
            origin=None,
            tsig_ctx=ctx,
            multi=multi,
            one_rr_per_rrset=True,
        )
    except dns.tsig.PeerError as e:
        raise TransferError(f"TSIG error from the primary: {e}") from None
    except dns.message.UnknownTSIGKey:
        raise TransferError("the answer is signed with a key we do not have") from None
    except dns.exception.DNSException as e:
        raise TransferError(f"malformed answer: {e}") from None
    if msg.id != query.id or not msg.flags & dns.flags.QR:
        raise TransferError("the answer does not match the query (ID or QR)")
    if query.had_tsig and not msg.had_tsig and not multi:  # (transfers: see Inbound.feed)
        raise TransferError("the answer to a TSIG-signed query is not signed")
    if msg.question and (msg.question[0].name, msg.question[0].rdtype) != (
        query.question[0].name,
        query.question[0].rdtype,
    ):
        raise TransferError("the answer is for another question")
    return msg


class Kind(enum.Enum):
    UP_TO_DATE = "up to date"
    FULL = "AXFR"  # the whole zone (AXFR, or IXFR answered AXFR-style)
    INCREMENTAL = "IXFR"


@dataclass(frozen=True, slots=True)
class Delta:
    """One IXFR step: from serial ``start`` to ``end``, records out then records in."""

    start: int
    end: int
    removed: tuple[Record, ...]
    added: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Result:
    """What a transfer brought: nothing new, a whole zone (``records``, SOA included once)
    or ``deltas`` in order."""

    kind: Kind
    serial: int
    records: tuple[Record, ...] = ()
    deltas: tuple[Delta, ...] = ()
    messages: int = 0


def _record(rrset: dns.rrset.RRset) -> Record:
    rd = rrset[0]
    return (rrset.name.canonicalize(), int(rrset.rdtype), rrset.ttl, canonical.rdata_wire(rd))


def _soa_serial(rec: Record) -> int:
    wire = rec[3]
    _, off = canonical.name_from_wire(wire)
    _, off = canonical.name_from_wire(wire, off)
    return int.from_bytes(wire[off : off + 4], "big")


@dataclass(slots=True)
class Inbound:
    """Reads the response messages of one transfer (see the module docstring).

    ``query`` is the :func:`transfer_query` sent; ``current`` our serial (None: none yet)."""

    query: dns.message.Message
    current: int | None
    _ctx: dns.tsig.HMACTSig | dns.tsig.GSSTSig | None = None
    _first: Record | None = None
    _serial: int = 0
    _full: list[Record] = field(default_factory=list)
    _deltas: list[Delta] = field(default_factory=list)
    _state: str = "start"  # start, first, axfr, del, add, done
    _delta_start: int = 0
    _removed: list[Record] = field(default_factory=list)
    _added: list[Record] = field(default_factory=list)
    _messages: int = 0
    _end: int = 0  # the serial the delta being read ends at
    result: Result | None = None

    @property
    def zone(self) -> dns.name.Name:
        return self.query.question[0].name

    def feed(self, wire: bytes) -> bool:
        """Read one response message; True once the transfer is complete.  Raises
        TransferError (refused, TSIG failure, records out of order or outside the zone)."""
        if self._state == "done":
            raise TransferError("data after the end of the transfer")
        msg = _parse(self.query, wire, self._ctx, multi=True)
        self._ctx = msg.tsig_ctx
        self._messages += 1
        rcode = msg.rcode()
        if rcode != dns.rcode.NOERROR:
            raise TransferError(f"transfer answered {dns.rcode.to_text(rcode)}")
        if self._messages == 1 and self.query.had_tsig and not msg.had_tsig:
            raise TransferError("the first message of a TSIG-signed transfer is not signed")
        for rrset in msg.answer:
            if rrset.rdclass != dns.rdataclass.IN:
                raise TransferError(f"{rrset.name}: class {rrset.rdclass} in an IN zone")
            if not rrset.name.is_subdomain(self.zone):
                raise TransferError(f"{rrset.name} is outside the zone {self.zone}")
            self._take(_record(rrset))
        # One SOA alone in the first message, not newer than ours: IXFR's "you are up to
        # date" (RFC 1995 4).
        if (
            self._state == "first"
            and self._messages == 1
            and self.query.question[0].rdtype == T.IXFR
            and self.current is not None
            and not serial_gt(self._serial, self.current)
        ):
            self._finish(Result(Kind.UP_TO_DATE, self._serial, messages=1))
        return self._state == "done"

    def _finish(self, result: Result) -> None:
        self.result = result
        self._state = "done"

    def _take(self, rec: Record) -> None:
        is_soa = rec[1] == SOA and rec[0] == self.zone
        state = self._state
        if state == "done":
            raise TransferError("data after the closing SOA")
        if state == "start":
            if not is_soa:
                raise TransferError("the transfer does not start with the zone's SOA")
            self._first = rec
            self._serial = _soa_serial(rec)
            self._state = "first"
            return
        if state == "first":
            ixfr = self.query.question[0].rdtype == T.IXFR
            if is_soa and ixfr and self.current is not None and _soa_serial(rec) == self.current:
                if self._serial == self.current:
                    raise TransferError("IXFR starts a change from our serial to itself")
                self._state = "del"
                self._delta_start = self.current
                self._removed = [rec]
                return
            if is_soa:
                # SOA, SOA: an empty zone body (AXFR of a zone with only the SOA).
                self._close_full(rec)
                return
            assert self._first is not None
            self._full = [self._first, rec]
            self._state = "axfr"
            return
        if state == "axfr":
            if is_soa:
                self._close_full(rec)
            else:
                self._full.append(rec)
            return
        if state == "del":
            if is_soa:
                self._end = _soa_serial(rec)
                self._added = [rec]
                self._state = "add"
            else:
                self._removed.append(rec)
            return
        # state == "add"
        if is_soa:
            serial = _soa_serial(rec)
            self._deltas.append(
                Delta(self._delta_start, self._end, tuple(self._removed), tuple(self._added))
            )
            self._removed, self._added = [], []
            if serial == self._serial and self._end == self._serial:
                self._finish(
                    Result(
                        Kind.INCREMENTAL,
                        self._serial,
                        deltas=tuple(self._deltas),
                        messages=self._messages + 1,
                    )
                )
                return
            if serial != self._end:
                raise TransferError(
                    f"IXFR sequence broken: a change starts at {serial} after one ending "
                    f"at {self._end}"
                )
            self._delta_start = serial
            self._removed = [rec]
            self._state = "del"
        else:
            self._added.append(rec)

    def _close_full(self, rec: Record) -> None:
        if _soa_serial(rec) != self._serial:
            raise TransferError(
                f"AXFR ends with serial {_soa_serial(rec)}, started with {self._serial}"
            )
        assert self._first is not None
        if not self._full:
            self._full = [self._first]
        self._finish(
            Result(Kind.FULL, self._serial, records=tuple(self._full), messages=self._messages)
        )


def apply_transfer(zone: dns.name.Name, current: Zone | None, result: Result) -> Zone:
    """The zone after ``result``: ``current`` itself when up to date, the transferred zone,
    or ``current`` with each delta applied (its SOA must match where a delta starts).
    Raises TransferError when the result is not a usable zone (no NS at the apex, a
    delta that does not fit)."""
    if result.kind is Kind.UP_TO_DATE:
        if current is None:
            raise TransferError("primary says we are up to date, but we have no copy")
        return current
    if result.kind is Kind.FULL:
        b = ZoneBuilder(zone)
        b.add_many(result.records)
        new = b.build()
    else:
        if current is None:
            raise TransferError("an incremental transfer, but we have no copy to apply it to")
        new = current
        for d in result.deltas:
            have = new.soa().serial
            if have != d.start:
                raise TransferError(f"IXFR change starts at {d.start}, our copy is at {have}")
            ours = {(n, t, rd) for n, t, _, rd in records(new)}
            data_out = tuple(r for r in d.removed if not (r[1] == SOA and r[0] == zone))
            missing = sorted((n, t) for n, t, _, rd in data_out if (n, t, rd) not in ours)
            if missing:
                name, rtype = missing[0]
                raise TransferError(
                    f"IXFR {d.start}->{d.end} removes {name} {T.to_text(T.RdataType(rtype))} "
                    "that our copy does not have (out of sync: a full transfer is needed)"
                )
            # Our own SOA goes, whatever the primary wrote as the old one.
            soa = new.get(new.origin, SOA)
            assert soa is not None
            soa_out = tuple((new.origin, SOA, soa.ttl, rd) for rd in soa.rdatas)
            new = apply(new, ZoneDiff(data_out + soa_out, d.added))
    _check_zone(new, zone, result.serial)
    return new


def _check_zone(z: Zone, origin: dns.name.Name, serial: int) -> None:
    soa = z.get(z.origin, SOA)
    if soa is None or len(soa.rdatas) != 1:
        raise TransferError("the transferred zone has no single SOA at its apex")
    if z.soa().serial != serial:
        raise TransferError(f"the result has serial {z.soa().serial}, expected {serial}")
    if z.get(z.origin, T.NS) is None:
        raise TransferError(f"the transferred zone has no NS records at {origin}")
