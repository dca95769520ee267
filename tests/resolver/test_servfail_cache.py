"""servfail-ttl (BIND's option): a client question's SERVFAIL is answered again from the
failure cache for that many seconds, so a client repeating a question for a broken zone does
not make upstream traffic every time (RFC 9520 s3: resolvers MUST cache resolution failures,
for at least 1 s).  Keyed on the CD bit as BIND's: a CD=1 question is answered only a failure
of a CD=1 question.

The transport is injected and counts every upstream query; the clock is fake.  The root is a
stub zone (no priming), so every query goes to the servers of the test.
"""

from __future__ import annotations

import asyncio

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from dnsseal.errors import OptionError
from dnsseal.resolver import metrics as resolver_metrics
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.service import ResolverService
from dnsseal.resolver.settings import ResolverSettings, parse_settings
from dnsseal.storage import options
from dnsseal.validator.anchors import AnchorSet
from dnsseal.validator.iterator import Config
from dnsseal.validator.verdict import EDE_NO_REACHABLE_AUTHORITY, EDE_OTHER

START = 1_800_000_000
BROKEN = ("127.0.0.10", 53)  # answers SERVFAIL to everything
SILENT = ("127.0.0.11", 53)  # never answers (each send costs 2 s of the fake clock)
LOOPY = ("127.0.0.12", 53)  # a.loop. CNAME b.loop., b.loop. CNAME a.loop.


