"""The DS loop closed end to end, on loopback with accelerated policies (issue #18).

One dnsseal instance serves a root zone, a secure provider zone ``provider.test.`` (trust
anchor in Unbound and in dnsseal's validator), its two signaling zones
``_signal.ns1.provider.test.`` and ``_signal.ns2.provider.test.`` (``signaling = true``),
a parent ``parent.test.`` with ``ds-automation = true`` and a child ``child.parent.test.``
whose name servers are ns1/ns2.provider.test.  A validating Unbound asks for the child's
data all along and must never answer SERVFAIL.

The child goes unsigned -> signed -> bootstrapped secure (RFC 9615) with no operator
command; its KSK rolls by policy and the parent's DS follows (RFC 7344); then it goes
insecure by CDS DELETE (RFC 8078).  The only setup step by hand is the provider's own DS for
its signaling zones (provider infrastructure, done once, by UPDATE).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from automation.conftest import FAST_POLICY, INSECURE_POLICY, TSIG_SECRET, tally
from conftest import free_port, require_tool, stop, wait_for_dns, write_unbound_conf

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
PROV = "provider.test."
SIG = ["_signal.ns1.provider.test.", "_signal.ns2.provider.test."]
PARENT = "parent.test."
CHILD = "child.parent.test."
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ZONES = {
    ".": "@ NS a.root.\na.root. A 127.0.0.1\n"
    "provider.test. NS ns1.provider.test.\nns1.provider.test. A 127.0.0.1\n"
    "parent.test. NS ns.parent.test.\nns.parent.test. A 127.0.0.1\n",
    PROV: "@ NS ns1\n@ NS ns2\nns1 A 127.0.0.1\nns2 A 127.0.0.1\n"
    "_signal.ns1 NS ns1\n_signal.ns2 NS ns2\n",
    SIG[0]: "@ NS ns1.provider.test.\n",
    SIG[1]: "@ NS ns2.provider.test.\n",
    PARENT: "@ NS ns\nns A 127.0.0.1\nchild NS ns1.provider.test.\nchild NS ns2.provider.test.\n",
    CHILD: "@ NS ns1.provider.test.\n@ NS ns2.provider.test.\nwww A 192.0.2.80\n",
}


def _zone_file(origin: str, body: str) -> str:
    return f"$ORIGIN {origin}\n$TTL 2\n@ SOA a.root. hostmaster 1 60 30 600 2\n{body}"


def _config(d: Path, port: int, child_policy: str, mode: str = "poll") -> None:
    policies = {o: "fast" for o in ZONES}
    policies[CHILD] = child_policy
    opts = {
        PROV: 'allow-update = ["key ddns"]',
        SIG[0]: "signaling = true\nds-interval = 1",
        SIG[1]: "signaling = true\nds-interval = 1",
        PARENT: "ds-automation = true\nds-interval = 1\nds-ttl = 2\n"
        f'ds-trust-anchors = "anchors.conf"\nds-root = ["127.0.0.1@{port}"]',
        CHILD: f'parental-agents = ["127.0.0.1@{port}"]\ncheckds = "yes"',
    }
    if mode == "notify":
        # The parent never polls (ds-interval 600): only the child's NOTIFY(CDS), sent to
        # the DSYNC target the parent publishes, makes it look (RFC 9859).
        opts[PARENT] = opts[PARENT].replace("ds-interval = 1", "ds-interval = 600")
        opts[PARENT] += "\ndsync = true"
        opts[CHILD] += (
            '\ndsync = true\nds-interval = 1\nds-trust-anchors = "anchors.conf"\n'
            f'ds-root = ["127.0.0.1@{port}"]'
        )
    lines = [
        "[server]",
        f'listen = ["127.0.0.1@{port}"]',
        'control = "dnsseal.sock"',
        'state-dir = "state"',
        'key-directory = "keys"',
        'policies = "policies.toml"',
        f"query-port = {port}",
        "",
        "[key.ddns]",
        'algorithm = "hmac-sha256"',
        f'secret = "{TSIG_SECRET}"',
        "",
    ]
    for origin in ZONES:
        fname = (origin.rstrip(".") or "root") + ".zone"
        lines += [
            f'[zone."{origin}"]',
            f'file = "zones/{fname}"',
            f'dnssec-policy = "{policies[origin]}"',
            'allow-transfer = ["127.0.0.1"]',
            opts.get(origin, ""),
            "",
        ]
    (d / "dnsseal.toml").write_text("\n".join(lines))


def _setup(d: Path, port: int, mode: str) -> None:
    (d / "zones").mkdir()
    for origin, body in ZONES.items():
        fname = (origin.rstrip(".") or "root") + ".zone"
        (d / "zones" / fname).write_text(_zone_file(origin, body))
    (d / "policies.toml").write_text(
        FAST_POLICY % {"name": "fast", "ksk_lifetime": "unlimited", "zsk_lifetime": "unlimited",
                       "nsec3": ""}
        + FAST_POLICY % {"name": "roll", "ksk_lifetime": 40, "zsk_lifetime": "unlimited",
                         "nsec3": ""}
        + INSECURE_POLICY
    )  # fmt: skip
    # Placeholder anchors until the provider's keys exist (rewritten before they are used).
    _config(d, port, "insecure-fast", mode)


def ask(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def ksk_ds(port: int, zone: str) -> list[str]:
    """DS texts (SHA-256) of the zone's KSKs as served now."""
    r = ask(port, zone, "DNSKEY")
    return [
        dns.dnssec.make_ds(zone, rd, "SHA256").to_text()
        for rr in r.answer
        if rr.rdtype == dns.rdatatype.DNSKEY
        for rd in rr
        if rd.flags & 1
    ]


