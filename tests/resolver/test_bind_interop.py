"""The validator against a hierarchy signed by BIND's tools and served by real ``named``,
with ``delv`` as the oracle for every verdict, and ``dnsseal resolve`` end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from click.testing import CliRunner

from conftest import free_port, require_tool, run_tool, stop
from dnsseal.cli.resolvecmds import build_config, resolve
from dnsseal.resolver.engine import Resolver
from dnsseal.validator import verdict as v
from dnsseal.validator.policy import AlgorithmPolicy
from dnsseal.validator.rfc5011 import from_json

from .bindtree import Tree, start_unbound, tree, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.slow]

S = v.Security
CASES = [
    # name, type, security, EDE, rcode
    ("www.secure.test.", "A", S.SECURE, None, dns.rcode.NOERROR),
    ("nx.secure.test.", "A", S.SECURE, None, dns.rcode.NXDOMAIN),
    ("www.secure.test.", "TXT", S.SECURE, None, dns.rcode.NOERROR),
    ("a.wild.secure.test.", "A", S.SECURE, None, dns.rcode.NOERROR),
    ("alias.secure.test.", "A", S.SECURE, None, dns.rcode.NOERROR),  # CNAME across zones
    ("www.nsec.test.", "A", S.SECURE, None, dns.rcode.NOERROR),
    ("nx.nsec.test.", "A", S.SECURE, None, dns.rcode.NXDOMAIN),
    ("www.unsigned.test.", "A", S.INSECURE, None, dns.rcode.NOERROR),  # opt-out, no DS
    ("www.insec.", "A", S.INSECURE, None, dns.rcode.NOERROR),  # NSEC-proven no DS
    ("www.tampered.test.", "A", S.BOGUS, v.EDE_DNSSEC_BOGUS, None),
    ("www.expired.test.", "A", S.BOGUS, v.EDE_SIGNATURE_EXPIRED, None),
    ("www.dsmismatch.test.", "A", S.BOGUS, v.EDE_DNSKEY_MISSING, None),
    ("www.nokey.test.", "A", S.BOGUS, v.EDE_DNSKEY_MISSING, None),
    ("nx.nonsec3.test.", "A", S.BOGUS, v.EDE_NSEC_MISSING, None),
    ("a.wild.nonsec3.test.", "A", S.BOGUS, v.EDE_NSEC_MISSING, None),  # wildcard, no proof
    ("www.badsigner.test.", "A", S.BOGUS, v.EDE_DNSKEY_MISSING, None),  # signer "test."
    ("www.rsa.test.", "A", S.SECURE, None, dns.rcode.NOERROR),  # RSASHA256
    ("www.ed.test.", "A", S.SECURE, None, dns.rcode.NOERROR),  # ED25519
    ("nx.sha1alg.test.", "A", S.SECURE, None, dns.rcode.NXDOMAIN),  # NSEC3RSASHA1
    ("www.sha384.test.", "A", S.SECURE, None, dns.rcode.NOERROR),  # SHA-384 DS
    ("www.sha1ds.test.", "A", S.SECURE, None, dns.rcode.NOERROR),  # SHA-1 DS only
    ("www.ldns.test.", "A", S.SECURE, None, dns.rcode.NOERROR),  # signed by ldns-signzone
    ("nx.ldns.test.", "A", S.SECURE, None, dns.rcode.NXDOMAIN),
    ("a.wild.ldns.test.", "A", S.SECURE, None, dns.rcode.NOERROR),
    ("www.ldns.test.", "MX", S.SECURE, None, dns.rcode.NOERROR),
    ("www.knot.test.", "A", S.SECURE, None, dns.rcode.NOERROR),  # signed by kzonesign
    ("nx.knot.test.", "A", S.SECURE, None, dns.rcode.NXDOMAIN),
    ("a.wild.knot.test.", "A", S.SECURE, None, dns.rcode.NOERROR),
]


@pytest.fixture(scope="module")
def bind_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    yield from tree(tmp_path_factory.mktemp("bindtree"))


@pytest.fixture(scope="module")
def resolver(bind_tree: Tree) -> Resolver:
    config = build_config(
        str(bind_tree.anchors), str(bind_tree.hints), None, bind_tree.port, minimise=True
    )
    return Resolver(config)


def delv_verdict(t: Tree, name: str, rdtype: str) -> S:
    delv = require_tool("delv")
    p = subprocess.run(
        [delv, "-a", str(t.anchors), "@127.0.0.1", "-p", str(t.port), "+root=.", name, rdtype],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    out = p.stdout + p.stderr
    if "fully validated" in out:
        return S.SECURE
    if "unsigned answer" in out:
        return S.INSECURE
    assert "resolution failed" in out or "validating" in out, out
    return S.BOGUS


@pytest.mark.parametrize(("name", "rdtype", "security", "ede", "rcode"), CASES)
def test_verdicts_match_delv(
    bind_tree: Tree,
    resolver: Resolver,
    name: str,
    rdtype: str,
    security: v.Security,
    ede: int | None,
    rcode: int | None,
) -> None:
    result = asyncio.run(resolver.resolve(name, rdtype))
    assert result.verdict.security is security, result.verdict
    assert result.verdict.ede == ede, result.verdict
    if rcode is not None:
        assert result.rcode == rcode
    assert delv_verdict(bind_tree, name, rdtype) is security


def test_resolve_command_json_and_exit_status(bind_tree: Tree) -> None:
    base = ["--root-hints", str(bind_tree.hints), "-p", str(bind_tree.port)]
    base += ["-a", str(bind_tree.anchors)]
    runner = CliRunner()
    ok = runner.invoke(resolve, ["www.secure.test", "A", *base, "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["verdict"]["security"] == "secure"
    assert any("192.0.2.1" in line for line in data["answer"])
    assert [c["kind"] for c in data["chain"]][:2] == ["anchor", "DNSKEY"]
    nx = runner.invoke(resolve, ["nx.secure.test", *base, "--json"])
    assert nx.exit_code == 0, nx.output
    data = json.loads(nx.output)
    assert data["rcode"] == "NXDOMAIN" and data["answer"] == []
    assert any(" NSEC3 " in line for line in data["authority"])
    bad = runner.invoke(resolve, ["www.expired.test", *base, "--explain"])
    assert bad.exit_code == 2
    assert "validation failed" in bad.output
    assert "EDE: 7 (Signature Expired)" in bad.output
    assert "[       secure] test." in bad.output  # the links above the break are shown
    insecure = runner.invoke(
        resolve, ["www.insec", f"@127.0.0.1#{bind_tree.port}", "-a", str(bind_tree.anchors)]
    )
    assert insecure.exit_code == 3, insecure.output
    assert "unsigned answer" in insecure.output
    nta = runner.invoke(resolve, ["www.tampered.test", *base, "--nta", "tampered.test=10m"])
    assert nta.exit_code == 3, nta.output
    assert "negative trust anchor" in nta.output


def test_missing_anchor_file_is_a_clear_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(resolve, ["example.", "-a", str(tmp_path / "nope.conf")])
    assert r.exit_code != 0
    assert "nope.conf" in str(r.exception) or "nope.conf" in r.output


def _client_verdict(reply: dns.message.Message) -> S:
    if reply.rcode() == dns.rcode.SERVFAIL:
        return S.BOGUS
    return S.SECURE if reply.flags & dns.flags.AD else S.INSECURE


UNBOUND_EDE = {"a.wild.nonsec3.test.": v.EDE_DNSSEC_BOGUS}


@pytest.fixture(scope="module")
def unbound_port(bind_tree: Tree) -> Iterator[int]:
    proc, port = start_unbound(bind_tree)
    try:
        yield port
    finally:
        stop(proc)


@pytest.mark.parametrize(("name", "rdtype", "security", "ede", "rcode"), CASES)
def test_verdicts_match_unbound(
    unbound_port: int,
    resolver: Resolver,
    name: str,
    rdtype: str,
    security: v.Security,
    ede: int | None,
    rcode: int | None,
) -> None:
    q = dns.message.make_query(name, rdtype, want_dnssec=True)
    reply = dns.query.udp(q, "127.0.0.1", port=unbound_port, timeout=10)
    assert _client_verdict(reply) is security, reply
    edes = [int(o.code) for o in reply.options if isinstance(o, dns.edns.EDEOption)]
    # Unbound says "DNSSEC Bogus" for a wildcard answer without proof; we say "NSEC Missing".
    expected = UNBOUND_EDE.get(name, ede)
    assert edes == ([] if expected is None else [expected]), reply
    assert asyncio.run(resolver.resolve(name, rdtype)).verdict.security is security


def test_resolver_service_answers_dig(bind_tree: Tree) -> None:
    port = free_port()
    args = [sys.executable, "-m", "dnsseal.cli.main", "resolver", "--port", str(port)]
    args += ["--root-hints", str(bind_tree.hints), "--upstream-port", str(bind_tree.port)]
    managed = bind_tree.directory / "managed.conf"  # the same root DS, as initial-ds
    managed.write_text(bind_tree.anchors.read_text().replace("static-ds", "initial-ds"))
    state = bind_tree.directory / "anchors-state.json"
    args += ["-a", str(managed), "--state", str(state)]
    log = bind_tree.directory / "dnsseal-resolver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out)
    try:
        wait_for(port, proc, log, "secure.test.")
        ok = run_tool(["dig", "+dnssec", "@127.0.0.1", "-p", str(port), "www.secure.test", "A"])
        assert " ad" in ok.stdout.split("flags:")[1].split(";")[0], ok.stdout
        assert "192.0.2.1" in ok.stdout
        bad = run_tool(["dig", "+dnssec", "@127.0.0.1", "-p", str(port), "www.expired.test"])
        assert "status: SERVFAIL" in bad.stdout
        assert "EDE: 7 (Signature Expired)" in bad.stdout, bad.stdout
        cd = run_tool(["dig", "+dnssec", "+cd", "@127.0.0.1", "-p", str(port), "www.expired.test"])
        assert "status: NOERROR" in cd.stdout and "192.0.2.1" in cd.stdout
        ins = run_tool(["dig", "+dnssec", "@127.0.0.1", "-p", str(port), "+tcp", "www.insec"])
        assert "status: NOERROR" in ins.stdout
        assert " ad" not in ins.stdout.split("flags:")[1].split(";")[0]
        # RFC 5011: the initial-ds was turned into the root KSK, kept in the state file.
        deadline = time.monotonic() + 10
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (zone,) = from_json(state.read_text(), str(state))
        assert zone.initial_ds == ()
        assert [k.state.value for k in zone.keys] == ["valid"]
    finally:
        stop(proc)


def test_sha1_policy_makes_sha1_zones_insecure(bind_tree: Tree, resolver: Resolver) -> None:
    strict = AlgorithmPolicy(accept_sha1_ds=False, accept_sha1_algorithms=False)
    res = Resolver(dataclasses.replace(resolver.config, policy=strict))
    ds = asyncio.run(res.resolve("www.sha1ds.test.", "A"))
    assert (ds.verdict.security, ds.verdict.ede) == (S.INSECURE, v.EDE_UNSUPPORTED_DS_DIGEST)
    alg = asyncio.run(res.resolve("nx.sha1alg.test.", "A"))
    assert (alg.verdict.security, alg.verdict.ede) == (
        S.INSECURE,
        v.EDE_UNSUPPORTED_DNSKEY_ALGORITHM,
    )
    assert asyncio.run(res.resolve("www.secure.test.", "A")).verdict.security is S.SECURE


def test_record_then_replay_without_network(bind_tree: Tree, tmp_path: Path) -> None:
    base = ["--root-hints", str(bind_tree.hints), "-p", str(bind_tree.port)]
    base += ["-a", str(bind_tree.anchors)]
    runner = CliRunner()
    rec = tmp_path / "secure.json"
    live = runner.invoke(resolve, ["www.secure.test", *base, "--json", "--record", str(rec)])
    assert live.exit_code == 0, live.output
    # Replay from a port where nothing listens: every answer must come from the file.
    dead = ["--root-hints", str(bind_tree.hints), "-p", str(free_port())]
    dead += ["-a", str(bind_tree.anchors)]
    again = runner.invoke(resolve, ["www.secure.test", *dead, "--json", "--replay", str(rec)])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["answer"] == json.loads(live.output)["answer"]
    # The same recording validated 60 days later: the signatures have expired.
    later = runner.invoke(
        resolve, ["www.secure.test", *dead, "--replay", str(rec), "--now", "now+60d"]
    )
    assert later.exit_code == 2, later.output
    assert "EDE: 7 (Signature Expired)" in later.output
    unknown = runner.invoke(resolve, ["www.nsec.test", *dead, "--replay", str(rec)])
    assert unknown.exit_code == 4  # not in the recording: like an unreachable server
