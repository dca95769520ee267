"""The resolver's HTTP listener (``[resolver] http``): ``/metrics`` only.

Like the authoritative server's (``dnsseal.server.http``): HTTP/1.1 on asyncio streams, GET
and HEAD only, one request per connection (``Connection: close``), a bounded request head
and a read timeout, at most :data:`MAX_CLIENTS` connections at once.  Nothing here changes
state, so there is no authentication; it is off unless configured, and the examples bind
it to loopback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from dnsseal.exposition import CONTENT_TYPE
from dnsseal.httpserve import HttpListener, Response
from dnsseal.storage.remotes import Endpoint

log = logging.getLogger(__name__)

MAX_CLIENTS = 16


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


class MetricsListener(HttpListener):
    """Serves ``render()`` as ``/metrics`` on ``endpoints``."""

    option = "resolver.http"
    label = "[resolver]"
    what = "/metrics"
    max_clients = MAX_CLIENTS

    def __init__(self, render: Callable[[], str], endpoints: tuple[Endpoint, ...]) -> None:
        super().__init__(endpoints)
        self.render = render

    async def respond(self, method: str, target: str) -> Response:
        return respond(self.render, method, target)
