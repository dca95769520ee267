"""dnsseal's key manager against the real named, step by step through BIND's rollovers.

Each scenario stages a key directory as BIND's rollover system tests do, lets named's key
manager run on it once, and runs dnsseal's engine on a copy at the same second; every
per-key state, every timing field, the published DNSKEY/CDS/CDNSKEY sets, who signs the
DNSKEY RRset and the zone, and the next key event must be the same (see bindharness).

Policy values are all different from each other so that a wrong term in a formula shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import run_tool
from dnsseal.keymgr.simulate import simulate
from dnsseal.keys.model import RecordState
from dnsseal.policy import namedconf
from dnsseal.policy.build import lookup
from dnsseal.policy.model import Policy
from dnsseal.storage.keydir import KeyDirectory

from .bindharness import (
    ZONE_NAME,
    Scenario,
    Stager,
    bind_time,
    harness_keygen,
    named_conf,
    report,
    run_scenario,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]

H = 3600
D = 86400
TTL = 2 * H  # dnskey-ttl
PS = 50 * 60  # publish-safety
RS = 20 * 60  # retire-safety
ZPD = 5 * 60  # zone-propagation-delay
MZT = 6 * H  # max-zone-ttl
DSTTL = 3 * H  # parent-ds-ttl
PPD = 40 * 60  # parent-propagation-delay
DSGN = 9 * D  # signatures-validity 14d - signatures-refresh 5d (the defaults)
IPUB = TTL + ZPD + PS
IRET_Z = DSGN + ZPD + MZT + RS
IRET_K = DSTTL + PPD + RS
OPTIONS = (
    "dnskey-ttl 2h; publish-safety 50m; retire-safety 20m; zone-propagation-delay 5m;\n"
    "max-zone-ttl 6h; parent-ds-ttl 3h; parent-propagation-delay 40m;\n"
)


def policy(keys: str) -> str:
    return OPTIONS + "keys {\n" + keys + "\n};"


KZ = policy("ksk lifetime unlimited algorithm 13; zsk lifetime P30D algorithm 13;")
KZ_KROLL = policy("ksk lifetime P60D algorithm 13; zsk lifetime unlimited algorithm 13;")
CSK = policy("csk lifetime unlimited algorithm 13;")
CSK_ROLL = policy("csk lifetime P60D algorithm 13;")
KZ_ALG = policy("ksk lifetime unlimited algorithm 13; zsk lifetime unlimited algorithm 13;")
CSK_ALG = CSK

O, R, U, Hd = "omnipresent", "rumoured", "unretentive", "hidden"  # noqa: E741


def made_by_bind(
    s: Stager, base: str, role: str, pub: int, act: int, lifetime: int, *, first: bool
) -> None:
    """The metadata BIND's key manager writes when it makes a key (keymgr_key_rollover:
    Lifetime, Retired, Removed, PublishCDS), so that staging does not depend on which of
    two matching keys named happens to read first."""
    s.lifetime(base, lifetime)
    args: list[str] = []
    if lifetime:
        retire = act + lifetime
        iret = {"zsk": IRET_Z, "ksk": IRET_K, "csk": max(IRET_Z, IRET_K)}[role]
        args += ["-I", bind_time(retire), "-D", bind_time(retire + iret)]
    if role != "zsk":
        wait = max(IPUB, MZT + ZPD + PS) if first else IPUB
        args += ["-P", "sync", bind_time(pub + wait)]
    if args:
        s.settime(base, *args)


def _omni_ksk(s: Stager, since: int, alg: str = "ECDSAP256SHA256", role: str = "ksk") -> str:
    k = s.keygen(role, alg=alg, publish=since, activate=since)
    s.states(k, goal=O, dnskey=(O, since), krrsig=(O, since), ds=(O, since),
             zrrsig=(O, since) if role == "csk" else None)  # fmt: skip
    return k


def _omni_zsk(s: Stager, since: int, alg: str = "ECDSAP256SHA256") -> str:
    z = s.keygen("zsk", alg=alg, publish=since, activate=since)
    s.states(z, goal=O, dnskey=(O, since), zrrsig=(O, since))
    return z


# ------------------------------------------------------------------ ZSK pre-publication


def zsk_due(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D)
    _omni_zsk(s, n - 30 * D + IPUB - 60)  # successor due a minute ago


def zsk_due_pregenerated(s: Stager) -> None:
    """As zsk_due, with a ZSK made beforehand (no times): named selects it."""
    zsk_due(s)
    s.keygen("zsk", extra=["-P", "none", "-A", "none"])


def zsk_published(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D)
    z1 = s.keygen("zsk", publish=n - 30 * D, activate=n - 30 * D)
    s.states(z1, goal=Hd, dnskey=(O, n - 30 * D), zrrsig=(O, n - 30 * D))
    made_by_bind(s, z1, "zsk", n - 30 * D, n - 30 * D, 30 * D, first=True)
    z2 = s.keygen("zsk", publish=n - IPUB, activate=n)
    s.states(z2, goal=O, dnskey=(R, n - IPUB), zrrsig=(Hd, n - IPUB))
    made_by_bind(s, z2, "zsk", n - IPUB, n, 30 * D, first=False)
    s.link(z1, z2)


def zsk_retiring(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D)
    z1 = s.keygen("zsk", publish=n - 40 * D, activate=n - 40 * D)
    s.settime(z1, "-I", bind_time(n - 10 * D))
    s.states(z1, goal=Hd, dnskey=(O, n - 40 * D), zrrsig=(U, n - IRET_Z + H))
    z2 = s.keygen("zsk", publish=n - 10 * D - IPUB, activate=n - 10 * D)
    s.states(z2, goal=O, dnskey=(O, n - 10 * D), zrrsig=(R, n - IRET_Z + H))
    made_by_bind(s, z2, "zsk", n - 10 * D - IPUB, n - 10 * D, 30 * D, first=False)
    s.link(z1, z2)  # z1 without a Lifetime: named gives it the policy's


def zsk_removing(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D)
    z1 = s.keygen("zsk", publish=n - 40 * D, activate=n - 40 * D)
    s.states(z1, goal=Hd, dnskey=(O, n - 40 * D), zrrsig=(U, n - IRET_Z - 10))
    z2 = s.keygen("zsk", publish=n - 10 * D - IPUB, activate=n - 10 * D)
    s.states(z2, goal=O, dnskey=(O, n - 10 * D), zrrsig=(R, n - IRET_Z - 10))
    made_by_bind(s, z2, "zsk", n - 10 * D - IPUB, n - 10 * D, 30 * D, first=False)
    s.lifetime(z1, 30 * D)
    s.link(z1, z2)


# ---------------------------------------------------------------------- KSK double-KSK


def ksk_due(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D + IPUB - 60)
    _omni_zsk(s, n - 90 * D)


def ksk_ds_swap(s: Stager) -> None:
    n = s.now
    k1 = _omni_ksk(s, n - 60 * D)
    s.settime(k1, "-g", "HIDDEN")
    made_by_bind(s, k1, "ksk", n - 60 * D, n - 60 * D, 60 * D, first=True)
    _omni_zsk(s, n - 90 * D)
    k2 = s.keygen("ksk", publish=n - IPUB - H, activate=n)
    s.states(k2, goal=O, dnskey=(R, n - IPUB - H), krrsig=(R, n - IPUB - H), ds=(Hd, n - IPUB - H))
    made_by_bind(s, k2, "ksk", n - IPUB - H, n, 60 * D, first=False)
    s.link(k1, k2)


def ksk_ds_seen(s: Stager) -> None:
    """The new DS was seen at the parent a bit less than Iret ago."""
    n = s.now
    k1 = _omni_ksk(s, n - 60 * D)
    _omni_zsk(s, n - 90 * D)
    s.settime(k1, "-D", "ds", bind_time(n - DSTTL - PPD - RS // 2), "-g", "HIDDEN",
              "-d", "UNRETENTIVE", bind_time(n - D))  # fmt: skip
    k2 = s.keygen("ksk", publish=n - 2 * D, activate=n - D)
    s.states(k2, goal=O, dnskey=(O, n - D), krrsig=(O, n - D), ds=(R, n - D),
             times=["-P", "ds", bind_time(n - DSTTL - PPD - RS // 2)])  # fmt: skip
    made_by_bind(s, k2, "ksk", n - 2 * D, n - D, 60 * D, first=False)
    s.lifetime(k1, 60 * D)
    s.link(k1, k2)


# ------------------------------------------------------------------------- CSK rolls


def csk_due(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D + IPUB - 60, role="csk")


def csk_swap(s: Stager) -> None:
    n = s.now
    c1 = _omni_ksk(s, n - 60 * D, role="csk")
    s.settime(c1, "-g", "HIDDEN")
    made_by_bind(s, c1, "csk", n - 60 * D, n - 60 * D, 60 * D, first=True)
    c2 = s.keygen("csk", publish=n - IPUB, activate=n)
    s.states(c2, goal=O, dnskey=(R, n - IPUB), krrsig=(R, n - IPUB), zrrsig=(Hd, n - IPUB),
             ds=(Hd, n - IPUB))  # fmt: skip
    made_by_bind(s, c2, "csk", n - IPUB, n, 60 * D, first=False)
    s.link(c1, c2)


def csk_ds_done(s: Stager) -> None:
    n = s.now
    c1 = s.keygen("csk", publish=n - 70 * D, activate=n - 70 * D)
    s.states(c1, goal=Hd, dnskey=(O, n - 70 * D), krrsig=(O, n - 70 * D),
             zrrsig=(U, n - 10 * D), ds=(U, n - 2 * D),
             times=["-D", "ds", bind_time(n - IRET_K - 5),
                    "-I", bind_time(n - 10 * D)])  # fmt: skip
    c2 = s.keygen("csk", publish=n - 10 * D - IPUB, activate=n - 10 * D)
    s.states(c2, goal=O, dnskey=(O, n - 10 * D), krrsig=(O, n - 10 * D),
             zrrsig=(R, n - 10 * D), ds=(R, n - 2 * D),
             times=["-P", "ds", bind_time(n - IRET_K - 5)])  # fmt: skip
    made_by_bind(s, c2, "csk", n - 10 * D - IPUB, n - 10 * D, 60 * D, first=False)
    s.lifetime(c1, 60 * D)
    s.link(c1, c2)


# ---------------------------------------------------------------------- enable DNSSEC


def enable_none(s: Stager) -> None:
    pass


def enable_published(s: Stager) -> None:
    """DNSKEY in every cache, signatures not yet."""
    n = s.now
    c = s.keygen("csk", publish=n - IPUB - 10, activate=n - IPUB - 10)
    t = n - IPUB - 10
    s.states(c, goal=O, dnskey=(R, t), krrsig=(R, t), zrrsig=(R, t), ds=(Hd, t))


def enable_signed(s: Stager) -> None:
    """Signatures in every cache (without retire-safety), DS may be submitted."""
    n = s.now
    t = n - MZT - ZPD - 10
    c = s.keygen("csk", publish=t, activate=t)
    s.states(c, goal=O, dnskey=(O, t + IPUB), krrsig=(O, t + IPUB), zrrsig=(R, t), ds=(Hd, t))


def enable_ds_seen(s: Stager) -> None:
    """The first DS was seen at the parent parent-ds-ttl + propagation (+ part of
    retire-safety) ago."""
    n = s.now
    t = n - 3 * D
    c = s.keygen("csk", publish=t, activate=t)
    s.states(c, goal=O, dnskey=(O, t), krrsig=(O, t), zrrsig=(O, t), ds=(R, n - D),
             times=["-P", "ds", bind_time(n - DSTTL - PPD - RS // 2)])  # fmt: skip


# ------------------------------------------------------------------ algorithm rolls


def alg_kz_start(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D, alg="RSASHA256")
    _omni_zsk(s, n - 60 * D, alg="RSASHA256")


def alg_kz_new_published(s: Stager) -> None:
    n = s.now
    old = n - 60 * D
    t = n - MZT - ZPD - 5
    k8 = s.keygen("ksk", alg="RSASHA256", publish=old, activate=old)
    s.states(k8, goal=Hd, dnskey=(O, old), krrsig=(O, old), ds=(O, old), times=["-I", bind_time(t)])
    z8 = s.keygen("zsk", alg="RSASHA256", publish=old, activate=old)
    s.states(z8, goal=Hd, dnskey=(O, old), zrrsig=(O, old), times=["-I", bind_time(t)])
    k13 = s.keygen("ksk", publish=t, activate=t)
    s.states(k13, goal=O, dnskey=(O, t + IPUB), krrsig=(O, t + IPUB), ds=(Hd, t))
    z13 = s.keygen("zsk", publish=t, activate=t)
    s.states(z13, goal=O, dnskey=(O, t + IPUB), zrrsig=(R, t))


def alg_csk_start(s: Stager) -> None:
    _omni_ksk(s, s.now - 60 * D, alg="RSASHA256", role="csk")


def alg_csk_ds_swapped(s: Stager) -> None:
    n = s.now
    old = n - 60 * D
    t = n - 2 * D
    c8 = s.keygen("csk", alg="RSASHA256", publish=old, activate=old)
    s.states(c8, goal=Hd, dnskey=(O, old), krrsig=(O, old), zrrsig=(O, old), ds=(U, n - D),
             times=["-I", bind_time(t), "-D", "ds", bind_time(n - IRET_K + 30)])  # fmt: skip
    c13 = s.keygen("csk", publish=t, activate=t)
    s.states(c13, goal=O, dnskey=(O, t + IPUB), krrsig=(O, t + IPUB), zrrsig=(O, t + D),
             ds=(R, n - D), times=["-P", "ds", bind_time(n - IRET_K + 30)])  # fmt: skip


# --------------------------------------------------------------------- going insecure


def insecure_start(s: Stager) -> None:
    n = s.now
    _omni_ksk(s, n - 60 * D)
    _omni_zsk(s, n - 60 * D)


def insecure_hidden_goal(s: Stager) -> None:
    """Keys already leaving (goal hidden) without a retire time: named writes one."""
    n = s.now
    old = n - 60 * D
    k = s.keygen("ksk", publish=old, activate=old)
    s.states(k, goal=Hd, dnskey=(O, old), krrsig=(O, old), ds=(U, n - H))
    z = s.keygen("zsk", publish=old, activate=old)
    s.states(z, goal=Hd, dnskey=(O, old), zrrsig=(O, old))


def insecure_ds_gone(s: Stager) -> None:
    n = s.now
    old = n - 60 * D
    k = s.keygen("csk", publish=old, activate=old)
    s.states(k, goal=Hd, dnskey=(O, old), krrsig=(O, old), zrrsig=(O, old), ds=(U, n - D),
             times=["-I", bind_time(n - D),
                    "-D", "ds", bind_time(n - DSTTL - PPD - RS - 1)])  # fmt: skip


# ------------------------------------------------- key files with another DNSKEY TTL


def short_ttl_published(s: Stager) -> None:
    """Keys made with -L 300 while the policy says dnskey-ttl 2h; the new ZSK has been
    published for longer than its file's TTL (+ propagation + safety), not for longer
    than the policy's."""
    n = s.now
    _omni_ksk(s, n - 60 * D)
    z1 = s.keygen("zsk", publish=n - 30 * D, activate=n - 30 * D)
    s.states(z1, goal=Hd, dnskey=(O, n - 30 * D), zrrsig=(O, n - 30 * D))
    made_by_bind(s, z1, "zsk", n - 30 * D, n - 30 * D, 30 * D, first=True)
    t = n - (300 + ZPD + PS) - 60
    z2 = s.keygen("zsk", publish=t, activate=n + H)
    s.states(z2, goal=O, dnskey=(R, t), zrrsig=(Hd, t))
    made_by_bind(s, z2, "zsk", t, n + H, 30 * D, first=False)
    s.link(z1, z2)


