"""Master-file text (RFC 1035 section 5) to and from the zone model.

:func:`parse_zone_text` is the one entry point for reading zone text, so a faster parser can
replace dnspython's behind it without touching callers.  :func:`format_zone` writes one record
per line with absolute names, in canonical order, each RRset followed by its signatures: a
form that BIND, Knot and ldns all load.
"""

from __future__ import annotations

import base64
import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype

from dnsseal.errors import FileFormatError
from dnsseal.zone import canonical, fastparse, rdtext, reader
from dnsseal.zone.model import RRset, Zone, ZoneBuilder

T = dns.rdatatype


def parse_zone_text(text: str, origin: dns.name.Name | str, *, path: str = "<zone>") -> Zone:
    """Parse master-file ``text`` for the zone ``origin``.

    Raises :class:`FileFormatError` naming ``path`` and, where known, the line: syntax errors,
    names outside the zone, and a missing SOA or apex NS.
    """
    if isinstance(origin, str):
        try:
            origin = dns.name.from_text(origin)
        except dns.exception.DNSException as e:
            raise FileFormatError(path, None, f"bad origin {origin!r}: {e}") from None
    with paused_gc():
        fast = fastparse.parse(text, origin)
        if fast is None:
            zone = None
        else:
            builder = ZoneBuilder(origin)
            builder.add_many(fast)
            del fast
            zone = builder.build()
    if zone is not None:
        if zone.get(zone.origin, T.SOA) is None:
            raise FileFormatError(path, None, f"no SOA record at the zone apex {origin}")
        if zone.get(zone.origin, T.NS) is None:
            raise FileFormatError(path, None, f"no NS records at the zone apex {origin}")
        return zone
    return parse_zone_text_full(text, origin, path=path)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a zone is built: the model holds no cycles,
    and with it running, a large zone's millions of new objects set off collections that
    scan the whole growing heap again and again (half the build time at 100k names)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_zone_text_full(text: str, origin: dns.name.Name, *, path: str = "<zone>") -> Zone:
    """:func:`parse_zone_text` with the complete master-file reader only
    (:mod:`dnsseal.zone.reader`: dnspython's, with BIND's checks)."""
    dzone = reader.read_records(text, origin, path)
    builder = ZoneBuilder(origin)
    for name, rdataset in dzone.iterate_rdatasets():
        for rd in rdataset:
            builder.add(name, rdataset.rdtype, rdataset.ttl, canonical.rdata_wire(rd))
    return builder.build()


_FIRST_TYPES: dict[int, int] = {T.SOA: 0, T.DNSKEY: 1, T.NS: 2}
_HEAD_CACHE: dict[tuple[int, int], str] = {}


def _reversed_labels(name: dns.name.Name) -> tuple[bytes, ...]:
    return name.labels[::-1]


def _type_order(rtype: int) -> tuple[int, int]:
    return (_FIRST_TYPES.get(rtype, 9), rtype)


def _class_type_text(rdclass: int, rtype: int) -> str:
    """``CLASS\tTYPE\t`` for a record line (cached: dnspython's enum lookups are slow)."""
    key = (rdclass, rtype)
    text = _HEAD_CACHE.get(key)
    if text is None:
        cls = dns.rdataclass.to_text(dns.rdataclass.RdataClass(rdclass))
        typ = dns.rdatatype.to_text(dns.rdatatype.RdataType(rtype))
        text = _HEAD_CACHE[key] = f"{cls}\t{typ}\t"
    return text


# RRSIG RDATA text up to the signature, by the RDATA's first 18 octets: (signer name wire,
# text).  A zone's signatures share a few heads (type, key, times, signer).
_RRSIG_HEADS: dict[bytes, tuple[bytes, str]] = {}


def _rrsig_text(rd: bytes, rdclass: int) -> str:
    """:func:`rdtext.rdata_text` of RRSIG RDATA, with the text before the signature cached."""
    hit = _RRSIG_HEADS.get(rd[:18])
    if hit is not None and rd.startswith(hit[0], 18):
        return hit[1] + base64.b64encode(rd[18 + len(hit[0]) :]).decode("ascii")
    text = rdtext.rdata_text(T.RRSIG, rd, rdclass)
    end = 18
    while end < len(rd) and rd[end]:
        end += rd[end] + 1
    end += 1
    tail = base64.b64encode(rd[end:]).decode("ascii")
    if end <= len(rd) and text.endswith(" " + tail) and len(_RRSIG_HEADS) < 4096:
        _RRSIG_HEADS[rd[:18]] = (rd[18:end], text[: len(text) - len(tail)])
    return text


def _rrset_text(rrset: RRset, owner_text: str, rdclass: int) -> str:
    """:func:`format_rrset`'s lines, each ending in a newline, as one string (one RDATA
    without the lists: the common case)."""
    rtype = rrset.rtype
    head = f"{owner_text}\t{rrset.ttl}\t{_class_type_text(rdclass, rtype)}"
    text = _rrsig_text if rtype == T.RRSIG else None
    rds = rrset.rdatas
    if len(rds) == 1:
        if text is not None:
            return f"{head}{text(rds[0], rdclass)}\n"
        return f"{head}{rdtext.rdata_text(rtype, rds[0], rdclass)}\n"
    return "\n".join(format_rrset(rrset, owner_text, rdclass)) + "\n"


