"""The ``[resolver]`` section of a config file (TOML), for ``dnsseal resolver --config``.

Option names are Unbound's, so an unbound.conf translates line by line::

    [resolver]
    aggressive-nsec = true               # RFC 8198 (default false)
    cache-size = "64m"                   # memory for cached replies and results (k, m, g)
    domain-insecure = ["corp.example."]  # no validation at or below (a permanent NTA)
    http = ["127.0.0.1@8054"]            # /metrics over HTTP (default: off; port 8054)
    resolver-query-timeout = 10000       # ms per client question, then SERVFAIL (BIND's)
    servfail-ttl = 1                     # s a client question's SERVFAIL is kept (BIND's)

    [[resolver.stub-zone]]               # iterate from these servers for the zone
    name = "corp.example."
    stub-addr = ["10.0.0.53", "10.0.0.54@5353"]
    stub-first = false                   # iterate from the root when they fail (default)

    [[resolver.forward-zone]]            # send the question (RD set) to these resolvers
    name = "."
    forward-addr = ["192.0.2.53"]
    forward-first = true                 # iterate when they fail (default false)

Addresses are ``addr``, ``addr@port`` (Unbound) or ``addr#port`` (dig); the default port is
the resolver's upstream port.  ``http`` has no Unbound counterpart (Unbound's statistics go
through unbound-control); its addresses are ``addr`` or ``addr@port`` as for the server's
``[server] http``, port :data:`HTTP_PORT` when not given.  ``resolver-query-timeout`` is
BIND's (Unbound has no total time per question): milliseconds, 10000 to 30000 as in BIND
9.18, which also reads 0 and values up to 300 (seconds) and silently raises or lowers
values out of range; here those are errors naming the option.  ``servfail-ttl`` is BIND's
too: seconds, 0 (no failure cache) to 30, default 1, where BIND silently lowers values above
30; here that is an error naming the option.  It is the first time a failure is kept: unlike
BIND's, a question that keeps failing is kept twice as long each time, up to 30 s (RFC 9520
s3.2).  For a name under several zones
the deepest zone wins; a stub-zone and a forward-zone may not share a name.  Answers from
stub and forward zones are validated like any other: a private zone under the public root
needs its own trust anchor (``-a``) or ``domain-insecure``.  With ``forward-first`` a name
the forwarders give no usable reply for (no answer, SERVFAIL, REFUSED) is resolved by
iteration instead, from the root or the closest stub zone (Unbound's forward-first);
``stub-first`` does the same for a stub zone below the root whose servers fail.  Every
problem of the file is reported at once with its option path
(``resolver.stub-zone[0].stub-addr[1]``).  Parsing only: the caller reads the file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name

from dnsseal.errors import FileFormatError, OptionError
from dnsseal.resolver.cache import DEFAULT_MAX_BYTES
from dnsseal.resolver.hints import parse_server
from dnsseal.storage import options
from dnsseal.storage.remotes import Endpoint, parse_endpoint

Server = tuple[str, int]
Zones = tuple[tuple[dns.name.Name, tuple[Server, ...]], ...]

OPTIONS = (
    "aggressive-nsec",
    "cache-size",
    "domain-insecure",
    "http",
    "resolver-query-timeout",
    "servfail-ttl",
    "stub-zone",
    "forward-zone",
)
ZONE_KINDS = {"stub-zone": "stub-addr", "forward-zone": "forward-addr"}
FIRST_KEYS = {"stub-zone": "stub-first", "forward-zone": "forward-first"}
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
MIN_CACHE = 1 << 20
HTTP_PORT = 8054  # the authoritative server's is 8053: both can run on one host


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    stubs: Zones = ()
    forwards: Zones = ()
    aggressive_nsec: bool = False
    cache_bytes: int = DEFAULT_MAX_BYTES
    insecure: tuple[dns.name.Name, ...] = ()
    http: tuple[Endpoint, ...] = ()  # the /metrics listener (none: off)
    forward_first: tuple[dns.name.Name, ...] = ()  # forward zones that fall back to iteration
    stub_first: tuple[dns.name.Name, ...] = ()  # stub zones that do
    query_timeout_ms: int = 10000  # resolver-query-timeout
    servfail_ttl: int = 1  # servfail-ttl (seconds)


def parse_settings(text: str, path: str, port: int = 53) -> ResolverSettings:
    """Read the ``[resolver]`` section of TOML ``text`` (from ``path``, for messages);
    other sections are left to their readers.  Raises FileFormatError (not TOML, with the
    line) or OptionError (every wrong option, with its path)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column \d+\)$", msg)
        raise FileFormatError(
            path, int(m.group(1)) if m else None, re.sub(r"\s*\(at [^)]*\)$", "", msg)
        ) from None
    section = data.get("resolver", {})
    problems: list[OptionError] = []
    if not isinstance(section, dict):
        raise OptionError("resolver", "must be a table")
    for key in section:
        if key not in OPTIONS:
            problems.append(OptionError(f"resolver.{key}", options.unknown_message(key, OPTIONS)))
    aggressive = section.get("aggressive-nsec", False)
    if not isinstance(aggressive, bool):
        problems.append(OptionError("resolver.aggressive-nsec", "must be true or false"))
        aggressive = False
    cache_bytes = _cache_size(section.get("cache-size", DEFAULT_MAX_BYTES), problems)
    insecure = []
    items = section.get("domain-insecure", [])
    if not isinstance(items, list):
        problems.append(OptionError("resolver.domain-insecure", "must be a list of names"))
        items = []
    for i, item in enumerate(items):
        name = _name(item, f"resolver.domain-insecure[{i}]", problems)
        if name is not None:
            insecure.append(name)
    http = _http(section.get("http", []), problems)
    timeout = _integer(section, "resolver-query-timeout", problems)
    servfail_ttl = _integer(section, "servfail-ttl", problems)
    zones: dict[str, Zones] = {}
    seen: dict[dns.name.Name, str] = {}
    first: dict[str, list[dns.name.Name]] = {}
    for kind, addr_key in ZONE_KINDS.items():
        first[kind] = []
        zones[kind] = _zones(
            section.get(kind, []), kind, addr_key, port, seen, first[kind], problems
        )
    if problems:
        if len(problems) == 1:
            raise problems[0]
        raise OptionError(path, "; ".join(str(p) for p in problems))
    return ResolverSettings(
        zones["stub-zone"],
        zones["forward-zone"],
        aggressive,
        cache_bytes,
        tuple(insecure),
        http,
        tuple(first["forward-zone"]),
        tuple(first["stub-zone"]),
        timeout,
        servfail_ttl,
    )