# ----------------------------------------------------------------- durations (P6M, P1Y)


def months(s: Stager) -> None:
    pass


SCENARIOS: list[Scenario] = [
    Scenario("zsk-prepub-due", KZ, zsk_due, ttl=TTL),
    Scenario("zsk-prepub-due-pregenerated", KZ, zsk_due_pregenerated, ttl=TTL),
    Scenario("zsk-prepub-published", KZ, zsk_published, ttl=TTL),
    Scenario("zsk-prepub-retiring", KZ, zsk_retiring, ttl=TTL),
    Scenario("zsk-prepub-removing", KZ, zsk_removing, ttl=TTL),
    Scenario("ksk-doubleksk-due", KZ_KROLL, ksk_due, ttl=TTL),
    Scenario("ksk-doubleksk-ds-swap", KZ_KROLL, ksk_ds_swap, ttl=TTL),
    Scenario("ksk-doubleksk-ds-seen", KZ_KROLL, ksk_ds_seen, ttl=TTL),
    Scenario("csk-roll-due", CSK_ROLL, csk_due, ttl=TTL),
    Scenario("csk-roll-swap", CSK_ROLL, csk_swap, ttl=TTL),
    Scenario("csk-roll-ds-done", CSK_ROLL, csk_ds_done, ttl=TTL),
    Scenario("enable-dnssec-new", CSK, enable_none, ttl=TTL),
    Scenario("enable-dnssec-published", CSK, enable_published, ttl=TTL),
    Scenario("enable-dnssec-signed", CSK, enable_signed, ttl=TTL),
    Scenario("enable-dnssec-ds-seen", CSK, enable_ds_seen, ttl=TTL),
    Scenario("alg-roll-kz-start", KZ_ALG, alg_kz_start, ttl=TTL),
    Scenario("alg-roll-kz-new-published", KZ_ALG, alg_kz_new_published, ttl=TTL),
    Scenario("alg-roll-csk-start", CSK_ALG, alg_csk_start, ttl=TTL),
    Scenario("alg-roll-csk-ds-swapped", CSK_ALG, alg_csk_ds_swapped, ttl=TTL),
    Scenario("insecure-start", "", insecure_start, ttl=TTL, zone_policy="insecure"),
    Scenario("insecure-hidden-goal", "", insecure_hidden_goal, ttl=TTL, zone_policy="insecure"),
    Scenario("insecure-ds-gone", "", insecure_ds_gone, ttl=TTL, zone_policy="insecure"),
    Scenario(
        "durations-months-years",
        policy("ksk lifetime P1Y algorithm 13; zsk lifetime P6M algorithm 13;"),
        months,
        ttl=TTL,
    ),
]
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}
Stage = Callable[[Stager], None]


