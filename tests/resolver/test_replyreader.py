"""The fast reply reader against dnspython's ``dns.message.from_wire``, its oracle: for real
replies of a ``named`` serving signed zones, for every ENTRY reply of Unbound's conformance
scenarios, and for random and mutated (bit-flipped, truncated, count-changed, pointer-bent)
replies, both readers build the same message or both refuse the input (``replyparity``)."""

from __future__ import annotations

import asyncio
import copy
import pickle
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import rpl
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.replyreader import read_reply
from dnsseal.resolver.transport import Transport
from dnsseal.validator.verdict import EDE_OTHER, Security

from .authority import Authority, config_for, memory_transport
from .bindtree import _keygen, _sign, start_named
from .replyparity import check, fast_outcome, outcome, picture
from .zonebuild import NOW

DATA = Path(__file__).resolve().parent.parent / "conformance" / "unbound"

# A zone with many record types, upper-case labels (dnspython keeps case; compression
# across case differs), a wildcard, long names and duplicate-looking data.
LONG = ".".join(["a" * 63] * 3)  # 192 octets: near the 255 limit below the zone name
ZONE_BODY = """\
www A 192.0.2.1
www A 192.0.2.2
www AAAA 2001:db8::1
www AAAA ::ffff:192.0.2.3
WwW.Mixed A 192.0.2.4
mail MX 10 mail
mail MX 20 MAIL.Example.
alias CNAME www
dn DNAME www.example.
ptr PTR www
txt TXT "one" "two" ""
txt TXT "a\\"quote"
srv._tcp SRV 0 5 53 www
caa CAA 0 issue "ca.example"
hinfo HINFO "cpu" "os"
naptr NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:x@example!" .
sshfp SSHFP 4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
tlsa._443._tcp TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
*.wild A 192.0.2.7
{long} A 192.0.2.8
loc LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m
uri URI 10 1 "https://example.com/"
sub NS ns.test.
sub DS 12345 13 2 {digest}
"""
QUESTIONS = [
    ("@", "SOA"),
    ("@", "NS"),
    ("@", "DNSKEY"),
    ("@", "NSEC3PARAM"),
    ("@", "CDS"),
    ("@", "CDNSKEY"),
    ("@", "TXT"),  # NODATA with a denial
    ("www", "A"),
    ("www", "AAAA"),
    ("www", "MX"),  # NODATA
    ("WWW.MIXED", "A"),
    ("mail", "MX"),
    ("alias", "A"),
    ("x.dn", "A"),  # DNAME + synthesized CNAME
    ("ptr", "PTR"),
    ("txt", "TXT"),
    ("srv._tcp", "SRV"),
    ("caa", "CAA"),
    ("hinfo", "HINFO"),
    ("naptr", "NAPTR"),
    ("sshfp", "SSHFP"),
    ("tlsa._443._tcp", "TLSA"),
    ("anything.wild", "A"),  # wildcard expansion with its proof
    ("nothere", "A"),  # NXDOMAIN
    (LONG, "A"),
    ("loc", "LOC"),
    ("uri", "URI"),
    ("www", "RRSIG"),
    ("www", "ANY"),
    ("sub", "DS"),
    ("www.sub", "A"),  # a referral with the DS
]


