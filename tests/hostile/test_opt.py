"""A malformed OPT record gets FORMERR, as from named (and Knot): an option whose length
runs past the end of the RDATA, a partial option header, a COOKIE of an impossible length,
two OPT records, an OPT owned by another name than the root.  The byte paths (the C UDP
lane, WireTable, parse_simple) used to answer these as if the OPT were fine.

Each case goes to named 9.18 and dnsseal over UDP and over TCP; dig and kdig send the
COOKIE cases the way users do.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator

import dns.name
import dns.rcode
import pytest

from conftest import require_tool

from .updatehelpers import ZONE, Server, dnsseal_server, exchange, named_server

pytestmark = [pytest.mark.interop, pytest.mark.slow]

QNAME = dns.name.from_text(f"www.{ZONE}").to_wire()


def _query(additional: bytes, arcount: int, qtype: int = 1) -> bytes:
    head = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, arcount)
    return head + QNAME + struct.pack("!HH", qtype, 1) + additional


def _opt(rdata: bytes, owner: bytes = b"\x00", rdlen: int | None = None) -> bytes:
    size = len(rdata) if rdlen is None else rdlen
    return owner + struct.pack("!HHIH", 41, 1232, 0, size) + rdata


COOKIE = 10
CASES = {
    "option length past the end": _query(_opt(struct.pack("!HH", COOKIE, 20) + b"12345678"), 1),
    "partial option header (2 octets)": _query(_opt(b"\x00\x0a"), 1),
    "partial option header (3 octets)": _query(_opt(b"\x00\x0a\x00"), 1),
    "option past the end, then nothing": _query(_opt(struct.pack("!HH", 15, 1)), 1),
    "COOKIE of 3 octets": _query(_opt(struct.pack("!HH", COOKIE, 3) + b"abc"), 1),
    "COOKIE of 12 octets": _query(_opt(struct.pack("!HH", COOKIE, 12) + b"a" * 12), 1),
    "two OPT records": _query(_opt(b"") + _opt(b""), 2),
    "OPT owner not the root": _query(_opt(b"", owner=b"\x01a\x00"), 1),
    "OPT RDATA past the message": _query(_opt(b"", rdlen=10), 1),
    "SOA question, option past the end": _query(
        _opt(struct.pack("!HH", COOKIE, 20) + b"12345678"), 1, qtype=6
    ),
    "DNSKEY question, partial header": _query(_opt(b"\x00\x0a"), 1, qtype=48),
}
GOOD = {
    "no options": _query(_opt(b""), 1),
    "a client COOKIE": _query(_opt(struct.pack("!HH", COOKIE, 8) + b"12345678"), 1),
    "an unknown option": _query(_opt(struct.pack("!HH", 65001, 2) + b"hi"), 1),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    d = tmp_path_factory.mktemp("opt")
    with (
        named_server(d / "named", allow_update=["key ddns"]) as named,
        dnsseal_server(d / "dnsseal", allow_update=["key ddns"]) as ours,
    ):
        yield {"named": named, "dnsseal": ours}


def _tcp(port: int, wire: bytes) -> bytes | None:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        head = s.recv(2, socket.MSG_WAITALL)
        if len(head) < 2:
            return None
        return s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)


def _rcode(reply: bytes | None) -> str:
    assert reply is not None and len(reply) >= 12, "no answer"
    assert struct.unpack_from("!H", reply)[0] == 0x4242
    return dns.rcode.to_text(struct.unpack_from("!H", reply, 2)[0] & 0xF)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("case", list(CASES) + list(GOOD))
def test_malformed_opt_is_formerr_as_from_named(
    servers: dict[str, Server], case: str, transport: str
) -> None:
    wire = CASES.get(case) or GOOD[case]
    want = "FORMERR" if case in CASES else "NOERROR"
    for _ in range(2):  # twice: a second answer may come from a cache
        got = {
            who: _rcode(exchange(s.port, wire) if transport == "udp" else _tcp(s.port, wire))
            for who, s in servers.items()
        }
        assert got == {"named": want, "dnsseal": want}, case


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_dig_and_kdig_cookie_of_one_octet(servers: dict[str, Server], tool: str) -> None:
    exe = require_tool(tool)
    for who, s in servers.items():
        for extra, want in (
            (["+ednsopt=10:01"], "FORMERR"),
            (["+tcp", "+ednsopt=10:01"], "FORMERR"),
            (["+ednsopt=10:0102030405060708"], "NOERROR"),
            ([], "NOERROR"),  # dig's own COOKIE
        ):
            args = [exe, "@127.0.0.1", "-p", str(s.port), *extra, f"www.{ZONE}", "A"]
            if tool == "dig" and extra:
                args.insert(1, "+nocookie")  # only our COOKIE option (a second is FORMERR)
            out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
            status = next(
                (r for r in ("FORMERR", "NOERROR") if f"status: {r}" in out.stdout), out.stdout
            )
            assert status == want, (who, tool, extra, out.stdout)