@pytest.mark.parametrize("name", list(BY_NAME))
def test_same_as_named(tmp_path: Path, name: str) -> None:
    c = run_scenario(tmp_path, BY_NAME[name])
    assert c.diffs == [], report(c)


# ------------------------------------------------------- random policies and moments

DURATIONS = {
    "dnskey-ttl": ["5m", "1h", "2h", "1d"],
    "publish-safety": ["0", "20m", "1h", "2d"],
    "retire-safety": ["0", "20m", "1h", "2d"],
    "zone-propagation-delay": ["0", "5m", "1h"],
    "max-zone-ttl": ["5m", "6h", "1d"],
    "parent-ds-ttl": ["5m", "3h", "1d"],
    "parent-propagation-delay": ["0", "40m", "1h"],
}
KEY_LIFETIMES = ["unlimited", "P20D", "P45D", "P3M"]
# each example is one named run (about a second); explore more with this variable set
EXAMPLES = int(os.environ.get("DNSSEAL_VS_BIND_EXAMPLES", "8"))


@st.composite
def options(draw: st.DrawFn) -> str:
    return "".join(f"{name} {draw(st.sampled_from(vals))}; " for name, vals in DURATIONS.items())


@st.composite
def key_lines(draw: st.DrawFn, algorithms: tuple[str, ...] = ("13",)) -> str:
    alg = draw(st.sampled_from(algorithms))
    if draw(st.booleans()):
        keys = f"csk lifetime {draw(st.sampled_from(KEY_LIFETIMES))} algorithm {alg};"
    else:
        keys = (
            f"ksk lifetime {draw(st.sampled_from(KEY_LIFETIMES))} algorithm {alg}; "
            f"zsk lifetime {draw(st.sampled_from(KEY_LIFETIMES))} algorithm {alg};"
        )
    return "\nkeys { " + keys + " };"


