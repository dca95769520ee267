"""Several processes serving an inline-signed zone (``server.workers = 2``).

Real nsupdate (TSIG) adds records again and again; after each NOERROR, many queries (so the
kernel spreads them over both processes, and UPDATEs reach the worker too, which relays them
to the main process) must all see the new record and the new serial.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from automation.conftest import FAST_POLICY
from conftest import free_port, require_tool, stop
from dnsseal.proto.snapshot import build_from_model
from dnsseal.server.zonesync import pack_zone, unpack_zone
from dnsseal.zone.model import OwnerName
from dnsseal.zone.text import parse_zone_text

DNSSEAL = Path(sys.executable).parent / "dnsseal"  # the console script next to python
ZONE = "multi.example."
HOSTS = 3000
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="


def _write(d: Path, port: int) -> Path:
    (d / "zones").mkdir()
    (d / "zones" / "multi.zone").write_text(
        f"$ORIGIN {ZONE}\n$TTL 2\n@ SOA ns1 hostmaster 1 60 30 600 2\n@ NS ns1\n"
        "ns1 A 127.0.0.1\nwww A 192.0.2.80\n"
        # Enough names that a worker takes a while to build each new version: an answer
        # sent before the workers serve it would be caught by the queries below.
        + "".join(f"h{i} A 192.0.2.{i % 250}\n" for i in range(HOSTS))
    )
    (d / "policies.toml").write_text(
        FAST_POLICY
        % {"name": "fast", "ksk_lifetime": "unlimited", "zsk_lifetime": "unlimited", "nsec3": ""}
    )
    conf = d / "dnsseal.toml"
    conf.write_text(
        f"""[server]
listen = ["127.0.0.1@{port}"]
workers = 2
state-dir = "state"
key-directory = "keys"
policies = "policies.toml"

[key.ddns]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[zone."{ZONE}"]
file = "zones/multi.zone"
dnssec-policy = "fast"
allow-update = ["key ddns"]
allow-transfer = ["127.0.0.1"]
"""
    )
    return conf


def _query(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    for _ in range(5):
        try:
            return dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"no answer for {name} {rtype}")


def _serial(m: dns.message.Message) -> int:
    return int(m.answer[0][0].serial) if m.answer else -1


@contextmanager
def _server(d: Path, conf: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-v", "serve", "-c", str(conf)], cwd=d, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (d / "out.txt").read_text()
            assert time.monotonic() < deadline, (d / "out.txt").read_text()
            # Both processes must serve the zone: several answers in a row.
            if all(_serial(_query(port, ZONE, "SOA")) > 0 for _ in range(20)):
                break
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc, timeout=15)


def _nsupdate(port: int, script: str) -> subprocess.CompletedProcess[str]:
    body = f"server 127.0.0.1 {port}\nzone {ZONE}\n{script}\nsend\n"
    return subprocess.run(
        [require_tool("nsupdate"), "-y", f"hmac-sha256:ddns:{SECRET}"],
        input=body,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.interop
@pytest.mark.slow
def test_every_process_serves_each_update_before_it_is_acknowledged(tmp_path: Path) -> None:
    port = free_port()
    conf = _write(tmp_path, port)
    with _server(tmp_path, conf, port) as proc:
        out = (tmp_path / "out.txt").read_text()
        serial = _serial(_query(port, ZONE, "SOA"))
        for i in range(6):
            # nsupdate uses a new source port each time: over the runs both processes get
            # UPDATEs (the worker relays its own to the main process).
            done = _nsupdate(port, f"update add host{i}.{ZONE} 2 A 192.0.2.{i + 1}")
            assert done.returncode == 0, done.stdout + done.stderr
            for _ in range(40):
                m = _query(port, f"host{i}.{ZONE}", "A")
                assert m.rcode() == dns.rcode.NOERROR, (i, m)
                assert [rd.address for rd in m.answer[0]] == [f"192.0.2.{i + 1}"]
                assert any(r.rdtype == dns.rdatatype.RRSIG for r in m.answer)
                new = _serial(_query(port, ZONE, "SOA"))
                assert new > serial, (i, new, serial)
            serial = new
        # More UPDATEs, each from a new source port, so that some land on the worker.
        keyring = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", SECRET)})
        for i in range(10):
            upd = dns.update.UpdateMessage(ZONE, keyring=keyring)
            upd.add(f"py{i}", 2, "TXT", f'"n{i}"')
            assert dns.query.udp(upd, "127.0.0.1", port=port, timeout=20).rcode() == 0
            for _ in range(10):
                m = _query(port, f"py{i}.{ZONE}", "TXT")
                assert m.rcode() == dns.rcode.NOERROR and m.answer, (i, m)
        assert proc.poll() is None
        out = (tmp_path / "out.txt").read_text()
        assert "Traceback" not in out, out
        assert "relayed to the main process" in out, out


def test_zone_packing_round_trips() -> None:
    text = (
        "$TTL 300\n@ SOA ns hm 7 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
        'www A 192.0.2.2\nwww TXT "x"\n@ RRSIG SOA 13 2 300 20300101000000 '
        "20200101000000 1 example. AAAA\n"
    )
    zone = parse_zone_text(text, "example.")
    back = unpack_zone(pack_zone(zone))
    assert back == zone
    # Its owners made as the model makes them (no dnspython validation and hashing in
    # the worker): the same names, hashing as dnspython's do, one object per owner.
    owners = [back.origin, *back.rrsets, *back.rrsigs]
    assert all(type(n) is OwnerName for n in owners)
    assert all(hash(n) == hash(dns.name.Name(n.labels)) for n in owners)
    assert back.rrsigs and next(iter(back.rrsigs)) is back.origin
    assert build_from_model(back).apex.rrsets == build_from_model(zone).apex.rrsets