def _ask(port: int, qname: str, rdtype: str, tcp: bool) -> bytes:
    """The raw reply of named on 127.0.0.1:``port`` to (qname, rdtype) with DO."""
    query = dns.message.make_query(qname, rdtype, want_dnssec=True, payload=1232)
    wire = query.to_wire()
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                got = s.recv(65535)
                if not got:
                    raise AssertionError("named closed the TCP connection")
                data += got
            return data[2:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(wire, ("127.0.0.1", port))
        return s.recv(65535)


@pytest.fixture(scope="module")
def named_replies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[bytes]]:
    """Replies of a real named for a signed zone with NSEC and one with NSEC3, over UDP
    (some truncated) and TCP."""
    d = tmp_path_factory.mktemp("replyreader")
    files = {}
    for zone, nsec3 in (("example.", False), ("example3.", True)):
        src = d / f"{zone}zone"
        src.write_text(
            f"$ORIGIN {zone}\n$TTL 300\n"
            f"@ 3600 IN SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 300\n"
            f"@ NS ns\nns A 127.0.0.1\n"
            + ZONE_BODY.format(long=LONG, digest="ab" * 32).replace("example.", zone)
        )
        _keygen(d, zone, True)
        _keygen(d, zone, False)
        _keygen(d, zone, True, "ED25519")
        _keygen(d, zone, False, "ED25519")
        files[zone] = _sign(d, zone, src, nsec3=nsec3)
    plain = d / "test.zone"  # start_named waits for test. SOA
    plain.write_text(
        "$TTL 300\ntest. IN SOA ns.test. h.test. 1 2 3 4 5\ntest. IN NS ns.test.\n"
        "ns.test. IN A 127.0.0.1\n"
    )
    files["test."] = plain
    proc, port = start_named(d, files)
    try:
        replies = []
        for zone in ("example.", "example3."):
            for rel, rdtype in QUESTIONS:
                qname = zone if rel == "@" else f"{rel}.{zone}"
                for tcp in (False, True):
                    replies.append(_ask(port, qname, rdtype, tcp))
        yield replies
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.interop
def test_named_replies_read_as_dnspython_reads_them(named_replies: list[bytes]) -> None:
    parsed = [check(wire) for wire in named_replies]
    assert all(parsed), "every reply of named is well formed"
    types = {rrset.rdtype for w in named_replies for s in read_reply(w).sections for rrset in s}
    # The reader's own builders and dnspython's fallback were both exercised.
    want = {1, 28, 2, 5, 39, 6, 15, 43, 46, 47, 48, 50, 51, 16, 33, 257}
    assert want <= types, sorted(want - types)


@pytest.mark.interop
def test_named_replies_mutated(named_replies: list[bytes]) -> None:
    """Every single-octet change of a few real replies: same message or both refuse."""
    for wire in named_replies[::20]:
        for i in range(len(wire)):
            for flip in (0x01, 0xC0):
                check(wire[:i] + bytes([wire[i] ^ flip]) + wire[i + 1 :])
            check(wire[:i])  # truncated


def _entry_wires() -> Iterator[bytes]:
    for path in sorted(DATA.glob("*.rpl")):
        try:
            scenario = rpl.load(path)
        except rpl.RplError:
            continue
        for rng in scenario.ranges:
            for entry in rng.entries:
                try:
                    yield entry.message().to_wire()
                except dns.exception.DNSException:
                    continue  # an entry dnspython cannot even write


def test_conformance_entry_replies_read_as_dnspython_reads_them() -> None:
    wires = list(_entry_wires())
    assert len(wires) > 1000
    parsed = sum(check(w) for w in wires)
    assert parsed > 1000


# --- hypothesis: random and mutated replies -----------------------------------------------

_HEADER = struct.Struct("!HHHHHH")


def _sample() -> list[bytes]:
    """A few well-formed replies to mutate: made with dnspython, with compression."""
    out = []
    for text in (
        "www.example. 300 IN A 192.0.2.1\nwww.example. 300 IN A 192.0.2.1\n"
        "www.example. 200 IN A 192.0.2.2\n",
        "example. 300 IN SOA ns.example. h.example. 1 2 3 4 5\n"
        "example. 300 IN SOA ns.example. h.example. 2 2 3 4 5\n"
        "example. 300 IN NSEC a.example. A NS SOA RRSIG NSEC\n"
        "example. 300 IN RRSIG NSEC 13 1 300 20270101000000 20260101000000 1 example. AAAA\n"
        "example. 300 IN RRSIG SOA 13 1 300 20270101000000 20260101000000 1 example. AAAA\n",
        "example. 300 IN DNSKEY 257 3 13 AAAA\nexample. 300 IN DNSKEY 256 3 13 AAAB\n"
        "example. 300 IN DS 1 13 2 " + "00" * 32 + "\n"
        "example. 300 IN NS ns.example.\nexample. 300 IN NS NS.EXAMPLE.\n"
        "a.example. 300 IN CNAME b.example.\na.example. 300 IN DNAME c.example.\n"
        "a.example. 300 IN MX 1 a.example.\nb.example. 300 IN AAAA 2001:db8::1\n"
        'c.example. 300 IN TXT "x"\n',
    ):
        msg = dns.message.Message(id=7)
        msg.flags = dns.flags.QR | dns.flags.AA
        msg.question = [dns.rrset.RRset(dns.name.from_text("example."), 1, 1)]
        for line in text.splitlines():
            name, ttl, _, rdtype, *rest = line.split(None, 4)
            rd = dns.rdata.from_text("IN", rdtype, " ".join(rest))
            msg.answer.append(dns.rrset.from_rdata(name, int(ttl), rd))
        msg.use_edns(0, dns.flags.DO, 1232)
        out.append(msg.to_wire())
    return out