@st.composite
def policies(draw: st.DrawFn) -> str:
    return draw(options()) + draw(key_lines(("13", "ecdsa256")))


def simulated(
    policy_text: str,
    age: int,
    ds_delay: int | None,
    *,
    first: str | None = None,
    since: int = 0,
    zone_policy: str = "test",
) -> Callable[[Stager], None]:
    """Staging by running dnsseal's engine (with real keys) from ``age`` ago until a
    second before now, the parent publishing each CDS change ``ds_delay`` later: any
    moment of any rollover, in BIND's key file format.  With ``first``, the zone ran
    that policy until ``since`` seconds ago and the final one after."""

    def stage(s: Stager) -> None:
        final = lookup(zone_policy, namedconf.parse(named_conf(s.keydir, 1, 2, policy_text)))
        start_policy = final
        scheduled: list[tuple[int, Policy]] = []
        if first is not None:
            start_policy = namedconf.parse(named_conf(s.keydir, 1, 2, first))["test"]
            scheduled = [(s.now - since, final)]
        tl = simulate(start_policy, [], s.now - age, s.now - 1, zone=ZONE_NAME,
                      ds_delay=ds_delay, keygen=harness_keygen,
                      scheduled=scheduled)  # type: ignore[arg-type]  # fmt: skip
        kd = KeyDirectory(s.keydir)
        for key in tl.final_keys:
            kd.create(key)

    return stage


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy_text=policies(),
    age=st.integers(0, 200 * D),
    ds_delay=st.sampled_from([H, 2 * H, None]),
)
def test_random_policy_and_moment_same_as_named(
    tmp_path_factory: pytest.TempPathFactory, policy_text: str, age: int, ds_delay: int | None
) -> None:
    """A random policy (every timing option drawn), a random moment of its life (up to
    200 days in, the parent quick, slow or never acting): named and dnsseal agree."""
    tmp = tmp_path_factory.mktemp("random")
    conf = tmp / "check.conf"
    conf.write_text(named_conf(tmp, 1, 2, policy_text))
    # BIND refuses lifetimes shorter than a rollover takes: no BIND behaviour to compare
    assume(run_tool(["named-checkconf", conf], check=False).returncode == 0)
    scenario = Scenario("random", policy_text, simulated(policy_text, age, ds_delay))
    c = run_scenario(tmp, scenario)
    assert c.diffs == [], f"{policy_text}\nage={age} ds_delay={ds_delay}\n" + report(c)