def _integer(section: dict[str, Any], name: str, problems: list[OptionError]) -> int:
    """The integer option ``name`` of the option table, checked against its range (its
    default when absent or wrong, with the problem added)."""
    row = options.option("resolver", name)
    value, problem = row.check(section.get(row.name, row.default))
    if problem is not None:
        problems.append(OptionError(f"resolver.{row.name}", problem))
    assert isinstance(value, int)
    return value


def _http(items: Any, problems: list[OptionError]) -> tuple[Endpoint, ...]:
    option = "resolver.http"
    if not isinstance(items, list):
        problems.append(OptionError(option, 'must be a list of addresses like "127.0.0.1@8054"'))
        return ()
    out = []
    for i, text in enumerate(items):
        try:
            out.append(parse_endpoint(f"{option}[{i}]", text, HTTP_PORT))
        except OptionError as e:
            problems.append(e)
    return tuple(out)


def _cache_size(value: Any, problems: list[OptionError]) -> int:
    option = "resolver.cache-size"
    if isinstance(value, bool):
        problems.append(OptionError(option, 'must be a size such as 67108864 or "64m"'))
        return DEFAULT_MAX_BYTES
    if isinstance(value, str):
        m = re.fullmatch(r"(\d+)\s*([kmgKMG]?)[bB]?", value.strip())
        if m is None:
            problems.append(OptionError(option, f'{value!r} is not a size (e.g. "64m")'))
            return DEFAULT_MAX_BYTES
        value = int(m.group(1)) * UNITS[m.group(2).lower()]
    if not isinstance(value, int):
        problems.append(OptionError(option, 'must be a size such as 67108864 or "64m"'))
        return DEFAULT_MAX_BYTES
    if value < MIN_CACHE:
        problems.append(OptionError(option, f"at least {MIN_CACHE} octets (1m)"))
        return DEFAULT_MAX_BYTES
    return value


def _name(item: Any, option: str, problems: list[OptionError]) -> dns.name.Name | None:
    if not isinstance(item, str):
        problems.append(OptionError(option, "must be a domain name"))
        return None
    try:
        return dns.name.from_text(item)
    except dns.exception.DNSException as e:
        problems.append(OptionError(option, f"{item!r}: {e}"))
        return None


def _zones(
    items: Any,
    kind: str,
    addr_key: str,
    port: int,
    seen: dict[dns.name.Name, str],
    first: list[dns.name.Name],
    problems: list[OptionError],
) -> Zones:
    """The zones of one kind; those with ``forward-first`` / ``stub-first`` true also go to
    ``first``."""
    where = f"resolver.{kind}"
    first_key = FIRST_KEYS[kind]
    keys = ("name", addr_key, first_key)
    if not isinstance(items, list):
        problems.append(OptionError(where, f"must be a list of tables ([[{where}]])"))
        return ()
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            problems.append(OptionError(at, f"must be a table with name and {addr_key}"))
            continue
        for key in item:
            if key not in keys:
                problems.append(OptionError(f"{at}.{key}", f"unknown ({', '.join(keys)})"))
        fallback = item.get(first_key, False)
        if not isinstance(fallback, bool):
            problems.append(OptionError(f"{at}.{first_key}", "must be true or false"))
            fallback = False
        if fallback and kind == "stub-zone" and item.get("name") in (".", ""):
            problems.append(
                OptionError(f"{at}.{first_key}", "not for the root: nothing is above it")
            )
            fallback = False
        if "name" not in item:
            problems.append(OptionError(f"{at}.name", "is required"))
        name = _name(item.get("name"), f"{at}.name", problems) if "name" in item else None
        addrs = item.get(addr_key)
        if not isinstance(addrs, list) or not addrs:
            problems.append(OptionError(f"{at}.{addr_key}", "must be a non-empty list"))
            continue
        servers = []
        for j, text in enumerate(addrs):
            option = f"{at}.{addr_key}[{j}]"
            if not isinstance(text, str):
                problems.append(OptionError(option, "must be an address string"))
                continue
            try:
                servers.append(parse_server(text.strip().replace("@", "#", 1), port, option))
            except OptionError as e:
                problems.append(e)
        if name is None or not servers:
            continue
        if name in seen:
            problems.append(OptionError(f"{at}.name", f"{name} is already a {seen[name]}"))
            continue
        seen[name] = kind
        out.append((name, tuple(servers)))
        if fallback:
            first.append(name)
    return tuple(out)
