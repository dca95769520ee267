"""Progress on a terminal for big inputs, nothing otherwise (issue #17)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from automation.conftest import DNSSEAL
from conftest import require_tool
from dnsseal.cli import progress


def _big_zone(path: Path) -> None:
    lines = ["$ORIGIN big.example.", "$TTL 300", "@ SOA ns1 h 1 60 30 600 60", "@ NS ns1",
             "ns1 A 192.0.2.1"]  # fmt: skip
    lines += [f"host{i} A 192.0.2.{i % 250}" for i in range(60000)]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > progress.THRESHOLD


def test_verify_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    zone = tmp_path / "big.zone"
    _big_zone(zone)
    argv = [str(DNSSEAL), "verify", "-o", "big.example", str(zone)]
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert "Verifying" not in piped.stdout + piped.stderr
    assert piped.returncode == 1  # unsigned: errors, found either way
    script = require_tool("script")  # a pseudo-terminal, as a person's shell has
    tty = subprocess.run(
        [script, "-qec", " ".join(argv), "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Verifying big.example. (1.3 MiB)" in tty.stdout, tty.stdout[-500:]