def test_key_file_ttl_rule_is_the_documented_difference(tmp_path: Path) -> None:
    """docs/keymgr-vs-bind.md, "DNSKEY TTL": named times a DNSKEY by the TTL in its key
    file while it serves the DNSKEY RRset with the policy's dnskey-ttl.  Here it starts
    signing with a new ZSK whose DNSKEY some caches cannot have yet (the bogus window);
    dnsseal waits for the larger of the two TTLs.  Nothing else differs."""
    c = run_scenario(tmp_path, Scenario("key-ttl", KZ, short_ttl_published, ttl=300))
    new = next(k for k in c.bind.keys.values() if k.state and k.state.predecessor)
    published = new.timings.publish
    assert new.state is not None and published is not None
    # named: the new ZSK's DNSKEY is "in every cache" and the zone is signed with it ...
    assert new.state.dnskey is RecordState.OMNIPRESENT
    assert c.bind.zsk_signers == {new.tag}
    # ... though it serves the DNSKEY RRset with a TTL that has not run out since the
    # key was published: a resolver that fetched the RRset just before still holds it
    # without the new key, and every RRset signed by the new ZSK is bogus there
    assert c.bind.dnskey_rrset_ttl == TTL
    assert c.now < published + TTL + ZPD
    # dnsseal: the DNSKEY stays rumoured until the policy's TTL has run out too
    ours = next(r.key for r in c.plan.keys if r.key.tag == new.tag)
    assert ours.state is not None and ours.state.dnskey is RecordState.RUMOURED
    assert c.plan.next_state_event == published + TTL + ZPD + PS
    assert {d.split(":")[0] for d in c.diffs} <= {
        f"key {new.tag} dnskey", f"key {new.tag} zrrsig", f"key {new.tag} dnskey_change",
        f"key {new.tag} zrrsig_change", "SOA signers", "next key event",
        "status key",  # the rndc dnssec -status lines of those states
        *(f"key {k.tag} zrrsig" for k in c.bind.keys.values()),
        *(f"key {k.tag} zrrsig_change" for k in c.bind.keys.values()),
    }  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    opts=options(),
    before=key_lines(("13", "8", "15")),
    after=st.one_of(key_lines(("13", "8", "15")), st.just("insecure")),
    age=st.integers(0, 100 * D),
    since=st.integers(0, 20 * D),
    ds_delay=st.sampled_from([H, 2 * H, None]),
)
def test_random_policy_change_same_as_named(
    tmp_path_factory: pytest.TempPathFactory,
    opts: str,
    before: str,
    after: str,
    age: int,
    since: int,
    ds_delay: int | None,
) -> None:
    """The zone ran one random policy, then (``since`` ago) another: an algorithm roll,
    CSK <-> KSK + ZSK, new lifetimes, or the built-in insecure policy."""
    if after != "insecure":
        old, new = (namedconf.parse(named_conf(Path("."), 1, 2, opts + k))["test"].keys
                    for k in (before, after))  # fmt: skip
        # CSK <-> KSK + ZSK within one algorithm: the new keys sign while an old key of
        # their algorithm still does, and dnsseal adds the signing delay there
        # (docs/keymgr-vs-bind.md, difference 4; test_new_zsk_beside_a_signing_key...)
        assume(
            {k.algorithm for k in old} != {k.algorithm for k in new}
            or {k.role for k in old} == {k.role for k in new}
        )
    tmp = tmp_path_factory.mktemp("change")
    final, zone_policy = (opts + after, "test") if after != "insecure" else ("", "insecure")
    for i, text in enumerate((opts + before, final)):
        conf = tmp / f"check{i}.conf"
        conf.write_text(named_conf(tmp, 1, 2, text, zone_policy if i else "test"))
        assume(run_tool(["named-checkconf", conf], check=False).returncode == 0)
    stage = simulated(final, age + since, ds_delay, first=opts + before, since=since,
                      zone_policy=zone_policy)  # fmt: skip
    c = run_scenario(tmp, Scenario("change", final, stage, zone_policy=zone_policy))
    assert c.diffs == [], (
        f"{opts}\n{before} -> {after}\nage={age} since={since} ds_delay={ds_delay}\n" + report(c)
    )


