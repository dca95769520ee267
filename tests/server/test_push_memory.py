"""What the main process holds to keep its workers in step (issue #15: 10,000 small zones).

A start pushes every zone's first version to the workers (``zonesync.MainLinks``) faster
than the frames go out: at a restart of 10,000 zones the queue held thousands of versions,
each a zone model unpacked for the push (a parked zone keeps only its packed bytes), and
the main process kept that high-water mark (411 MiB after a restart against 335 after a
cold start).  Now a parked zone is pushed as the bytes it is kept in, and the worker builds
its snapshot from them; what the worker serves must be what the main process serves.  Once
pushed, the main process drops those bytes too and reads the model back from the snapshot
it serves when a change needs it (``InlineZone.settle``).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from dnsseal.proto.snapshot import ZoneSnapshot, snapshot_model
from dnsseal.server import zonesync
from dnsseal.server.service import AuthServer
from dnsseal.server.versions import unpack_own
from dnsseal.storage.serverconfig import load_config
from dnsseal.zone.model import Zone

from .test_many_zones import INLINE, _inline_config


def _frames(sock: socket.socket) -> list[bytes]:
    """The ``Z`` payloads waiting on ``sock`` (the worker's end of a link)."""
    data = b""
    sock.setblocking(False)
    while True:
        try:
            got = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not got:
            break
        data += got
    out = []
    while data:
        length, kind = zonesync.FRAME.unpack_from(data)
        payload = data[zonesync.FRAME.size : zonesync.FRAME.size + length]
        data = data[zonesync.FRAME.size + length :]
        assert bytes((kind,)) == zonesync.ZONE
        out.append(payload)
    return out


def test_parked_zones_are_pushed_packed_and_served_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = _inline_config(tmp_path, free_port())
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pushed: list[tuple[str, int, Any]] = []
    real_push = zonesync.MainLinks.push

    def recording(self: Any, name: str, serial: int, zone: Any, changed: Any = None) -> None:
        pushed.append((name, serial, zone))
        real_push(self, name, serial, zone, changed)

    monkeypatch.setattr(zonesync.MainLinks, "push", recording)

    async def scenario() -> None:
        server = AuthServer(load_config(conf), conf, links=[(0, ours)])
        await server.start()
        try:
            links = server.links
            assert links is not None
            for _ in range(200):  # every version out
                await asyncio.sleep(0.02)
                if links._queue.empty() and len(pushed) >= INLINE:
                    break
            await asyncio.sleep(0.1)
            states = list(server.zones.values())
            assert len(states) == INLINE
            # each zone pushed once, as the packed bytes it is kept in (no model unpacked
            # for the push and held in the queue)
            assert sorted(p[0] for p in pushed) == sorted(s.name for s in states)
            for name, serial, zone in pushed:
                state = server.zones[name]
                assert state.inline is not None and state.inline.parked
                assert isinstance(zone, bytes), name
                assert unpack_own(zone) == state.inline.signed
                assert state.served is not None and serial == state.served.snapshot.serial
                # once pushed, the main process keeps no packed form of its own: the
                # model is read back from the snapshot served (InlineZone.settle)
                assert state.inline.packed_signed is None
                assert state.inline._signed is state.served.snapshot
            # one KeyDirectory for the zones of the one key directory (not one per zone)
            assert len({id(s.inline.keydir) for s in states if s.inline is not None}) == 1
            # the last frame's versions are not kept by the sending task
            task = links._tasks[-1]
            held = [v for v in task.get_coro().cr_frame.f_locals.values()]  # type: ignore[union-attr]
            assert not any(isinstance(v, (list, bytes)) and v for v in held)
            # what a worker builds from the frames is what the main process serves
            snaps: dict[str, ZoneSnapshot] = {}
            for payload in _frames(theirs):
                _, built = zonesync._build_versions(payload, snaps)
                for name, _serial, snap, lacked in built:
                    assert snap is not None and not lacked, name
                    snaps[name] = snap
            assert sorted(snaps) == sorted(s.name for s in states)
            for s in states:
                assert s.served is not None and s.inline is not None
                got: Zone = snapshot_model(snaps[s.name])
                assert got == snapshot_model(s.served.snapshot), s.name
                assert got == s.inline.signed, s.name
                assert snaps[s.name].serial == s.served.snapshot.serial
        finally:
            await server.stop()

    try:
        asyncio.run(scenario())
    finally:
        ours.close()
        theirs.close()
