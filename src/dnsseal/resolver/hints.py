"""Root hints: the built-in IANA root server addresses, and named.root-style files.

Parsing takes text (the CLI or service reads the file).  A server is ``(address, port)``;
hints files carry no ports, so the caller's port applies to every address (a private test
root on 127.0.0.1 port 5300 is ``--root-hints FILE --port 5300``).  ``address#port`` is
accepted wherever a single server is given on the command line.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zonefile

from dnsseal.errors import FileFormatError, OptionError

Server = tuple[str, int]

# IANA root servers' IPv4 addresses (https://www.internic.net/domain/named.root).
ROOT_SERVERS_V4: dict[str, str] = {
    "a.root-servers.net.": "198.41.0.4",
    "b.root-servers.net.": "170.247.170.2",
    "c.root-servers.net.": "192.33.4.12",
    "d.root-servers.net.": "199.7.91.13",
    "e.root-servers.net.": "192.203.230.10",
    "f.root-servers.net.": "192.5.5.241",
    "g.root-servers.net.": "192.112.36.4",
    "h.root-servers.net.": "198.97.190.53",
    "i.root-servers.net.": "192.36.148.17",
    "j.root-servers.net.": "192.58.128.30",
    "k.root-servers.net.": "193.0.14.129",
    "l.root-servers.net.": "199.7.83.42",
    "m.root-servers.net.": "202.12.27.33",
}


def builtin_root_servers(port: int = 53) -> tuple[Server, ...]:
    return tuple((addr, port) for addr in ROOT_SERVERS_V4.values())


def parse_hints(text: str, source: str, port: int = 53) -> tuple[Server, ...]:
    """The addresses of the root NS names in a named.root-style file, IPv4 first.

    Raises :class:`FileFormatError` (with ``source``) if the file does not parse or names no
    address for any root NS."""
    # named.root is one record per line, so parse line by line to report exact lines.
    rrsets: list[dns.rrset.RRset] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        body = line.split(";", 1)[0].strip()
        if not body or body.startswith("$"):
            continue
        try:
            rrsets.extend(dns.zonefile.read_rrsets(line, origin=dns.name.root, relativize=False))
        except dns.exception.DNSException as e:
            msg = str(e).split(": ", 1)[-1]
            raise FileFormatError(source, lineno, msg) from None
    ns_names = {
        rd.target
        for r in rrsets
        if r.rdtype == dns.rdatatype.NS and r.name == dns.name.root
        for rd in r
    }
    v4: list[Server] = []
    v6: list[Server] = []
    for r in rrsets:
        if r.name not in ns_names:
            continue
        if r.rdtype == dns.rdatatype.A:
            v4.extend((rd.address, port) for rd in r)
        elif r.rdtype == dns.rdatatype.AAAA:
            v6.extend((rd.address, port) for rd in r)
    if not v4 and not v6:
        raise FileFormatError(source, None, "no address for any root NS name")
    return tuple(v4 + v6)


def parse_server(text: str, port: int, option: str = "@SERVER") -> Server:
    """``address`` or ``address#port`` (IPv4 or IPv6)."""
    addr, sep, p = text.partition("#")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise OptionError(option, f"{addr!r} is not an IP address") from None
    if sep:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise OptionError(option, f"bad port {p!r}")
        return addr, int(p)
    return addr, port
