"""BIND's signing-state records (TYPE65534) in inline-signed zones, and which keys sign what.

The record format and transitions are checked against what BIND 9.18 was seen to do (a
`named` with `dnssec-policy` and `inline-signing yes`, its zone looked at with `dig` and
`rndc signing -list` through a ZSK roll): TTL 0, RDATA algorithm / key id / removal /
complete; "Done signing" for every key of the first signing and of a new algorithm, none
for a ZSK succeeding one of the same algorithm, and every record of a key deleted once its
DNSKEY and signatures have left the zone.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import run_tool
from dnsseal.findings import Severity
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn
from dnsseal.policy.build import lookup
from dnsseal.policy.model import KeySpec, Nsec3Param, Policy
from dnsseal.server.checkds import waiting_keys
from dnsseal.server.inline import InlineZone
from dnsseal.server.versions import Version, record_line
from dnsseal.signer import signingstate as sstate
from dnsseal.signer.signingstate import SigningState
from dnsseal.signer.verify import verify_zone
from dnsseal.storage import zonefile
from dnsseal.zone.diff import ZoneDiff, records
from dnsseal.zone.model import RRset, Zone

from .conftest import zone_text

T = dns.rdatatype
DAY = 86400
START = 1_800_000_000
PRIVATE = sstate.PRIVATE_TYPE

# -- the record format ------------------------------------------------------------------


def test_bind_rdata_reads_as_bind_prints_it() -> None:
    """Bytes BIND 9.18 served (dig: `f.example. 0 IN TYPE65534 \\# 5 0DA6110001`)."""
    s = SigningState.from_wire(bytes.fromhex("0DA6110001"))
    assert s == SigningState(13, 42513, removal=False, complete=True)
    assert s.describe() == "Done signing with key 42513/ECDSAP256SHA256"
    assert s.to_text() == "\\# 5 0DA6110001"


@pytest.mark.parametrize(
    ("removal", "complete", "line"),
    [
        (False, False, "Signing with key 12345/ED25519"),
        (False, True, "Done signing with key 12345/ED25519"),
        (True, False, "Removing signatures for key 12345/ED25519"),
        (True, True, "Done removing signatures for key 12345/ED25519"),
    ],
)
def test_rndc_signing_list_lines(removal: bool, complete: bool, line: str) -> None:
    assert SigningState(15, 12345, removal, complete).describe() == line


def test_unknown_algorithm_is_printed_as_its_number() -> None:
    assert SigningState(200, 7).describe() == "Signing with key 7/200"


@given(
    st.integers(0, 255), st.integers(0, 0xFFFF), st.booleans(), st.booleans()
)  # fmt: skip
def test_wire_round_trip(alg: int, tag: int, removal: bool, complete: bool) -> None:
    s = SigningState(alg, tag, removal, complete)
    wire = s.to_wire()
    assert len(wire) == 5
    assert wire[0] == alg and struct.unpack("!H", wire[1:3])[0] == tag
    assert SigningState.from_wire(wire) == s


def test_bad_records_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="7 bytes, not 5"):
        SigningState.from_wire(bytes(7))
    with pytest.raises(ValueError, match="key id 70000"):
        SigningState(13, 70000)
    with pytest.raises(ValueError, match="algorithm 256"):
        SigningState(256, 1)
    # BIND's NSEC3 chain records are longer: set aside, not misread
    states, other = sstate.parse_rdatas([bytes.fromhex("0DA6110001"), bytes(10)])
    assert [s.key_id for s in states] == [42513] and other == [bytes(10)]


def test_clear_selector() -> None:
    assert sstate.parse_selector("all") is None
    assert sstate.parse_selector("12345/13") == (13, 12345)
    assert sstate.parse_selector("12345/ECDSAP256SHA256") == (13, 12345)
    for bad in ("12345", "x/13", "12345/NOPE", "99999/13", "1/300"):
        with pytest.raises(ValueError, match=repr(bad)):
            sstate.parse_selector(bad)
    states = [SigningState(13, 1, complete=True), SigningState(13, 2), SigningState(8, 1, True)]
    assert sstate.clear(states, None) == (SigningState(13, 2), SigningState(8, 1, True))
    assert sstate.clear(states, (13, 1)) == tuple(states[1:])
    assert sstate.clear(states, (8, 1)) == tuple(states)  # pending: stays


def test_transitions() -> None:
    done = SigningState(13, 1, complete=True)

    def nxt(current: list[SigningState], **kw: object) -> tuple[SigningState, ...]:
        args: dict[str, object] = {
            "published": {(13, 1), (13, 2)},
            "signing": {(13, 1), (13, 2)},
            "signed_before": {(13, 1), (13, 2)},
            "algorithms_before": {13},
        }
        args.update(kw)
        return sstate.next_states(current, **args)  # type: ignore[arg-type]

    # first signing: every signing key
    first = nxt([], signed_before=set(), algorithms_before=set())
    assert first == (done, SigningState(13, 2, complete=True))
    # a ZSK of an algorithm already signing: no record (BIND re-signs gradually)
    assert nxt([done], signing={(13, 1), (13, 3)}, published={(13, 1), (13, 3)}) == (done,)
    # a new algorithm: its new keys; the old algorithm's records stay while published
    new_alg = nxt([done], signing={(13, 1), (15, 9)}, published={(13, 1), (15, 9)})
    assert new_alg == (done, SigningState(15, 9, complete=True))
    # a key whose DNSKEY left: all its records go
    assert nxt([done, SigningState(13, 1, True, True)], published={(13, 2)}) == ()
    # a pending signing completes; a pending removal of a published key is moot
    assert nxt([SigningState(13, 1), SigningState(13, 2, removal=True)]) == (done,)
    # a full re-sign (ctl sign): every signing key
    assert len(nxt([], full=True)) == 2
    # done: a served record of a key whose signatures are omnipresent goes; one made in
    # this very version stays (served at least once), as does an unsettled key's
    assert nxt([done], settled={(13, 1)}) == ()
    assert nxt([done], settled={(13, 2)}) == (done,)
    assert len(nxt([], full=True, settled={(13, 1), (13, 2)})) == 2


# -- InlineZone on simulated time ---------------------------------------------------------


def _errors(zone: Zone, now: int) -> list[str]:
    return [str(f) for f in verify_zone(zone, now) if f.severity is Severity.ERROR]


def _states(zone: Zone) -> set[tuple[int, int, bool, bool]]:
    return {(s.algorithm, s.key_id, s.removal, s.complete) for s in sstate.states_of(zone)[0]}


def _dnskeys(zone: Zone) -> set[tuple[int, int]]:
    rr = zone.get(zone.origin, T.DNSKEY)
    out = set()
    for wire in rr.rdatas if rr else ():
        rd = dns.rdata.from_wire(dns.rdataclass.IN, T.DNSKEY, wire, 0, len(wire))
        out.add((wire[3], dns.dnssec.key_id(rd)))  # type: ignore[arg-type]
    return out


def _apex_bitmap_has_private(zone: Zone) -> bool:
    nsec = zone.get(zone.origin, T.NSEC)
    assert nsec is not None
    text = record_line((zone.origin, T.NSEC, nsec.ttl, nsec.rdatas[0]))
    return "TYPE65534" in text.split()


def _types(rrset: RRset) -> list[int]:
    """The types in the bitmap of a one-record NSEC3 RRset."""
    wire = rrset.rdatas[0]
    rd = dns.rdata.from_wire(dns.rdataclass.IN, rrset.rtype, wire, 0, len(wire))
    return [t for window, bits in rd.windows for t in _bits(window, bits)]  # type: ignore[attr-defined]


def _bits(window: int, bits: bytes) -> list[int]:
    return [
        window * 256 + i * 8 + j for i, b in enumerate(bits) for j in range(8) if b & (0x80 >> j)
    ]


def _signers(zone: Zone) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(keys signing DNSKEY/CDS/CDNSKEY, keys signing anything else) in ``zone``."""
    keyset, other = set(), set()
    for node in zone.rrsigs.values():
        for covered, rr in node.items():
            for w in rr.rdatas:
                ref = (w[2], struct.unpack_from("!H", w, 16)[0])
                (keyset if covered in (T.DNSKEY, T.CDS, T.CDNSKEY) else other).add(ref)
    return keyset, other


