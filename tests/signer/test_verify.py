"""Defect injection: ``verify_zone`` names each defect with the right finding, and only
warns about legal but discouraged NSEC3 parameters.  Time is pinned."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from conftest import Dnsseal
from dnsseal.crypto import software
from dnsseal.findings import Severity
from dnsseal.keys.model import Key
from dnsseal.signer import Nsec3Params, SignParams, sign_zone
from dnsseal.signer.rrsig import Rrsig, labels_field
from dnsseal.signer.verify import CODES, VerifyOptions, verify_zone
from dnsseal.zone import canonical
from dnsseal.zone.model import Zone, ZoneBuilder

from .conftest import NOW, ORIGIN, ksk_zsk, make_key, write, zone_from

T = dns.rdatatype
DAY = 86400
Record = tuple[dns.name.Name, int, int, bytes]


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


def signed(nsec3: Nsec3Params | None = None) -> Zone:
    return sign_zone(zone_from(), ksk_zsk(), SignParams(nsec3=nsec3), NOW).zone


def edit(
    zone: Zone,
    drop: Callable[[dns.name.Name, int, int, bytes], bool] = lambda *a: False,
    add: tuple[Record, ...] = (),
) -> Zone:
    """A copy of ``zone`` without the records ``drop`` selects (name, type, covered type,
    rdata) and with ``add``."""
    b = ZoneBuilder(zone.origin)
    for rr in zone.iter_rrsets():
        for rd in rr.rdatas:
            if not drop(rr.name, rr.rtype, rr.rtype, rd):
                b.add(rr.name, rr.rtype, rr.ttl, rd)
    for node in zone.rrsigs.values():
        for covered, rr in node.items():
            for rd in rr.rdatas:
                if not drop(rr.name, T.RRSIG, covered, rd):
                    b.add(rr.name, T.RRSIG, rr.ttl, rd)
    for name, rtype, ttl, rd in add:
        b.add(name, rtype, ttl, rd)
    return b.build()


def sign_one(name: dns.name.Name, rtype: int, ttl: int, rdatas: tuple[bytes, ...],
             key: Key) -> Record:  # fmt: skip
    """A valid RRSIG over an arbitrary RRset, to inject defects that are signed correctly."""
    head = Rrsig(rtype, key.algorithm, labels_field(name), ttl, NOW + 10 * DAY, NOW - DAY,
                 key.tag, ORIGIN).head_wire()  # fmt: skip
    data = head + canonical.rrset_wire(canonical.name_wire(name), rtype, 1, ttl, rdatas)
    return (name, T.RRSIG, ttl, head + software.signer_for(key).sign(data))


def codes(zone: Zone, now: int = NOW, **kw: int | bool) -> set[tuple[str, str, str]]:
    return {(f.code, f.owner, f.rrtype) for f in verify_zone(zone, now, VerifyOptions(**kw))}


def only_codes(zone: Zone, now: int = NOW) -> set[str]:
    return {f.code for f in verify_zone(zone, now)}


@pytest.mark.parametrize("nsec3", [None, Nsec3Params(), Nsec3Params(opt_out=True)])
def test_clean_zone_has_no_findings(nsec3: Nsec3Params | None) -> None:
    assert verify_zone(signed(nsec3), NOW) == []


def test_expired_and_not_yet_valid() -> None:
    z = signed()
    assert ("RRSIG_EXPIRED", "mail.example.com.", "A") in codes(z, NOW + 40 * DAY)
    assert ("RRSIG_NOT_YET_VALID", "mail.example.com.", "A") in codes(z, NOW - 2 * DAY)
    soon = codes(z, NOW, expire_within=31 * DAY)
    assert ("RRSIG_EXPIRES_SOON", "mail.example.com.", "A") in soon


def test_tampered_rdata() -> None:
    z = signed()
    bad = edit(
        z,
        drop=lambda name, t, c, rd: name == n("mail") and t == T.A,
        add=((n("mail"), T.A, 300, bytes([192, 0, 2, 222])),),
    )
    assert codes(bad) == {("RRSIG_BOGUS", "mail.example.com.", "A")}


def test_missing_rrsig_and_unsigned_ds() -> None:
    z = signed()
    no_sig = edit(z, drop=lambda name, t, c, rd: name == n("mail") and t == T.RRSIG and c == T.A)
    assert codes(no_sig) == {("RRSIG_MISSING", "mail.example.com.", "A")}
    no_ds = edit(z, drop=lambda name, t, c, rd: t == T.RRSIG and c == T.DS)
    assert codes(no_ds) == {("RRSIG_MISSING", "sec.example.com.", "DS")}


def test_unsigned_dnskey() -> None:
    z = signed()
    bad = edit(z, drop=lambda name, t, c, rd: t == T.RRSIG and c == T.DNSKEY)
    assert ("DNSKEY_UNSIGNED", "example.com.", "DNSKEY") in codes(bad)
    # Signed by the ZSK only: the KSK's self-signature is missing.
    zsk_tag = ksk_zsk()[1].key.tag
    ksk_gone = edit(
        z,
        drop=lambda name, t, c, rd: (
            t == T.RRSIG and c == T.DNSKEY and Rrsig.from_wire(rd).key_tag != zsk_tag
        ),
    )
    assert codes(ksk_gone) == {("DNSKEY_UNSIGNED", "example.com.", "DNSKEY")}
    assert codes(ksk_gone, ignore_ksk_flag=True) == set()


def test_missing_nsec_and_nsec3() -> None:
    z = signed()
    bad = edit(z, drop=lambda name, t, c, rd: name == n("mail") and T.NSEC in (t, c))
    found = codes(bad)
    assert ("NSEC_MISSING", "mail.example.com.", "NSEC") in found
    z3 = signed(Nsec3Params())
    victim = next(name for name in z3.rrsets if z3.get(name, T.NSEC3) is not None)
    bad3 = edit(z3, drop=lambda name, t, c, rd: name == victim)
    assert "NSEC3_MISSING" in only_codes(bad3)


def test_wrong_bitmap_even_when_correctly_signed() -> None:
    z = signed()
    zsk = ksk_zsk()[1]
    nsec = z.get(n("mail"), T.NSEC)
    assert nsec is not None
    rd = nsec.rdatas[0]  # add AAAA to its bitmap
    nxt, off = canonical.name_from_wire(rd)
    from dnsseal.zone.bitmap import bitmap_types, type_bitmap

    wrong = canonical.name_wire(nxt) + type_bitmap(bitmap_types(rd[off:]) | {T.AAAA})
    bad = edit(
        z,
        drop=lambda name, t, c, r: name == n("mail") and T.NSEC in (t, c),
        add=(
            (n("mail"), T.NSEC, nsec.ttl, wrong),
            sign_one(n("mail"), T.NSEC, nsec.ttl, (wrong,), zsk.key),
        ),
    )
    assert codes(bad) == {("NSEC_BITMAP", "mail.example.com.", "NSEC")}


def test_rrsig_on_glue_on_delegation_ns_and_stale_type() -> None:
    z = signed()
    zsk = ksk_zsk()[1].key
    glue = z.get(n("ns.sec"), T.A)
    cut_ns = z.get(n("insec"), T.NS)
    assert glue is not None and cut_ns is not None
    txt = (b"\x05stale",)
    bad = edit(
        z,
        add=(
            sign_one(glue.name, T.A, glue.ttl, glue.rdatas, zsk),
            sign_one(cut_ns.name, T.NS, cut_ns.ttl, cut_ns.rdatas, zsk),
            sign_one(n("mail"), T.TXT, 300, txt, zsk),
        ),
    )
    assert codes(bad) == {
        ("RRSIG_ON_GLUE", "ns.sec.example.com.", "A"),
        ("RRSIG_ON_DELEGATION", "insec.example.com.", "NS"),
        ("RRSIG_STALE", "mail.example.com.", "TXT"),
    }


def test_ds_not_at_a_cut() -> None:
    z = signed()
    ds = struct.pack("!HBB", 1, 13, 2) + bytes(32)
    bad = edit(z, add=((n("mail"), T.DS, 300, ds),))
    assert ("DS_NOT_AT_CUT", "mail.example.com.", "DS") in codes(bad)


def test_nsec3_iterations_and_salt_are_warnings() -> None:
    z = signed(Nsec3Params(salt=b"\x01\x02", iterations=5))
    findings = verify_zone(z, NOW)
    assert {f.code for f in findings} == {"NSEC3_ITERATIONS", "NSEC3_SALT"}
    assert all(f.severity is Severity.WARNING for f in findings)
    assert all(f.rfc.startswith("RFC 9276") for f in findings)


def test_every_code_has_an_rfc_reference() -> None:
    assert all(rfc.startswith("RFC") for _, rfc, _ in CODES.values())


def test_verify_cli_exit_status_and_json(dnsseal: Dnsseal, tmp_path: Path) -> None:
    good = write(signed(), tmp_path / "good")
    r = dnsseal("verify", "-o", "example.com", "-t", str(NOW), good)
    assert r.exit_code == 0 and "verified" in r.output
    r = dnsseal("verify", "-o", "example.com", "-t", str(NOW + 40 * DAY), "--json", good,
                ok=False)  # fmt: skip
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc["clean"] is False and doc["findings"][0]["code"] == "RRSIG_EXPIRED"
    warn = write(signed(Nsec3Params(salt=b"\xaa")), tmp_path / "salted")
    r = dnsseal("verify", "-o", "example.com", "-t", str(NOW), warn, ok=False)
    assert r.exit_code == 2 and "NSEC3_SALT" in r.output
    r = dnsseal("verify", "-o", "example.com", "--expire-within", "P40D", "-t", str(NOW), good,
                ok=False)  # fmt: skip
    assert r.exit_code == 2 and "RRSIG_EXPIRES_SOON" in r.output
    r = dnsseal("verify", "-o", "example.com", "-t", "yesterday", good, ok=False)
    assert r.exit_code != 0 and "-t" in r.output + r.stderr


def test_missing_glue_and_rrsig_ttl_are_warnings() -> None:
    z = signed()
    no_glue = edit(z, drop=lambda name, t, c, rd: name == n("ns.sec"))
    assert codes(no_glue) == {("GLUE_MISSING", "sec.example.com.", "NS")}
    sig = z.rrsigs[n("mail")][T.A]
    odd_ttl = edit(
        z,
        drop=lambda name, t, c, rd: name == n("mail") and t == T.RRSIG and c == T.A,
        add=tuple((n("mail"), T.RRSIG, 60, w) for w in sig.rdatas),
    )
    assert codes(odd_ttl) == {("RRSIG_TTL", "mail.example.com.", "A")}


def test_wrong_labels_field_even_when_correctly_signed() -> None:
    z = signed()
    zsk = ksk_zsk()[1].key
    rr = z.get(n("mail"), T.A)
    assert rr is not None
    head = Rrsig(T.A, 13, 2, rr.ttl, NOW + DAY, NOW - DAY, zsk.tag, ORIGIN).head_wire()
    data = head + canonical.rrset_wire(canonical.name_wire(rr.name), T.A, 1, rr.ttl, rr.rdatas)
    bad_sig = head + software.signer_for(zsk).sign(data)
    bad = edit(
        z,
        drop=lambda name, t, c, rd: name == n("mail") and t == T.RRSIG and c == T.A,
        add=((n("mail"), T.RRSIG, rr.ttl, bad_sig),),
    )
    found = codes(bad)
    assert ("RRSIG_FIELDS", "mail.example.com.", "A") in found
    assert ("RRSIG_MISSING", "mail.example.com.", "A") not in found  # reported once, precisely


def test_signature_only_by_an_unknown_key_is_still_missing() -> None:
    z = signed()
    stranger = make_key(13, n=9)
    rr = z.get(n("mail"), T.A)
    assert rr is not None
    bad = edit(
        z,
        drop=lambda name, t, c, rd: name == n("mail") and t == T.RRSIG and c == T.A,
        add=(sign_one(rr.name, T.A, rr.ttl, rr.rdatas, stranger),),
    )
    assert codes(bad) == {
        ("RRSIG_UNKNOWN_KEY", "mail.example.com.", "A"),
        ("RRSIG_MISSING", "mail.example.com.", "A"),
    }


def test_worker_processes_give_the_same_findings() -> None:
    from dnsseal.signer.parallel import ProcessBatchVerifier

    z = signed()
    bad = edit(
        z,
        drop=lambda name, t, c, rd: name == n("mail") and t == T.A,
        add=((n("mail"), T.A, 300, bytes([192, 0, 2, 222])),),
    )
    pooled = VerifyOptions(batch=ProcessBatchVerifier(2, min_jobs=0))
    assert verify_zone(bad, NOW, pooled) == verify_zone(bad, NOW)
    assert {f.code for f in verify_zone(bad, NOW, pooled)} == {"RRSIG_BOGUS"}