SAMPLES = _sample()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    wire = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "byte", "cut", "count", "pointer", "insert"]))
        if not wire:
            break
        i = draw(st.integers(0, len(wire) - 1))
        if kind == "flip":
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            wire[i] = draw(st.integers(0, 255))
        elif kind == "cut":
            del wire[i:]
        elif kind == "count" and len(wire) >= 12:
            j = draw(st.integers(2, 5))
            counts = list(_HEADER.unpack_from(wire))
            counts[j] = draw(st.integers(0, 70))
            _HEADER.pack_into(wire, 0, *counts)
        elif kind == "pointer" and i + 1 < len(wire):
            target = draw(st.integers(0, len(wire) + 2))  # backwards, self, forwards
            wire[i] = 0xC0 | (target >> 8)
            wire[i + 1] = target & 0xFF
        elif kind == "insert":
            wire[i:i] = draw(st.binary(min_size=1, max_size=3))
    return bytes(wire)


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_replies(wire: bytes) -> None:
    check(wire)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_scrub_changes_nothing_dnspython_accepts(wire: bytes) -> None:
    """With ``scrub``, a reply dnspython reads is read the same, nothing noted; one it
    refuses is refused too, or read with what was left out noted in ``errors``."""
    theirs = outcome(dns.message.from_wire, wire)
    ours = fast_outcome(wire, scrub=True)
    if theirs[0] == "ok":
        assert ours == theirs
    elif ours[0] == "ok":
        assert read_reply(wire, scrub=True).errors


@given(st.binary(max_size=80))
def test_random_bytes(wire: bytes) -> None:
    check(wire)


@given(st.binary(min_size=0, max_size=60))
def test_random_bodies_behind_a_header(body: bytes) -> None:
    check(_HEADER.pack(1, 0x8400, 1, 1, 0, 0) + body)


# --- hostile names, one by one -------------------------------------------------------------


def _reply(name: bytes, answer: bytes = b"") -> bytes:
    """A reply whose question name is ``name`` (raw wire) and one answer RR ``answer``."""
    return (
        _HEADER.pack(1, 0x8400, 1, 1 if answer else 0, 0, 0) + name + b"\x00\x01\x00\x01" + answer
    )


def _rr(owner: bytes, rdtype: int, rdata: bytes, rdlen: int | None = None) -> bytes:
    size = len(rdata) if rdlen is None else rdlen
    return owner + struct.pack("!HHIH", rdtype, 1, 300, size) + rdata


WWW = b"\x03www\x07example\x00"  # at offset 12


