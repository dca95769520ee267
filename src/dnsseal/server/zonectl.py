"""The zone control commands of a running server (``dnsseal ctl``, named as ``rndc``'s).

``reload [ZONE]``, ``retransfer ZONE``, ``freeze ZONE``, ``thaw ZONE``, ``sync ZONE``,
``notify ZONE``.  Each returns a reply for the control socket: ``ok``, ``result`` (the
lines people read) and ``data`` (the same as structure).  A command that fails for a zone
says so in its reply with ``ok`` false, so ``dnsseal ctl`` exits non-zero (as rndc does).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from dnsseal import clock
from dnsseal.errors import DnssealError
from dnsseal.server import catalog
from dnsseal.server.zones import ZoneState, load_one
from dnsseal.storage import zonefile

if TYPE_CHECKING:
    from dnsseal.server.running import RunningServer

log = logging.getLogger(__name__)


def _display(name: str) -> str:
    return name.rstrip(".") or "."


def _serial(state: ZoneState) -> int | None:
    return state.served.snapshot.serial if state.served is not None else None


def _problem_of(state: ZoneState, problems: list[str]) -> str | None:
    """The zone's problems from a reload, and for a zone signed here, a source file that
    was not taken (the zone keeps its previous data, but the file did not load)."""
    prefix = f"{state.name}: "
    found = [p[len(prefix) :] for p in problems if p.startswith(prefix)]
    source = state.inline.source_problem if state.inline is not None else None
    if source and not any(source in f for f in found):
        found.append(f"source not taken: {source}")
    return "; ".join(found) if found else None


async def reload_all(server: RunningServer) -> dict[str, Any]:
    """Re-read the configuration and every zone (as SIGHUP): per zone, its serial and
    its problem; ``ok`` only when the configuration and every zone loaded."""
    problems = await server.reload()
    config_problems = [p[len("config: ") :] for p in problems if p.startswith("config: ")]
    zones = []
    for state in sorted(server.zones.values(), key=lambda z: z.name):
        problem = _problem_of(state, problems)
        zones.append(
            {
                "zone": state.name,
                "ok": problem is None,
                "serial": _serial(state),
                "problem": problem,
            }
        )
    failed = [z for z in zones if not z["ok"]]
    lines = [f"config: not reloaded: {p}" for p in config_problems]
    if not config_problems:
        lines.append(
            f"reloaded {len(zones) - len(failed)} of {len(zones)} zone(s)"
            + (f"; {len(failed)} failed" if failed else "")
        )
    ok = not config_problems and not failed
    data = {"config-problems": config_problems, "zones": zones}
    reply: dict[str, Any] = {"ok": ok, "result": lines, "data": data}
    if failed:  # `dnsseal ctl` prints these on stderr
        reply["problems"] = [f"{z['zone']}: {z['problem']}" for z in failed]
    if not ok:
        reply["error"] = (
            f"reload failed: {len(failed)} zone(s) not loaded"
            if failed
            else "reload failed: the configuration was not loaded"
        )
    return reply


async def reload_zone(server: RunningServer, state: ZoneState) -> dict[str, Any]:
    """Re-read one zone's file (as ``rndc reload ZONE``; the configuration stays)."""
    now = clock.now()
    before = _serial(state)
    problem: str | None
    if state.inline is not None:
        problem = await server.automation.maintain(state, "reload")
        problem = _problem_of(state, [f"{state.name}: {problem}"] if problem else [])
    elif state.config.policy is not None:
        problem = state.error or "not loaded yet"
    else:
        # a catalog is dnsseal's own (written again from the configuration, so a
        # hand-edited file is put right) and, like a plain secondary's copy, unsigned
        cat = next((c for c in server.config.catalogs if c.name == state.name), None)
        if cat is not None and not server.worker:
            try:
                await asyncio.to_thread(catalog.write_catalog, server.config, cat, now)
            except DnssealError as e:
                log.error("[%s] catalog not written: %s", state.name, e)
        signed_only = cat is None and not state.config.secondary
        new_serial, problem = await asyncio.to_thread(
            load_one, state, server.config.ixfr_versions, now, signed_only
        )
        state.error = problem
        if problem is None and new_serial and state.served is not None:
            log.info("[%s] loaded serial %d", state.name, state.served.snapshot.serial)
            await state.commit_served(now)
    if problem is not None:
        log.error("[%s] not reloaded: %s", state.name, problem)
    after = _serial(state)
    data = {
        "zone": state.name,
        "ok": problem is None,
        "serial-before": before,
        "serial": after,
        "problem": problem,
    }
    if problem is not None:
        return {
            "ok": False,
            "error": f"{state.name}: not reloaded: {problem}",
            "result": [],
            "problems": [f"{state.name}: {problem}"],
            "data": data,
        }
    how = "unchanged" if before == after else f"serial {before} -> {after}"
    return {"ok": True, "result": [f"{state.name}: reloaded ({how})"], "data": data}


