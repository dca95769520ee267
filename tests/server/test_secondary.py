"""Plain secondaries: a zone with ``primaries`` and no dnssec-policy is transferred in and
served exactly as the primary serves it, as BIND and Knot secondaries do.

Against real peers: named is the primary (a zone it signs itself, transfers and NOTIFY
with a TSIG key); a knotd secondary takes the zone from dnsseal; a named secondary of the
same primary is the reference for expiry."""

from __future__ import annotations

import json
import re
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import pytest

from conftest import free_port, stop

from .compare import summary
from .secondaries import (
    DNSSEAL,
    KEYRING,
    axfr,
    dnsseal_config,
    dnsseal_serve,
    knot_secondary,
    named_primary,
    named_secondary,
    rcode,
    serial,
    wait_until,
)

ZONE = "sec.example."
QUESTIONS = [
    ("", "SOA"),
    ("", "DNSKEY"),
    ("", "NS"),
    ("www", "A"),
    ("www", "AAAA"),  # no data
    ("nowhere", "A"),  # no such name
    ("", "MX"),
]


def ctl(d: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(DNSSEAL), "ctl", "-c", str(d / "dnsseal.toml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def notify(port: int, keyed: bool) -> dns.message.Message:
    """A NOTIFY for ZONE from 127.0.0.1 to dnsseal, TSIG-signed with xfr or not."""
    q = dns.message.make_query(ZONE, "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    q.flags = dns.flags.AA | dns.opcode.to_flags(dns.opcode.NOTIFY)
    if keyed:
        q.use_tsig(KEYRING, keyname="xfr")
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


@pytest.mark.interop
@pytest.mark.slow
def test_named_primary_to_dnsseal_to_knot(tmp_path: Path) -> None:
    port = free_port()
    with named_primary(tmp_path / "named", ZONE, [port]) as primary:
        with knot_secondary(tmp_path / "knot", ZONE, port) as kport:
            dnsseal_config(tmp_path, port, ZONE, primary.port, notify=[kport])
            with dnsseal_serve(tmp_path, port, ZONE):
                # The signed zone as named serves it, record for record (RRSIGs included:
                # nothing re-signed, nothing added).
                theirs = axfr(primary.port, ZONE, keyed=True)
                assert any(r[1] == 46 for r in theirs) and any(r[1] == 48 for r in theirs)
                wait_until(lambda: serial(port, ZONE) == serial(primary.port, ZONE), 10, "sync")
                assert axfr(port, ZONE) == axfr(primary.port, ZONE, keyed=True)
                # Answers too: the same records, proofs of nonexistence included.
                for qname, qtype in QUESTIONS:
                    name = f"{qname}.{ZONE}" if qname else ZONE
                    q = dns.message.make_query(name, qtype, want_dnssec=True)
                    ours = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
                    theirs_r = dns.query.udp(q, "127.0.0.1", port=primary.port, timeout=3)
                    assert summary(ours) == summary(theirs_r), (name, qtype)
                log = tmp_path / "out.txt"
                assert re.search(r"transferred serial \d+ from .* \(AXFR\)", log.read_text())

                # Knot takes it from us (NOTIFY at startup, then AXFR), records unchanged.
                wait_until(lambda: serial(kport, ZONE) == serial(port, ZONE), 20, "knot")
                assert axfr(kport, ZONE) == axfr(port, ZONE)

                # A change on named: its NOTIFY (signed) brings it here by IXFR in seconds,
                # and ours takes it on to Knot, by IXFR too.
                before = serial(port, ZONE)
                primary.update(ZONE, f"update add new.{ZONE} 60 A 192.0.2.99")
                took = wait_until(
                    lambda: rcode(port, f"new.{ZONE}", "A") == dns.rcode.NOERROR,
                    10,
                    "the change to reach dnsseal",
                )
                assert took < 10
                wait_until(lambda: serial(port, ZONE) == serial(primary.port, ZONE), 10, "sync")
                assert serial(port, ZONE) != before
                assert axfr(port, ZONE) == axfr(primary.port, ZONE, keyed=True)
                text = log.read_text()
                assert re.search(r"NOTIFY from 127\.0\.0\.1: sec\.example\.: checking", text)
                assert re.search(r"transferred serial \d+ from .* \(IXFR\)", text), text
                wait_until(lambda: serial(kport, ZONE) == serial(port, ZONE), 20, "knot IXFR")
                assert axfr(kport, ZONE) == axfr(port, ZONE)
                klog = (tmp_path / "knot" / "knot.log").read_text()
                assert re.search(r"IXFR, incoming.*finished", klog), klog

                # NOTIFY from the primary's address but without its key: refused.
                assert notify(port, keyed=False).rcode() == dns.rcode.REFUSED
                assert notify(port, keyed=True).rcode() == dns.rcode.NOERROR

                # `ctl retransfer` (rndc retransfer) takes the whole zone again; zone-status
                # shows the transfer side.
                out = ctl(tmp_path, "retransfer", ZONE)
                assert f"AXFR of serial {serial(primary.port, ZONE)}" in out, out
                status = json.loads(ctl(tmp_path, "--json", "zone-status", ZONE))["data"]
                assert status["primary-serial"] == serial(primary.port, ZONE)
                assert status["expired"] is False and status["error"] is None
                assert axfr(port, ZONE) == axfr(primary.port, ZONE, keyed=True)

            # Restarted with the primary still up: the copy is served at once.
            copy = axfr(primary.port, ZONE, keyed=True)
        with dnsseal_serve(tmp_path, port, ZONE):
            assert axfr(port, ZONE) == copy


@pytest.mark.interop
@pytest.mark.slow
def test_expire_as_bind_and_restart_keeps_the_copy(tmp_path: Path) -> None:
    """SOA refresh 1, retry 1, expire 12: with the primary gone, named (as secondary of
    the same primary) and dnsseal stop answering (SERVFAIL) about the expire time after
    the last refresh, not before; a dnsseal restarted in between serves its copy at once
    and still expires on the first clock, not 12 s after the restart; restarted after
    expiry it answers SERVFAIL at once; with the primary back both serve again."""
    port, pport = free_port(), free_port()
    pdir = tmp_path / "primary"
    timers = "1 1 12 60"
    with ExitStack() as stack:
        primary = stack.enter_context(named_primary(pdir, ZONE, [], False, pport, timers))
        bind2 = stack.enter_context(named_secondary(tmp_path / "bind2", ZONE, pport))
        dnsseal_config(tmp_path, port, ZONE, pport)
        with dnsseal_serve(tmp_path, port, ZONE):
            wait_until(lambda: serial(bind2.port, ZONE) == 1, 20, "the named secondary")
            assert axfr(port, ZONE) == axfr(pport, ZONE, keyed=True)
            time.sleep(2)  # refreshes that find the copy current
            stop(primary.proc)  # type: ignore[arg-type]
            gone = time.monotonic()
            time.sleep(3)
        # Restarted without its primary: the copy at once, with the expire time left.
        with dnsseal_serve(tmp_path, port, ZONE):
            assert time.monotonic() - gone < 8
            assert rcode(port, ZONE) == dns.rcode.NOERROR
            # the startup lines call it a secondary and give no DS (the primary's to give)
            out = tmp_path / "out.txt"
            wait_until(lambda: out.read_text().count("dnsseal serving") == 2, 10, "startup")
            intro = out.read_text().rsplit("dnsseal serving", 1)[1].split("control:", 1)[0]
            assert f"(secondary of 127.0.0.1@{pport}" in intro, intro
            assert "DS for the parent" not in intro and "presigned" not in intro, intro
            wait_until(lambda: rcode(port, ZONE) == dns.rcode.SERVFAIL, 20, "dnsseal expiry")
            ours = time.monotonic() - gone
            wait_until(lambda: rcode(bind2.port, ZONE) == dns.rcode.SERVFAIL, 20, "named expiry")
            theirs = time.monotonic() - gone
            # Expire counts from the last refresh (at most ~1 s before the primary went),
            # not from the restart (which would give >= 15 s).
            assert 10 <= ours <= 14, (ours, theirs)
            assert abs(ours - theirs) <= 3, (ours, theirs)
            assert rcode(port, f"www.{ZONE}", "A") == dns.rcode.SERVFAIL
            with pytest.raises(dns.exception.DNSException):
                axfr(port, ZONE)  # no transfers of an expired zone either
            text = (tmp_path / "out.txt").read_text()
            assert "expired, answering SERVFAIL" in text, text
            status = json.loads(ctl(tmp_path, "--json", "zone-status", ZONE))["data"]
            assert status["expired"] is True and "expired" in status["error"], status
        # Restarted after expiry: SERVFAIL at once, as named after a restart.
        with dnsseal_serve(tmp_path, port):
            assert rcode(port, ZONE) == dns.rcode.SERVFAIL
            # The primary comes back: dnsseal serves again within a retry; named, which
            # stops retrying an expired zone, once the primary's NOTIFY reaches it.
            with named_primary(pdir, ZONE, [bind2.port], False, pport, timers):
                wait_until(lambda: rcode(port, ZONE) == dns.rcode.NOERROR, 15, "dnsseal back")
                wait_until(lambda: rcode(bind2.port, ZONE) == dns.rcode.NOERROR, 15, "named")
                assert axfr(port, ZONE) == axfr(pport, ZONE, keyed=True)


@pytest.mark.interop
@pytest.mark.slow
def test_workers_serve_each_copy_and_follow_expiry(tmp_path: Path) -> None:
    """workers = 2: whichever process the kernel gives a query to serves the new copy
    after a NOTIFY, and answers SERVFAIL once the copy expired."""
    port, pport = free_port(), free_port()
    timers = "1 1 10 60"
    with named_primary(tmp_path / "primary", ZONE, [port], False, pport, timers) as primary:
        dnsseal_config(tmp_path, port, ZONE, pport, workers=2)
        with dnsseal_serve(tmp_path, port, ZONE):
            assert (tmp_path / "out.txt").read_text().count("listening on") == 2  # processes

            def everywhere(name: str, want: int) -> bool:
                # 30 queries from as many source ports: each process gets some.
                return all(rcode(port, name, "A") == want for _ in range(30))

            primary.update(ZONE, f"update add new.{ZONE} 60 A 192.0.2.99")
            wait_until(lambda: everywhere(f"new.{ZONE}", dns.rcode.NOERROR), 10, "all serve it")
            stop(primary.proc)  # type: ignore[arg-type]
            wait_until(lambda: everywhere(f"www.{ZONE}", dns.rcode.SERVFAIL), 20, "expiry")


@pytest.mark.interop
@pytest.mark.slow
def test_before_the_first_transfer_servfail_as_named(tmp_path: Path) -> None:
    """The primary not up yet: named (secondary) and dnsseal both answer SERVFAIL for the
    zone, not REFUSED; a name in no zone of ours stays REFUSED; once the primary is up
    (its NOTIFY), both serve the zone."""
    port, pport = free_port(), free_port()
    with named_secondary(tmp_path / "bind2", ZONE, pport) as bind2:
        dnsseal_config(tmp_path, port, ZONE, pport)
        with dnsseal_serve(tmp_path, port):
            wait_until(lambda: rcode(bind2.port, ZONE) is not None, 20, "named to answer")
            for server in (port, bind2.port):
                assert rcode(server, ZONE) == dns.rcode.SERVFAIL, server
                assert rcode(server, f"www.{ZONE}", "A") == dns.rcode.SERVFAIL, server
                assert rcode(server, "elsewhere.example.", "A") == dns.rcode.REFUSED, server
            with pytest.raises(dns.exception.DNSException):
                axfr(port, ZONE)
            with named_primary(tmp_path / "primary", ZONE, [port, bind2.port], False, pport):
                for server in (port, bind2.port):
                    wait_until(lambda s=server: serial(s, ZONE) == 1, 15, f"{server} serves")  # type: ignore[misc]
                assert axfr(port, ZONE) == axfr(pport, ZONE, keyed=True)
