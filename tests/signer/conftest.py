"""Helpers for the signer tests: keys made in memory, zones from text, and the three
external verifiers (BIND dnssec-verify, ldns-verify-zone, Knot kzonecheck) as oracles."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import dns.name

from conftest import run_tool
from dnsseal.crypto import software
from dnsseal.keys import algorithms
from dnsseal.keys.model import FLAG_SEP, FLAG_ZONE, Key
from dnsseal.signer import SigningKey
from dnsseal.zone.model import Zone
from dnsseal.zone.text import format_zone, parse_zone_text

ORIGIN = dns.name.from_text("example.com.")
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z: tests pin time

# A zone with the features the issue lists: wildcards, empty non-terminals, secure and
# insecure delegations with glue, CNAME, DNAME, names needing escaping, occluded data.
FEATURE_ZONE = r"""$TTL 300
@ SOA ns1 hostmaster 2024010101 3600 900 604800 60
@ NS ns1
@ NS ns.other.net.
@ MX 10 mail
@ TXT "apex text"
ns1 A 192.0.2.1
ns1 AAAA 2001:db8::1
mail A 192.0.2.2
*.wild TXT "wildcard"
*.wild MX 10 mail
a.b.c.ent A 192.0.2.3
www CNAME mail
dn DNAME other.net.
sec NS ns.sec
sec DS 12345 13 2 0000000000000000000000000000000000000000000000000000000000000000
ns.sec A 192.0.2.10
insec NS ns.insec
insec NS ns.other.net.
ns.insec A 192.0.2.11
deep.ns.insec AAAA 2001:db8::11
odd\.name A 192.0.2.4
Esc\032aped A 192.0.2.5
UPPER.case SRV 0 5 5060 SIP.Example.COM.
x\255y TXT "binary label"
"""


@functools.cache
def _cached_key(alg: int, flags: int, n: int) -> Key:
    pub, priv = software.generate(algorithms.get(alg))
    return Key(ORIGIN, flags, alg, pub, private=priv, ttl=3600)


def make_key(alg: int = 13, *, ksk: bool = False, n: int = 0) -> Key:
    """A key for example.com (cached per (alg, role, n): RSA generation is slow)."""
    return _cached_key(alg, FLAG_ZONE | (FLAG_SEP if ksk else 0), n)


def ksk_zsk(alg: int = 13) -> list[SigningKey]:
    return [SigningKey(make_key(alg, ksk=True)), SigningKey(make_key(alg))]


def zone_from(text: str = FEATURE_ZONE) -> Zone:
    return parse_zone_text(text, ORIGIN)


def write(zone: Zone, path: Path) -> Path:
    path.write_text(format_zone(zone))
    return path


def external_verify(path: Path, origin: str = "example.com", *, csk: bool = False,
                    tools: Sequence[str] = ("dnssec-verify", "ldns-verify-zone", "kzonecheck"),
                    ) -> None:  # fmt: skip
    """Run each external verifier on ``path``; the test fails if any rejects the zone.

    The zones are signed at the real current time (the tools verify against the clock).
    ``csk``: the zone has only SEP-flagged keys, which dnssec-verify accepts with ``-z``."""
    argv = {
        "dnssec-verify": ["dnssec-verify", "-q", *(["-z"] if csk else []), "-o", origin, path],
        "ldns-verify-zone": ["ldns-verify-zone", "-V", "1", path],
        "kzonecheck": ["kzonecheck", "-o", origin, "-d", "on", path],
    }
    for tool in tools:
        run_tool(argv[tool])
