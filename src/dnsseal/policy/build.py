"""Build :class:`~dnsseal.policy.model.Policy` values from parsed text (TOML or named.conf).

Both front ends hand over the same plain form: ``{name: {option: value}}`` where values are
strings, ints, bools, lists and tables as TOML has them.  Every problem is collected as an
:class:`~dnsseal.errors.OptionError` whose option is the path (``policy.fast.dnskey-ttl``)
so a user can fix the whole file at once; :class:`PolicyErrors` carries them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from dnsseal.durations import parse_duration
from dnsseal.errors import InputError, OptionError
from dnsseal.keys import algorithms
from dnsseal.policy.model import (
    BUILTIN,
    DIGEST_NAMES,
    OPTIONS_BY_NAME,
    ROLES,
    UNLIMITED,
    KeySpec,
    Nsec3Param,
    Policy,
    Role,
)

KEY_FIELDS = ("role", "lifetime", "algorithm", "bits", "key-directory", "key-store")
NSEC3_FIELDS = ("iterations", "optout", "salt-length")


def _unknown(name: str, known: tuple[str, ...] | list[str]) -> str:
    """An unknown option's message: the close name when it is a typo, else the known ones."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    if close:
        return f"unknown option (did you mean {close[0]!r}?)"
    return f"unknown option (known: {', '.join(sorted(known))})"


class PolicyErrors(InputError):
    """Every problem found in a policy file; ``errors`` lists them in file order."""

    def __init__(self, source: str, errors: list[OptionError]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} problem(s) in policy definitions:\n{lines}")