@pytest.mark.parametrize(
    ("why", "wire"),
    [
        ("pointer to itself", _reply(b"\xc0\x0c")),
        ("pointer forwards", _reply(WWW, _rr(b"\xc0\x30", 1, b"\x01\x02\x03\x04"))),
        ("pointer to its own name", _reply(WWW, _rr(b"\x01a\xc0\x1d", 1, b"\x01\x02\x03\x04"))),
        ("pointer past the end", _reply(b"\xff\xff")),
        (
            # The owner points into the question name's label, whose octets read as a
            # label and a pointer back to the question name: that name overlaps its own
            # pointer's segment (dnspython: the target must end before the pointer).
            "pointer into a label that points back",
            _reply(b"\x04\x01x\xc0\x0c\x00", _rr(b"\xc0\x0d", 1, b"\x01\x02\x03\x04")),
        ),
        ("label type 0x40", _reply(b"\x41a\x00")),
        ("label runs past the message", _reply(b"\x3fabc")),
        ("name of 256 octets", _reply((b"\x3f" + b"a" * 63) * 4 + b"\x00")),
        (
            "name of 256 octets through a pointer",
            _reply(
                (b"\x3f" + b"a" * 63) * 3 + b"\x00",
                _rr(b"\x3e" + b"b" * 62 + b"\xc0\x0c", 1, b"\x01\x02\x03\x04"),
            ),
        ),
        ("A of 3 octets", _reply(WWW, _rr(b"\xc0\x0c", 1, b"\x01\x02\x03"))),
        ("AAAA of 17 octets", _reply(WWW, _rr(b"\xc0\x0c", 28, bytes(17)))),
        ("RDLENGTH past the end", _reply(WWW, _rr(b"\xc0\x0c", 1, b"\x01\x02\x03\x04", 9))),
        ("NS name shorter than RDLENGTH", _reply(WWW, _rr(b"\xc0\x0c", 2, b"\xc0\x0c\x00"))),
        ("NS name longer than RDLENGTH", _reply(WWW, _rr(b"\xc0\x0c", 2, WWW, 5))),
        ("compressed NSEC next name", _reply(WWW, _rr(b"\xc0\x0c", 47, b"\xc0\x0c\x00\x01\x40"))),
        ("compressed RRSIG signer", _reply(WWW, _rr(b"\xc0\x0c", 46, bytes(18) + b"\xc0\x0c"))),
        ("compressed DNAME target", _reply(WWW, _rr(b"\xc0\x0c", 39, b"\xc0\x0c"))),
        (
            "NSEC bitmap out of order",
            _reply(WWW, _rr(b"\xc0\x0c", 47, b"\x00\x01\x01\x01\x40\x00\x01\x40")),
        ),
        ("NSEC bitmap trailing zero", _reply(WWW, _rr(b"\xc0\x0c", 47, b"\x00\x00\x02\x40\x00"))),
        (
            "NSEC bitmap of 33 octets",
            _reply(WWW, _rr(b"\xc0\x0c", 47, b"\x00\x00\x21" + b"\x01" * 33)),
        ),
        ("DS digest type 0", _reply(WWW, _rr(b"\xc0\x0c", 43, b"\x00\x01\x0d\x00\x01"))),
        (
            "DS SHA-256 of 31 octets",
            _reply(WWW, _rr(b"\xc0\x0c", 43, b"\x00\x01\x0d\x02" + bytes(31))),
        ),
        (
            "SOA without its numbers",
            _reply(WWW, _rr(b"\xc0\x0c", 6, b"\xc0\x0c\xc0\x0c" + bytes(19))),
        ),
        ("OPT in the answer", _reply(WWW, _rr(b"\x00", 41, b""))),
        ("trailing octet", _reply(WWW) + b"\x00"),
        ("count says more than there is", _reply(WWW)[:6] + b"\x00\x02" + _reply(WWW)[8:]),
    ],
)
def test_hostile_replies_refused_by_both(why: str, wire: bytes) -> None:
    assert not check(wire), why
    with pytest.raises(dns.exception.DNSException):
        read_reply(wire)


def _chain(hops: int) -> bytes:
    """A reply whose last answer's owner is reached through ``hops`` pointers: the owner of
    answer k is a label and a pointer to the owner of answer k - 1, the first one's to the
    question name."""
    rrs, at, prev = b"", 12 + len(WWW) + 4, 12
    for _ in range(hops):
        owner = b"\x01x" + struct.pack("!H", 0xC000 | prev)
        rrs += _rr(owner, 1, b"\x01\x02\x03\x04")
        prev, at = at, at + len(owner) + 10 + 4
    return _HEADER.pack(1, 0x8400, 1, hops, 0, 0) + WWW + b"\x00\x01\x00\x01" + rrs


def test_limits_themselves_are_fine() -> None:
    """A 255-octet name reads; so does a name behind 16 pointers, and not one behind 17."""
    longest = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"
    assert check(_reply(longest))
    assert check(_chain(16))
    assert len(read_reply(_chain(16)).answer) == 16
    assert not check(_chain(17))


def _pointer_ladder(n: int) -> bytes:
    """A reply whose second answer's owner follows ``n`` + 1 pointers: the first answer's
    rdata (an unknown type) is a root label and ``n`` pointers, each to the one before."""
    question = b"\x00\x00\x01\x00\x01"
    at = 12 + len(question) + 1 + 10  # where the first answer's rdata starts
    rdata = b"\x00" + b"".join(
        struct.pack("!H", 0xC000 | (at if i == 0 else at + 1 + 2 * (i - 1))) for i in range(n)
    )
    first = b"\x00" + struct.pack("!HHIH", 0xFF00, 1, 0, len(rdata)) + rdata
    second = _rr(struct.pack("!H", 0xC000 | (at + 2 * n - 1)), 1, b"\x01\x02\x03\x04")
    return _HEADER.pack(1, 0x8400, 1, 2, 0, 0) + question + first + second


