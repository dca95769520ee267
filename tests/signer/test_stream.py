"""Signing while writing (``signfile/stream.py`` over ``signer/staged.py``): the text, the
snapshot feed, the ledger digests and the statistics are those of signing the whole zone
with ``sign_zone`` and writing it with ``zone_file_blocks``, whether the owners are signed
in this process or by forked workers, for a zone signed for the first time and for one
re-signed with signatures kept, made anew and checked."""

from __future__ import annotations

import dataclasses

import dns.name
import pytest

from dnsseal.signer import Nsec3Params, SigningKey, SignParams, sign_zone
from dnsseal.signer.parallel import ProcessBatchVerifier
from dnsseal.signer.sign import SignStats
from dnsseal.signer.staged import stage_zone
from dnsseal.signfile import stream
from dnsseal.signfile.filesnapshot import SnapshotBuilder, zone_file_blocks
from dnsseal.signfile.ledger import SignatureLedger, digest_set
from dnsseal.zone.model import RRset, Zone

from .conftest import NOW, ORIGIN, ksk_zsk, make_key, zone_from

DAY = 86400
Result = tuple[bytes, bytes, bytes, SignStats]
HEADER = b"; File written by a test\n"
CHAINS = {
    "nsec": None,
    "nsec3": Nsec3Params(),
    "optout": Nsec3Params(salt=b"\xab\xcd", opt_out=True),
}


def _builder(params: SignParams, now: int) -> SnapshotBuilder:
    return SnapshotBuilder(ORIGIN, 1, params.nsec3, 60, now, HEADER)


def _whole(zone: Zone, keys: list[SigningKey], params: SignParams, now: int) -> Result:
    """The old way: sign_zone, then zone_file_blocks with the snapshot made from the text
    (text, snapshot, ledger digests, statistics)."""
    ledger = SignatureLedger(keys, params.ledger.known if params.ledger else ())
    signed = sign_zone(zone, keys, dataclasses.replace(params, ledger=ledger), now)
    snap = _builder(params, now)
    text = b"".join(zone_file_blocks(signed.zone, HEADER, snap.feed))
    return text, snap.to_bytes(), bytes(ledger.made), signed.stats


def _streamed(zone: Zone, keys: list[SigningKey], params: SignParams, now: int,
              workers: int) -> Result:  # fmt: skip
    ledger = SignatureLedger(keys, params.ledger.known if params.ledger else ())
    staged = stage_zone(zone, keys, dataclasses.replace(params, ledger=ledger), now)
    snap = _builder(params, now)
    tally = stream.StreamTally()
    text = b"".join(stream.signed_zone_blocks(staged, HEADER, snap.add_rows, tally, workers))
    return text, snap.to_bytes(), bytes(ledger.made), tally.stats(staged)


def _same(want: Result, got: Result) -> None:
    assert got[0] == want[0]
    assert got[1] == want[1]
    assert digest_set(got[2]) == digest_set(want[2])
    assert len(got[2]) == len(want[2])
    assert got[3] == want[3]


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MIN_OWNERS", 0)
    monkeypatch.setattr(stream, "BATCH", 4)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_a_first_signing_streams_what_sign_zone_writes(chain: str, workers: int) -> None:
    zone = zone_from()
    keys = ksk_zsk()
    params = SignParams(nsec3=CHAINS[chain], inception=NOW - 3600, expiration=NOW + 30 * DAY,
                        jitter=7200, serial="increment")  # fmt: skip
    want = _whole(zone, keys, params, NOW)
    assert want[3].generated > 20
    _same(want, _streamed(zone, keys, params, NOW, workers))


@pytest.mark.parametrize("trust", ["ledger", "checked"])
@pytest.mark.parametrize("chain", ["nsec", "optout"])
def test_a_re_signing_streams_what_sign_zone_writes(chain: str, trust: str) -> None:
    """Input signed already, a day later: an RRset edited (its signatures dropped), a new
    key added (its signatures made everywhere), the other keys' signatures kept (from the
    ledger, or checked in worker processes)."""
    keys = ksk_zsk()
    params = SignParams(nsec3=CHAINS[chain], inception=NOW - 3600, expiration=NOW + 30 * DAY)
    first = SignatureLedger(keys)
    signed = sign_zone(zone_from(), keys, dataclasses.replace(params, ledger=first), NOW)
    ns1 = signed.zone.get(dns.name.from_text("ns1", ORIGIN), 1)
    assert ns1 is not None
    rrsets = {n: dict(node) for n, node in signed.zone.rrsets.items()}
    rrsets[ns1.name][1] = RRset(ns1.name, 1, ns1.ttl, (b"\xc0\x00\x02\x63",))
    edited = Zone(signed.zone.origin, rrsets, signed.zone.rrsigs, signed.zone.rdclass)
    new_keys = [*keys, SigningKey(make_key(13, n=1))]
    later = NOW + DAY
    params2 = dataclasses.replace(
        params,
        inception=later - 3600,
        expiration=later + 30 * DAY,
        verify_batch=ProcessBatchVerifier(2, min_jobs=0),
        ledger=SignatureLedger(keys, digest_set(first.made)) if trust == "ledger" else None,
    )
    want = _whole(edited, new_keys, params2, later)
    stats = want[3]
    assert stats.retained and stats.generated and stats.dropped
    _same(want, _streamed(edited, new_keys, params2, later, 2))
