"""Zone files on disk: read a master file into the zone model, write one atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dns.name

from dnsseal.errors import StorageError
from dnsseal.storage import atomic
from dnsseal.zone.model import Zone
from dnsseal.zone.text import format_zone, parse_zone_text


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


def read_zone(path: str | Path, origin: dns.name.Name | str) -> Zone:
    """Load the zone ``origin`` from the master file at ``path``.

    Raises :class:`StorageError` when the file cannot be read and
    :class:`~dnsseal.errors.FileFormatError` (with file and line) when it is malformed.
    """
    return parse_zone_text(read_text(path), origin, path=str(path))


def write_zone(path: str | Path, zone: Zone, *, header: Iterable[str] = ()) -> None:
    """Write ``zone`` as a master file, atomically (readers see the old or the new file)."""
    atomic.replace(Path(path), format_zone(zone, header=header).encode("utf-8"))
