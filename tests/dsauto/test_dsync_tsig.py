"""RFC 9859 in the server, with TSIG and per-child DSYNC.

One dnsseal instance serves an unsigned root, a parent ``parent.test.`` (``ds-automation``,
``dsync``, ``dsync-allow = ["key cds"]``, ``dsync-child`` for ``kid``) and two signed
children waiting for their first DS, ``kid`` and ``kid2``, whose drivers send NOTIFY(CDS)
signed with their ``notify-key``.  The parent publishes ``_dsync.parent.test.`` (itself) and
``kid._dsync.parent.test.`` (a NOTIFY receiver run by this test, which checks the TSIG with
dnspython).  ``kid`` must notify the receiver (the most specific DSYNC), ``kid2`` the parent;
the parent takes signed NOTIFY(CDS) with the key and refuses unsigned or other keys.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest

from automation.conftest import FAST_POLICY, TSIG_SECRET
from conftest import free_port, stop, wait_for_dns

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
PARENT = "parent.test."
KID, KID2 = "kid.parent.test.", "kid2.parent.test."
CDS_SECRET = "Y2RzLW5vdGlmeS1zZWNyZXQtY2RzLW5vdGlmeS1zZWNyZXQ="
CDS_KEY = dns.tsig.Key("cds.", CDS_SECRET, "hmac-sha256")
OTHER_KEY = dns.tsig.Key("ddns.", TSIG_SECRET, "hmac-sha256")
UNKNOWN_KEY = dns.tsig.Key("nobody.", CDS_SECRET, "hmac-sha256")

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SOA = "@ SOA ns.parent.test. hostmaster 1 60 30 600 2\n"
ZONES = {
    ".": "@ NS a.root.\na.root. A 127.0.0.1\n"
    "parent.test. NS ns.parent.test.\nns.parent.test. A 127.0.0.1\n",
    PARENT: "@ NS ns\nns A 127.0.0.1\nns2 A 127.0.0.1\n"
    "kid NS ns1.kid\nns1.kid A 127.0.0.1\nkid2 NS ns1.kid2\nns1.kid2 A 127.0.0.1\n"
    "kid3 NS ns1.kid2\n",
    KID: "@ NS ns1\nns1 A 127.0.0.1\nwww A 192.0.2.80\n",
    KID2: "@ NS ns1\nns1 A 127.0.0.1\nwww A 192.0.2.81\n",
}


def _config(d: Path, port: int, receiver: int) -> None:
    (d / "zones").mkdir()
    for origin, body in ZONES.items():
        name = (origin.rstrip(".") or "root") + ".zone"
        (d / "zones" / name).write_text(f"$ORIGIN {origin}\n$TTL 2\n{SOA}{body}")
    (d / "policies.toml").write_text(
        FAST_POLICY
        % {"name": "fast", "ksk_lifetime": "unlimited", "zsk_lifetime": "unlimited", "nsec3": ""}
    )
    child = (
        'dsync = true\nds-interval = 1\nds-trust-anchors = "anchors.conf"\n'
        f'ds-root = ["127.0.0.1@{port}"]\nnotify-key = "cds"'
    )
    opts = {
        PARENT: 'ds-automation = true\ndsync = true\nds-interval = 600\ndsync-allow = ["key cds"]\n'
        f'dsync-child = ["kid ns2@{receiver}"]',
        KID: child,
        KID2: child,
    }
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
        "[key.cds]",
        'algorithm = "hmac-sha256"',
        f'secret = "{CDS_SECRET}"',
        "",
    ]
    for origin in ZONES:
        name = (origin.rstrip(".") or "root") + ".zone"
        lines += [f'[zone."{origin}"]', f'file = "zones/{name}"', 'dnssec-policy = "fast"']
        lines += [opts.get(origin, ""), ""]
    (d / "dnsseal.toml").write_text("\n".join(lines))


@contextmanager
def notify_receiver(port: int) -> Iterator[list[tuple[str, str, str | None]]]:
    """A NOTIFY receiver on 127.0.0.1@port: records (qname, qtype, TSIG key name or None)
    of every message it could verify and answers NOERROR, signed like the request."""
    got: list[tuple[str, str, str | None]] = []
    keyring = dns.tsigkeyring.from_text({"cds.": ("hmac-sha256", CDS_SECRET)})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.2)
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            try:
                msg = dns.message.from_wire(wire, keyring=keyring)
            except dns.exception.DNSException as e:  # a bad TSIG is recorded as such
                got.append(("?", "?", f"invalid: {e}"))
                continue
            if msg.opcode() != dns.opcode.NOTIFY or len(msg.question) != 1:
                continue
            q = msg.question[0]
            key = msg.keyname.to_text() if msg.had_tsig else None
            got.append((q.name.to_text(), dns.rdatatype.to_text(q.rdtype), key))
            sock.sendto(dns.message.make_response(msg).to_wire(), peer)

    t = threading.Thread(target=loop)
    t.start()
    try:
        yield got
    finally:
        done.set()
        t.join(timeout=5)
        sock.close()


def _wait(what: str, cond: Callable[[], bool], timeout: float, d: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (dns.exception.DNSException, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{(d / 'out.txt').read_text()[-6000:]}")


def _ask(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def _dsync(port: int, name: str) -> tuple[set[str], bool]:
    r = _ask(port, name, "DSYNC")
    texts = {rd.to_text() for rr in r.answer if rr.rdtype == dns.rdatatype.DSYNC for rd in rr}
    return texts, any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer)


def _notify(port: int, child: str, key: dns.tsig.Key | None) -> dns.message.Message:
    msg = dns.message.make_query(child, "CDS")
    msg.set_opcode(dns.opcode.NOTIFY)
    msg.flags = dns.opcode.to_flags(dns.opcode.NOTIFY)
    if key is not None:
        msg.use_tsig(key)
    # dnspython checks the TSIG of the answer to a signed request (raises when it is bad).
    return dns.query.udp(msg, "127.0.0.1", port=port, timeout=3)


def test_notify_cds_tsig_and_per_child_dsync(tmp_path: Path) -> None:
    d = tmp_path
    port, receiver = free_port(), free_port()
    _config(d, port, receiver)
    (d / "anchors.conf").write_text('trust-anchors { "." static-ds 1 13 2 "00"; };\n')
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, PARENT, proc, timeout=30)
        # The parent publishes both DSYNC RRsets from its configuration, signed.
        want = {
            f"_dsync.{PARENT}": {f"{t} NOTIFY {port} ns.{PARENT}" for t in ("CDS", "CDNSKEY")},
            f"kid._dsync.{PARENT}": {
                f"{t} NOTIFY {receiver} ns2.{PARENT}" for t in ("CDS", "CDNSKEY")
            },
        }
        for owner, texts in want.items():
            _wait(f"DSYNC at {owner}", lambda o=owner, t=texts: _dsync(port, o) == (t, True), 30, d)

        r = _ask(port, PARENT, "DNSKEY")
        (ds,) = [
            dns.dnssec.make_ds(PARENT, rd, "SHA256").to_text().split()
            for rr in r.answer
            if rr.rdtype == dns.rdatatype.DNSKEY
            for rd in rr
            if rd.flags & 1
        ]
        (d / "anchors.conf").write_text(
            f'trust-anchors {{ {PARENT} static-ds {ds[0]} {ds[1]} {ds[2]} "{ds[3]}"; }};\n'
        )

        # The parent side: only NOTIFY(CDS) signed with the key of dsync-allow is taken.
        for key in (None, OTHER_KEY):
            r = _notify(port, f"kid3.{PARENT}", key)
            ede = [o for o in r.options if isinstance(o, dns.edns.EDEOption)]
            assert r.rcode() == dns.rcode.REFUSED and int(ede[0].code) == 18, r  # Prohibited
            assert "dsync-allow" in str(ede[0].text), r
        with pytest.raises(dns.tsig.PeerBadKey):  # NOTAUTH with TSIG error BADKEY
            _notify(port, f"kid3.{PARENT}", UNKNOWN_KEY)
        ok = _notify(port, f"kid3.{PARENT}", CDS_KEY)
        assert ok.rcode() == dns.rcode.NOERROR and ok.had_tsig, ok

        # The child side: kid notifies the receiver named by its own DSYNC, kid2 the
        # parent (zone-wide DSYNC), both signed with their notify-key.
        with notify_receiver(receiver) as got:
            _wait("NOTIFY(CDS) for kid at its own target", lambda: bool(got), 60, d)
            text = (d / "out.txt").read_text
            _wait(
                "the parent takes kid2's signed NOTIFY(CDS)",
                lambda: f"NOTIFY(CDS) for {KID2} from 127.0.0.1: NOERROR" in text(),
                60,
                d,
            )
            time.sleep(2)
        assert set(got) == {(KID, "CDS", "cds.")}, got
        log = text()
        assert f"NOTIFY(CDS) for {KID} from" not in log
        assert "not allowed by dsync-allow (unsigned)" in log
        assert "not allowed by dsync-allow (signed with key ddns.)" in log
        assert f"NOTIFY(CDS) to 127.0.0.1@{receiver}: NOERROR" in log
    finally:
        stop(proc)
