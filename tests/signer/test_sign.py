"""sign_zone's rules, checked on the data it returns (pure, pinned time)."""

from __future__ import annotations

import dataclasses

import dns.name
import dns.rdatatype
import pytest

from dnsseal.errors import InputError
from dnsseal.keys.model import Key, KeyTimings
from dnsseal.signer import Nsec3Params, SigningKey, SignParams, check_iterations, sign_zone
from dnsseal.signer.denial import hashed_owner, nsec3_hash
from dnsseal.signer.keysel import smart_select
from dnsseal.signer.rrsig import Rrsig
from dnsseal.signer.sign import next_serial
from dnsseal.signer.verify import verify_zone
from dnsseal.zone import canonical
from dnsseal.zone.bitmap import bitmap_types
from dnsseal.zone.model import Zone
from dnsseal.zone.text import format_zone

from .conftest import NOW, ORIGIN, ksk_zsk, make_key, zone_from

T = dns.rdatatype


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


def sigs(zone: Zone, name: str, rtype: int) -> list[Rrsig]:
    rr = zone.rrsigs.get(n(name), {}).get(rtype)
    return [Rrsig.from_wire(w) for w in rr.rdatas] if rr else []


def test_delegations_glue_and_occluded_data() -> None:
    z = sign_zone(zone_from(), ksk_zsk(), SignParams(), NOW).zone
    assert sigs(z, "sec", T.DS) and sigs(z, "sec", T.NSEC)
    assert not sigs(z, "sec", T.NS) and not sigs(z, "insec", T.NS)
    for glue in ("ns.sec", "ns.insec", "deep.ns.insec"):
        assert n(glue) not in z.rrsigs, glue
        assert z.get(n(glue), T.NSEC) is None, glue
    assert z.get(n(r"ns.insec"), T.A) is not None  # glue is kept, unsigned
    nsec = z.get(n("insec"), T.NSEC)
    assert nsec is not None
    _, off = canonical.name_from_wire(nsec.rdatas[0])
    assert bitmap_types(nsec.rdatas[0][off:]) == {T.NS, T.RRSIG, T.NSEC}
    assert sigs(z, "dn", T.DNAME) and sigs(z, "www", T.CNAME)


def test_nsec_chain_is_closed_in_canonical_order_and_ttl_is_rfc9077() -> None:
    z = sign_zone(zone_from(), ksk_zsk(), SignParams(), NOW).zone
    owners = [name for name in z.rrsets if z.get(name, T.NSEC) is not None]
    ordered = sorted(owners, key=canonical.sort_key)
    assert ordered[0] == ORIGIN
    for i, name in enumerate(ordered):
        rr = z.get(name, T.NSEC)
        assert rr is not None and rr.ttl == 60  # min(SOA TTL 300, MINIMUM 60)
        nxt, _ = canonical.name_from_wire(rr.rdatas[0])
        assert nxt == ordered[(i + 1) % len(ordered)]


def test_roles_ksk_zsk_csk_and_flags() -> None:
    ksk, zsk = ksk_zsk()
    z = sign_zone(zone_from(), [ksk, zsk], SignParams(), NOW).zone
    assert {s.key_tag for s in sigs(z, "@", T.DNSKEY)} == {ksk.key.tag, zsk.key.tag}
    assert {s.key_tag for s in sigs(z, "mail", T.A)} == {zsk.key.tag}
    x = sign_zone(zone_from(), [ksk, zsk], SignParams(ksk_only=True), NOW).zone
    assert {s.key_tag for s in sigs(x, "@", T.DNSKEY)} == {ksk.key.tag}
    zz = sign_zone(zone_from(), [ksk, zsk], SignParams(ignore_ksk_flag=True), NOW).zone
    assert {s.key_tag for s in sigs(zz, "mail", T.A)} == {ksk.key.tag, zsk.key.tag}
    csk = sign_zone(zone_from(), [ksk], SignParams(ksk_only=True), NOW).zone
    assert {s.key_tag for s in sigs(csk, "mail", T.A)} == {ksk.key.tag}
    assert {s.key_tag for s in sigs(csk, "@", T.DNSKEY)} == {ksk.key.tag}


def test_every_algorithm_signs_every_rrset() -> None:
    keys = ksk_zsk(13) + ksk_zsk(15)
    z = sign_zone(zone_from(), keys, SignParams(ksk_only=True), NOW).zone
    for name, node in z.rrsigs.items():
        for covered, rr in node.items():
            algs = {Rrsig.from_wire(w).algorithm for w in rr.rdatas}
            assert algs == {13, 15}, (name, covered)


