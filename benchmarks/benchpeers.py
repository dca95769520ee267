"""What every benchmark here needs to run a peer: find its program, pick a free port, stop it.

The benchmarks are run as scripts (``.venv/bin/python benchmarks/NAME.py``), so this module
is imported from their own folder.  Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys


def tool(name: str) -> str:
    """The path of an installed program (Debian puts servers in /usr/sbin), or exit saying
    how to get it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        sys.exit(f"{name} is not installed (make system-deps)")
    return path


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (servers listen on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """Stop a server this benchmark started (by its PID): SIGTERM, then SIGKILL after
    ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
