"""RFC 5011 automated updates of trust anchors (BIND's ``initial-key``/``initial-ds``).

Pure: :func:`refresh` takes the managed zone's state, the DNSKEY RRset just fetched with its
RRSIGs and ``now``, and returns the new state plus one sentence per change.  The service
fetches, calls this, and writes :func:`to_json` atomically.

Key states (RFC 5011 s4.1): a new SEP key seen in a DNSKEY RRset validated by a current
anchor is *AddPend* until the add hold-down (30 days) has passed while it stayed published,
then *Valid*; a Valid key that disappears is *Missing* (still trusted); a key that signs
the RRset with its REVOKE bit set is *Revoked* (no longer trusted) and forgotten after the
remove hold-down.  An ``initial-ds`` anchor is turned into the key(s) it matches the first
time the RRset validates.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

from dnsseal.errors import FileFormatError
from dnsseal.validator.anchors import AnchorSet, TrustAnchor
from dnsseal.validator.keyset import ds_digest, trust_keys
from dnsseal.validator.limits import Budget
from dnsseal.validator.policy import DEFAULT_POLICY, AlgorithmPolicy
from dnsseal.validator.rrsig import REVOKE_FLAG, SEP_FLAG, ZoneKey, key_tag, verify_rrset

ADD_HOLDDOWN = 30 * 86400
REMOVE_HOLDDOWN = 30 * 86400
MIN_REFRESH = 3600
MAX_REFRESH = 15 * 86400
RETRY = 3600


class KeyState(enum.Enum):
    ADDPEND = "addpend"
    VALID = "valid"
    MISSING = "missing"
    REVOKED = "revoked"


TRUSTED = {KeyState.VALID, KeyState.MISSING}


def _ident(key: DNSKEY) -> tuple[int, bytes]:
    return int(key.algorithm), bytes(key.key)


def _unrevoked(key: DNSKEY) -> DNSKEY:
    out = key.replace(flags=key.flags & ~REVOKE_FLAG)
    assert isinstance(out, DNSKEY)
    return out


@dataclass(frozen=True, slots=True)
class ManagedKey:
    """One SEP key of a managed zone; ``since`` is when it entered ``state``."""

    key: DNSKEY  # stored without the REVOKE bit
    state: KeyState
    since: int

    @property
    def tag(self) -> int:
        return key_tag(self.key)


@dataclass(frozen=True, slots=True)
class ManagedZone:
    zone: dns.name.Name
    keys: tuple[ManagedKey, ...] = ()
    initial_ds: tuple[DS, ...] = ()
    last_refresh: int = 0
    next_refresh: int = 0

    def anchor(self) -> TrustAnchor:
        """What validation may trust now: Valid and Missing keys, and pending initial DS."""
        keys = tuple(k.key for k in self.keys if k.state in TRUSTED)
        return TrustAnchor(self.zone, self.initial_ds, keys, managed=True)

    def describe(self) -> list[str]:
        return [f"{self.zone} key {k.tag}: {k.state.value} since {k.since}" for k in self.keys]


def initial(anchor: TrustAnchor, now: int) -> ManagedZone:
    """State for an ``initial-*`` anchor never refreshed before (due now)."""
    keys = tuple(ManagedKey(_unrevoked(k), KeyState.VALID, now) for k in anchor.keys)
    return ManagedZone(anchor.zone, keys, anchor.ds, 0, now)


def refresh_interval(ttl: int, sigs: Sequence[RRSIG], now: int) -> int:
    """RFC 5011 s2.3: max(1 hour, min(15 days, TTL/2, signature validity left/2))."""
    left = [((s.expiration - now) & 0xFFFFFFFF) // 2 for s in sigs] or [MAX_REFRESH]
    return max(MIN_REFRESH, min(MAX_REFRESH, ttl // 2, *left))


def refresh(
    mz: ManagedZone,
    dnskeys: dns.rrset.RRset | None,
    sigs: Sequence[RRSIG],
    now: int,
    budget: Budget | None = None,
    policy: AlgorithmPolicy = DEFAULT_POLICY,
) -> tuple[ManagedZone, list[str]]:
    """The zone's state after seeing ``dnskeys`` (None: the fetch failed) at ``now``."""
    budget = budget or Budget()
    zone = mz.zone
    if dnskeys is None:
        return replace(mz, next_refresh=now + RETRY), [f"[{zone}] no DNSKEY answer; retry later"]
    anchor = mz.anchor()
    ks = trust_keys(zone, dnskeys, sigs, anchor.ds, anchor.keys, now, budget, policy)
    if ks.verdict.security.value != "secure":
        why = f"[{zone}] DNSKEY RRset not validated by the current anchors: {ks.verdict.reason}"
        return replace(mz, next_refresh=now + RETRY), [why]
    events: list[str] = []
    present: dict[tuple[int, bytes], DNSKEY] = {
        _ident(k): k for k in dnskeys if k.flags & SEP_FLAG and k.protocol == 3
    }
    keys: list[ManagedKey] = []
    known = {_ident(k.key) for k in mz.keys}
    for ds in mz.initial_ds:  # initial-ds: the matching key becomes a Valid anchor
        for ident, k in present.items():
            if ident in known or k.flags & REVOKE_FLAG:
                continue
            if key_tag(k) == ds.key_tag and ds_digest(zone, k, ds.digest_type) == ds.digest:
                keys.append(ManagedKey(k, KeyState.VALID, now))
                known.add(ident)
                events.append(f"[{zone}] initial-ds {ds.key_tag} matched: key {key_tag(k)} trusted")
    for mk in mz.keys:
        seen = present.get(_ident(mk.key))
        if seen is None:
            if mk.state is KeyState.VALID:
                keys.append(replace(mk, state=KeyState.MISSING, since=now))
                events.append(f"[{zone}] key {mk.tag} missing (still trusted)")
            elif mk.state is KeyState.ADDPEND:
                events.append(f"[{zone}] key {mk.tag} withdrawn before its add hold-down ended")
            elif mk.state is KeyState.REVOKED and now >= mk.since + REMOVE_HOLDDOWN:
                events.append(f"[{zone}] revoked key {mk.tag} removed")
            else:
                keys.append(mk)
            continue
        if seen.flags & REVOKE_FLAG:
            if mk.state is not KeyState.REVOKED:
                check = verify_rrset(
                    dnskeys, sigs, [ZoneKey.of(zone, seen)], zone, now, budget, policy
                )
                if check.ok:
                    keys.append(replace(mk, state=KeyState.REVOKED, since=now))
                    events.append(f"[{zone}] key {mk.tag} revoked (self-signed REVOKE bit)")
                    continue
            keys.append(mk)
            continue
        if mk.state is KeyState.ADDPEND and now >= mk.since + ADD_HOLDDOWN:
            keys.append(replace(mk, state=KeyState.VALID, since=now))
            events.append(f"[{zone}] key {mk.tag} add hold-down passed: now trusted")
        elif mk.state is KeyState.MISSING:
            keys.append(replace(mk, state=KeyState.VALID, since=now))
            events.append(f"[{zone}] key {mk.tag} is back")
        else:
            keys.append(mk)
    for ident, k in present.items():
        if ident in known or k.flags & REVOKE_FLAG:
            continue
        keys.append(ManagedKey(k, KeyState.ADDPEND, now))
        events.append(
            f"[{zone}] new key {key_tag(k)}: pending until {now + ADD_HOLDDOWN} (add hold-down)"
        )
    initial_ds = mz.initial_ds if not any(k.state in TRUSTED for k in keys) else ()
    nxt = now + refresh_interval(dnskeys.ttl, sigs, now)
    return ManagedZone(zone, tuple(keys), initial_ds, now, nxt), events


