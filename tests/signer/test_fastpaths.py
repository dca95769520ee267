"""The fast paths of the signing hot path give exactly what the careful paths give."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsseal.crypto import software, wire
from dnsseal.crypto.software import der_to_wire, sign_function
from dnsseal.crypto.wire import CURVES, ecdsa_wire_signature
from dnsseal.keys.model import Key
from dnsseal.signer import Nsec3Params, SignParams, sign_zone
from dnsseal.signer.incremental import SignedChange, full_sign_changes, sign_changes
from dnsseal.signer.parallel import ProcessBatchSigner
from dnsseal.signer.quick import quick_sign_changes
from dnsseal.zone import canonical, rdtext
from dnsseal.zone.diff import ZoneDiff, records
from dnsseal.zone.model import NameKind, OwnerName, Zone, layout
from dnsseal.zone.text import format_zone, parse_zone_text, parse_zone_text_full

from .conftest import NOW, ORIGIN, ksk_zsk, make_key, zone_from
from .test_property import DENIAL, NAMES, zone_text

T = dns.rdatatype
IN = dns.rdataclass.IN


def _reference_signature(key: Key, data: bytes) -> bytes:
    """A signature made the plain way: a fresh key object and parameters, DER decoded."""
    assert key.private is not None
    secret = key.private.get("PrivateKey")
    if key.algorithm in (13, 14):
        curve, size = CURVES[key.algorithm]
        digest = hashes.SHA256() if key.algorithm == 13 else hashes.SHA384()
        assert secret is not None
        private = ec.derive_private_key(int.from_bytes(secret, "big"), curve)
        der = private.sign(data, ec.ECDSA(digest, deterministic_signing=True))
        return ecdsa_wire_signature(der, size)
    assert key.algorithm == 15 and secret is not None
    return ed25519.Ed25519PrivateKey.from_private_bytes(secret).sign(data)


@pytest.mark.parametrize("alg", [8, 13, 14, 15])
@given(data=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
@settings(max_examples=15, deadline=None)
def test_prepared_signer_matches_the_plain_signature(alg: int, data: list[bytes]) -> None:
    """The prepared signing function (reused parameter objects, DER sliced) gives the bytes
    of a plainly made signature (ECDSA and Ed25519 are deterministic) and verifies (RSA)."""
    key = make_key(alg)
    fast = sign_function(key)
    public = wire.public_key_object(alg, key.public_key)
    for d in data:
        sig = fast(d)
        assert sig == software.signer_for(key).sign(d)
        assert wire.verify(alg, public, sig, d)
        if alg != 8:
            assert sig == _reference_signature(key, d)


@given(st.binary(min_size=1, max_size=64))
@settings(max_examples=40, deadline=None)
def test_der_slicing_matches_the_der_decoder(data: bytes) -> None:
    for curve, size in ((ec.SECP256R1(), 32), (ec.SECP384R1(), 48)):
        key = ec.derive_private_key(int.from_bytes(data.rjust(8, b"\1")[:8], "big") + 1, curve)
        der = key.sign(data, ec.ECDSA(hashes.SHA256()))  # random k: all r/s lengths occur
        assert der_to_wire(der, size) == ecdsa_wire_signature(der, size)


def _careful_layout(zone: Zone) -> tuple[dict[dns.name.Name, NameKind], set[dns.name.Name]]:
    """The zone layout computed with dnspython names (the reference for the label-tuple
    version in :func:`dnsseal.zone.model.layout`)."""
    origin = zone.origin
    cuts = {n for n, node in zone.rrsets.items() if n != origin and T.NS in node}
    dnames = {n for n, node in zone.rrsets.items() if T.DNAME in node}
    kinds: dict[dns.name.Name, NameKind] = {}
    for name in zone.rrsets:
        if name == origin:
            kinds[name] = NameKind.APEX
            continue
        kind = NameKind.DELEGATION if name in cuts else NameKind.AUTH
        parent = name.parent()
        while parent != origin and len(parent) > len(origin):
            if parent in cuts or parent in dnames:
                kind = NameKind.OCCLUDED
                break
            parent = parent.parent()
        if kind is not NameKind.OCCLUDED and name.parent() in dnames:
            kind = NameKind.OCCLUDED
        kinds[name] = kind
    ents: set[dns.name.Name] = set()
    for name, kind in kinds.items():
        if kind in (NameKind.AUTH, NameKind.DELEGATION):
            parent = name.parent()
            while parent != origin and len(parent) > len(origin) and parent not in kinds:
                ents.add(parent)
                parent = parent.parent()
    return kinds, ents


EXTRA_ROLES = st.sampled_from(["host", "txt", "mx", "cname", "insecure", "secure", "wild"])


@given(entries=st.lists(st.tuples(NAMES, EXTRA_ROLES), min_size=1, max_size=12), nsec3=DENIAL)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_paths_match_careful_paths_on_random_zones(
    entries: list[tuple[str, str]], nsec3: Nsec3Params | None
) -> None:
    text = zone_text(entries) + "dn DNAME ns1\nx.dn A 192.0.2.9\n"
    zone = parse_zone_text(text, ORIGIN)
    assert zone == parse_zone_text_full(text, ORIGIN)  # fast master-file reader
    lay = layout(zone)
    kinds, ents = _careful_layout(zone)
    assert dict(lay.kinds) == kinds and set(lay.empty_non_terminals) == ents
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, inception=NOW - 3600, expiration=NOW + 86400)
    signed = sign_zone(zone, keys, params, NOW).zone
    pooled = sign_zone(
        zone,
        keys,
        SignParams(
            nsec3=nsec3,
            inception=NOW - 3600,
            expiration=NOW + 86400,
            batch=ProcessBatchSigner(2, min_jobs=0),
        ),
        NOW,
    ).zone
    out = format_zone(signed)
    assert out == format_zone(pooled)  # worker processes: same output
    assert parse_zone_text_full(out, ORIGIN) == signed  # text read back by dnspython
    for rrset in [*signed.iter_rrsets(), *(r for n in signed.rrsigs.values() for r in n.values())]:
        assert canonical.name_wire(rrset.name) == rrset.name.to_wire().lower()
        for rd in rrset.rdatas:  # text straight from wire reads back with dnspython
            fast = rdtext.rdata_text(rrset.rtype, rd)
            careful = dns.rdata.from_text(IN, rrset.rtype, fast, dns.name.root, False)
            assert canonical.rdata_wire(careful) == rd


EDIT_ROLES = st.sampled_from(["host", "txt", "mx", "cname", "insecure", "secure", "wild"])


@given(
    entries=st.lists(st.tuples(NAMES, EDIT_ROLES), min_size=1, max_size=10),
    nsec3=DENIAL,
    picks=st.lists(st.integers(0, 1000), min_size=1, max_size=4),
    ttl=st.sampled_from([300, 60]),
    serial=st.sampled_from(["keep", "increment"]),
    later=st.sampled_from([0, 86400 * 25]),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_quick_resign_equals_the_full_path(
    entries: list[tuple[str, str]],
    nsec3: Nsec3Params | None,
    picks: list[int],
    ttl: int,
    serial: str,
    later: int,
) -> None:
    """Replacing records (same types at the names) re-signs through the quick path when it
    applies, with the same zone, diff and statistics as the full path; otherwise falls back.
    ``later`` moves the clock to where kept signatures are due for refresh."""
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial=serial)
    signed = sign_zone(zone_from(zone_text(entries) + "dn DNAME ns1\nx.dn A 192.0.2.9\n"),
                       keys, params, NOW).zone  # fmt: skip
    data = [r for r in records(signed) if r[1] in (T.A, T.AAAA, T.TXT, T.MX, T.CNAME)]
    removed, added = [], []
    for i, p in enumerate(picks):
        name, rtype, _, rdata = data[p % len(data)]
        removed.append((name, rtype, 300, rdata))
        added.append((name, rtype, ttl, rdata if p % 3 == 0 else rdata[:-1] + bytes([i + 1])))
    change = ZoneDiff(tuple(removed), tuple(added))
    now = NOW + later
    quick = quick_sign_changes(signed, change, keys, params, now)
    full = full_sign_changes(signed, change, keys, params, now)
    assert sign_changes(signed, change, keys, params, now) == (
        full if quick is None else SignedChange(*quick)
    )
    if later:
        assert quick is None  # signatures due for refresh: the full path re-signs them
    if quick is not None:
        assert SignedChange(*quick) == full


@pytest.mark.parametrize("nsec3", [None, Nsec3Params()])
def test_quick_resign_applies_to_a_changed_address(nsec3: Nsec3Params | None) -> None:
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial="increment")
    signed = sign_zone(zone_from(), keys, params, NOW).zone
    mail = dns.name.from_text("mail", ORIGIN)
    change = ZoneDiff(((mail, T.A, 300, bytes([192, 0, 2, 2])),),
                      ((mail, T.A, 300, bytes([192, 0, 2, 22])),))  # fmt: skip
    quick = quick_sign_changes(signed, change, keys, params, NOW)
    assert quick is not None
    zone, zdiff, stats = quick
    assert stats.generated == 2  # the A RRset and the SOA, by the ZSK
    assert SignedChange(zone, zdiff, stats) == full_sign_changes(signed, change, keys, params, NOW)


@given(st.lists(st.binary(min_size=1, max_size=63), max_size=5))
@settings(max_examples=200, deadline=None)
def test_owner_names_hash_and_compare_like_dnspython_names(labels: list[bytes]) -> None:
    try:
        name = dns.name.Name([*labels, b""])
    except dns.name.NameTooLong:
        return
    lower = name.canonicalize()
    for fast in (OwnerName.trusted(lower.labels), OwnerName(lower.labels)):
        assert hash(fast) == hash(name) == hash(lower)
        assert fast == name and name == fast and {name: 1}[fast] == 1
