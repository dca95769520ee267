"""Trust anchor files in BIND's forms, the built-in root anchors, negative anchors."""

from __future__ import annotations

from pathlib import Path

import dns.dnssec
import dns.name
import pytest

from dnsseal.errors import FileFormatError
from dnsseal.validator.anchors import AnchorSet, parse_trust_anchors, root_anchors

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