def zsk_beside_signing_csk(s: Stager) -> None:
    """CSK -> KSK + ZSK of the same algorithm: the new ZSK has signed for TTLsig +
    propagation + retire-safety (and a bit), while the old CSK still signs."""
    n = s.now
    old = n - 60 * D
    c = s.keygen("csk", publish=old, activate=old)
    s.states(c, goal=Hd, dnskey=(O, old), krrsig=(O, old), zrrsig=(O, old), ds=(U, n - D),
             times=["-I", bind_time(n - 2 * D)])  # fmt: skip
    s.lifetime(c, 0)
    k = s.keygen("ksk", publish=n - 2 * D, activate=n - 2 * D)
    s.states(k, goal=O, dnskey=(O, n - D), krrsig=(O, n - D), ds=(R, n - D))
    made_by_bind(s, k, "ksk", n - 2 * D, n - 2 * D, 0, first=True)
    t = n - MZT - ZPD - RS - 60
    z = s.keygen("zsk", publish=n - 2 * D, activate=n - 2 * D)
    s.states(z, goal=O, dnskey=(O, n - D), zrrsig=(R, t))
    made_by_bind(s, z, "zsk", n - 2 * D, n - 2 * D, 0, first=True)


def test_signing_delay_beside_a_signing_key_is_the_documented_difference(
    tmp_path: Path,
) -> None:
    """docs/keymgr-vs-bind.md, difference 4: a new ZSK without a predecessor while a key
    of its algorithm still signs.  named calls its signatures omnipresent after TTLsig +
    propagation + retire-safety; dnsseal's signer replaces the old key's signatures at
    refresh time, so dnsseal adds the signing delay.  Nothing else differs."""
    c = run_scenario(tmp_path, Scenario("beside", KZ_ALG, zsk_beside_signing_csk, ttl=TTL))
    z = next(k for k in c.bind.keys.values() if k.role == "zsk")
    assert z.state is not None and z.state.zrrsig is RecordState.OMNIPRESENT
    ours = next(r.key for r in c.plan.keys if r.key.tag == z.tag)
    assert ours.state is not None and ours.state.zrrsig is RecordState.RUMOURED
    assert ours.state.zrrsig_change is not None
    assert c.plan.next_timed_event == ours.state.zrrsig_change + MZT + ZPD + RS + DSGN
    allowed = {"next key event", "SOA signers", "status key"}
    allowed |= {
        f"key {k.tag} {f}" for k in c.bind.keys.values() for f in ("zrrsig", "zrrsig_change")
    }
    assert c.diffs and {d.split(":")[0] for d in c.diffs} <= allowed, report(c)


