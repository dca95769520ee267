"""Property: any small random zone signed by dnsseal verifies clean with dnsseal verify and
with ldns-verify-zone."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsseal import clock
from dnsseal.signer import Nsec3Params, SigningKey, SignParams, sign_zone
from dnsseal.signer.verify import verify_zone
from dnsseal.zone.diff import ZoneDiff, apply, records

from .conftest import external_verify, ksk_zsk, make_key, write, zone_from

LABELS = st.sampled_from(["a", "b", "Mx", "www", "_tcp", "x-1", "z\\.dot", "\\200", "*", "deep"])
NAMES = st.lists(LABELS, min_size=1, max_size=3).map(".".join)
ROLES = st.sampled_from(["host", "txt", "mx", "cname", "insecure", "secure", "wild"])
DENIAL = st.sampled_from([None, Nsec3Params(), Nsec3Params(opt_out=True)])

HEAD = """$TTL 300
@ SOA ns1 hostmaster 1 3600 900 604800 120
@ NS ns1
ns1 A 192.0.2.1
"""
DS = "DS 12345 13 2 " + "ab" * 32


def zone_text(entries: list[tuple[str, str]]) -> str:
    lines = [HEAD]
    seen: set[str] = set()
    for i, (name, role) in enumerate(entries):
        # A "*" is only a wildcard as the leftmost label; elsewhere it is a literal label.
        key = name.lower() if role != "wild" else "*." + name.lower()
        if key in seen or key == "ns1" or (role in ("insecure", "secure") and key[0] == "*"):
            continue  # one role per owner; BIND refuses NS at a wildcard (RFC 4592 4.2)
        seen.add(key)
        if role == "host":
            lines.append(f"{name} A 192.0.2.{i + 10}\n{name} AAAA 2001:db8::{i + 10:x}")
        elif role == "txt":
            lines.append(f'{name} TXT "entry {i}"')
        elif role == "mx":
            lines.append(f"{name} MX 10 ns1")
        elif role == "cname":
            lines.append(f"{name} CNAME ns1")
        elif role in ("insecure", "secure"):
            lines.append(f"{name} NS ns.{name}\nns.{name} A 192.0.2.{i + 100}")
            if role == "secure":
                lines.append(f"{name} {DS}")
        else:
            lines.append(f'*.{name} TXT "wild {i}"')
    return "\n".join(lines) + "\n"


@pytest.mark.interop
@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.tuples(NAMES, ROLES), min_size=1, max_size=12), nsec3=DENIAL)
def test_random_zones_verify_clean(entries: list[tuple[str, str]],
                                   nsec3: Nsec3Params | None) -> None:  # fmt: skip
    text = zone_text(entries)
    now = clock.now()
    signed = sign_zone(zone_from(text), ksk_zsk(13), SignParams(nsec3=nsec3), now).zone
    assert verify_zone(signed, now) == [], text
    with tempfile.TemporaryDirectory() as d:
        external_verify(write(signed, Path(d) / "z.signed"), tools=("ldns-verify-zone",))


T = dns.rdatatype
LAYOUTS = st.sampled_from(["ksk+zsk", "csk", "two-algorithms"])


def _keys(layout: str) -> list[SigningKey]:
    if layout == "csk":
        return [SigningKey(make_key(13, ksk=True))]
    return ksk_zsk(13) + (ksk_zsk(15) if layout == "two-algorithms" else [])


@pytest.mark.interop
@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(st.tuples(NAMES, ROLES), min_size=1, max_size=10),
    more=st.lists(st.tuples(NAMES, ROLES), max_size=4),
    layout=LAYOUTS,
    nsec3=DENIAL,
    pick=st.integers(0, 1000),
)
def test_random_edits_resign_clean(entries: list[tuple[str, str]],
                                   more: list[tuple[str, str]], layout: str,
                                   nsec3: Nsec3Params | None, pick: int) -> None:  # fmt: skip
    """Sign, remove one record and add others, smart re-sign: clean for us and all three
    external verifiers."""
    now = clock.now()
    keys = _keys(layout)
    params = SignParams(nsec3=nsec3, ksk_only=layout != "csk")
    first = sign_zone(zone_from(zone_text(entries)), keys, params, now).zone
    chain_and_keys = {T.SOA, T.DNSKEY, T.NSEC, T.NSEC3, T.NSEC3PARAM, T.RRSIG}
    data = [r for r in records(first) if r[1] not in chain_and_keys and r[0] != first.origin]
    removed = (data[pick % len(data)],) if data else ()
    added = tuple(
        r for r in records(zone_from(zone_text(entries + more))) if r[1] not in chain_and_keys
    )
    again = sign_zone(apply(first, ZoneDiff(removed, added)), keys, params, now).zone
    assert verify_zone(again, now) == []
    with tempfile.TemporaryDirectory() as d:
        external_verify(write(again, Path(d) / "z.signed"), csk=layout == "csk")
