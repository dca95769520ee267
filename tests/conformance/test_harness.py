"""The replay harness itself: it reads the format, answers from the right entries, and a
comparison can fail.  (A harness that always agreed would make every scenario pass.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest

from conformance import harness, rpl
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.hints import builtin_root_servers
from dnsseal.validator import rrsig
from dnsseal.validator.policy import AlgorithmPolicy

DATA = Path(__file__).parent / "unbound"
SRC = Path(__file__).parents[2] / "src" / "dnsseal"

# RFC 5155 appendix B.2 (NODATA, NSEC3) as served by val_nsec3_b2_nodata.rpl, asked without DO
# but with AD: a secure answer gets AD (RFC 6840 s5.7) and no DNSSEC records.
STEPS = """
STEP 1 QUERY
ENTRY_BEGIN
REPLY RD AD
SECTION QUESTION
ns1.example. IN MX
ENTRY_END

STEP 10 CHECK_ANSWER
ENTRY_BEGIN
MATCH {match}
REPLY QR RD RA AD NOERROR
SECTION QUESTION
ns1.example. IN MX
SECTION ANSWER
SECTION AUTHORITY
example. {ttl} SOA ns1.example. bugs.x.w.example. {serial} 3600 300 ( 3600000 3600 )
ENTRY_END

SCENARIO_END
"""


def b2_nodata(
    match: str = "all", serial: int = 1, ttl: int = 3600, anchor_fix: str = ""
) -> rpl.Scenario:
    text = (DATA / "val_nsec3_b2_nodata.rpl").read_text(encoding="utf-8")
    head = text[: text.index("STEP 1 QUERY")]
    if anchor_fix:
        head = head.replace("AwEAAcUlFV1vhmqx6NSOUOq2R", anchor_fix)
    return rpl.parse(head + STEPS.format(match=match, serial=serial, ttl=ttl), "b2_nodata.rpl")


def test_secure_nodata_is_answered_with_ad(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = harness.run(b2_nodata(), monkeypatch)
    assert outcome.checks == 1
    assert outcome.failures == []


def test_a_different_record_is_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = harness.run(b2_nodata(serial=2), monkeypatch)
    assert len(outcome.failures) == 1
    assert "authority section" in outcome.failures[0]


def test_ttl_is_compared_only_when_match_says_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    assert harness.run(b2_nodata(ttl=60), monkeypatch).failures == []
    failures = harness.run(b2_nodata(match="all ttl", ttl=60), monkeypatch).failures
    assert failures
    assert "authority section" in failures[0]


def test_a_wrong_trust_anchor_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = harness.run(b2_nodata(anchor_fix="AwEAAcUlFV1vhmqx6NSOUOq2S"), monkeypatch)
    assert len(outcome.failures) == 1
    assert "rcode: want NOERROR, got SERVFAIL" in outcome.failures[0]
    assert "dnsseal's verdict: bogus" in outcome.failures[0]


def test_fake_sha1_hook_is_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    original = rrsig._public_key
    assert not AlgorithmPolicy().algorithm_supported(3)  # DSA: refused by the real policy
    with monkeypatch.context() as patch:
        harness.install_test_crypto(patch, fake_sha1=True)
        assert rrsig._public_key is not original
    assert rrsig._public_key is original
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "fake_sha1" not in text and "fake-sha1" not in text, path
        assert "FakeSha1Policy" not in text, path


def test_dsa_signatures_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """val_nx's DNSKEY RRset is signed with DSA (DER signature, 512-bit key): the hook
    verifies it, so one changed bit makes the chain bogus; without checks it would not."""
    text = (DATA / "val_nx.rpl").read_text(encoding="utf-8")
    assert text.count("MCwCFG1yhRNtTEa3") == 1  # the RRSIG over the DNSKEY RRset
    bad = text.replace("MCwCFG1yhRNtTEa3", "MCwCFG1yhRNtTEa4")
    good = harness.run(rpl.parse(text, "val_nx.rpl"), monkeypatch)
    assert good.verdicts[0].startswith("secure: NSEC")
    broken = harness.run(rpl.parse(bad, "val_nx.rpl"), monkeypatch)
    assert broken.verdicts[0].startswith("bogus:")
    assert "does not verify" in broken.verdicts[0]
    unchecked = harness.run(rpl.parse(bad, "val_nx.rpl"), monkeypatch, check_dsa=False)
    assert unchecked.verdicts[0].startswith("secure: NSEC")


def test_without_fake_sha1_dsa_chains_are_insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DSA-signed val_positive data without the hook: dnsseal's policy refuses DSA
    (RFC 8624 s3.1), so the anchor's zone is insecure and the answer has no AD."""
    text = (DATA / "val_nx.rpl").read_text(encoding="utf-8").replace("fake-sha1: yes", "")
    outcome = harness.run(rpl.parse(text, "val_nx.rpl"), monkeypatch)
    assert outcome.failures
    assert "insecure" in outcome.failures[0]
    assert "flags: want QR RD RA AD, got QR RD RA" in outcome.failures[0]


