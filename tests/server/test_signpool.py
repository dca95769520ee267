"""New zones' first signing in a helper process during a start (server.signpool).

The helper must give what signing in the main process gives: the same zone, record for
record, for the same keys, parameters and time.  Ed25519 signatures are deterministic, so
there the two results are compared byte for byte; ECDSA signatures are randomized (two runs
in one process differ too), so there everything but the signature field is compared and
the helper's zone is checked by dnssec-verify, ldns-verify-zone and kzonecheck.
"""

from __future__ import annotations

import asyncio
import dataclasses
import marshal
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port
from dnsseal import clock
from dnsseal.keys.model import PrivateMaterial
from dnsseal.server import inline as inline_mod
from dnsseal.server import maintenance, signpool, zonehandle
from dnsseal.server.service import AuthServer
from dnsseal.server.versions import pack_version, record_line
from dnsseal.server.zonehandle import write_copy
from dnsseal.signer import Nsec3Params, SigningKey, SignParams, sign_zone
from dnsseal.storage.journal import Journal
from dnsseal.storage.serverconfig import load_config
from dnsseal.zone.diff import records
from dnsseal.zone.model import Zone
from signer.conftest import NOW, external_verify, ksk_zsk, make_key, write, zone_from

from .test_many_zones import INLINE, _inline_config

PARAMS = SignParams(inception=NOW - 3600, expiration=NOW + 30 * 86400, jitter=3600)


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A start under way whose helper is asked from the first signing on."""
    monkeypatch.setattr(signpool, "WARM_AFTER", 0)
    with signpool.first_signings():
        yield


def _in_helper(zone: Zone, keys: list[SigningKey], params: SignParams, now: int = NOW) -> Zone:
    """``zone`` signed by the helper (asked until it is up: None until then)."""
    before = signpool.signed_count()
    deadline = time.monotonic() + 60
    while True:
        made = signpool.sign(zone, keys, params, now)
        if made is not None:
            assert signpool.signed_count() == before + 1
            return made
        assert time.monotonic() < deadline, "the helper process never came up"
        time.sleep(0.05)


def _without_signatures(zone: Zone) -> tuple[object, object]:
    """The zone with each RRSIG's signature field cut off (its first 18 octets and the
    signer's name stay)."""
    sigs = {}
    for name, node in zone.rrsigs.items():
        for t, rr in node.items():
            cut = []
            for w in rr.rdatas:
                end = 18
                while w[end]:  # the signer's name
                    end += w[end] + 1
                cut.append(w[: end + 1])
            sigs[name, t] = (rr.ttl, sorted(cut))
    return ({n: dict(node) for n, node in zone.rrsets.items()}, sigs)


@pytest.mark.parametrize("nsec3", [None, Nsec3Params(salt=b"\xab\xcd", iterations=0)])
def test_the_helper_signs_byte_for_byte_as_this_process_does(
    helper: None, nsec3: Nsec3Params | None
) -> None:
    """Ed25519 (deterministic signatures): the same zone, the same bytes, same order."""
    keys = [SigningKey(make_key(15, ksk=True)), SigningKey(make_key(15))]
    params = dataclasses.replace(PARAMS, nsec3=nsec3)
    zone = zone_from()
    here = sign_zone(zone, keys, params, NOW).zone
    there = _in_helper(zone, keys, params)
    assert there == here
    assert list(there.rrsets) == list(here.rrsets)  # (the order, too)
    assert all(list(there.rrsets[n]) == list(here.rrsets[n]) for n in here.rrsets)