class Net:
    """The upstream servers above, with a count of the queries each got."""

    def __init__(self) -> None:
        self.now = START
        self.sends: list[tuple[tuple[str, int], str]] = []
        self.repaired = False  # BROKEN answers: www.broken. A 192.0.2.1

    def clock(self) -> int:
        return self.now

    async def __call__(self, server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        self.sends.append((server, q.name.to_text()))
        reply = dns.message.make_response(query)
        reply.flags &= ~dns.flags.RA
        if server == SILENT:
            self.now += 2
            raise TimeoutError
        if server == LOOPY:
            reply.flags |= dns.flags.AA
            target = "b.loop." if q.name.to_text() == "a.loop." else "a.loop."
            reply.answer.append(dns.rrset.from_text(q.name, 300, "IN", "CNAME", target))
        elif self.repaired:
            reply.flags |= dns.flags.AA
            reply.answer.append(dns.rrset.from_text(q.name, 300, "IN", "A", "192.0.2.1"))
        else:
            reply.set_rcode(dns.rcode.SERVFAIL)
        return reply.to_wire()


def _service(net: Net, server: tuple[str, int] = BROKEN, **config: object) -> ResolverService:
    conf = Config(
        root_servers=(server,),
        anchors=AnchorSet(),
        minimise=False,
        stubs=((dns.name.root, (server,)),),
        **config,  # type: ignore[arg-type]
    )
    return ResolverService(Resolver(conf, transport=net, clock_fn=net.clock))


def _ask(
    service: ResolverService, name: str = "www.broken.", cd: bool = False
) -> dns.message.Message:
    query = dns.message.make_query(name, "A", use_edns=0)
    if cd:
        query.flags |= dns.flags.CD
    wire = asyncio.run(service.handle(query.to_wire(), False))
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id
    return reply


def _ede(reply: dns.message.Message) -> list[tuple[int, str | None]]:
    return [(o.code, o.text) for o in reply.options if isinstance(o, dns.edns.EDEOption)]


def test_a_question_repeated_within_the_ttl_is_sent_upstream_once() -> None:
    net = Net()
    service = _service(net)
    first = _ask(service)
    assert first.rcode() == dns.rcode.SERVFAIL
    assert _ede(first)[0][0] == EDE_NO_REACHABLE_AUTHORITY
    once = len(net.sends)
    assert once >= 1
    for _ in range(9):  # the same second, then the next (default servfail-ttl 1 s)
        again = _ask(service)
        assert again.rcode() == dns.rcode.SERVFAIL
        assert _ede(again) == _ede(first)  # the EDE kept, nothing added
        assert again.flags == first.flags
    net.now += 1
    assert _ask(service).rcode() == dns.rcode.SERVFAIL
    assert len(net.sends) == once
    net.now += 1  # past the failure's second plus the TTL: asked again, once
    assert _ask(service).rcode() == dns.rcode.SERVFAIL
    assert len(net.sends) == 2 * once
    _ask(service)
    assert len(net.sends) == 2 * once


def test_servfail_ttl_0_caches_nothing() -> None:
    net = Net()
    service = _service(net, servfail_ttl=0)
    _ask(service)
    once = len(net.sends)
    for _ in range(4):
        assert _ask(service).rcode() == dns.rcode.SERVFAIL
    assert len(net.sends) == 5 * once


def test_a_longer_ttl_holds_for_its_seconds() -> None:
    net = Net()
    service = _service(net, servfail_ttl=30)
    _ask(service)
    once = len(net.sends)
    net.now += 30
    _ask(service)
    assert len(net.sends) == once
    net.now += 1
    _ask(service)
    assert len(net.sends) == 2 * once


def test_other_questions_are_not_answered_by_a_failure() -> None:
    net = Net()
    service = _service(net)
    _ask(service)
    once = len(net.sends)
    _ask(service, "other.broken.")
    assert len(net.sends) == 2 * once


def test_a_cd_question_is_not_answered_a_failure_of_a_question_without_cd() -> None:
    # BIND's SERVFAIL cache: a CD=1 question is answered only a failure of a CD=1 question;
    # a CD=0 question any failure.
    net = Net()
    service = _service(net)
    _ask(service)
    once = len(net.sends)
    reply = _ask(service, cd=True)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert reply.flags & dns.flags.CD
    assert len(net.sends) == 2 * once  # resolved again
    _ask(service, cd=True)  # now a CD=1 failure is kept: it answers both
    _ask(service)
    assert len(net.sends) == 2 * once


def test_a_failure_judged_bogus_is_kept_and_a_cd_question_bypasses_it() -> None:
    # A CNAME loop: SERVFAIL, verdict bogus, EDE 0 (Other).
    net = Net()
    service = _service(net, LOOPY)
    first = _ask(service, "a.loop.")
    assert first.rcode() == dns.rcode.SERVFAIL
    assert [code for code, _ in _ede(first)] == [EDE_OTHER]
    assert "loop" in (_ede(first)[0][1] or "")
    once = len(net.sends)
    assert once >= 2
    again = _ask(service, "a.loop.")
    assert _ede(again) == _ede(first)
    assert len(net.sends) == once
    _ask(service, "a.loop.", cd=True)
    assert len(net.sends) == 2 * once
    # After the TTL, every reply it used is fetched again: a bogus resolution's replies are
    # dropped (RFC 4035 s4.7; they may be forged), not kept for their own TTL (300 s).
    net.now += 2
    assert _ede(_ask(service, "a.loop.")) == _ede(first)
    assert len(net.sends) == 3 * once


def test_the_deadline_s_failure_is_kept_too() -> None:
    net = Net()
    service = _service(net, SILENT, query_timeout=10.0)
    first = _ask(service)
    assert first.rcode() == dns.rcode.SERVFAIL
    assert _ede(first)[0][0] == EDE_NO_REACHABLE_AUTHORITY
    assert "resolver-query-timeout" in (_ede(first)[0][1] or "")
    sends, now = len(net.sends), net.now
    again = _ask(service)
    assert _ede(again) == _ede(first)
    assert (len(net.sends), net.now) == (sends, now)  # no send, no wait


def test_an_answer_drops_the_failure() -> None:
    # A CD=1 question bypasses a CD=0 failure; when the zone answers by then, the failure
    # goes and a CD=0 question gets the answer too.
    net = Net()
    service = _service(net)
    assert _ask(service).rcode() == dns.rcode.SERVFAIL
    net.repaired = True
    assert _ask(service).rcode() == dns.rcode.SERVFAIL  # still kept
    fixed = _ask(service, cd=True)
    assert fixed.rcode() == dns.rcode.NOERROR and fixed.answer
    assert not service.resolver.failures.get((dns.name.from_text("www.broken."), 1), net.now)
    reply = _ask(service)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer


def test_the_option_defaults_to_bind_s_and_reaches_the_config() -> None:
    row = options.option("resolver", "servfail-ttl")
    assert row.default == ResolverSettings().servfail_ttl == 1
    assert Config(root_servers=(), anchors=AnchorSet()).servfail_ttl == row.default
    assert (row.low, row.high) == (0, 30)
    assert parse_settings("[resolver]\nservfail-ttl = 0\n", "r.toml").servfail_ttl == 0
    assert parse_settings("[resolver]\nservfail-ttl = 30\n", "r.toml").servfail_ttl == 30


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("31", "integer 31"),  # BIND silently lowers it to 30; not here
        ("-1", "integer -1"),
        ('"1s"', "string '1s'"),
        ("1.5", "number 1.5"),
        ("true", "boolean true"),
    ],
)
def test_a_value_out_of_bind_s_range_is_one_line_naming_the_option(value: str, got: str) -> None:
    with pytest.raises(OptionError) as e:
        parse_settings(f"[resolver]\nservfail-ttl = {value}\n", "r.toml")
    assert str(e.value) == f"resolver.servfail-ttl: expected an integer in 0..30, got {got}"


