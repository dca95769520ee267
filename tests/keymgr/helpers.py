"""Shared helpers for the key manager tests: policies, a fake clock run, summaries."""

from __future__ import annotations

import dns.name

from dnsseal.keymgr import safety, simulate
from dnsseal.keymgr.plan import Plan
from dnsseal.keys.model import Key
from dnsseal.policy.model import KeySpec, Policy

ZONE = dns.name.from_text("example.")
T0 = 1_700_000_000
DAY = 86400
HOUR = 3600


def run(
    policy: Policy, days: float, *, ds_delay: int | None = 2 * HOUR, **kw: object
) -> simulate.Timeline:
    return simulate.simulate(
        policy, kw.pop("keys", []), T0, T0 + int(days * DAY), zone=ZONE, ds_delay=ds_delay,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def assert_safe(tl: simulate.Timeline, policy: Policy, extra: tuple[int, ...] = ()) -> None:
    bogus = safety.check(tl, policy, extra)
    assert bogus == [], "\n".join(f"{b.at}: {b.reason}" for b in bogus[:10])


def created(tl: simulate.Timeline, role: str) -> list[Key]:
    return [k for k in tl.keys.values() if k.role == role]


def last_plan(tl: simulate.Timeline) -> Plan:
    return tl.plans[-1]


def kz(ksk_life: int, zsk_life: int, alg: int = 13, **opts: object) -> Policy:
    return Policy(
        "kz",
        keys=(KeySpec("ksk", alg, ksk_life), KeySpec("zsk", alg, zsk_life)),
        **opts,  # type: ignore[arg-type]
    )


def csk(life: int, alg: int = 13, **opts: object) -> Policy:
    return Policy("csk", keys=(KeySpec("csk", alg, life),), **opts)  # type: ignore[arg-type]
