"""Policy and configuration files on disk.

``-c FILE`` is either dnsseal's TOML (``[policy.NAME]`` tables) or a BIND ``named.conf``
whose ``dnssec-policy`` blocks are used as they are; the file name decides (``.toml``).
"""

from __future__ import annotations

from pathlib import Path

from dnsseal.errors import OptionError
from dnsseal.policy import build, namedconf, tomlfmt
from dnsseal.policy.build import PolicyErrors
from dnsseal.policy.checks import check_policy
from dnsseal.policy.model import Policy
from dnsseal.storage import atomic, options
from dnsseal.storage.files import read_text


def write_text(path: str | Path, text: str) -> None:
    """Write an output file (a report, an SVG) atomically: readers see the old file or the
    whole new one.  Raises :class:`StorageError` naming the file."""
    atomic.replace(Path(path), text.encode("utf-8"))


def is_toml(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".toml"


# Tables only a server config has: a TOML file with one of them is read as a server config
# (its [policy.NAME] tables, and those of the file its server.policies names).
SERVER_ONLY = ("server", "key", "acl", "alerts", "logging", "resolver")


def collect_policies(
    path: str | Path, *, follow: bool = True
) -> tuple[dict[str, Policy], list[OptionError]]:
    """Every policy in the file and every problem found in it (syntax errors raise
    :class:`~dnsseal.errors.FileFormatError`).  The file is a policy file (TOML
    ``[policy.NAME]`` tables, or a named.conf) or a server config: then its ``[policy.NAME]``
    tables and, with ``follow``, those of the file its ``server.policies`` names (the
    policies the server would run); its other sections are ``dnsseal checkconf``'s."""
    text = read_text(path)
    if not is_toml(path):
        return namedconf.collect(text, str(path))
    doc = tomlfmt.load(text, str(path))
    if not any(k in SERVER_ONLY for k in doc):
        return tomlfmt.collect(text, str(path))
    errors = [
        OptionError(k, f"unknown section (expected {', '.join(options.TOP_LEVEL)})")
        for k in doc
        if k not in options.TOP_LEVEL
    ]
    raw = doc.get("policy", {})
    if not isinstance(raw, dict):
        errors.append(OptionError("policy", "expected [policy.NAME] tables"))
        raw = {}
    policies, more = build.collect_policies(raw)
    errors += more
    server = doc.get("server", {})
    pfile = server.get("policies") if isinstance(server, dict) else None
    if follow and isinstance(pfile, str):
        other = Path(path).parent / pfile
        theirs, their_errors = collect_policies(other, follow=False)
        errors += [OptionError(f"{other}: {e.option}", e.message) for e in their_errors]
        for name, p in theirs.items():
            if name in policies:
                errors.append(OptionError(f"policy.{name}", f"defined twice: here and in {other}"))
            else:
                policies[name] = p
    return policies, errors


def load_policies(path: str | Path | None) -> dict[str, Policy]:
    """The policies a configuration file defines ({} without a file); raises
    :class:`~dnsseal.policy.build.PolicyErrors` listing every problem, including what
    ``dnsseal policy check`` rejects as unsafe (nothing runs a policy that check refuses)."""
    if path is None:
        return {}
    policies, errors = collect_policies(path)
    for p in policies.values():
        errors += check_policy(p)
    if errors:
        raise PolicyErrors(str(path), errors)
    return policies
