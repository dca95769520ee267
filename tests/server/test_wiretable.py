"""The byte-level answer path gives the same responses as the general path.

For the BIND-signed test zones (NSEC, NSEC3, NSEC3 opt-out: wildcards, delegations, CNAME and
DNAME chains, empty non-terminals...) and random questions (names in, under and beside the
zone, random case, every interesting type, DO on or off, with or without EDNS, small and
large buffers, UDP and TCP), whenever :meth:`WireTable.answer` answers, the response equals
the general path's: same ID, rcode, flags, EDNS and the same RRsets in each section.
"""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import ZoneSnapshot, build, load_text
from dnsseal.proto.wiretable import WireTable

from .conftest import SignedZone

T = dns.rdatatype
QTYPES = (T.A, T.AAAA, T.TXT, T.MX, T.NS, T.SOA, T.DS, T.DNSKEY, T.CNAME, T.DNAME, T.NSEC,
          T.NSEC3, T.NSEC3PARAM, T.RRSIG, T.ANY, T.PTR, T.CAA, 0, 65534)  # fmt: skip


def _names(snap: ZoneSnapshot) -> list[dns.name.Name]:
    names = [*snap.nodes, *snap.ents, *snap.nsec3_nodes]
    out = list(names)
    for n in names:
        out.append(dns.name.Name((b"zz-nx", *n.labels)))
        out.append(dns.name.Name((b"a", b"b", *n.labels)))
    out.append(dns.name.Name((b"0", *snap.origin.labels)))
    out.append(dns.name.Name((b"w\x00w", *snap.origin.labels)))  # a zero byte in a label
    out.append(dns.name.Name((b"\x00", b"www", *snap.origin.labels)))
    out.append(dns.name.from_text("www.example.net."))  # not ours: REFUSED
    return out


def _random_case(name: dns.name.Name, rng: random.Random) -> dns.name.Name:
    labels = []
    for label in name.labels:
        labels.append(
            bytes(c ^ 0x20 if 97 <= c <= 122 and rng.random() < 0.5 else c for c in label)
        )
    return dns.name.Name(labels)


def _summary(wire: bytes) -> tuple[object, ...]:
    m = dns.message.from_wire(wire)
    sections = []
    for section in (m.answer, m.authority, m.additional):
        rrsets = []
        for r in section:
            rdatas = tuple(sorted(rd.to_digestable() for rd in r))
            rrsets.append((r.name.canonicalize(), r.rdtype, r.covers, r.ttl, rdatas))
        sections.append(sorted(rrsets))
    question = [(q.name, q.rdtype, q.rdclass) for q in m.question]
    return (m.id, m.rcode(), m.flags, m.edns, m.ednsflags, m.payload, question, *sections)


def _engines(snaps: list[ZoneSnapshot]) -> tuple[Engine, Engine]:
    """One engine as served (byte path first) and one with the byte path switched off."""
    zones = {s.origin: ServedZone(s) for s in snaps}
    fast, general = Engine(zones), Engine(zones)
    general.wire = WireTable([], {})
    return fast, general


def _query(qname: dns.name.Name, qtype: int, rng: random.Random) -> tuple[bytes, bool]:
    edns = rng.random() < 0.8
    q = dns.message.make_query(
        qname,
        qtype,
        use_edns=0 if edns else None,
        want_dnssec=edns and rng.random() < 0.7,
        payload=rng.choice((512, 1232, 4096, 600)),
    )
    q.id = rng.randrange(65536)
    q.flags = rng.choice((0, dns.flags.RD, dns.flags.CD, dns.flags.RD | dns.flags.CD))
    return q.to_wire(), rng.random() < 0.2


def _compare(fast: Engine, general: Engine, wire: bytes, tcp: bool) -> bool:
    """True if the byte path answered; asserts it answered like the general path."""
    got = fast.wire.answer(wire, tcp, fast.udp_payload)
    (want,) = general.handle(wire, tcp)
    assert fast.handle(wire, tcp) == [got] if got is not None else True
    if got is None:
        return False
    assert len(got) <= (65535 if tcp else max(512, dns.message.from_wire(wire).payload))
    assert _summary(got) == _summary(want), dns.message.from_wire(wire).question
    return True


@pytest.mark.parametrize("builder", ["model", "dnspython"])
def test_random_questions_answer_like_the_general_path(
    signed_zones: dict[str, SignedZone], builder: str
) -> None:
    snaps = []
    for z in signed_zones.values():
        text = z.path.read_text()
        if builder == "model":
            snaps.append(load_text(text, z.origin))
        else:
            snaps.append(build(dns.zone.from_text(text, z.origin, relativize=False)))
    fast, general = _engines(snaps)
    rng = random.Random(20261122)
    answered = total = 0
    names = [n for s in snaps for n in _names(s)]
    for _ in range(6000):
        qname = _random_case(rng.choice(names), rng)
        wire, tcp = _query(qname, rng.choice(QTYPES), rng)
        answered += _compare(fast, general, wire, tcp)
        total += 1
    # The byte path must carry most plain questions, not give up on everything.
    assert answered > total // 3


def test_every_name_and_type(signed_zones: dict[str, SignedZone]) -> None:
    """Exhaustively: every name of every zone, every type, DO on and off."""
    snaps = [load_text(z.path.read_text(), z.origin) for z in signed_zones.values()]
    fast, general = _engines(snaps)
    rng = random.Random(1)
    for snap in snaps:
        for qname in _names(snap):
            for qtype in QTYPES:
                for do in (False, True):
                    q = dns.message.make_query(qname, qtype, want_dnssec=do)
                    q.id = rng.randrange(65536)
                    _compare(fast, general, q.to_wire(), False)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=0, max_size=80), prefix=st.integers(0, 40))
def test_hostile_bytes_never_raise(
    signed_zones: dict[str, SignedZone], data: bytes, prefix: int
) -> None:
    """Random bytes, alone or after a valid query's first bytes: None or a response, never
    an exception; any response is the general path's."""
    z = signed_zones["nsec"]
    fast, general = _cached_engines(z)
    q = dns.message.make_query(f"www.{z.origin}", "A", want_dnssec=True).to_wire()
    for wire in (data, q[:prefix] + data):
        got = fast.wire.answer(wire, False, 1232)
        if got is not None:
            (want,) = general.handle(wire, False)
            assert _summary(got) == _summary(want)


_CACHE: dict[str, tuple[Engine, Engine]] = {}


def _cached_engines(z: SignedZone) -> tuple[Engine, Engine]:
    if z.variant not in _CACHE:
        _CACHE[z.variant] = _engines([load_text(z.path.read_text(), z.origin)])
    return _CACHE[z.variant]


def test_positive_and_nxdomain_take_the_byte_path(signed_zones: dict[str, SignedZone]) -> None:
    """The questions of the benchmark mixes never fall back to the general path."""
    for z in signed_zones.values():
        fast, _ = _cached_engines(z)
        for name, qtype in ((f"www.{z.origin}", "A"), (f"Nope123.{z.origin}", "A"),
                            (f"WWW.{z.origin}", "TXT"), (f"mail.{z.origin}", "AAAA")):  # fmt: skip
            q = dns.message.make_query(name, qtype, want_dnssec=True)
            assert fast.wire.answer(q.to_wire(), False, 1232) is not None, (name, qtype)
