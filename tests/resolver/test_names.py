"""The validator's label-tuple name helpers against dnspython's Name semantics on random
names (mixed case, bytes next to the ASCII letters, non-ASCII bytes, absolute and relative),
and the signed data and key tags built with them against dnspython's own."""

from __future__ import annotations

import copy
import pickle

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.RRSIG import RRSIG
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.validator.names import (
    HashedName,
    hashed_name,
    is_subdomain,
    name_text,
    parent_name,
    same_name,
    suffix,
)
from dnsseal.validator.rrsig import canonical_rdata, key_tag, label_count, signed_data
from dnsseal.validator.trustcache import _key
from dnsseal.zone.canonical import name_wire as canonical_wire

# Letters of both cases plus the bytes around them ('@', '[', '`', '{'), digits, '*', '-',
# and Latin-1 letters (0xc0-0xfe), which bytes.lower() leaves alone as dnspython does.
ALPHABET = b"aAbBzZyY@[`{09*-\xc0\xe0\xde\xfe\x00"
label = st.binary(min_size=1, max_size=6).map(
    lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)
)
short = st.sampled_from([b"a", b"A", b"b", b"B", b"*", b"\xc0", b"\xe0"])


@st.composite
def names(draw: st.DrawFn) -> dns.name.Name:
    labels = draw(st.lists(st.one_of(short, label), max_size=4))
    if draw(st.booleans()):
        labels.append(b"")
    return dns.name.Name(labels)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[dns.name.Name, dns.name.Name]:
    """Two names, often related: the same in another case, a parent, a child."""
    a = draw(names())
    how = draw(st.sampled_from(["any", "recase", "suffix", "child"]))
    if how == "any":
        return a, draw(names())
    if how == "recase":
        flips = draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a)))
        return a, dns.name.Name(
            lab.upper() if f else lab.lower() for lab, f in zip(a.labels, flips, strict=True)
        )
    cut = draw(st.integers(0, len(a)))
    suffix = dns.name.Name(a.labels[cut:])
    return (a, suffix) if how == "suffix" else (suffix, a)


@settings(max_examples=1500)
@given(pairs())
def test_same_name_and_is_subdomain_agree_with_dnspython(pair) -> None:
    a, b = pair
    assert same_name(a, b) == (a == b)
    assert same_name(b, a) == (b == a)
    assert is_subdomain(a, b) == a.is_subdomain(b)
    assert is_subdomain(b, a) == b.is_subdomain(a)
    assert (_key(a) == _key(b)) == (a == b)  # the delegation cache's keys


@settings(max_examples=1500)
@given(pairs())
def test_hashed_names_behave_as_dnspython_names(pair) -> None:
    """The reply reader's and the validator's names (HashedName) against plain ones: ==,
    != (both ways, and between two of them), hashes (they mix in dicts and sets), and
    dict look-ups; a copy or pickle is a plain Name."""
    a, b = pair
    ha, hb = hashed_name(a.labels), hashed_name(b.labels)
    for x, y in ((ha, b), (a, hb), (ha, hb)):
        assert (x == y) == (a == b)
        assert (y == x) == (b == a)
        assert (x != y) == (a != b)
        assert (y != x) == (b != a)
    assert hash(ha) == hash(a) and hash(hb) == hash(b)
    assert hash(ha) == hash(a)  # the kept hash, read again
    assert ({a: 1}.get(hb) == 1) == (a == b)
    assert ({ha: 1}.get(b) == 1) == (a == b)
    assert (ha == "a") is False and ha != "a"
    assert ha.to_text() == a.to_text() and ha.labels == a.labels
    for made in (copy.copy(ha), copy.deepcopy(ha), pickle.loads(pickle.dumps(ha))):
        assert type(made) is dns.name.Name and made.labels == a.labels
    made = HashedName(a.labels)  # the ordinary constructor: dnspython's checks, then the slot
    assert made == a and hash(made) == hash(a)
    try:
        up = a.parent()
    except dns.name.NoParent:
        with pytest.raises(dns.name.NoParent):
            parent_name(a)
    else:
        assert parent_name(a).labels == up.labels
    cut = len(a) // 2
    assert isinstance(suffix(a.labels[cut:]), HashedName)
    assert suffix(a.labels[cut:]) == dns.name.Name(a.labels[cut:])


@settings(max_examples=1000)
@given(names())
def test_canonical_wire_and_text_agree_with_dnspython(name: dns.name.Name) -> None:
    assert name_text(name) == name.to_text()
    if name.is_absolute():
        assert canonical_wire(name) == name.canonicalize().to_wire()
    else:
        with pytest.raises(dns.name.NeedAbsoluteNameOrOrigin):
            canonical_wire(name)


@settings(max_examples=1000)
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.sampled_from([1, 5, 8, 13, 15, 253]),
    st.binary(min_size=3, max_size=80),
)
def test_key_tag_agrees_with_dnspython(flags: int, protocol: int, alg: int, key: bytes) -> None:
    rd = DNSKEY(dns.rdataclass.IN, dns.rdatatype.DNSKEY, flags, protocol, alg, key)
    assert key_tag(rd) == dns.dnssec.key_id(rd)


@settings(max_examples=500)
@given(
    st.lists(st.one_of(short, label).filter(lambda b: b != b"*"), min_size=1, max_size=4),
    st.integers(0, 4),
    st.booleans(),
)
def test_signed_data_agrees_with_dnspython(labels: list[bytes], cut: int, star: bool) -> None:
    """The RRSIG signed data (RFC 4034 s3.1.8.1), wildcard expansion included: the owner is
    mixed case and the labels field may be below the owner's count."""
    owner = dns.name.Name([*labels, b""])
    signer = dns.name.Name(owner.labels[min(cut, len(labels)) :])
    count = label_count(owner) - (cut if star else 0)
    count = max(count, len(signer) - 1)
    rrset = dns.rrset.from_text(owner, 300, "IN", "NS", "Ns1.Example.", "ns2.example.")
    sig = RRSIG(
        dns.rdataclass.IN,
        dns.rdatatype.RRSIG,
        dns.rdatatype.NS,
        13,
        count,
        300,
        2000000000,
        1000000000,
        4242,
        signer,
        b"\x01" * 64,
    )
    ours = signed_data(sig, rrset.name, rrset.rdtype, rrset.rdclass, rrset)
    assert ours == dns.dnssec._make_rrsig_signature_data(rrset, sig)


@settings(max_examples=500)
@given(
    st.sampled_from(
        [
            ("A", "192.0.2.{n}"),
            ("AAAA", "2001:db8::{n}"),
            ("DNSKEY", "{f} 3 13 {b64}"),
            ("CDNSKEY", "{f} 3 8 {b64}"),
            ("DS", "{n} 13 2 {hex}"),
            ("CDS", "{n} 8 200 {hex}"),
            ("NS", "Ns{n}.ExAmple."),
            ("NSEC", "A{n}.Example. A RRSIG NSEC"),
            ("TXT", '"x{n}"'),
        ]
    ),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.binary(min_size=1, max_size=40),
)
def test_canonical_rdata_agrees_with_dnspython(kind, n: int, f: int, blob: bytes) -> None:
    import base64
    import hashlib

    rdtype, text = kind
    text = text.format(
        n=n, f=f, b64=base64.b64encode(blob).decode(), hex=hashlib.sha256(blob).hexdigest()
    )
    rd = dns.rdata.from_text("IN", rdtype, text)
    assert canonical_rdata(rd) == rd.to_digestable()
