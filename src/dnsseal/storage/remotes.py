"""Other servers' addresses as the config writes them: listen endpoints, primaries,
resolvers, and the system's resolvers from resolv.conf.

``addr``, ``addr@port``, ``[v6]:port``, ``v4:port``; remote servers as BIND writes them,
``addr[@port] [port N] [key NAME]``.  Errors are :class:`OptionError` naming the option.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from dnsseal.errors import OptionError, StorageError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An address and port (``"192.0.2.1@53"``, ``"::1@5300"``, ``"[::1]:5300"``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}@{self.port}"


@dataclass(frozen=True, slots=True)
class Primary:
    """A server the zone is transferred from, with the TSIG key to use (a ``key.NAME``)."""

    endpoint: Endpoint
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.endpoint}" + (f" key {self.key}" if self.key else "")


def parse_endpoint(option: str, text: object, default_port: int) -> Endpoint:
    """Parse ``addr``, ``addr@port``, ``[v6]:port`` or ``v4:port``; raise OptionError."""
    if not isinstance(text, str):
        raise OptionError(option, f"expected an address string, got {text!r}")
    host, port = text, default_port
    try:
        if "@" in text:
            host, p = text.rsplit("@", 1)
            port = int(p)
        elif text.startswith("["):
            host, _, p = text[1:].partition("]")
            port = int(p.lstrip(":")) if p else default_port
        elif text.count(":") == 1:
            host, p = text.split(":")
            port = int(p)
        ipaddress.ip_address(host)
    except ValueError:
        raise OptionError(option, f"{text!r} is not an address[@port]") from None
    if not 0 < port < 65536:
        raise OptionError(option, f"port {port} out of range")
    return Endpoint(host, port)


def parse_remote(option: str, text: object, default_port: int) -> tuple[Endpoint, str | None]:
    """Parse a remote server as BIND writes it: ``addr[@port] [port N] [key NAME]``.
    Returns the endpoint and the key name (not checked here); raises OptionError."""
    if not isinstance(text, str) or not text.split():
        raise OptionError(option, f"expected 'address [port N] [key NAME]', got {text!r}")
    first, *rest = text.split()
    ep = parse_endpoint(option, first, default_port)
    key = None
    if len(rest) % 2:
        raise OptionError(option, f"{text!r}: 'port' and 'key' each take one value")
    for word, value in zip(rest[::2], rest[1::2], strict=True):
        if word == "port":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise OptionError(option, f"{text!r}: port {value!r} out of range")
            ep = Endpoint(ep.host, int(value))
        elif word == "key":
            key = value
        else:
            raise OptionError(option, f"{text!r}: unknown {word!r} (expected port or key)")
    return ep, key


RESOLV_CONF = Path("/etc/resolv.conf")


def system_resolvers(path: Path = RESOLV_CONF) -> tuple[Endpoint, ...]:
    """The ``nameserver`` lines of resolv.conf (port 53); raises StorageError when the file
    cannot be read, OptionError when it names no usable server."""
    try:
        text = path.read_text()
    except OSError as e:
        raise StorageError(str(path), e.strerror or str(e)) from None
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            host = words[1].split("%")[0]  # fe80::1%eth0: the scope is not ours to use
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
            out.append(Endpoint(host, 53))
    if not out:
        raise OptionError("server.resolvers", f"not set, and {path} names no nameserver")
    return tuple(out)