# Back-off (RFC 9520 s3.2: "Resolvers SHOULD employ an exponential or linear backoff
# algorithm to increase the cache duration for persistent resolution failures"; never over
# 5 minutes).  A client asks the question once a second; the sends show when it was resolved.


def _resolved_at(net: Net, service: ResolverService, seconds: int) -> list[int]:
    """The seconds (from START) at which a question asked once a second for ``seconds``
    seconds was sent upstream."""
    resolved = []
    for _ in range(seconds):
        before = len(net.sends)
        assert _ask(service).rcode() == dns.rcode.SERVFAIL
        if len(net.sends) > before:
            resolved.append(net.now - START)
        net.now += 1
    return resolved


def test_a_persistent_failure_is_kept_twice_as_long_each_time_up_to_30_s() -> None:
    net = Net()
    service = _service(net)
    # Kept 1, 2, 4, 8, 16, 30, 30 s; each counted from its second, so one more.
    assert _resolved_at(net, service, 100) == [0, 2, 5, 10, 19, 36, 67, 98]
    assert service.resolver.failure_answers == 100 - 8


def test_a_longer_servfail_ttl_is_the_first_time_and_still_capped_at_30_s() -> None:
    net = Net()
    service = _service(net, servfail_ttl=10)
    assert _resolved_at(net, service, 80) == [0, 11, 32, 63]


def test_servfail_ttl_0_keeps_nothing_so_nothing_backs_off() -> None:
    net = Net()
    service = _service(net, servfail_ttl=0)
    assert _resolved_at(net, service, 10) == list(range(10))
    assert service.resolver.failure_answers == 0
    assert len(service.resolver.failures) == 0


def test_an_answer_ends_the_back_off() -> None:
    net = Net()
    service = _service(net)
    assert _resolved_at(net, service, 10) == [0, 2, 5]  # held 4 s from 5
    net.now += 10
    net.repaired = True
    assert _ask(service).rcode() == dns.rcode.NOERROR
    net.repaired = False
    name = dns.name.from_text("www.broken.")
    service.resolver.results.drop((name, 1))  # the answer's TTL has run out
    start = net.now - START
    assert [t - start for t in _resolved_at(net, service, 6)] == [0, 2, 5]


def test_a_failure_forgotten_for_30_s_starts_again_at_servfail_ttl() -> None:
    net = Net()
    service = _service(net)
    assert _resolved_at(net, service, 3) == [0, 2]  # the second is kept 2 s, until 5
    net.now = START + 5 + 30  # 30 s after its time: forgotten
    start = net.now - START
    assert [t - start for t in _resolved_at(net, service, 3)] == [0, 2]
    assert _resolved_at(net, service, 5)[0] - start == 5  # then 2 s again: remembered


def test_the_metrics_show_the_failure_cache() -> None:
    net = Net()
    service = _service(net)
    _resolved_at(net, service, 4)  # resolved at 0 and 2, answered from the cache twice
    _ask(service, "other.broken.")
    text = resolver_metrics.render(service)
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("dnsseal_resolver_servfail_cache")
    }
    assert samples == {
        "dnsseal_resolver_servfail_cache_answers_total": 2,
        "dnsseal_resolver_servfail_cache_entries": 2,
    }
    assert "# TYPE dnsseal_resolver_servfail_cache_answers_total counter" in text
    assert "# TYPE dnsseal_resolver_servfail_cache_entries gauge" in text
