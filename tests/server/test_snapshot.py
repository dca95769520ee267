"""Snapshot internals: NSEC3 hashing and canonical order agree with dnspython."""

from __future__ import annotations

import io

import dns.dnssec
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.zone
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.proto.answer import lookup
from dnsseal.proto.fastpath import encode_rrset
from dnsseal.proto.snapshot import build, canonical_key, load_text, name_key, negative_wires

from .conftest import SignedZone

ZONE = """\
$ORIGIN example.
$TTL 300
@ SOA ns hm 1 2 3 4 5
@ NS ns
@ NSEC3PARAM 1 0 {iterations} {salt}
ns A 192.0.2.1
"""

labels = st.lists(
    st.binary(min_size=1, max_size=10).filter(lambda b: b"." not in b), min_size=0, max_size=4
)


@settings(max_examples=200, deadline=None)
@given(labels=labels, iterations=st.integers(0, 20), salt=st.binary(max_size=8))
def test_nsec3_hash_matches_dnspython(labels: list[bytes], iterations: int, salt: bytes) -> None:
    text = ZONE.format(iterations=iterations, salt=salt.hex() or "-")
    snap = build(dns.zone.from_text(text, "example.", relativize=False))
    name = dns.name.Name([*labels, b"example", b""])
    want = dns.dnssec.nsec3_hash(name, salt or None, iterations, 1).lower()
    assert snap.nsec3_hash(name) == want
    assert snap.nsec3_hash(name) == want  # memoised answer is the same


@given(a=labels, b=labels)
def test_canonical_key_orders_like_dnspython(a: list[bytes], b: list[bytes]) -> None:
    na = dns.name.Name([*a, b""])
    nb = dns.name.Name([*b, b""])
    assert (canonical_key(na) < canonical_key(nb)) == (na < nb)


def test_fast_rdata_encoders_match_dnspython(signed_zones: dict[str, SignedZone]) -> None:
    """Every RRset of the signed test zones encodes to exactly dnspython's records."""
    for z in signed_zones.values():
        zone = dns.zone.from_file(str(z.path), z.origin, relativize=False)
        snap = build(zone)
        count = 0
        for rrset in snap.records():
            data, n = encode_rrset(rrset)
            f = io.BytesIO()
            rrset.to_wire(f)
            theirs = dns.message.from_wire(
                b"\0" * 6 + n.to_bytes(2, "big") + b"\0" * 4 + f.getvalue()
            ).answer
            ours = dns.message.from_wire(b"\0" * 6 + n.to_bytes(2, "big") + b"\0" * 4 + data).answer
            assert ours == theirs and n == len(rrset)
            assert sorted(_records(data)) == sorted(_records(f.getvalue()))
            count += 1
        assert count > 50


def _records(wire: bytes) -> list[bytes]:
    """Split uncompressed RRs (the owner is plain labels) into their byte strings."""
    out, pos = [], 0
    while pos < len(wire):
        start = pos
        while wire[pos]:
            pos += 1 + wire[pos]
        pos += 1 + 8
        rdlen = int.from_bytes(wire[pos : pos + 2], "big")
        pos += 2 + rdlen
        out.append(wire[start:pos])
    return out


NO_CHAIN = """\
$ORIGIN example.
$TTL 300
@ SOA ns hm 1 2 3 4 5
@ NS ns
@ NSEC3PARAM 1 0 0 -
ns A 192.0.2.1
"""


def test_nsec3param_without_nsec3_records_answers_without_proof() -> None:
    """Regression: a zone with an NSEC3PARAM but no NSEC3 chain (yet) answered NXDOMAIN
    and NODATA with an IndexError; it now gives the SOA without a proof."""
    snap = build(dns.zone.from_text(NO_CHAIN, "example.", relativize=False))
    assert snap.nsec3_covering(name_key(dns.name.from_text("x.example."))) is None
    nx = lookup(snap, dns.name.from_text("nothere.example."), dns.rdatatype.A, do=True)
    assert nx.rcode == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in nx.authority] == [dns.rdatatype.SOA]
    nodata = lookup(snap, dns.name.from_text("ns.example."), dns.rdatatype.TXT, do=True)
    assert nodata.rcode == dns.rcode.NOERROR and not nodata.answer
    assert [r.rdtype for r in nodata.authority] == [dns.rdatatype.SOA]


def test_negative_wires_are_the_negative_soa_encoded(signed_zones: dict[str, SignedZone]) -> None:
    """The byte path's negative SOA (the apex's stored wire with the RFC 2308 TTL written
    in, no dnspython object made) is exactly what encoding the general path's
    ``negative_soa`` RRsets gives, for every signed test zone and a TTL below MINIMUM."""
    texts = [z.path.read_text() for z in signed_zones.values()]
    texts.append(NO_CHAIN.replace("$TTL 300", "$TTL 3"))  # SOA TTL 3 < MINIMUM 5
    origins = [z.origin for z in signed_zones.values()] + ["example."]
    for text, origin in zip(texts, origins, strict=True):
        snap = load_text(text, origin)
        got = negative_wires(snap)
        assert got is not None
        soa, *sig = snap.negative_soa
        both = [encode_rrset(r) for r in (soa, *sig)]
        assert got[0] == both[0]
        assert got[1] == (b"".join(w for w, _ in both), sum(n for _, n in both))
        assert soa.ttl == min(soa.ttl, soa[0].minimum)