def _zone(tmp_path: Path, policy: Policy, name: str = "ss.example.") -> InlineZone:
    src = tmp_path / f"{name}zone"
    src.write_text(zone_text(name).replace("$TTL 2", "$TTL 300"))
    (tmp_path / "state").mkdir(exist_ok=True)
    return InlineZone(name, src, policy, tmp_path / "keys", tmp_path / "state")


def _run(
    z: InlineZone,
    until: int,
    *,
    policy_at: tuple[int, Policy] | None = None,
    on_version: Callable[[int, Version], None] | None = None,
) -> list[tuple[int, Version]]:
    """Maintain ``z`` on its own wake-up times until ``until`` (the parent's DS follows
    the CDS a day later; ``policy_at``: switch to that policy then).  Every version
    verifies when made and until the next maintenance."""
    now, out = START, []
    ds_at: dict[int, int] = {}
    while now < until:
        if policy_at is not None and now >= policy_at[0] and z.policy is not policy_at[1]:
            z.policy = policy_at[1]
        v = z.maintain(now)
        if v is not None:
            assert not _errors(v.zone, now), (now - START, _errors(v.zone, now))
            out.append((now, v))
            if on_version is not None:
                on_version(now, v)
        waits = waiting_keys(z.keys)
        for k in waits.publish:
            if now >= ds_at.setdefault(k.tag, now + DAY):
                z.request(DsSeen(k.id, now))
        for k in waits.withdraw:
            if now >= ds_at.setdefault(-k.tag, now + DAY):
                z.request(DsWithdrawn(k.id, now))
        nxt = z.next_wakeup()
        assert nxt is not None and nxt > now
        nxt = min([nxt, *(t for t in ds_at.values() if t > now)])
        assert z.signed is not None and not _errors(z.signed, nxt - 1)
        now = nxt
    return out


