"""The HTTP listener (``[server] http``): metrics, the JSON API and the status page.

A small HTTP/1.1 server on asyncio streams: every endpoint reads state and none changes it,
so it answers GET and HEAD only, one request per connection (``Connection: close``), with a
bounded request head and a timeout.  It runs in the main process only (the workers share the
DNS ports, not this one).  Routes (:data:`ROUTES`):

* ``/metrics``: Prometheus text format (:mod:`dnsseal.server.metrics`);
* ``/api/v1/zones``, ``/api/v1/zones/<zone>``, ``/api/v1/zones/<zone>/keys``,
  ``/api/v1/audit[?zone=Z&since=TIME&limit=N]``: JSON (:mod:`dnsseal.server.views`, the
  same views ``dnsseal ctl --json`` prints, times as ISO 8601 UTC text by the same
  :func:`~dnsseal.server.views.iso_times`);
* ``/``: the status page, ``/zone/<zone>``: one zone's part of it
  (:mod:`dnsseal.server.statuspage`).

Errors are JSON objects ``{"error": "..."}`` with 400, 404 or 405; a bug in a view is
logged and answered 500 without taking the listener down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from dnsseal import clock, httpserve
from dnsseal.durations import parse_when
from dnsseal.errors import InputError, StorageError
from dnsseal.httpserve import Response, json_response
from dnsseal.server import metrics, statuspage, views
from dnsseal.storage.serverconfig import Endpoint

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

log = logging.getLogger(__name__)

MAX_CLIENTS = 64  # connections beyond this are closed at once (a scraper needs one)
HTML_TYPE = "text/html; charset=utf-8"


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[["RunningServer", "re.Match[str]", dict[str, list[str]]], Awaitable[Response]]


_json = json_response


def _view(doc: Any) -> Response:
    """A view as ``ctl --json`` gives it: times in ISO 8601 UTC."""
    return _json(views.iso_times(doc))


def _zone(server: RunningServer, text: str) -> str:
    try:
        return server.find_state(unquote(text)).name
    except LookupError as e:
        raise HttpError(404, str(e.args[0])) from None


async def presigned(server: RunningServer) -> None:
    """A new version of a presigned zone: find its earliest expiry off the loop."""
    todo = views.presigned_snapshots(server)
    if todo:
        await asyncio.to_thread(views.fill_presigned_horizons, todo)


async def _metrics(server: RunningServer, m: re.Match[str], q: dict[str, list[str]]) -> Response:
    await presigned(server)
    return 200, metrics.CONTENT_TYPE, metrics.render(server).encode()


async def _zones(server: RunningServer, m: re.Match[str], q: dict[str, list[str]]) -> Response:
    await presigned(server)
    return _view(views.zones_view(server, clock.now()))


async def _zone_detail(
    server: RunningServer, m: re.Match[str], q: dict[str, list[str]]
) -> Response:
    await presigned(server)
    return _view(views.zone_view(server, _zone(server, m["zone"]), clock.now()))


async def _keys(server: RunningServer, m: re.Match[str], q: dict[str, list[str]]) -> Response:
    return _view(views.keys_view(server, _zone(server, m["zone"])))


def _one(q: dict[str, list[str]], name: str) -> str | None:
    values = q.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise HttpError(400, f"{name}: give it once")
    return values[0]


async def _audit(server: RunningServer, m: re.Match[str], q: dict[str, list[str]]) -> Response:
    zone_text = _one(q, "zone")
    zone = _zone(server, zone_text) if zone_text else None
    since_text = _one(q, "since")
    since = None
    if since_text:
        try:
            since = parse_when(since_text, clock.now())
        except InputError as e:
            raise HttpError(400, f"since: {e}") from None
    limit_text = _one(q, "limit") or "1000"
    if not limit_text.isdigit() or not 0 < int(limit_text) <= 100_000:
        raise HttpError(400, f"limit: a number in 1..100000, got {limit_text!r}")
    entries = await asyncio.to_thread(views.audit_view, server, zone, since, int(limit_text))
    return _view({"audit": entries})


async def _page(server: RunningServer, m: re.Match[str], q: dict[str, list[str]]) -> Response:
    await presigned(server)
    html = await asyncio.to_thread(statuspage.render, server, clock.now())
    return 200, HTML_TYPE, html.encode()


async def _zone_page(server: RunningServer, m: re.Match[str], q: dict[str, list[str]]) -> Response:
    zone = _zone(server, m["zone"])
    await presigned(server)
    html = await asyncio.to_thread(statuspage.render_zone, server, zone, clock.now())
    return 200, HTML_TYPE, html.encode()


ROUTES: tuple[tuple[re.Pattern[str], Handler], ...] = (
    (re.compile(r"/metrics"), _metrics),
    (re.compile(r"/api/v1/zones/?"), _zones),
    (re.compile(r"/api/v1/zones/(?P<zone>[^/]+)/keys"), _keys),
    (re.compile(r"/api/v1/zones/(?P<zone>[^/]+)"), _zone_detail),
    (re.compile(r"/api/v1/audit"), _audit),
    (re.compile(r"/zone/(?P<zone>[^/]+)"), _zone_page),
    (re.compile(r"/"), _page),
)


async def respond(server: RunningServer, method: str, target: str) -> Response:
    """The response to one request (any failure becomes an error response)."""
    if method not in ("GET", "HEAD"):
        return _json({"error": f"method {method} not allowed: this listener only reads"}, 405)
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    for pattern, handler in ROUTES:
        m = pattern.fullmatch(parts.path)
        if m is None:
            continue
        try:
            return await handler(server, m, query)
        except HttpError as e:
            return _json({"error": str(e)}, e.status)
        except Exception:  # a bug in one view must not take the listener down
            log.exception("[server] HTTP %s %s failed", method, target)
            return _json({"error": "internal error (see the server log)"}, 500)
    return _json({"error": f"no such page: {parts.path}"}, 404)


class HttpListener(httpserve.HttpListener):
    """Serves :data:`ROUTES` for ``server`` on ``endpoints``."""

    option = "server.http"
    label = "[server]"
    what = "metrics, API, status page"
    max_clients = MAX_CLIENTS

    def __init__(
        self,
        server: RunningServer,
        endpoints: tuple[Endpoint, ...],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(endpoints, tls)
        self.server = server

    async def respond(self, method: str, target: str) -> Response:
        return await respond(self.server, method, target)

    def extra_headers(self, ctype: str) -> tuple[str, ...]:
        if ctype == HTML_TYPE:  # no external assets: nothing but inline style may load
            return ("Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'",)
        return ()


async def start(server: RunningServer) -> HttpListener | None:
    """Start the HTTP listener when ``[server] http`` asks for one (main process only)."""
    endpoints = server.config.http
    if not endpoints or server.worker:
        return None
    tls = None
    if server.config.http_tls is not None:
        cert, key = server.config.http_tls
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise StorageError(
                f"{cert}, {key}", f"server.http-tls-cert/-key: cannot load: {e}"
            ) from None
    listener = HttpListener(server, endpoints, tls)
    await listener.start()
    return listener
