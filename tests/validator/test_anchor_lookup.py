"""The trust-anchor lookups (``AnchorSet.closest``, ``negative_for``, ``describe``), which
now use the validator's label-tuple name helpers and cached key tags, against the same
lookups written with dnspython's own ``Name.is_subdomain`` and ``dns.dnssec.key_id`` on
random names and anchor sets."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.validator.anchors import AnchorSet, NegativeAnchor, TrustAnchor

label = st.sampled_from([b"a", b"A", b"b", b"B", b"*", b"\xc0", b"\xe0", b"xY", b"@", b"["])


@st.composite
def names(draw: st.DrawFn) -> dns.name.Name:
    labels = draw(st.lists(label, max_size=4))
    if draw(st.booleans()):
        labels.append(b"")
    return dns.name.Name(labels)


def _reference_closest(anchors: AnchorSet, name: dns.name.Name) -> TrustAnchor | None:
    best = None
    for a in anchors.anchors:
        if name.is_subdomain(a.zone) and (best is None or len(a.zone) > len(best.zone)):
            best = a
    return best


def _reference_negative(anchors: AnchorSet, name: dns.name.Name, now: int) -> object:
    for n in anchors.negative:
        if name.is_subdomain(n.zone) and now < n.expires:
            return n
    return None


@settings(max_examples=400, deadline=None)
@given(
    st.lists(names(), max_size=5),
    st.lists(st.tuples(names(), st.integers(0, 20)), max_size=4),
    names(),
    st.integers(0, 20),
)
def test_anchor_lookups_agree_with_dnspython(
    zones: list[dns.name.Name],
    negative: list[tuple[dns.name.Name, int]],
    name: dns.name.Name,
    now: int,
) -> None:
    anchors = AnchorSet(
        tuple(TrustAnchor(z) for z in zones),
        tuple(NegativeAnchor(z, expires) for z, expires in negative),
    )
    assert anchors.closest(name) is _reference_closest(anchors, name)
    assert anchors.negative_for(name, now) is _reference_negative(anchors, name, now)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(min_size=0, max_size=40))
def test_describe_names_dnspython_key_tags(flags: int, algorithm: int, key: bytes) -> None:
    rd = DNSKEY(dns.rdataclass.IN, dns.rdatatype.DNSKEY, flags, 3, algorithm, key)
    anchor = TrustAnchor(dns.name.root, keys=(rd,))
    assert anchor.describe() == f".: DNSKEY {dns.dnssec.key_id(rd)}"
