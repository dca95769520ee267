"""The serial BIND last served for an inline-signed zone, read from the files it left.

BIND signs ``file`` inline into ``file.signed`` (raw format by default, text with
``masterfile-format text``) and journals every later version in ``file.signed.jnl``; the
journal is ahead of the signed file until named dumps it again.  Dynamic updates of the
unsigned zone go to ``file.jnl``.  A server taking the zone over must continue from the
highest of these, or secondaries that have BIND's newer serial stop following it.

Formats (BIND 9 ``lib/dns``): a journal starts with a 16-octet ``;BIND LOG V9`` magic
then ``begin serial, begin offset, end serial, end offset`` (big-endian 32-bit); a raw
zone file has a header (``format = 2, version, dumptime`` and, in version 1,
``flags, sourceserial, lastxfrin``), then rdatasets
``totallen(4) class(2) type(2) covers(2) ttl(4) count(4) namelen(2) name``, each rdata
``len(2) data`` (uncompressed).
"""

from __future__ import annotations

import struct
from pathlib import Path

import dns.exception
import dns.name
import dns.zone

__all__ = ["bind_serials", "highest"]

JOURNAL_MAGIC = (b";BIND LOG V9\n", b";BIND LOG V9.2\n")
RAW_FORMAT = 2
SOA = 6


def _journal_end(data: bytes) -> int | None:
    if not data.startswith(JOURNAL_MAGIC) or len(data) < 32:
        return None
    _begin, _, end, _ = struct.unpack_from(">IIII", data, 16)
    return int(end)


def _skip_name(data: bytes, pos: int) -> int:
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1


def _raw_soa_serial(data: bytes) -> int | None:
    """The SOA serial of a raw-format zone file (None: not raw, or no SOA)."""
    if len(data) < 12:
        return None
    fmt, version = struct.unpack_from(">II", data, 0)
    if fmt != RAW_FORMAT or version not in (0, 1):
        return None
    pos = 12 if version == 0 else 24
    while pos + 20 <= len(data):
        total, _cls, rtype, _covers, _ttl, count, namelen = struct.unpack_from(
            ">IHHHIIH", data, pos
        )
        if total < 20:
            return None
        if rtype == SOA and count:
            rd = pos + 20 + namelen + 2  # the first rdata, past its length
            end = _skip_name(data, _skip_name(data, rd))
            return int(struct.unpack_from(">I", data, end)[0])
        pos += total
    return None


def _text_soa_serial(path: Path, origin: str) -> int | None:
    try:
        zone = dns.zone.from_file(str(path), origin, relativize=False, check_origin=False)
    except (dns.exception.DNSException, UnicodeDecodeError, ValueError):
        return None
    soa = zone.get_rdataset(origin, "SOA")
    return int(soa[0].serial) if soa else None


def bind_serials(source: Path, origin: str) -> dict[Path, int]:
    """The serials in the files BIND keeps beside the zone file ``source`` (only the
    files that exist and could be read: a broken leftover never stops the zone)."""
    out: dict[Path, int] = {}
    signed = Path(f"{source}.signed")
    for path in (signed, Path(f"{signed}.jnl"), Path(f"{source}.jnl")):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        try:
            if path.suffix == ".jnl":
                serial = _journal_end(data)
            else:
                serial = _raw_soa_serial(data)
                if serial is None:
                    serial = _text_soa_serial(path, origin)
        except (struct.error, IndexError):
            serial = None
        if serial is not None:
            out[path] = serial
    return out


def highest(serials: list[int]) -> int | None:
    """The newest of ``serials`` in RFC 1982 order (None for none)."""
    best: int | None = None
    for s in serials:
        if best is None or 0 < ((s - best) & 0xFFFFFFFF) < 2**31:
            best = s
    return best