def test_validity_jitter_labels_and_determinism() -> None:
    params = SignParams(inception=NOW - 100, expiration=NOW + 10 * 86400, jitter=86400)
    a = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone
    b = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone
    assert format_zone(a) == format_zone(b)  # RFC 6979 ECDSA and derived jitter
    exps = set()
    for node in a.rrsigs.values():
        for rr in node.values():
            for w in rr.rdatas:
                s = Rrsig.from_wire(w)
                assert s.inception == NOW - 100
                assert NOW + 9 * 86400 <= s.expiration <= NOW + 10 * 86400
                exps.add(s.expiration)
    assert len(exps) > 5  # spread, not one cliff
    wild = sigs(a, "*.wild", T.TXT)[0]
    assert wild.labels == 3  # wild.example.com: the "*" is not counted


def test_default_validity_is_dnssec_signzone_s_and_e() -> None:
    z = sign_zone(zone_from(), ksk_zsk(), SignParams(), NOW).zone
    s = sigs(z, "mail", T.A)[0]
    assert s.inception == NOW - 3600 and s.expiration == NOW - 3600 + 30 * 86400


@pytest.mark.parametrize(
    ("policy", "old", "expect"),
    [
        ("keep", 7, 7),
        ("increment", 7, 8),
        ("increment", 0xFFFFFFFF, 1),
        ("unixtime", 7, NOW),
        ("unixtime", NOW + 5, NOW + 6),
        ("date", 2025010100, 2026010100),
        ("date", 2026010105, 2026010106),
    ],
)
def test_serial_policies(policy: str, old: int, expect: int) -> None:
    assert next_serial(old, policy, NOW) == expect


def test_serial_written_to_soa() -> None:
    z = sign_zone(zone_from(), ksk_zsk(), SignParams(serial="increment"), NOW).zone
    assert z.soa().serial == 2024010102


def test_nsec3_rfc5155_hash_vector() -> None:
    # RFC 5155 Appendix A: H(example) = 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom
    origin = dns.name.from_text("example.")
    digest = nsec3_hash(canonical.name_wire(origin), bytes.fromhex("aabbccdd"), 12)
    assert hashed_owner(digest, origin).to_text() == "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example."


def test_nsec3_iterations_policy() -> None:
    check_iterations(0, force=False)
    check_iterations(10, force=True)
    with pytest.raises(InputError, match="RFC 9276"):
        check_iterations(1, force=False)
    with pytest.raises(InputError, match="RFC 9276"):
        check_iterations(101, force=True)


def test_nsec3_opt_out_skips_unsigned_delegations_and_covers_ents() -> None:
    params = SignParams(nsec3=Nsec3Params(opt_out=True))
    z = sign_zone(zone_from(), ksk_zsk(), params, NOW).zone
    owners = {name for name in z.rrsets if z.get(name, T.NSEC3) is not None}

    def h(name: str) -> dns.name.Name:
        return hashed_owner(nsec3_hash(canonical.name_wire(n(name)), b"", 0), ORIGIN)

    assert h("sec") in owners and h("insec") not in owners
    assert h("c.ent") in owners and h("b.c.ent") in owners  # empty non-terminals
    assert h("ns.sec") not in owners  # glue
    assert z.get(ORIGIN, T.NSEC3PARAM) is not None
    assert all(z.get(o, T.NSEC3).rdatas[0][1] == 1 for o in owners)  # type: ignore[union-attr]
    full = sign_zone(zone_from(), ksk_zsk(), SignParams(nsec3=Nsec3Params()), NOW).zone
    assert full.get(h("insec"), T.NSEC3) is not None
    assert not any(z.get(name, T.NSEC) for name in z.rrsets)


def test_nsec3_refused_for_rsasha1() -> None:
    key = dataclasses.replace(make_key(13), algorithm=5)
    with pytest.raises(InputError, match="NSEC3"):
        sign_zone(zone_from(), [SigningKey(key)], SignParams(nsec3=Nsec3Params()), NOW)


def test_no_active_key_and_wrong_zone_refused() -> None:
    with pytest.raises(InputError, match="no active key"):
        sign_zone(zone_from(), [SigningKey(make_key(), active=False)], SignParams(), NOW)
    with pytest.raises(InputError, match="not published"):
        sign_zone(zone_from(), [SigningKey(make_key(), publish=False)], SignParams(), NOW)
    other = dataclasses.replace(make_key(), zone=dns.name.from_text("other."))
    with pytest.raises(InputError, match=r"not example\.com"):
        sign_zone(zone_from(), [SigningKey(other)], SignParams(), NOW)


