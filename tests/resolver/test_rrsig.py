"""RRset signature checks: signed data on bytes against dnspython as an oracle, time
windows in serial arithmetic, wildcard labels, key-tag handling and budgets."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rdata
import dns.rrset
import pytest

from dnsseal.validator import verdict as v
from dnsseal.validator.keyset import ds_digest, trust_keys, usable_ds
from dnsseal.validator.limits import Budget, Limits
from dnsseal.validator.policy import AlgorithmPolicy
from dnsseal.validator.rrsig import ZoneKey, serial_le, signed_data, verify_rrset

from .zonebuild import EXPIRATION, INCEPTION, NOW, make_key

ZONE = dns.name.from_text("example.")


def _signed(owner: str = "www.example.", text: tuple[str, ...] = ("192.0.2.1", "192.0.2.2")):
    key = make_key()
    rrset = dns.rrset.from_text(owner, 300, "IN", "A", *text)
    sig = dns.dnssec.sign(
        rrset, key.private, ZONE, key.dnskey, inception=INCEPTION, expiration=EXPIRATION
    )
    return key, rrset, sig


def test_signed_data_verifies_like_dnspython() -> None:
    key, rrset, sig = _signed()
    dns.dnssec.validate_rrsig(rrset, sig, {ZONE: [key.dnskey]}, now=NOW)  # the oracle agrees
    check = verify_rrset(rrset, [sig], [ZoneKey.of(ZONE, key.dnskey)], ZONE, NOW, Budget())
    assert check.ok, check.verdict
    assert check.key_tag == key.tag


def test_signed_data_is_canonical_sorted_and_deduplicated() -> None:
    _, rrset, sig = _signed()
    shuffled = dns.rrset.from_text("WWW.Example.", 300, "IN", "A", "192.0.2.2", "192.0.2.1")
    assert signed_data(sig, shuffled.name, 1, 1, shuffled) == signed_data(
        sig, rrset.name, 1, 1, rrset
    )


def test_tampered_rdata_is_bogus() -> None:
    key, _, sig = _signed()
    forged = dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1", "192.0.2.66")
    check = verify_rrset(forged, [sig], [ZoneKey.of(ZONE, key.dnskey)], ZONE, NOW, Budget())
    assert check.verdict.security is v.Security.BOGUS
    assert check.verdict.ede == v.EDE_DNSSEC_BOGUS


@pytest.mark.parametrize(
    ("now", "ede"),
    [(EXPIRATION + 1, v.EDE_SIGNATURE_EXPIRED), (INCEPTION - 1, v.EDE_SIGNATURE_NOT_YET_VALID)],
)
def test_time_window(now: int, ede: int) -> None:
    key, rrset, sig = _signed()
    check = verify_rrset(rrset, [sig], [ZoneKey.of(ZONE, key.dnskey)], ZONE, now, Budget())
    assert check.verdict.ede == ede
    assert verify_rrset(rrset, [sig], [ZoneKey.of(ZONE, key.dnskey)], ZONE, EXPIRATION, Budget()).ok


def test_serial_arithmetic_wraps() -> None:
    assert serial_le(0xFFFFFFF0, 0x10)  # 2106 wrap: 0x10 is after 0xFFFFFFF0
    assert not serial_le(0x10, 0xFFFFFFF0)
    assert serial_le(5, 5)


def test_wildcard_expansion_uses_labels_field() -> None:
    key = make_key()
    wild = dns.rrset.from_text("*.w.example.", 300, "IN", "MX", "1 ai.example.")
    sig = dns.dnssec.sign(
        wild, key.private, ZONE, key.dnskey, inception=INCEPTION, expiration=EXPIRATION
    )
    expanded = dns.rrset.from_text("a.z.w.example.", 300, "IN", "MX", "1 ai.example.")
    check = verify_rrset(expanded, [sig], [ZoneKey.of(ZONE, key.dnskey)], ZONE, NOW, Budget())
    assert check.ok
    assert check.wildcard_encloser == dns.name.from_text("w.example.")


def test_labels_larger_than_owner_is_bogus() -> None:
    key, _rrset, sig = _signed()
    short = dns.rrset.from_text("example.", 300, "IN", "A", "192.0.2.1", "192.0.2.2")
    check = verify_rrset(short, [sig], [ZoneKey.of(ZONE, key.dnskey)], ZONE, NOW, Budget())
    assert not check.ok


def test_missing_rrsig_and_wrong_signer() -> None:
    key, rrset, sig = _signed()
    keys = [ZoneKey.of(ZONE, key.dnskey)]
    assert verify_rrset(rrset, [], keys, ZONE, NOW, Budget()).verdict.ede == v.EDE_RRSIGS_MISSING
    other = dns.name.from_text("other.")
    check = verify_rrset(rrset, [sig], keys, other, NOW, Budget())
    assert "not by zone other." in check.verdict.reason


def test_expired_signatures_count_against_budget() -> None:
    key, rrset, sig = _signed()
    budget = Budget(Limits(signature_verifications=3))
    keys = [ZoneKey.of(ZONE, key.dnskey)]
    for _ in range(3):
        verify_rrset(rrset, [sig], keys, ZONE, EXPIRATION + 10, budget)
    assert budget.exhausted is None
    check = verify_rrset(rrset, [sig], keys, ZONE, EXPIRATION + 10, budget)
    assert budget.exhausted == "signature_verifications"
    assert "budget exhausted" in check.verdict.reason


def _make_ds(key, name: str):  # type: ignore[no-untyped-def]
    return dns.dnssec.make_ds(ZONE, key.dnskey, name, policy=dns.dnssec.allow_all_policy)


def test_ds_digests_match_dnspython() -> None:
    key = make_key()
    for digest, name in ((1, "SHA1"), (2, "SHA256"), (4, "SHA384")):
        assert ds_digest(ZONE, key.dnskey, digest) == _make_ds(key, name).digest


def test_sha1_ds_ignored_when_stronger_exists_and_unsupported_is_insecure() -> None:
    key = make_key()
    sha1 = _make_ds(key, "SHA1")
    sha256 = dns.dnssec.make_ds(ZONE, key.dnskey, "SHA256")
    assert usable_ds([sha1, sha256], AlgorithmPolicy()) == [sha256]
    assert usable_ds([sha1], AlgorithmPolicy()) == [sha1]
    assert usable_ds([sha1], AlgorithmPolicy(accept_sha1_ds=False)) == []
    md5 = dns.rdata.from_text("IN", "DS", f"{key.tag} 1 2 {sha256.digest.hex()}")
    ks = trust_keys(ZONE, None, [], [md5], [], NOW, Budget())
    assert ks.verdict.security is v.Security.INSECURE
    assert ks.verdict.ede == v.EDE_UNSUPPORTED_DNSKEY_ALGORITHM
    gost = dns.rdata.from_text("IN", "DS", f"{key.tag} 13 3 {sha256.digest.hex()}")
    ks = trust_keys(ZONE, None, [], [gost], [], NOW, Budget())
    assert ks.verdict.ede == v.EDE_UNSUPPORTED_DS_DIGEST


def test_colliding_key_tags_are_capped() -> None:
    key, rrset, sig = _signed()
    # Many keys claiming the signer's tag: only keys_per_tag of them are ever tried.
    fakes = []
    while len(fakes) < 20:
        k = make_key()
        fakes.append(ZoneKey(ZONE, k.dnskey, key.tag))
    budget = Budget(Limits(keys_per_tag=4, signature_verifications=100))
    check = verify_rrset(rrset, [sig], [*fakes, ZoneKey.of(ZONE, key.dnskey)], ZONE, NOW, budget)
    assert not check.ok
    assert budget.spent["signature_verifications"] <= 4


def test_ds_match_failures_are_capped() -> None:
    key = make_key()
    dnskeys = dns.rrset.from_rdata_list(ZONE, 300, [key.dnskey])
    sig = dns.dnssec.sign(
        dnskeys, key.private, ZONE, key.dnskey, inception=INCEPTION, expiration=EXPIRATION
    )
    wrong = [dns.rdata.from_text("IN", "DS", f"{key.tag} 13 2 {i:064x}") for i in range(1, 30)]
    budget = Budget(Limits(ds_failures=4))
    ks = trust_keys(ZONE, dnskeys, [sig], wrong, [], NOW, budget)
    assert ks.verdict.security is v.Security.BOGUS
    assert budget.exhausted == "ds_failures"
    assert budget.spent["ds_failures"] == 5  # the one that crossed the limit, then stop
    good = _make_ds(key, "SHA256")
    ks = trust_keys(
        ZONE, dnskeys, [sig], [*wrong[:3], good], [], NOW, Budget(Limits(ds_failures=4))
    )
    assert ks.verdict.security is v.Security.SECURE


def test_dnskey_without_zone_key_bit_is_not_usable() -> None:
    key = make_key()
    plain = key.dnskey.replace(flags=0x0001)  # SEP only, no zone key bit
    dnskeys = dns.rrset.from_rdata_list(ZONE, 300, [plain])
    sig = dns.dnssec.sign(
        dnskeys, key.private, ZONE, plain, inception=INCEPTION, expiration=EXPIRATION
    )
    ds = dns.dnssec.make_ds(ZONE, plain, "SHA256")
    ks = trust_keys(ZONE, dnskeys, [sig], [ds], [], NOW, Budget())
    assert (ks.verdict.security, ks.verdict.ede) == (v.Security.BOGUS, v.EDE_NO_ZONE_KEY_BIT)
