"""Bringing many zones up costs each zone's own work (issue #15).

Counted, never timed: how often one zone's answer-table entries are computed
(``wiretable._entries_of``), how often the shared key directory is read, how often a
directory is read for stale temp files.  Before the fix each zone coming up rebuilt every
served zone's entries (N zones: N(N+1)/2 computations) and read the whole key directory.
The in-place table must stay exactly what a table built at once over the same zones is,
including zones nested in each other, added and removed in any order.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rdata
import dns.zone
import pytest

from conftest import free_port
from dnsseal.proto import wiretable
from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import ZoneSnapshot, build
from dnsseal.proto.wiretable import WireTable
from dnsseal.server.service import AuthServer
from dnsseal.server.zones import ZoneState
from dnsseal.storage import atomic
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.storage.serverconfig import ServerConfig, ZoneConfig, load_config

from .test_udpfast import CHILD, PARENT

N = 60


def _small(i: int, serial: int = 1) -> ZoneSnapshot:
    origin = f"z{i:03d}.test."
    text = f"""
$ORIGIN {origin}
$TTL 300
@     SOA ns hostmaster {serial} 3600 600 86400 300
@     NS ns
ns    A 192.0.2.1
www   A 192.0.2.{serial % 250 + 2}
a.b   TXT "x"
"""
    return build(dns.zone.from_text(text, origin, relativize=False))


@pytest.fixture
def entries_count(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times one zone's entries were computed."""
    calls = [0]
    real = wiretable._entries_of

    def counting(*args: Any) -> Any:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(wiretable, "_entries_of", counting)
    yield calls


def _same(table: WireTable, snaps: list[ZoneSnapshot]) -> None:
    """``table`` holds what a table made at once over ``snaps`` holds."""
    fresh = WireTable(snaps, {})
    assert table.names.keys() == fresh.names.keys()
    for key, entry in fresh.names.items():
        got = table.names[key]
        assert got[0].current.snap is entry[0].current.snap
        assert all(a is b for a, b in zip(got[1:], entry[1:], strict=True))
    assert table.exist.keys() == fresh.exist.keys()
    for key, wz in fresh.exist.items():
        mine = table.exist[key]
        assert (mine.current.snap if mine else None) is (wz.current.snap if wz else None), key
    assert {k: z.snap for k, z in table.zones.items()} == {
        k: z.snap for k, z in fresh.zones.items()
    }


def test_zones_coming_up_one_by_one_build_each_zone_once(entries_count: list[int]) -> None:
    engine = Engine()
    snaps = [_small(i) for i in range(N)]
    served: dict[dns.name.Name, ServedZone] = {}
    for snap in snaps:  # what the server did: the whole set again after each zone
        served[snap.origin] = ServedZone(snap)
        engine.set_zones(dict(served))
    assert entries_count[0] == N  # was N * (N + 1) / 2
    _same(engine.wire, snaps)
    entries_count[0] = 0
    for i in range(N):  # the per-zone path the server takes now
        engine.replace_zone(snaps[i].origin, ServedZone(snaps[i]))  # unchanged: nothing
    assert entries_count[0] == 0
    changed = _small(7, serial=2)
    engine.replace_zone(changed.origin, ServedZone(changed))
    assert entries_count[0] == 1
    snaps[7] = changed
    _same(engine.wire, snaps)
    entries_count[0] = 0
    engine.replace_zone(snaps[3].origin, None)
    assert entries_count[0] == 0
    _same(engine.wire, snaps[:3] + snaps[4:])


def test_a_change_empties_the_response_caches_after_the_table_is_complete() -> None:
    snaps = [_small(i) for i in range(3)]
    engine = Engine({s.origin: ServedZone(s) for s in snaps})
    names, exist, udp_cache = engine.wire.names, engine.wire.exist, engine.udp_cache
    udp_cache[b"q"] = b"r"
    engine.cache[(False, b"q")] = b"r"
    changed = _small(1, serial=5)
    engine.replace_zone(changed.origin, ServedZone(changed))
    # The C loop keeps reading the same dicts; the caches are new and empty.
    assert engine.wire.names is names and engine.wire.exist is exist
    assert engine.udp_cache == {} and engine.udp_cache is not udp_cache
    assert engine.cache == {}
    assert engine.zones[changed.origin].snapshot is changed


