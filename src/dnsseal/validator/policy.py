"""Algorithm and digest policy for validation (RFC 8624, RFC 6840 s5.2, RFC 4509 s3).

An algorithm or digest the policy does not accept is treated exactly like an unknown one:
a zone whose DS records use only such algorithms or digests is *insecure*, not bogus
(RFC 6840 s5.2).  RSAMD5 (1), DSA (3, 6) and GOST (12) are never accepted (RFC 8624 s3.1).
SHA-1 DS digests are accepted (validation is still required by RFC 8624 s3.3) unless the
policy says otherwise, but a SHA-1 DS is ignored when the same key also has a stronger DS
(RFC 4509 s3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dnsseal.keys import algorithms

# DS digest types (RFC 4034 A.2, RFC 4509, RFC 6605): number -> (name, hash constructor).
DIGESTS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    1: ("SHA-1", hashlib.sha1),
    2: ("SHA-256", hashlib.sha256),
    4: ("SHA-384", hashlib.sha384),
}

# Algorithms a validator must not accept (RFC 8624 s3.1: MUST NOT validate).
REFUSED_ALGORITHMS: dict[int, str] = {
    1: "RSAMD5",
    3: "DSA",
    6: "DSA-NSEC3-SHA1",
    12: "ECC-GOST",
}

SHA1_ALGORITHMS = frozenset({5, 7})


@dataclass(frozen=True, slots=True)
class AlgorithmPolicy:
    """Which signature algorithms and DS digest types validation accepts."""

    accept_sha1_ds: bool = True
    accept_sha1_algorithms: bool = True

    def algorithm_supported(self, number: int) -> bool:
        if number in REFUSED_ALGORITHMS or number not in algorithms.ALGORITHMS:
            return False
        return self.accept_sha1_algorithms or number not in SHA1_ALGORITHMS

    def digest_supported(self, digest_type: int) -> bool:
        if digest_type not in DIGESTS:
            return False
        return self.accept_sha1_ds or digest_type != 1


DEFAULT_POLICY = AlgorithmPolicy()


def algorithm_name(number: int) -> str:
    if number in algorithms.ALGORITHMS:
        return algorithms.ALGORITHMS[number].mnemonic
    return REFUSED_ALGORITHMS.get(number, f"algorithm {number}")
