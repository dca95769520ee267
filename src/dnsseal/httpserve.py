"""A small read-only HTTP/1.1 listener on asyncio streams, shared by the authoritative
server's (``dnsseal.server.http``: metrics, API, status page) and the resolver's
(``dnsseal.resolver.http``: metrics).

GET and HEAD only, one request per connection (``Connection: close``), a bounded request
head, a read timeout and a bounded number of connections at once.  What a request gets
is the subclass's :meth:`HttpListener.respond`; this module only frames it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Sequence
from typing import Any, Protocol

from dnsseal import aio
from dnsseal.errors import StorageError

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024  # request line and headers
READ_TIMEOUT = 10.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large", 500: "Internal Server Error"}  # fmt: skip

Response = tuple[int, str, bytes]  # status, content type, body


class Endpoint(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


def json_response(doc: Any, status: int = 200) -> Response:
    return status, "application/json", (json.dumps(doc, indent=1) + "\n").encode()


def head(status: int, ctype: str, length: int, extra: Sequence[str] = ()) -> bytes:
    """The response head (``extra``: more header lines)."""
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        f"Content-Type: {ctype}",
        f"Content-Length: {length}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
        *extra,
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class HttpListener:
    """Listens on ``endpoints`` (TLS with ``tls``) and answers each request with
    :meth:`respond`.  ``option`` names the config option in errors, ``label`` starts the
    log lines, ``what`` says in the log what is served."""

    option = "http"
    label = "[http]"
    what = ""
    max_clients = 16

    def __init__(self, endpoints: Sequence[Endpoint], tls: ssl.SSLContext | None = None) -> None:
        self.endpoints = tuple(endpoints)
        self.tls = tls
        self._servers: list[asyncio.Server] = []
        self._clients: set[asyncio.Task[None]] = set()

    async def respond(self, method: str, target: str) -> Response:
        raise NotImplementedError

    def extra_headers(self, ctype: str) -> Sequence[str]:
        """Header lines a response of ``ctype`` also gets."""
        return ()

    async def start(self) -> None:
        """Listen on every endpoint; raises StorageError (naming the option) when one
        cannot be bound, after closing those already bound."""
        for i, ep in enumerate(self.endpoints):
            try:
                srv = await asyncio.start_server(
                    self._client,
                    ep.host,
                    ep.port,
                    reuse_address=True,
                    ssl=self.tls,
                    ssl_handshake_timeout=READ_TIMEOUT if self.tls else None,
                )
            except OSError as e:
                await self.stop()
                raise StorageError(
                    f"{self.option}[{i}] {ep}", f"cannot listen: {e.strerror or e}"
                ) from None
            self._servers.append(srv)
            scheme = "HTTPS" if self.tls else "HTTP"
            log.info("%s %s on %s (%s)", self.label, scheme, ep, self.what)

    @property
    def ports(self) -> list[int]:
        """The bound ports (port 0 in the config: the kernel's choice)."""
        return [s.sockets[0].getsockname()[1] for s in self._servers if s.sockets]

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
        if len(self._clients) >= self.max_clients:
            log.warning("%s HTTP: too many clients, closing a connection", self.label)
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
            raw = await aio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except asyncio.LimitOverrunError:
            raw = b""
            status, ctype, body = json_response({"error": "request head too large"}, 431)
        else:
            parts = raw.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(raw) > MAX_HEAD:
                status, ctype, body = json_response({"error": "request head too large"}, 431)
            elif len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                status, ctype, body = json_response({"error": "bad request line"}, 400)
            else:
                method = parts[0]
                status, ctype, body = await self.respond(method, parts[1])
        writer.write(head(status, ctype, len(body), self.extra_headers(ctype)))
        if method != "HEAD":
            writer.write(body)
        await writer.drain()
