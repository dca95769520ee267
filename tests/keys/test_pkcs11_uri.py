"""PKCS#11 URIs (RFC 7512), PIN files, HSM key references in ``.private`` files and the
key-store registry, without a token (the token tests are in test_pkcs11.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import ClassVar

import dns.name
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnsseal.crypto import keystore, software, wire
from dnsseal.crypto.pkcs11 import module_path, read_pin
from dnsseal.crypto.pkcs11uri import Pkcs11Uri, UriError
from dnsseal.errors import CryptoError, InputError
from dnsseal.keys import algorithms, bindfmt
from dnsseal.keys.model import Key, PrivateMaterial

# ------------------------------------------------------------------------------ URIs


def test_rfc7512_examples() -> None:
    u = Pkcs11Uri.parse(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
        "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;"
        "id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin"
    )
    assert u.token == "The Software PKCS#11 Softtoken"
    assert u.manufacturer == "Snake Oil, Inc."
    assert u.object == "my-certificate" and u.type == "cert"
    assert u.id == bytes.fromhex("69953e5cf4bdec91")
    assert u.serial == "" and u.pin_source == "file:/etc/token_pin"
    assert Pkcs11Uri.parse("pkcs11:") == Pkcs11Uri()
    v = Pkcs11Uri.parse("pkcs11:slot-id=3;x-vendor=a%20b?module-name=softhsm2&pin-value=1234")
    assert v.slot_id == 3 and v.vendor == (("x-vendor", "a b"),)
    assert v.module_name == "softhsm2" and v.pin_value == "1234"


def test_query_attributes_in_the_path_as_knot_and_libp11_write_them() -> None:
    u = Pkcs11Uri.parse("pkcs11:token=knot;pin-value=1234")
    assert u.token == "knot" and u.pin_value == "1234"
    assert u.to_text() == "pkcs11:token=knot?pin-value=1234"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pkcs12:token=a", "not a PKCS#11 URI"),
        ("pkcs11:token=a;token=b", "token given twice"),
        ("pkcs11:colour=blue", "unknown attribute 'colour'"),
        ("pkcs11:token", "has no value"),
        ("pkcs11:slot-id=one", "slot-id must be a number"),
        ("pkcs11:type=key", "type=key"),
        ("pkcs11:object=%ff", "object is not UTF-8"),
        ("pkcs11:token=a?pin-value=1&pin-source=/f", "not both"),
    ],
)
def test_bad_uris(text: str, message: str) -> None:
    with pytest.raises(UriError, match=message):
        Pkcs11Uri.parse(text)


def test_a_pin_is_never_shown() -> None:
    u = Pkcs11Uri.parse("pkcs11:token=t;object=o?pin-value=s3cret")
    assert "s3cret" not in u.redacted() and "s3cret" not in repr(u) and "s3cret" not in str(u)
    assert "pin-value=***" in u.redacted()
    with pytest.raises(UriError) as e:
        Pkcs11Uri.parse("pkcs99:token=t?pin-value=s3cret-and-more")
    assert "s3cret-and-more" not in str(e.value)


text_values = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
uris = st.builds(
    Pkcs11Uri,
    token=st.one_of(st.none(), text_values),
    manufacturer=st.one_of(st.none(), text_values),
    serial=st.one_of(st.none(), text_values),
    slot_id=st.one_of(st.none(), st.integers(0, 2**32)),
    object=st.one_of(st.none(), text_values),
    type=st.one_of(st.none(), st.sampled_from(["private", "public"])),
    id=st.one_of(st.none(), st.binary(max_size=20)),
    module_path=st.one_of(st.none(), text_values),
    pin_source=st.one_of(st.none(), text_values),
)


@given(uris)
def test_uri_round_trip(u: Pkcs11Uri) -> None:
    assert Pkcs11Uri.parse(u.to_text()) == u


def test_module_from_uri_environment_or_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DNSSEAL_PKCS11_MODULE", raising=False)
    u = Pkcs11Uri.parse("pkcs11:token=t")
    with pytest.raises(CryptoError, match="module-path"):
        module_path(u)
    monkeypatch.setenv("DNSSEAL_PKCS11_MODULE", "/opt/hsm.so")
    assert module_path(u) == "/opt/hsm.so"
    assert module_path(u.replace(module_path="/x.so")) == "/x.so"


# ------------------------------------------------------------------------------- PINs


def test_pin_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "pin"
    f.write_text("4321\n")
    f.chmod(0o600)
    uri = Pkcs11Uri(token="t", pin_source=str(f))
    assert read_pin(uri) == "4321"
    assert read_pin(uri.replace(pin_source=f"file:{f}")) == "4321"
    f.chmod(0o644)
    with pytest.raises(CryptoError, match=r"accessible to group or others \(mode 644\)") as e:
        read_pin(uri)
    assert "4321" not in str(e.value)
    with pytest.raises(CryptoError, match="does not exist"):
        read_pin(uri.replace(pin_source=str(tmp_path / "nope")))
    assert read_pin(Pkcs11Uri(pin_value="77")) == "77"
    assert read_pin(Pkcs11Uri()) is None


# --------------------------------------------------------------- .private references

# What dnssec-keyfromlabel -E pkcs11 writes (BIND 9.18: Engine and Label are base64 of
# NUL-terminated strings, dst_parse.c / opensslecdsa_link.c).
BIND_LABEL_PRIVATE = """\
Private-key-format: v1.3
Algorithm: 13 (ECDSAP256SHA256)
Engine: cGtjczExAA==
Label: cGtjczExOnRva2VuPWRuc3NlYWw7b2JqZWN0PWtzawA=
Created: 20261207000000
Publish: 20261207000000
Activate: 20261207000000
"""


def test_bind_label_private_is_read_and_written_back_unchanged() -> None:
    priv = bindfmt.parse_private(BIND_LABEL_PRIVATE)
    assert priv.material.engine == "pkcs11"
    assert priv.material.label == "pkcs11:token=dnsseal;object=ksk"
    assert priv.material.get("PrivateKey") is None
    key = Key(
        zone=dns.name.from_text("example."),
        flags=257,
        algorithm=13,
        public_key=bytes(64),
        timings=priv.timings,
        private=priv.material,
    )
    assert bindfmt.format_private(key) == BIND_LABEL_PRIVATE
    assert keystore.reference(key.private) == "pkcs11:token=dnsseal;object=ksk"


def test_reference_material_is_what_bind_writes() -> None:
    m = PrivateMaterial.reference("pkcs11:token=dnsseal;object=ksk")
    assert m.fields == (
        ("Engine", base64.b64decode("cGtjczExAA==")),
        ("Label", base64.b64decode("cGtjczExOnRva2VuPWRuc3NlYWw7b2JqZWN0PWtzawA=")),
    )


def test_engine_without_label_is_an_error() -> None:
    text = BIND_LABEL_PRIVATE.replace("Label: cGtjczExOnRva2VuPWRuc3NlYWw7b2JqZWN0PWtzawA=\n", "")
    with pytest.raises(InputError, match="Engine: without Label:"):
        bindfmt.parse_private(text, "K.private")


# ---------------------------------------------------------------- the key-store registry


class _FakeStore:
    """A store whose keys are software keys kept by name: shows that the registry, not the
    signer, decides who signs for a key."""

    name = "fake"
    keys: ClassVar[dict[str, Key]] = {}
    signed: ClassVar[list[str]] = []

    def __init__(self, location: str) -> None:
        self.location = location

    def describe(self) -> str:
        return f"fake {self.location}"

    def generate(
        self, alg: algorithms.Algorithm, bits: int | None = None, *, label: str | None = None
    ) -> tuple[bytes, PrivateMaterial]:
        public, material = software.generate(alg, bits)
        name = f"fake:{label}"
        self.keys[name] = Key(dns.name.root, 256, alg.number, public, private=material)
        return public, PrivateMaterial.reference(name, engine=None)

    def sign_function(self, key: Key) -> software.SignFunction:
        assert key.private is not None and key.private.label is not None
        inner = software.sign_function(self.keys[key.private.label])

        def sign(data: bytes) -> bytes:
            self.signed.append(self.location)
            return inner(data)

        return sign

    def destroy(self, material: PrivateMaterial) -> None:
        assert material.label is not None
        del self.keys[material.label]


def test_registry_routes_label_keys_to_their_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(keystore._REGISTRY, "fake", _FakeStore)
    store = keystore.open_store("fake:one")
    assert isinstance(store, keystore.KeyStore)
    alg = algorithms.get(13)
    public, material = store.generate(alg, label="one")
    key = Key(dns.name.from_text("example."), 257, 13, public, private=material)
    assert isinstance(keystore.store_for(key), _FakeStore)
    sig = keystore.sign_function(key)(b"data")
    assert wire.verify(13, wire.public_key_object(13, public), sig, b"data")
    assert _FakeStore.signed == ["fake:one"]
    # Keys with their material in the file go to the software store.
    pub2, mat2 = keystore.open_store(None).generate(alg)
    soft = Key(dns.name.from_text("example."), 256, 13, pub2, private=mat2)
    assert isinstance(keystore.store_for(soft), keystore.SoftwareStore)
    assert wire.verify(
        13, wire.public_key_object(13, pub2), keystore.sign_function(soft)(b"x"), b"x"
    )


def test_unknown_store_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="unknown key store 'vault'"):
        keystore.open_store("vault:secret/dns")
    with pytest.raises(InputError, match="expected 'software' or a pkcs11: URI"):
        keystore.open_store("hsm")


# ------------------------------------------------------------- policies with key stores

HSM = "pkcs11:token=dnssec?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/pin"


def test_policy_key_store_in_toml_round_trip() -> None:
    from dnsseal.policy import tomlfmt

    text = f"""
