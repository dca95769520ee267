"""Both processes of ``dnsseal serve`` (``workers = 2``) answer inline-signed zones exactly
as BIND's named answers from the same signed records, before and after UPDATEs.

The worker builds its version of each zone from what the main process sends
(``server.zonesync``): the whole zone first, then each UPDATE as the records removed and
added, which it applies to the snapshot it serves (``proto.snapshot.update_from_diff``,
no zone model kept), with a rebuild when a zone cut, a DNAME or an empty non-terminal
changes.  After every UPDATE the signed zone is transferred (AXFR) and served by named;
every question of the answering cases is asked of dnsseal from many source ports (the
kernel spreads them over both processes) and of named: dnsseal's answers are the same
bytes whichever process gives them (the ID aside), and the same records, rcode and flags
as named's.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from automation.conftest import NSEC3
from conftest import free_port, require_tool, stop

from .compare import summary
from .conftest import SignedZone, start_named
from .test_answers_vs_bind import CASES
from .test_workers import DNSSEAL, SECRET, _query
from .zonedata import zone_text

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ZONES = {"nsec.example.": "steady", "nsec3.example.": "steady3"}
ASKS = 8  # each question asked this many times of dnsseal, each from a new source port
# UPDATEs in turn: a new leaf (applied in O(change) by the worker), then a zone cut that
# comes, a new name under new empty non-terminals, an ENT that ends, a DNAME that goes
# (each a rebuild from the snapshot in the worker), and a cut that goes.
STEPS = [
    "",
    "update add new.{z} 300 A 192.0.2.99",
    "update add newcut.{z} 300 NS ns.example.net.",
    "update add p.q.r.{z} 300 A 192.0.2.98",
    "update delete a.b.c.ent.{z} A",
    "update delete dn.{z} DNAME",
    "update delete newcut.{z} NS",
]
MORE = [
    ("new", "A"),
    ("new", "TXT"),
    ("newcut", "A"),
    ("x.newcut", "A"),
    ("newcut", "DS"),
    ("p.q.r", "A"),
    ("q.r", "A"),
    ("r", "TXT"),
    ("zz.q.r", "A"),
    ("b.c.ent", "A"),
]


def _write(d: Path, port: int) -> Path:
    (d / "zones").mkdir()
    for origin in ZONES:
        (d / "zones" / origin).write_text(f"$ORIGIN {origin}\n" + zone_text(1))
    # Default timings: no key event or re-signing during the test (the versions compared
    # are those the UPDATEs make).
    csk = '[{ role = "csk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" }]'
    policies = f"[policy.steady]\nkeys = {csk}\n\n[policy.steady3]\nkeys = {csk}\n{NSEC3}\n"
    (d / "policies.toml").write_text(policies)
    body = "".join(
        f'\n[zone."{origin}"]\nfile = "zones/{origin}"\ndnssec-policy = "{policy}"\n'
        'allow-update = ["key ddns"]\nallow-transfer = ["127.0.0.1"]\n'
        for origin, policy in ZONES.items()
    )
    conf = d / "dnsseal.toml"
    conf.write_text(
        f'[server]\nlisten = ["127.0.0.1@{port}"]\nworkers = 2\nstate-dir = "state"\n'
        f'key-directory = "keys"\npolicies = "policies.toml"\n\n'
        f'[key.ddns]\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n' + body
    )
    return conf


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    conf = _write(tmp_path, port)
    with (tmp_path / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-v", "serve", "-c", str(conf)], cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        for origin in ZONES:  # signed, in both processes: many answers in a row
            for _ in range(300):
                assert proc.poll() is None, (tmp_path / "out.txt").read_text()
                answers = [_query(port, origin, "SOA") for _ in range(20)]
                if all(len(m.answer) == 2 for m in answers):  # the SOA and its RRSIG
                    break
                subprocess.run(["sleep", "0.2"], check=True)
            else:
                raise AssertionError((tmp_path / "out.txt").read_text())
        yield port
        assert proc.poll() is None
        assert "Traceback" not in (tmp_path / "out.txt").read_text()
    finally:
        stop(proc, timeout=15)


def _nsupdate(port: int, origin: str, line: str) -> None:
    body = f"server 127.0.0.1 {port}\nzone {origin}\n{line}\nsend\n"
    done = subprocess.run(
        [require_tool("nsupdate"), "-y", f"hmac-sha256:ddns:{SECRET}"],
        input=body,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _ours(port: int, q: dns.message.Message) -> dns.message.Message:
    """The answer to ``q``, asked :data:`ASKS` times (new source port each time): every
    answer must be the same bytes apart from the ID."""
    wires = set()
    query = q.to_wire()
    for _ in range(ASKS):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(query, ("127.0.0.1", port))
            wire = sock.recv(65535)
        assert wire[:2] == query[:2]
        wires.add(wire[2:])
    assert len(wires) == 1, (
        q.question,
        [(w.hex(), dns.message.from_wire(b"\0\0" + w).to_text()) for w in wires],
    )
    return dns.message.from_wire(wire)


def test_both_processes_answer_like_named_through_updates(server: int, tmp_path: Path) -> None:
    port = server
    cases = CASES + MORE
    for step, line in enumerate(STEPS):
        zones = []
        for origin in ZONES:
            if line:
                _nsupdate(port, origin, line.format(z=origin))
            xfr = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", origin, port=port, timeout=10))
            path = tmp_path / f"{origin}{step}.signed"
            xfr.to_file(str(path), relativize=False)
            zones.append(SignedZone(origin, origin, path, tmp_path, "", ""))
        named_dir = tmp_path / f"named{step}"
        named_dir.mkdir()
        named_port, named = start_named(named_dir, zones)
        try:
            problems = []
            for origin in ZONES:
                for rel, rdtype in cases:
                    for do in (True, False):
                        name = f"{rel}.{origin}" if rel else origin
                        q = dns.message.make_query(name, rdtype, want_dnssec=do, payload=4096)
                        ours = _ours(port, q)
                        theirs = dns.query.udp(q, "127.0.0.1", port=named_port, timeout=3)
                        a, b = summary(ours), summary(theirs)
                        if a != b:
                            diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
                            problems.append(f"step {step} {name} {rdtype} do={do}: {diff}")
            assert problems == [], "\n".join(problems)
        finally:
            stop(named)
