"""The online side of an offline KSK, without Knot: pregenerated ZSKs, the bundle for a
time, and a zone signed with a response (dnsseal verify as the check; Knot and the BIND and
ldns tools check the same in tests/automation/test_offline_ksk.py)."""

from __future__ import annotations

import dataclasses

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from dnsseal.crypto import keystore
from dnsseal.errors import InputError
from dnsseal.findings import Severity
from dnsseal.keys import algorithms, ksr
from dnsseal.keys.ds import make_ds
from dnsseal.keys.model import Key
from dnsseal.policy.model import KeySpec, Policy
from dnsseal.signer import SignParams
from dnsseal.signer.skr import (
    SkrParams,
    bundle_at,
    check_response,
    make_request,
    pregenerate,
    sign_request,
    sign_with_response,
)
from dnsseal.signer.verify import verify_zone
from dnsseal.zone.text import parse_zone_text

ZONE = dns.name.from_text("example.com.")
T = dns.rdatatype
POLICY = Policy(
    name="off",
    keys=(KeySpec("ksk", 13), KeySpec("zsk", 13, lifetime=1000)),
    dnskey_ttl=60,
    publish_safety=10,
    retire_safety=10,
    zone_propagation_delay=5,
    max_zone_ttl=60,
    signatures_validity=300,
    signatures_refresh=100,
)
TEXT = """$TTL 60
@ SOA ns1 hostmaster 1 3600 600 86400 60
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.2
sub NS ns.sub
ns.sub A 192.0.2.3
"""


def _make(spec: KeySpec, flags: int = 256) -> Key:
    public, material = keystore.generate(None, algorithms.get(spec.algorithm))
    return Key(ZONE, flags, spec.algorithm, public, private=material)


def test_pregenerated_zsks_roll_by_the_policy() -> None:
    new, changed = pregenerate(POLICY, ZONE, [], 10_000, 12_500, _make)
    assert changed == []
    acts = [k.timings.activate for k in new]
    assert acts == [10_000, 11_000, 12_000]
    first, second, third = new
    assert first.timings.publish == 10_000  # nothing to take over from
    assert second.timings.publish == 11_000 - POLICY.ipub == 11_000 - 75
    assert first.timings.inactive == 11_000
    assert first.timings.delete == 11_000 + POLICY.iret_zsk == 11_000 + 275
    assert first.state is not None and first.state.successor == second.tag
    assert second.state is not None and second.state.predecessor == first.tag
    assert all(k.role == "zsk" and k.ttl == 60 for k in new)
    # Extending the period continues the chain from the last key; nothing is made twice.
    more, touched = pregenerate(POLICY, ZONE, new, 10_000, 14_500, _make)
    assert [k.timings.activate for k in more] == [13_000, 14_000]
    assert [k.tag for k in touched] == [third.tag]
    assert touched[0].timings.inactive == 13_000
    assert pregenerate(POLICY, ZONE, [*new, *more], 10_000, 14_500, _make) == ([], [])
    csk = POLICY.replace(keys=(KeySpec("csk", 13),))
    with pytest.raises(InputError, match="no separate ZSK"):
        pregenerate(csk, ZONE, [], 0, 10, _make)


def _response(with_cds: bool = False) -> tuple[list[Key], Key, list[ksr.Bundle]]:
    zsks, _ = pregenerate(POLICY, ZONE, [], 10_000, 12_500, _make)
    ksk = _make(KeySpec("ksk", 13), flags=257)
    request = make_request(zsks, 10_000, 12_500, 60)
    cds = (2, 4) if with_cds else ()
    params = SkrParams(validity=600, refresh=200, backdate=60, cds=cds, cdnskey=with_cds)
    response = sign_request(request, [ksk], params)
    assert check_response(response) == []
    return zsks, ksk, response


def test_response_with_cds_and_cdnskey_is_checked_record_by_record() -> None:
    _, ksk, response = _response(with_cds=True)
    first = response[0]
    cds = first.rrset(T.CDS)
    cdnskey = first.rrset(T.CDNSKEY)
    assert cds is not None and {rd.digest_type for rd in cds} == {2, 4}
    want = {make_ds(ksk, d).rdata_text().lower() for d in (2, 4)}
    assert {rd.to_text().lower() for rd in cds} == want
    assert cdnskey is not None and len(cdnskey) == 1
    # A broken signature over the CDS RRset alone is found (the DNSKEY RRset is fine).
    sigs = first.rrset(T.RRSIG, T.CDS)
    assert sigs is not None
    forged = dns.rrset.RRset(sigs.name, sigs.rdclass, sigs.rdtype, sigs.covers)
    for rd in sigs:
        forged.add(rd.replace(signature=bytes([rd.signature[0] ^ 1]) + rd.signature[1:]),
                   sigs.ttl)  # fmt: skip
    bad = dataclasses.replace(
        first, rrsets=tuple(forged if rr is sigs else rr for rr in first.rrsets)
    )
    problems = check_response([bad, *response[1:]])
    assert any("CDS RRSIG by" in p and "does not verify" in p for p in problems), problems
    # A CDS RRset without signatures is found too.
    unsigned = dataclasses.replace(first, rrsets=tuple(r for r in first.rrsets if r is not sigs))
    assert any("CDS has no RRSIG" in p for p in check_response([unsigned, *response[1:]]))


