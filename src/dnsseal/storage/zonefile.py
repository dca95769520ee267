"""Zone files on disk: read a master file (with its ``$INCLUDE`` files) into the zone model,
write one atomically.

``$INCLUDE`` is expanded here, where files may be opened, so the zone text parser stays
pure.  RFC 1035 5.1: an included file starts at the origin given on the ``$INCLUDE`` line or
else the current one, and the including file's origin is restored after it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.process
import os
import shlex
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import dns.exception
import dns.name

from dnsseal.errors import FileFormatError, StorageError
from dnsseal.storage import atomic
from dnsseal.zone.model import Zone
from dnsseal.zone.text import iter_zone_text, parse_zone_text

MAX_INCLUDE_DEPTH = 10


def read_text(path: str | Path) -> str:
    """A zone file's text; raises :class:`StorageError` naming the file."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StorageError(str(p), "no such file") from None
    except UnicodeDecodeError as e:
        raise StorageError(str(p), f"not a UTF-8 text file ({e.reason})") from None
    except OSError as e:
        raise StorageError(str(p), f"cannot read: {e.strerror}") from None


def expand_includes(text: str, path: Path, origin: dns.name.Name, depth: int = 0) -> str:
    """``text`` with every ``$INCLUDE file [origin]`` replaced by the file's (expanded) text.

    Relative file names are relative to the including file's directory.  Raises
    :class:`FileFormatError` for a malformed directive or too deep nesting and
    :class:`StorageError` when an included file cannot be read.
    """
    if "$INCLUDE" not in text.upper():
        return text
    out = []
    current = origin
    for lineno, line in enumerate(text.splitlines(), 1):
        head = line.split(";", 1)[0].split()
        directive = head[0].upper() if head and line[:1] == "$" else ""
        try:
            if directive == "$ORIGIN" and len(head) >= 2:
                current = dns.name.from_text(head[1], current)
            elif directive == "$INCLUDE":
                if depth >= MAX_INCLUDE_DEPTH:
                    raise FileFormatError(str(path), lineno, "$INCLUDE nested too deeply")
                args = shlex.split(line.split(";", 1)[0])[1:]
                if not 1 <= len(args) <= 2:
                    raise FileFormatError(str(path), lineno, "usage: $INCLUDE file [origin]")
                start = dns.name.from_text(args[1], current) if len(args) == 2 else current
                target = path.parent / args[0]
                body = expand_includes(read_text(target), target, start, depth + 1)
                out += [f"$ORIGIN {start.to_text()}", body, f"$ORIGIN {current.to_text()}"]
                continue
        except dns.exception.DNSException as e:
            raise FileFormatError(str(path), lineno, f"bad origin: {e}") from None
        except ValueError as e:  # shlex: unbalanced quotes
            raise FileFormatError(str(path), lineno, f"bad $INCLUDE line: {e}") from None
        out.append(line)
    return "\n".join(out) + "\n"


def read_zone(path: str | Path, origin: dns.name.Name | str) -> Zone:
    """Load the zone ``origin`` from the master file at ``path`` (``$INCLUDE`` expanded).

    Raises :class:`StorageError` when a file cannot be read and
    :class:`~dnsseal.errors.FileFormatError` (with file and line) when it is malformed.
    """
    p = Path(path)
    if isinstance(origin, str):
        try:
            origin = dns.name.from_text(origin)
        except dns.exception.DNSException as e:
            raise FileFormatError(str(p), None, f"bad origin {origin!r}: {e}") from None
    text = expand_includes(read_text(p), p, origin)
    return parse_zone_text(text, origin, path=str(p))


# Below this many owner names a second writer process costs more than it saves.
PARALLEL_WRITE_MIN_NAMES = 20_000


