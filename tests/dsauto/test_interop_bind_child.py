"""Interop: a child run by BIND (named, dnssec-policy, parental-agents = the dnsseal parent)
and a dnsseal parent with ``ds-automation``.  After the first DS (by hand, once), BIND rolls
its CSK (`rndc dnssec -rollover`); dnsseal follows BIND's CDS (RFC 7344) by itself, BIND's
checkds sees the new DS at dnsseal and completes the roll, and a validating Unbound asking
for the child all along never gets SERVFAIL."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from automation.conftest import FAST_POLICY, TSIG_SECRET, tally
from conftest import free_port, require_tool, run_tool, stop, wait_for_dns, write_unbound_conf

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
PARENT = "parent.test."
CHILD = "bind.parent.test."
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})
RNDC_SECRET = base64.b64encode(b"rndc-secret-rndc-secret-rndc-sec").decode()

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def ask(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    q.flags &= ~dns.flags.RD
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def texts(msg: dns.message.Message, rtype: int) -> set[str]:
    return {rd.to_text().upper() for rr in msg.answer if rr.rdtype == rtype for rd in rr}


def ksk_ds(port: int, zone: str) -> set[str]:
    r = ask(port, zone, "DNSKEY")
    return {
        dns.dnssec.make_ds(zone, rd, "SHA256").to_text().upper()
        for rr in r.answer
        if rr.rdtype == dns.rdatatype.DNSKEY
        for rd in rr
        if rd.flags & 1
    }


def wait_for(what: str, cond: Callable[[], bool], timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (dns.exception.DNSException, OSError):
            pass
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}\n{p.read_text()[-4000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _named(d: Path, port: int, ctl_port: int, parent_port: int) -> Path:
    (d / "keys").mkdir()
    (d / "child.db").write_text(
        f"$ORIGIN {CHILD}\n$TTL 2\n@ SOA ns1 hostmaster 1 60 30 600 2\n@ NS ns1\n"
        "ns1 A 127.0.0.1\nwww A 192.0.2.80\n"
    )
    conf = d / "named.conf"
    conf.write_text(
        f"""
key "rndc-key" {{ algorithm hmac-sha256; secret "{RNDC_SECRET}"; }};
controls {{ inet 127.0.0.1 port {ctl_port} allow {{ 127.0.0.1; }} keys {{ "rndc-key"; }}; }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    minimal-responses yes;
}};
dnssec-policy "fast" {{
    keys {{ csk lifetime unlimited algorithm ecdsap256sha256; }};
    dnskey-ttl 2;
    publish-safety 1;
    retire-safety 1;
    purge-keys 0;
    zone-propagation-delay 1;
    max-zone-ttl 2;
    parent-ds-ttl 2;
    parent-propagation-delay 1;
}};
zone "{CHILD}" {{
    type primary;
    file "child.db";
    key-directory "keys";
    dnssec-policy "fast";
    inline-signing yes;
    parental-agents {{ 127.0.0.1 port {parent_port}; }};
}};
logging {{ channel c {{ file "named.log"; severity info; print-time yes; }};
           category default {{ c; }}; category dnssec {{ c; }}; }};
"""
    )
    run_tool(["named-checkconf", conf])
    (d / "rndc.conf").write_text(
        f'key "rndc-key" {{ algorithm hmac-sha256; secret "{RNDC_SECRET}"; }};\n'
        'options { default-key "rndc-key"; default-server 127.0.0.1; '
        f"default-port {ctl_port}; }};\n"
    )
    return conf


def rndc(d: Path, *args: str) -> str:
    return run_tool(["rndc", "-c", d / "rndc.conf", *args]).stdout


def bind_ds_states(d: Path) -> dict[str, str]:
    """BIND's view of each key's DS at the parent (key tag -> ds state), from `rndc dnssec
    -status`.  BIND 9.18 asks the parental agents only when its key manager runs (at a key
    event, an hour away with this policy), so `rndc loadkeys` runs it now: no DS is given
    to BIND by hand."""
    rndc(d, "loadkeys", CHILD)
    states: dict[str, str] = {}
    tag = ""
    for line in rndc(d, "dnssec", "-status", CHILD).splitlines():
        if line.startswith("key: "):
            tag = line.split()[1]
        elif line.strip().startswith("- ds:"):
            states[tag] = line.split(":", 1)[1].strip()
    return states


def bind_saw_ds(d: Path) -> bool:
    states = bind_ds_states(d)
    return bool(states) and all(s == "omnipresent" for s in states.values() if s != "hidden")


def test_dnsseal_parent_follows_a_bind_child_through_a_csk_roll(tmp_path: Path) -> None:
    pdir, cdir = tmp_path / "parent", tmp_path / "child"
    pdir.mkdir()
    cdir.mkdir()
    pport, cport, ctl_port = free_port(), free_port(), free_port()
    (pdir / "zones").mkdir()
    (pdir / "zones" / "parent.zone").write_text(
        f"$ORIGIN {PARENT}\n$TTL 2\n@ SOA ns hostmaster 1 60 30 600 2\n@ NS ns\n"
        "ns A 127.0.0.1\nbind NS ns1.bind\nns1.bind A 127.0.0.1\n"
    )
    (pdir / "policies.toml").write_text(
        FAST_POLICY
        % {"name": "fast", "ksk_lifetime": "unlimited", "zsk_lifetime": "unlimited", "nsec3": ""}
    )
    (pdir / "dnsseal.toml").write_text(
        f"""[server]
