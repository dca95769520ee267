"""dnsseal's online answers for a signaling zone against Knot's ``mod-onlinesign`` with
``nsec-bitmap: [CDS, CDNSKEY]`` (the configuration Knot documents for RFC 9615 signaling
zones), serving the same records: for each question the same rcode, the same answer
types, and one NSEC with the same owner, next name and type bitmap; without DO the same
rcode and answer types."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest

from automation.conftest import write_config
from conftest import free_port, require_tool, run_tool, stop, wait_for_dns

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
ZONE = "_signal.ns1.provider.test."
CHILD = "kid.parent.test."
SIGNAL = f"_dsboot.{CHILD}{ZONE}"
T = dns.rdatatype

pytestmark = [pytest.mark.interop, pytest.mark.slow]

QUESTIONS = [
    (SIGNAL, "CDS"),
    (SIGNAL, "CDNSKEY"),
    (SIGNAL, "A"),
    (SIGNAL, "TXT"),
    (f"{CHILD}{ZONE}", "CDS"),  # empty non-terminals
    (f"parent.test.{ZONE}", "A"),
    (f"_dsboot.other.example.{ZONE}", "CDS"),  # not there
    (f"_dsboot.other.example.{ZONE}", "CDNSKEY"),
    (f"x.{SIGNAL}", "AAAA"),
    (f"zzz.{ZONE}", "MX"),
]


def _ask(port: int, name: str, rtype: str, do: bool = True) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=do)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def _shape(r: dns.message.Message) -> tuple[object, ...]:
    """What must agree: rcode, answer types, and the NSEC records (owner, next, types)."""
    nsecs = sorted(
        (
            rr.name.to_text().lower(),
            rr[0].next.to_text().lower(),
            tuple(sorted(T.to_text(t) for w in rr[0].windows for t in _types(w))),
        )
        for rr in (*r.answer, *r.authority)
        if rr.rdtype in (T.NSEC, T.NSEC3)
    )
    answer = sorted(T.to_text(rr.rdtype) for rr in r.answer)
    return (r.rcode(), answer, nsecs)


def _types(window: tuple[int, bytes]) -> list[int]:
    base, bits = window
    return [
        base * 256 + i * 8 + j for i, byte in enumerate(bits) for j in range(8) if byte & 0x80 >> j
    ]


def test_online_answers_match_knot_onlinesign(tmp_path: Path) -> None:
    d = tmp_path
    port, kport = free_port(), free_port()
    soa = "@ SOA ns1.provider.test. h 1 60 30 600 2\n@ NS ns1.provider.test.\n"
    child = (
        f"$ORIGIN {CHILD}\n$TTL 2\n@ SOA ns1.provider.test. h 1 60 30 600 2\n"
        "@ NS ns1.provider.test.\nwww A 192.0.2.80\n"
    )
    write_config(
        d,
        port,
        {ZONE: f"$ORIGIN {ZONE}\n$TTL 2\n{soa}", CHILD: child},
        zone_options={ZONE: "signaling = true\nds-interval = 1"},
    )
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, ZONE, proc, timeout=30)
        deadline = time.monotonic() + 30
        while not _ask(port, SIGNAL, "CDS").answer:
            assert time.monotonic() < deadline, (d / "out.txt").read_text()[-4000:]
            time.sleep(0.3)
        # Knot serves the same signaling records, signed online by its module.
        records = [
            rr.to_text()
            for t in ("CDS", "CDNSKEY")
            for rr in _ask(port, SIGNAL, t).answer
            if rr.rdtype == T.from_text(t)
        ]
        kdir = d / "knot"
        kdir.mkdir()
        (kdir / "signal.zone").write_text(
            f"$ORIGIN {ZONE}\n$TTL 2\n{soa}" + "".join(f"{r}\n" for r in records)
        )
        conf = kdir / "knot.conf"
        conf.write_text(
            f"""server:
    listen: 127.0.0.1@{kport}
    rundir: "{kdir}"
log:
  - target: "{kdir}/knot.log"
    any: info
database:
    storage: "{kdir}"
mod-onlinesign:
  - id: authsignal
    nsec-bitmap: [CDS, CDNSKEY]
template:
  - id: default
    storage: "{kdir}"
zone:
  - domain: {ZONE}
    file: "{kdir}/signal.zone"
    module: mod-onlinesign/authsignal
"""
        )
        run_tool(["knotc", "-c", conf, "conf-check"])
        with (kdir / "stderr").open("wb") as err:
            knot = subprocess.Popen(
                [require_tool("knotd"), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err
            )
        try:
            wait_for_dns(kport, ZONE, knot, timeout=30)
            for name, rtype in QUESTIONS:
                ours, theirs = _ask(port, name, rtype), _ask(kport, name, rtype)
                assert _shape(ours) == _shape(theirs), (name, rtype, ours, theirs)
                if not ours.answer:  # a denial: the NSEC records were compared
                    assert _shape(ours)[2], (name, rtype, ours)
                plain, kplain = _ask(port, name, rtype, False), _ask(kport, name, rtype, False)
                assert _shape(plain) == _shape(kplain), (name, rtype, plain, kplain)
        finally:
            stop(knot)
    finally:
        stop(proc)
