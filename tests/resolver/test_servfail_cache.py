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
