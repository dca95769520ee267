"""A fast reader of upstream replies: ``read_reply(wire)`` builds the same
``dns.message.Message`` as ``dns.message.from_wire(wire)``, in about a third of the time.

The resolver parses every upstream reply; dnspython's general reader spends most of that
time on generic machinery: a ``Name`` built (and validated) for every owner name and every
name in an rdata, every rdata built through its validating constructor, two hashes of every
rdata (``to_digestable``) as it joins its RRset, an ``enum`` conversion per field.  This
reader keeps dnspython's result and its rules, and does the work once:

* names are decompressed with a memo per message: every label position read once is
  remembered with its labels and the end of its segment, so a pointer to a known position
  costs a dictionary look-up (the pointer rules are dnspython's, checked per use: a pointer
  goes strictly backwards, the target's labels end before the segment that points to it, at
  most 16 pointers per name, a name has at most 255 octets, labels 63);
* the common types (A, AAAA, NS, CNAME, PTR, DNAME, SOA, MX, DS, DNSKEY, RRSIG, NSEC) are
  built directly as dnspython's own rdata classes, with the checks their constructors make
  (address length, DS digest length, NSEC bitmap order and size, whole RDLENGTH consumed);
  every other type is read by dnspython's ``dns.rdata.from_wire_parser``, exactly as
  ``from_wire`` reads it;
* an rdata joins its RRset with dnspython's semantics kept: an rdata equal (in DNSSEC
  canonical form) to one already in the RRset is dropped, the RRset's TTL is the lowest of
  its RRs, and a second rdata of a singleton type (SOA, CNAME, DNAME, NSEC) replaces the
  first;
* the rdata of the common types keep their hash: dnspython hashes an rdata by building its
  canonical wire form (``hash(rd.to_digestable())``, 3-15 microseconds, every time it joins
  a set or a dict: its RRset here, then the validator's sets), where this reader has the
  octets at hand (the rdata's own octets, the names lower-cased where the canonical form
  lower-cases them).  The classes are dnspython's, subclassed only to hold that number
  (:func:`_hashed`): an rdata made otherwise (``replace``, unpickling) hashes as dnspython's.

Anything this reader does not handle itself (an opcode other than QUERY, a TSIG record)
goes to ``dns.message.from_wire`` whole.  Hostile input is rejected with a
``dns.exception.DNSException`` wherever ``from_wire`` rejects it (short data, bad pointers,
pointer loops, lying counts, trailing octets, an RDLENGTH that does not match the rdata);
``tests/resolver/test_replyreader.py`` holds both readers to the same answers on real and
mutated replies.
"""

from __future__ import annotations

import struct
from typing import Any

import dns.dnssectypes
import dns.exception
import dns.flags
import dns.ipv6
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.dnskeybase
import dns.rrset
import dns.wire

from dnsseal.validator.names import HashedName

__all__ = ["Reply", "read_reply"]

MAX_POINTERS = 16  # dnspython's MAX_COMPRESSION_POINTER_CHAIN

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_DS_HEAD = struct.Struct("!HBB")
_SIG_HEAD = struct.Struct("!HBBIIIH")
_SOA_TAIL = struct.Struct("!IIIII")

_IN = 1
_SECTIONS = tuple(dns.message.MessageSection)
_QUESTION, _ANSWER, _AUTHORITY, _ADDITIONAL = _SECTIONS
_OPT = int(dns.rdatatype.OPT)
_TSIG = int(dns.rdatatype.TSIG)
_SINGLETONS = frozenset(int(t) for t in (5, 6, 30, 39, 47))  # CNAME SOA NXT DNAME NSEC
_SIG_TYPES = frozenset((int(dns.rdatatype.RRSIG), int(dns.rdatatype.SIG)))
_DS_LENGTHS = {1: 20, 2: 32, 3: 32, 4: 48}  # dnspython's DSBase._digest_length_by_type

