"""Trust anchor files in BIND's forms, the built-in root anchors, negative anchors."""

from __future__ import annotations

import base64
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnsseal.errors import FileFormatError
from dnsseal.validator.anchors import (
    AnchorSet,
    TrustAnchor,
    format_trust_anchors,
    parse_trust_anchors,
    root_anchors,
)
from dnsseal.validator.rfc5011 import KeyState, ManagedKey, ManagedZone, from_json, to_json

BIND_KEYS = Path("/etc/bind/bind.keys")


def test_builtin_root_anchors_match_bind_keys() -> None:
    # bind.keys ships KSK-2017 as initial-key and KSK-2024 as initial-ds: the built-in DS
    # digests must be exactly those.
    parsed = parse_trust_anchors(BIND_KEYS.read_text(), str(BIND_KEYS))
    root = parsed.closest(dns.name.root)
    assert root is not None and root.managed
    builtin = root_anchors().closest(dns.name.root)
    assert builtin is not None
    by_tag = {d.key_tag: d for d in builtin.ds}
    assert set(by_tag) == {20326, 38696}
    (ksk2017,) = root.keys
    assert dns.dnssec.key_id(ksk2017) == 20326
    expect = dns.dnssec.make_ds(dns.name.root, ksk2017, "SHA256")
    assert by_tag[20326] == expect
    assert by_tag[38696] in root.ds


def test_all_forms_and_comments() -> None:
    text = """
    # a comment
    trust-anchors {
        example. static-ds 12345 13 2 "AABBCCDD AABBCCDDAABBCCDDAABBCCDD
            AABBCCDDAABBCCDDAABBCCDDAABBCCDD";   // split digest
        example. static-key 257 3 13 "AAAA";
        /* block
           comment */
        org. initial-key 257 3 13 "AAAA";
        net. initial-ds 1 8 4 "000000000000000000000000000000000000000000000000
            000000000000000000000000000000000000000000000000";
    };
    trusted-keys { com. 257 3 13 "AAAA"; };
    """
    a = parse_trust_anchors(text, "t.conf")
    ex = a.closest(dns.name.from_text("www.example."))
    assert ex is not None and len(ex.ds) == 1 and len(ex.keys) == 1 and not ex.managed
    assert ex.ds[0].digest == bytes.fromhex("AABBCCDD" * 8)
    assert a.closest(dns.name.from_text("a.org.")).managed  # type: ignore[union-attr]
    assert a.closest(dns.name.from_text("a.net.")).managed  # type: ignore[union-attr]
    assert not a.closest(dns.name.from_text("a.com.")).managed  # type: ignore[union-attr]
    assert a.closest(dns.name.from_text("a.info.")) is None


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('trust-anchors {\n  . static-ds 1 8 2 "zz";\n};', 2, "static-ds data"),
        ('trust-anchors {\n\n  . bogus-key 257 3 8 "AA";\n};', 3, "unknown anchor type"),
        ("options { };", 1, "expected trust-anchors"),
        ('trust-anchors {\n  . static-key 257 3 8 "AA"\n};', 3, "expected ';'"),
        ('trust-anchors { . static-key 257 x 8 "AA"; };', 1, "bad anchor"),
        ("trust-anchors {", 1, "unexpected end"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(FileFormatError) as e:
        parse_trust_anchors(text, "anchors.conf")
    assert e.value.path == "anchors.conf"
    assert e.value.line == line
    assert words in e.value.message


def test_negative_anchor_expires() -> None:
    a = AnchorSet().with_negative(dns.name.from_text("broken.example."), 1000)
    assert a.negative_for(dns.name.from_text("www.broken.example."), 999) is not None
    assert a.negative_for(dns.name.from_text("www.broken.example."), 1000) is None
    assert a.negative_for(dns.name.from_text("example."), 10) is None


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_zone = st.lists(_label, max_size=3).map(lambda ls: dns.name.from_text(".".join(ls) or "."))
_ds = st.builds(
    lambda tag, alg, digest: dns.rdata.from_text("IN", "DS", f"{tag} {alg} 2 {digest.hex()}"),
    st.integers(0, 65535),
    st.integers(1, 255),
    st.binary(min_size=32, max_size=32),
)
_key = st.builds(
    lambda flags, alg, data: dns.rdata.from_text(
        "IN", "DNSKEY", f"{flags} 3 {alg} {base64.b64encode(data).decode()}"
    ),
    st.sampled_from([256, 257, 385]),
    st.integers(1, 255),
    st.binary(min_size=1, max_size=64),
)
_anchor = st.builds(
    lambda zone, ds, keys, managed: TrustAnchor(zone, tuple(ds), tuple(keys), managed),
    _zone,
    st.lists(_ds, max_size=2),
    st.lists(_key, max_size=2),
    st.booleans(),
).filter(lambda a: bool(a.ds or a.keys))


@given(st.lists(_anchor, min_size=1, max_size=4, unique_by=lambda a: a.zone))
def test_trust_anchor_text_round_trips(anchors: list[TrustAnchor]) -> None:
    # Mixed managed/static entries for one zone read back as managed (as in BIND).
    text = format_trust_anchors(AnchorSet(tuple(anchors)))
    back = parse_trust_anchors(text, "rt.conf")
    assert back == AnchorSet(tuple(anchors))
    assert format_trust_anchors(back) == text


_state = st.builds(
    lambda zone, keys, last, nxt: ManagedZone(zone, tuple(keys), (), last, nxt),
    _zone,
    st.lists(
        st.builds(ManagedKey, _key, st.sampled_from(list(KeyState)), st.integers(0, 2**32)),
        max_size=4,
    ),
    st.integers(0, 2**32),
    st.integers(0, 2**32),
)


@given(st.lists(_state, max_size=3), st.lists(_ds, max_size=2))
def test_rfc5011_state_round_trips(zones: list[ManagedZone], ds: list[object]) -> None:
    if zones:
        zones[0] = ManagedZone(
            zones[0].zone,
            zones[0].keys,
            tuple(ds),
            zones[0].last_refresh,
            zones[0].next_refresh,  # type: ignore[arg-type]
        )
    assert from_json(to_json(zones), "s.json") == zones