def _policy(*keys: KeySpec, name: str = "ss") -> Policy:
    return lookup("default", {}).replace(name=name, keys=keys)


def test_records_follow_bind_through_a_zsk_roll(tmp_path: Path) -> None:
    z = _zone(tmp_path, _policy(KeySpec("ksk", 13), KeySpec("zsk", 13, lifetime=30 * DAY)))
    versions = _run(z, START + 75 * DAY)
    first = versions[0][1].zone
    assert first.get(first.origin, T.SOA) is not None
    ksk = next(k for k in z.keys if k.role == "ksk")  # never rolls
    ((_, zsk),) = _dnskeys(first) - {(13, ksk.tag)}
    # the first signing: "Done signing" for both keys, TTL 0, signed, in the apex bitmap
    assert _states(first) == {(13, ksk.tag, False, True), (13, zsk, False, True)}
    rrset = first.get(first.origin, PRIVATE)
    assert rrset is not None and rrset.ttl == 0
    assert PRIVATE in first.rrsigs[first.origin]
    assert _apex_bitmap_has_private(first)
    # never operator data: not in the unsigned view
    assert z.unsigned is not None and z.unsigned.get(z.origin, PRIVATE) is None
    # through the rolls: a successor ZSK of the same algorithm gets no record, only
    # published keys have records, and the records go once the keys' signatures are
    # omnipresent (the signing is done), in a later version than the one adding them
    prev = first
    for _, v in versions[1:]:
        states = _states(v.zone)
        published = _dnskeys(v.zone)
        assert {(a, t) for a, t, _, _ in states} <= published
        assert {t for _, t, _, _ in states} <= {ksk.tag, zsk}
        assert all(s[3] for s in states)  # never left pending between versions
        prev = v.zone
    assert len({t for _, v in versions for _, t in _dnskeys(v.zone)}) >= 4  # ZSKs rolled
    assert _states(prev) == set()
    assert not _apex_bitmap_has_private(prev)