@pytest.mark.parametrize(("pointers", "ok"), [(15, True), (16, False), (5000, False)])
def test_pointer_chains_are_cut_at_16(pointers: int, ok: bool) -> None:
    """Regression: a chain of thousands of pointers (each 2 octets back) is refused with
    PointerChainTooLong like dnspython does, not with a RecursionError."""
    assert check(_pointer_ladder(pointers)) is ok


def test_duplicates_ttls_and_singletons_as_dnspython() -> None:
    """An rdata equal (canonical form: NS target case) to one before is dropped, the TTL is
    the lowest, and a second SOA replaces the first, as dnspython's Rdataset.add does."""
    msg = read_reply(SAMPLES[0])
    assert [len(r) for r in msg.answer] == [2] and msg.answer[0].ttl == 200
    msg = read_reply(SAMPLES[1])
    assert msg.answer[0][0].serial == 2
    msg = read_reply(SAMPLES[2])
    ns = next(r for r in msg.answer if r.rdtype == 2)
    assert len(ns) == 1 and ns[0].target.labels[0] == b"ns"
    for wire in SAMPLES:
        assert check(wire)


def test_picture_sees_a_difference() -> None:
    """The oracle can fail: a changed TTL, or a name's case, changes the picture."""
    a = read_reply(SAMPLES[2])
    b = read_reply(SAMPLES[2])
    b.answer[0].ttl += 1
    assert picture(a) != picture(b)
    c = read_reply(SAMPLES[0].replace(b"\x03www", b"\x03WWW"))
    assert picture(a) != picture(c)


# --- scrubbing RRs of impossible length ----------------------------------------------------


def test_scrub_leaves_out_only_address_records_of_impossible_length() -> None:
    good = _rr(b"\xc0\x0c", 1, b"\x01\x02\x03\x04")
    bad_a = _rr(b"\xc0\x0c", 1, b"\x03\x04\x05")
    bad_aaaa = _rr(b"\xc0\x0c", 28, bytes(48))
    wire = _HEADER.pack(1, 0x8400, 1, 4, 0, 0) + WWW + b"\x00\x01\x00\x01"
    wire += bad_a + good + bad_aaaa + bad_a
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(wire)
    with pytest.raises(dns.exception.DNSException):
        read_reply(wire)
    scrubbed = read_reply(wire, scrub=True)
    assert len(scrubbed.errors) == 3
    # The same message as dnspython reads from the reply without those records.
    clean = _HEADER.pack(1, 0x8400, 1, 1, 0, 0) + WWW + b"\x00\x01\x00\x01" + good
    expected = picture(dns.message.from_wire(clean))
    got = picture(scrubbed)
    assert got[3] == expected[3] and got[1:3] == expected[1:3]


@pytest.mark.parametrize(
    "rr",
    [
        _rr(b"\xc0\x0c", 2, b"\xc0\x0c\x00"),  # NS of the wrong length: not scrubbed
        _rr(b"\xc0\x0c", 1, b"\x01\x02\x03\x04", 9),  # RDLENGTH past the end: no framing
        b"\xc0\x0c" + struct.pack("!HHIH", 1, 3, 300, 3) + b"\x01\x02\x03",  # class CH
    ],
)
def test_scrub_refuses_everything_else(rr: bytes) -> None:
    wire = _HEADER.pack(1, 0x8400, 1, 1, 0, 0) + WWW + b"\x00\x01\x00\x01" + rr
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(wire)
    with pytest.raises(dns.exception.DNSException):
        read_reply(wire, scrub=True)


