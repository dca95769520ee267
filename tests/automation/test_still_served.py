"""A maintenance whose signing pass would change nothing but the SOA serial skips the pass
(issue #15: a restart of many zones signed every zone once more, only to throw the result
away).  Checked against the pass itself: wherever the skip is taken, over simulated years
of key rolls, the parent's DS following, a change of denial, validity or DNSKEY TTL, and
restarts from the journal's lines, the full pass would have served the same records and
signatures (SOA serial aside); and every version still verifies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.rdatatype
import pytest

from dnsseal.findings import Severity
from dnsseal.keymgr.plan import DsSeen, DsWithdrawn
from dnsseal.policy.build import lookup
from dnsseal.policy.model import KeySpec, Nsec3Param, Policy
from dnsseal.server import inline as inline_mod
from dnsseal.server.checkds import waiting_keys
from dnsseal.server.inline import InlineZone
from dnsseal.server.versions import only_soa, record_line
from dnsseal.signer.verify import verify_zone
from dnsseal.zone.diff import diff, records
from dnsseal.zone.model import Zone

from .conftest import zone_text

DAY = 86400
START = 1_800_000_000
T = dns.rdatatype


def _errors(zone: Zone, now: int) -> list[str]:
    return [str(f) for f in verify_zone(zone, now) if f.severity is Severity.ERROR]


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Every answer of ``_still_served``; a True one is checked against the full pass."""
    answers: list[bool] = []
    real = InlineZone._still_served

    def checking(self: InlineZone, plan: inline_mod.Plan, now: int) -> bool:
        got = real(self, plan, now)
        answers.append(got)
        if got:
            assert self.signed is not None
            full = self._sign(plan, now, keep_sigs=True)
            change = diff(self.signed, full)
            assert only_soa(change, self.origin), (now - START, change)
        return got

    monkeypatch.setattr(InlineZone, "_still_served", checking)
    yield answers


def _restarted(z: InlineZone) -> InlineZone:
    """The zone as a restart finds it: a new InlineZone restored from the version's
    journal lines (and the copy of the source written after it)."""
    assert z.signed is not None
    z.save_source_copy()
    again = InlineZone(z.name, z.source, z.policy, z.key_dir, z.state_dir)
    again.restore(record_line(r) for r in records(z.signed))
    return again


def _run(tmp_path: Path, policies: dict[int, Policy], days: int) -> tuple[InlineZone, int]:
    """Maintain a zone on its own wakeup times for ``days`` (the parent's DS following a
    day after it is due), switching to ``policies[day]`` on that day and restarting every
    7th wakeup; every version verifies until the next wakeup.  Returns the zone and the
    number of versions made."""
    src = tmp_path / "sim.example.zone"
    src.write_text(zone_text("sim.example.").replace("$TTL 2", "$TTL 300"))
    (tmp_path / "state").mkdir()
    z = InlineZone("sim.example.", src, policies[0], tmp_path / "keys", tmp_path / "state")
    now = START
    ds_at: dict[int, int] = {}
    versions = wakeups = 0
    switches = dict(policies)
    while now < START + days * DAY:
        for day in [d for d in switches if START + d * DAY <= now]:
            z.policy = switches.pop(day)
        wakeups += 1
        if wakeups % 7 == 0:
            z = _restarted(z)
        v = z.maintain(now)
        if v is not None:
            versions += 1
            assert not _errors(v.zone, now), (now - START, _errors(v.zone, now))
        assert z.signed is not None
        waits = waiting_keys(z.keys)
        for k in waits.publish:
            if now >= ds_at.setdefault(k.tag, now + DAY):
                z.request(DsSeen(k.id, now))
        for k in waits.withdraw:
            if now >= ds_at.setdefault(-k.tag, now + DAY):
                z.request(DsWithdrawn(k.id, now))
        nxt = z.next_wakeup()
        assert nxt is not None and nxt > now
        nxt = min([nxt, *[t for t in ds_at.values() if t > now]])
        nxt = min([nxt, *[START + d * DAY for d in switches]])
        assert not _errors(z.signed, nxt - 1), (nxt - START, _errors(z.signed, nxt - 1))
        now = nxt
    return z, versions


@pytest.mark.slow
def test_a_skipped_pass_is_one_that_would_have_changed_nothing(
    tmp_path: Path, checked: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_mod, "RACY_NS", 0)  # restarts trust the copy's stamp
    default = lookup("default", {})
    split = default.replace(
        name="split",
        keys=(KeySpec("ksk", 13, lifetime=365 * DAY), KeySpec("zsk", 13, lifetime=60 * DAY)),
    )
    nsec3 = split.replace(name="nsec3", nsec3param=Nsec3Param(0, True, 8))
    z, versions = _run(
        tmp_path,
        {
            0: split,
            200: nsec3,  # a new chain
            260: nsec3.replace(signatures_refresh=3 * DAY),
            300: nsec3.replace(dnskey_ttl=7200),
            330: split,  # back to NSEC
        },
        400,
    )
    assert versions > 20
    assert checked.count(True) >= 10, checked  # the skip is taken (restarts, key events)
    assert checked.count(False) >= 10, checked  # and refused where something is due
    assert z.signed is not None and T.NSEC in z.signed.rrsets[z.origin]


def test_a_restart_of_an_unchanged_zone_does_not_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version restored is served as it is (same signatures, same serial), without
    a signing pass; one whose signatures are due, or whose policy asks for another
    chain, is signed as before."""
    monkeypatch.setattr(inline_mod, "RACY_NS", 0)  # the restart trusts the copy's stamp
    src = tmp_path / "r.example.zone"
    src.write_text(zone_text("r.example.").replace("$TTL 2", "$TTL 300"))
    (tmp_path / "state").mkdir()
    policy = lookup("default", {})
    z = InlineZone("r.example.", src, policy, tmp_path / "keys", tmp_path / "state")
    assert z.maintain(START) is not None
    signs: list[int] = []
    real = inline_mod.sign_zone

    def counting(*args: object, **kwargs: object) -> object:
        signs.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(inline_mod, "sign_zone", counting)
    again = _restarted(z)
    assert again.maintain(START + 60) is None
    assert signs == []
    assert again.signed is not None and z.signed is not None
    assert sorted(records(again.signed)) == sorted(records(z.signed))
    assert again.next_resign == z.next_resign
    # Signatures due: the pass runs and refreshes them.
    due = z.next_resign
    assert due is not None
    later = _restarted(z)
    v = later.maintain(due)
    assert signs == [1] and v is not None and v.serial > z.signed.soa().serial
    # Another chain asked for: signed again.
    other = _restarted(z)
    other.policy = policy.replace(nsec3param=Nsec3Param(0, False, 0))
    v = other.maintain(START + 7200)
    assert len(signs) == 2 and v is not None
    assert T.NSEC3PARAM in v.zone.rrsets[v.zone.origin]
