"""Read ``dnssec-policy`` blocks out of BIND's ``named.conf`` text.

The statements come from :mod:`dnsseal.policy.bindconf` (the one named.conf parser);
everything other than ``dnssec-policy`` and ``key-store`` blocks is skipped.  The blocks
are turned into the plain form of :mod:`dnsseal.policy.build`, so named.conf and TOML
policies go through the same checks.
"""

from __future__ import annotations

from typing import Any

from dnsseal.errors import FileFormatError, OptionError
from dnsseal.policy.bindconf import Block, Statement
from dnsseal.policy.bindconf import parse as parse_conf
from dnsseal.policy.build import build_policies, collect_policies
from dnsseal.policy.model import Policy


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
    seen_block = False
    for part in st.parts:
        if seen_block:
            raise FileFormatError(source, part.line, "missing ';' after '}'")
        if isinstance(part, Block):
            seen_block = True
            for inner in part.statements:
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
    statements = parse_conf(text, source)
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
