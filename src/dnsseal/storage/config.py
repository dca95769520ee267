"""Policy and configuration files on disk.

``-c FILE`` is either dnsseal's TOML (``[policy.NAME]`` tables) or a BIND ``named.conf``
whose ``dnssec-policy`` blocks are used as they are; the file name decides (``.toml``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from dnsseal.errors import OptionError
from dnsseal.keys.model import Key
from dnsseal.policy import namedconf, tomlfmt
from dnsseal.policy.build import PolicyErrors
from dnsseal.policy.model import Policy
from dnsseal.storage import atomic
from dnsseal.storage.files import read_text


def write_text(path: str | Path, text: str) -> None:
    """Write an output file (a report, an SVG) atomically: readers see the old file or the
    whole new one.  Raises :class:`StorageError` naming the file."""
    atomic.replace(Path(path), text.encode("utf-8"))


def is_toml(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".toml"


def collect_policies(path: str | Path) -> tuple[dict[str, Policy], list[OptionError]]:
    """Every policy in the file and every problem found in it (syntax errors raise
    :class:`~dnsseal.errors.FileFormatError`)."""
    text = read_text(path)
    if is_toml(path):
        return tomlfmt.collect(text, str(path))
    return namedconf.collect(text, str(path))


def load_policies(path: str | Path | None) -> dict[str, Policy]:
    """The policies a configuration file defines ({} without a file); raises
    :class:`~dnsseal.policy.build.PolicyErrors` listing every problem."""
    if path is None:
        return {}
    policies, errors = collect_policies(path)
    if errors:
        raise PolicyErrors(str(path), errors)
    return policies


def purge_key_files(directory: str | Path, key: Key) -> list[Path]:
    """Delete a purged key's ``.key``, ``.private`` and ``.state`` files; returns those
    that were there.  Only the key manager calls this, after purge-keys has passed."""
    removed = []
    for suffix in (".key", ".private", ".state"):
        f = Path(directory) / f"{key.basename}{suffix}"
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
            removed.append(f)
    return removed
