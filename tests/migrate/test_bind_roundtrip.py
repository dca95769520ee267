"""BIND -> dnsseal -> BIND with the commands of docs/migrating-from-bind.md, a validating
Unbound asking throughout.

A realistic named (two zones signed inline under a custom policy, one secondary signed
inline from a hidden primary, TSIG, ACLs, include files, controls, logging) serves first;
Unbound trusts the zones' DS.  Then named is stopped, `dnsseal import-bind` and
`dnsseal serve -c` take over with BIND's key directory in place; then dnsseal is stopped
and named serves again from dnsseal's key directory and signed zones.  Unbound must never
answer SERVFAIL or without AD (cached names are asked all along, through the switches;
fresh names, proven by NSEC3 from the server of the moment, after each switch), and the
served serial must only go up.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns, write_unbound_conf

from .bindsetup import (
    BUMP,
    DDNS_SECRET,
    PLAIN,
    SIGNED,
    XFR_SECRET,
    Setup,
    write_hidden,
    write_setup,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ZONES = (*SIGNED, BUMP)
# Short caches so Unbound keeps asking the server of the moment (answers, DNSKEY, NSEC3
# all re-validated every 2 s); while no server runs (the switch) it answers from the
# expired cache after trying for 1.8 s, as a resolver in front of a restarting server does.
UNBOUND_EXTRA = (
    'local-zone: "test." nodefault',
    "cache-max-ttl: 2",
    "cache-max-negative-ttl: 2",
    "serve-expired: yes",
    "serve-expired-ttl: 60",
    "serve-expired-client-timeout: 1800",
)
DNSSEAL = [str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dnsseal")]


def _query(port: int, name: str, rtype: str, dnssec: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=dnssec)
    q.flags |= dns.flags.AD
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def _serial(port: int, zone: str) -> int:
    r = _query(port, zone, "SOA")
    assert r.rcode() == dns.rcode.NOERROR and r.answer, r
    return int(r.answer[0][0].serial)  # type: ignore[attr-defined]


def _wait_signed(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until every zone answers with a signed SOA and an NSEC3PARAM (signing done)."""
    deadline = time.monotonic() + timeout
    missing: list[str] = list(ZONES)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        missing = []
        for z in ZONES:
            try:
                soa = _query(port, z, "SOA", dnssec=True)
                n3 = _query(port, z, "NSEC3PARAM")
            except (dns.exception.Timeout, OSError):
                missing.append(z)
                continue
            signed = any(rr.rdtype == dns.rdatatype.RRSIG for rr in soa.answer)
            if not signed or not n3.answer:
                missing.append(z)
        if not missing:
            return
        time.sleep(0.3)
    pytest.fail(f"not signed in time: {missing}\n{log.read_text()[-3000:]}")


