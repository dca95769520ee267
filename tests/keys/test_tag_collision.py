"""One key-tag collision rule and loop for every way dnsseal makes a key (the key manager,
``keygen``, ``ksr keygen``): a new key whose tag or revoked tag is the tag or revoked tag
of a key of the zone and algorithm is thrown away and made again (BIND's
``keymgr_keyid_conflict``; dnssec-keygen's ``key_collision`` checks the same but revoked
against revoked)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.name
import pytest

from conftest import Dnsseal
from dnsseal.crypto import keystore, software
from dnsseal.errors import CryptoError
from dnsseal.keys import algorithms
from dnsseal.keys.model import (
    FLAG_REVOKE,
    FLAG_ZONE,
    MAX_TAG_TRIES,
    Key,
    PrivateMaterial,
    key_tag,
    new_key,
    tag_collides,
)
from dnsseal.storage.keydir import KeyDirectory

ZONE = dns.name.from_text("example.org.")


def _pair() -> tuple[bytes, PrivateMaterial]:
    return software.generate(algorithms.get(13))


def _shifted(public: bytes, delta: int) -> bytes:
    """``public`` changed so that a key of it has its tag moved by ``delta`` (a low octet of
    a 16-bit word of the rdata: the public key starts at an even offset)."""
    pk = bytearray(public)
    i = next(i for i in range(1, len(pk), 2) if 0 <= pk[i] + delta <= 255)
    pk[i] += delta
    return bytes(pk)


def _revoked_onto(existing: Key) -> bytes:
    """A public key whose key, once revoked, has ``existing``'s tag, and whose tag is
    neither ``existing``'s tag nor its revoked tag."""
    for delta in (-128, 128):
        try:
            pk = _shifted(existing.public_key, delta)
        except StopIteration:
            continue
        k = Key(ZONE, FLAG_ZONE, 13, pk)
        if k.revoked_tag == existing.tag and k.tag not in (existing.tag, existing.revoked_tag):
            return pk
    raise AssertionError("no such key")  # (every P-256 key has both kinds of octet)


def test_a_key_whose_revoked_tag_is_an_existing_tag_collides() -> None:
    public, _ = _pair()
    existing = Key(ZONE, FLAG_ZONE, 13, public)
    new = Key(ZONE, FLAG_ZONE, 13, _revoked_onto(existing))
    assert tag_collides(new, [existing])  # new's revoked tag is existing's tag
    assert tag_collides(existing, [new])  # existing's tag ... is new's revoked tag
    assert key_tag(FLAG_ZONE | FLAG_REVOKE, 3, 13, new.public_key) == existing.tag
    assert not tag_collides(new, [Key(ZONE, FLAG_ZONE, 8, public)])  # another algorithm


def test_the_loop_makes_keys_until_one_collides_with_none() -> None:
    public, _ = _pair()
    existing = Key(ZONE, FLAG_ZONE, 13, public)
    fresh = Key(ZONE, FLAG_ZONE, 13, _pair()[0])
    while tag_collides(fresh, [existing]):  # (about 1 in 16,000)
        fresh = Key(ZONE, FLAG_ZONE, 13, _pair()[0])
    made: Iterator[Key] = iter([existing, Key(ZONE, FLAG_ZONE, 13, _revoked_onto(existing)), fresh])
    thrown: list[int] = []
    got = new_key(lambda: next(made), [existing], collided=lambda k: thrown.append(k.tag))
    assert got == fresh and len(thrown) == 2


def test_the_loop_gives_up_with_an_error_naming_the_zone() -> None:
    public, _ = _pair()
    existing = Key(ZONE, FLAG_ZONE, 13, public)
    calls = []

    def same() -> Key:
        calls.append(1)
        return existing

    with pytest.raises(CryptoError, match=r"example\.org\.: could not make a key"):
        new_key(same, [existing])
    assert len(calls) == MAX_TAG_TRIES


