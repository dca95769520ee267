"""Malformed and hostile packets never crash or hang the server: they get FORMERR (or
NOTIMP/REFUSED for what we do not do), or no answer when there is no header to answer."""

from __future__ import annotations

import random
import socket
import struct

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import build

from .conftest import RunningServer, SignedZone

FORMERR, NOTIMP, REFUSED = dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.REFUSED


@pytest.fixture(scope="module")
def engine(signed_zones: dict[str, SignedZone]) -> Engine:
    z = signed_zones["nsec3"]
    snap = build(dns.zone.from_file(str(z.path), z.origin, relativize=False))
    return Engine({snap.origin: ServedZone(snap)})


def header(
    qid: int = 0x1234, flags: int = 0, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0
) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


QNAME = b"\x03www\x05nsec3\x07example\x00"
QUESTION = QNAME + struct.pack("!HH", 1, 1)
OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0x8000, 0)

HOSTILE = {
    "empty": (b"", None),
    "one byte": (b"\x12", None),
    "truncated header": (header()[:11], None),
    "header only, qdcount 1": (header(), FORMERR),
    "huge qdcount": (header(qd=65535) + QUESTION, FORMERR),
    "huge ancount": (header(an=65535) + QUESTION, FORMERR),
    "huge arcount": (header(ar=65535) + QUESTION, FORMERR),
    "compression loop": (header() + b"\xc0\x0c" + struct.pack("!HH", 1, 1), FORMERR),
    "forward pointer": (header() + b"\xc0\x20" + struct.pack("!HH", 1, 1) + b"\x00" * 20, FORMERR),
    "label too long": (
        header() + b"\x7f" + b"a" * 127 + b"\x00" + struct.pack("!HH", 1, 1),
        FORMERR,
    ),
    "name longer than 255": (
        header() + b"\x3f" + b"a" * 63 + (b"\x3f" + b"b" * 63) * 4 + b"\x00\x00\x01\x00\x01",
        FORMERR,
    ),
    "question cut short": (header() + QUESTION[:-2], FORMERR),
    "trailing garbage": (header() + QUESTION + b"garbage", FORMERR),
    "two OPT records": (header(ar=2) + QUESTION + OPT + OPT, FORMERR),
    "OPT in answer section": (header(an=1) + QUESTION + OPT, FORMERR),
    "OPT with a name": (header(ar=1) + QUESTION + b"\x01a\x00" + OPT[1:], FORMERR),
    "OPT rdlength past the end": (
        header(ar=1) + QUESTION + b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 500),
        FORMERR,
    ),
    "no question": (header(qd=0), FORMERR),
    "two questions": (header(qd=2) + QUESTION + QUESTION, FORMERR),
    "a response": (header(flags=0x8000) + QUESTION, None),
    "UPDATE": (header(flags=dns.opcode.to_flags(dns.opcode.UPDATE)) + QUESTION, NOTIMP),
    "STATUS": (header(flags=dns.opcode.to_flags(dns.opcode.STATUS)) + QUESTION, NOTIMP),
    "CHAOS class": (header() + QNAME + struct.pack("!HH", 16, 3), REFUSED),
    "qtype OPT": (header() + QNAME + struct.pack("!HH", 41, 1), FORMERR),
    "AXFR over UDP": (
        header() + QNAME[:0] + b"\x05nsec3\x07example\x00" + struct.pack("!HH", 252, 1),
        FORMERR,
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_packet(engine: Engine, case: str) -> None:
    wire, rcode = HOSTILE[case]
    out = engine.handle(wire, False, "192.0.2.1")
    if rcode is None:
        assert out == []
        return
    assert len(out) == 1
    r = dns.message.from_wire(out[0])
    assert r.rcode() == rcode, dns.rcode.to_text(r.rcode())
    assert r.id == 0x1234


def test_random_bytes_never_crash(engine: Engine) -> None:
    rng = random.Random(6)
    valid = header() + QUESTION + OPT
    for i in range(3000):
        if i % 2:
            wire = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        else:  # mutate a valid query: flip, cut, or splice bytes
            b = bytearray(valid)
            for _ in range(rng.randrange(1, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            wire = bytes(b[: rng.randrange(len(b) + 1)])
        for tcp in (False, True):
            out = engine.handle(wire, tcp, "192.0.2.1")
            for msg in out:
                dns.message.from_wire(msg)  # whatever we send parses


@pytest.mark.interop
def test_live_server_survives_hostile_packets(dnsseal_server: RunningServer) -> None:
    rng = random.Random(1996)
    addr = ("127.0.0.1", dnsseal_server.port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for wire, _ in HOSTILE.values():
            s.sendto(wire, addr)
        for _ in range(300):
            s.sendto(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))), addr)
    # TCP: garbage lengths and truncated frames
    for frame in (b"\xff\xff" + b"x" * 10, b"\x00", header() + QUESTION, b"\x00\x05abcde"):
        with socket.create_connection(addr, timeout=5) as t:
            t.sendall(frame)
            t.shutdown(socket.SHUT_WR)
            t.settimeout(5)
            while t.recv(4096):
                pass
    origin = dnsseal_server.zones["nsec"].origin
    r = dns.query.udp(
        dns.message.make_query(f"www.{origin}", "A"), addr[0], port=addr[1], timeout=3
    )
    assert r.rcode() == dns.rcode.NOERROR and r.answer
    assert dnsseal_server.proc.poll() is None


def test_transfer_answers_are_never_cached_past_the_acl(
    signed_zones: dict[str, SignedZone],
) -> None:
    from dnsseal.proto.acl import Acl

    z = signed_zones["nsec"]
    snap = build(dns.zone.from_file(str(z.path), z.origin, relativize=False))
    engine = Engine({snap.origin: ServedZone(snap, allow_transfer=Acl.parse("t", ["192.0.2.1"]))})
    for qtype in ("AXFR", "IXFR"):
        q = dns.message.make_query(z.origin, qtype)
        if qtype == "IXFR":
            q.authority.append(snap.apex.rrsets[dns.rdatatype.SOA])
        for tcp in (True, False):
            allowed = engine.handle(q.to_wire(), tcp, "192.0.2.1")
            assert dns.message.from_wire(allowed[0]).rcode() in (dns.rcode.NOERROR, FORMERR)
            denied = engine.handle(q.to_wire(), tcp, "198.51.100.1")
            assert dns.message.from_wire(denied[0]).rcode() in (REFUSED, FORMERR)
            if dns.message.from_wire(allowed[0]).rcode() == dns.rcode.NOERROR:
                assert dns.message.from_wire(denied[0]).rcode() == REFUSED