def ds_at_parent(port: int) -> set[str]:
    r = ask(port, CHILD, "DS")
    return {rd.to_text().upper() for rr in r.answer if rr.rdtype == dns.rdatatype.DS for rd in rr}


def wait_for(what: str, cond: Callable[[], bool], timeout: float, d: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (dns.exception.DNSException, OSError):
            pass
        time.sleep(0.5)
    log = (d / "out.txt").read_text()[-6000:]
    raise AssertionError(f"timed out waiting for {what}\n{log}")


@contextmanager
def background(fn: Callable[[], None], every: float) -> Iterator[list[BaseException]]:
    stop_ev = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        while not stop_ev.is_set():
            try:
                fn()
            except (dns.exception.DNSException, OSError, EOFError):
                pass
            except BaseException as e:
                errors.append(e)
                return
            stop_ev.wait(every)

    t = threading.Thread(target=loop)
    t.start()
    try:
        yield errors
    finally:
        stop_ev.set()
        t.join(timeout=10)


SIGNAL1 = "_dsboot.child.parent.test._signal.ns1.provider.test."


def signaling_zone_answers(port: int, uport: int) -> None:
    """The signaling name holds the child's apex CDS/CDNSKEY exactly; other types and the
    empty non-terminal above it are NODATA; no referral; Unbound validates it (AD)."""
    for rtype in ("CDS", "CDNSKEY"):
        here = ask(port, SIGNAL1, rtype)
        apex = ask(port, CHILD, rtype)
        t = dns.rdatatype.from_text(rtype)
        assert here.flags & dns.flags.AA and here.rcode() == dns.rcode.NOERROR
        assert {rd.to_text() for rr in here.answer if rr.rdtype == t for rd in rr} == {
            rd.to_text() for rr in apex.answer if rr.rdtype == t for rd in rr
        }
        assert any(rr.rdtype == dns.rdatatype.RRSIG for rr in here.answer)
        q = dns.message.make_query(SIGNAL1, rtype, want_dnssec=True)
        assert dns.query.udp(q, "127.0.0.1", port=uport, timeout=5).flags & dns.flags.AD
    for name, rtype in ((SIGNAL1, "A"), ("child.parent.test._signal.ns1.provider.test.", "A")):
        r = ask(port, name, rtype)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer, r
        assert r.flags & dns.flags.AA
        assert not any(rr.rdtype == dns.rdatatype.NS for rr in r.authority), r


def flood(port: int, d: Path) -> None:
    """A flood of NOTIFY(CDS) for the child from one source: the parent takes the first
    ones and refuses the rest with EDE 15 (Blocked), and keeps answering queries."""
    codes: list[tuple[int, str]] = []
    for i in range(40):
        msg = dns.message.make_query(CHILD, "CDS")
        msg.set_opcode(dns.opcode.NOTIFY)
        msg.flags = dns.opcode.to_flags(dns.opcode.NOTIFY)
        msg.id = i
        r = dns.query.udp(msg, "127.0.0.1", port=port, timeout=3)
        ede = [o for o in r.options if isinstance(o, dns.edns.EDEOption)]
        codes.append((r.rcode(), f"{int(ede[0].code)} {ede[0].text}" if ede else ""))
    refused = [t for rc, t in codes if rc == dns.rcode.REFUSED]
    assert len(refused) >= 30, codes
    assert all(t.startswith("15 rate-limited") for t in refused), refused
    assert ask(port, CHILD, "SOA").rcode() == dns.rcode.NOERROR
    # NOTIFY(CDS) for a name that is not a delegation of the parent: NOTAUTH, no scan.
    for name in ("nochild.parent.test.", PARENT):
        msg = dns.message.make_query(name, "CDS")
        msg.set_opcode(dns.opcode.NOTIFY)
        msg.flags = dns.opcode.to_flags(dns.opcode.NOTIFY)
        r = dns.query.udp(msg, "127.0.0.1", port=port, timeout=3)
        assert r.rcode() == dns.rcode.NOTAUTH, (name, r)


def parent_check(d: Path, port: int) -> subprocess.CompletedProcess[str]:
    """`dnsseal parent-check CHILD`, finding the parent by validated resolution."""
    args = ["-a", str(d / "anchors.conf"), "--root", f"127.0.0.1#{port}"]
    return subprocess.run(
        [*DNSSEAL, "parent-check", CHILD, *args, "--query-port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def provider_ds(port: int, zone: str) -> None:
    """The provider's DS for one of its signaling zones, added by UPDATE."""
    u = dns.update.UpdateMessage(PROV, keyring=KEYRING, keyname="ddns")
    for ds in ksk_ds(port, zone):
        u.add(zone, 2, "DS", ds)
    r = dns.query.tcp(u, "127.0.0.1", port=port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR, r


def ds_log(d: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in ctl(d, "ds-log", PARENT).splitlines()]


def ctl(d: Path, *args: str) -> str:
    proc = subprocess.run(
        [*DNSSEAL, "ctl", "-c", str(d / "dnsseal.toml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"ctl {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("mode", ["poll", "notify"])
def test_unsigned_to_secure_roll_and_delete_with_no_operator(tmp_path: Path, mode: str) -> None:
    d = tmp_path
    port = free_port()
    _setup(d, port, mode)
    (d / "anchors.conf").write_text('trust-anchors { "." static-ds 1 13 2 "00"; };\n')
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, PARENT, proc, timeout=30)
        for z in (PROV, *SIG, PARENT):
            wait_for(f"{z} signed", lambda z=z: bool(ksk_ds(port, z)), 30, d)
        # Provider infrastructure, once: the DS of its signaling zones (by UPDATE).  The
        # second one's comes late: until then its signaling records cannot validate.
        provider_ds(port, SIG[0])
        anchors = [f"{PROV} {ds}" for ds in ksk_ds(port, PROV)]
        anchors += [f"{PARENT} {ds}" for ds in ksk_ds(port, PARENT)]
        (d / "anchors.conf").write_text(
            "trust-anchors {\n"
            + "".join(
                f'  {a.split()[0]} static-ds {" ".join(a.split()[1:4])} "{a.split()[4]}";\n'
                for a in anchors
            )
            + "};\n"
        )
        stubs = [(z, port) for z in (PROV, *SIG, PARENT, CHILD)]
        udir = d / "unbound"
        udir.mkdir()
        uport = free_port()
        conf = write_unbound_conf(
            udir,
            uport,
            [f"{a.split()[0]} DS {' '.join(a.split()[1:])}" for a in anchors],
            stubs,
            extra=(
                "cache-max-ttl: 2",
                "cache-max-negative-ttl: 2",
                'local-zone: "test." nodefault',
            ),
        )
        unbound = subprocess.Popen(
            [require_tool("unbound"), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        answers = {"servfail": 0, "secure": 0, "insecure": 0}
        try:
            wait_for_dns(uport, PROV, unbound, timeout=20)

            def resolve() -> None:
                for name in (f"www.{CHILD}", f"nope.{CHILD}"):
                    q = dns.message.make_query(name, "A", want_dnssec=True)
                    tally(answers, dns.query.udp(q, "127.0.0.1", port=uport, timeout=5))

            with background(resolve, 0.3) as res_errors:
                # 1. unsigned -> signed: the operator changes the child's policy, nothing else.
                _config(d, port, "roll", mode)
                ctl(d, "reload")
                wait_for("child signed", lambda: bool(ksk_ds(port, CHILD)), 60, d)
                first = {ds.upper() for ds in ksk_ds(port, CHILD)}
                # Negative: one signaling name is insecure, so nothing changes (RFC 9615 s4.2)
                wait_for(
                    "a decision naming the unvalidated signaling name",
                    lambda: any(
                        "_dsboot.child.parent.test._signal.ns2.provider.test." in e["reason"]
                        and "not validated" in e["reason"]
                        for e in ds_log(d)
                    ),
                    60,
                    d,
                )
                assert not ds_at_parent(port)
                signaling_zone_answers(port, uport)
                check = parent_check(d, port)
                assert check.returncode == 1, check.stdout + check.stderr
                assert "_signal.ns2.provider.test. CDS is not validated" in check.stdout
                provider_ds(port, SIG[1])
                # 2. bootstrapped secure by the parent through the signaling zones.
                wait_for("DS bootstrapped", lambda: ds_at_parent(port) == first, 90, d)
                check = parent_check(d, port)
                assert check.returncode == 0, check.stdout + check.stderr
                assert "already matches" in check.stdout
                # RFC 9615 s5.1: the signaling records go once the parent has the DS (the
                # name is gone: NODATA, as the zone is answered online like Knot's).
                wait_for(
                    "signaling records removed",
                    lambda: (
                        not ask(port, SIGNAL1, "CDS").answer
                        and ask(port, SIGNAL1, "CDS").rcode() == dns.rcode.NOERROR
                    ),
                    30,
                    d,
                )
                bootstrap_log = ds_log(d)
                # 3. the KSK roll: the parent's DS follows the child's CDS by itself.
                wait_for(
                    "DS follows the KSK roll",
                    lambda: bool(ds_at_parent(port)) and not ds_at_parent(port) & first,
                    150,
                    d,
                )
                if mode == "notify":
                    flood(port, d)
                # 4. insecure by DELETE.
                _config(d, port, "insecure-fast", mode)
                ctl(d, "reload")
                wait_for("DS removed", lambda: not ds_at_parent(port), 90, d)
                wait_for("child unsigned", lambda: not ksk_ds(port, CHILD), 90, d)
                time.sleep(3)
            assert not res_errors, res_errors
        finally:
            stop(unbound)
        log = ds_log(d)
    finally:
        stop(proc)
    assert answers["servfail"] == 0, answers
    assert answers["secure"] > 0 and answers["insecure"] > 0, answers
    actions = [(e["mode"], e["action"]) for e in log if e["action"] != "keep"]
    assert ("bootstrap", "set") in actions, log
    assert ("secure", "set") in actions, log
    assert ("secure", "delete") in actions, log
    if mode == "notify":
        out = (d / "out.txt").read_text()
        assert f"NOTIFY(CDS) for {CHILD} from 127.0.0.1: NOERROR" in out
        assert "DSYNC: NOTIFY(CDS) to ns.parent.test." in out
    boot = next(e for e in bootstrap_log if e["action"] == "set")
    assert "RFC 9615" in boot["reason"]
    assert {s["server"].split()[0] for s in boot["servers"]} == {
        "ns1.provider.test.",
        "ns2.provider.test.",
    }