def test_keygen_throws_away_a_key_whose_revoked_tag_is_taken(
    dnsseal: Dnsseal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dnssec-keygen refuses a key whose revoked tag is the tag of a key of the zone
    (``oldid == rid``): revoking it would make two keys of one tag.  dnsseal keygen
    checked the new key's tag only (this test failed: the key was written)."""
    kd = KeyDirectory(tmp_path)
    public, material = _pair()
    existing = Key(ZONE, FLAG_ZONE, 13, public, private=material)
    kd.create(existing)
    bad = _revoked_onto(existing)
    good_public, good_material = _pair()
    while tag_collides(Key(ZONE, FLAG_ZONE, 13, good_public), [existing]):
        good_public, good_material = _pair()
    made = iter([(bad, material), (good_public, good_material)])
    monkeypatch.setattr(keystore, "generate", lambda *a, **k: next(made))
    result = dnsseal("keygen", "-K", tmp_path, "-a", "13", "example.org")
    good = Key(ZONE, FLAG_ZONE, 13, good_public)
    assert result.stdout.strip() == good.basename
    assert f"key tag {Key(ZONE, FLAG_ZONE, 13, bad).tag} collides" in result.stderr
    assert {k.tag for k in kd.keys(ZONE)} == {existing.tag, good.tag}


POLICY = """
[policy.offline]
dnskey-ttl = 300
offline-ksk = true
keys = [
  { role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "30d", algorithm = "ECDSAP256SHA256" },
]
"""


def test_ksr_keygen_makes_again_a_key_whose_tag_is_taken(
    dnsseal: Dnsseal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ZSKs pregenerated for a period collide neither with the zone's keys nor with each
    other (there was no check: a key with an existing key's tag stopped the command with
    "already exists", one of another's revoked tag was written)."""
    (tmp_path / "policies.toml").write_text(POLICY)
    keys = tmp_path / "keys"
    keys.mkdir()
    kd = KeyDirectory(keys)
    first = dnsseal("ksr", "keygen", "-K", keys, "-k", "offline", "-l",
                    tmp_path / "policies.toml", "-i", "now", "-e", "+20d",
                    "example.org").stdout.split()  # fmt: skip
    assert len(first) == 1
    existing = kd.keys(ZONE)
    pairs = [_pair() for _ in range(8)]
    fresh: list[tuple[bytes, PrivateMaterial]] = []
    for p in pairs:  # (two keys that collide with nothing: all but certainly the first two)
        if not tag_collides(
            Key(ZONE, FLAG_ZONE, 13, p[0]),
            existing + [Key(ZONE, FLAG_ZONE, 13, f[0]) for f in fresh],
        ):
            fresh.append(p)
    revoked_onto = _revoked_onto(existing[0])
    made = iter(
        [
            (existing[0].public_key, pairs[0][1]),  # the tag of the zone's ZSK
            (revoked_onto, pairs[0][1]),  # its revoked tag is the zone's ZSK's tag
            fresh[0],
            (_revoked_onto(Key(ZONE, FLAG_ZONE, 13, fresh[0][0])), pairs[0][1]),  # the last's
            fresh[1],
        ]
    )
    monkeypatch.setattr(keystore, "generate", lambda *a, **k: next(made))
    result = dnsseal("ksr", "keygen", "-K", keys, "-k", "offline", "-l",
                     tmp_path / "policies.toml", "-i", "now", "-e", "+70d",
                     "example.org")  # fmt: skip
    got = result.stdout.split()
    want = [Key(ZONE, FLAG_ZONE, 13, p[0]).basename for p in fresh[:2]]
    assert got == want
    assert result.stderr.count("collides with an existing key") == 3
    all_keys = kd.keys(ZONE)
    assert len(all_keys) == 3
    for k in all_keys:
        assert not tag_collides(k, [o for o in all_keys if o is not k])


def test_a_key_the_key_manager_threw_away_is_deleted_from_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key manager makes a key in a token, its tag collides, it makes another: the plan
    names the material not kept and KeyDirectory.apply deletes it from the store (it stayed
    in the token, an orphan).  Keys held in the files themselves have nothing to delete."""
    from dnsseal.keymgr import step
    from dnsseal.policy.build import BUILTIN

    kd = KeyDirectory(tmp_path)
    public, material = _pair()
    existing = Key(ZONE, FLAG_ZONE, 13, public, private=material)  # (a ZSK: not the policy's)
    kd.create(existing)
    in_token = PrivateMaterial.reference("pkcs11:token=t;object=refused")
    good_public, good_material = _pair()
    while tag_collides(Key(ZONE, FLAG_ZONE | 1, 13, good_public), [existing]):
        good_public, good_material = _pair()
    bad = _shifted(public, -1)  # (a CSK's flags word is one more: the same tag as the ZSK)
    assert tag_collides(Key(ZONE, FLAG_ZONE | 1, 13, bad), [existing])
    made = iter([(bad, in_token), (good_public, good_material)])
    plan = step(BUILTIN["default"], kd.keys(ZONE), now=1_800_000_000, zone=ZONE,
                keygen=lambda spec: next(made))  # fmt: skip
    assert [r.key.public_key for r in plan.keys if r.created] == [good_public]
    assert plan.discarded == (in_token,)
    deleted: list[PrivateMaterial] = []
    monkeypatch.setattr(keystore, "discard", deleted.append)
    kd.apply(plan, [existing])
    assert deleted == [in_token]
    assert {k.public_key for k in kd.keys(ZONE)} == {public, good_public}


def test_discard_leaves_keys_held_in_files_alone() -> None:
    keystore.discard(_pair()[1])  # (software material: nothing to open, nothing raised)
