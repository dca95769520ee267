"""A zone's change drops only its own cached answers (issue #15: one zone's change never
rebuilds another zone's tables), and never leaves one of its answers stale.

The engine keeps answers as wire bytes keyed by the query (engine.cache, the general path;
engine.udp_cache, the UDP loop's byte path, filled by the C datagram thread): both used to
be emptied for every zone whenever any zone changed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.zone
import pytest

from conftest import free_port, require_tool, stop, wait_for_dns
from dnsseal.proto import engine as engine_mod
from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import ZoneSnapshot, build

A, B, CHILD = "a.test.", "b.test.", "sub.a.test."
DNSSEAL = str(Path(sys.executable).parent / "dnsseal")  # the console script next to python


def _snap(origin: str, address: str, extra: str = "") -> ZoneSnapshot:
    text = f"""
$ORIGIN {origin}
$TTL 300
@     SOA ns hostmaster 1 3600 600 86400 300
@     NS ns
ns    A 192.0.2.1
www   A {address}
{extra}
"""
    return build(dns.zone.from_text(text, origin, relativize=False))


def _ask(engine: Engine, name: str, rtype: str = "A", tcp: bool = False) -> bytes:
    """What the server answers: a UDP question as the UDP loop does (the byte path, its
    answer kept in udp_cache, else the general path), a TCP one by Engine.handle."""
    wire = dns.message.make_query(name, rtype).to_wire()
    if not tcp:
        hit = engine.udp_cache.get(wire[2:])
        if hit is not None:
            return wire[:2] + hit
        out = engine.wire.answer(wire, False, engine.udp_payload)
        if out is not None:
            engine.udp_cache[wire[2:]] = out[2:]
            return out
    return engine.handle(wire, tcp)[0]


def _address(response: bytes) -> str:
    msg = dns.message.from_wire(response)
    return msg.answer[0][0].to_text() if msg.answer else msg.rcode().name


def _names(cache: dict[bytes, bytes]) -> set[str]:
    return {dns.message.from_wire(b"\0\0" + k).question[0].name.to_text() for k in cache}


def test_a_change_drops_the_answers_of_that_zone_only() -> None:
    cut = "sub NS ns.sub\nns.sub A 192.0.2.7"  # (the delegation to the child)
    engine = Engine(
        {
            dns.name.from_text(A): ServedZone(_snap(A, "192.0.2.10", cut)),
            dns.name.from_text(B): ServedZone(_snap(B, "192.0.2.20")),
            dns.name.from_text(CHILD): ServedZone(_snap(CHILD, "192.0.2.30")),
        }
    )
    for tcp in (False, True):
        for name in (f"www.{A}", f"www.{B}", f"www.{CHILD}", "www.elsewhere.", f"nx.{B}"):
            _ask(engine, name, tcp=tcp)
        _ask(engine, CHILD, "DS", tcp)  # the parent's answer (a.test.)
    assert _names(engine.udp_cache) >= {f"www.{A}", f"www.{B}", f"www.{CHILD}", f"nx.{B}"}
    general = {k[1] for k in engine.cache if k[0]}  # (the TCP ones)
    assert len(general) == 6

    engine.replace_zone(dns.name.from_text(A), ServedZone(_snap(A, "192.0.2.99", cut)))
    # zone B's answers and the answer outside every zone stay; a.test.'s and everything
    # below it (the child's answers too: a change of a parent may change who answers)
    assert _names(engine.udp_cache) == {f"www.{B}", f"nx.{B}"}
    assert {dns.message.from_wire(b"\0\0" + k[1]).question[0].name.to_text()
            for k in engine.cache} == {f"www.{B}", f"nx.{B}", "www.elsewhere."}  # fmt: skip
    for tcp in (False, True):
        assert _address(_ask(engine, f"www.{A}", tcp=tcp)) == "192.0.2.99"  # never stale
        assert _address(_ask(engine, f"www.{B}", tcp=tcp)) == "192.0.2.20"

    # the child's change leaves its parent's answers (but for the names below it)
    before = set(engine.udp_cache)
    engine.replace_zone(dns.name.from_text(CHILD), None)  # no longer served
    assert set(engine.udp_cache) == before - {
        k for k in before if _names({k: b""}) <= {f"www.{CHILD}", CHILD}
    }
    assert f"www.{A}" in _names(engine.udp_cache)
    assert _address(_ask(engine, f"www.{CHILD}", tcp=True)) == "NOERROR"  # a referral now


def test_a_full_cache_is_dropped_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Filtering costs one read per entry: beyond FILTER_LIMIT the cache goes whole."""
    monkeypatch.setattr(engine_mod, "FILTER_LIMIT", 1)
    engine = Engine(
        {
            dns.name.from_text(A): ServedZone(_snap(A, "192.0.2.10")),
            dns.name.from_text(B): ServedZone(_snap(B, "192.0.2.20")),
        }
    )
    _ask(engine, f"www.{B}")
    assert len(engine.udp_cache) == 1
    engine.replace_zone(dns.name.from_text(A), ServedZone(_snap(A, "192.0.2.99")))
    assert len(engine.udp_cache) == 1  # (at the limit: filtered)
    _ask(engine, f"ns.{B}")
    engine.replace_zone(dns.name.from_text(A), ServedZone(_snap(A, "192.0.2.98")))
    assert engine.udp_cache == {}


