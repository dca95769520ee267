"""What the listeners and views see of the running server.

The control socket, the HTTP listener, the status page, metrics, alerts, the audit log and
systemd notifications read the server through :class:`RunningServer`, a protocol that
``service.AuthServer`` (the composition root, which nothing imports) implements: they
import this module, not the server.
"""

from __future__ import annotations

from typing import Any, Protocol

from dnsseal.proto.engine import Engine
from dnsseal.server.zonehandle import ZoneHandle
from dnsseal.storage.serverconfig import ServerConfig


class Signing(Protocol):
    """The inline signing of the zones (``server.maintenance.Maintenance``)."""

    def wake(self, state: ZoneHandle) -> None:
        """Run the zone's maintenance now (once more after the one running, if any)."""

    async def maintain(self, state: ZoneHandle, reason: str, force: bool = False) -> str | None:
        """Run the zone's maintenance now; the problem, or None."""


class Auditing(Protocol):
    """The audit of control requests (``server.observe.Observability``)."""

    async def request_done(self, who: str, line: bytes, reply: dict[str, Any]) -> None: ...


class RunningServer(Protocol):
    """The running server, as its listeners and views use it."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def zones(self) -> dict[str, ZoneHandle]: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def automation(self) -> Signing: ...

    @property
    def observe(self) -> Auditing: ...

    @property
    def worker(self) -> bool: ...

    @property
    def worker_pids(self) -> list[int]: ...

    @property
    def started_at(self) -> int: ...

    @property
    def reloads(self) -> int: ...

    def find_state(self, zone: str) -> ZoneHandle:
        """The zone called ``zone`` (any case, final dot or not); raises LookupError."""

    def parent_lines(self, state: ZoneHandle) -> list[str]: ...

    def status(self) -> dict[str, object]: ...

    def spawn(self, coro: object) -> None: ...

    def request_stop(self) -> None: ...

    async def reload(self, initial: bool = False) -> list[str]: ...

    async def notify(self, zone: str) -> list[str]: ...