def _start_named(conf: Path, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    named = require_tool("named")
    with log.open("ab") as out:
        return subprocess.Popen([named, "-g", "-c", str(conf)], cwd=cwd, stdout=out, stderr=out)


def _ds(port: int, zone: str) -> str:
    r = _query(port, zone, "DNSKEY")
    for rr in r.answer:
        for key in rr:
            if key.flags == 257:  # type: ignore[attr-defined]
                ds = dns.dnssec.make_ds(zone, key, "SHA256")
                return f"{zone} IN DS {ds.to_text()}"
    raise AssertionError(f"no KSK in {zone} DNSKEY: {r}")


class Watch:
    """Asks Unbound for each zone's www A all the time; every answer must be NOERROR
    with AD (a switch between servers must not show through)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.asked = 0
        self.bad: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        for z in itertools.cycle(ZONES):
            if self.stop.is_set():
                return
            try:
                r = _query(self.port, f"www.{z}", "A")
                ok = r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AD and r.answer
                if not ok:
                    self.bad.append(f"www.{z}: {dns.rcode.to_text(r.rcode())} {r.flags}")
            except dns.exception.Timeout:
                self.bad.append(f"www.{z}: timeout")
            self.asked += 1
            time.sleep(0.05)


def _fresh(port: int, tag: str) -> None:
    """Names Unbound has not seen: answered and proven by the server of the moment."""
    for z in ZONES:
        nx = _query(port, f"{tag}-{time.monotonic_ns()}.{z}", "A")
        assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AD, (tag, z, nx)
        mx = _query(port, z, "MX")
        assert mx.flags & dns.flags.AD and mx.answer, (tag, z, mx)
        wild = _query(port, f"{tag}{time.monotonic_ns()}.wild.{z}", "TXT")
        assert wild.flags & dns.flags.AD and wild.answer, (tag, z, wild)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Setup, Path]]:
    port, hidden, notify, ctl = free_port(), free_port(), free_port(), free_port()
    bind = tmp_path / "bind"
    bind.mkdir()
    setup = write_setup(bind, port, hidden, notify, ctl)
    hidden_conf = write_hidden(tmp_path / "hidden", hidden)
    proc = _start_named(hidden_conf, tmp_path / "hidden", tmp_path / "hidden" / "named.log")
    try:
        yield setup, tmp_path
    finally:
        stop(proc)


def test_bind_to_dnsseal_and_back(lab: tuple[Setup, Path]) -> None:
    setup, tmp = lab
    bind_log = setup.d / "named.out"
    named = _start_named(setup.conf, setup.d, bind_log)
    procs = [named]
    try:
        _wait_signed(setup.port, named, bind_log)
        # Unbound trusts the DS of each zone, as its parent would publish it.
        anchors = [_ds(setup.port, z) for z in ZONES]
        ub_dir = tmp / "unbound"
        ub_dir.mkdir()
        ub_port = free_port()
        conf = write_unbound_conf(
            ub_dir, ub_port, anchors, [(z, setup.port) for z in ZONES],
            extra=UNBOUND_EXTRA,
        )  # fmt: skip
        unbound = subprocess.Popen(
            [require_tool("unbound"), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(unbound)
        wait_for_dns(ub_port, ZONES[0], unbound, timeout=20)
        _fresh(ub_port, "bind")
        watch = Watch(ub_port)
        watch.thread.start()
        time.sleep(1)
        # A dynamic update BIND takes: it is in BIND's journal until `rndc sync -clean`.
        update = (
            f"server 127.0.0.1 {setup.port}\nzone alpha.test.\n"
            "update add moved.alpha.test. 60 IN A 192.0.2.99\nsend\n"
        )
        subprocess.run(
            [require_tool("nsupdate"), "-y", f"hmac-sha256:ddns:{DDNS_SECRET}"],
            input=update.encode(), check=True, timeout=30,
        )  # fmt: skip
        assert _query(ub_port, "moved.alpha.test.", "A").flags & dns.flags.AD
        rndc_conf = setup.d / "rndc.conf"
        rndc_conf.write_text(
            f'key "xfr" {{ algorithm hmac-sha256; secret "{XFR_SECRET}"; }};\n'
            f"options {{ default-key xfr; default-server 127.0.0.1; "
            f"default-port {_ctl_port(setup)}; }};\n"
        )
        run_tool(["rndc", "-c", rndc_conf, "sync", "-clean"])
        bind_serials = {z: _serial(setup.port, z) for z in ZONES}

        # --- to dnsseal: the commands of the docs ---------------------------------------
        run_tool(["rndc", "-c", rndc_conf, "stop"])
        named.wait(timeout=30)
        bind_keys = _key_states(setup.keys)
        ds_dir = tmp / "dnsseal"
        ds_dir.mkdir()
        imported = run_tool([*DNSSEAL, "import-bind", setup.conf, "-o", ds_dir / "dnsseal.toml"])
        assert "4 zone(s)" in imported.stdout, imported.stdout
        ds_log = ds_dir / "out.txt"
        with ds_log.open("ab") as out:
            dnsseal = subprocess.Popen(
                [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"],
                cwd=ds_dir,
                stdout=out,
                stderr=out,
                env={**os.environ},
            )
        procs.append(dnsseal)
        _wait_signed(setup.port, dnsseal, ds_log)
        ds_serials = {z: _serial(setup.port, z) for z in ZONES}
        for z in ZONES:
            assert _newer(ds_serials[z], bind_serials[z]), (z, bind_serials[z], ds_serials[z])
        _fresh(ub_port, "dnsseal")
        # The plain secondary came along too: served as the hidden primary serves it.
        deadline = time.monotonic() + 15
        while _query(setup.port, PLAIN, "SOA").rcode() != dns.rcode.NOERROR:
            assert time.monotonic() < deadline, "the plain secondary was not transferred"
            time.sleep(0.2)
        assert _serial(setup.port, PLAIN) == _serial(setup.hidden_port, PLAIN)
        moved = _query(setup.port, "moved.alpha.test.", "A")  # the update came along
        assert moved.answer and moved.answer[0][0].address == "192.0.2.99", moved
        # A dynamic update dnsseal takes: it must survive the way back.
        update = (
            f"server 127.0.0.1 {setup.port}\nzone alpha.test.\n"
            "update add later.alpha.test. 60 IN A 192.0.2.100\nsend\n"
        )
        subprocess.run(
            [require_tool("nsupdate"), "-y", f"hmac-sha256:ddns:{DDNS_SECRET}"],
            input=update.encode(), check=True, timeout=30,
        )  # fmt: skip
        assert _query(ub_port, "later.alpha.test.", "A").flags & dns.flags.AD
        ds_serials = {z: _serial(setup.port, z) for z in ZONES}
        # Keys adopted as they are: no key made by dnsseal.
        assert "created" not in ds_log.read_text().lower(), ds_log.read_text()

        # --- back to BIND --------------------------------------------------------------
        stop(dnsseal)
        dnsseal_keys = _key_states(setup.keys)
        _kept(bind_keys, dnsseal_keys)  # BIND's keys and states adopted as they are
        _give_back(setup, ds_dir / "state")
        named = _start_named(setup.conf, setup.d, bind_log)
        procs.append(named)
        _wait_signed(setup.port, named, bind_log)
        back = {z: _serial(setup.port, z) for z in ZONES}
        for z in ZONES:
            assert _newer(back[z], ds_serials[z]) or back[z] == ds_serials[z], (z, back, ds_serials)
        _fresh(ub_port, "back")
        for name in ("moved.alpha.test.", "later.alpha.test."):  # BIND's and dnsseal's update
            r = _query(ub_port, name, "A")
            assert r.answer and r.flags & dns.flags.AD, (name, r)
        time.sleep(1)
        watch.stop.set()
        watch.thread.join()
        assert watch.asked > 30
        assert not watch.bad, watch.bad
        # The same six keys all along: BIND's, adopted by dnsseal and given back.
        assert len(list(setup.keys.glob("K*.private"))) == 2 * len(ZONES)
        stop(named)
        _kept(dnsseal_keys, _key_states(setup.keys))
    finally:
        for p in reversed(procs):
            stop(p)


STATE_ORDER = {"hidden": 0, "rumoured": 1, "omnipresent": 2}


def _key_states(keys: Path) -> dict[str, dict[str, str]]:
    """Each key's timing metadata and states, from its .state file."""
    out = {}
    for f in sorted(keys.glob("K*.state")):
        fields = {}
        for line in f.read_text().splitlines():
            name, sep, value = line.partition(": ")
            if sep and not line.startswith(";"):
                fields[name] = value.split(" (")[0]
        out[f.name] = fields
    return out


def _kept(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> None:
    """The same keys, the same creation timings, no state gone back."""
    assert set(after) == set(before)
    for key, old in before.items():
        new = after[key]
        for name in ("Generated", "Published", "Active", "Algorithm", "KSK", "ZSK"):
            assert new.get(name) == old.get(name), (key, name, old, new)
        for name, value in old.items():
            if name.endswith("State") and name != "GoalState":
                assert STATE_ORDER[new[name]] >= STATE_ORDER[value], (key, name, old, new)


def _newer(a: int, b: int) -> bool:
    return 0 < ((a - b) & 0xFFFFFFFF) < 2**31


def _ctl_port(setup: Setup) -> int:
    text = setup.conf.read_text()
    return int(text.split("inet 127.0.0.1 port ", 1)[1].split()[0])


DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-bind.md"


def doc_block(marker: str) -> str:
    """The shell block after ``<!-- test: MARKER -->`` in docs/migrating-from-bind.md."""
    text = DOC.read_text()
    after = text.split(f"<!-- test: {marker} -->", 1)[1]
    block = after.split("```sh\n", 1)[1].split("```", 1)[0]
    return "\n".join(line.strip() for line in block.splitlines())


def test_docs_name_the_commands_tested() -> None:
    """The way in of the docs is what the test above runs (with its paths)."""
    text = DOC.read_text()
    for command in ("rndc sync -clean", "dnsseal import-bind /etc/bind/named.conf -o",
                    "rndc stop", "dnsseal serve -c"):  # fmt: skip
        assert command in text
    for marker in ("zone-file", "signed-file"):
        assert doc_block(marker).strip()


def _run_doc(marker: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["sh", "-ec", doc_block(marker)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (marker, env, proc.stdout, proc.stderr)


def _give_back(setup: Setup, state: Path) -> None:
    """The way back, with the commands of docs/migrating-from-bind.md as written there."""
    files = {"alpha.test": "alpha.test.zone", "beta.test": "beta.test.zone",
             BUMP.rstrip("."): "gamma.test.bk"}  # fmt: skip
    for zone, name in files.items():
        env = {"ZONE": zone, "FILE": str(setup.d / name), "STATE": str(state)}
        if zone != BUMP.rstrip("."):
            _run_doc("zone-file", env)  # primaries: updates taken by dnsseal
        _run_doc("signed-file", env)