def test_a_new_algorithm_gets_records_and_the_old_ones_go(tmp_path: Path) -> None:
    old = _policy(KeySpec("ksk", 13), KeySpec("zsk", 13))
    new = _policy(KeySpec("ksk", 15), KeySpec("zsk", 15), name="ss15")
    z = _zone(tmp_path, old)
    versions = _run(z, START + 40 * DAY, policy_at=(START + 5 * DAY, new))
    seen: list[set[tuple[int, int, bool, bool]]] = [_states(v.zone) for _, v in versions]
    algs_over_time = [{s[0] for s in states} for states in seen]
    assert algs_over_time[0] == {13}
    assert {15} in algs_over_time  # the new algorithm's keys get records when they sign
    assert algs_over_time[-1] == set()  # and they go once the signing is done
    # the version where ED25519 first signs carries its "Done signing" records
    for (_, v), states in zip(versions, seen, strict=True):
        if any(w[2] == 15 for node in v.zone.rrsigs.values() for rr in node.values()
               for w in rr.rdatas):  # fmt: skip
            assert {s[0] for s in states} >= {15}
            break
    else:
        raise AssertionError("ED25519 never signed")


def test_clear_sign_restore_and_updates(tmp_path: Path) -> None:
    z = _zone(tmp_path, _policy(KeySpec("ksk", 13), KeySpec("zsk", 13)))
    v0 = z.maintain(START)
    assert v0 is not None and len(_states(v0.zone)) == 2
    ksk = next(k for k in z.keys if k.role == "ksk")
    # signing -clear KEYID/ALG, then all: a signed version each; the bitmap follows
    v1 = z.clear_signing_state((13, ksk.tag), START + 10)
    zsk = next(k for k in z.keys if k.role == "zsk")
    assert v1 is not None and _states(v1.zone) == {(13, zsk.tag, False, True)}
    assert v1.serial > v0.serial and not _errors(v1.zone, START + 10)
    v2 = z.clear_signing_state(None, START + 20)
    assert v2 is not None and _states(v2.zone) == set()
    assert z.signed is not None and z.signed.get(z.origin, PRIVATE) is None
    assert not _apex_bitmap_has_private(v2.zone) and not _errors(v2.zone, START + 20)
    assert z.clear_signing_state(None, START + 30) is None  # nothing left to clear
    # maintenance does not bring them back; a full re-sign (ctl sign) does, like rndc sign
    assert z.maintain(START + 40) is None
    v3 = z.maintain(START + 50, reason="sign", force=True)
    assert v3 is not None and len(_states(v3.zone)) == 2 and _apex_bitmap_has_private(v3.zone)
    # an update cannot touch them
    rec = (z.origin, PRIVATE, 0, SigningState(13, 1).to_wire())
    www = dns.name.from_text("new", z.origin)
    a = (www, T.A, 300, bytes([192, 0, 2, 9]))
    v4 = z.update(ZoneDiff((), (rec, a)), START + 60)
    assert _states(v4.zone) == _states(v3.zone) and v4.zone.get(www, T.A) is not None
    assert z.unsigned is not None and z.unsigned.get(z.origin, PRIVATE) is None
    # restored from the journal's lines: kept in the signed version, not in the data
    lines = [record_line(r) for r in records(v4.zone)]
    assert any("TYPE65534" in line for line in lines)
    z2 = InlineZone(z.name, z.source, z.policy, z.key_dir, tmp_path / "state")
    z2.restore(lines)
    assert z2.signed is not None and _states(z2.signed) == _states(v4.zone)
    assert z2.unsigned is not None and z2.unsigned.get(z2.origin, PRIVATE) is None
    # a source file with TYPE65534 at its apex (a BIND-signed file): not taken as data
    z.source.write_text(z.source.read_text() + "@ 0 TYPE65534 \\# 5 0D00010001\nb A 192.0.2.7\n")
    v5 = z.maintain(START + 70)
    assert v5 is not None and v5.zone.get(dns.name.from_text("b", z.origin), T.A) is not None
    assert _states(v5.zone) == _states(v4.zone)


# -- which keys sign what: the key manager's plan, not the keys' roles ----------------------