_NAME_NEW = object.__new__
_NAME_CLS: type[dns.name.Name] = HashedName  # keeps its hash (the resolver's dict keys)
_set = object.__setattr__


class BadReply(dns.exception.FormError):
    """A reply this reader refuses (``dns.message.from_wire`` refuses it too)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)  # type: ignore[no-untyped-call]


class _Fallback(Exception):
    """Internal: this reply goes to dnspython's reader whole."""


MEMO_LIMIT = 2048  # values remembered per table: hostile replies cannot grow it further


def _memo(make: Any) -> dict[int, Any]:
    """A dict that fills itself with ``make(key)``: the enum conversions (``RdataType.make``
    and friends) done once per value, with dnspython's own result."""

    class _Table(dict[int, Any]):
        def __missing__(self, key: int) -> Any:
            value = make(key)
            if len(self) < MEMO_LIMIT:
                self[key] = value
            return value

    return _Table()


_RDTYPE = _memo(dns.rdatatype.RdataType.make)
_RDCLASS = _memo(dns.rdataclass.RdataClass.make)
_ALGORITHM = _memo(dns.dnssectypes.Algorithm.make)
_DIGEST = _memo(dns.dnssectypes.DSDigest.make)
_KEYFLAGS = _memo(dns.rdtypes.dnskeybase.Flag)
_FLAGS = _memo(dns.flags.Flag)
_RCODE = _memo(dns.rcode.Rcode.make)
_OPCODE = _memo(lambda code: dns.opcode.from_flags(code << 11))


class Reply(dns.message.QueryMessage):
    """The message :func:`read_reply` builds: dnspython's ``QueryMessage`` with the same
    fields, and three costs it pays for every reply made cheaper.  ``rcode()`` and
    ``opcode()`` are ``dns.rcode.from_flags`` and ``dns.opcode.from_flags`` with the enum
    conversion done once per value (the resolver and the validator ask a reply's rcode a
    few times each); ``index`` (dnspython's
    ``find_rrset`` table, which nothing on the resolver's path reads) is built from the
    sections when first read, not while reading: its keys hash every owner name."""

    def rcode(self) -> dns.rcode.Rcode:
        code = (int(self.flags) & 0x000F) | ((int(self.ednsflags) >> 20) & 0xFF0)
        return _RCODE[code]  # type: ignore[no-any-return]

    def opcode(self) -> dns.opcode.Opcode:
        return _OPCODE[(int(self.flags) & 0x7800) >> 11]  # type: ignore[no-any-return]

    @property
    def index(self) -> dict[Any, dns.rrset.RRset]:
        index: dict[Any, dns.rrset.RRset] | None = self.__dict__["_index"]
        if index is None:
            # dnspython's keys: (section, name, class, type, covers, deleting); a later
            # RRset with the same key replaces an earlier one, as find_rrset leaves it.
            index = self.__dict__["_index"] = {
                (n, r.name, r.rdclass, r.rdtype, r.covers, r.deleting): r
                for n, section in zip(_SECTIONS, self.sections, strict=True)
                for r in section
            }
        return index

    @index.setter
    def index(self, value: dict[Any, dns.rrset.RRset] | None) -> None:
        self.__dict__["_index"] = value


def _cls(rdtype: str) -> Any:
    return _hashed(
        dns.rdata.get_rdata_class(  # type: ignore[no-untyped-call]
            dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)
        )
    )


def _hashed(base: Any) -> Any:
    """``base`` (a dnspython rdata class) with a slot for the hash of its canonical form,
    which the builders below set from the octets they read; equal to dnspython's
    ``hash(rd.to_digestable(dns.name.root))``, so these rdata and dnspython's own mix in
    sets and dicts (tests/resolver/test_replyreader.py checks it on every rdata read).
    Without it set (an rdata made by ``replace()``) the hash is dnspython's.  A copy or a
    pickle is of ``base`` itself (the hash of bytes differs between processes)."""

    class Hashed(base):  # type: ignore[misc]
        __slots__ = ("_hash",)

        def __hash__(self) -> int:
            try:
                return self._hash  # type: ignore[no-any-return]
            except AttributeError:
                return base.__hash__(self)  # type: ignore[no-any-return]

        def __reduce_ex__(self, protocol: Any) -> Any:
            state = {s: getattr(self, s) for s in self._get_all_slots() if s != "_hash"}
            return _plain, (base, state)

    Hashed.__name__ = base.__name__
    Hashed.__qualname__ = base.__qualname__
    Hashed.__module__ = base.__module__
    return Hashed


