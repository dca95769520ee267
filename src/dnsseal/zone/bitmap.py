"""The windowed type bitmap of NSEC and NSEC3 records (RFC 4034 section 4.1.2)."""

from __future__ import annotations

from collections.abc import Iterable


def type_bitmap(types: Iterable[int]) -> bytes:
    """Encode a set of types."""
    windows: dict[int, bytearray] = {}
    for t in sorted(set(types)):
        win, bit = divmod(t, 256)
        block = windows.setdefault(win, bytearray(32))
        block[bit // 8] |= 0x80 >> (bit % 8)
    out = bytearray()
    for win in sorted(windows):
        block = windows[win].rstrip(b"\x00")
        out += bytes((win, len(block))) + block
    return bytes(out)


def bitmap_types(wire: bytes) -> set[int]:
    """Decode a bitmap; raises ValueError when malformed (windows out of order, bad
    lengths, truncation)."""
    out: set[int] = set()
    i = 0
    last = -1
    while i < len(wire):
        if i + 2 > len(wire):
            raise ValueError("truncated type bitmap")
        win, n = wire[i], wire[i + 1]
        if win <= last or not 1 <= n <= 32 or i + 2 + n > len(wire):
            raise ValueError("malformed type bitmap window")
        last = win
        for j, byte in enumerate(wire[i + 2 : i + 2 + n]):
            if byte:
                for b in range(8):
                    if byte & (0x80 >> b):
                        out.add(win * 256 + j * 8 + b)
        i += 2 + n
    return out
