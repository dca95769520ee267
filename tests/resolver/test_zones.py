"""Stub and forward zones (Unbound's stub-zone / forward-zone) and the ``[resolver]``
config section that sets them: in memory first, then with named and Unbound on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns
from dnsseal.errors import FileFormatError, OptionError
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.settings import parse_settings
from dnsseal.resolver.transport import Transport
from dnsseal.validator import verdict as v

from .authority import Authority, config_for
from .zonebuild import NOW

S = v.Security
N = dns.name.from_text
STUB = ("127.0.0.2", 53)
FORWARDER = ("127.0.0.3", 53)
DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]


def logging_transport(auth: Authority, log: list[tuple[tuple[str, int], str, bool]]) -> Transport:
    """The in-memory authority (it holds every zone, so it also serves as a recursive
    forwarder), logging (server, question, RD) of each query."""

    async def exchange(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        name, rdtype = q.question[0].name, q.question[0].rdtype
        log.append(
            (server, f"{name} {dns.rdatatype.to_text(rdtype)}", bool(q.flags & dns.flags.RD))
        )
        r = auth.answer(name, rdtype)
        r.id = q.id
        if q.flags & dns.flags.RD:
            r.flags |= dns.flags.RD | dns.flags.RA
        return r.to_wire(max_size=65535)

    return exchange


def test_a_stub_zone_is_iterated_from_its_own_servers(authority: Authority) -> None:
    log: list[tuple[tuple[str, int], str, bool]] = []
    config = dataclasses.replace(config_for(authority), stubs=((N("a.example."), (STUB,)),))
    res = Resolver(config, logging_transport(authority, log), lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    asked = {q: s for s, q, _ in log}
    assert asked["www.a.example. A"] == STUB and asked["a.example. DNSKEY"] == STUB
    assert asked["a.example. DS"] != STUB  # the DS comes from the parent, as always
    assert all(not rd for _, _, rd in log)


def test_a_forward_zone_sends_questions_with_rd_to_the_forwarder(authority: Authority) -> None:
    log: list[tuple[tuple[str, int], str, bool]] = []
    config = dataclasses.replace(config_for(authority), forwards=((N("example."), (FORWARDER,)),))
    res = Resolver(config, logging_transport(authority, log), lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
    below = [(s, q, rd) for s, q, rd in log if q.split()[0].endswith("example.")]
    # Except the DS of the forward zone's apex, which lives in the parent zone (RFC 4035
    # s3.1.4.1) and is asked of the root's servers, as Unbound does (val_fwdds).
    apex_ds = [(s, rd) for s, q, rd in below if q == "example. DS"]
    below = [x for x in below if x[1] != "example. DS"]
    assert below and all(s == FORWARDER and rd for s, _, rd in below), log
    assert apex_ds and all(s != FORWARDER and not rd for s, rd in apex_ds), log
    # The answer itself was asked once, in full (no QNAME minimisation through a forwarder).
    assert [q for _, q, _ in below if q.startswith("www")] == ["www.a.example. A"]
    bogus = asyncio.run(res.resolve("nope.a.example.", "A"))
    assert bogus.verdict.security is S.SECURE  # denials are validated through it too


def test_forwarding_everything_still_validates(authority: Authority) -> None:
    log: list[tuple[tuple[str, int], str, bool]] = []
    config = dataclasses.replace(config_for(authority), forwards=((dns.name.root, (FORWARDER,)),))
    res = Resolver(config, logging_transport(authority, log), lambda: NOW)
    assert asyncio.run(res.resolve("www.a.example.", "A")).verdict.security is S.SECURE
    assert asyncio.run(res.resolve("www.insec.", "A")).verdict.security is S.INSECURE
    assert {s for s, _, _ in log} == {FORWARDER}


def test_a_deeper_stub_wins_over_a_forward_zone(authority: Authority) -> None:
    log: list[tuple[tuple[str, int], str, bool]] = []
    config = dataclasses.replace(
        config_for(authority),
        forwards=((dns.name.root, (FORWARDER,)),),
        stubs=((N("a.example."), (STUB,)),),
    )
    res = Resolver(config, logging_transport(authority, log), lambda: NOW)
    assert asyncio.run(res.resolve("www.a.example.", "A")).verdict.security is S.SECURE
    assert ((STUB, "www.a.example. A", False)) in log


def _failing_forwarder(
    auth: Authority,
    log: list[tuple[tuple[str, int], str, bool]],
    how: str,
    failing: tuple[str, int] = FORWARDER,
) -> Transport:
    """The in-memory authority, with ``failing`` answering SERVFAIL or not at all."""
    inner = logging_transport(auth, log)

    async def exchange(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        data = await inner(server, wire, tcp)
        if server != failing:
            return data
        if how == "silent":
            raise TimeoutError("no answer")
        reply = dns.message.from_wire(data)
        fail = dns.message.make_response(dns.message.from_wire(wire))
        fail.id = reply.id
        fail.set_rcode(dns.rcode.SERVFAIL)
        return fail.to_wire()

    return exchange


@pytest.mark.parametrize("how", ["servfail", "silent"])
@pytest.mark.parametrize("first", [True, False])
def test_forward_first_iterates_when_the_forwarders_fail(
    authority: Authority, how: str, first: bool
) -> None:
    """Unbound's forward-first (its iter_fwdfirst): when the forward zone's resolvers give
    no usable reply, the name is resolved by iteration from the root; without it the
    question fails."""
    log: list[tuple[tuple[str, int], str, bool]] = []
    config = dataclasses.replace(
        config_for(authority),
        forwards=((N("example."), (FORWARDER,)),),
        forward_first=frozenset({N("example.")} if first else ()),
    )
    res = Resolver(config, _failing_forwarder(authority, log, how), lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (FORWARDER, "www.a.example. A", True) in log  # the forwarder first
    if first:
        assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
        iterated = [q for s, q, rd in log if s != FORWARDER and q == "www.a.example. A"]
        assert iterated and not any(rd for s, _, rd in log if s != FORWARDER)
    else:
        assert r.rcode == dns.rcode.SERVFAIL
        assert all(s == FORWARDER for s, q, _ in log if q == "www.a.example. A")


@pytest.mark.parametrize("how", ["servfail", "silent"])
@pytest.mark.parametrize("first", [True, False])
def test_stub_first_iterates_from_the_root_when_the_stub_servers_fail(
    authority: Authority, how: str, first: bool
) -> None:
    """Unbound's stub-first (its iter_stubfirst): when a stub zone's servers give no usable
    reply, the name is resolved by iteration from the root; without it the question
    fails."""
    log: list[tuple[tuple[str, int], str, bool]] = []
    config = dataclasses.replace(
        config_for(authority),
        stubs=((N("a.example."), (STUB,)),),
        stub_first=frozenset({N("a.example.")} if first else ()),
    )
    res = Resolver(config, _failing_forwarder(authority, log, how, STUB), lambda: NOW)
    r = asyncio.run(res.resolve("www.a.example.", "A"))
    assert (STUB, "www.a.example. A", False) in log  # the stub's server first
    if first:
        assert (r.rcode, r.verdict.security) == (dns.rcode.NOERROR, S.SECURE), r.verdict
        assert [s for s, q, _ in log if q == "www.a.example. A" and s != STUB]
    else:
        assert r.rcode == dns.rcode.SERVFAIL
        assert all(s == STUB for s, q, _ in log if q == "www.a.example. A")


# --- the [resolver] section ----------------------------------------------------------


def test_settings_read_unbound_names() -> None:
    s = parse_settings(
        """