[policy.hsm]
keys = [
  {{ role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256", key-store = "{HSM}" }},
  {{ role = "zsk", lifetime = "30d", algorithm = "ECDSAP256SHA256" }},
]
"""
    policy = tomlfmt.parse(text)["hsm"]
    assert [k.key_store for k in policy.keys] == [HSM, None]
    assert tomlfmt.parse(tomlfmt.format([policy]))["hsm"] == policy


def test_policy_key_store_must_be_a_store() -> None:
    from dnsseal.policy import tomlfmt

    text = """
[policy.bad]
keys = [{ role = "csk", algorithm = 13, key-store = "/var/keys" }]
"""
    with pytest.raises(InputError, match=r"policy\.bad\.keys\[0\]\.key-store.*pkcs11: URI"):
        tomlfmt.parse(text)


def test_bind_920_key_store_blocks_are_imported() -> None:
    from dnsseal.policy import namedconf

    conf = f"""
key-store "hsm" {{ directory "keys"; pkcs11-uri "{HSM}"; }};
key-store "disk" {{ directory "keys"; }};
dnssec-policy "hsm" {{
    keys {{
        ksk key-store "hsm" lifetime unlimited algorithm ecdsap256sha256;
        zsk key-store "disk" lifetime P30D algorithm ecdsap256sha256;
    }};
}};
"""
    policy = namedconf.parse(conf)["hsm"]
    assert [(k.key_store, k.key_directory) for k in policy.keys] == [(HSM, False), (None, True)]
    with pytest.raises(InputError, match="key-store 'nope' is not defined"):
        namedconf.parse(conf.replace('zsk key-store "disk"', 'zsk key-store "nope"'))


def test_without_the_pkcs11_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Software keys sign as always; a PKCS#11 key says what to install, in one line.
    import sys

    monkeypatch.setitem(sys.modules, "pkcs11", None)  # import pkcs11 -> ImportError
    alg = algorithms.get(13)
    public, material = keystore.generate(None, alg)
    soft = Key(dns.name.from_text("example."), 256, 13, public, private=material)
    assert wire.verify(
        13, wire.public_key_object(13, public), keystore.sign_function(soft)(b"x"), b"x"
    )
    label = f"pkcs11:token=t;object=k?module-path={tmp_path}/m.so&pin-value=1"
    hsm = Key(soft.zone, 256, 13, public, private=PrivateMaterial.reference(label))
    with pytest.raises(CryptoError, match=r"pip install 'dnsseal\[pkcs11\]'"):
        keystore.sign_function(hsm)


def test_missing_module_is_named(tmp_path: Path) -> None:
    import pkcs11  # the test extra installs it (a failure, not a skip, when missing)

    assert pkcs11.lib is not None
    label = f"pkcs11:token=t;object=k?module-path={tmp_path}/nope.so&pin-value=1"
    key = Key(dns.name.from_text("example."), 256, 13, bytes(64),
              private=PrivateMaterial.reference(label))  # fmt: skip
    with pytest.raises(CryptoError, match=rf"{tmp_path}/nope\.so: PKCS#11 module not found"):
        keystore.sign_function(key)
