"""Running the server in one or several processes.

With ``server.workers = N`` the zones are loaded once, then N-1 worker processes are forked:
they share the loaded snapshots (copy-on-write) instead of parsing the zone files again.
Every process answers on the same UDP sockets (made before the fork: the kernel gives each
datagram to one waiting process) and binds its own TCP listeners with SO_REUSEPORT.  The
main process alone owns the control socket, the journal, NOTIFY and the signing of inline
zones; it forwards reloads (SIGHUP), sends every new inline-signed version to the workers
and answers the UPDATEs they relay (a socket pair per worker, :mod:`dnsseal.server.zonesync`),
and stops the workers.  A worker dies with its main process (PR_SET_PDEATHSIG), so a killed
server never leaves orphans answering with old data.  Each process counts the queries it
answers in its own slot of one shared memory map made before the fork
(:mod:`dnsseal.server.counters`); the main process sums them for ``/metrics``.  A worker
answers a signaling zone online as the main process does, signing with the key files that
sign the version it was sent (:func:`dnsseal.server.dsdriver.worker_online`): no key is
sent over the socket pair, and no query waits for the main process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.proto.wiretable import WireTable
from dnsseal.server import counters, libc, views
from dnsseal.server.binding import Bound, bind_all
from dnsseal.server.history import JournalHistory
from dnsseal.server.service import AuthServer
from dnsseal.server.zones import ZoneState
from dnsseal.server.zonetable import preload
from dnsseal.storage.serverconfig import ServerConfig

log = logging.getLogger(__name__)


def shared_table(zones: dict[str, ZoneState]) -> WireTable:
    """The byte path's answer table of the loaded zones, made once before the fork for
    every process to adopt (:func:`adopt_table`).  A table made after the fork would hold a
    new reference to every node of every zone, and writing those reference counts copies
    nearly every page of the shared snapshots into each process (a 100k-name zone: ~240 MiB
    per process).  The zones it serves are the ones the engine serves through this path
    (:meth:`dnsseal.proto.engine.Engine.replace_zone`): the others it drops at the start."""
    snaps = [
        s.served.snapshot
        for s in zones.values()
        if s.served is not None and s.served.online is None and not s.served.expired
    ]
    return WireTable(snaps, {})


def journal_loaded(config: ServerConfig, zones: dict[str, ZoneState], now: int) -> None:
    """Record the loaded zones' versions in the journal now, before the fork, as the start
    would after it (:func:`dnsseal.server.zonehandle.commit_zone_set`, which then finds
    each serial journaled and reads nothing).  Journaling a new version reads every record
    of the snapshot (:func:`dnsseal.server.history.record_lines`): after the fork, the
    reference counts it writes copied every page of a big zone into the main process (a
    100k-name zone: 225 MiB private, PSS summed 542 MiB instead of ~325).  Before it, the
    walk costs the same CPU, and its lines are freed before the heap is trimmed."""
    if config.state_dir is None:
        return
    history = JournalHistory(config.state_dir, writer=True)
    for name, state in zones.items():
        if state.served is None or state.error or state.inline is not None:
            continue
        try:
            history.record(state.served.snapshot, now)
        except DnssealError as e:  # the start's commit path tries again, and says so
            log.warning("[%s] journal not updated before the fork: %s", name, e)


def adopt_table(server: AuthServer, table: WireTable) -> None:
    """Make ``table`` (from :func:`shared_table`, in this process's copy) ``server``'s byte
    path before it starts: its first zone swap then finds every zone already served by the
    same snapshot and rebuilds nothing."""
    engine = server.engine
    table.by_rcode = engine.stats.by_rcode
    engine.wire = table


async def _run(server: AuthServer, on_started: Callable[[AuthServer], None] | None) -> None:
    await server.start()
    try:
        if on_started is not None:
            on_started(server)
        await server.wait_stopped()
    finally:
        await server.stop()


def serve(
    config: ServerConfig,
    config_path: Path | None,
    on_started: Callable[[AuthServer], None] | None = None,
    bound: Bound | None = None,
) -> None:
    """Load the zones, fork the workers, serve until stopped.  ``on_started`` runs in the
    main process once its sockets are bound.  ``bound``: the listeners, control socket and
    state lock already bound (:func:`dnsseal.server.binding.bind_all`); bound here if not
    (raises OptionError)."""
    if bound is None:
        bound = bind_all(config)
    try:
        _serve(config, config_path, on_started, bound)
    finally:
        bound.close()


def _serve(
    config: ServerConfig,
    config_path: Path | None,
    on_started: Callable[[AuthServer], None] | None,
    bound: Bound,
) -> None:
    now = clock.now()
    zones: dict[str, ZoneState] = preload(config, now)
    if config.workers > 1:
        journal_loaded(config, zones, now)
    # parsing a large zone leaves tens of MiB free but mapped, which every worker would map
    libc.trim_heap()
    table: WireTable | None = None
    if config.workers > 1:
        table = shared_table(zones)
        # The presigned zones' signature horizons, found now, not by the main process's
        # watcher after the fork: that walk over every RRSIG would write the reference
        # count of each and copy most of the shared pages (~290 MiB for 100k names).
        views.fill_presigned_horizons(
            [(n, z.served.snapshot) for n, z in zones.items() if z.inline is None and z.served]
        )
    # The loaded zones (and their table) live until the next reload: keep the collector off
    # them, and so off the pages the forked workers share with us.
    gc.freeze()
    pids: list[int] = []
    links: list[tuple[int, socket.socket]] = []
    queries = counters.QUERIES
    queries.share(config.workers)  # slot 0: ours; slot i: worker i
    inbox, outbox = counters.event_sockets()  # the workers' other counted events
    # One UDP and one TCP socket per endpoint shared by every process: each datagram goes
    # to one process blocked in recvfrom, each connection to one process in accept.
    for index in range(1, config.workers):
        sys.stdout.flush()
        sys.stderr.flush()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # a worker: never returns
            code = 0
            try:
                libc.die_with_parent(signal.SIGTERM)
                queries.attach(index)
                inbox.close()
                counters.forward_to(outbox)
                ours.close()
                for _, other in links:
                    other.close()
                bound.drop_control()  # the main process's alone
                worker = AuthServer(
                    config, config_path, worker=True, zones=zones, link=theirs, bound=bound
                )
                if table is not None:
                    adopt_table(worker, table)
                asyncio.run(_run(worker, None))
            except BaseException:
                log.exception("[server] worker %d failed", os.getpid())
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        theirs.close()
        pids.append(pid)
        links.append((pid, ours))
    outbox.close()
    counters.receive_from(inbox)
    main = AuthServer(config, config_path, zones=zones, worker_pids=pids, links=links, bound=bound)
    if table is not None:
        adopt_table(main, table)
    asyncio.run(_run(main, on_started))