[resolver]
aggressive-nsec = true
cache-size = "16m"
domain-insecure = ["lab.internal."]
[[resolver.stub-zone]]
name = "corp.internal"
stub-addr = ["127.0.0.1@5301", "::1"]
[[resolver.forward-zone]]
name = "."
forward-addr = ["127.0.0.1#5399"]
""",
        "r.toml",
        port=5353,
    )
    assert s.aggressive_nsec and s.cache_bytes == 16 << 20
    assert s.insecure == (N("lab.internal."),)
    assert s.stubs == ((N("corp.internal."), (("127.0.0.1", 5301), ("::1", 5353))),)
    assert s.forwards == ((dns.name.root, (("127.0.0.1", 5399),)),)
    assert s.forward_first == ()
    assert parse_settings("[server]\nlisten = []\n", "r.toml").stubs == ()
    fwd = '[[resolver.forward-zone]]\nname = "x."\nforward-addr = ["::1"]\nforward-first = true'
    assert parse_settings(fwd, "r.toml").forward_first == (N("x."),)
    stub = '[[resolver.stub-zone]]\nname = "y."\nstub-addr = ["::1"]\nstub-first = true'
    assert parse_settings(stub, "r.toml").stub_first == (N("y."),)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("aggressive-nsec = 1", "resolver.aggressive-nsec"),
        ('cache-size = "lots"', "resolver.cache-size"),
        ("cache-size = 10", "resolver.cache-size"),
        ("stub-zones = []", "resolver.stub-zones"),
        ('[[resolver.stub-zone]]\nname = "x."', "resolver.stub-zone[0].stub-addr"),
        ('[[resolver.stub-zone]]\nname = "x."\nstub-addr = ["x"]', "stub-zone[0].stub-addr[0]"),
        ('[[resolver.forward-zone]]\nforward-addr = ["127.0.0.1"]', "forward-zone[0].name"),
        (
            '[[resolver.forward-zone]]\nname = "x."\nforward-addr = ["::1"]\nforward-first = 1',
            "forward-zone[0].forward-first",
        ),
        (
            '[[resolver.stub-zone]]\nname = "x."\nstub-addr = ["::1"]\nforward-first = true',
            "stub-zone[0].forward-first",
        ),
        (
            '[[resolver.stub-zone]]\nname = "x."\nstub-addr = ["::1"]\nstub-first = "yes"',
            "stub-zone[0].stub-first",
        ),
        (
            '[[resolver.stub-zone]]\nname = "."\nstub-addr = ["::1"]\nstub-first = true',
            "stub-zone[0].stub-first",
        ),
        ('[[resolver.forward-zone]]\nname = "x."\nforward-addr = ["1.2.3.4@99999"]', "addr[0]"),
    ],
)
def test_settings_errors_name_the_option(text: str, where: str) -> None:
    with pytest.raises(OptionError, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_settings(f"[resolver]\n{text}\n", "r.toml")


def test_settings_errors_are_all_reported_and_a_name_is_one_kind_of_zone() -> None:
    with pytest.raises(OptionError) as e:
        parse_settings(
            '[resolver]\nbogus = 1\n[[resolver.stub-zone]]\nname = "x."\nstub-addr = ["::1"]\n'
            '[[resolver.forward-zone]]\nname = "x."\nforward-addr = ["::1"]\n',
            "r.toml",
        )
    assert "resolver.bogus" in str(e.value) and "already a stub-zone" in str(e.value)
    with pytest.raises(FileFormatError, match=r"r\.toml"):
        parse_settings("[resolver\n", "r.toml")


def test_the_cli_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "r.toml"
    conf.write_text('[resolver]\ncache-size = "lots"\n')
    hints = tmp_path / "root.hints"  # local: no test may prime or ask the IANA root servers
    hints.write_text(". 3600000 NS a.root.\na.root. 3600000 A 127.0.0.1\n")
    out = subprocess.run(
        [
            *DNSSEAL,
            "resolver",
            "--port",
            str(free_port()),
            "--config",
            str(conf),
            "--root-hints",
            str(hints),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "resolver.cache-size" in out.stderr


# --- a private hierarchy served by named, with Unbound as the oracle ---------------------


def _signed(d: Path, zone: str, body: str) -> tuple[Path, str]:
    """Sign ``zone`` (NSEC) with dnssec-signzone; returns the file and its KSK's DS."""
    src = d / f"{zone}zone"
    src.write_text(
        f"$ORIGIN {zone}\n$TTL 300\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n"
        f"@ NS ns\nns A 127.0.0.1\n{body}"
    )
    ksk = run_tool(
        ["dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", "-f", "KSK", zone]
    ).stdout.strip()
    run_tool(["dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", zone])
    run_tool(
        ["dnssec-signzone", "-q", "-K", d, "-S", "-o", zone, "-f", f"{src}.signed", src], cwd=d
    )
    ds = run_tool(["dnssec-dsfromkey", "-2", d / f"{ksk}.key"]).stdout.split()
    return Path(f"{src}.signed"), " ".join(ds[-4:])


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> object:
    """named on loopback serving a signed corp.internal. and an unsigned lab.internal.,
    delegated from no root: only a stub-zone (or a forwarder) can reach them."""
    d = tmp_path_factory.mktemp("private")
    corp, corp_ds = _signed(d, "corp.internal.", "www A 192.0.2.10\nmail A 192.0.2.11\n")
    lab = d / "lab.zone"
    lab.write_text(
        "$ORIGIN lab.internal.\n$TTL 300\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n"
        "@ NS ns\nns A 127.0.0.1\nprinter A 192.0.2.20\n"
    )
    port = free_port()
    conf = d / "named.conf"
    conf.write_text(
        f'options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; '
        f'listen-on-v6 {{ none; }}; pid-file "{d}/named.pid"; recursion no; '
        "dnssec-validation no; notify no; };\ncontrols { };\n"
        f'zone "corp.internal." {{ type primary; file "{corp}"; }};\n'
        f'zone "lab.internal." {{ type primary; file "{lab}"; }};\n'
    )
    with (d / "named.log").open("wb") as log:
        proc = subprocess.Popen(
            [require_tool("named"), "-g", "-c", str(conf)], stdout=log, stderr=log
        )
    try:
        wait_for_dns(port, "corp.internal.", proc)
        yield d, port, corp_ds
    finally:
        stop(proc)