def test_nested_zones_in_any_order_match_a_table_made_at_once(
    entries_count: list[int],
) -> None:
    parent = build(dns.zone.from_text(PARENT, "example.", relativize=False))
    child = build(dns.zone.from_text(CHILD, "child.example.", relativize=False))
    other = _small(1)
    rng = random.Random(15)
    for _ in range(20):
        pool = [parent, child, other]
        rng.shuffle(pool)
        table = WireTable([], {})
        live: list[ZoneSnapshot] = []
        for snap in pool:
            table.replace_zone(snap.origin, snap)
            live.append(snap)
            _same(table, live)
        for snap in rng.sample(pool, 2):
            table.replace_zone(snap.origin, None)
            live.remove(snap)
            _same(table, live)
    # Adding a zone below another rebuilds the one above (its names inside change hands)
    # and nothing else.
    table = WireTable([parent, other], {})
    entries_count[0] = 0
    table.replace_zone(child.origin, child)
    assert entries_count[0] == 2


def test_the_byte_path_never_remembers_a_replaced_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    snap = _small(1)
    table = WireTable([snap], {})
    stale = table.zones[wiretable.question_key(snap.origin)]
    table.names.clear()
    real = wiretable._name_key

    def replaced_meanwhile(*args: Any) -> Any:
        # The event loop replaces the zone while the UDP thread is answering from the old
        # version (after it found the zone, before it remembers the name).
        table.replace_zone(snap.origin, _small(1, serial=2))
        return real(*args)

    monkeypatch.setattr(wiretable, "_name_key", replaced_meanwhile)
    table.answer(dns.message.make_query("www.z001.test.", "A").to_wire(), False, 1232)
    assert table.names  # the new version's entries
    assert all(e[0] is not stale for e in table.names.values())


def test_the_key_directory_is_read_once_for_many_zones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keydir = tmp_path / "keys"
    keydir.mkdir()
    zones = [dns.name.from_text(f"z{i:03d}.test.") for i in range(N)]
    for i, zone in enumerate(zones):  # other zones' files, as BIND names them
        for suffix in (".key", ".private", ".state"):
            (keydir / f"K{zone.to_text()}+013+{10000 + i:05d}{suffix}").write_text("")
    (keydir / "Kz000.test.+junk.key").write_text("")  # what glob("Kz000.test.+*") finds
    reads: list[str] = []
    real = os.scandir

    def counting(path: Any = ".") -> Any:
        if Path(path) == keydir:
            reads.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    kd = KeyDirectory(keydir)
    for i, zone in enumerate(zones):
        found = [p.name for p in kd.files(zone, ".key")]
        want = [f"K{zone.to_text()}+013+{10000 + i:05d}.key"]
        if i == 0:
            want = sorted([*want, "Kz000.test.+junk.key"])
        assert found == want
    assert len(reads) == 1  # was one per zone
    # A file another process writes is seen once the directory changed.
    os.utime(keydir, ns=(1, 1))
    (keydir / f"K{zones[5].to_text()}+013+00005.key").write_text("")
    assert len(kd.files(zones[5], ".key")) == 2
    assert len(reads) == 2


def test_stale_temps_are_looked_for_with_one_read_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = ".z007.test.signed.999999999.abcdefgh.tmp"  # no such process
    (tmp_path / dead).write_text("")
    reads: list[str] = []
    real = os.scandir

    def counting(path: Any = ".") -> Any:
        if Path(path) == tmp_path:
            reads.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    for i in range(N):
        atomic.replace(tmp_path / f"z{i:03d}.test.signed", b"x")
    assert len(reads) == 1  # was one per file
    assert not (tmp_path / dead).exists()


