"""The DNSSEC algorithms dnsseal knows, as one table.

Each row says what the algorithm is, whether new keys may be generated with it, and the
key sizes that apply.  Everything else (CLI help, validation, generation) reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dnsseal.errors import UnsupportedAlgorithm

Family = Literal["rsa", "ecdsa", "eddsa"]


@dataclass(frozen=True, slots=True)
class Algorithm:
    number: int
    mnemonic: str
    family: Family
    hash_name: str  # digest used by the signature ("sha256", ...; "" for EdDSA)
    generate: bool  # may new keys be made with it
    default_bits: int
    min_bits: int
    max_bits: int
    refuse_reason: str = ""  # why generation is refused, for the error message
    aliases: tuple[str, ...] = ()

    @property
    def fixed_size(self) -> bool:
        return self.min_bits == self.max_bits


_SHA1_REFUSAL = (
    "RSASHA1 and NSEC3RSASHA1 use SHA-1, which is deprecated for DNSSEC signing "
    "(RFC 8624 says MUST NOT sign; SHA-1 collisions are practical). dnsseal reads such keys "
    "to migrate away from them; use ECDSAP256SHA256 (13) or RSASHA256 (8) for new keys"
)

ALGORITHMS: dict[int, Algorithm] = {
    a.number: a
    for a in (
        Algorithm(5, "RSASHA1", "rsa", "sha1", False, 2048, 1024, 4096, _SHA1_REFUSAL),
        Algorithm(
            7,
            "NSEC3RSASHA1",
            "rsa",
            "sha1",
            False,
            2048,
            1024,
            4096,
            _SHA1_REFUSAL,
            ("RSASHA1-NSEC3-SHA1",),
        ),
        Algorithm(8, "RSASHA256", "rsa", "sha256", True, 2048, 1024, 4096),
        Algorithm(10, "RSASHA512", "rsa", "sha512", True, 2048, 1024, 4096),
        Algorithm(13, "ECDSAP256SHA256", "ecdsa", "sha256", True, 256, 256, 256),
        Algorithm(14, "ECDSAP384SHA384", "ecdsa", "sha384", True, 384, 384, 384),
        Algorithm(15, "ED25519", "eddsa", "", True, 256, 256, 256),
        Algorithm(16, "ED448", "eddsa", "", True, 456, 456, 456),
    )
}

DEFAULT_ALGORITHM = 13


def get(number: int) -> Algorithm:
    """The row for algorithm ``number``; raises :class:`UnsupportedAlgorithm`."""
    try:
        return ALGORITHMS[number]
    except KeyError:
        raise UnsupportedAlgorithm(f"DNSSEC algorithm {number} is not supported") from None


def lookup(text: str) -> Algorithm:
    """An algorithm by mnemonic (any case) or number, as typed by a user."""
    s = text.strip()
    if s.isdigit():
        return get(int(s))
    up = s.upper()
    for alg in ALGORITHMS.values():
        if up == alg.mnemonic or up in alg.aliases:
            return alg
    names = ", ".join(a.mnemonic for a in ALGORITHMS.values() if a.generate)
    raise UnsupportedAlgorithm(f"unknown DNSSEC algorithm {text!r} (supported: {names})")


def for_generation(text: str) -> Algorithm:
    """Like :func:`lookup`, but refuses algorithms that must not be used for new keys."""
    alg = lookup(text)
    if not alg.generate:
        raise UnsupportedAlgorithm(
            f"refusing to generate a {alg.mnemonic} key: {alg.refuse_reason}"
        )
    return alg
