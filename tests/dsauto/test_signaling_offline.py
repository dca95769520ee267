"""A signaling zone under an offline-KSK policy is answered online (#18): the ZSK is online
in that mode, and signs each minimally covering NSEC when asked.

dnsseal pregenerates the ZSK (``ksr keygen``) and writes the request; Knot's ``keymgr
sign-ksr`` signs it with a KSK only Knot holds; dnsseal imports the response and serves the
signaling zone with ``offline-ksk = true`` and two processes (``workers = 2``).  Each
process alone (the other stopped), then both: every denial is the online NSEC at the query
name, signed by the ZSK, and validates with dnspython, BIND's ``delv`` and a validating
Unbound whose trust anchor is the DS of Knot's KSK.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns, write_unbound_conf

from .test_signaling_validated import CASES, SIGNAL, ZONE
from .test_signaling_workers import (
    ask,
    check_online,
    children_of,
    delv_all,
    dnskeys,
    paused,
    signaling_setup,
    wait_signal,
)

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
T = dns.rdatatype

pytestmark = [pytest.mark.interop, pytest.mark.slow]

POLICY = """
[policy.offline]
dnskey-ttl = 2
publish-safety = 1
retire-safety = 1
purge-keys = 0
signatures-refresh = 20
signatures-validity = 30
signatures-validity-dnskey = 30
signatures-jitter = 2
max-zone-ttl = 2
zone-propagation-delay = 1
offline-ksk = true
skr-horizon = "1h"
keys = [
  { role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = 3600, algorithm = "ECDSAP256SHA256" },
]
"""


def _knot_conf(d: Path) -> Path:
    """Knot holds the KSK and signs the request (seconds-scale RRSIG lifetime)."""
    d.mkdir()
    conf = d / "knot.conf"
    conf.write_text(
        f"""server:
    rundir: "{d}"
database:
    storage: "{d}"
policy:
  - id: offline
    algorithm: ecdsap256sha256
    manual: on
    offline-ksk: on
    dnskey-ttl: 2
    zone-max-ttl: 2
    rrsig-lifetime: 40s
    rrsig-refresh: 10s
    rrsig-pre-refresh: 1s
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: "zone.db"
    dnssec-signing: on
    dnssec-policy: offline
"""
    )
    return conf


def _dnsseal(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [*DNSSEAL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"dnsseal {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_offline_ksk_signaling_zone_answers_online(tmp_path: Path) -> None:
    d = tmp_path
    port = free_port()
    signaling_setup(d, port, policy="offline", server="workers = 2\n")
    with (d / "policies.toml").open("a") as f:
        f.write(POLICY)
    (d / "keys").mkdir()
    (zsk,) = _dnsseal(d, "ksr", "keygen", "-K", "keys", "-k", "offline", "-l", "policies.toml",
                      "-i", "now", "-e", "+300", ZONE).split()  # fmt: skip
    zsk_tag = int(zsk.rsplit("+", 1)[1])
    _dnsseal(d, "ksr", "request", "-K", "keys", "-L", "2", "-o", "request.ksr", ZONE,
             "now", "+300")  # fmt: skip
    kconf = _knot_conf(d / "knot")
    run_tool(["keymgr", "-c", kconf, ZONE, "generate", "ksk=yes", "zsk=no",
              "created=-1d", "publish=-1d", "active=-1d"])  # fmt: skip
    (d / "response.skr").write_text(
        run_tool(["keymgr", "-c", kconf, ZONE, "sign-ksr", d / "request.ksr"]).stdout
    )
    ds = [line for line in run_tool(["keymgr", "-c", kconf, ZONE, "ds"]).stdout.splitlines()
          if re.search(r" DS \d+ 13 2 ", line)]  # fmt: skip
    assert len(ds) == 1, ds
    ksk_tag = int(ds[0].split()[2])
    _dnsseal(d, "ksr", "import", "-K", "keys", "response.skr")
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        wait_signal(d, port, proc)
        keys = dnskeys(port)
        assert {dns.dnssec.key_id(rd) for rd in keys} == {ksk_tag, zsk_tag}
        (worker,) = children_of(proc.pid)
        for other in (worker, proc.pid):
            with paused(other):
                assert check_online(port, keys, CASES) == 9
                # The NSEC is signed by the online ZSK (the KSK signs the key set only).
                r = ask(port, f"zzz.{ZONE}", "A")
                sigs = [rr for rr in r.authority if rr.rdtype == T.RRSIG and rr.covers == T.NSEC]
                assert [rd.key_tag for rr in sigs for rd in rr] == [zsk_tag], r
                delv_all(d, port, keys)
        assert check_online(port, keys, CASES * 5) == 45
        udir = d / "unbound"
        udir.mkdir()
        uport = free_port()
        conf = write_unbound_conf(
            udir, uport, [ds[0].strip()], [(ZONE, port)], extra=('local-zone: "test." nodefault',)
        )
        ub = subprocess.Popen(
            [require_tool("unbound"), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_dns(uport, ZONE, ub, timeout=20)
            for name, rtype, rcode, has_answer in CASES:
                q = dns.message.make_query(name, rtype, want_dnssec=True)
                r = dns.query.udp(q, "127.0.0.1", port=uport, timeout=10)
                assert r.rcode() == rcode and bool(r.answer) == has_answer, (name, rtype, r)
                assert r.flags & dns.flags.AD, (name, rtype, r)
        finally:
            stop(ub)
        assert ask(port, SIGNAL, "CDS").answer
        text = (d / "out.txt").read_text()
        assert "not answered online" not in text and "Traceback" not in text, text[-4000:]
    finally:
        stop(proc)