# -- the real server: an UPDATE of one zone, dig and kdig asking both ---------------------

SECRET = "em9uZWNvbW1pdC10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm"
ZA, ZB = "upd.cache.example.", "other.cache.example."


def _dig(port: int, name: str, tcp: bool) -> str:
    """The A records of ``name`` as kdig (TCP) or dig (UDP) shows them."""
    if tcp:
        args = [require_tool("kdig"), "+tcp", "+short", "-p", str(port), "@127.0.0.1"]
    else:
        args = [require_tool("dig"), "+short", "+notcp", "-p", str(port), "@127.0.0.1"]
    out = subprocess.run(
        [*args, name, "A"], capture_output=True, text=True, timeout=20, check=True
    ).stdout
    return " ".join(sorted(out.split()))


def _cache_hits(d: Path) -> int:
    out = subprocess.run(
        [DNSSEAL, "ctl", "-c", str(d / "dnsseal.toml"), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    m = re.search(r"cache-hits\W+(\d+)", out)
    assert m is not None, out
    return int(m.group(1))


@pytest.mark.interop
def test_an_update_keeps_the_other_zones_cached_answers(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "zones").mkdir()
    conf = f"""[server]
listen = ["127.0.0.1@{port}"]
control = "dnsseal.sock"
state-dir = "state"
key-directory = "keys"

[key.ddns]
algorithm = "hmac-sha256"
secret = "{SECRET}"
"""
    for i, zone in enumerate((ZA, ZB)):
        (tmp_path / "zones" / zone).write_text(
            f"$ORIGIN {zone}\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n"
            f"@ NS ns\nns A 127.0.0.1\nwww A 192.0.2.{i + 10}\n"
        )
        update = 'allow-update = ["key ddns"]\n' if zone == ZA else ""
        conf += f'\n[zone."{zone}"]\nfile = "zones/{zone}"\ndnssec-policy = "default"\n{update}'
    (tmp_path / "dnsseal.toml").write_text(conf)
    with (tmp_path / "out.txt").open("wb") as out:
        proc = subprocess.Popen(
            [DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"],
            cwd=tmp_path,
            stdout=out,
            stderr=out,
        )
    try:
        wait_for_dns(port, ZB, proc, timeout=30)
        wait_for_dns(port, ZA, proc, timeout=30)
        for tcp in (False, True):  # cached: UDP by the byte path, TCP by the general path
            assert _dig(port, f"www.{ZA}", tcp) == "192.0.2.10"
            assert _dig(port, f"www.{ZB}", tcp) == "192.0.2.11"
        hits = _cache_hits(tmp_path)
        assert _dig(port, f"www.{ZB}", True) == "192.0.2.11"
        assert _cache_hits(tmp_path) == hits + 1  # (it is cached)

        script = (
            f"server 127.0.0.1 {port}\nzone {ZA}\nupdate delete www.{ZA} A\n"
            f"update add www.{ZA} 300 A 192.0.2.99\nsend\n"
        )
        done = subprocess.run(
            [require_tool("nsupdate"), "-y", f"hmac-sha256:ddns:{SECRET}"],
            input=script,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # the updated zone: its new data at once, never a cached answer of before
        for tcp in (False, True):
            assert _dig(port, f"www.{ZA}", tcp) == "192.0.2.99"
        # the other zone: its answer still cached (was dropped with every zone's)
        hits = _cache_hits(tmp_path)
        assert _dig(port, f"www.{ZB}", True) == "192.0.2.11"
        assert _cache_hits(tmp_path) == hits + 1
        assert _dig(port, f"www.{ZB}", False) == "192.0.2.11"
    finally:
        stop(proc)
