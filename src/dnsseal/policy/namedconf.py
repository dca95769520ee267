"""Read ``dnssec-policy`` blocks out of BIND's ``named.conf`` text.

A small tokenizer for named.conf syntax (``//``, ``#`` and ``/* */`` comments, quoted
strings, nested braces, ``;``) and a statement parser; everything other than
``dnssec-policy`` blocks is skipped.  The blocks are turned into the plain form of
:mod:`dnsseal.policy.build`, so named.conf and TOML policies go through the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dnsseal.errors import FileFormatError, OptionError
from dnsseal.policy.build import build_policies, collect_policies
from dnsseal.policy.model import Policy


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    line: int
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Statement:
    """``word word ... [{ statements }] ;`` with the line it starts on.

    Some statements outside ``dnssec-policy`` go on after their first block
    (``inet 127.0.0.1 allow { ... } keys { ... };`` in ``controls``): what follows the
    first block is kept in ``tail`` (words, and further blocks as ``{``/``}`` tokens)."""

    words: tuple[Token, ...]
    block: tuple[Statement, ...] | None
    line: int
    tail: tuple[Token, ...] = ()


def tokenize(text: str, source: str = "named.conf") -> list[Token]:
    """Tokens of named.conf text; an unterminated string or comment names its line."""
    out: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise FileFormatError(source, line, "unterminated /* comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif c == '"':
            j = i + 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    raise FileFormatError(source, line, "unterminated quoted string")
                buf.append(text[j])
                j += 1
            if j >= n:
                raise FileFormatError(source, line, "unterminated quoted string")
            out.append(Token("".join(buf), line, True))
            i = j + 1
        elif c in "{};":
            out.append(Token(c, line))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '{};"#':
                if text.startswith("//", j) or text.startswith("/*", j):
                    break
                j += 1
            out.append(Token(text[i:j], line))
            i = j
    return out


def _special(tok: Token, ch: str) -> bool:
    return not tok.quoted and tok.text == ch


def parse_statements(tokens: list[Token], source: str = "named.conf") -> list[Statement]:
    """The statement tree; unbalanced braces or a missing ``;`` name the line."""
    pos = 0

    def block(depth: int) -> list[Statement]:
        nonlocal pos
        stmts: list[Statement] = []
        while pos < len(tokens):
            tok = tokens[pos]
            if _special(tok, "}"):
                if depth == 0:
                    raise FileFormatError(source, tok.line, "unexpected '}'")
                return stmts
            if _special(tok, ";"):
                pos += 1
                continue
            words: list[Token] = []
            tail: list[Token] = []
            sub: tuple[Statement, ...] | None = None
            start = tok.line
            while pos < len(tokens) and not _special(tokens[pos], ";"):
                t = tokens[pos]
                if _special(t, "{"):
                    pos += 1
                    inner = block(depth + 1)
                    if pos >= len(tokens):
                        raise FileFormatError(source, t.line, "'{' is never closed")
                    pos += 1  # the '}'
                    if sub is None:
                        sub = tuple(inner)
                    else:
                        tail += [t, Token("}", tokens[pos - 1].line)]
                    continue
                if _special(t, "}"):
                    raise FileFormatError(source, t.line, "missing ';' before '}'")
                (words if sub is None else tail).append(t)
                pos += 1
            if pos >= len(tokens):
                raise FileFormatError(source, start, "statement not terminated by ';'")
            pos += 1
            stmts.append(Statement(tuple(words), sub, start, tuple(tail)))
        return stmts  # an unclosed '{' is reported by the caller, with its line

    return block(0)


def _key_line(st: Statement, source: str, stores: dict[str, str | None]) -> dict[str, Any]:
    words = [w.text for w in st.words]
    if not words:
        raise FileFormatError(source, st.line, "empty key line")
    out: dict[str, Any] = {"role": words[0].lower()}
    i = 1
    while i < len(words):
        w = words[i].lower()
        if w == "key-directory":
            out["key-directory"] = True
            i += 1
        elif w == "key-store" and i + 1 < len(words):
            name = words[i + 1]
            if name not in stores:
                raise FileFormatError(source, st.line, f"key-store {name!r} is not defined")
            uri = stores[name]
            if uri is None:
                out["key-directory"] = True  # a key-store with only a directory: files
            else:
                out["key-store"] = uri
            i += 2
        elif w in ("lifetime", "algorithm") and i + 1 < len(words):
            out[w] = words[i + 1]
            i += 2
        elif w == "algorithm":
            raise FileFormatError(source, st.line, "'algorithm' needs a value")
        elif "algorithm" in out and w.isdigit() and "bits" not in out:
            out["bits"] = int(w)
            i += 1
        else:
            raise FileFormatError(
                source,
                st.line,
                f"unexpected {words[i]!r} in key line (expected: ksk|zsk|csk "
                "[key-directory | key-store NAME] "
                "lifetime DURATION algorithm NAME [BITS])",
            )
    return out


def _nsec3(st: Statement, source: str) -> dict[str, Any]:
    words = [w.text for w in st.words[1:]]
    if len(words) % 2:
        raise FileFormatError(source, st.line, "nsec3param takes name/value pairs")
    out: dict[str, Any] = {}
    for name, value in zip(words[::2], words[1::2], strict=True):
        out[name.lower()] = value
    return out


def _no_tail(st: Statement, source: str) -> None:
    """Inside dnssec-policy nothing follows a block but its ';'."""
    if st.tail:
        raise FileFormatError(source, st.tail[0].line, "missing ';' after '}'")
    for inner in st.block or ():
        _no_tail(inner, source)


def _policy_body(
    stmts: tuple[Statement, ...], source: str, stores: dict[str, str | None]
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for st in stmts:
        _no_tail(st, source)
        if not st.words:
            raise FileFormatError(source, st.line, "statement without a name")
        name = st.words[0].text.lower()
        if name == "keys":
            body["keys"] = [_key_line(k, source, stores) for k in st.block or ()]
        elif name == "nsec3param":
            body["nsec3param"] = _nsec3(st, source)
        elif st.block is not None:
            body[name] = [s.words[0].text for s in st.block if s.words]
        elif len(st.words) == 2:
            body[name] = st.words[1].text
        else:
            raise FileFormatError(source, st.line, f"{name}: expected one value")
    return body


def extract(text: str, source: str = "named.conf") -> dict[str, dict[str, Any]]:
    """The plain form of every ``dnssec-policy`` block in ``text``, in file order."""
    out: dict[str, dict[str, Any]] = {}
    statements = parse_statements(tokenize(text, source), source)
    stores = _key_stores(statements, source)
    for st in statements:
        if not st.words or st.words[0].text.lower() != "dnssec-policy" or st.block is None:
            continue
        _no_tail(st, source)
        if len(st.words) != 2:
            raise FileFormatError(source, st.line, "dnssec-policy needs exactly one name")
        name = st.words[1].text
        if name in out:
            raise FileFormatError(source, st.line, f"dnssec-policy {name!r} defined twice")
        out[name] = _policy_body(st.block, source, stores)
    return out


def _key_stores(statements: list[Statement], source: str) -> dict[str, str | None]:
    """BIND 9.20's ``key-store "NAME" { directory ...; pkcs11-uri "..."; };`` blocks: name ->
    the PKCS#11 URI, or None for a store that is only a directory."""
    stores: dict[str, str | None] = {}
    for st in statements:
        if not st.words or st.words[0].text.lower() != "key-store" or st.block is None:
            continue
        if len(st.words) != 2:
            raise FileFormatError(source, st.line, "key-store needs exactly one name")
        uri: str | None = None
        for sub in st.block:
            if sub.words and sub.words[0].text.lower() == "pkcs11-uri":
                if len(sub.words) != 2:
                    raise FileFormatError(source, sub.line, "pkcs11-uri needs one URI")
                uri = sub.words[1].text
        stores[st.words[1].text] = uri
    return stores


def parse(text: str, source: str = "named.conf") -> dict[str, Policy]:
    """The policies defined in named.conf text (see :func:`build_policies` for errors)."""
    return build_policies(extract(text, source), source)


def collect(text: str, source: str = "named.conf") -> tuple[dict[str, Policy], list[OptionError]]:
    """The policies and every problem in them (syntax errors still raise)."""
    return collect_policies(extract(text, source))
