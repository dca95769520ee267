"""The named.conf parser: the whole grammar, includes, errors with file:line."""

from __future__ import annotations

import pytest

from dnsseal.errors import FileFormatError
from dnsseal.policy import bindconf

FULL = r"""
// a comment
# another
/* and a
   multi-line one */
options {
    directory "/var/cache/bind";   // trailing comment
    listen-on port 5300 { 127.0.0.1; ::1; };
};
controls {
    inet 127.0.0.1 port 953 allow { 127.0.0.1; } keys { "rndc-key"; };
};
statistics-channels { inet 127.0.0.1 port 8053 allow { 127.0.0.1; }; };
logging {
    channel default_log { file "/var/log/named.log" versions 3 size 5m; severity info; };
    category default { default_log; };
};
key "a \"quoted\" key" { algorithm hmac-sha256; secret "c2VjcmV0"; };
view "internal" in { match-clients { 10.0.0.0/8; }; zone "x" { type primary; file "x"; }; };
"""


def test_whole_grammar() -> None:
    sts = bindconf.parse(FULL, "named.conf")
    assert [s.name for s in sts] == [
        "options", "controls", "statistics-channels", "logging", "key", "view"
    ]  # fmt: skip
    opts = sts[0]
    assert opts.line == 6
    assert opts.find("directory").args == ("/var/cache/bind",)  # type: ignore[union-attr]
    listen = opts.find("listen-on")
    assert listen is not None and listen.args == ("port", "5300")
    assert [i.name for i in listen.block or ()] == ["127.0.0.1", "::1"]
    inet = sts[1].block[0]  # type: ignore[index]
    blocks = [p for p in inet.parts if isinstance(p, bindconf.Block)]
    assert len(blocks) == 2  # allow { } keys { }
    assert blocks[1].statements[0].words[0].quoted
    assert sts[4].args == ('a "quoted" key',)
    assert sts[5].find("zone") is not None


def test_unparse_round_trip() -> None:
    sts = bindconf.parse(FULL, "named.conf")
    again = bindconf.parse(bindconf.unparse(sts), "x")
    strip = bindconf.unparse
    assert strip(again) == strip(sts)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('options {\n directory "x;\n};', 2, "unterminated quoted string"),
        ("/* never\nclosed", 1, "unterminated /* comment"),
        ("options {\n directory x;\n", 1, "'{' is never closed"),
        ("options { directory x; };\n};", 2, "unexpected '}'"),
        ("zone x {\n type primary\n};", 3, "missing ';' before '}'"),
        ('zone "a" { type primary; }\nzone "b" { };', 2, "missing ';' after '}'"),
        ("options { }", 1, "statement not terminated by ';'"),
    ],
)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(FileFormatError) as e:
        bindconf.parse(text, "named.conf")
    assert e.value.path == "named.conf"
    assert e.value.line == line
    assert message in e.value.message


def test_include_followed_and_cycles_refused() -> None:
    files = {
        "main": 'include "a";\noptions { include "b"; };',
        "a": 'key k { algorithm hmac-sha256; secret "x"; };',
        "b": 'directory "/d";',
        "loop1": 'include "loop2";',
        "loop2": 'acl x { any; };\ninclude "loop1";',
    }

    def read(name: str, including: str) -> tuple[str, str]:
        return files[name], name

    sts = bindconf.parse(files["main"], "main", read)
    assert [(s.name, s.source) for s in sts] == [("key", "a"), ("options", "main")]
    assert sts[1].find("directory").source == "b"  # type: ignore[union-attr]
    with pytest.raises(FileFormatError) as e:
        bindconf.parse(files["loop1"], "loop1", read)
    assert (e.value.path, e.value.line) == ("loop2", 2)
    assert "include cycle: loop1 -> loop2 -> loop1" in e.value.message