def write_zone(
    path: str | Path, zone: Zone, *, header: Iterable[str] = (), workers: int = 1
) -> None:
    """Write ``zone`` as a master file, atomically (readers see the old or the new file).

    With ``workers`` > 1 (and a zone of at least :data:`PARALLEL_WRITE_MIN_NAMES` names,
    on a system that can fork), the text is formatted by that many processes, each
    writing a contiguous slice of the names in canonical order to its own file, joined
    afterwards: the same bytes as one writer, in a fraction of the wall time (formatting
    is most of a big zone's write).  Raises :class:`StorageError` naming the file."""
    names = len(zone.rrsets)
    if workers < 2 or names < PARALLEL_WRITE_MIN_NAMES or not _CAN_FORK:
        write_text_chunks(path, iter_zone_text(zone, header=header))
        return
    pivots = _pivots(zone, min(workers, names // (PARALLEL_WRITE_MIN_NAMES // 2)))
    p = Path(path)
    parts = [p.with_name(f".{p.name}.part{i}.tmp") for i in range(1, len(pivots) + 1)]
    ctx = multiprocessing.get_context("fork")
    procs = []
    try:
        for i, part in enumerate(parts):
            high = pivots[i + 1] if i + 1 < len(pivots) else None
            proc = ctx.Process(target=_write_slice, args=(part, zone, pivots[i], high), daemon=True)
            proc.start()
            procs.append(proc)
        head = iter_zone_text(_slice(zone, None, pivots[0]), header=header)
        write_text_chunks(path, _then_parts(head, procs, parts))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        for part in parts:
            with contextlib.suppress(OSError):
                part.unlink()


_CAN_FORK = "fork" in multiprocessing.get_all_start_methods()
Key = tuple[bytes, ...]
_OWN_SHARE = 0.75  # this process's slice, relative to a forked writer's


def _key(name: dns.name.Name) -> Key:
    # Owners are lower-case (the model's rule): canonical order is that of reversed labels.
    return name.labels[::-1]


def _pivots(zone: Zone, count: int) -> list[Key]:
    """``count`` - 1 boundaries splitting the names into slices of about equal size, from
    a sample of the names (sorting the whole zone here would cost what the writers save)."""
    names = list(zone.rrsets)
    step = max(1, len(names) // 2048)
    sample = sorted({_key(n) for n in names[::step]})
    # The first slice is this process's, which also copies the others' text into the file.
    total = _OWN_SHARE + count - 1
    return [sample[int(len(sample) * (_OWN_SHARE + i - 1) / total)] for i in range(1, count)]


def _slice(zone: Zone, low: Key | None, high: Key | None) -> Zone:
    """The part of ``zone`` with names in [low, high) in canonical order (the apex only in
    the first slice, where :func:`iter_zone_text` puts it)."""

    def keep(name: dns.name.Name) -> bool:
        k = _key(name)
        return (low is None or k >= low) and (high is None or k < high)

    rrsets = {n: node for n, node in zone.rrsets.items() if keep(n)}
    rrsigs = {n: node for n, node in zone.rrsigs.items() if keep(n)}
    return Zone(zone.origin, rrsets, rrsigs, zone.rdclass)


def _write_slice(part: Path, zone: Zone, low: Key, high: Key | None) -> None:
    """In a forked writer: one slice of the zone's text into ``part``."""
    with open(part, "w", encoding="utf-8", buffering=1 << 20) as f:
        batch: list[str] = []
        for chunk in iter_zone_text(_slice(zone, low, high)):
            batch.append(chunk)
            if len(batch) >= 4096:
                f.write("".join(batch))
                batch.clear()
        f.write("".join(batch))


def _then_parts(
    head: Iterable[str], procs: Sequence[multiprocessing.process.BaseProcess], parts: list[Path]
) -> Iterator[str]:
    """The first slice's text, then each writer's file once it has finished (read in large
    pieces).  Raises :class:`StorageError` if a writer failed."""
    yield from head
    for proc, part in zip(procs, parts, strict=True):
        proc.join()
        if proc.exitcode != 0:
            raise StorageError(str(part), f"zone writer process failed (exit {proc.exitcode})")
        with open(part, encoding="utf-8") as f:
            while chunk := f.read(1 << 22):
                yield chunk


def write_text_chunks(path: str | Path, chunks: Iterable[str]) -> None:
    """Write text given in pieces to ``path`` atomically, streaming: the whole text is never
    held in memory (temp file in the same directory, fsync, rename; the old file's mode is
    kept).  Raises :class:`StorageError` naming the file."""
    p = Path(path)
    try:
        mode = p.stat().st_mode & 0o7777
    except OSError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise StorageError(str(p.parent), f"cannot create a file here: {e.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 20) as f:
            batch: list[str] = []
            for chunk in chunks:
                batch.append(chunk)
                if len(batch) >= 4096:
                    f.write("".join(batch))
                    batch.clear()
            f.write("".join(batch))
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


def write_ledger(zone_path: str | Path, data: bytes) -> None:
    """Store the signature ledger of the zone file at ``zone_path`` atomically."""
    atomic.replace(ledger_path(zone_path), data)
