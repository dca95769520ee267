"""The signature ledger: signatures dnsseal made or verified over exactly the same data with
the same key are kept without verification; everything else is still verified."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Sequence
from pathlib import Path

import dns.name
import dns.rdatatype

from conftest import Dnsseal
from dnsseal import clock
from dnsseal.signer import SigningKey, SignParams, sign_zone
from dnsseal.signer.verify import BatchVerifier, verify_sequential, verify_zone
from dnsseal.signfile.ledger import SignatureLedger, parse_ledger
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.zone.model import RRset, Zone
from dnsseal.zone.text import parse_zone_text

from .conftest import FEATURE_ZONE, NOW, ORIGIN, ksk_zsk, make_key, zone_from

T = dns.rdatatype


def counting(calls: list[int]) -> BatchVerifier:
    def verify(keys: Sequence[tuple[int, bytes]],
               jobs: Sequence[tuple[int, bytes, bytes]]) -> list[bool]:  # fmt: skip
        calls.append(len(jobs))
        return verify_sequential(keys, jobs)

    return verify


def sig_count(zone: Zone) -> int:
    return sum(len(r.rdatas) for node in zone.rrsigs.values() for r in node.values())


def with_signature(
    zone: Zone, name: dns.name.Name, covered: int, rdatas: tuple[bytes, ...]
) -> Zone:
    sigs = {n: dict(node) for n, node in zone.rrsigs.items()}
    sigs[name][covered] = RRset(name, T.RRSIG, sigs[name][covered].ttl, rdatas)
    return Zone(zone.origin, zone.rrsets, sigs, zone.rdclass)


def test_ledger_hits_skip_verification_and_round_trip() -> None:
    keys = ksk_zsk()
    made = SignatureLedger(keys)
    first = sign_zone(zone_from(), keys, SignParams(ledger=made), NOW).zone
    assert len(made.made_digests()) == sig_count(first)
    known = parse_ledger(made.to_bytes())
    assert known == made.made_digests()
    calls: list[int] = []
    again = SignatureLedger(keys, known)
    second = sign_zone(first, keys, SignParams(ledger=again, verify_batch=counting(calls)), NOW)
    assert calls == [] and second.zone == first
    assert second.stats.generated == 0 and second.stats.retained == sig_count(first)
    assert again.made_digests() == known  # kept signatures go into the next ledger
    plain: list[int] = []
    sign_zone(first, keys, SignParams(verify_batch=counting(plain)), NOW)
    assert plain == [sig_count(first)]  # without a ledger, every kept signature is checked


def test_a_damaged_signature_or_changed_data_is_verified_and_replaced() -> None:
    keys = ksk_zsk()
    made = SignatureLedger(keys)
    first = sign_zone(zone_from(), keys, SignParams(ledger=made), NOW).zone
    mail = dns.name.from_text("mail", ORIGIN)
    (sig,) = first.rrsigs[mail][T.A].rdatas
    damaged = with_signature(first, mail, T.A, (sig[:-1] + bytes([sig[-1] ^ 1]),))
    calls: list[int] = []
    ledger = SignatureLedger(keys, made.made_digests())
    result = sign_zone(damaged, keys, SignParams(ledger=ledger, verify_batch=counting(calls)),
                       NOW)  # fmt: skip
    assert calls == [1] and result.stats.generated == 1
    assert result.zone == first  # deterministic ECDSA: the same signature again
    assert verify_zone(result.zone, NOW) == []
    # The same signature over changed data misses the ledger as well.
    node = dict(first.rrsets[mail])
    node[T.A] = RRset(mail, T.A, node[T.A].ttl, (bytes([192, 0, 2, 99]),))
    edited = Zone(first.origin, {**first.rrsets, mail: node}, first.rrsigs, first.rdclass)
    calls.clear()
    sign_zone(edited, keys, SignParams(ledger=SignatureLedger(keys, made.made_digests()),
                                       verify_batch=counting(calls)), NOW)  # fmt: skip
    assert calls == [1]


def test_entries_are_bound_to_the_key() -> None:
    keys = ksk_zsk()
    other = [keys[0], SigningKey(make_key(13, n=1))]  # another ZSK
    data = b"\x00\x01" * 20
    assert SignatureLedger(keys).digest(1, data, data) != SignatureLedger(other).digest(
        1, data, data
    )
    assert SignatureLedger(keys).digest(1, data, data) == SignatureLedger(keys).digest(
        1, data, data
    )
    assert parse_ledger(b"not a ledger") is None
    assert parse_ledger(b"dnsseal-signature-ledger 1\n" + b"x" * 15) is None


def test_cli_resign_in_place_uses_and_rewrites_the_ledger(dnsseal: Dnsseal,
                                                          tmp_path: Path) -> None:  # fmt: skip
    kd = tmp_path / "keys"
    kd.mkdir()
    KeyDirectory(kd).create(make_key(13, ksk=True))
    KeyDirectory(kd).create(make_key(13))
    src = tmp_path / "example.com"
    src.write_text(FEATURE_ZONE)
    out = tmp_path / "signed"
    # Fixed times: a replaced signature then equals the original one (deterministic ECDSA)
    # even when the runs fall in different seconds (the default inception is now-1h).
    start = time.strftime("%Y%m%d%H%M%S", time.gmtime(clock.now() - 3600))
    times = ("-s", start, "-e", "+2592000")
    dnsseal("signzone", "-K", kd, "-S", "-q", *times, "-f", out, src)
    ledger = Path(f"{out}.ledger")
    zone = parse_zone_text(out.read_text(), ORIGIN)
    assert parse_ledger(ledger.read_bytes()) is not None
    assert len(parse_ledger(ledger.read_bytes()) or ()) == sig_count(zone)
    # Damage one signature in the file: it alone is verified, found bad and replaced.
    text = out.read_text()
    m = re.search(r"^mail\.example\.com\.\t\d+\tIN\tRRSIG\tA .* (\S+)$", text, re.M)
    assert m is not None
    raw = base64.b64decode(m.group(1))
    bad = base64.b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode()
    out.write_text(text[: m.start(1)] + bad + text[m.end(1) :])
    result = dnsseal(
        "signzone", "-K", kd, "-S", "-q", "-t", *times, "-o", "example.com", "-f", out, out
    )
    assert re.search(r"Signatures generated:\s+1\n", result.output), result.output
    assert verify_zone(parse_zone_text(out.read_text(), ORIGIN), clock.now()) == []
    assert parse_zone_text(out.read_text(), ORIGIN) == zone
    # A damaged ledger trusts nothing: all kept signatures are verified, output the same.
    ledger.write_bytes(b"garbage")
    dnsseal("signzone", "-K", kd, "-S", "-q", *times, "-o", "example.com", "-f", out, out)
    assert parse_zone_text(out.read_text(), ORIGIN) == zone
    assert parse_ledger(ledger.read_bytes()) is not None