def test_outputs_without_stale_temps_cost_no_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp-file pattern is compiled only for an output that has leftovers (it was
    compiled for every output written: two per zone at a cold start, the re module's
    cache being far smaller than the number of zones)."""
    import re

    dead = ".z007.test.signed.999999999.abcdefgh.tmp"
    (tmp_path / dead).write_text("")
    compiled: list[str] = []
    real = re.compile

    def counting(pattern: Any, flags: Any = 0) -> Any:
        if isinstance(pattern, str) and pattern.endswith(r"\.tmp\Z"):
            compiled.append(pattern)
        return real(pattern, flags)

    monkeypatch.setattr(re, "compile", counting)
    for i in range(N):
        atomic.replace(tmp_path / f"z{i:03d}.test.signed", b"x")
    assert len(compiled) == 1, compiled  # z007's only (was one per output)
    assert not (tmp_path / dead).exists()


def test_the_server_hands_the_engine_only_the_zones_that_changed(
    entries_count: list[int],
) -> None:
    """What the signer does for each zone it brings up (automation._serve): set the
    zone's ``served``, then ``swap_zones()``: only that zone is replaced."""
    snaps = [_small(i) for i in range(N)]
    states = {
        s.origin.to_text(): ZoneState(ZoneConfig(s.origin.to_text(), Path("/nonexistent"), True))
        for s in snaps
    }
    server = AuthServer(ServerConfig(listen=(), control=None, zones=()))
    server.zones = states
    server.table.swap_zones(everything=True)  # what a reload does: nothing served yet
    assert server.engine.zones == {}
    replaced: list[dns.name.Name] = []
    real = server.engine.replace_zones

    def counting(zones: Iterable[tuple[dns.name.Name, ServedZone | None]]) -> None:
        zones = list(zones)
        replaced.extend(origin for origin, _ in zones)
        real(zones)

    server.engine.replace_zones = counting  # type: ignore[method-assign]
    for snap in snaps:
        states[snap.origin.to_text()].served = ServedZone(snap)
        server.table.swap_zones()
    assert replaced == [s.origin for s in snaps]  # was every zone at every swap
    assert entries_count[0] == N
    assert set(server.engine.zones) == {s.origin for s in snaps}
    _same(server.engine.wire, snaps)


# -- restart of many inline-signed zones ------------------------------------------------

INLINE = 12  # zones (a small batch is forced below, so several batches run)


def _inline_config(d: Path, port: int) -> Path:
    (d / "zones").mkdir(exist_ok=True)
    body = ""
    for i in range(INLINE):
        name = f"s{i:02d}.test."
        (d / "zones" / name).write_text(
            f"$ORIGIN {name}\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n"
            f"@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.{i + 2}\n"
        )
        body += f'\n[zone."{name}"]\nfile = "{d / "zones" / name}"\ndnssec-policy = "default"\n'
    conf = d / "dnsseal.toml"
    conf.write_text(
        f'[server]\nlisten = ["127.0.0.1@{port}"]\nworkers = 1\ncontrol = "none"\n'
        f'state-dir = "{d / "state"}"\nkey-directory = "{d / "keys"}"\n' + body
    )
    return conf


def _run_server(conf: Path) -> dict[str, tuple[int, list[tuple[Any, ...]]]]:
    """Start the server on ``conf`` until every zone is served; each zone's serial and
    every RRset with its signatures as served."""

    async def scenario() -> dict[str, tuple[int, list[tuple[Any, ...]]]]:
        server = AuthServer(load_config(conf), conf)
        await server.start()
        try:
            out = {}
            for name, state in server.zones.items():
                assert state.served is not None, state.error
                snap = state.served.snapshot
                z = state.inline.signed if state.inline is not None else None
                assert z is not None
                rrs = sorted((rr.name, rr.rtype, rr.ttl, rr.rdatas) for rr in z.iter_rrsets())
                sigs = sorted(
                    (n, t, rr.rdatas) for n, node in z.rrsigs.items() for t, rr in node.items()
                )
                out[name] = (snap.serial, [*rrs, *sigs])
            return out
        finally:
            await server.stop()

    return asyncio.run(scenario())


