"""Sanity checks of a policy, beyond syntax: would it work, and is it safe?

Each problem is an :class:`~dnsseal.errors.OptionError` naming the option path
(``policy.NAME.keys[1].lifetime``), so ``dnsseal policy check`` can list them all at once.
"""

from __future__ import annotations

from dnsseal.durations import format_duration
from dnsseal.errors import OptionError
from dnsseal.keys import algorithms
from dnsseal.policy.model import UNLIMITED, Policy


def check_policy(policy: Policy) -> list[OptionError]:
    """Every problem of ``policy`` (empty when it is fine)."""
    base = f"policy.{policy.name}"
    out: list[OptionError] = []
    if not policy.manage:
        return out
    for i, key in enumerate(policy.keys):
        need = policy.roll_duration(key.role)
        if key.lifetime != UNLIMITED and key.lifetime < need:
            out.append(
                OptionError(
                    f"{base}.keys[{i}].lifetime",
                    f"{key.role.upper()} lifetime {format_duration(key.lifetime)} is shorter "
                    f"than the {format_duration(need)} a rollover needs (publication interval "
                    f"{format_duration(policy.ipub)} + retire interval "
                    f"{format_duration(need - policy.ipub)})",
                )
            )
    by_alg: dict[int, set[str]] = {}
    for key in policy.keys:
        by_alg.setdefault(key.algorithm, set()).add(key.role)
    for alg, roles in sorted(by_alg.items()):
        name = algorithms.ALGORITHMS[alg].mnemonic if alg in algorithms.ALGORITHMS else str(alg)
        if "csk" not in roles and ("ksk" not in roles or "zsk" not in roles):
            missing = "zsk" if "ksk" in roles else "ksk"
            out.append(
                OptionError(
                    f"{base}.keys",
                    f"algorithm {name} has no {missing.upper()} (each algorithm needs a CSK, "
                    "or a KSK and a ZSK)",
                )
            )
    for opt, validity in (
        ("signatures-validity", policy.signatures_validity),
        ("signatures-validity-dnskey", policy.signatures_validity_dnskey),
    ):
        if policy.signatures_refresh >= validity:
            out.append(
                OptionError(
                    f"{base}.signatures-refresh",
                    f"{format_duration(policy.signatures_refresh)} is not shorter than "
                    f"{opt} {format_duration(validity)}: signatures would be refreshed "
                    "as soon as they are made",
                )
            )
    ttl = max(policy.max_zone_ttl, policy.dnskey_ttl)
    if policy.signatures_refresh <= ttl + policy.zone_propagation_delay:
        out.append(
            OptionError(
                f"{base}.signatures-refresh",
                f"signatures are refreshed too late: {format_duration(policy.signatures_refresh)}"
                f" before expiry is not more than the largest TTL {format_duration(ttl)} + "
                f"zone-propagation-delay {format_duration(policy.zone_propagation_delay)}, so "
                "a resolver could still hold a signature after it expires",
            )
        )
    if policy.offline_ksk:
        for i, key in enumerate(policy.keys):
            if key.role == "csk":
                # BIND's kaspconf refuses it too: the KSK half of a CSK would be offline, so
                # the ZSK half could not sign the zone (BIND's checkconf test bad-offline-ksk)
                out.append(
                    OptionError(
                        f"{base}.keys[{i}].role",
                        "a CSK cannot be used with offline-ksk (its private key signs the "
                        "zone, so it cannot stay offline): use a KSK and a ZSK",
                    )
                )
    n3 = policy.nsec3param
    if n3 is not None and n3.iterations > 0:
        out.append(
            OptionError(
                f"{base}.nsec3param.iterations",
                f"{n3.iterations} additional iterations: RFC 9276 says use 0 (validators "
                "treat zones with many iterations as insecure or bogus)",
            )
        )
    return out
