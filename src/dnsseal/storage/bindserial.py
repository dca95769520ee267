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

import logging
import os
import re
import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["bind_serials", "highest"]

log = logging.getLogger(__name__)

JOURNAL_MAGIC = (b";BIND LOG V9\n", b";BIND LOG V9.2\n")
RAW_FORMAT = 2
SOA = 6


def _journal_end(head: bytes) -> int | None:
    if not head.startswith(JOURNAL_MAGIC) or len(head) < 32:
        return None
    _begin, _, end, _ = struct.unpack_from(">IIII", head, 16)
    return int(end)


def _skip_name(data: bytes, pos: int) -> int:
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1


def _raw_soa_serial(f: BinaryIO) -> int | None:
    """The SOA serial of a raw-format zone file, reading rdataset by rdataset (named
    dumps the apex first; a huge zone is not read whole).  None: not raw, or no SOA."""
    head = f.read(12)
    if len(head) < 12:
        return None
    fmt, version = struct.unpack_from(">II", head, 0)
    if fmt != RAW_FORMAT or version not in (0, 1):
        return None
    if version == 1:
        f.read(12)  # flags, sourceserial, lastxfrin
    while True:
        size = f.read(4)
        if len(size) < 4:
            return None
        total = int(struct.unpack(">I", size)[0])
        if total < 24:
            return None
        body = f.read(total - 4)
        if len(body) < total - 4:
            return None
        _cls, rtype, _covers, _ttl, count, namelen = struct.unpack_from(">HHHIIH", body, 0)
        if rtype == SOA and count:
            rd = 16 + namelen + 2  # the first rdata, past its length
            end = _skip_name(body, _skip_name(body, rd))
            return int(struct.unpack_from(">I", body, end)[0])


_SOA_TEXT = re.compile(rb"(\S+)\s+SOA\s+\S+\s+\S+\s+\(?\s*(\d+)", re.IGNORECASE)


def _text_soa_serial(f: BinaryIO) -> int | None:
    """The serial of the first SOA record of a text zone file (named and dnsseal write
    it first, on one line or opening a parenthesis)."""
    pending = b""
    for line in f:
        text = pending + line.split(b";", 1)[0].rstrip(b"\r\n")
        for m in _SOA_TEXT.finditer(text):
            if m.group(1).upper() != b"RRSIG":  # not the SOA's signature
                return int(m.group(2))
        pending = text + b" " if b"(" in text and b")" not in text else b""
        if len(pending) > 4096:
            return None
    return None


def bind_serials(source: Path, origin: str) -> dict[Path, int]:
    """The serials in the files BIND keeps beside the zone file ``source`` (only the
    files that exist and could be read: a broken leftover never stops the zone).
    ``origin`` is the zone's name (for messages)."""
    out: dict[Path, int] = {}
    base = os.fspath(source)
    # (plain paths: usually none of them exists, for each of thousands of zones at a start)
    for name in (f"{base}.signed", f"{base}.signed.jnl", f"{base}.jnl"):
        try:
            with open(name, "rb") as f:
                if name.endswith(".jnl"):
                    serial = _journal_end(f.read(64))
                else:
                    serial = _raw_soa_serial(f)
                    if serial is None:
                        f.seek(0)
                        serial = _text_soa_serial(f)
        except (OSError, struct.error, IndexError, ValueError):
            serial = None
        if serial is not None:
            path = Path(name)
            out[path] = serial
            log.debug("[%s] %s: serial %d", origin, path, serial)
    return out


def highest(serials: list[int]) -> int | None:
    """The newest of ``serials`` in RFC 1982 order (None for none)."""
    best: int | None = None
    for s in serials:
        if best is None or 0 < ((s - best) & 0xFFFFFFFF) < 2**31:
            best = s
    return best
