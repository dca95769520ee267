"""End to end on accelerated time: a parent and a child zone served by dnsseal, a validating
Unbound with the parent's trust anchor querying the child all along, a registrar loop that
copies the child's CDS into the parent's DS by dynamic update, and checkds seeing it.

The child's policy rolls its ZSK every 25 s and its KSK every 40 s: the rolls complete with
no operator command and Unbound never answers SERVFAIL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from conftest import free_port

from .conftest import (
    TSIG_SECRET,
    axfr_verify,
    ctl,
    dnsseal_serve,
    printed_ds,
    tally,
    unbound,
    write_config,
    zone_text,
)

PARENT = "par.example."
CHILD = "kid.par.example."
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})


def ask(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def rdata_texts(msg: dns.message.Message, rtype: int) -> set[str]:
    return {rd.to_text() for rr in msg.answer if rr.rdtype == rtype for rd in rr}


def registrar_step(port: int) -> None:
    """One pass of the parent's CDS scanner (RFC 7344/8078): DS := the child's CDS."""
    cds = rdata_texts(ask(port, CHILD, "CDS"), dns.rdatatype.CDS)
    if not cds:
        return
    want = set() if cds == {"0 0 0 00"} else cds
    have = rdata_texts(ask(port, CHILD, "DS"), dns.rdatatype.DS)
    if want == {w.upper() for w in have} or want == have:
        return
    u = dns.update.UpdateMessage(PARENT, keyring=KEYRING, keyname="ddns")
    u.delete(CHILD, "DS")
    for text in sorted(want):
        u.add(CHILD, 2, "DS", text)
    r = dns.query.tcp(u, "127.0.0.1", port=port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR, r


@contextmanager
def background(fn: Callable[[], None], every: float) -> Iterator[list[BaseException]]:
    """Run ``fn`` every ``every`` seconds in a thread until the block ends."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                fn()
            except (dns.exception.DNSException, OSError, EOFError):
                pass  # a lost packet or connection: try again
            except BaseException as e:
                errors.append(e)
                return
            stop.wait(every)

    t = threading.Thread(target=loop)
    t.start()
    try:
        yield errors
    finally:
        stop.set()
        t.join(timeout=10)


def dnskey_tags(port: int, zone: str) -> set[int]:
    r = ask(port, zone, "DNSKEY")
    return {
        dns.dnssec.key_id(rd) for rr in r.answer if rr.rdtype == dns.rdatatype.DNSKEY for rd in rr
    }


@pytest.mark.interop
@pytest.mark.slow
def test_zsk_and_ksk_roll_with_parent_ds_by_update_and_no_servfail(tmp_path: Path) -> None:
    port = free_port()
    parent_text = zone_text(PARENT, extra="kid NS ns.kid\nns.kid A 127.0.0.1\n")
    write_config(
        tmp_path,
        port,
        {PARENT: parent_text, CHILD: zone_text(CHILD)},
        policies={PARENT: "fast", CHILD: "roll"},
        zone_options={
            PARENT: 'allow-update = ["key ddns"]',
            CHILD: f'parental-agents = ["127.0.0.1@{port}"]\ncheckds = "yes"',
        },
    )
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], CHILD, port):
        anchor = printed_ds(tmp_path / "out.txt", PARENT)
        first = dnskey_tags(port, CHILD)
        assert len(first) == 2
        answers: dict[str, int] = {"servfail": 0, "secure": 0, "insecure": 0}

        with unbound(tmp_path, [anchor], {PARENT: port, CHILD: port}) as uport:

            def resolve() -> None:
                for name in (f"www.{CHILD}", f"nope.{CHILD}"):
                    q = dns.message.make_query(name, "A", want_dnssec=True)
                    tally(answers, dns.query.udp(q, "127.0.0.1", port=uport, timeout=5))

            with (
                background(lambda: registrar_step(port), 0.5) as reg_errors,
                background(resolve, 0.2) as res_errors,
            ):
                deadline = time.monotonic() + 110
                while time.monotonic() < deadline:
                    now_tags = dnskey_tags(port, CHILD)
                    if now_tags and not now_tags & first:
                        break
                    time.sleep(1)
                status = ctl(tmp_path, "dnssec", "-status", CHILD)
                assert not now_tags & first, f"roll not complete: {now_tags} vs {first}\n{status}"
                assert not reg_errors and not res_errors, (reg_errors, res_errors)
        assert answers["servfail"] == 0, answers
        assert answers["secure"] > 0, answers
        log = (tmp_path / "out.txt").read_text()
        assert "parental agent 127.0.0.1" in status
        # checkds saw the new KSK's DS appear and the old one's go: no operator command
        assert "checkds: DS for key" in log and "seen at every parental agent" in log
        assert "gone from every parental agent" in log
        axfr_verify(tmp_path, CHILD, port)
        axfr_verify(tmp_path, PARENT, port, "parent.zone")
