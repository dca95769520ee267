"""NSEC -> NSEC3 -> NSEC by changing the zone's policy and reloading: each switch is one
new version with the whole new chain (never a partial chain), and a validating Unbound
asking for names that do not exist never answers SERVFAIL."""

from __future__ import annotations

import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import free_port

from .conftest import axfr_verify, ctl, dnsseal_serve, printed_ds, unbound, write_config, zone_text
from .test_e2e import background

ZONE = "sw.example."


@pytest.mark.interop
@pytest.mark.slow
def test_nsec_nsec3_switch_without_bogus_answers(tmp_path: Path) -> None:
    port = free_port()
    zones = {ZONE: zone_text(ZONE)}
    write_config(tmp_path, port, zones)
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        ds = printed_ds(tmp_path / "out.txt", ZONE)
        answers = {"servfail": 0, "secure": 0, "other": 0}
        with unbound(tmp_path, [ds], {ZONE: port}) as uport:
            counter = iter(range(1_000_000))

            def resolve() -> None:
                q = dns.message.make_query(f"n{next(counter)}.{ZONE}", "A", want_dnssec=True)
                r = dns.query.udp(q, "127.0.0.1", port=uport, timeout=5)
                if r.rcode() == dns.rcode.SERVFAIL:
                    answers["servfail"] += 1
                elif r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AD:
                    answers["secure"] += 1
                else:
                    answers["other"] += 1

            def denial() -> set[int]:
                q = dns.message.make_query(f"nothere.{ZONE}", "A", want_dnssec=True)
                r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
                return {rr.rdtype for rr in r.authority} & {
                    dns.rdatatype.NSEC,
                    dns.rdatatype.NSEC3,
                }

            with background(resolve, 0.1) as errors:
                time.sleep(2)
                assert denial() == {dns.rdatatype.NSEC}
                for policy, chain in (("fast3", dns.rdatatype.NSEC3), ("fast", dns.rdatatype.NSEC)):
                    write_config(tmp_path, port, zones, policy=policy)
                    ctl(tmp_path, "reload")
                    assert denial() == {chain}
                    axfr_verify(tmp_path, ZONE, port, f"{policy}.zone")
                    time.sleep(4)  # Unbound's cached denial (TTL 2 s) meets the new chain
                assert not errors, errors
        assert answers["servfail"] == 0, answers
        assert answers["other"] == 0, answers
        assert answers["secure"] > 20, answers
