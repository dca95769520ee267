"""Plain reads of user files with errors that name the file."""

from __future__ import annotations

from pathlib import Path

from dnsseal.errors import StorageError


def read_text(path: str | Path) -> str:
    """The text of ``path``; raises :class:`StorageError` naming the file on any problem."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StorageError(str(p), "no such file") from None
    except IsADirectoryError:
        raise StorageError(str(p), "is a directory, expected a file") from None
    except UnicodeDecodeError as e:
        raise StorageError(str(p), f"not a text file ({e.reason})") from None
    except OSError as e:
        raise StorageError(str(p), f"cannot read: {e.strerror}") from None
