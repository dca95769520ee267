"""RFC 5011 trust anchor maintenance over simulated months, in milliseconds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rrset
import pytest

from dnsseal.errors import FileFormatError
from dnsseal.resolver.engine import Resolver
from dnsseal.resolver.trustmaint import TrustMaintainer
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.machine import Config
from dnsseal.validator.rfc5011 import (
    ADD_HOLDDOWN,
    REMOVE_HOLDDOWN,
    KeyState,
    ManagedZone,
    from_json,
    initial,
    refresh,
    to_json,
)

from .authority import Authority, memory_transport
from .zonebuild import NOW, SigningKey, make_key, sign_zone

ROOT = dns.name.root
DAY = 86400
T0 = 1_700_000_000


def revoked(k: SigningKey) -> SigningKey:
    return SigningKey(k.private, k.dnskey.replace(flags=k.dnskey.flags | 0x80))


def publish(keys: list[SigningKey], signers: list[SigningKey], now: int):  # type: ignore[no-untyped-def]
    rrset = dns.rrset.RRset(ROOT, 1, 48)
    for k in keys:
        rrset.add(k.dnskey, 172800)
    sigs = [
        dns.dnssec.sign(
            rrset, s.private, ROOT, s.dnskey, inception=now - 3600, expiration=now + 20 * DAY
        )
        for s in signers
    ]
    return rrset, sigs


def states(mz: ManagedZone) -> dict[int, KeyState]:
    return {k.tag: k.state for k in mz.keys}


def test_rollover_add_hold_down_then_revoke_and_remove() -> None:
    k1, k2 = make_key(), make_key()
    mz = initial(TrustAnchor(ROOT, keys=(k1.dnskey,), managed=True), T0)
    mz, ev = refresh(mz, *publish([k1, k2], [k1], T0), T0)
    assert states(mz) == {k1.tag: KeyState.VALID, k2.tag: KeyState.ADDPEND}
    assert any("pending" in e for e in ev)
    assert k2.dnskey not in mz.anchor().keys  # not trusted during the hold-down
    t = T0 + 10 * DAY
    mz, _ = refresh(mz, *publish([k1, k2], [k1], t), t)
    assert states(mz)[k2.tag] is KeyState.ADDPEND
    t = T0 + ADD_HOLDDOWN + DAY
    mz, ev = refresh(mz, *publish([k1, k2], [k1], t), t)
    assert states(mz)[k2.tag] is KeyState.VALID
    assert k2.dnskey in mz.anchor().keys
    # k1 is revoked: it signs the set with its REVOKE bit, k2 signs too.
    t += DAY
    r1 = revoked(k1)
    mz, ev = refresh(mz, *publish([r1, k2], [r1, k2], t), t)
    assert states(mz)[k1.tag] is KeyState.REVOKED
    assert k1.dnskey not in mz.anchor().keys
    assert any("revoked" in e for e in ev)
    # After the remove hold-down, once unpublished, k1 is forgotten.
    t += REMOVE_HOLDDOWN + DAY
    mz, ev = refresh(mz, *publish([k2], [k2], t), t)
    assert states(mz) == {k2.tag: KeyState.VALID}
    assert mz.next_refresh > t


def test_unvalidated_rrset_changes_nothing_and_forged_revocation_is_ignored() -> None:
    k1, intruder = make_key(), make_key()
    mz = initial(TrustAnchor(ROOT, keys=(k1.dnskey,), managed=True), T0)
    new, ev = refresh(mz, *publish([k1, intruder], [intruder], T0), T0)
    assert states(new) == {k1.tag: KeyState.VALID}
    assert "not validated" in ev[0]
    # A REVOKE bit not signed by the revoked key itself does not revoke it.
    k2 = make_key()
    mz, _ = refresh(mz, *publish([k1, k2], [k1], T0), T0)
    t = T0 + ADD_HOLDDOWN + 1
    mz, _ = refresh(mz, *publish([k1, k2], [k1], t), t)
    mz, _ = refresh(mz, *publish([revoked(k1), k2], [k2], t + 1), t + 1)
    assert states(mz)[k1.tag] is KeyState.VALID


def test_missing_key_stays_trusted_and_pending_key_withdrawn() -> None:
    k1, k2, k3 = make_key(), make_key(), make_key()
    mz = initial(TrustAnchor(ROOT, keys=(k1.dnskey, k2.dnskey), managed=True), T0)
    mz, _ = refresh(mz, *publish([k1, k2, k3], [k1], T0), T0)
    mz, ev = refresh(mz, *publish([k1], [k1], T0 + DAY), T0 + DAY)
    assert states(mz) == {k1.tag: KeyState.VALID, k2.tag: KeyState.MISSING}
    assert k2.dnskey in mz.anchor().keys
    assert any("withdrawn" in e for e in ev)


def test_initial_ds_becomes_key_and_state_round_trips() -> None:
    k1 = make_key()
    ds = dns.dnssec.make_ds(ROOT, k1.dnskey, "SHA256")
    mz = initial(TrustAnchor(ROOT, ds=(ds,), managed=True), T0)
    assert mz.next_refresh == T0
    mz, ev = refresh(mz, *publish([k1], [k1], T0), T0)
    assert states(mz) == {k1.tag: KeyState.VALID}
    assert mz.initial_ds == ()
    assert "initial-ds" in ev[0]
    text = to_json([mz])
    assert from_json(text, "state.json") == [mz]
    assert to_json(from_json(text, "state.json")) == text


@pytest.mark.parametrize("text", ["{", '{"version": 2, "zones": []}', '{"version": 1}'])
def test_bad_state_file_names_the_file(text: str) -> None:
    with pytest.raises(FileFormatError) as e:
        from_json(text, "/var/lib/dnsseal/anchors.json")
    assert e.value.path == "/var/lib/dnsseal/anchors.json"


def test_service_maintainer_updates_anchors_and_state_file(tmp_path: Path) -> None:
    k1, k2 = make_key(), make_key()
    root = sign_zone(
        "@ 3600 SOA ns.root. h 1 3600 300 3600000 3600\n@ NS ns.root.\nns.root. A 127.0.0.1\n",
        ".",
        keys=[k1],
        extra_dnskeys=[k2.dnskey],
        expiration=NOW + 120 * DAY,
    )
    auth = Authority([root])
    now = [NOW]
    static = AnchorSet((TrustAnchor(ROOT, keys=(k1.dnskey,), managed=True),))
    resolver = Resolver(
        Config((("127.0.0.1", 53),), static), memory_transport(auth), lambda: now[0]
    )
    state = tmp_path / "anchors.json"
    tm = TrustMaintainer(resolver, static, state, lambda: now[0])
    events = asyncio.run(tm.refresh_due())
    assert any("new key" in e for e in events)
    saved = from_json(state.read_text(), str(state))
    assert states(saved[0]) == {k1.tag: KeyState.VALID, k2.tag: KeyState.ADDPEND}
    assert resolver.config.anchors.closest(ROOT).keys == (k1.dnskey,)  # type: ignore[union-attr]
    assert asyncio.run(tm.refresh_due()) == []  # not due again yet
    now[0] += ADD_HOLDDOWN + DAY
    asyncio.run(tm.refresh_due())
    trusted = resolver.config.anchors.closest(ROOT).keys  # type: ignore[union-attr]
    assert set(trusted) == {k1.dnskey, k2.dnskey}
    again = TrustMaintainer(Resolver(Config((("127.0.0.1", 53),), static)), static, state)
    assert again.zones == tm.zones
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporaries
