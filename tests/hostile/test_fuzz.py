"""Fuzzing the query parser and the answer path (``Engine.handle``) with hypothesis.

Inputs are random bytes and mutations (flipped, cut, spliced, repeated bytes) of a corpus of
valid queries: plain, EDNS with DO, every interesting type (ANY, DS, NSEC3, AXFR, IXFR),
TSIG-signed with a known and an unknown key, UPDATE and NOTIFY.  For every input, over UDP
and TCP, from a client the transfer ACL allows and one it does not:

- ``handle`` never raises;
- every response parses (dnspython), answers the query's ID, has QR set, and over UDP is no
  larger than the client may receive (512 without EDNS, else min(payload, ours), never
  less than 512);
- asking the same bytes again (now a cache hit) gives the same response.

In CI (``CI`` set) a fixed set of ``FUZZ_EXAMPLES_CI`` examples runs; by hand
``DNSSEAL_FUZZ_EXAMPLES=100000`` runs longer (docs/fuzzing.md).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import dns.message
import dns.name
import dns.opcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsseal.clock import now as wall_clock
from dnsseal.proto.acl import Acl
from dnsseal.proto.engine import MIN_UDP_PAYLOAD, Engine, ServedZone
from dnsseal.proto.snapshot import build
from server.conftest import sign_zone

FUZZ_EXAMPLES_CI = 300
EXAMPLES = int(os.environ.get("DNSSEAL_FUZZ_EXAMPLES", FUZZ_EXAMPLES_CI))
OUR_PAYLOAD = 1232
KEY = dns.tsig.Key("xfr.", "c2VjcmV0IGZvciB0aGUgdGVzdHMgb25seSEhISE=", dns.tsig.HMAC_SHA256)
OTHER_KEY = dns.tsig.Key("other.", "b3RoZXIgc2VjcmV0IG5vdCBrbm93biB0byB1cyEhIQ==")
CLIENTS = ("127.0.0.1", "192.0.2.1")  # allowed to transfer, not allowed

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    base: Path = tmp_path_factory.mktemp("fuzzzones")
    zones = {}
    for variant in ("nsec", "nsec3"):
        z = sign_zone(base / variant, variant)
        snap = build(dns.zone.from_file(str(z.path), z.origin, relativize=False))
        acl = Acl.parse("allow-transfer", ["127.0.0.1", "key xfr"])
        zones[snap.origin] = ServedZone(snap, (), acl)
    return Engine(zones, {KEY.name: KEY}, udp_payload=OUR_PAYLOAD, clock=wall_clock)


@pytest.fixture(scope="module")
def general_only(engine: Engine) -> Engine:
    """The same zones answered without the byte path (the engine's general path only)."""
    slow = Engine(engine.zones, engine.keyring, OUR_PAYLOAD, clock=wall_clock)
    slow.wire = _Declines()  # type: ignore[assignment]
    return slow


class _Declines:
    def answer(self, wire: bytes, tcp: bool, payload: int) -> None:
        return None


def _corpus() -> list[bytes]:
    out: list[bytes] = []
    names = [
        "nsec.example.",
        "www.nsec.example.",
        "nope.nsec3.example.",
        "a.wild.nsec3.example.",
        "x.dn.nsec.example.",
        "chain1.nsec.example.",
        "many.nsec3.example.",
        "secure.nsec.example.",
        "a.b.c.ent.nsec3.example.",
        "insecure.nsec3.example.",
        "example.org.",
    ]
    types = ["A", "SOA", "ANY", "DS", "DNSKEY", "NSEC3", "TXT", "NS", "RRSIG", "AXFR", "IXFR"]
    for i, name in enumerate(names):
        for j, rdtype in enumerate(types):
            if (i + j) % 3 == 0:
                out.append(dns.message.make_query(name, rdtype).to_wire())
            elif (i + j) % 3 == 1:
                q = dns.message.make_query(name, rdtype, want_dnssec=True, payload=4096)
                out.append(q.to_wire())
            else:
                q = dns.message.make_query(name, rdtype, use_edns=0, payload=512)
                out.append(q.to_wire())
    for key in (KEY, OTHER_KEY):
        for rdtype in ("AXFR", "IXFR", "SOA"):
            q = dns.message.make_query("nsec.example.", rdtype)
            q.use_tsig(key)
            out.append(q.to_wire())
    update = dns.update.UpdateMessage("nsec.example.")
    update.add("new", 300, "A", "192.0.2.99")
    out.append(update.to_wire())
    notify = dns.message.make_query("nsec3.example.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    out.append(notify.to_wire())
    return out


CORPUS = _corpus()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    b = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "repeat"]))
        at = draw(st.integers(0, max(len(b) - 1, 0)))
        if kind == "flip" and b:
            b[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and b:
            b[at] = draw(st.sampled_from([0x00, 0x3F, 0x40, 0xC0, 0xFF, draw(st.integers(0, 255))]))
        elif kind == "cut":
            del b[at:]
        elif kind == "insert":
            b[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del b[at : at + draw(st.integers(1, 8))]
        else:
            b[at:at] = b[at : at + draw(st.integers(1, 40))]
    return bytes(b)


packets = st.one_of(st.binary(max_size=600), mutated(), st.sampled_from(CORPUS))


def _udp_limit(query: bytes) -> int | None:
    """How large a UDP response to ``query`` may be (None: the query does not parse)."""
    try:
        q = dns.message.from_wire(query, keyring={KEY.name: KEY})
    except Exception:
        return None
    if q.edns < 0:
        return MIN_UDP_PAYLOAD
    return max(MIN_UDP_PAYLOAD, min(q.payload, OUR_PAYLOAD))


def _check(query: bytes, out: list[bytes], tcp: bool) -> bool:
    """Checks the responses to ``query``; returns whether they may differ when asked again
    (TSIG-signed: a fresh time and MAC; a transfer: RRs in any order)."""
    signed = False
    for msg in out:
        assert len(msg) >= 12
        assert msg[:2] == query[:2], "response ID differs from the query's"
        assert msg[2] & 0x80, "QR not set"
        # A response must parse; TSIG-signed ones are checked as plain messages.
        r = dns.message.from_wire(msg, keyring=False)
        assert r.id == struct.unpack_from("!H", query)[0]
        xfr = bool(r.question) and r.question[0].rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR)
        signed = signed or r.had_tsig or xfr
    if not tcp and out:
        assert len(out) == 1, "more than one UDP response"
        limit = _udp_limit(query)
        if limit is not None:
            assert len(out[0]) <= limit, f"{len(out[0])}-byte UDP response, limit {limit}"
    return signed


@FUZZ
@given(wire=packets, tcp=st.booleans(), client=st.sampled_from(CLIENTS))
def test_engine_never_raises_and_answers_well(
    engine: Engine, wire: bytes, tcp: bool, client: str
) -> None:
    out = engine.handle(wire, tcp, client)
    may_differ = _check(wire, out, tcp)
    again = engine.handle(wire, tcp, client)
    if not may_differ:
        assert again == out, "a repeated query got another response (cache)"


@FUZZ
@given(wire=packets)
def test_byte_path_agrees_or_declines(engine: Engine, general_only: Engine, wire: bytes) -> None:
    """The UDP listener's byte path (run in the UDP thread, before the engine) either
    declines (None) or gives exactly what the general path gives."""
    try:
        fast = engine.wire.answer(wire, False, OUR_PAYLOAD)
    except Exception as e:  # the listener logs and drops: still a bug
        pytest.fail(f"byte path raised {e!r} on {wire.hex()}")
    if fast is None:
        return
    general = general_only.handle(wire, False, CLIENTS[1])
    _check(wire, [fast], False)
    assert general == [fast], "the byte path and the general path answer differently"