def _plain(base: Any, state: dict[str, Any]) -> Any:
    """A copy or an unpickled reader rdata: ``base`` itself, with the same fields."""
    rd = base.__new__(base)
    rd.__setstate__(state)
    return rd


_RRSET = dns.rrset.RRset
_NONE = dns.rdatatype.NONE


def _rrset(name: dns.name.Name, rdclass: Any, rdtype: Any, covers: Any = _NONE) -> Any:
    """``dns.rrset.RRset(name, rdclass, rdtype, covers)``: the same fields set directly
    (dnspython's constructor goes through three ``__init__`` and ``super()`` calls)."""
    rrset = _NAME_NEW(_RRSET)
    rrset.items = {}
    rrset.rdclass = rdclass
    rrset.rdtype = rdtype
    rrset.covers = covers
    rrset.ttl = 0
    rrset.name = name
    rrset.deleting = None
    return rrset


def _canonical(lower: tuple[bytes, ...]) -> bytes:
    """A name's canonical wire form from its lower-cased labels (the root label last)."""
    return b"".join(bytes((len(label),)) + label for label in lower)


class _Names:
    """Name decompression for one message, memoised per label position.

    ``memo[p]`` = (name, segment end, pointers, octets, lower-cased labels) of the name
    that starts at ``p``: the segment is the labels read from ``p`` up to and including its
    terminating zero octet or pointer; ``pointers`` the compression pointers followed
    after it.  The entry does not depend on who reads it: a reader starting at ``p`` with
    its data ending at ``end`` may use it if the segment ends by ``end`` (dnspython reads
    the same octets in the same order, so it fails exactly when this check fails).
    """

    __slots__ = ("memo", "wire")

    def __init__(self, wire: bytes) -> None:
        self.wire = wire
        self.memo: dict[int, tuple[dns.name.Name, int, int, int, tuple[bytes, ...]]] = {}

    def read(
        self, pos: int, end: int, decompress: bool = True
    ) -> tuple[dns.name.Name, int, tuple[bytes, ...]]:
        """The name at ``pos`` (its octets and pointers within ``end``): (name, the
        position after it, its lower-cased labels)."""
        memo = self.memo
        got = memo.get(pos)
        if got is None:
            wire = self.wire
            if decompress and pos + 2 <= end and wire[pos] >= 0xC0:
                # A bare pointer to a name already read (most owner names): what _segment
                # would find, without its loops, when none of its checks can fail (a
                # pointer strictly backwards, to a name ending before it, not one pointer
                # too many); otherwise _segment reads it, and raises what it raises.
                target = ((wire[pos] & 0x3F) << 8) | wire[pos + 1]
                hit = memo.get(target)
                if hit is not None and target < pos and hit[1] <= pos and hit[2] < MAX_POINTERS:
                    memo[pos] = (hit[0], pos + 2, hit[2] + 1, hit[3], hit[4])
                    return hit[0], pos + 2, hit[4]
            got = self._segment(pos, end)
        name, seg_end, hops, _, lower = got
        if seg_end > end:
            raise BadReply("name runs past its data")
        if hops and not decompress:
            raise dns.name.DecompressionForbidden
        if hops > MAX_POINTERS:
            raise dns.name.PointerChainTooLong
        return name, seg_end, lower

    def _segment(
        self, start: int, end: int, behind: int = 0
    ) -> tuple[dns.name.Name, int, int, int, tuple[bytes, ...]]:
        """Read the labels from ``start`` (within ``end``) to their zero octet or pointer,
        follow the pointer, and remember every label position of the segment.  ``behind``:
        the pointers the name being read followed to get here (the chain is cut at
        :data:`MAX_POINTERS` before recursing, so a long chain cannot exhaust the stack)."""
        wire = self.wire
        starts: list[int] = []
        labels: list[bytes] = []
        pos = start
        while True:
            if pos >= end:
                raise BadReply("name runs past its data")
            count = wire[pos]
            if count == 0:
                pos += 1
                tail: tuple[bytes, ...] = (b"",)
                tail_lower: tuple[bytes, ...] = (b"",)
                hops = 0
                octets = 1
                break
            if count < 64:
                nxt = pos + 1 + count
                if nxt > end:
                    raise BadReply("label runs past its data")
                starts.append(pos)
                labels.append(wire[pos + 1 : nxt])
                pos = nxt
                continue
            if count < 192:
                raise dns.name.BadLabelType
            if pos + 2 > end:
                raise BadReply("pointer runs past its data")
            target = ((count & 0x3F) << 8) | wire[pos + 1]
            pos += 2
            # dnspython: a pointer goes strictly backwards, and the name it points to
            # must lie wholly before the segment holding the pointer.
            if target >= start:
                raise dns.name.BadPointer
            if behind >= MAX_POINTERS:
                raise dns.name.PointerChainTooLong
            got = self.memo.get(target)
            if got is None:
                got = self._segment(target, start, behind + 1)
            elif got[1] > start:
                raise BadReply("pointer target overlaps its name")
            tail_name, _, tail_hops, octets, tail_lower = got
            tail = tail_name.labels
            hops = tail_hops + 1
            if hops > MAX_POINTERS:
                raise dns.name.PointerChainTooLong
            break
        memo = self.memo
        first: tuple[dns.name.Name, int, int, int, tuple[bytes, ...]] | None = None
        for i in range(len(labels) - 1, -1, -1):
            octets += len(labels[i]) + 1
            tail = (labels[i], *tail)
            tail_lower = (labels[i].lower(), *tail_lower)
            if octets > 255:
                # Only an error for a name that reaches this far; shorter suffixes are
                # still valid names, but no name can use this position any more.
                raise dns.name.NameTooLong
            name = _NAME_NEW(_NAME_CLS)
            _set(name, "labels", tail)
            _set(name, "_hash", None)
            first = (name, pos, hops, octets, tail_lower)
            memo[starts[i]] = first
        if first is None:  # the segment is a bare zero octet or a bare pointer
            if hops:
                name = tail_name
            else:
                name = _NAME_NEW(_NAME_CLS)
                _set(name, "labels", tail)
                _set(name, "_hash", None)
            first = (name, pos, hops, octets, tail_lower)
            memo[start] = first
        return first