def anchors_with(static: AnchorSet, managed: Sequence[ManagedZone]) -> AnchorSet:
    """``static`` with every managed zone's anchor replaced by its current state."""
    return static.merged(AnchorSet(tuple(m.anchor() for m in managed)))


# --- state file (JSON text; the caller writes it atomically) ---------------------------


def to_json(zones: Sequence[ManagedZone]) -> str:
    def key_text(k: DNSKEY) -> str:
        return f"{k.flags} {k.protocol} {k.algorithm} {base64.b64encode(k.key).decode()}"

    data = {
        "version": 1,
        "zones": [
            {
                "zone": z.zone.to_text(),
                "last_refresh": z.last_refresh,
                "next_refresh": z.next_refresh,
                "initial_ds": [d.to_text() for d in z.initial_ds],
                "keys": [
                    {"dnskey": key_text(k.key), "state": k.state.value, "since": k.since}
                    for k in z.keys
                ],
            }
            for z in zones
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def from_json(text: str, source: str) -> list[ManagedZone]:
    """Parse :func:`to_json` output; raises :class:`FileFormatError` naming ``source``."""
    try:
        data: Any = json.loads(text)
        if data.get("version") != 1:
            raise ValueError(f"unsupported version {data.get('version')!r}")
        out = []
        for z in data["zones"]:
            keys = tuple(
                ManagedKey(_parse_key(k["dnskey"]), KeyState(k["state"]), int(k["since"]))
                for k in z["keys"]
            )
            ds = tuple(_parse_ds(t) for t in z["initial_ds"])
            out.append(
                ManagedZone(
                    dns.name.from_text(z["zone"]),
                    keys,
                    ds,
                    int(z["last_refresh"]),
                    int(z["next_refresh"]),
                )
            )
        return out
    except json.JSONDecodeError as e:
        raise FileFormatError(source, e.lineno, e.msg) from None
    except (KeyError, TypeError, ValueError, AttributeError, dns.exception.DNSException) as e:
        raise FileFormatError(source, None, f"bad trust anchor state: {e!r}") from None


def _parse_key(text: str) -> DNSKEY:
    rd = dns.rdata.from_text("IN", "DNSKEY", text)
    assert isinstance(rd, DNSKEY)
    return rd


def _parse_ds(text: str) -> DS:
    rd = dns.rdata.from_text("IN", "DS", text)
    assert isinstance(rd, DS)
    return rd
