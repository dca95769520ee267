"""``verify_rrset`` with several RRSIGs, some by keys not in the trusted set (a DNSKEY RRset
signed by its KSK and ZSK, checked with the DS-matched key only): the outcome agrees with
dnspython's ``dns.dnssec.validate`` given the same trusted keys, and when nothing verifies,
the reason for an RRSIG without a key is the one written before it was deferred."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.validator import verdict as v
from dnsseal.validator.limits import Budget
from dnsseal.validator.rrsig import ZoneKey, verify_rrset
from resolver.zonebuild import EXPIRATION, INCEPTION, NOW, make_key

ZONE = dns.name.from_text("example.")
KEYS = [make_key() for _ in range(3)]
RRSET = dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1", "192.0.2.2")
SIGS = [
    dns.dnssec.sign(RRSET, k.private, ZONE, k.dnskey, inception=INCEPTION, expiration=EXPIRATION)
    for k in KEYS
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(range(3)), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(range(3)), max_size=3, unique=True),
)
def test_outcome_agrees_with_dnspython(signers: list[int], trusted: list[int]) -> None:
    sigs = [SIGS[i] for i in signers]
    keys = [ZoneKey.of(ZONE, KEYS[i].dnskey) for i in trusted]
    check = verify_rrset(RRSET, sigs, keys, ZONE, NOW, Budget())
    sigset = dns.rrset.RRset(RRSET.name, RRSET.rdclass, dns.rdatatype.RRSIG, dns.rdatatype.A)
    for s in sigs:
        sigset.add(s)
    try:
        dns.dnssec.validate(RRSET, sigset, {ZONE: [KEYS[i].dnskey for i in trusted]}, now=NOW)
        oracle = True
    except dns.dnssec.ValidationFailure:
        oracle = False
    assert check.ok == oracle, (signers, trusted, check.verdict)
    if check.ok:
        assert check.key_tag in {KEYS[i].tag for i in trusted}
    elif not trusted or not set(signers) & set(trusted):
        first = SIGS[signers[0]]
        assert check.verdict == v.bogus(
            f"no DNSKEY {first.key_tag}/{first.algorithm} in {ZONE} for the RRSIG of "
            "www.example./A",
            v.EDE_DNSKEY_MISSING,
        )