def test_a_restart_of_many_inline_zones_serves_the_same_with_few_thread_hops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zones restored and first maintained a batch per worker-thread call (was three
    hops and a journal opening per zone); the restart serves exactly what was served
    (same serials, same signatures)."""
    from dnsseal.server import inline as inline_mod
    from dnsseal.server import maintenance as automation
    from dnsseal.storage import journal

    monkeypatch.setattr(automation, "START_BATCH", 5)
    monkeypatch.setattr(inline_mod, "RACY_NS", 0)  # the test's files are seconds old
    conf = _inline_config(tmp_path, free_port())
    cold = _run_server(conf)
    assert len(cold) == INLINE and all(serial >= 1 for serial, _ in cold.values())
    hops: list[str] = []
    opened = [0]
    signed: list[str] = []
    real_hop, real_open = asyncio.to_thread, journal.Journal.__init__
    real_sign = inline_mod.sign_zone

    def counting_sign(zone: Any, *args: Any, **kwargs: Any) -> Any:
        signed.append(zone.origin.to_text())
        return real_sign(zone, *args, **kwargs)

    monkeypatch.setattr(inline_mod, "sign_zone", counting_sign)
    parsed: list[str] = []
    real_parse = inline_mod.zone_from_lines

    def counting_parse(lines: Any, origin: Any) -> Any:
        parsed.append(origin.to_text())
        return real_parse(lines, origin)

    monkeypatch.setattr(inline_mod, "zone_from_lines", counting_parse)

    async def counting_hop(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__qualname__", repr(func)))
        return await real_hop(func, *args, **kwargs)

    def counting_open(self: Any, *args: Any) -> None:
        opened[0] += 1
        real_open(self, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting_hop)
    monkeypatch.setattr(journal.Journal, "__init__", counting_open)
    restarted = _run_server(conf)
    assert restarted == cold  # same serials, same records, same signatures
    batches = [h for h in hops if h.endswith("_start_batch")]
    assert len(batches) == -(-INLINE // 5)  # 3 batches of at most 5: was 3 hops per zone
    assert len(hops) < INLINE, hops  # nothing else hops per zone on an unchanged restart
    assert opened[0] < INLINE, opened  # the journal opened per batch, not per zone
    assert signed == []  # nothing was due: the versions restored are served as they are
    assert parsed == []  # restored from the versions packed in the journal, not its text


def test_a_cold_start_of_many_zones_commits_the_journal_once_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every zone's first version and key events are journaled in its batch's one
    transaction (were a commit, and an fsync, for the version and one for each event of
    every zone), and the key directory's new names are made durable once per batch, before
    its commit (were two directory fsyncs per key, and before that one per key file); the
    restart serves what was journaled."""
    from dnsseal.server import inline as inline_mod
    from dnsseal.server import maintenance as automation
    from dnsseal.storage import journal

    monkeypatch.setattr(automation, "START_BATCH", 5)
    monkeypatch.setattr(automation, "START_BATCH_SECONDS", 60)  # batches of 5 exactly
    commits = [0]
    real_txn = journal.Journal._txn
    dir_syncs: list[str] = []
    real_sync = atomic.fsync_dir
    timeline: list[str] = []  # key files made, key directory synced, journal committed
    real_write = KeyDirectory.write

    def counting_txn(self: Any) -> Any:
        if not getattr(self, "_in_batch", False):  # (the old code has no batches)
            commits[0] += 1
            timeline.append("commit")
        return real_txn(self)

    def counting_sync(directory: Path) -> None:
        dir_syncs.append(Path(directory).name)
        if Path(directory).name == "keys":
            timeline.append("sync")
        real_sync(directory)

    def recording_write(self: Any, **kwargs: Any) -> None:
        real_write(self, **kwargs)
        if kwargs.get("create"):
            timeline.append("key")

    monkeypatch.setattr(journal.Journal, "_txn", counting_txn)
    monkeypatch.setattr(atomic, "fsync_dir", counting_sync)
    monkeypatch.setattr(KeyDirectory, "write", recording_write)
    threads: list[int] = []
    real_maintain = inline_mod.InlineZone.maintain

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real_maintain(self, *args, **kwargs)

    monkeypatch.setattr(inline_mod.InlineZone, "maintain", recording)
    conf = _inline_config(tmp_path, free_port())
    cold = _run_server(conf)
    assert len(cold) == INLINE
    batches = -(-INLINE // 5)
    assert commits[0] == batches, commits  # was 5 or more per zone
    # at most one per key for the .private file's name (before the .key names the key;
    # shared by the zones' threads that wait for one at the same time), then one per batch
    # for the rest (was one per key more, and before that one per file) ...
    assert batches < dir_syncs.count("keys") <= INLINE + batches, dir_syncs
    assert timeline.count("key") == INLINE
    # ... and every key's names are durable before a version is journaled
    for i, event in enumerate(timeline):
        if event == "commit" and "key" in timeline[:i]:
            last_key = max(k for k in range(i) if timeline[k] == "key")
            assert "sync" in timeline[last_key:i], timeline
    # the zones of a batch are maintained in parallel threads: their fsyncs overlap
    assert len(set(threads)) > 1, threads
    with journal.Journal(tmp_path / "state") as j:
        events = j.audit_log()
        assert {e.zone for e in events} == set(cold)  # every zone's key events are there
        for name, (serial, _) in cold.items():
            assert j.current_serial(name) == serial
    assert _run_server(conf) == cold


def test_a_start_makes_its_zone_threads_once_for_all_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The threads that maintain the zones signed for the first time (and write their
    copies) are made once for the whole start, not once per batch (were a pool per
    batch: START_THREADS threads made and joined again every 0.2 s at a cold start)."""
    from dnsseal.server import maintenance as automation

    monkeypatch.setattr(automation, "START_BATCH", 5)
    monkeypatch.setattr(automation, "START_BATCH_SECONDS", 60)  # batches of 5 exactly
    monkeypatch.setattr(automation, "START_THREADS", 2)
    made: list[str] = []
    real_start = threading.Thread.start

    def recording(self: threading.Thread) -> None:
        made.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", recording)
    cold = _run_server(_inline_config(tmp_path, free_port()))
    assert len(cold) == INLINE
    pools = [n for n in made if n.startswith(("ThreadPoolExecutor-", "zone-start"))]
    assert len(pools) == 2, made  # was 6: a pool of 2 for each of the 3 batches


def test_a_start_filters_the_cached_answers_once_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zones a start brings up are served a batch at a time: one swap, so one
    filtering of each answer cache (which costs the cache's size, up to
    ``engine.FILTER_LIMIT`` entries: with a filter per zone a cold start of 10,000 zones
    being queried cost milliseconds per zone in every process), and every zone is served
    once its batch is."""
    from dnsseal.server import maintenance as automation

    monkeypatch.setattr(automation, "START_BATCH", 5)
    monkeypatch.setattr(automation, "START_BATCH_SECONDS", 60)  # batches of 5 exactly
    filtered: list[int] = []
    real = Engine._drop_cached

    def counting(self: Engine, origins: Iterable[dns.name.Name]) -> None:
        origins = list(origins)
        filtered.append(len(origins))
        real(self, origins)

    monkeypatch.setattr(Engine, "_drop_cached", counting)
    cold = _run_server(_inline_config(tmp_path, free_port()))
    assert len(cold) == INLINE
    assert sum(filtered) == INLINE, filtered  # every zone's cached answers dropped
    assert len(filtered) == -(-INLINE // 5), filtered  # once per batch: was once per zone


def test_a_worker_serves_a_frames_versions_at_one_swap_before_acknowledging() -> None:
    """A worker installs the versions of a frame, then swaps them into its answer
    tables once (one filtering of its answer caches, not one per zone), and only then
    acknowledges them (a query after the main process's wait for the acknowledgement
    sees them)."""
    from dnsseal.server.zonesync import ACK, ZONE, WorkerLink, _frame, _pack_versions, _read_frame
    from dnsseal.zone.text import parse_zone_text

    models = []
    for i in range(5):
        origin = f"w{i}.test."
        text = f"$ORIGIN {origin}\n$TTL 300\n@ SOA ns h 1 3600 600 86400 300\n@ NS ns\n"
        models.append(parse_zone_text(text, origin))
    events: list[str] = []

    async def scenario() -> bytes:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        link = WorkerLink(
            theirs, lambda name, snap: events.append(name), lambda: events.append("swap")
        )
        await link.start()
        reader, writer = await asyncio.open_connection(sock=ours)
        items = [(i + 1, z.origin.to_text(), 1, z, None, None) for i, z in enumerate(models)]
        writer.write(_frame(ZONE, _pack_versions(items)))
        await writer.drain()
        kind, payload = await asyncio.wait_for(_read_frame(reader), 10)
        events.append(f"ack {payload.decode()}")
        assert kind == ACK
        await link.stop()
        writer.close()
        return payload

    assert asyncio.run(scenario()) == b"5"
    assert events == [*(z.origin.to_text() for z in models), "swap", "ack 5"]


def test_key_records_and_key_files_are_made_once_per_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zone's CDS/CDNSKEY RDATA are computed once per key (they were built through
    dns.rdata.from_text for every key at every restore), its key files parsed again only
    once they changed; both equal what they were made from before."""
    from dnsseal.keys import bindfmt
    from dnsseal.keys.ds import make_ds
    from dnsseal.policy.build import lookup
    from dnsseal.server import inline as inline_mod
    from dnsseal.storage import keydir as keydir_mod
    from dnsseal.zone import canonical

    conf = _inline_config(tmp_path, free_port())
    _run_server(conf)  # keys made
    monkeypatch.setattr(keydir_mod, "RACY_NS", 0)  # the files were just written
    inline_mod._KEY_RECORDS.clear()
    keydir_mod._LOADED.clear()
    digests: list[int] = []
    parsed: list[str] = []
    real_ds, real_parse = make_ds, bindfmt.parse_key

    def counting_ds(key: Any, digest: int = 2) -> Any:
        digests.append(digest)
        return real_ds(key, digest)

    def counting_parse(text: str, where: str) -> Any:
        parsed.append(where)
        return real_parse(text, where)

    monkeypatch.setattr(inline_mod, "make_ds", counting_ds)
    monkeypatch.setattr(bindfmt, "parse_key", counting_parse)
    config = load_config(conf)
    zones = []
    for zcfg in config.zones:
        assert zcfg.policy is not None and config.state_dir and config.key_dir
        z = inline_mod.InlineZone(
            zcfg.name,
            zcfg.file,
            lookup(zcfg.policy, config.policies),
            config.key_dir,
            config.state_dir,
        )
        zones.append(z)
        first = z._our_keyset_rdatas()
        assert z._our_keyset_rdatas() == first
        keys = z.keydir.keys(z.origin)
        want = {
            canonical.rdata_wire(dns.rdata.from_text(1, 59, real_ds(k, d).rdata_text()))
            for k in keys
            for d in z.policy.cds_digest_types
        } | {canonical.rdata_wire(k.dnskey()) for k in keys}
        assert want <= first  # the same RDATA the text path made
    n_keys = sum(len(z.keydir.keys(z.origin)) for z in zones)
    assert n_keys >= INLINE
    per_key = len(zones[0].policy.cds_digest_types)
    assert len(digests) == n_keys * per_key  # once per key, not per call
    assert len(parsed) == n_keys  # each key file parsed once
    # A key rewritten (as the key manager saves it) is read again.
    key = zones[0].keydir.keys(zones[0].origin)[0]
    zones[0].keydir.save(key)
    assert zones[0].keydir.keys(zones[0].origin) == [key]
    assert len(parsed) == n_keys + 1


def test_a_restart_reads_neither_source_nor_copy_of_an_unchanged_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of the source says which file it was made from: a restart on an unchanged
    source reads neither (the journal's version holds that data: each was parsed at every
    restart); an edit made while down is applied, and so is one made after the restart
    (the copy is read then, to diff against)."""
    from dnsseal.server import inline as inline_mod
    from dnsseal.storage import zonefile

    monkeypatch.setattr(inline_mod, "RACY_NS", 0)  # the test's files are seconds old
    conf = _inline_config(tmp_path, free_port())
    cold = _run_server(conf)
    reads: list[str] = []
    real = zonefile.read_zone

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(zonefile, "read_zone", counting)
    assert _run_server(conf) == cold
    assert reads == []  # was the source and the copy of every zone
    # An edit while the server is down: that zone's files are read, its edit served.
    src = tmp_path / "zones" / "s03.test."
    src.write_text(src.read_text() + "new A 192.0.2.99\n")
    edited = _run_server(conf)
    assert sorted(reads) == ["s03.test.", "s03.test.source"]
    assert {k: v for k, v in edited.items() if k != "s03.test."} == {
        k: v for k, v in cold.items() if k != "s03.test."
    }
    assert edited["s03.test."][0] > cold["s03.test."][0]
    assert any(str(r[0]) == "new.s03.test." for r in edited["s03.test."][1])
    reads.clear()
    assert _run_server(conf) == edited  # the copy now says so: nothing read again
    assert reads == []

    # An edit after a restart that read nothing: the copy is read then and diffed.
    async def edit_while_running() -> None:
        server = AuthServer(load_config(conf), conf)
        await server.start()
        try:
            state = server.zones["s05.test."]
            assert state.inline is not None and reads == []
            src5 = tmp_path / "zones" / "s05.test."
            src5.write_text(src5.read_text().replace("www A", "web A"))
            assert await server.automation.maintain(state, "reload") is None
            assert sorted(reads) == ["s05.test.", "s05.test.source"]
            signed = state.inline.signed
            assert signed is not None
            owners = {str(n) for n in signed.rrsets}
            assert "web.s05.test." in owners and "www.s05.test." not in owners
        finally:
            await server.stop()

    asyncio.run(edit_while_running())


def test_a_bug_in_one_zone_of_a_batch_is_raised_after_the_zones_before_it_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when each zone was maintained in turn: an unexpected error propagates, and the
    zones maintained before it in its batch are served (not left half-done)."""
    from dnsseal.server import inline as inline_mod

    conf = _inline_config(tmp_path, free_port())
    real = inline_mod.InlineZone.maintain

    def failing(self: Any, now: int, **kwargs: Any) -> Any:
        if self.name == "s03.test.":
            raise RuntimeError("a bug")
        return real(self, now, **kwargs)

    monkeypatch.setattr(inline_mod.InlineZone, "maintain", failing)

    async def scenario() -> None:
        server = AuthServer(load_config(conf), conf)
        try:
            with pytest.raises(RuntimeError, match="a bug"):
                await server.start()
            served = {n for n, s in server.zones.items() if s.served is not None}
            assert served == {"s00.test.", "s01.test.", "s02.test."}
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_batch_whose_start_was_cancelled_is_finished_without_the_pool() -> None:
    """The pool is start_many's; when the start is cancelled while a batch runs in its
    thread, the pool is shut down under the batch, which then does its remaining zones
    itself (as it did with a pool of its own) instead of failing half-way."""
    from concurrent.futures import ThreadPoolExecutor

    from dnsseal.server import maintenance as automation

    pool = ThreadPoolExecutor(2)
    running = automation._submit(pool, threading.get_ident)
    assert running.result() != threading.get_ident()  # in the pool
    pool.shutdown(wait=True)
    after = automation._submit(pool, threading.get_ident)
    assert after.done() and after.result() == threading.get_ident()  # here


def test_what_a_start_made_is_kept_out_of_later_collections_and_still_freed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch of a start is frozen out of the collector once published: a full
    collection later walks none of the zones started (before, every full collection of
    the start walked every zone started so far again).  A version frozen so is still freed
    once replaced: by its reference count, no cycle holds it (what a collection of
    everything would free, nothing frozen would ever free)."""
    import gc
    import weakref

    from dnsseal.server import maintenance as automation

    monkeypatch.setattr(automation, "START_BATCH", 5)
    conf = _inline_config(tmp_path, free_port())

    async def scenario() -> None:
        server = AuthServer(load_config(conf), conf)
        await server.start()
        try:
            tracked = {id(o) for o in gc.get_objects()}
            first: list[weakref.ref[Any]] = []
            for state in server.zones.values():
                assert state.inline is not None and state.inline.signed is not None
                assert state.served is not None
                for made in (state.inline.signed, state.served.snapshot):
                    assert id(made) not in tracked  # frozen: no collection walks it
                    first.append(weakref.ref(made))
            for state in server.zones.values():  # every zone's version replaced
                assert await server.automation.maintain(state, "resign", force=True) is None
            alive = [ref for ref in first if ref() is not None]
            assert len(alive) < len(first) // 2  # (a history may keep a whole snapshot)
            gc.unfreeze()
            gc.collect()
            assert all(ref() is not None for ref in alive)  # none held only by a cycle
        finally:
            await server.stop()
            gc.unfreeze()

    asyncio.run(scenario())


def test_a_key_read_at_a_restart_costs_three_stats_and_is_the_same_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a key not seen yet: its three files stat'ed once (the cache's stamp), not
    again to find which exist and the private file's mode (was six stats), and the key
    read equals load_key's; a private file readable by others is still warned about."""
    import logging

    from dnsseal.storage import keydir as keydir_mod

    conf = _inline_config(tmp_path, free_port())
    _run_server(conf)  # keys made
    monkeypatch.setattr(keydir_mod, "RACY_NS", 0)
    keydir_mod._LOADED.clear()
    kd = KeyDirectory(tmp_path / "keys")
    files = kd.files(dns.name.from_text("s00.test."), ".key")
    assert files
    stats: list[str] = []
    real_stat = os.stat

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    key = keydir_mod._load_known(files[0])
    assert len(stats) == 3, stats
    monkeypatch.setattr(os, "stat", real_stat)
    assert key == keydir_mod.load_key(files[0])
    private = files[0].with_suffix(".private")
    private.chmod(0o640)
    keydir_mod._LOADED.clear()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    keydir_mod.log.addHandler(handler)
    try:
        keydir_mod._load_known(files[0])
    finally:
        keydir_mod.log.removeHandler(handler)
    assert any("accessible to group or others" in r.getMessage() for r in records)