# --- rdata builders: (names, wire, pos, end) -> rdata, reading exactly wire[pos:end] ------


def _new(cls: Any, rdtype: int) -> Any:
    rd = cls.__new__(cls)
    _set(rd, "rdclass", dns.rdataclass.IN)
    _set(rd, "rdtype", _RDTYPE[rdtype])
    _set(rd, "rdcomment", None)
    return rd


def _exact(got: int, end: int) -> None:
    if got != end:
        raise BadReply("RDLENGTH does not match the rdata")


_A_CLS = _cls("A")


def _a(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    if end - pos != 4:
        raise BadReply("A rdata is not 4 octets")
    rd = _new(_A_CLS, 1)
    _set(rd, "address", f"{wire[pos]}.{wire[pos + 1]}.{wire[pos + 2]}.{wire[pos + 3]}")
    _set(rd, "_hash", hash(wire[pos:end]))
    return rd


_AAAA_CLS = _cls("AAAA")


def _aaaa(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    if end - pos != 16:
        raise BadReply("AAAA rdata is not 16 octets")
    rd = _new(_AAAA_CLS, 28)
    octets = wire[pos:end]
    _set(rd, "address", dns.ipv6.inet_ntoa(octets))
    _set(rd, "_hash", hash(octets))
    return rd


def _target(rdtype: int, decompress: bool) -> Any:
    """NS, CNAME, PTR or DNAME (the target never compressed): the canonical form
    lower-cases the target (RFC 4034 s6.2)."""
    cls = _cls(dns.rdatatype.RdataType(rdtype).name)

    def build(names: _Names, wire: bytes, pos: int, end: int) -> Any:
        target, after, lower = names.read(pos, end, decompress)
        _exact(after, end)
        rd = _new(cls, rdtype)
        _set(rd, "target", target)
        _set(rd, "_hash", hash(_canonical(lower)))
        return rd

    return build


_MX_CLS = _cls("MX")


def _mx(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    if end - pos < 2:
        raise BadReply("MX rdata too short")
    exchange, after, lower = names.read(pos + 2, end)
    _exact(after, end)
    rd = _new(_MX_CLS, 15)
    _set(rd, "preference", (wire[pos] << 8) | wire[pos + 1])
    _set(rd, "exchange", exchange)
    _set(rd, "_hash", hash(wire[pos : pos + 2] + _canonical(lower)))
    return rd


_SOA_CLS = _cls("SOA")


def _soa(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    mname, pos, mlower = names.read(pos, end)
    rname, pos, rlower = names.read(pos, end)
    _exact(pos + 20, end)
    serial, refresh, retry, expire, minimum = _SOA_TAIL.unpack_from(wire, pos)
    rd = _new(_SOA_CLS, 6)
    _set(rd, "mname", mname)
    _set(rd, "rname", rname)
    _set(rd, "serial", serial)
    _set(rd, "refresh", refresh)
    _set(rd, "retry", retry)
    _set(rd, "expire", expire)
    _set(rd, "minimum", minimum)
    _set(rd, "_hash", hash(_canonical(mlower) + _canonical(rlower) + wire[pos:end]))
    return rd


_DS_CLS = _cls("DS")


def _ds(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    if end - pos < 4:
        raise BadReply("DS rdata too short")
    key_tag, algorithm, digest_type = _DS_HEAD.unpack_from(wire, pos)
    digest = wire[pos + 4 : end]
    want = _DS_LENGTHS.get(digest_type)
    if want is None:
        if digest_type == 0:
            raise BadReply("DS digest type 0 is reserved")
    elif len(digest) != want:
        raise BadReply("DS digest length inconsistent with digest type")
    rd = _new(_DS_CLS, 43)
    _set(rd, "key_tag", key_tag)
    _set(rd, "algorithm", _ALGORITHM[algorithm])
    _set(rd, "digest_type", _DIGEST[digest_type])
    _set(rd, "digest", digest)
    _set(rd, "_hash", hash(wire[pos:end]))
    return rd


_DNSKEY_CLS = _cls("DNSKEY")


def _dnskey(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    if end - pos < 4:
        raise BadReply("DNSKEY rdata too short")
    flags, protocol, algorithm = _DS_HEAD.unpack_from(wire, pos)
    rd = _new(_DNSKEY_CLS, 48)
    _set(rd, "flags", _KEYFLAGS[flags])
    _set(rd, "protocol", protocol)
    _set(rd, "algorithm", _ALGORITHM[algorithm])
    _set(rd, "key", wire[pos + 4 : end])
    _set(rd, "_hash", hash(wire[pos:end]))
    return rd


_RRSIG_CLS = _cls("RRSIG")


def _rrsig(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    if end - pos < 18:
        raise BadReply("RRSIG rdata too short")
    covered, algorithm, labels, ttl, expiration, inception, key_tag = _SIG_HEAD.unpack_from(
        wire, pos
    )
    signer, after, _ = names.read(pos + 18, end, False)
    rd = _new(_RRSIG_CLS, 46)
    _set(rd, "type_covered", _RDTYPE[covered])
    _set(rd, "algorithm", _ALGORITHM[algorithm])
    _set(rd, "labels", labels)
    _set(rd, "original_ttl", ttl)
    _set(rd, "expiration", expiration)
    _set(rd, "inception", inception)
    _set(rd, "key_tag", key_tag)
    _set(rd, "signer", signer)
    _set(rd, "signature", wire[after:end])
    # The signer is not compressed: its octets lower-cased are its canonical form (a
    # label length, at most 63, is never an upper-case ASCII letter).
    head = wire[pos : pos + 18]
    _set(rd, "_hash", hash(head + wire[pos + 18 : after].lower() + wire[after:end]))
    return rd


def _windows(wire: bytes, pos: int, end: int) -> tuple[tuple[int, bytes], ...]:
    """A type bitmap (NSEC, NSEC3) with dnspython's ``Bitmap`` checks: windows in
    increasing order, 1-32 octets each, no trailing zero octet."""
    windows = []
    last = -1
    while pos < end:
        if pos + 2 > end:
            raise BadReply("type bitmap runs past its data")
        window, size = wire[pos], wire[pos + 1]
        pos += 2
        if pos + size > end:
            raise BadReply("type bitmap runs past its data")
        if window <= last or size == 0 or size > 32 or wire[pos + size - 1] == 0:
            raise BadReply("bad type bitmap")
        last = window
        windows.append((window, wire[pos : pos + size]))
        pos += size
    return tuple(windows)


_NSEC_CLS = _cls("NSEC")


def _nsec(names: _Names, wire: bytes, pos: int, end: int) -> Any:
    nxt, after, _ = names.read(pos, end, False)
    rd = _new(_NSEC_CLS, 47)
    _set(rd, "next", nxt)
    _set(rd, "windows", _windows(wire, after, end))
    _set(rd, "_hash", hash(wire[pos:end]))  # the next name is not lower-cased (RFC 6840)
    return rd


_OPT_CLS = _cls("OPT")
_EMPTY_HASH = hash(b"")

_BUILDERS: dict[int, Any] = {
    1: _a,
    28: _aaaa,
    2: _target(2, True),  # NS
    5: _target(5, True),  # CNAME
    12: _target(12, True),  # PTR
    39: _target(39, False),  # DNAME
    6: _soa,
    15: _mx,
    43: _ds,
    48: _dnskey,
    46: _rrsig,
    47: _nsec,
}


# --- the message ------------------------------------------------------------------------


def read_reply(wire: bytes, scrub: bool = False) -> dns.message.Message:
    """``dns.message.from_wire(wire)`` (no keyring, no origin, trailing octets refused),
    faster; the same message, or a ``dns.exception.DNSException`` for malformed input.

    ``scrub``: an IN A or AAAA record whose RDLENGTH is not 4 or 16 is left out of the
    message (an RRset left empty is not made) and noted in ``msg.errors``, where dnspython
    would refuse the whole reply: Unbound's ``scrub_sanitize_rr_length``.  The record's
    framing (its RDLENGTH within the message) is intact, so the rest of the reply reads as
    it would without it; any other malformation still refuses the reply."""
    try:
        return _read(wire, scrub)
    except _Fallback:  # not a QUERY reply, or TSIG-signed: nothing is scrubbed there
        return dns.message.from_wire(wire)


_ADDRESS_LENGTHS = {1: 4, 28: 16}


def _read(wire: bytes, scrub: bool) -> dns.message.Message:
    size = len(wire)
    if size < 12:
        raise dns.message.ShortHeader
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if (flags >> 11) & 0xF != dns.opcode.QUERY:
        raise _Fallback
    msg = Reply(id=ident)
    msg.flags = _FLAGS[flags]
    msg.wire = wire
    names = _Names(wire)
    read_name = names.read
    sections = msg.sections
    pos = 12
    question = sections[0]
    for _ in range(qdcount):
        qname, pos, _ = read_name(pos, size)
        if pos + 4 > size:
            raise BadReply("question runs past the message")
        rdtype = _RDTYPE[(wire[pos] << 8) | wire[pos + 1]]
        rdclass = _RDCLASS[(wire[pos + 2] << 8) | wire[pos + 3]]
        pos += 4
        asked = _rrset(qname, rdclass, rdtype)
        question.append(asked)
    parser: dns.wire.Parser | None = None
    for number, count in ((_ANSWER, ancount), (_AUTHORITY, nscount), (_ADDITIONAL, arcount)):
        section = sections[number]
        found: dict[tuple[tuple[bytes, ...], int, int, int], dns.rrset.RRset] = {}
        for _ in range(count):
            name, pos, lower = read_name(pos, size)
            if pos + 10 > size:
                raise BadReply("RR runs past the message")
            rdtype, rdclass, ttl, rdlen = _RR.unpack_from(wire, pos)
            pos += 10
            end = pos + rdlen
            if end > size:
                raise BadReply("RDLENGTH runs past the message")
            if rdtype == _OPT:
                if number != 3 or msg.opt is not None or len(lower) != 1:
                    raise dns.message.BadEDNS
            elif rdtype == _TSIG:
                raise _Fallback  # dnspython's TSIG rules and errors
            if scrub and rdclass == _IN and _ADDRESS_LENGTHS.get(rdtype, rdlen) != rdlen:
                why = f"{name} type {rdtype} RR of impossible length {rdlen} left out"
                msg.errors.append(dns.message.MessageError(BadReply(why), pos))
                pos = end
                continue
            if rdtype == _OPT and rdlen == 0:
                # The usual OPT (no options), as dnspython's from_rdata builds it.
                rd = _OPT_CLS.__new__(_OPT_CLS)
                _set(rd, "rdclass", _RDCLASS[rdclass])
                _set(rd, "rdtype", dns.rdatatype.OPT)
                _set(rd, "rdcomment", None)
                _set(rd, "options", ())
                _set(rd, "_hash", _EMPTY_HASH)  # no options: the canonical form is empty
                opt = _rrset(name, rd.rdclass, rd.rdtype)
                opt.ttl = ttl
                opt.items[rd] = None
                msg.opt = opt
                pos = end
                continue
            build = _BUILDERS.get(rdtype) if rdclass == _IN else None
            if build is not None:
                try:
                    rd = build(names, wire, pos, end)
                except (IndexError, struct.error) as e:  # not reached: lengths are checked
                    raise BadReply(str(e)) from e
            else:
                if parser is None:
                    parser = dns.wire.Parser(wire)
                parser.current = parser.furthest = pos
                with parser.restrict_to(rdlen):
                    rd = dns.rdata.from_wire_parser(
                        _RDCLASS[rdclass], _RDTYPE[rdtype], parser, None
                    )
            pos = end
            if rdtype == _OPT:
                msg.opt = dns.rrset.from_rdata(name, ttl, rd)
                continue
            covers = int(rd.covers()) if rdtype in _SIG_TYPES else 0
            key = (lower, rdclass, rdtype, covers)
            if ttl > 0x7FFFFFFF:
                ttl = 0
            rrset = found.get(key)
            if rrset is None:
                rrset = _rrset(name, _RDCLASS[rdclass], _RDTYPE[rdtype], _RDTYPE[covers])
                section.append(rrset)
                found[key] = rrset
                rrset.ttl = ttl
                rrset.items[rd] = None
                continue
            # dnspython's Rdataset.add: the lowest TTL; a singleton type keeps the last
            # rdata; an rdata equal to one already there is not added again.
            rrset.ttl = min(rrset.ttl, ttl)
            if rdtype in _SINGLETONS:
                rrset.items.clear()
            rrset.items.setdefault(rd)
    msg.index = None  # made when read (see Reply)
    if pos != size:
        raise dns.message.TrailingJunk
    return msg
