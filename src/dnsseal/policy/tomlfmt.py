"""dnssec-policy in TOML: ``[policy.NAME]`` tables with BIND's option names.

::

    [policy.normal]
    dnskey-ttl = "PT1H"
    keys = [
      { role = "ksk", lifetime = "P1Y", algorithm = "ECDSAP256SHA256" },
      { role = "zsk", lifetime = "P60D", algorithm = "ECDSAP256SHA256" },
    ]
    nsec3param = { iterations = 0, optout = false, salt-length = 0 }

Durations are ISO 8601 or BIND unit strings (``"1h"``) or plain seconds.  :func:`format`
writes every option explicitly, and :func:`parse` reads back exactly what it wrote.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from typing import Any

from dnsseal.durations import format_duration
from dnsseal.errors import FileFormatError, OptionError
from dnsseal.keys import algorithms
from dnsseal.policy.build import PolicyErrors, build_policies, collect_policies
from dnsseal.policy.model import DIGEST_TEXT, OPTIONS, UNLIMITED, KeySpec, Policy

TOP_LEVEL = ("policy", "zone")


def load(text: str, source: str = "<toml>") -> dict[str, Any]:
    """The TOML document as a dict; a syntax error names the file and line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's tomllib only says where in the message: "... (at line 2, column 14)".
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = int(m.group(1)) if m else None
        msg = str(e)[: m.start()].strip() if m else str(e)
        raise FileFormatError(source, line, f"TOML syntax: {msg}") from None


def collect(text: str, source: str = "<toml>") -> tuple[dict[str, Policy], list[OptionError]]:
    """The policies of a TOML document and every problem found (for ``policy check``).
    Raises :class:`FileFormatError` for TOML syntax errors only."""
    doc = load(text, source)
    errors = [OptionError(k, f"unknown table (known: {', '.join(TOP_LEVEL)})")
              for k in doc if k not in TOP_LEVEL]  # fmt: skip
    policies = doc.get("policy", {})
    if not isinstance(policies, dict):
        errors.append(OptionError("policy", "expected [policy.NAME] tables"))
        policies = {}
    built, more = collect_policies(policies)
    return built, errors + more


def parse(text: str, source: str = "<toml>") -> dict[str, Policy]:
    """The policies of a TOML document (its ``[policy.*]`` tables).

    Raises :class:`FileFormatError` for TOML syntax errors and :class:`PolicyErrors` listing
    every bad or unknown option with its path."""
    doc = load(text, source)
    unknown = [k for k in doc if k not in TOP_LEVEL]
    policies = doc.get("policy", {})
    errors = [OptionError(k, f"unknown table (known: {', '.join(TOP_LEVEL)})") for k in unknown]
    if not isinstance(policies, dict):
        errors.append(OptionError("policy", "expected [policy.NAME] tables"))
        policies = {}
    try:
        built = build_policies(policies, source)
    except PolicyErrors as e:
        raise PolicyErrors(source, errors + e.errors) from None
    if errors:
        raise PolicyErrors(source, errors)
    return built


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key_line(k: KeySpec) -> str:
    parts = [f"role = {_quote(k.role)}"]
    life = "unlimited" if k.lifetime == UNLIMITED else format_duration(k.lifetime)
    parts.append(f"lifetime = {_quote(life)}")
    alg = algorithms.ALGORITHMS.get(k.algorithm)
    parts.append(f"algorithm = {_quote(alg.mnemonic) if alg else k.algorithm}")
    if k.bits is not None:
        parts.append(f"bits = {k.bits}")
    if k.key_directory:
        parts.append("key-directory = true")
    if k.key_store is not None:
        parts.append(f"key-store = {_quote(k.key_store)}")
    return "  { " + ", ".join(parts) + " },"


def _value(kind: str, value: object) -> str:
    if kind == "duration":
        assert isinstance(value, int)
        return _quote(format_duration(value))
    if kind == "bool":
        return "true" if value else "false"
    assert isinstance(value, tuple)
    return "[" + ", ".join(_quote(DIGEST_TEXT.get(d, str(d))) for d in value) + "]"


def format_policy(policy: Policy) -> str:
    """One ``[policy.NAME]`` table with every option written out."""
    name = policy.name if policy.name.replace("-", "").replace("_", "").isalnum() else None
    lines = [f"[policy.{name if name else _quote(policy.name)}]"]
    for opt in OPTIONS:
        lines.append(f"{opt.name} = {_value(opt.kind, policy.get(opt.name))}")
    lines.append("keys = [")
    lines += [_key_line(k) for k in policy.keys]
    lines.append("]")
    n3 = policy.nsec3param
    if n3 is not None:
        lines.append(
            f"nsec3param = {{ iterations = {n3.iterations}, "
            f"optout = {'true' if n3.optout else 'false'}, salt-length = {n3.salt_length} }}"
        )
    return "\n".join(lines) + "\n"


def format(policies: Iterable[Policy]) -> str:
    """A TOML document holding ``policies``."""
    return "\n".join(format_policy(p) for p in policies)
