"""Going insecure through an `insecure` policy (no keys; the built-in one's rules with
second-scale timings): CDS/CDNSKEY DELETE published, the
parent's DS removed (by dynamic update, as a registrar's CDS scanner does), checkds seeing
it gone, then the zone unsigned; a validating Unbound never answers SERVFAIL."""

from __future__ import annotations

import re
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import free_port

from .conftest import axfr_verify, ctl, dnsseal_serve, printed_ds, tally, unbound, write_config
from .conftest import zone_text as make_zone
from .test_e2e import CHILD, PARENT, ask, background, registrar_step


def _child_options(port: int) -> dict[str, str]:
    return {
        PARENT: 'allow-update = ["key ddns"]',
        CHILD: f'parental-agents = ["127.0.0.1@{port}"]\ncheckds = "yes"',
    }


@pytest.mark.interop
@pytest.mark.slow
def test_insecure_policy_unsigns_the_child_with_no_servfail(tmp_path: Path) -> None:
    port = free_port()
    parent_text = make_zone(PARENT, extra="kid NS ns.kid\nns.kid A 127.0.0.1\n")
    zones = {PARENT: parent_text, CHILD: make_zone(CHILD)}
    write_config(tmp_path, port, zones, zone_options=_child_options(port))
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], CHILD, port):
        anchor = printed_ds(tmp_path / "out.txt", PARENT)
        answers = {"servfail": 0, "secure": 0, "insecure": 0}
        with unbound(tmp_path, [anchor], {PARENT: port, CHILD: port}) as uport:

            def resolve() -> None:
                q = dns.message.make_query(f"www.{CHILD}", "A", want_dnssec=True)
                tally(answers, dns.query.udp(q, "127.0.0.1", port=uport, timeout=5))

            with (
                background(lambda: registrar_step(port), 0.5) as reg_errors,
                background(resolve, 0.2) as res_errors,
            ):
                # secure first: the DS is in the parent and the key manager knows it
                deadline = time.monotonic() + 40
                status = ""
                while time.monotonic() < deadline:
                    status = ctl(tmp_path, "dnssec", "-status", CHILD)
                    if re.search(r"KSK\n(.*\n)*?  - ds: +omnipresent", status):
                        break
                    time.sleep(0.5)
                assert re.search(r"  - ds: +omnipresent", status), status
                secure_before = answers["secure"]
                assert secure_before > 0, answers
                # switch the child to the built-in insecure policy
                write_config(
                    tmp_path,
                    port,
                    zones,
                    zone_options=_child_options(port),
                    policies={PARENT: "fast", CHILD: "insecure-fast"},
                )
                ctl(tmp_path, "reload")
                saw_delete = False
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    cds = {rd.to_text() for rr in ask(port, CHILD, "CDS").answer for rd in rr}
                    saw_delete |= "0 0 0 00" in cds
                    if not ask(port, CHILD, "DNSKEY").answer and saw_delete:
                        break
                    time.sleep(0.5)
                assert saw_delete, "no CDS DELETE was published"
                assert not ask(port, CHILD, "DNSKEY").answer, ctl(
                    tmp_path, "dnssec", "-status", CHILD
                )
                time.sleep(3)  # Unbound's cache (max TTL 2 s) now only knows the unsigned zone
                assert not reg_errors and not res_errors, (reg_errors, res_errors)
            assert answers["servfail"] == 0, answers
            assert answers["insecure"] > 0, answers
            q = dns.message.make_query(f"www.{CHILD}", "A", want_dnssec=True)
            last = dns.query.udp(q, "127.0.0.1", port=uport, timeout=5)
            assert last.rcode() == dns.rcode.NOERROR and not last.flags & dns.flags.AD
        assert not ask(port, CHILD, "DS").answer  # the parent has no DS any more
        assert ask(port, CHILD, "SOA").answer  # served unsigned
        axfr_verify(tmp_path, PARENT, port, "parent.zone")