@pytest.mark.interop
def test_the_helper_signs_ecdsa_as_this_process_does_and_verifiers_agree(
    helper: None, tmp_path: Path
) -> None:
    """ECDSA P-256 (the default policy's): all but the randomized signature field equal;
    the helper's zone passes dnssec-verify, ldns-verify-zone and kzonecheck."""
    keys = ksk_zsk(13)
    zone = zone_from()
    now = clock.now()  # (the verifiers check the signatures' times against theirs)
    params = SignParams(inception=now - 3600, expiration=now + 30 * 86400, jitter=3600)
    here = sign_zone(zone, keys, params, now).zone
    there = _in_helper(zone, keys, params, now)
    assert _without_signatures(there) == _without_signatures(here)
    assert there.rrsigs.keys() == here.rrsigs.keys()
    some = next(iter(there.rrsigs.values()))
    assert all(struct.unpack_from("!I", w, 8)[0] > now for rr in some.values() for w in rr.rdatas)
    external_verify(write(there, tmp_path / "signed.zone"))


def test_without_a_start_or_with_a_key_not_in_software_nothing_goes_to_the_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signpool, "WARM_AFTER", 0)
    keys = ksk_zsk(13)
    assert signpool.sign(zone_from(), keys, PARAMS, NOW) is None  # no start under way
    in_hsm = dataclasses.replace(keys[0].key, private=PrivateMaterial.reference("k1"))
    with signpool.first_signings():
        for _ in range(3):
            assert signpool.sign(zone_from(), [SigningKey(in_hsm), keys[1]], PARAMS, NOW) is None
    assert signpool._POOL.executor is None  # never started for it


def test_a_cold_start_signs_new_zones_in_the_helper_and_serves_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start of 12 new zones with the helper asked from the first: zones it signed are
    served signed as the others, and the helper is gone after the start."""
    monkeypatch.setattr(signpool, "WARM_AFTER", 0)
    monkeypatch.setattr(maintenance, "START_BATCH", 4)
    real = signpool.sign

    def patient(*args: object) -> Zone | None:  # (waits for the helper: a test is short)
        deadline = time.monotonic() + 60
        while (made := real(*args)) is None and time.monotonic() < deadline:  # type: ignore[arg-type]
            time.sleep(0.05)
        return made

    monkeypatch.setattr(signpool, "sign", patient)
    conf = _inline_config(tmp_path, free_port())
    before = signpool.signed_count()
    listed: list[str] = []  # zones whose journal lines the main process made
    real_records = zonehandle.records

    def counting(zone: Zone) -> object:
        listed.append(zone.origin.to_text())
        return real_records(zone)

    monkeypatch.setattr(zonehandle, "records", counting)
    packed_here: list[str] = []  # signed zones the main process packed to park them
    real_pack = inline_mod.pack_version

    def packing(zone: Zone) -> bytes:
        if zone.rrsigs:
            packed_here.append(zone.origin.to_text())
        return real_pack(zone)

    monkeypatch.setattr(inline_mod, "pack_version", packing)

    async def scenario() -> None:
        server = AuthServer(load_config(conf), conf)
        await server.start()
        try:
            state_dir = server.config.state_dir
            assert state_dir is not None
            for state in server.zones.values():
                assert state.served is not None, state.error
                inline = state.inline
                z = inline.signed if inline is not None else None
                assert inline is not None and z is not None and z.rrsigs  # signed
                soa_sigs = z.rrsigs[z.origin][6]
                assert soa_sigs.rdatas
                # What the helper made of it, written by the main process, is what the
                # main process makes of the zone: its copy and journal base (the same
                # bytes), packed (the same content: marshal's references may differ).
                copy = inline.signed_path.read_bytes()
                write_copy(inline, z)
                assert inline.signed_path.read_bytes() == copy
                with Journal(state_dir) as j:
                    base, packed = j.base(state.name), j.packed(state.name)
                assert base is not None and packed is not None
                assert list(base.records) == sorted(record_line(r) for r in records(z))
                assert marshal.loads(packed[1]) == marshal.loads(pack_version(z))
        finally:
            await server.stop()

    asyncio.run(scenario())
    helped = signpool.signed_count() - before
    assert helped >= 1
    assert len(listed) == INLINE - helped, listed  # the helper's zones: their lines made there
    assert sorted(packed_here) == sorted(listed)  # ... and parked in the helper's packed form
    assert signpool._POOL.executor is None and signpool._POOL.users == 0
    assert signpool._POOL.made == {}  # nothing kept after the start
