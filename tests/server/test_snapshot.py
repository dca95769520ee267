"""Snapshot internals: NSEC3 hashing and canonical order agree with dnspython."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.zone
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.proto.snapshot import build, canonical_key

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