listen = ["127.0.0.1@{pport}"]
control = "dnsseal.sock"
state-dir = "state"
key-directory = "keys"
policies = "policies.toml"
query-port = {cport}

[key.ddns]
algorithm = "hmac-sha256"
secret = "{TSIG_SECRET}"

[zone."{PARENT}"]
file = "zones/parent.zone"
dnssec-policy = "fast"
allow-update = ["key ddns"]
ds-automation = true
ds-interval = 1
ds-ttl = 2
"""
    )
    conf = _named(cdir, cport, ctl_port, pport)
    logs = [pdir / "out.txt", cdir / "named.log"]
    with (pdir / "out.txt").open("ab") as out:
        parent = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=pdir, stdout=out, stderr=out
        )
    named = subprocess.Popen(
        [require_tool("named"), "-f", "-c", str(conf)],
        cwd=cdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    unbound = None
    try:
        wait_for_dns(pport, PARENT, parent, timeout=30)
        wait_for_dns(cport, CHILD, named, timeout=30)
        wait_for("parent signed", lambda: bool(ksk_ds(pport, PARENT)), 30, logs)
        wait_for("BIND publishes CDS", lambda: bool(texts(ask(cport, CHILD, "CDS"), 59)), 60, logs)
        first = ksk_ds(cport, CHILD)
        # The first DS, once, by hand (BIND 9.18 has no RFC 9615 signaling to bootstrap).
        u = dns.update.UpdateMessage(PARENT, keyring=KEYRING, keyname="ddns")
        for ds in first:
            u.add(CHILD, 2, "DS", ds)
        assert dns.query.tcp(u, "127.0.0.1", port=pport, timeout=5).rcode() == dns.rcode.NOERROR

        udir = tmp_path / "unbound"
        udir.mkdir()
        uport = free_port()
        anchors = [f"{PARENT} DS {ds}" for ds in ksk_ds(pport, PARENT)]
        uconf = write_unbound_conf(
            udir,
            uport,
            anchors,
            [(PARENT, pport), (CHILD, cport)],
            extra=(
                "cache-max-ttl: 2",
                "cache-max-negative-ttl: 2",
                'local-zone: "test." nodefault',
            ),
        )
        unbound = subprocess.Popen(
            [require_tool("unbound"), "-d", "-c", str(uconf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_dns(uport, PARENT, unbound, timeout=20)
        answers = {"servfail": 0, "secure": 0, "insecure": 0}
        stop_ev = threading.Event()

        def resolve() -> None:
            while not stop_ev.is_set():
                q = dns.message.make_query(f"www.{CHILD}", "A", want_dnssec=True)
                with contextlib.suppress(dns.exception.DNSException, OSError):
                    tally(answers, dns.query.udp(q, "127.0.0.1", port=uport, timeout=5))
                stop_ev.wait(0.3)

        t = threading.Thread(target=resolve)
        t.start()
        try:
            # BIND's checkds sees the DS at dnsseal: its key's DS goes omnipresent.
            wait_for("BIND sees the DS", lambda: bind_saw_ds(cdir), 90, logs)
            tag = next(iter(first)).split()[0]
            rndc(cdir, "dnssec", "-rollover", "-key", tag, CHILD)
            wait_for(
                "dnsseal follows BIND's CDS to the new key",
                lambda: (
                    bool(texts(ask(pport, CHILD, "DS"), 43))
                    and not texts(ask(pport, CHILD, "DS"), 43) & first
                ),
                150,
                logs,
            )
            new = texts(ask(pport, CHILD, "DS"), 43)
            assert new <= ksk_ds(cport, CHILD)
            # BIND completes the roll on its own: the old key leaves the DNSKEY RRset.
            # BIND's checkds sees the new DS in and the old one gone at dnsseal: the parent
            # side of its roll is complete (the old CSK's signatures go later, per policy).
            old_tag = str(int(tag))
            wait_for(
                "BIND sees the new DS in and the old one out",
                lambda: bind_ds_states(cdir).get(old_tag) == "hidden" and bind_saw_ds(cdir),
                150,
                logs,
            )
            time.sleep(3)
        finally:
            stop_ev.set()
            t.join(timeout=10)
        log = [
            json.loads(x)
            for x in subprocess.run(
                [*DNSSEAL, "ctl", "-c", str(pdir / "dnsseal.toml"), "ds-log", PARENT],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.splitlines()
        ]
    finally:
        if unbound is not None:
            stop(unbound)
        stop(named)
        stop(parent)
    assert answers["servfail"] == 0, answers
    assert answers["secure"] > 0, answers
    sets = [e for e in log if e["action"] == "set"]
    assert sets and all(e["mode"] == "secure" for e in sets), log
    assert "RFC 7344" in sets[-1]["reason"]
