"""A [policy.NAME] table in the server config signs a served zone end to end: the zone
comes out of `dnsseal serve` with that policy's algorithm, DNSKEY TTL and NSEC3 parameters,
and BIND's dnssec-verify accepts the transferred zone (issue #17)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from conftest import free_port, run_tool, stop, wait_for_dns

DNSSEAL = Path(sys.executable).parent / "dnsseal"
ZONE = """\
$ORIGIN example.com.
$TTL 300
@ SOA ns1 hostmaster 2026120701 3600 900 604800 300
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.80
sub NS ns.sub
ns.sub A 192.0.2.53
"""


@pytest.mark.interop
def test_a_policy_in_the_server_config_signs_the_served_zone(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "example.com.zone").write_text(ZONE)
    conf = tmp_path / "dnsseal.toml"
    conf.write_text(f"""\
[server]
listen = ["127.0.0.1@{port}"]
state-dir = "state"
key-directory = "keys"

[policy.p384]
dnskey-ttl = "PT10M"
keys = [
  {{ role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP384SHA384" }},
  {{ role = "zsk", lifetime = "unlimited", algorithm = "ECDSAP384SHA384" }},
]
nsec3param = {{ iterations = 0, optout = false, salt-length = 0 }}

[zone."example.com"]
file = "example.com.zone"
dnssec-policy = "p384"
allow-transfer = ["127.0.0.1"]
""")
    run_tool([DNSSEAL, "checkconf", "-z", conf])
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "serve", "-c", str(conf)], stdout=out, stderr=out, env=os.environ
        )
    try:
        try:
            wait_for_dns(port, "example.com.", proc, timeout=60)
        except RuntimeError:
            pytest.fail(log.read_text())
        q = dns.message.make_query("example.com.", dns.rdatatype.DNSKEY, want_dnssec=True)
        r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=5)
        keys = r.find_rrset(r.answer, q.question[0].name, 1, dns.rdatatype.DNSKEY)
        assert keys.ttl == 600
        assert sorted((k.flags, k.algorithm) for k in keys) == [(256, 14), (257, 14)]
        dig = run_tool(["dig", "@127.0.0.1", "-p", str(port), "example.com.", "AXFR",
                        "+nocmd", "+nostats", "+nocomments", "+onesoa"])  # fmt: skip
        assert re.search(r"\sNSEC3PARAM\s+1 0 0 -", dig.stdout), dig.stdout
        signed = tmp_path / "axfr.db"
        signed.write_text(dig.stdout)
        verified = run_tool(["dnssec-verify", "-o", "example.com", str(signed)])
        assert "ECDSAP384SHA384" in verified.stdout + verified.stderr
        assert "KSKs: 1 active" in verified.stdout, verified.stdout
    finally:
        stop(proc)
