"""The DS automation decision log: one JSON object per line in the state directory
(``ds-automation.log``), appended and fsync'd; read back for ``dnsseal ctl ds-log``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dnsseal.errors import StorageError

LOG_NAME = "ds-automation.log"


def log_path(state_dir: Path) -> Path:
    return state_dir / LOG_NAME


def append(state_dir: Path, entry: dict[str, Any]) -> None:
    """Append ``entry``; raises StorageError."""
    path = log_path(state_dir)
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise StorageError(str(path), f"cannot append: {e.strerror or e}") from None


def read(state_dir: Path, zone: str | None = None, last: int = 100) -> list[dict[str, Any]]:
    """The last ``last`` entries (for the parent ``zone`` when given); a line that is not
    JSON (a torn write) is skipped."""
    path = log_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StorageError(str(path), f"cannot read: {e.strerror or e}") from None
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and (zone is None or entry.get("parent") == zone):
            out.append(entry)
    return out[-last:]
