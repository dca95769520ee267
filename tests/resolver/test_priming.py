"""Root priming (RFC 8109): before the first iteration from the root, ``. NS`` to a hint.

The injected-transport tests pin down what dnsseal does with the priming reply (its NS RRset
and the addresses for those names only, until the NS TTL runs out; the hints when priming
fails; no priming for a stub or forward zone of the root).  The interop test is the outside
truth: a real Unbound, given the same local root as its hint, also sends ``. NS`` with DO
first, and so does dnsseal over the network.

A service primes when it starts (``Resolver.prime``, RFC 9609 s3: a resolver that starts
with an empty cache primes; Knot Resolver and PowerDNS Recursor prime at start, Unbound at
its first question, so there is no installed oracle for the moment itself): the process
test starts a real ``dnsseal resolver`` and sees ``. NS`` arrive before any question.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from conftest import free_port, require_tool, stop
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.transport import Transport, network_transport
from dnsseal.resolver.trustmaint import TrustMaintainer
from dnsseal.validator import verdict as v
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.iterator import PRIME_RETRY
from dnsseal.validator.machine import Config

from .authority import Authority, config_for, memory_transport
from .zonebuild import NOW, make_key, sign_zone

HINT = ("192.0.2.53", 53)  # never reached: the injected transport answers for it
PRIMED = "127.0.0.1"  # where the authority's zones are served
Asked = list[tuple[str, str, str, bool]]  # (server, qname, qtype, DO)


def _priming_reply(wire: bytes, ttl: int) -> bytes:
    """What the hint says to ``. NS``: one root server name with its address, and an address
    for a name that is not in the NS RRset (not to be used: RFC 8109 s4 takes addresses for
    the NS names only)."""
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.answer.append(dns.rrset.from_text(".", ttl, "IN", "NS", "a.root-servers.test."))
    r.additional.append(dns.rrset.from_text("a.root-servers.test.", ttl, "IN", "A", PRIMED))
    r.additional.append(dns.rrset.from_text("evil.test.", ttl, "IN", "A", "192.0.2.66"))
    return r.to_wire()


def _hinted(authority: Authority, asked: Asked, ttl: int = 3600, answers: bool = True):  # type: ignore[no-untyped-def]
    """A transport: the hint answers only the priming question (REFUSED otherwise, or not
    at all when ``answers`` is false); 127.0.0.1 is the authority."""
    inner = memory_transport(authority)

    async def transport(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        question = q.question[0]
        do = bool(q.ednsflags & dns.flags.DO)
        asked.append(
            (server[0], question.name.to_text(), dns.rdatatype.to_text(question.rdtype), do)
        )
        if server[0] == PRIMED:
            return await inner(server, wire, tcp)
        if server != HINT or not answers:
            raise TimeoutError("no answer")
        if question.name == dns.name.root and question.rdtype == dns.rdatatype.NS:
            await asyncio.sleep(0.01)  # a round trip: other resolutions run meanwhile
            return _priming_reply(wire, ttl)
        refused = dns.message.make_response(q)
        refused.set_rcode(dns.rcode.REFUSED)
        return refused.to_wire()

    return transport


def _config(authority: Authority) -> Config:
    return dataclasses.replace(config_for(authority), root_servers=(HINT,))


def test_the_first_question_primes_the_root_and_the_ns_ttl_bounds_it(
    authority: Authority,
) -> None:
    """``. NS`` with DO to the hint first; every later question goes to the server the
    priming reply names (never to the address given for a name outside its NS RRset); a
    second resolution does not prime again; once the NS TTL has run out, it does."""
    asked: Asked = []
    now = [NOW]
    res = Resolver(_config(authority), _hinted(authority, asked), lambda: now[0])
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, v.Security.SECURE), r.verdict
    assert asked[0] == (HINT[0], ".", "NS", True)
    assert {a[0] for a in asked[1:]} == {PRIMED}
    asked.clear()
    asyncio.run(res.resolve("ns1.a.example.", "A"))
    assert asked and (HINT[0], ".", "NS", True) not in asked
    asked.clear()
    now[0] += 3600
    asyncio.run(res.resolve("nope.", "A"))
    assert asked[0] == (HINT[0], ".", "NS", True)


def test_a_failed_priming_falls_back_to_the_hints(authority: Authority) -> None:
    """No priming reply: the hints are the root's servers (here the authority itself), and
    priming is tried again only after PRIME_RETRY seconds."""
    asked: Asked = []
    now = [NOW]
    config = dataclasses.replace(config_for(authority), root_servers=(("127.0.0.9", 53), HINT))
    res = Resolver(config, _hinted(authority, asked, answers=False), lambda: now[0])
    r = asyncio.run(res.resolve("nope.", "A"))
    assert r.rcode == dns.rcode.SERVFAIL  # neither hint answers anything
    assert asked[:2] == [("127.0.0.9", ".", "NS", True), (HINT[0], ".", "NS", True)]
    # The authority as the only hint, silent to the prime: no second prime for a while.
    asked.clear()
    inner = memory_transport(authority)
    primes = [0]

    refuse_prime = _refusing_prime(inner, primes)

    res = Resolver(config_for(authority), refuse_prime, lambda: now[0])
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert r.verdict.security is v.Security.SECURE, r.verdict
    asyncio.run(res.resolve("nope1.", "A"))
    assert primes[0] == 1
    now[0] += PRIME_RETRY
    asyncio.run(res.resolve("nope2.", "A"))
    assert primes[0] == 2


def test_stub_and_forward_zones_for_the_root_are_not_primed(authority: Authority) -> None:
    asked: Asked = []
    root = dns.name.root
    for zones in ({"stubs": ((root, ((PRIMED, 53),)),)}, {"forwards": ((root, (HINT,)),)}):
        asked.clear()
        config = dataclasses.replace(_config(authority), **zones)  # type: ignore[arg-type]
        asyncio.run(Resolver(config, _hinted(authority, asked), lambda: NOW).resolve("x.", "A"))
        assert asked and all(a[1:3] != (".", "NS") for a in asked), asked


# --- Unbound as the oracle ----------------------------------------------------------------


def _refusing_prime(inner: Transport, primes: list[int]) -> Transport:
    """``inner``, except that a priming query (``. NS``) gets SERVFAIL and is counted in
    ``primes[0]``."""

    async def refuse_prime(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        if q.question[0].name == dns.name.root and q.question[0].rdtype == dns.rdatatype.NS:
            primes[0] += 1
            out = dns.message.make_response(q)
            out.set_rcode(dns.rcode.SERVFAIL)
            return out.to_wire()
        return await inner(server, wire, tcp)

    return refuse_prime


def _recording(
    auth: Authority,
) -> tuple[Any, list[tuple[str, str, bool]], threading.Lock]:
    """A UDP/TCP server for ``auth`` that records each question it is asked (name, type,
    DO) in the list returned with it, in arrival order, under the lock returned too."""
    from .test_failopen_unbound import _Served

    seen: list[tuple[str, str, bool]] = []
    lock = threading.Lock()
    server = _Served(auth, None)
    plain = server.reply

    def recording(wire: bytes, tcp: bool) -> bytes | None:
        q = dns.message.from_wire(wire)
        with lock:
            seen.append(
                (
                    q.question[0].name.to_text(),
                    dns.rdatatype.to_text(q.question[0].rdtype),
                    bool(q.ednsflags & dns.flags.DO),
                )
            )
        return plain(wire, tcp)

    server.reply = recording  # type: ignore[method-assign]
    return server, seen, lock


@pytest.mark.interop
@pytest.mark.slow
def test_unbound_and_dnsseal_both_prime_the_root_first(tmp_path: Path) -> None:
    """A real Unbound with the served root as its only hint (a stub-zone for '.', which
    Unbound primes like root-hints: its own testbound scenarios script exactly that) asks
    ``. NS`` with DO before anything else; dnsseal's resolver, over the network to the same
    server, too."""
    from .test_failopen_unbound import _hierarchy, _unbound

    auth, _ = _hierarchy()()
    server, seen, _lock = _recording(auth)
    try:
        only_root = Authority([auth.zones[dns.name.root]])  # Unbound's hint: '.' only
        proc, port = _unbound(tmp_path, only_root, server.port)
        try:
            dns.query.udp(
                dns.message.make_query("www.example.", "A"), "127.0.0.1", port=port, timeout=10
            )
        finally:
            stop(proc)
        assert seen and seen[0] == (".", "NS", True), seen[:5]
        seen.clear()
        config = dataclasses.replace(
            config_for(auth), root_servers=(("127.0.0.1", server.port),), port=server.port
        )
        res = Resolver(config, network_transport(2.0))
        asyncio.run(res.resolve("www.example.", "A"))
        assert seen and seen[0] == (".", "NS", True), seen[:5]
    finally:
        server.close()


def test_concurrent_resolutions_send_one_priming_query(authority: Authority) -> None:
    """Queries that start while the priming query is out do not prime again (they use the
    hints meanwhile): one ``. NS`` for a burst of cold questions."""
    asked: Asked = []
    res = Resolver(_config(authority), _hinted(authority, asked), lambda: NOW)

    async def burst() -> list[int]:
        names = [f"n{i}.a.example." for i in range(5)]
        results = await asyncio.gather(*(res.resolve(n, "A") for n in names))
        return [r.rcode for r in results]

    asyncio.run(burst())
    assert [a[1:3] for a in asked].count((".", "NS")) == 1, asked


# --- priming when the service starts ------------------------------------------------------


def test_priming_at_start_leaves_the_hints_alone_afterwards(authority: Authority) -> None:
    """``prime()`` sends the one ``. NS`` to the hint, then (the root has a trust anchor)
    ``. DNSKEY`` to the primed server; the first question then goes to the primed server
    only, does not prime again and asks no ``. DNSKEY``."""
    asked: Asked = []
    res = Resolver(_config(authority), _hinted(authority, asked), lambda: NOW)

    async def go() -> v.Security:
        await res.prime()
        assert asked == [(HINT[0], ".", "NS", True), (PRIMED, ".", "DNSKEY", True)]
        asked.clear()
        return (await res.resolve("www.a.example.", "A")).verdict.security

    assert asyncio.run(go()) is v.Security.SECURE
    assert asked and {a[0] for a in asked} == {PRIMED}, asked
    assert (".", "DNSKEY") not in [a[1:3] for a in asked], asked


def test_a_question_during_priming_waits_for_it(authority: Authority) -> None:
    """Questions that arrive while the start-up priming query is out wait for its reply
    (one ``. NS`` in all) and then go to the primed server, not to the hints (which
    refuse everything but the priming question here)."""
    asked: Asked = []
    res = Resolver(_config(authority), _hinted(authority, asked), lambda: NOW)

    async def go() -> list[v.Security]:
        res.prime()
        await asyncio.sleep(0)  # the priming query is out (the hint answers in 10 ms)
        assert asked == [(HINT[0], ".", "NS", True)]
        names = ("www.a.example.", "ns1.a.example.")
        results = await asyncio.gather(*(res.resolve(n, "A") for n in names))
        return [r.verdict.security for r in results]

    assert asyncio.run(go()) == [v.Security.SECURE, v.Security.SECURE]
    assert [a[1:3] for a in asked].count((".", "NS")) == 1, asked
    assert {a[0] for a in asked[1:]} == {PRIMED}, asked


def test_a_failed_priming_at_start_leaves_the_hints_for_prime_retry(
    authority: Authority,
) -> None:
    """The hint fails the start-up priming (SERVFAIL): questions use the hints (here the
    authority itself) without priming again until PRIME_RETRY seconds have passed."""
    inner = memory_transport(authority)
    primes = [0]
    now = [NOW]

    refuse_prime = _refusing_prime(inner, primes)

    res = Resolver(config_for(authority), refuse_prime, lambda: now[0])

    async def go() -> v.Security:
        await res.prime()
        assert primes[0] == 1
        return (await res.resolve("www.a.example.", "A")).verdict.security

    assert asyncio.run(go()) is v.Security.SECURE
    now[0] += PRIME_RETRY - 1
    asyncio.run(res.resolve("nope.", "A"))
    assert primes[0] == 1
    now[0] += 1
    asyncio.run(res.resolve("nope2.", "A"))
    assert primes[0] == 2


def test_a_question_during_the_root_key_fetch_waits_for_it(authority: Authority) -> None:
    """A question that arrives while the start-up's ``. DNSKEY`` is out waits for it and
    sends no ``. DNSKEY`` of its own: one in all, and the answer is secure."""
    asked: Asked = []
    inner = _hinted(authority, asked)

    async def slow_keys(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire).question[0]
        if q.rdtype == dns.rdatatype.DNSKEY and q.name == dns.name.root:
            await asyncio.sleep(0.05)
        return await inner(server, wire, tcp)

    res = Resolver(_config(authority), slow_keys, lambda: NOW)

    async def go() -> v.Security:
        priming = res.prime()
        while (PRIMED, ".", "DNSKEY", True) not in asked:
            assert not priming.done(), asked  # the start-up ended without asking it
            await asyncio.sleep(0.001)
        return (await res.resolve("www.a.example.", "A")).verdict.security

    assert asyncio.run(go()) is v.Security.SECURE
    assert [a[1:3] for a in asked].count((".", "DNSKEY")) == 1, asked
    assert [a[1:3] for a in asked].count((".", "NS")) == 1, asked


def test_without_a_root_anchor_the_start_fetches_no_root_keys(authority: Authority) -> None:
    """No trust anchor for the root (here: a negative one over it, RFC 7646): the start-up
    is the priming query alone."""
    asked: Asked = []
    config = _config(authority)
    config = dataclasses.replace(
        config, anchors=config.anchors.with_negative(dns.name.root, NOW + 60)
    )
    res = Resolver(config, _hinted(authority, asked), lambda: NOW)

    async def go() -> None:
        await res.prime()

    asyncio.run(go())
    assert asked == [(HINT[0], ".", "NS", True)]


def test_the_root_keys_fetched_at_start_are_the_cached_validated_result(
    authority: Authority,
) -> None:
    """The start-up's ``. DNSKEY`` is validated and cached: a question for it afterwards
    (what the RFC 5011 maintainer's first refresh asks, after :meth:`Resolver.started`) is
    answered secure without a query."""
    asked: Asked = []
    res = Resolver(_config(authority), _hinted(authority, asked), lambda: NOW)

    async def go() -> v.Security:
        res.prime()
        await res.started()
        asked.clear()
        return (await res.resolve(".", "DNSKEY")).verdict.security

    assert asyncio.run(go()) is v.Security.SECURE
    assert asked == []


def test_the_start_up_is_bounded_by_the_query_timeout(authority: Authority) -> None:
    """The hint takes a second to answer the priming query, and the root's servers never
    answer ``. DNSKEY`` (each try costs a second): the whole start-up (which questions
    wait for) ends at resolver-query-timeout (2 s) from its start, not from the priming's
    end."""
    inner = _hinted(authority, [])
    config = dataclasses.replace(_config(authority), query_timeout=2)
    clock = [NOW]

    async def slow(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire).question[0]
        await asyncio.sleep(0.05)
        clock[0] += 1
        if q.rdtype == dns.rdatatype.DNSKEY:
            raise TimeoutError
        return await inner(server, wire, tcp)

    res = Resolver(config, slow, lambda: clock[0])

    async def go() -> None:
        await asyncio.wait_for(res.prime(), 5)

    asyncio.run(go())
    assert clock[0] == NOW + 2  # the priming query and one try of . DNSKEY


def test_the_first_refresh_shares_the_start_up_root_key_fetch() -> None:
    """As the service starts them (``prime()``, then the maintainer): the start-up fetches
    and validates ``. DNSKEY`` once, and the maintainer's first refresh (due at once for an
    ``initial-key``) uses that result: one ``. DNSKEY`` query in all, and the new key is
    still seen."""
    k1, k2 = make_key(), make_key()
    root = sign_zone(
        "@ 3600 SOA ns.root. h 1 3600 300 3600000 3600\n@ NS ns.root.\nns.root. A 127.0.0.1\n",
        ".",
        keys=[k1],
        extra_dnskeys=[k2.dnskey],
        expiration=NOW + 120 * 86400,
    )
    inner = memory_transport(Authority([root]))
    asked: list[int] = []

    async def counting(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        asked.append(dns.message.from_wire(wire).question[0].rdtype)
        return await inner(server, wire, tcp)

    static = AnchorSet((TrustAnchor(dns.name.root, keys=(k1.dnskey,), managed=True),))
    resolver = Resolver(Config((("127.0.0.1", 53),), static), counting, lambda: NOW)

    async def go() -> list[str]:
        resolver.prime()
        tm = TrustMaintainer(resolver, static, None, lambda: NOW)
        return await tm.refresh_due()

    events = asyncio.run(go())
    assert any("new key" in e for e in events), events
    assert asked.count(dns.rdatatype.DNSKEY) == 1, asked
    assert asked.count(dns.rdatatype.NS) == 1, asked


@pytest.mark.slow
def test_a_started_resolver_primes_before_any_question(tmp_path: Path) -> None:
    """A real ``dnsseal resolver`` process, its root hint a local server: ``. NS`` with DO
    arrives there before any client question, then ``. DNSKEY`` (the root has a trust
    anchor), and nothing else; the first question then needs no second priming query, no
    second ``. DNSKEY``, and is answered with AD."""
    from .test_failopen_unbound import _hierarchy, _root_ds

    auth, _ = _hierarchy()()
    server, seen, lock = _recording(auth)
    tag, alg, digest_type, digest = _root_ds(auth).split()
    anchors = tmp_path / "anchors.conf"
    anchors.write_text(f'trust-anchors {{ . static-ds {tag} {alg} {digest_type} "{digest}"; }};\n')
    hints = tmp_path / "root.hints"
    hints.write_text(". 3600000 NS a.root.\na.root. 3600000 A 127.0.0.1\n")
    port = free_port()
    args = [sys.executable, "-m", "dnsseal.cli.main", "resolver", "--port", str(port)]
    args += ["-a", str(anchors), "--root-hints", str(hints), "--upstream-port", str(server.port)]
    log = tmp_path / "resolver.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 30
            while not seen and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(0.2)  # anything else it would send unasked has gone out by now
            with lock:
                assert seen == [(".", "NS", True), (".", "DNSKEY", True)], (
                    seen,
                    log.read_text()[-2000:],
                )
            reply = dns.query.udp(
                dns.message.make_query("www.a.example.", "A", want_dnssec=True),
                "127.0.0.1",
                port=port,
                timeout=10,
            )
            assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD, reply
            with lock:
                assert [q[:2] for q in seen].count((".", "NS")) == 1, seen
                assert [q[:2] for q in seen].count((".", "DNSKEY")) == 1, seen
        finally:
            stop(proc)
    finally:
        server.close()


def _named_tree(d: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    """A signed root and a signed ``test.`` (dnssec-keygen/dnssec-signzone) on one named
    with its query log on; returns the process, its port and the root KSK's DS."""
    from .bindtree import _ds, _keygen, _sign, _zone_text, wait_for

    src = d / "test.zone"
    src.write_text(_zone_text("test.", "ns A 127.0.0.1\nwww A 192.0.2.1\n"))
    ksk = _keygen(d, "test.", True)
    _keygen(d, "test.", False)
    files = {"test.": _sign(d, "test.", src, nsec3=False)}
    test_ds = " ".join(_ds(d, ksk).split()[-4:])
    src = d / "root.zone"
    src.write_text(
        "$ORIGIN .\n$TTL 300\n. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n"
        f". NS ns.test.\nns.test. A 127.0.0.1\ntest. NS ns.test.\ntest. 300 IN DS {test_ds}\n"
    )
    ksk = _keygen(d, ".", True)
    _keygen(d, ".", False)
    files["."] = _sign(d, ".", src, nsec3=False)
    port = free_port()
    zones = "".join(f'zone "{z}" {{ type primary; file "{p}"; }};\n' for z, p in files.items())
    conf = d / "named.conf"
    conf.write_text(
        f'options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; '
        f'listen-on-v6 {{ none; }}; pid-file "{d}/named.pid"; recursion no; '
        "dnssec-validation no; notify no; querylog yes; };\ncontrols { };\n" + zones
    )
    log = d / "named.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [require_tool("named"), "-g", "-c", str(conf)], stdout=out, stderr=out
        )
    wait_for(port, proc, log)
    return proc, port, " ".join(_ds(d, ksk).split()[-4:])


