"""RFC 9859 pieces (proto.dsync): DSYNC owners and records, NOTIFY(CDS), rate limits."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
from hypothesis import given
from hypothesis import strategies as st

from dnsseal.proto import dsync

P = dns.name.from_text("parent.test.")
C = dns.name.from_text("a.b.parent.test.")


def test_owners() -> None:
    assert dsync.parent_owner(P).to_text() == "_dsync.parent.test."
    assert dsync.child_owner(C, P).to_text() == "a.b._dsync.parent.test."


def test_dsync_record_and_targets() -> None:
    rd = dsync.dsync_rdata(dns.rdatatype.CDS, 5300, dns.name.from_text("ns.parent.test."))
    assert rd.to_text() == "CDS NOTIFY 5300 ns.parent.test."
    other = dsync.dsync_rdata(dns.rdatatype.CSYNC, 53, dns.name.from_text("x.test."))
    assert dsync.notify_targets([rd, other]) == [(dns.name.from_text("ns.parent.test."), 5300)]


def test_notify_round_trip_and_other_notifies_ignored() -> None:
    msg = dsync.make_notify(C, 77)
    wire = dns.message.from_wire(msg.to_wire())
    assert wire.opcode() == dns.opcode.NOTIFY
    assert dsync.read_notify(wire) == C
    soa_notify = dns.message.make_query(P, "SOA")
    soa_notify.set_opcode(dns.opcode.NOTIFY)
    assert dsync.read_notify(soa_notify) is None
    assert dsync.read_notify(dns.message.make_query(C, "CDS")) is None  # a query


def test_blocked_response_carries_ede_15() -> None:
    msg = dsync.make_notify(C, 1)
    r = dns.message.from_wire(dsync.response(msg, dns.rcode.REFUSED, "rate-limited").to_wire())
    assert r.rcode() == dns.rcode.REFUSED
    (ede,) = [o for o in r.options if isinstance(o, dns.edns.EDEOption)]
    assert int(ede.code) == 15 and ede.text == "rate-limited"
    ok = dns.message.from_wire(dsync.response(msg, dns.rcode.NOERROR).to_wire())
    assert ok.rcode() == dns.rcode.NOERROR and not ok.options


def test_rate_limit_burst_then_refill() -> None:
    rl = dsync.RateLimit(burst=2, every=5.0)
    assert [rl.allow("k", 0.0) for _ in range(3)] == [True, True, False]
    assert rl.allow("other", 0.0)
    assert not rl.allow("k", 4.9)
    assert rl.allow("k", 5.1)


@given(st.lists(st.floats(min_value=0, max_value=1000), min_size=1, max_size=60))
def test_rate_limit_never_exceeds_its_budget(times: list[float]) -> None:
    """Property: over any run, accepted <= burst + elapsed / every."""
    rl = dsync.RateLimit(burst=3, every=2.0)
    times = sorted(times)
    accepted = sum(rl.allow("k", t) for t in times)
    assert accepted <= 3 + (times[-1] - times[0]) / 2.0 + 1e-9