def _with_bad_a(inner: Transport, qname: str) -> Transport:
    """``inner``, with a 3-octet A record added to the answer of ``qname`` A."""

    async def exchange(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        data = await inner(server, wire, tcp)
        q = dns.message.from_wire(wire)
        if q.question[0].name != dns.name.from_text(qname) or q.question[0].rdtype != 1:
            return data
        msg = dns.message.from_wire(data)
        bad = dns.rdata.GenericRdata(dns.rdataclass.IN, dns.rdatatype.A, b"\x03\x04\x05")
        msg.answer.append(dns.rrset.from_rdata(qname, 300, bad))
        return msg.to_wire(max_size=65535)

    return exchange


@pytest.mark.parametrize(
    ("qname", "security"),
    [("www.a.example.", Security.SECURE), ("www.insec.", Security.INSECURE)],
)
def test_resolver_scrubs_an_a_record_of_impossible_length(
    authority: Authority, qname: str, security: Security
) -> None:
    """Regression (iter_scrub_rr_length, val_scrub_rr_length): the good records of a reply
    with one A record of 3 octets are used, with EDE 0, as Unbound does; before, the
    whole reply was dropped and the name failed."""
    res = Resolver(
        config_for(authority), _with_bad_a(memory_transport(authority), qname), lambda: NOW
    )
    result = asyncio.run(res.resolve(qname, "A"))
    assert result.rcode == dns.rcode.NOERROR and result.verdict.security is security
    assert result.verdict.ede == EDE_OTHER, result.verdict
    sent = authority.answer(dns.name.from_text(qname), dns.rdatatype.A).answer
    assert [set(r) for r in result.answer if r.rdtype == dns.rdatatype.A] == [
        set(r) for r in sent if r.rdtype == dns.rdatatype.A
    ]


# --- the hash each rdata keeps ------------------------------------------------------------

MIXED_CASE = [
    ("Www.Example.", "A", "192.0.2.1"),
    ("Www.Example.", "AAAA", "2001:db8::1"),
    ("Example.", "NS", "Ns1.Example."),
    ("Example.", "SOA", "Ns1.Example. HostMaster.Example. 1 2 3 4 5"),
    ("Example.", "MX", "10 Mail.Example."),
    ("Alias.Example.", "CNAME", "Www.Example."),
    ("Ptr.Example.", "PTR", "Www.Example."),
    ("Dn.Example.", "DNAME", "Www.Example."),
    ("Example.", "NSEC", "Www.Example. NS SOA MX RRSIG NSEC"),
    ("Example.", "DS", "12345 13 2 " + "ab" * 32),
    ("Example.", "DNSKEY", "257 3 13 " + "A" * 88),
    ("Example.", "RRSIG", "NS 13 1 3600 20300101000000 20200101000000 12345 ExAmple. " + "B" * 88),
]


def test_each_rdata_keeps_dnspythons_hash_of_its_canonical_form() -> None:
    """Names in every case the canonical form treats differently (lower-cased in NS, SOA,
    MX, CNAME, PTR, DNAME and the RRSIG signer; kept in the NSEC next name, RFC 6840
    s5.1): the hash an rdata keeps is the one dnspython computes, so an equal
    rdata made by dnspython (another case) is found in the reader's RRset and set."""
    msg = dns.message.make_response(dns.message.make_query("example.", "ANY"))
    for owner, rdtype, text in MIXED_CASE:
        msg.answer.append(dns.rrset.from_text(owner, 300, "IN", rdtype, text))
    wire = msg.to_wire()
    assert check(wire)
    read = read_reply(wire)
    assert len(read.answer) == len(MIXED_CASE)
    for rrset, (_, rdtype, text) in zip(read.answer, MIXED_CASE, strict=True):
        (rd,) = rrset
        assert hash(rd) == hash(rd.to_digestable(dns.name.root)), rdtype
        theirs = dns.rdata.from_text("IN", rdtype, text.swapcase() if rdtype != "A" else text)
        assert (theirs in rrset) == (theirs == rd), rdtype
        assert {rd, theirs} == ({rd} if theirs == rd else {rd, theirs}), rdtype
        again = rd.replace()  # made by dnspython's constructor: no hash kept, its own
        assert hash(again) == hash(rd) and again == rd, rdtype
        for copied in (copy.copy(rd), copy.deepcopy(rd), pickle.loads(pickle.dumps(rd))):
            # dnspython's own class (a pickle may go to a process whose hashes differ)
            assert type(copied) is type(theirs) and copied == rd, rdtype
            assert hash(copied) == hash(rd), rdtype