class _Collector:
    def __init__(self) -> None:
        self.errors: list[OptionError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(OptionError(path, message))


def _duration(value: Any, path: str, errs: _Collector, *, unlimited: bool = False) -> int | None:
    if isinstance(value, bool):
        errs.add(path, f"expected a duration, got {value!r}")
        return None
    if isinstance(value, int):
        if value < 0:
            errs.add(path, "a duration cannot be negative")
            return None
        return value
    if not isinstance(value, str):
        errs.add(path, f"expected a duration such as PT1H or 1h, got {value!r}")
        return None
    try:
        seconds = parse_duration(value, allow_unlimited=unlimited)
    except InputError as e:
        errs.add(path, str(e))
        return None
    return UNLIMITED if seconds < 0 else seconds


def _bool(value: Any, path: str, errs: _Collector) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return value.lower() in ("yes", "true")
    errs.add(path, f"expected yes/no (true/false), got {value!r}")
    return None


def _int(value: Any, path: str, errs: _Collector, lo: int, hi: int) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        errs.add(path, f"expected a number, got {value!r}")
        return None
    if not lo <= value <= hi:
        errs.add(path, f"{value} is out of range {lo}..{hi}")
        return None
    return value


def _digests(value: Any, path: str, errs: _Collector) -> tuple[int, ...] | None:
    items = value if isinstance(value, list) else [value]
    out: list[int] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and item in (1, 2, 4):
            out.append(item)
        elif isinstance(item, str) and item.lower() in DIGEST_NAMES:
            out.append(DIGEST_NAMES[item.lower()])
        elif isinstance(item, str) and item.isdigit() and int(item) in (1, 2, 4):
            out.append(int(item))
        else:
            errs.add(path, f"unknown digest type {item!r} (use sha-256, sha-384 or 2, 4)")
    return tuple(out) if out else None


# Names named.conf accepts for an algorithm besides its mnemonic and number (BIND's
# lib/dns/rcode.c secalg table; named-checkconf is the oracle in tests/keymgr/test_policy.py).
BIND_ALGORITHM_ALIASES = {"ECDSA256": 13, "ECDSA384": 14}


def _algorithm(value: Any, path: str, errs: _Collector) -> int | None:
    text = str(value).strip()
    text = str(BIND_ALGORITHM_ALIASES.get(text.upper(), text))
    try:
        return algorithms.for_generation(text).number
    except InputError as e:
        errs.add(path, str(e))
        return None


def _key(raw: Any, path: str, errs: _Collector) -> KeySpec | None:
    if not isinstance(raw, Mapping):
        errs.add(path, "expected a table { role = ..., lifetime = ..., algorithm = ... }")
        return None
    ok = True
    for name in raw:
        if name not in KEY_FIELDS:
            errs.add(f"{path}.{name}", _unknown(name, KEY_FIELDS))
            ok = False
    role = raw.get("role")
    if role not in ROLES:
        errs.add(f"{path}.role", f"expected ksk, zsk or csk, got {role!r}")
        ok = False
    if "algorithm" not in raw:
        errs.add(f"{path}.algorithm", "missing (every key needs an algorithm)")
        return None
    alg = _algorithm(raw["algorithm"], f"{path}.algorithm", errs)
    lifetime = _duration(raw.get("lifetime", "unlimited"), f"{path}.lifetime", errs, unlimited=True)
    bits = None
    if "bits" in raw:
        bits = _int(raw["bits"], f"{path}.bits", errs, 1, 16384)
        if bits is None:
            ok = False
        elif alg is not None:
            a = algorithms.get(alg)
            if not a.min_bits <= bits <= a.max_bits:
                errs.add(
                    f"{path}.bits",
                    f"{a.mnemonic} keys are {a.min_bits}..{a.max_bits} bits, not {bits}",
                )
                ok = False
    kd = _bool(raw.get("key-directory", False), f"{path}.key-directory", errs)
    store = raw.get("key-store")
    if store is not None and not (
        isinstance(store, str) and store.lower().startswith(("pkcs11:", "software"))
    ):
        errs.add(f"{path}.key-store", f"expected a pkcs11: URI or 'software', got {store!r}")
        ok = False
    if isinstance(store, str) and store.lower().startswith("software"):
        store = None
    if not ok or alg is None or lifetime is None or kd is None:
        return None
    r: Role = role  # type: ignore[assignment]
    return KeySpec(r, alg, lifetime, bits, kd, store)


def _nsec3(raw: Any, path: str, errs: _Collector) -> Nsec3Param | None:
    if raw is False:
        return None
    if raw is True:
        return Nsec3Param()
    if not isinstance(raw, Mapping):
        errs.add(path, "expected a table { iterations = 0, optout = false, salt-length = 0 }")
        return None
    for name in raw:
        if name not in NSEC3_FIELDS:
            errs.add(f"{path}.{name}", _unknown(name, NSEC3_FIELDS))
    it = _int(raw.get("iterations", 0), f"{path}.iterations", errs, 0, 65535)
    oo = _bool(raw.get("optout", False), f"{path}.optout", errs)
    sl = _int(raw.get("salt-length", 0), f"{path}.salt-length", errs, 0, 255)
    if it is None or oo is None or sl is None:
        return None
    return Nsec3Param(it, oo, sl)


def build_policy(name: str, raw: Mapping[str, Any], path: str, errs: _Collector) -> Policy:
    """One policy from its plain form; problems go to ``errs`` (the result then has the
    defaults in place of the bad values)."""
    values: dict[str, object] = {}
    for opt_name, value in raw.items():
        where = f"{path}.{opt_name}"
        if opt_name == "keys":
            if not isinstance(value, list):
                errs.add(where, "expected a list of key tables")
                continue
            keys = [_key(k, f"{where}[{i}]", errs) for i, k in enumerate(value)]
            values["keys"] = tuple(k for k in keys if k is not None)
            continue
        if opt_name == "nsec3param":
            values["nsec3param"] = _nsec3(value, where, errs)
            continue
        opt = OPTIONS_BY_NAME.get(opt_name)
        if opt is None:
            errs.add(where, _unknown(opt_name, [*OPTIONS_BY_NAME, "keys", "nsec3param"]))
            continue
        parsed: object
        if opt.kind == "duration":
            parsed = _duration(value, where, errs)
        elif opt.kind == "bool":
            parsed = _bool(value, where, errs)
        else:
            parsed = _digests(value, where, errs)
        if parsed is not None:
            values[opt.attr] = parsed
    if name in BUILTIN:
        errs.add(path, f"{name!r} is a built-in policy and cannot be redefined")
    return Policy(name=name, **values)  # type: ignore[arg-type]


def collect_policies(
    raw: Mapping[str, Any],
) -> tuple[dict[str, Policy], list[OptionError]]:
    """Every policy of a ``{name: {option: value}}`` mapping and every problem found (a
    policy with problems is built with defaults in place of its bad values)."""
    errs = _Collector()
    out: dict[str, Policy] = {}
    for name, body in raw.items():
        path = f"policy.{name}"
        if not isinstance(body, Mapping):
            errs.add(path, "expected a table of options")
            continue
        out[name] = build_policy(name, body, path, errs)
    return out, errs.errors


def build_policies(raw: Mapping[str, Any], source: str) -> dict[str, Policy]:
    """Like :func:`collect_policies`, but raises :class:`PolicyErrors` listing every problem
    (``source`` names the file in the message)."""
    out, errors = collect_policies(raw)
    if errors:
        raise PolicyErrors(source, errors)
    return out


def lookup(name: str, defined: Mapping[str, Policy]) -> Policy:
    """A policy by name: one defined in the configuration, else a built-in one."""
    if name in defined:
        return defined[name]
    if name in BUILTIN:
        return BUILTIN[name]
    known = ", ".join(sorted({*defined, *BUILTIN}))
    raise OptionError("-p", f"no policy named {name!r} (known: {known})")