def test_signers_follow_the_plan_through_a_csk_roll(tmp_path: Path) -> None:
    """During a CSK roll the successor signs the key set before it signs the zone, and the
    predecessor stops signing the zone before it stops signing the key set: each version
    is signed by exactly the plan's KRRSIG and ZRRSIG keys (not by both CSKs, as their
    roles alone would have it)."""
    z = _zone(tmp_path, _policy(KeySpec("csk", 13, lifetime=60 * DAY)))
    split = 0

    def check(now: int, v: Version) -> None:
        nonlocal split
        plan = z.plan
        assert plan is not None
        keyset, other = _signers(v.zone)
        assert keyset == {(k.algorithm, k.tag) for k in plan.ksk_signers}, (now - START) / DAY
        assert other == {(k.algorithm, k.tag) for k in plan.zsk_signers}, (now - START) / DAY
        split += plan.ksk_signers != plan.zsk_signers

    _run(z, START + 130 * DAY, on_version=check)
    assert split > 0  # the roll really had versions where the two sets differ


# -- interop: BIND reads the zone with its records ------------------------------------------


@pytest.mark.interop
def test_bind_accepts_the_signed_zone_with_signing_state(tmp_path: Path) -> None:
    """dnssec-verify finds the zone fully signed (the TYPE65534 RRset and the apex NSEC
    bitmap that names it included); named-checkzone loads it and prints the records back
    as BIND serves its own."""
    z = _zone(tmp_path, _policy(KeySpec("ksk", 13), KeySpec("zsk", 13)), "bind.example.")
    v = z.maintain(int(time.time()))  # BIND's tools check the signatures against the clock
    assert v is not None and len(_states(v.zone)) == 2
    path = tmp_path / "signed.zone"
    zonefile.write_zone(path, v.zone)
    out = run_tool(["dnssec-verify", "-o", "bind.example.", path], cwd=tmp_path)
    assert "Zone fully signed" in out.stdout + out.stderr
    out = run_tool(["named-checkzone", "-D", "-o", "-", "bind.example.", path], cwd=tmp_path)
    served = {
        " ".join(line.split()[1:])
        for line in out.stdout.splitlines()
        if "TYPE65534" in line and "RRSIG" not in line
    }
    want = {f"0 IN TYPE65534 {s.to_text()}" for s in sstate.states_of(v.zone)[0]}
    assert served == want, out.stdout


def test_nsec3_apex_bitmap_follows_the_records(tmp_path: Path) -> None:
    policy = _policy(KeySpec("ksk", 13), KeySpec("zsk", 13)).replace(nsec3param=Nsec3Param())
    z = _zone(tmp_path, policy)
    v0 = z.maintain(START)
    assert v0 is not None and len(_states(v0.zone)) == 2

    def apex_types(zone: Zone) -> list[str]:
        (nsec3,) = [rr for rr in zone.iter_rrsets() if rr.rtype == T.NSEC3 and T.SOA in _types(rr)]
        return [T.to_text(t) for t in _types(nsec3)]

    assert "TYPE65534" in apex_types(v0.zone) and not _errors(v0.zone, START)
    v1 = z.clear_signing_state(None, START + 10)
    assert v1 is not None and "TYPE65534" not in apex_types(v1.zone)
    assert not _errors(v1.zone, START + 10)


def test_a_restart_does_not_write_the_source_copy_again(tmp_path: Path) -> None:
    """Regression (#15, many zones): each restart wrote every zone's source copy again
    (a restart re-reads the source file, which matches the copy: nothing to write), a
    third of the per-zone restart cost in a profile of 300 zones.  An edit is still
    written."""
    z = _zone(tmp_path, _policy(KeySpec("csk", 13)))
    v0 = z.maintain(START)
    assert v0 is not None and z.copy_dirty
    z.save_source_copy()
    lines = [record_line(r) for r in records(v0.zone)]
    z2 = InlineZone(z.name, z.source, z.policy, z.key_dir, z.state_dir)
    z2.restore(lines)
    assert z2.maintain(START + 10) is None and not z2.copy_dirty
    z2.source.write_text(z2.source.read_text() + "b A 192.0.2.7\n")
    assert z2.maintain(START + 20) is not None and z2.copy_dirty
    z2.save_source_copy()
    assert "192.0.2.7" in z2.copy_path.read_text()