@pytest.mark.parametrize("with_cds", [False, True])
def test_zone_signed_with_a_response_through_a_zsk_roll(with_cds: bool) -> None:
    zsks, ksk, response = _response(with_cds)
    zone = parse_zone_text(TEXT, ZONE)
    for now in (10_050, 10_930, 11_100, 11_400, 12_100):
        bundle = bundle_at(response, now)
        assert bundle is not None and bundle.time <= now
        signed = sign_with_response(zone, zsks, response, SignParams(), now).zone
        errors = [f for f in verify_zone(signed, now) if f.severity is Severity.ERROR]
        assert errors == [], (now, errors)
        keyset = signed.get(ZONE, T.DNSKEY)
        assert keyset is not None
        expected = ksr.dnskey_rrset(bundle)
        assert expected is not None and len(keyset.rdatas) == len(expected)
        # The DNSKEY RRset and its signatures are the bundle's, signed by the KSK alone.
        sigs = signed.rrsigs[ZONE][T.DNSKEY]
        assert len(sigs.rdatas) == 1 and int.from_bytes(sigs.rdatas[0][16:18]) == ksk.tag
        other = signed.rrsigs[ZONE][T.SOA]
        assert all(int.from_bytes(w[16:18]) != ksk.tag for w in other.rdatas)
        cds = signed.get(ZONE, T.CDS)
        assert (cds is not None) == with_cds
        if with_cds:
            assert int.from_bytes(signed.rrsigs[ZONE][T.CDS].rdatas[0][16:18]) == ksk.tag
    # During the roll both ZSKs are published, the new one signs once it is active.
    mid = sign_with_response(zone, zsks, response, SignParams(), 11_100).zone
    dnskeys = mid.get(ZONE, T.DNSKEY)
    assert dnskeys is not None and len(dnskeys.rdatas) == 3


def test_no_bundle_or_an_expired_one_is_refused() -> None:
    zsks, _, response = _response()
    zone = parse_zone_text(TEXT, ZONE)
    with pytest.raises(InputError, match="no bundle of the signed key response applies"):
        sign_with_response(zone, zsks, response, SignParams(), 9_000)
    with pytest.raises(InputError, match="have expired"):
        sign_with_response(zone, zsks, response, SignParams(), 12_500 + 601)
    with pytest.raises(InputError, match="no ZSK in the bundle"):
        sign_with_response(zone, [], response, SignParams(), 10_050)


def test_import_merges_from_the_new_first_bundle() -> None:
    _, _, response = _response()
    old, new = response[:4], response[2:]
    assert ksr.merge(old, new) == response
    assert ksr.merge(old, []) == old
    assert ksr.skr_filename(ZONE) == "example.com.skr"
    assert ksr.skr_filename(dns.name.root) == "root.skr"


def test_offline_ksk_policy_options_from_toml_and_named_conf() -> None:
    from dnsseal.policy import namedconf
    from dnsseal.policy.build import collect_policies

    pols, errors = collect_policies(
        {"off": {"offline-ksk": True, "skr-horizon": "P7D", "keys": []}}
    )
    assert errors == [] and pols["off"].offline_ksk and pols["off"].skr_horizon == 7 * 86400
    _, errors = collect_policies({"off": {"skr-horizon": "soon"}})
    assert [e.option for e in errors] == ["policy.off.skr-horizon"], errors
    # BIND 9.20 spells it the same way in named.conf.
    conf = 'dnssec-policy "off" { offline-ksk yes; keys { zsk lifetime 30d algorithm 13; }; };'
    assert namedconf.parse(conf, "named.conf")["off"].offline_ksk
    assert not Policy("x").offline_ksk and Policy("x").skr_horizon == 14 * 86400


def test_request_period_as_knot_or_bind_spell_it(tmp_path: object) -> None:
    from pathlib import Path

    from click.testing import CliRunner

    from dnsseal.cli.ksrcmds import ksr_group
    from dnsseal.storage.keydir import KeyDirectory

    d = Path(str(tmp_path))
    zsks, _ = pregenerate(POLICY, ZONE, [], 1_800_000_000, 1_800_002_500, _make)
    for k in zsks:
        KeyDirectory(d).create(k)
    runner = CliRunner()
    knot = runner.invoke(ksr_group, ["request", "-K", str(d), "example.com", "20270115080000",
                                     "20270115084000"])  # fmt: skip
    bind = runner.invoke(ksr_group, ["request", "-K", str(d), "-i", "20270115080000", "-e",
                                     "20270115084000", "example.com"])  # fmt: skip
    assert knot.exit_code == 0 and bind.exit_code == 0, (knot.output, bind.output)
    strip = [line for line in knot.output.splitlines() if "generated at" not in line]
    assert strip == [line for line in bind.output.splitlines() if "generated at" not in line]
    both = runner.invoke(ksr_group, ["request", "-K", str(d), "-e", "+1d", "example.com", "now",
                                     "+1d"])  # fmt: skip
    assert "either as -i/-e or as START END" in str(both.exception)
    none = runner.invoke(ksr_group, ["request", "-K", str(d), "example.com"])
    assert "the end of the period is needed" in str(none.exception)
