"""The resolver's HTTP listener (``[resolver] http``): ``/metrics`` only.

Like the authoritative server's (``dnsseal.server.http``): HTTP/1.1 on asyncio streams, GET
and HEAD only, one request per connection (``Connection: close``), a bounded request head
and a read timeout, at most :data:`MAX_CLIENTS` connections at once.  Nothing here changes
state, so there is no authentication; it is off unless configured, and the examples bind
it to loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from dnsseal.errors import StorageError
from dnsseal.exposition import CONTENT_TYPE
from dnsseal.storage.remotes import Endpoint

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_CLIENTS = 16
READ_TIMEOUT = 10.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large", 500: "Internal Server Error"}  # fmt: skip

Response = tuple[int, str, bytes]


def _error(status: int, message: str) -> Response:
    return status, "application/json", (json.dumps({"error": message}) + "\n").encode()


def respond(render: Callable[[], str], method: str, target: str) -> Response:
    """The response to one request; ``render`` makes the metrics text."""
    if method not in ("GET", "HEAD"):
        return _error(405, f"method {method} not allowed: this listener only reads")
    path = urlsplit(target).path
    if path != "/metrics":
        return _error(404, f"no such page: {path} (the resolver serves /metrics)")
    try:
        return 200, CONTENT_TYPE, render().encode()
    except Exception:  # a bug in a scrape must not take the listener down
        log.exception("[resolver] HTTP %s %s failed", method, target)
        return _error(500, "internal error (see the resolver's log)")


def _head(status: int, ctype: str, length: int) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        f"Content-Type: {ctype}",
        f"Content-Length: {length}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class MetricsListener:
    """Serves ``render()`` as ``/metrics`` on ``endpoints``."""

    def __init__(self, render: Callable[[], str], endpoints: tuple[Endpoint, ...]) -> None:
        self.render = render
        self.endpoints = endpoints
        self._servers: list[asyncio.Server] = []
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on every endpoint; raises StorageError (naming the option) when one
        cannot be bound."""
        for i, ep in enumerate(self.endpoints):
            try:
                srv = await asyncio.start_server(self._client, ep.host, ep.port, reuse_address=True)
            except OSError as e:
                await self.stop()
                raise StorageError(
                    f"resolver.http[{i}] {ep}", f"cannot listen: {e.strerror or e}"
                ) from None
            self._servers.append(srv)
            log.info("[resolver] HTTP on %s (/metrics)", ep)

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for task in list(self._clients):
            task.cancel()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        self._servers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= MAX_CLIENTS:
            log.warning("[resolver] HTTP: too many clients, closing a connection")
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            await self._serve_one(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = ""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except asyncio.LimitOverrunError:
            head = b""
            status, ctype, body = _error(431, "request head too large")
        else:
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(head) > MAX_HEAD:
                status, ctype, body = _error(431, "request head too large")
            elif len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                status, ctype, body = _error(400, "bad request line")
            else:
                method = parts[0]
                status, ctype, body = respond(self.render, method, parts[1])
        writer.write(_head(status, ctype, len(body)))
        if method != "HEAD":
            writer.write(body)
        await writer.drain()
