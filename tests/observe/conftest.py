"""Helpers for the observability tests: a real `dnsseal serve` with its HTTP listener.

The server, its DNS port and its HTTP port are on loopback, on ports picked with
free_port(); the server is stopped by its PID.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automation.conftest import dnsseal_serve, write_config
from conftest import free_port


@dataclass(frozen=True)
class Served:
    dir: Path
    port: int  # DNS
    http: int  # HTTP listener

    def get(self, path: str) -> tuple[int, str, bytes]:
        """GET ``path``: status, content type, body (error statuses too)."""
        url = f"http://127.0.0.1:{self.http}{path}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read()

    def json(self, path: str) -> Any:
        status, ctype, body = self.get(path)
        assert status == 200, (status, body)
        assert ctype == "application/json"
        return json.loads(body)

    def metrics(self) -> str:
        status, ctype, body = self.get("/metrics")
        assert status == 200
        assert ctype.startswith("text/plain; version=0.0.4")
        return body.decode()


def with_http(conf: Path, port: int, extra: str = "") -> None:
    """Add ``server.http`` (and ``extra`` top-level tables) to a written config."""
    text = conf.read_text().replace("[server]\n", f'[server]\nhttp = ["127.0.0.1@{port}"]\n', 1)
    conf.write_text(text + "\n" + extra)


def wait_until(check: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@contextmanager
def observed(
    d: Path, zones: dict[str, str], *, extra: str = "", port: int = 0, **options: Any
) -> Iterator[Served]:
    """`dnsseal serve` for ``zones`` (origin -> text) with its HTTP listener on, on DNS
    port ``port`` (0: one picked here)."""
    port = port or free_port()
    http = free_port(socket.SOCK_STREAM)
    conf = write_config(d, port, zones, **options)
    with_http(conf, http, extra)
    with dnsseal_serve(d, ["-c", "dnsseal.toml"], next(iter(zones)), port):
        served = Served(d, port, http)
        wait_until(lambda: _up(served), 15, "the HTTP listener")
        yield served


def _up(s: Served) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", s.http), timeout=1):
            return True
    except OSError:
        return False