async def retransfer(server: RunningServer, state: ZoneState) -> dict[str, Any]:
    """Transfer the whole zone from its primaries now (AXFR, whatever the serials), as
    ``rndc retransfer``."""
    sec = state.secondary
    if sec is None:
        raise LookupError(f"{state.name}: not a secondary zone (no primaries configured)")
    kept = sec.copy
    sec.copy = None  # without our serial the refresh transfers the whole zone (AXFR)
    ok = await sec.refresh()
    if not ok and sec.copy is None:
        sec.copy = kept  # nobody answered: keep what we had (and its SOA timers)
    result = sec.status.last_result or "-"
    data = {"zone": state.name, "ok": ok, "serial": _serial(state), "result": result}
    reply: dict[str, Any] = {"ok": ok, "result": [f"{state.name}: {result}"], "data": data}
    if not ok:
        reply["error"] = f"{state.name}: retransfer failed: {result}"
    return reply


async def sync(server: RunningServer, state: ZoneState) -> dict[str, Any]:
    """Write the zone's current data (its file plus every dynamic update) back to its
    source file, as ``rndc sync``: the operator then edits what is served.  The copy the
    signer compares the file with is updated too, so the updates are not applied twice.
    Only for zones signed here without primaries; the others have nothing to write."""
    inline = state.inline
    if inline is None or state.config.primaries:
        what = "a secondary zone" if state.config.primaries else "a presigned zone"
        data = {"zone": state.name, "written": False, "file": str(state.config.file)}
        return {"ok": True, "result": [f"{state.name}: {what}: nothing to sync"], "data": data}
    path = state.config.file
    async with state.lock:
        unsigned = inline.unsigned
        if unsigned is None:
            raise LookupError(f"{state.name}: not loaded yet: nothing to sync")

        def write() -> None:
            header = [f"; {state.name} written by `dnsseal ctl sync` (file + dynamic updates)"]
            zonefile.write_zone(path, unsigned, header=header)
            st = path.stat()
            inline.file_sig = (st.st_mtime_ns, st.st_size)
            inline.file_copy = unsigned
            inline.copy_dirty = True
            inline.save_source_copy()

        try:
            await asyncio.to_thread(write)
        except OSError as e:
            raise DnssealError(f"{path}: {e.strerror or e}") from None
    log.info("[%s] synced to %s (serial %d)", state.name, path, unsigned.soa().serial)
    data = {"zone": state.name, "written": True, "file": str(path)}
    return {"ok": True, "result": [f"{state.name}: written to {path}"], "data": data}


async def freeze(server: RunningServer, state: ZoneState) -> dict[str, Any]:
    """Hold dynamic updates (answered REFUSED) and write the current data to the source
    file, so an operator can edit it (``rndc freeze``)."""
    if state.inline is None or state.config.primaries:
        raise LookupError(f"{state.name}: not a dynamic zone: only zones signed here take updates")
    state.frozen = True
    log.info("[%s] frozen: dynamic updates refused until thawed", state.name)
    synced = await sync(server, state)
    lines = [f"{state.name}: frozen: updates refused; edit {state.config.file}, then thaw"]
    data = {"zone": state.name, "frozen": True, "file": str(state.config.file)}
    return {"ok": synced["ok"], "result": lines, "data": data}


async def thaw(server: RunningServer, state: ZoneState) -> dict[str, Any]:
    """Load the edited file and take updates again (``rndc thaw``)."""
    if not state.frozen:
        raise LookupError(f"{state.name}: not frozen")
    reply = await reload_zone(server, state)
    if not reply["ok"]:  # a bad edit: stay frozen, so the file can be fixed
        reply["error"] = f"{reply['error']} (still frozen)"
        return reply
    state.frozen = False
    log.info("[%s] thawed: dynamic updates taken again", state.name)
    reply["result"] = [*reply["result"], f"{state.name}: thawed: updates taken again"]
    reply["data"]["frozen"] = False
    return reply


async def notify(server: RunningServer, state: ZoneState) -> dict[str, Any]:
    """Send NOTIFY to the zone's also-notify targets now and say what was sent to whom
    and how each answered."""
    serial = _serial(state)
    if serial is None:
        raise LookupError(f"{state.name}: not served: no NOTIFY sent")
    targets = [str(e) for e in state.config.also_notify]
    if not targets:
        data = {"zone": state.name, "serial": serial, "targets": []}
        lines = [f"{state.name}: no also-notify targets configured: nothing sent"]
        return {"ok": True, "result": lines, "data": data}
    results = await server.notify(state.name)
    rows = []
    for target, line in zip(targets, results, strict=False):
        rows.append(
            {
                "target": target,
                "acknowledged": "acknowledged" in line,
                "result": line.split(": ", 1)[1] if ": " in line else line,
            }
        )
    head = f"{state.name}: NOTIFY serial {serial} sent to {len(targets)} target(s)"
    data = {"zone": state.name, "serial": serial, "targets": rows}
    return {"ok": True, "result": [head, *(f"  {r}" for r in results)], "data": data}