def test_smart_selection_follows_bind_timing_rules() -> None:
    def with_t(**kw: int | None) -> SigningKey:
        key = make_key().with_timings(KeyTimings(**kw))
        return smart_select([key], NOW)[-1]

    assert with_t().publish and with_t().active  # no metadata: published and active
    pre = with_t(publish=NOW - 10, activate=NOW + 10)
    assert pre.publish and not pre.active
    retired = with_t(publish=NOW - 20, activate=NOW - 10, inactive=NOW - 1)
    assert retired.publish and not retired.active
    gone = with_t(publish=NOW - 20, delete=NOW - 1)
    assert not gone.publish and not gone.active
    future = with_t(publish=NOW + 100)
    assert not future.publish
    revoked = smart_select([make_key(ksk=True).with_timings(KeyTimings(revoke=NOW - 1))], NOW)
    assert [k.publish for k in revoked] == [False, True]
    assert revoked[1].key.is_revoked


def test_revoked_and_unpublished_keys_change_the_dnskey_set() -> None:
    ksk, zsk = ksk_zsk()
    old = sign_zone(zone_from(), [ksk, zsk], SignParams(), NOW).zone
    gone = sign_zone(old, [ksk, SigningKey(zsk.key, publish=False, active=False)],
                     SignParams(), NOW).zone  # fmt: skip
    dnskey = gone.get(ORIGIN, T.DNSKEY)
    assert dnskey is not None and len(dnskey.rdatas) == 1
    assert {s.key_tag for s in sigs(gone, "mail", T.A)} == {ksk.key.tag}


def test_worker_processes_give_the_same_signatures() -> None:
    from dnsseal.signer.parallel import ProcessBatchSigner
    from dnsseal.signer.sign import sign_sequential

    keys = ksk_zsk(13)
    jobs = [(i % 2, f"data {i}".encode()) for i in range(50)]
    pooled = list(ProcessBatchSigner(2, min_jobs=0)(keys, jobs))
    assert pooled == list(sign_sequential(keys, jobs))  # RFC 6979: same input, same signature
    many = [(i % 2, f"data {i}".encode()) for i in range(5000)]  # several chunks in flight
    assert list(ProcessBatchSigner(2, min_jobs=0)(keys, iter(many))) == list(
        sign_sequential(keys, many)
    )
    params = SignParams(batch=ProcessBatchSigner(2, min_jobs=0))
    a = sign_zone(zone_from(), keys, params, NOW).zone
    assert format_zone(a) == format_zone(sign_zone(zone_from(), keys, SignParams(), NOW).zone)


def test_cds_and_cdnskey_are_signed_like_the_dnskey_rrset() -> None:
    ksk, zsk = ksk_zsk()
    text = zone_text_with_cds(ksk.key)
    z = sign_zone(zone_from(text), [ksk, zsk], SignParams(ksk_only=True), NOW).zone
    for rtype in (T.CDS, T.CDNSKEY, T.DNSKEY):
        assert {s.key_tag for s in sigs(z, "@", rtype)} == {ksk.key.tag}, rtype
    assert {s.key_tag for s in sigs(z, "@", T.SOA)} == {zsk.key.tag}


def zone_text_with_cds(key: Key) -> str:
    from .conftest import FEATURE_ZONE

    return (
        FEATURE_ZONE
        + f"@ CDNSKEY {key.flags} 3 {key.algorithm} {key.public_key_b64()}\n"
        + f"@ CDS {key.tag} {key.algorithm} 2 {'00' * 32}\n"
    )


def test_key_tag_collision_is_handled() -> None:
    from dnsseal.crypto import software
    from dnsseal.keys import algorithms

    seen: dict[int, Key] = {}
    pair: tuple[Key, Key] | None = None
    for _ in range(5000):  # birthday bound: a collision among ~300 keys is likely
        pub, priv = software.generate(algorithms.get(15))
        key = Key(ORIGIN, 256, 15, pub, private=priv)
        if key.tag in seen:
            pair = (seen[key.tag], key)
            break
        seen[key.tag] = key
    assert pair is not None
    keys = [SigningKey(make_key(15, ksk=True)), SigningKey(pair[0]), SigningKey(pair[1])]
    first = sign_zone(zone_from(), keys, SignParams(), NOW)
    assert verify_zone(first.zone, NOW) == []
    again = sign_zone(first.zone, keys, SignParams(), NOW)
    assert again.stats.generated == 0 and again.stats.retained == first.stats.generated
    assert format_zone(again.zone) == format_zone(first.zone)
