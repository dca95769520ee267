"""A real Unbound, with the zones' DS as trust anchors and dnsseal as the stub server,
validates dnsseal's answers (AD) for every kind of answer; delv agrees.

Opt-out zones are the exception the RFC makes: where the proof rests on an opt-out NSEC3
(an NXDOMAIN, a wildcard expansion, a delegation without DS) the answer is provably
*insecure*, not bogus (RFC 5155 9.2), so Unbound answers without AD but never SERVFAILs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import free_port, require_tool, run_tool, write_unbound_conf

from .conftest import RunningServer, stop, wait_for_dns

pytestmark = pytest.mark.interop

NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN
# (relative name, type, rcode, answer expected?, AD in an opt-out zone?)
CASES = [
    ("www", "A", NOERROR, True, True),
    ("", "DNSKEY", NOERROR, True, True),
    ("nope", "A", NXDOMAIN, False, False),
    ("www", "MX", NOERROR, False, True),
    ("x.wild", "A", NOERROR, True, False),
    ("x.wild", "MX", NOERROR, False, False),
    ("alias", "A", NOERROR, True, True),
    ("chain1", "AAAA", NOERROR, True, True),
    ("dangling", "A", NXDOMAIN, True, False),
    ("q.wcname", "A", NOERROR, True, False),
    ("x.dn", "A", NOERROR, True, True),
    ("c.ent", "A", NOERROR, False, True),
    ("secure", "DS", NOERROR, True, True),
    ("insecure", "DS", NOERROR, False, False),
]


@pytest.fixture(scope="module")
def unbound_port(
    dnsseal_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    unbound = require_tool("unbound")
    d = tmp_path_factory.mktemp("unbound")
    port = free_port()
    zones = dnsseal_server.zones.values()
    conf = write_unbound_conf(
        d, port, [z.ds for z in zones], [(z.origin, dnsseal_server.port) for z in zones]
    )
    proc = subprocess.Popen(
        [unbound, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_dns(port, next(iter(dnsseal_server.zones.values())).origin, proc)
        yield port
    finally:
        stop(proc)


def _name(origin: str, rel: str) -> str:
    return f"{rel}.{origin}" if rel else origin


@pytest.mark.parametrize("variant", ["nsec", "nsec3", "optout"])
def test_unbound_validates_every_answer(
    dnsseal_server: RunningServer, unbound_port: int, variant: str
) -> None:
    origin = dnsseal_server.zones[variant].origin
    problems = []
    for rel, rdtype, rcode, has_answer, ad_optout in CASES:
        q = dns.message.make_query(_name(origin, rel), rdtype, want_dnssec=True)
        q.flags |= dns.flags.RD
        r = dns.query.udp(q, "127.0.0.1", port=unbound_port, timeout=10)
        want_ad = ad_optout if variant == "optout" else True
        got = (r.rcode(), bool(r.answer), bool(r.flags & dns.flags.AD))
        if got != (rcode, has_answer, want_ad):
            problems.append(f"{rel} {rdtype}: got {got}, want {(rcode, has_answer, want_ad)}")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("variant", ["nsec", "nsec3", "optout"])
def test_delv_agrees(dnsseal_server: RunningServer, variant: str, tmp_path: Path) -> None:
    z = dnsseal_server.zones[variant]
    anchor = tmp_path / "anchor.conf"
    key = z.dnskey.split()
    anchor.write_text(
        f'trust-anchors {{ "{z.origin}" static-key {key[3]} {key[4]} {key[5]} '
        f'"{"".join(key[6:])}"; }};\n'
    )
    insecure = "unsigned answer" if variant == "optout" else "fully validated"
    for rel, rdtype, want in (
        ("www", "A", "; fully validated"),
        ("nope", "A", "; negative response, fully validated"),
        ("www", "MX", "; negative response, fully validated"),
        ("x.wild", "TXT", insecure),
        ("x.dn", "A", "; fully validated"),
    ):
        out = run_tool(
            [
                "delv",
                "-a",
                anchor,
                "-p",
                str(dnsseal_server.port),
                "@127.0.0.1",
                "+root=" + z.origin,
                _name(z.origin, rel),
                rdtype,
            ],
            check=False,
        )
        text = out.stdout + out.stderr
        assert want in text, text