def _queries(log: Path) -> list[str]:
    """``name type`` of each query named logged, with ``D`` when it had the DO bit."""
    out = []
    for line in log.read_text().splitlines():
        if " query: " not in line:
            continue
        name, _, rdtype, flags = line.split(" query: ", 1)[1].split()[:4]
        out.append(f"{name} {rdtype}" + (" D" if "D" in flags else ""))
    return out


@pytest.mark.interop
@pytest.mark.slow
def test_a_started_resolver_asks_named_for_the_root_keys_before_any_question(
    tmp_path: Path,
) -> None:
    """A real ``dnsseal resolver`` process, its root hint a real named serving a signed
    root (named's query log is the record): ``. NS`` then ``. DNSKEY``, both with DO,
    arrive before any client question, and nothing else; the first question (answered
    with AD) then asks no ``. NS`` and no ``. DNSKEY`` again."""
    proc_named, named_port, root_ds = _named_tree(tmp_path)
    try:
        tag, alg, digest_type, digest = root_ds.split()
        anchors = tmp_path / "anchors.conf"
        anchors.write_text(
            f'trust-anchors {{ . static-ds {tag} {alg} {digest_type} "{digest}"; }};\n'
        )
        hints = tmp_path / "root.hints"
        hints.write_text(". 3600000 NS a.root.\na.root. 3600000 A 127.0.0.1\n")
        named_log = tmp_path / "named.log"
        before = len(_queries(named_log))  # wait_for's own test. SOA
        port = free_port()
        args = [sys.executable, "-m", "dnsseal.cli.main", "resolver", "--port", str(port)]
        args += ["-a", str(anchors), "--root-hints", str(hints)]
        args += ["--upstream-port", str(named_port)]
        log = tmp_path / "resolver.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 30
            while len(_queries(named_log)) < before + 2 and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()[-2000:]
                time.sleep(0.02)
            time.sleep(0.3)  # anything else it would send unasked has gone out by now
            assert _queries(named_log)[before:] == [". NS D", ". DNSKEY D"], (
                _queries(named_log),
                log.read_text()[-2000:],
            )
            reply = dns.query.udp(
                dns.message.make_query("www.test.", "A", want_dnssec=True),
                "127.0.0.1",
                port=port,
                timeout=10,
            )
            assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD, reply
            time.sleep(0.2)  # named writes its log lines as it answers; let it catch up
            after = _queries(named_log)[before + 2 :]
            assert after and not {". NS D", ". DNSKEY D"} & set(after), after
        finally:
            stop(proc)
    finally:
        stop(proc_named)