def format_rrset(rrset: RRset, owner_text: str, rdclass: int = dns.rdataclass.IN) -> list[str]:
    """The lines of one RRset: ``owner TTL CLASS TYPE RDATA``."""
    head = f"{owner_text}\t{rrset.ttl}\t{_class_type_text(rdclass, rrset.rtype)}"
    rtype = rrset.rtype
    if rtype == T.RRSIG:
        return [head + _rrsig_text(rd, rdclass) for rd in rrset.rdatas]
    text = rdtext.rdata_text
    return [head + text(rtype, rd, rdclass) for rd in rrset.rdatas]


_TYPE_ORDERS: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}


def _types_in_order(node: Mapping[int, RRset], sigs: Mapping[int, RRset]) -> list[int]:
    """The types of a name's RRsets and signatures in output order (SOA, DNSKEY, NS first;
    cached: names repeat a few combinations)."""
    key = (tuple(node), tuple(sigs))
    got = _TYPE_ORDERS.get(key)
    if got is None:
        got = sorted(node.keys() | sigs.keys(), key=_type_order)
        if len(_TYPE_ORDERS) < 4096:
            _TYPE_ORDERS[key] = got
    return got


def iter_zone_text(zone: Zone, *, header: Iterable[str] = ()) -> Iterator[str]:
    """The zone as master-file text in pieces (one per owner name), for streaming output:
    comments from ``header``, then every RRset (SOA first) with its RRSIGs, names in
    canonical order."""
    head = header_text(header)
    if head:
        yield head
    for _, _, block in iter_name_blocks(zone):
        yield block


def header_text(header: Iterable[str]) -> str:
    """The comment lines that open a zone file written by :func:`iter_zone_text`."""
    return "".join(f"; {h}\n" for h in header)


def iter_name_blocks(zone: Zone) -> Iterator[tuple[dns.name.Name, str, str]]:
    """``(owner, owner text, block)`` for every owner of ``zone`` in canonical order (the
    apex first): the block is the text of all the owner's lines (:func:`name_block`)."""
    names = set(zone.rrsets) | set(zone.rrsigs)
    names.discard(zone.origin)
    # Owners are lower-case (the model's rule): canonical order is that of reversed labels.
    ordered = [zone.origin, *sorted(names, key=_reversed_labels)]
    empty: dict[int, RRset] = {}
    rrsets, rrsigs, rdclass = zone.rrsets, zone.rrsigs, zone.rdclass
    for name in ordered:
        owner = rdtext.labels_text(name.labels)
        yield name, owner, name_block(rrsets.get(name, empty), rrsigs.get(name, empty), owner,
                                      rdclass)  # fmt: skip


def name_block(node: Mapping[int, RRset], sigs: Mapping[int, RRset], owner: str,
               rdclass: int = dns.rdataclass.IN) -> str:  # fmt: skip
    """The lines of one owner (``owner`` is its text): each RRset, SOA, DNSKEY and NS
    first, followed by its RRSIGs; one record per line, each line ending in a newline."""
    return name_block_groups(node, sigs, owner, rdclass)[0]


# A group of a block's lines: (type, start, start of its RRSIG lines, end), offsets in the
# block's text.
Group = tuple[int, int, int, int]


def name_block_groups(node: Mapping[int, RRset], sigs: Mapping[int, RRset], owner: str,
                      rdclass: int = dns.rdataclass.IN) -> tuple[str, list[Group]]:  # fmt: skip
    """:func:`name_block`'s text and where its groups of lines are: for each type in
    output order, the RRset's lines from ``start`` and the lines of its RRSIGs from the
    third offset to ``end`` (the groups ``dnsseal.signfile.filesnapshot.line_groups``
    finds in the text)."""
    if len(node) == 1 and len(sigs) <= 1 and (not sigs or sigs.keys() == node.keys()):
        types = list(node)  # the common case: one RRset, perhaps signed
    else:
        types = _types_in_order(node, sigs)
    parts: list[str] = []
    groups: list[Group] = []
    pos = 0
    for rtype in types:
        start = pos
        rrset = node.get(rtype)
        if rrset is not None and rrset.rdatas:
            part = _rrset_text(rrset, owner, rdclass)
            parts.append(part)
            pos += len(part)
        sigs_at = pos
        sig = sigs.get(rtype)
        if sig is not None and sig.rdatas:
            part = _rrset_text(sig, owner, rdclass)
            parts.append(part)
            pos += len(part)
        if pos > start:
            groups.append((rtype, start, sigs_at, pos))
    return "".join(parts), groups


def format_zone(zone: Zone, *, header: Iterable[str] = ()) -> str:
    """The zone as master-file text (see :func:`iter_zone_text`)."""
    return "".join(iter_zone_text(zone, header=header))
