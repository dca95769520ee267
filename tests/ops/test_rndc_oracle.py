"""rndc as the oracle for `dnsseal ctl`: the same broken zone file and the same frozen
zone, to named (via rndc) and to dnsseal.  Frozen zones refuse updates alike and an unknown
zone fails alike; reload differs on purpose: rndc queues the loads and exits 0 whatever
happens next, dnsseal waits and exits 1 naming the zone that failed (issue #17)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from automation.conftest import DNSSEAL, TSIG_SECRET, dnsseal_serve, write_config, zone_text
from conftest import free_port, require_tool, stop, wait_for_dns

A, B = "a.example.", "b.example."
RNDC_SECRET = "AyLyOwPgBBrJN2KtcYZsuBY3ctKwBYT7Jxt5O4bMc/Q="


def update_rcode(port: int, zone: str) -> int:
    ring = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})
    u = dns.update.UpdateMessage(zone, keyring=ring, keyalgorithm="hmac-sha256")
    u.add(f"new.{zone}", 2, "A", "192.0.2.55")
    return int(dns.query.tcp(u, "127.0.0.1", port=port, timeout=10).rcode())


@pytest.mark.interop
def test_reload_failure_and_freeze_as_rndc(tmp_path: Path) -> None:
    named_dir = tmp_path / "named"
    named_dir.mkdir()
    port, cport = free_port(), free_port(__import__("socket").SOCK_STREAM)
    for z in (A, B):
        (named_dir / f"{z}db").write_text(zone_text(z))
    (named_dir / "rndc.conf").write_text(
        f'key "rk" {{ algorithm hmac-sha256; secret "{RNDC_SECRET}"; }};\n'
        f'options {{ default-key "rk"; default-server 127.0.0.1; default-port {cport}; }};\n'
    )
    (named_dir / "named.conf").write_text(
        f"""options {{ directory "{named_dir}"; pid-file "{named_dir}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
    recursion no; dnssec-validation no; notify no; }};
key "rk" {{ algorithm hmac-sha256; secret "{RNDC_SECRET}"; }};
controls {{ inet 127.0.0.1 port {cport} allow {{ 127.0.0.1; }} keys {{ "rk"; }}; }};
key ddns {{ algorithm hmac-sha256; secret "{TSIG_SECRET}"; }};
zone "{A}" {{ type primary; file "{A}db"; allow-update {{ key ddns; }}; }};
zone "{B}" {{ type primary; file "{B}db"; }};
"""
    )
    rndc = [require_tool("rndc"), "-c", str(named_dir / "rndc.conf")]
    with (named_dir / "log").open("ab") as log:
        named = subprocess.Popen(
            [require_tool("named"), "-g", "-c", str(named_dir / "named.conf"), "-n", "1"],
            stdout=log,
            stderr=log,
        )
    d = tmp_path / "dnsseal"
    d.mkdir()
    dport = free_port()
    write_config(d, dport, {A: zone_text(A), B: zone_text(B)},
                 zone_options={A: 'allow-update = ["key ddns"]'})  # fmt: skip

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DNSSEAL), "ctl", "-c", str(d / "dnsseal.toml"), *args],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    try:
        wait_for_dns(port, A, named, timeout=20)  # type: ignore[arg-type]
        with dnsseal_serve(d, ["-c", "dnsseal.toml"], A, dport):
            # a broken zone file.  `rndc reload` (every zone) says "server reload
            # successful" and exits 0: named loads the zones afterwards and reports only in
            # its log.  dnsseal waits for the zones and exits 1 naming the zone (issue #17:
            # the point of this test is that the difference is deliberate and known).
            (named_dir / f"{B}db").write_text(f"$ORIGIN {B}\n@ 2 SOA broken\n")
            (d / "zones" / f"{B}zone").write_text(f"$ORIGIN {B}\n@ 2 SOA broken\n")
            theirs, ours = run([*rndc, "reload"]), ctl("reload")
            assert theirs.returncode == 0 and "reload successful" in theirs.stdout, theirs
            assert ours.returncode == 1 and f"problem: {B}" in ours.stderr, ours
            # one zone: rndc queues it ("zone reload queued", 0); dnsseal loads it and says
            theirs, ours = run([*rndc, "reload", B]), ctl("reload", B)
            assert theirs.returncode == 0 and "queued" in theirs.stdout, theirs
            assert ours.returncode == 1 and "SOA record ends too early" in ours.stderr, ours
            # a dynamic zone: named wants it frozen first; dnsseal merges file edits with
            # the updates, so its reload just works
            theirs, ours = run([*rndc, "reload", A]), ctl("reload", A)
            assert theirs.returncode == 1 and "dynamic zone" in theirs.stderr, theirs
            assert ours.returncode == 0, ours
            # a frozen zone refuses updates, the same rcode from both
            assert run([*rndc, "freeze", A]).returncode == 0
            assert ctl("freeze", A).returncode == 0
            theirs_rcode, ours_rcode = update_rcode(port, A), update_rcode(dport, A)
            assert theirs_rcode == ours_rcode == dns.rcode.REFUSED
            assert run([*rndc, "thaw", A]).returncode == 0
            assert ctl("thaw", A).returncode == 0
            assert update_rcode(port, A) == update_rcode(dport, A) == dns.rcode.NOERROR
            # an unknown zone: both fail
            assert run([*rndc, "reload", "nope.example"]).returncode == 1
            assert ctl("reload", "nope.example").returncode == 1
    finally:
        stop(named)  # type: ignore[arg-type]