def two_zsks(s: Stager) -> None:
    """Two ZSKs in use for one policy line, staged alike, neither the other's successor."""
    n = s.now
    _omni_ksk(s, n - 60 * D)
    zsks = [s.keygen("zsk", publish=n - 10 * D, activate=n - 10 * D) for _ in range(2)]
    s.created_like(zsks[1], zsks[0])  # (dnssec-keygen may have crossed a second between)
    for z in zsks:
        s.states(z, goal=O, dnskey=(O, n - 10 * D), zrrsig=(O, n - 10 * D))
        made_by_bind(s, z, "zsk", n - 10 * D, n - 10 * D, 30 * D, first=True)


def test_excess_key_is_retired_as_named_does(tmp_path: Path) -> None:
    """named keeps one key per policy line and retires the other (which one follows its
    directory order; the two are staged alike, so either pairing must match exactly, at
    the same candidate time: the pairing is tried for every candidate, not only for the
    time that fit the unswapped pairing best)."""
    c = run_scenario(tmp_path, Scenario("two-zsks", KZ, two_zsks, ttl=TTL), alike="zsk")
    zsks = sorted(k.tag for k in c.bind.keys.values() if k.role == "zsk")
    gone_bind = [t for t in zsks if c.bind.keys[t].state.goal is RecordState.HIDDEN]  # type: ignore[union-attr]
    gone_ours = [r.key.tag for r in c.plan.keys if r.key.role == "zsk" and r.retired]
    assert len(gone_bind) == len(gone_ours) == 1, report(c)
    assert c.diffs == [], report(c)
