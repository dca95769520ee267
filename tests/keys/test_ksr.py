"""KSR/SKR bundle files (Knot's format) and the offline KSK's signing, without Knot (the
Knot interop test is in test_pkcs11.py: Knot's request, a KSK in SoftHSM, Knot signs)."""

from __future__ import annotations

import dataclasses

import dns.name
import dns.rdataclass
import dns.rrset
import pytest

from dnsseal.crypto import keystore
from dnsseal.errors import FileFormatError, InputError
from dnsseal.keys import algorithms, ksr
from dnsseal.keys.model import Key
from dnsseal.signer.skr import SkrParams, check_response, sign_request

ZONE = dns.name.from_text("example.com.")
# As Knot 3.2's keymgr generate-ksr writes it (multi-line records, no class).
KNOT_KSR = """\
;; KeySigningRequest 1.0 1796638063 (2026-12-07T10:07:43Z) =========
example.com.        	3600 DNSKEY 256 3 13 (
				r8wkfOcKE3/F9jr4uW/24yvkQoF3329bydP2NbpQ
				Q6BO/Yjqg3EVVEfCVUpf4BHSOh7KkG8jTq3OoZyC
				S+A6xQ==
				) ; ZSK, ECDSAP256SHA256 (256b), id = 52083
;; KeySigningRequest 1.0 1799230063 (2027-01-06T10:07:43Z) =========
example.com.        	3600 DNSKEY 256 3 13 (
				r8wkfOcKE3/F9jr4uW/24yvkQoF3329bydP2NbpQ
				Q6BO/Yjqg3EVVEfCVUpf4BHSOh7KkG8jTq3OoZyC
				S+A6xQ==
				) ; ZSK, ECDSAP256SHA256 (256b), id = 52083
example.com.        	3600 DNSKEY 256 3 13 (
				4q84oIHqBasr+HhTnM8rDG0cvCscCid/szXYdisO
				BIMhRMrgmvM6hqwDOO24zNdK7iBz3kKuP4otIVAo
				thlWDg==
				) ; ZSK, ECDSAP256SHA256 (256b), id = 57209
;; KeySigningRequest 1.0 1801822063 (2027-02-05T10:07:43Z) =========
example.com.        	3600 DNSKEY 256 3 13 (
				4q84oIHqBasr+HhTnM8rDG0cvCscCid/szXYdisO
				BIMhRMrgmvM6hqwDOO24zNdK7iBz3kKuP4otIVAo
				thlWDg==
				) ; ZSK, ECDSAP256SHA256 (256b), id = 57209
;; KeySigningRequest 1.0 generated at 2026-12-07T10:07:43Z by Knot DNS 3.2.6
"""


def _ksk() -> Key:
    public, material = keystore.generate(None, algorithms.get(13))
    return Key(ZONE, 257, 13, public, private=material)


def test_knot_request_is_read_and_written_back() -> None:
    bundles = ksr.parse(KNOT_KSR, ksr.KSR)
    assert [b.time for b in bundles] == [1796638063, 1799230063, 1801822063]
    assert [len(ksr.dnskey_rrset(b) or ()) for b in bundles] == [1, 2, 1]
    assert ksr.zone_of(bundles) == ZONE
    text = ksr.format_bundles(ksr.KSR, bundles, 1796638063, "dnsseal test")
    assert ksr.parse(text, ksr.KSR) == bundles


def test_response_bundles_follow_knots_schedule_and_verify() -> None:
    request = ksr.parse(KNOT_KSR, ksr.KSR)
    ksk = _ksk()
    response = sign_request(request, [ksk], SkrParams())
    week = 7 * 86400
    # Every refresh interval within a request period, then the next period's time.
    expected = [1796638063 + i * week for i in range(5)] + [1799230063 + i * week for i in range(5)]
    assert [b.time for b in response] == [*expected, 1801822063]
    assert check_response(response) == []
    for b in response:
        keyset = ksr.dnskey_rrset(b)
        assert keyset is not None and ksk.dnskey() in keyset
    text = ksr.format_bundles(ksr.SKR, response, 1796638063, "dnsseal test")
    assert check_response(ksr.parse(text, ksr.SKR)) == []


def test_a_gap_in_signature_validity_is_found() -> None:
    request = ksr.parse(KNOT_KSR, ksr.KSR)
    response = sign_request(request, [_ksk()], SkrParams(validity=8 * 86400, refresh=7 * 86400))
    assert check_response(response) == []
    # Dropping a bundle leaves the one before it to cover two weeks with a 8-day signature.
    holed = response[:1] + response[2:]
    problems = check_response(holed)
    assert any("needed" in p for p in problems), problems


def test_wrong_zone_key_and_wrong_files_are_refused() -> None:
    request = ksr.parse(KNOT_KSR, ksr.KSR)
    other = dataclasses.replace(_ksk(), zone=dns.name.from_text("example.net."))
    with pytest.raises(InputError, match=r"is a key of example\.net\., the request is for"):
        sign_request(request, [other])
    with pytest.raises(FileFormatError, match="expected a SignedKeyResponse"):
        ksr.parse(KNOT_KSR, ksr.SKR, "req.ksr")
    with pytest.raises(FileFormatError, match=r"no ;; KeySigningRequest 1\.0 bundles"):
        ksr.parse("; nothing\n", ksr.KSR)
    with pytest.raises(FileFormatError, match=r"req\.ksr:2: bad record: expecting an integer"):
        ksr.parse(";; KeySigningRequest 1.0 5 (x)\nexample.com. 3600 DNSKEY nonsense\n",
                  ksr.KSR, "req.ksr")  # fmt: skip
    keyset = dns.rrset.RRset(ZONE, dns.rdataclass.IN, 48)
    assert ksr.Bundle(1, (keyset,)).rrset(46) is None


def test_request_bundles_at_every_zsk_change() -> None:
    from dnsseal.keys.model import KeyTimings
    from dnsseal.signer.skr import make_request

    day = 86400
    a = Key(ZONE, 256, 13, _ksk().public_key, timings=KeyTimings(publish=0, delete=40 * day))
    b = Key(ZONE, 256, 13, _ksk().public_key, timings=KeyTimings(publish=30 * day))
    ksk = _ksk()  # KSKs are not part of a request
    bundles = make_request([a, b, ksk], 10 * day, 60 * day, 3600)
    assert [x.time // day for x in bundles] == [10, 30, 40, 60]
    sets = [{rd for rd in ksr.dnskey_rrset(x) or ()} for x in bundles]
    assert sets == [{a.dnskey()}, {a.dnskey(), b.dnskey()}, {b.dnskey()}, {b.dnskey()}]
    with pytest.raises(InputError, match="no ZSK is published"):
        make_request([b], 0, 10 * day, 3600)
