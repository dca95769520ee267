"""A parent and its child zone served together: DS comes from the parent side of the cut,
everything else from the child (RFC 4035 3.1.4.1), as BIND does."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.query
import dns.zone
import pytest

from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import build

from .compare import summary
from .conftest import sign_zone, start_named, stop

pytestmark = pytest.mark.interop


def test_parent_and_child_zone_match_bind(tmp_path: Path) -> None:
    parent = sign_zone(tmp_path / "parent", "nsec3", origin="pc.example.")
    child = sign_zone(tmp_path / "child", "nsec", origin="secure.pc.example.")
    engine = Engine()
    zones = {}
    for z in (parent, child):
        snap = build(dns.zone.from_file(str(z.path), z.origin, relativize=False))
        zones[snap.origin] = ServedZone(snap)
    engine.set_zones(zones)
    port, proc = start_named(tmp_path, [parent, child])
    try:
        problems = []
        for name, rdtype in (
            ("secure.pc.example.", "DS"),
            ("secure.pc.example.", "SOA"),
            ("secure.pc.example.", "NS"),
            ("secure.pc.example.", "DNSKEY"),
            ("www.secure.pc.example.", "A"),
            ("nope.secure.pc.example.", "A"),
            ("insecure.pc.example.", "DS"),
            ("www.pc.example.", "A"),
        ):
            for do in (True, False):
                q = dns.message.make_query(name, rdtype, want_dnssec=do)
                theirs = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
                ours = dns.message.from_wire(engine.handle(q.to_wire(), False)[0])
                a, b = summary(ours), summary(theirs)
                if a != b:
                    problems.append(f"{name} {rdtype} do={do}: ours {a}\n theirs {b}")
        assert problems == [], "\n".join(problems)
    finally:
        stop(proc)
