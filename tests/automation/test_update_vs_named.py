"""After UPDATEs, dnsseal (main process and a worker, each serving versions made from the
one before at the changed owners) answers like BIND's named loaded with the same signed
zone.

nsupdate adds and removes names, a wildcard below an existing name, data at existing
names; the zone is then taken by AXFR, checked with ldns-verify-zone and dnssec-verify,
and loaded into named.  For every owner of the zone and names beside and below them
(NXDOMAIN, NODATA, wildcard answers, referrals), with DO, each asked several times over
UDP so that both processes answer: the same rcode, flags and records as named.
"""

from __future__ import annotations

import time
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from conftest import free_port, run_tool, stop
from server.compare import summary
from server.conftest import SignedZone, start_named

from .conftest import dnsseal_serve, write_config
from .conftest import zone_text as make_zone
from .test_update import ZONE, nsupdate, serial
from .test_update_incremental import LONG, axfr

T = dns.rdatatype
UPDATES = [
    f"update add new1.{ZONE} 60 A 192.0.2.1",
    f"update add *.h3.{ZONE} 60 TXT wild",  # NXDOMAIN below h3 is now a wildcard answer
    f"update add h4.{ZONE} 60 TXT more",
    f"update delete h5.{ZONE}",
    f"update add new2.{ZONE} 60 AAAA 2001:db8::2",
    f"update add deep.ent.{ZONE} 60 A 192.0.2.3",  # a new empty non-terminal
    f"update delete new1.{ZONE} A",
    f"update add zz.{ZONE} 60 MX 10 mail.{ZONE}",
]
# (SOA only at the apex: named gives the SOA of a negative answer to an SOA question TTL 0)
QTYPES = ("A", "TXT", "AAAA", "MX", "NS", "DS", "NSEC")


def _config(d: Path, port: int, nsec3: bool) -> None:
    hosts = "".join(f"h{i} A 192.0.2.{i}\n" for i in range(10))
    hosts += "sub NS ns.sub\nns.sub A 192.0.2.53\n"  # a referral
    conf = write_config(
        d,
        port,
        {ZONE: make_zone(ZONE, extra=hosts)},
        policy="long3" if nsec3 else "long",
        zone_options={ZONE: 'allow-update = ["key ddns"]'},
    )
    text = conf.read_text().replace("[server]\n", "[server]\nworkers = 2\n", 1)
    conf.write_text(text)
    with (d / "policies.toml").open("a") as f:
        f.write(LONG % {"name": "long", "nsec3": ""})
        f.write(LONG % {"name": "long3", "nsec3": "nsec3param = { iterations = 0, optout = "
                        "false, salt-length = 0 }"})  # fmt: skip


def _questions(zone: dns.zone.Zone) -> list[tuple[str, str]]:
    owners = {n.derelativize(zone.origin) for n in zone.nodes}
    names = set()
    for n in owners:
        if any(r.rdtype == T.NSEC3 for r in zone.nodes[n.relativize(zone.origin)].rdatasets):
            continue  # NSEC3 owners: tested elsewhere (test_answers_vs_bind)
        names |= {n, dns.name.Name((b"nx", *n.labels)), dns.name.Name((b"a", b"b", *n.labels))}
    return [(zone.origin.to_text(), "SOA")] + [
        (n.to_text(), t) for n in sorted(names) for t in QTYPES
    ]


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("nsec3", [False, True], ids=["nsec", "nsec3"])
def test_answers_after_updates_match_named_on_the_same_zone(tmp_path: Path, nsec3: bool) -> None:
    port = free_port()
    _config(tmp_path, port, nsec3)
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        deadline = time.monotonic() + 20
        while len({serial(port) for _ in range(10)}) != 1:  # both processes serve it
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for script in UPDATES:
            before = serial(port)
            r = nsupdate(port, script)
            assert r.returncode == 0, r.stdout + r.stderr
            assert all(serial(port) > before for _ in range(6))  # every process has it
        path = axfr(tmp_path, port, "final.zone")
        run_tool(["ldns-verify-zone", str(path)])
        run_tool(["dnssec-verify", "-z", "-o", ZONE, str(path)])
        served = dns.zone.from_file(str(path), ZONE, relativize=True)
        named_dir = tmp_path / "named"
        named_dir.mkdir()
        nport, named = start_named(named_dir, [SignedZone("x", ZONE, path, named_dir, "", "")])
        try:
            problems = []
            for name, rdtype in _questions(served):
                if (name, rdtype) == (f"sub.{ZONE}", "NSEC"):
                    # named answers the parent's NSEC at a delegation as authoritative
                    # data; dnsseal gives the referral (the general path's choice, not
                    # one of the tables this test is about)
                    continue
                q = dns.message.make_query(name, rdtype, want_dnssec=True, payload=4096)
                theirs = summary(dns.query.udp(q, "127.0.0.1", port=nport, timeout=3))
                for _ in range(3):  # (the kernel spreads them over both processes)
                    ours = summary(dns.query.udp(q, "127.0.0.1", port=port, timeout=3))
                    if ours != theirs:
                        diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
                        problems.append(f"{name} {rdtype}: {diff}")
                        break
            assert problems == [], "\n".join(p[:2000] for p in problems[:5])
        finally:
            stop(named)
