"""Zone files on disk: read a master file (with its ``$INCLUDE`` files) into the zone model,
write one atomically.

``$INCLUDE`` is expanded here, where files may be opened, so the zone text parser stays
pure.  RFC 1035 5.1: an included file starts at the origin given on the ``$INCLUDE`` line or
else the current one, and the including file's origin is restored after it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterable
from pathlib import Path

import dns.exception
import dns.name

from dnsseal.errors import FileFormatError, StorageError
from dnsseal.storage import atomic
from dnsseal.zone.model import Zone
from dnsseal.zone.text import iter_zone_text, parse_zone_text

MAX_INCLUDE_DEPTH = 10


def read_bytes(path: str | Path) -> bytes:
    """A zone file's octets; raises :class:`StorageError` naming the file."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise StorageError(str(p), "no such file") from None
    except OSError as e:
        raise StorageError(str(p), f"cannot read: {e.strerror}") from None


def read_text(path: str | Path) -> str:
    """A zone file's text; raises :class:`StorageError` naming the file (cannot be read) or
    :class:`FileFormatError` naming it and the line (not UTF-8)."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise FileFormatError(
            str(path), line, f"not UTF-8 text (octet 0x{data[e.start]:02x}: {e.reason})"
        ) from None


def expand_includes(text: str, path: Path, origin: dns.name.Name, depth: int = 0) -> str:
    """``text`` with every ``$INCLUDE file [origin]`` replaced by the file's (expanded) text.

    Relative file names are relative to the including file's directory.  Raises
    :class:`FileFormatError` for a malformed directive or too deep nesting and
    :class:`StorageError` when an included file cannot be read.
    """
    if "$INCLUDE" not in text.upper():
        return text
    lines: list[str] = []
    _expand(text, path, origin, depth, lines, [])
    return "\n".join(lines) + "\n"


Source = tuple[str, int]


def _expand(text: str, path: Path, origin: dns.name.Name, depth: int, out: list[str],
            sources: list[Source]) -> None:  # fmt: skip
    """Append the lines of ``text`` (includes expanded) to ``out`` and where each came from
    (file, line) to ``sources``."""
    current = origin
    where = str(path)
    _no_bom(text, path)
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    for lineno, line in enumerate(raw, 1):
        head = line.split(";", 1)[0].split()
        directive = head[0].upper() if head and line[:1] == "$" else ""
        try:
            if directive == "$ORIGIN" and len(head) >= 2:
                current = dns.name.from_text(head[1], current)
            elif directive == "$INCLUDE":
                if depth >= MAX_INCLUDE_DEPTH:
                    raise FileFormatError(where, lineno, "$INCLUDE nested too deeply")
                args = shlex.split(line.split(";", 1)[0])[1:]
                if not 1 <= len(args) <= 2:
                    raise FileFormatError(where, lineno, "usage: $INCLUDE file [origin]")
                start = dns.name.from_text(args[1], current) if len(args) == 2 else current
                target = path.parent / args[0]
                try:
                    body = read_text(target)
                except StorageError as e:
                    raise StorageError(
                        e.path, f"{e.message} ($INCLUDE at {where}:{lineno})"
                    ) from None
                out.append(f"$ORIGIN {start.to_text()}")
                sources.append((where, lineno))
                _expand(body, target, start, depth + 1, out, sources)
                out.append(f"$ORIGIN {current.to_text()}")
                sources.append((where, lineno))
                continue
        except dns.exception.DNSException as e:
            raise FileFormatError(where, lineno, f"bad origin: {e}") from None
        except ValueError as e:  # shlex: unbalanced quotes
            raise FileFormatError(where, lineno, f"bad $INCLUDE line: {e}") from None
        out.append(line)
        sources.append((where, lineno))


def _no_bom(text: str, path: Path) -> None:
    if text.startswith("\ufeff"):  # an editor's byte order mark: BIND refuses it too
        raise FileFormatError(str(path), 1, "the file starts with a byte order mark "
                              "(U+FEFF): save it as UTF-8 without one")  # fmt: skip


def read_zone(path: str | Path, origin: dns.name.Name | str) -> Zone:
    """Load the zone ``origin`` from the master file at ``path`` (``$INCLUDE`` expanded).

    Raises :class:`StorageError` when the file cannot be read and
    :class:`~dnsseal.errors.FileFormatError` (with the file and line, an included file's
    own when the problem is there) when it is malformed.
    """
    p = Path(path)
    if isinstance(origin, str):
        try:
            origin = dns.name.from_text(origin)
        except dns.exception.DNSException as e:
            raise FileFormatError(str(p), None, f"bad origin {origin!r}: {e}") from None
    text = read_text(p)
    _no_bom(text, p)
    if "$INCLUDE" not in text.upper():
        return parse_zone_text(text, origin, path=str(p))
    lines: list[str] = []
    sources: list[Source] = []
    _expand(text, p, origin, 0, lines, sources)
    try:
        return parse_zone_text("\n".join(lines) + "\n", origin, path=str(p))
    except FileFormatError as e:
        if e.line is None or not 0 < e.line <= len(sources):
            raise
        src, line = sources[e.line - 1]
        raise FileFormatError(src, line, e.message) from None


def write_zone(path: str | Path, zone: Zone, *, header: Iterable[str] = ()) -> None:
    """Write ``zone`` as a master file, atomically (readers see the old or the new file)."""
    write_text_chunks(path, iter_zone_text(zone, header=header))


def write_text_chunks(path: str | Path, chunks: Iterable[str]) -> None:
    """Write text given in pieces to ``path`` atomically (see :func:`write_chunks`)."""
    write_chunks(path, (chunk.encode("utf-8") for chunk in chunks))


def write_chunks(path: str | Path, chunks: Iterable[bytes | memoryview]) -> None:
    """Write octets given in pieces to ``path`` atomically, streaming: the whole file is
    never held in memory (temp file in the same directory, fsync, rename; the old file's
    mode is kept).  The pieces may be views of the file being replaced: it is only
    replaced once they are all written.  Temp files a killed writer of ``path`` left are
    removed first (:func:`atomic.remove_stale_temps`).  Raises :class:`StorageError`
    naming the file."""
    p = Path(path)
    try:
        mode = p.stat().st_mode & 0o7777
    except OSError:
        mode = 0o644
    atomic.remove_stale_temps(p)
    fd, tmp = atomic.open_temp(p)  # (raises StorageError naming the directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(str(p), f"write failed: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ledger_path(zone_path: str | Path) -> Path:
    """Where the signature ledger of a signed zone file lives: ``<file>.ledger``."""
    return Path(f"{zone_path}.ledger")


def read_ledger(zone_path: str | Path) -> bytes | None:
    """The stored signature ledger of the zone file at ``zone_path``, or None when there is
    none.  Raises :class:`StorageError` when it exists but cannot be read."""
    p = ledger_path(zone_path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(str(p), f"cannot read: {e.strerror}") from None


def write_ledger(zone_path: str | Path, data: bytes | Iterable[bytes]) -> None:
    """Store the signature ledger (with the snapshot of the file's text) of the zone file
    at ``zone_path`` atomically; ``data`` may come in pieces."""
    if isinstance(data, bytes):
        atomic.replace(ledger_path(zone_path), data)
    else:
        write_chunks(ledger_path(zone_path), data)


def file_size(path: str | Path) -> int:
    """The size of a file in octets (0 when it cannot be read: the reader reports that)."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