def _ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5)


def _answers(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for r in msg.answer if r.rdtype != dns.rdatatype.RRSIG for rd in r)


def _start_dnsseal(d: Path, settings: str, anchors: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (d / "resolver.toml").write_text(settings)
    (d / "anchors.conf").write_text(anchors)
    hints = d / "root.hints"  # a root nobody serves: nothing may go there
    hints.write_text(". 3600000 NS ns.nowhere.\nns.nowhere. 3600000 A 127.0.0.1\n")
    argv = [
        *DNSSEAL, "resolver", "--port", str(port), "--config", str(d / "resolver.toml"),
        "-a", str(d / "anchors.conf"), "--root-hints", str(hints), "--upstream-port", "9",
        "--timeout", "0.5",
    ]  # fmt: skip
    with (d / f"dnsseal-{port}.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log)
    wait_for_dns(port, "corp.internal.", proc)
    return proc, port


@pytest.mark.interop
@pytest.mark.slow
def test_stub_zones_of_a_private_hierarchy_agree_with_unbound(private: object) -> None:
    d, named_port, corp_ds = private  # type: ignore[misc]
    tag, alg, dt, digest = corp_ds.split()
    settings = (
        '[resolver]\ndomain-insecure = ["lab.internal."]\n'
        f'[[resolver.stub-zone]]\nname = "corp.internal."\nstub-addr = ["127.0.0.1@{named_port}"]\n'
        f'[[resolver.stub-zone]]\nname = "lab.internal."\nstub-addr = ["127.0.0.1@{named_port}"]\n'
    )
    anchors = f'trust-anchors {{\n  corp.internal. static-ds {tag} {alg} {dt} "{digest}";\n}};\n'
    ours, our_port = _start_dnsseal(d, settings, anchors)
    ub_port = free_port()
    ub_conf = d / "unbound.conf"
    ub_conf.write_text(
        f"server:\n  interface: 127.0.0.1\n  port: {ub_port}\n  do-ip6: no\n"
        f'  username: ""\n  chroot: ""\n  directory: "{d}"\n  pidfile: "{d}/unbound.pid"\n'
        f'  use-syslog: no\n  logfile: "{d}/unbound.log"\n  do-not-query-localhost: no\n'
        f'  trust-anchor: "corp.internal. DS {corp_ds}"\n  domain-insecure: "lab.internal."\n'
        '  local-zone: "internal." nodefault\n'
        "remote-control:\n  control-enable: no\n"
        f'stub-zone:\n  name: "corp.internal."\n  stub-addr: 127.0.0.1@{named_port}\n'
        f'stub-zone:\n  name: "lab.internal."\n  stub-addr: 127.0.0.1@{named_port}\n'
    )
    run_tool(["unbound-checkconf", ub_conf])
    (d / "unbound.log").touch()
    unbound = subprocess.Popen(
        [require_tool("unbound"), "-d", "-c", str(ub_conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_dns(ub_port, "corp.internal.", unbound)
        for name, rdtype in [
            ("www.corp.internal.", "A"),
            ("nope.corp.internal.", "A"),
            ("mail.corp.internal.", "TXT"),
            ("printer.lab.internal.", "A"),
            ("nope.lab.internal.", "A"),
        ]:
            mine, theirs = _ask(our_port, name, rdtype), _ask(ub_port, name, rdtype)
            assert mine.rcode() == theirs.rcode(), (name, mine, theirs)
            assert _answers(mine) == _answers(theirs), name
            assert bool(mine.flags & dns.flags.AD) == bool(theirs.flags & dns.flags.AD), name
        assert _ask(our_port, "www.corp.internal.").flags & dns.flags.AD
        assert not _ask(our_port, "printer.lab.internal.").flags & dns.flags.AD
    finally:
        stop(unbound)
        stop(ours)


@pytest.mark.interop
@pytest.mark.slow
def test_a_forward_zone_through_unbound_validates_locally(private: object) -> None:
    """dnsseal forwards corp.internal. to an Unbound (which reaches named through its own
    stub-zone and does not validate it); dnsseal validates with its own anchor, so a
    tampered answer would be caught here, not by the forwarder."""
    d, named_port, corp_ds = private  # type: ignore[misc]
    tag, alg, dt, digest = corp_ds.split()
    ub_port = free_port()
    ub_conf = d / "forwarder.conf"
    ub_conf.write_text(
        f"server:\n  interface: 127.0.0.1\n  port: {ub_port}\n  do-ip6: no\n"
        f'  username: ""\n  chroot: ""\n  directory: "{d}"\n  pidfile: "{d}/fwd.pid"\n'
        f'  use-syslog: no\n  logfile: "{d}/fwd.log"\n  do-not-query-localhost: no\n'
        '  module-config: "iterator"\n  local-zone: "internal." nodefault\n'
        "remote-control:\n  control-enable: no\n"
        f'stub-zone:\n  name: "corp.internal."\n  stub-addr: 127.0.0.1@{named_port}\n'
    )
    run_tool(["unbound-checkconf", ub_conf])
    (d / "fwd.log").touch()
    forwarder = subprocess.Popen(
        [require_tool("unbound"), "-d", "-c", str(ub_conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settings = (
        f'[resolver]\n[[resolver.forward-zone]]\nname = "corp.internal."\n'
        f'forward-addr = ["127.0.0.1@{ub_port}"]\n'
    )
    anchors = f'trust-anchors {{\n  corp.internal. static-ds {tag} {alg} {dt} "{digest}";\n}};\n'
    try:
        wait_for_dns(ub_port, "corp.internal.", forwarder)
        ours, our_port = _start_dnsseal(d, settings, anchors)
        try:
            r = _ask(our_port, "www.corp.internal.")
            assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AD, r
            assert _answers(r) == ["192.0.2.10"]
            nx = _ask(our_port, "nope.corp.internal.")
            assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AD, nx
        finally:
            stop(ours)
    finally:
        stop(forwarder)
