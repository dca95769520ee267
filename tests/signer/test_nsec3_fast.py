"""The NSEC3 chain built on bytes (batched base32hex, shared bitmaps, unchecked owner names)
gives exactly the chain built the plain way with dnspython."""

from __future__ import annotations

import base64
import hashlib

import dns.dnssec
import dns.name
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsseal.errors import InputError
from dnsseal.signer import denial
from dnsseal.signer.denial import Nsec3Params
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import type_bitmap
from dnsseal.zone.model import RRset, Zone, layout
from dnsseal.zone.text import parse_zone_text

from .conftest import ORIGIN
from .test_fastpaths import EXTRA_ROLES
from .test_property import NAMES, zone_text

T = dns.rdatatype


def _plain_chain(zone: Zone, params: Nsec3Params, ttl: int) -> list[RRset]:
    """The chain the plain way: dnspython's hash and names, one bitmap per name."""
    lay = layout(zone)
    included = denial.nsec3_included(zone, lay, params.opt_out)
    by_hash: dict[str, set[int]] = {}
    for name, types in included.items():
        h = dns.dnssec.nsec3_hash(name, params.salt or None, params.iterations, 1).lower()
        by_hash[h] = types
    order = sorted(by_hash)  # base32hex keeps the order of the digests
    head = params.param_rdata()[:1] + bytes((params.flags,)) + params.param_rdata()[2:]
    out = []
    for i, h in enumerate(order):
        nxt = base64.b32hexdecode(order[(i + 1) % len(order)].upper())
        rdata = head + bytes((len(nxt),)) + nxt + type_bitmap(by_hash[h])
        owner = dns.name.Name((h.encode(), *zone.origin.labels))
        out.append(RRset(owner, T.NSEC3, ttl, (rdata,)))
    return out


SALTS = st.sampled_from([b"", b"\xaa\xbb\xcc\xdd"])


@given(
    entries=st.lists(st.tuples(NAMES, EXTRA_ROLES), min_size=1, max_size=12),
    opt_out=st.booleans(),
    salt=SALTS,
    iterations=st.sampled_from([0, 1, 3]),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_nsec3_chain_matches_the_plain_chain(
    entries: list[tuple[str, str]], opt_out: bool, salt: bytes, iterations: int
) -> None:
    zone = parse_zone_text(zone_text(entries), ORIGIN)
    params = Nsec3Params(salt=salt, iterations=iterations, opt_out=opt_out)
    lay = layout(zone)
    records = denial.nsec3_records(zone, lay, params, 300)
    want = _plain_chain(zone, params, 300)
    assert [r for r, _ in records] == want
    assert denial.nsec3_chain(zone, lay, params, 300) == want
    for rrset, owner_wire in records:
        assert owner_wire == canonical.name_wire(rrset.name)
        assert hash(rrset.name) == hash(dns.name.Name(rrset.name.labels))
        assert rrset.name == dns.name.Name(rrset.name.labels)


@given(st.lists(st.binary(min_size=20, max_size=20), max_size=40))
@settings(max_examples=100, deadline=None)
def test_base32hex_digests_match_the_standard_library(digests: list[bytes]) -> None:
    got = canonical.base32hex_digests([*digests, bytes(20), b"\xff" * 20])
    assert got == [base64.b32hexencode(d).lower() for d in [*digests, bytes(20), b"\xff" * 20]]


def test_base32hex_digests_of_other_lengths_and_none() -> None:
    assert canonical.base32hex_digests([]) == []
    odd = [b"\x01" * 20, b"abc", b""]
    assert canonical.base32hex_digests(odd) == [base64.b32hexencode(d).lower() for d in odd]


def test_hashed_owner_is_a_checked_name() -> None:
    origin = dns.name.from_text("example.")
    digest = bytes(range(20))
    name = denial.hashed_owner(digest, origin)
    assert name == dns.name.Name((base64.b32hexencode(digest).lower(), *origin.labels))
    long_origin = dns.name.Name((b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 30, b""))
    with pytest.raises(dns.name.NameTooLong):
        denial.hashed_owner(digest, long_origin)


def test_nsec3_owner_names_too_long_for_the_origin() -> None:
    origin = dns.name.Name((b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 30, b""))
    text = "$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 120\n@ NS ns1\nns1 A 192.0.2.1\n"
    zone = parse_zone_text(text, origin)
    with pytest.raises(InputError, match="255 octets"):
        denial.nsec3_records(zone, layout(zone), Nsec3Params(), 300)


def test_base32hex_digests_across_chunks() -> None:
    digests = [hashlib.sha1(i.to_bytes(4, "big")).digest() for i in range(9000)]
    got = canonical.base32hex_digests(digests)
    assert got == [base64.b32hexencode(d).lower() for d in digests]
