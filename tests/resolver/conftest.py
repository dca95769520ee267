"""Fixtures for the resolver tests: a small signed hierarchy built in memory."""

from __future__ import annotations

import pytest

from .authority import Authority
from .zonebuild import EXPIRATION, INCEPTION, Nsec3Params, SignedZone, make_key, sign_zone

EXAMPLE = """
@ 3600 SOA ns1 bugs.x.w 1 3600 300 3600000 3600
@ NS ns1
@ NS ns2
@ MX 1 xx
a NS ns1.a
ns1.a A 127.0.0.1
ai A 192.0.2.9
ai HINFO "KLH-10" "ITS"
ai AAAA 2001:db8::f00:baa9
c NS ns1.c
ns1.c A 127.0.0.1
ns1 A 127.0.0.1
ns2 A 127.0.0.1
*.w MX 1 ai
x.w MX 1 xx
x.y.w MX 1 xx
xx A 192.0.2.10
xx HINFO "KLH-10" "TOPS-20"
xx AAAA 2001:db8::f00:baaa
old DNAME a.example.
alias CNAME www.a.example.
loop1 CNAME loop2
loop2 CNAME loop1
"""

A_EXAMPLE = """
@ 3600 SOA ns1 h 1 3600 300 3600000 3600
@ NS ns1
ns1 A 127.0.0.1
www A 192.0.2.80
"""

C_EXAMPLE = """
@ 3600 SOA ns1 h 1 3600 300 3600000 3600
@ NS ns1
ns1 A 127.0.0.1
mc MX 1 ns1
"""

ROOT = """
@ 3600 SOA ns.root. h 1 3600 300 3600000 3600
@ NS ns.root.
ns.root. A 127.0.0.1
example. NS ns1.example.
ns1.example. A 127.0.0.1
insec. NS ns.insec.
ns.insec. A 127.0.0.1
"""

INSEC = """
@ 3600 SOA ns h 1 3600 300 3600000 3600
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
"""


def build(
    opt_out: bool = True, iterations: int = 12, times: tuple[int, int] = (INCEPTION, EXPIRATION)
) -> dict[str, SignedZone]:
    """Root (NSEC) -> example (NSEC3, RFC 5155 Appendix A layout) -> a (signed), c
    (unsigned); root -> insec (unsigned).  ``times``: the RRSIGs' inception and expiration."""
    inception, expiration = times
    a = sign_zone(A_EXAMPLE, "a.example", inception=inception, expiration=expiration)
    ds_a = "\n".join(f"a DS {d.to_text()}" for d in a.ds())
    example = sign_zone(
        EXAMPLE + ds_a,
        "example",
        keys=[make_key(True), make_key(False)],
        nsec3=Nsec3Params(bytes.fromhex("aabbccdd"), iterations, opt_out),
        inception=inception,
        expiration=expiration,
    )
    ds_ex = "\n".join(f"example. DS {d.to_text()}" for d in example.ds())
    root = sign_zone(ROOT + ds_ex, ".", inception=inception, expiration=expiration)
    c = sign_zone(C_EXAMPLE, "c.example", unsigned=True)
    insec = sign_zone(INSEC, "insec", unsigned=True)
    return {"root": root, "example": example, "a": a, "c": c, "insec": insec}


@pytest.fixture(scope="session")
def hierarchy() -> dict[str, SignedZone]:
    return build()


@pytest.fixture(scope="session")
def hierarchy_no_optout() -> dict[str, SignedZone]:
    return build(opt_out=False)


@pytest.fixture
def authority(hierarchy: dict[str, SignedZone]) -> Authority:
    return Authority(list(hierarchy.values()))