SMALL = """server:
	trust-anchor: "example.com. 3600 IN DS 2854 3 1 46e4ffc6e9a4793b488954bd3f0cc6af0dfb201b"
	val-override-date: "20070916134226"
	qname-minimisation: "no"
stub-zone:
	name: "."
	stub-addr: 193.0.14.129	# K.ROOT
CONFIG_END
SCENARIO_BEGIN small
RANGE_BEGIN 0 10
	ADDRESS 193.0.14.129
ENTRY_BEGIN
MATCH opcode subdomain
ADJUST copy_id copy_query
REPLY QR AA NOERROR
SECTION QUESTION
example.com. IN A
SECTION ANSWER
www.example.com. A 10.0.0.1
ENTRY_END
RANGE_END
RANGE_BEGIN 11 20
ENTRY_BEGIN
MATCH opcode qtype qname DO
ADJUST copy_id
REPLY QR NXDOMAIN
SECTION QUESTION
www.example.com. 3600 IN A
ENTRY_END
RANGE_END
STEP 1 QUERY
ENTRY_BEGIN
REPLY RD DO
SECTION QUESTION
www.example.com. IN A
ENTRY_END
STEP 5 TIME_PASSES ELAPSE 30
SCENARIO_END
"""


def test_reader() -> None:
    sc = rpl.parse(SMALL, "small.rpl")
    (server,) = sc.clause("server")
    assert server.get("val-override-date") == ["20070916134226"]
    assert sc.clause("stub-zone")[0].get("stub-addr") == ["193.0.14.129"]
    first, second = sc.ranges
    assert (first.start, first.end, first.addresses) == (0, 10, ("193.0.14.129",))
    assert second.addresses == ()
    entry = first.entries[0]
    assert entry.match == {"opcode", "subdomain"}
    assert entry.adjust == {"copy_id", "copy_query"}
    assert entry.flags == dns.flags.QR | dns.flags.AA
    answer = entry.sections[0][0]
    assert answer.ttl == rpl.DEFAULT_TTL  # testbound's default for records without a TTL
    assert second.entries[0].rcode == dns.rcode.NXDOMAIN
    assert second.entries[0].qname == dns.name.from_text("www.example.com.")
    query, elapse = sc.steps
    assert query.kind == "QUERY" and query.entry is not None and query.entry.do
    assert (elapse.kind, elapse.args) == ("TIME_PASSES", ("ELAPSE", "30"))


def test_reader_errors_name_file_and_line() -> None:
    bad = SMALL.replace("MATCH opcode subdomain", "MATCH opcode sometimes")
    with pytest.raises(rpl.RplError, match=r"small\.rpl:13: unknown MATCH keyword 'sometimes'"):
        rpl.parse(bad, "small.rpl")


def test_replay_transport_answers_per_step_and_address() -> None:
    replay = harness.Replay(rpl.parse(SMALL, "small.rpl"))
    query = dns.message.make_query("www.example.com.", "A", want_dnssec=True)

    def pending(server: str, q: dns.message.Message = query) -> harness.Pending:
        return harness.Pending((server, 53), q, False, asyncio.Future(loop=loop))

    loop = asyncio.new_event_loop()
    try:
        first = pending("193.0.14.129")
        entry = replay.lookup(first, 1)
        assert entry is not None and entry.line == 12
        replay.pending.append(first)
        replay.answer(first, entry, "range")
        reply = dns.message.from_wire(first.reply.result())
        assert reply.id == query.id  # copy_id
        assert reply.question[0].name == dns.name.from_text("www.example.com.")  # copy_query
        assert reply.answer[0][0].address == "10.0.0.1"
        assert replay.lookup(pending("192.0.2.1"), 1) is None  # no range for it at step 1
        later = replay.lookup(pending("192.0.2.1"), 15)  # second range: any address
        assert later is not None and later.rcode == dns.rcode.NXDOMAIN
        no_do = dns.message.make_query("www.example.com.", "A")
        assert replay.lookup(pending("192.0.2.1", no_do), 15) is None  # MATCH DO
    finally:
        loop.close()


