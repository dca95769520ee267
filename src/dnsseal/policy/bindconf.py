"""BIND's ``named.conf`` grammar: tokens, statements and blocks, with ``include`` followed.

The whole grammar, not only what dnsseal uses: ``//``, ``#`` and ``/* */`` comments, quoted
strings (with ``\\`` escapes), nested blocks, and statements that hold several blocks
(``inet 127.0.0.1 port 953 allow { ... } keys { ... };`` in ``controls``)::

    statement := part* ";"        part := WORD | QUOTED | "{" statement* "}"

Every statement keeps the file and line it starts on, so whoever interprets it can name
them.  ``include "FILE";`` (at any depth) is replaced by the statements of FILE; reading
FILE is the caller's business (a ``read`` callback: this module does no I/O), a file
included from itself (directly or not) is an error naming the ``include``.

Raises :class:`~dnsseal.errors.FileFormatError` (file:line) for an unterminated string or
comment, an unbalanced brace, a missing ``;``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dnsseal.errors import FileFormatError

__all__ = ["Block", "Statement", "Token", "parse", "tokenize", "unparse"]


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    line: int
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """``{ statements }`` inside a statement."""

    statements: tuple[Statement, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement: its words and blocks in order, where it starts."""

    parts: tuple[Token | Block, ...]
    source: str
    line: int

    @property
    def name(self) -> str:
        """The first word, lower case ('' for a statement that starts with a block)."""
        first = self.parts[0] if self.parts else None
        return first.text.lower() if isinstance(first, Token) else ""

    @property
    def words(self) -> tuple[Token, ...]:
        """The words before the first block."""
        out = []
        for p in self.parts:
            if isinstance(p, Block):
                break
            out.append(p)
        return tuple(out)

    @property
    def args(self) -> tuple[str, ...]:
        """The texts of the words after the name, before the first block."""
        return tuple(w.text for w in self.words[1:])

    @property
    def block(self) -> tuple[Statement, ...] | None:
        """The statements of the first block (None: the statement has no block)."""
        for p in self.parts:
            if isinstance(p, Block):
                return p.statements
        return None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def find(self, name: str) -> Statement | None:
        """The first statement called ``name`` in this statement's block."""
        return next(self.find_all(name), None)

    def find_all(self, name: str) -> Iterator[Statement]:
        for st in self.block or ():
            if st.name == name:
                yield st

    def text(self) -> str:
        """The statement in named.conf syntax (see :func:`unparse`)."""
        return unparse((self,))


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
            start, j, buf = line, i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1  # BIND allows a newline inside a quoted string
                buf.append(text[j])
                j += 1
            if j >= n:
                raise FileFormatError(source, start, "unterminated quoted string")
            out.append(Token("".join(buf), start, True))
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


MAX_DEPTH = 64  # named.conf nests a few levels; a hostile file must not exhaust the stack

Reader = Callable[[str, str], tuple[str, str]]
"""``read(path, including_source) -> (text, source name)`` for ``include``; raises
:class:`~dnsseal.errors.DnssealError` when the file cannot be read."""


def parse(text: str, source: str = "named.conf", read: Reader | None = None) -> list[Statement]:
    """The statements of named.conf ``text``, ``include`` replaced by the included file's
    statements when ``read`` is given (kept as a statement otherwise)."""
    return _parse(text, source, read, (source,))


def _parse(text: str, source: str, read: Reader | None, stack: tuple[str, ...]) -> list[Statement]:
    if len(stack) > MAX_DEPTH:
        raise FileFormatError(source, None, f"includes nested deeper than {MAX_DEPTH}")
    tokens = tokenize(text, source)
    pos = 0

    def block(opening: Token | None, depth: int = 0) -> list[Statement]:
        nonlocal pos
        if depth > MAX_DEPTH:
            assert opening is not None
            raise FileFormatError(source, opening.line, f"blocks nested deeper than {MAX_DEPTH}")
        stmts: list[Statement] = []
        while pos < len(tokens):
            tok = tokens[pos]
            if _special(tok, "}"):
                if opening is None:
                    raise FileFormatError(source, tok.line, "unexpected '}'")
                return stmts
            if _special(tok, ";"):
                pos += 1  # an empty statement
                continue
            st = statement(depth)
            if st.name == "include" and read is not None:
                stmts += _include(st, read, stack)
            else:
                stmts.append(st)
        if opening is not None:
            raise FileFormatError(source, opening.line, "'{' is never closed")
        return stmts

    def statement(depth: int) -> Statement:
        nonlocal pos
        start = tokens[pos].line
        parts: list[Token | Block] = []
        while pos < len(tokens):
            t = tokens[pos]
            if _special(t, ";"):
                pos += 1
                return Statement(tuple(parts), source, start)
            if _special(t, "{"):
                pos += 1
                inner = block(t, depth + 1)
                pos += 1  # the '}'
                parts.append(Block(tuple(inner), t.line))
                continue
            if _special(t, "}"):
                raise FileFormatError(source, t.line, "missing ';' before '}'")
            if parts and isinstance(parts[-1], Block) and _starts_statement(t):
                raise FileFormatError(source, t.line, "missing ';' after '}'")
            parts.append(t)
            pos += 1
        raise FileFormatError(source, start, "statement not terminated by ';'")

    return block(None)


# Words may follow a block (``allow { } keys { } read-only yes``, ``response-policy { }
# break-dnssec yes``, ``deny-answer-addresses { } except-from { }``), but one of these
# after a block is a new statement whose ';' is missing (``zone "a" { ... } zone "b"``).
_STATEMENTS = {
    "acl", "controls", "dnssec-policy", "dyndb", "http", "include", "key", "key-store",
    "logging", "managed-keys", "masters", "options", "parental-agents", "plugin", "primaries",
    "remote-servers", "server", "statistics-channels", "tls", "trust-anchors", "trusted-keys",
    "view", "zone", "type", "file",
}  # fmt: skip


def _starts_statement(tok: Token) -> bool:
    return not tok.quoted and tok.text.lower() in _STATEMENTS


def _include(st: Statement, read: Reader, stack: tuple[str, ...]) -> list[Statement]:
    if len(st.parts) != 2 or not isinstance(st.parts[1], Token):
        raise FileFormatError(st.source, st.line, 'include takes one file name: include "FILE";')
    text, name = read(st.parts[1].text, st.source)
    if name in stack:
        chain = " -> ".join((*stack[stack.index(name) :], name))
        raise FileFormatError(st.source, st.line, f"include cycle: {chain}")
    return _parse(text, name, read, (*stack, name))


def _quote(tok: Token) -> str:
    if not tok.quoted:
        return tok.text
    return '"' + tok.text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unparse(statements: tuple[Statement, ...] | list[Statement], indent: str = "") -> str:
    """named.conf text for ``statements`` (comments are not kept); :func:`parse` reads it
    back to the same statements (but their lines)."""
    lines = []
    for st in statements:
        out: list[str] = []
        for p in st.parts:
            if isinstance(p, Token):
                out.append(_quote(p))
            else:
                inner = unparse(p.statements, indent + "\t")
                out.append("{\n" + inner + indent + "}")
        lines.append(indent + " ".join(out) + ";\n")
    return "".join(lines)