def test_unanswered_queries_time_out_without_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolution whose upstream queries no entry answers ends (timeouts), and the
    CHECK_ANSWER step reports the mismatch."""
    text = SMALL.replace("STEP 5 TIME_PASSES ELAPSE 30", STEP_CHECK_NOERROR)
    text = text.replace("193.0.14.129\nENTRY_BEGIN", "192.0.2.99\nENTRY_BEGIN", 1)
    outcome = harness.run(rpl.parse(text, "small.rpl"), monkeypatch)
    assert outcome.checks == 1
    assert "rcode: want NOERROR, got SERVFAIL" in outcome.failures[0]
    assert "-> no entry: timeout" in "\n".join(outcome.log)


STEP_CHECK_NOERROR = """STEP 10 CHECK_ANSWER
ENTRY_BEGIN
MATCH all
REPLY QR RD RA DO NOERROR
SECTION QUESTION
www.example.com. IN A
ENTRY_END"""


def test_unsupported_options_are_reported() -> None:
    text = SMALL.replace('qname-minimisation: "no"', "prefetch-key: yes\n\tprefetch: yes")
    setup = harness.read_setup(rpl.parse(text, "x.rpl"))
    assert any(u.startswith("prefetch-key: yes") for u in setup.unsupported)
    assert any(u.startswith("prefetch: yes") for u in setup.unsupported)
    with pytest.raises(harness.Unsupported, match="prefetch"):
        harness.run(rpl.parse(text, "x.rpl"), pytest.MonkeyPatch())


def test_aggressive_nsec_follows_unbounds_default() -> None:
    """unbound.conf(5): aggressive-nsec "Default is yes"; dnsseal's NSEC synthesis is on
    unless the scenario turns it off."""
    assert harness.read_setup(rpl.parse(SMALL, "x.rpl")).aggressive_nsec
    off = SMALL.replace('qname-minimisation: "no"', "aggressive-nsec: no")
    setup = harness.read_setup(rpl.parse(off, "x.rpl"))
    assert not setup.aggressive_nsec and not setup.unsupported


LATE = """server:
	target-fetch-policy: "0 0 0 0 0"
	qname-minimisation: "no"
stub-zone:
	name: "."
	stub-addr: 193.0.14.129
CONFIG_END
SCENARIO_BEGIN a server that answers only from step 20 on
RANGE_BEGIN {start} 100
	ADDRESS 193.0.14.129
ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA NOERROR
SECTION QUESTION
. IN NS
SECTION ANSWER
. IN NS K.ROOT-SERVERS.NET.
SECTION ADDITIONAL
K.ROOT-SERVERS.NET. IN A 193.0.14.129
ENTRY_END
ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA NOERROR
SECTION QUESTION
www.example. IN A
SECTION ANSWER
www.example. IN A 192.0.2.1
ENTRY_END
RANGE_END
STEP 1 QUERY
ENTRY_BEGIN
REPLY RD
SECTION QUESTION
www.example. IN A
ENTRY_END
STEP 10 NOTHING
STEP 20 NOTHING
STEP 30 CHECK_ANSWER
ENTRY_BEGIN
MATCH all
REPLY QR RD RA NOERROR
SECTION QUESTION
www.example. IN A
SECTION ANSWER
www.example. IN A 192.0.2.1
ENTRY_END
SCENARIO_END
"""


def test_a_query_a_later_range_answers_stays_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in testbound, an upstream query that only a RANGE of a later step answers waits
    for that step (iter_dnsseclame_bug), where one nothing answers times out at once."""
    outcome = harness.run(rpl.parse(LATE.format(start=20), "late.rpl"), monkeypatch)
    assert outcome.failures == [], outcome.failures
    assert any("www.example. A -> range" in line for line in outcome.log), outcome.log
    never = harness.run(rpl.parse(LATE.format(start=200), "never.rpl"), monkeypatch)
    assert never.failures and "rcode: want NOERROR, got SERVFAIL" in never.failures[0]


def test_without_a_root_stub_zone_the_builtin_hints_are_replayed(
    monkeypatch: pytest.MonkeyPatch, network_attempts: list[str]
) -> None:
    """With no stub-zone for '.', Unbound starts from its built-in root hints and so does
    the harness: the root's RANGE (here without its ADDRESS line, so it serves whichever
    root server the resolver picks) answers the real root addresses, and nothing reaches
    the network."""
    text = (DATA / "val_nsec3_b2_nodata.rpl").read_text(encoding="utf-8")
    head, tail = text.split("stub-zone:", 1)
    text = head + tail[tail.index("CONFIG_END") :]
    assert text.count("ADDRESS 193.0.14.129") == 1
    text = text.replace("ADDRESS 193.0.14.129", "")
    scenario = rpl.parse(text, "b2_nodata_hints.rpl")
    setup = harness.read_setup(scenario)
    assert setup.unsupported == []
    assert setup.root_servers == list(builtin_root_servers())
    assert ("193.0.14.129", 53) in setup.root_servers
    outcome = harness.run(scenario, monkeypatch)
    assert outcome.checks > 0
    assert outcome.failures == []
    hints = {addr for addr, _ in builtin_root_servers()}
    assert any(line.split()[0] in hints and "-> range" in line for line in outcome.log)
    assert network_attempts == []


def test_the_network_guard_catches_any_other_transport(network_attempts: list[str]) -> None:
    """The guard every conformance test runs under (conftest.network_attempts) notices a
    resolver that uses the real network transport, although the resolver swallows the
    error as an unanswered query."""
    setup = harness.Setup(root_servers=list(builtin_root_servers()))
    resolver = Resolver(harness.build_config(setup), clock_fn=lambda: 1_700_000_000)
    result = asyncio.run(resolver.resolve("example.com.", "A"))
    assert result.rcode == dns.rcode.SERVFAIL
    assert network_attempts, "the guard let a real socket through"
    assert any("socket.socket" in a for a in network_attempts)
    network_attempts.clear()  # seen: do not fail this test's teardown
