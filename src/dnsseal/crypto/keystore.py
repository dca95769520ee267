"""Key stores: where a private key lives, how it is made and how it signs.

A key store is the small :class:`KeyStore` protocol; the stores are found through a registry
keyed by location scheme (like Knot's ``keystore_functions_t`` with ``pkcs8.c`` and
``pkcs11.c``).  Two are built in:

* ``software`` (no location, or ``software:``): keys made with the cryptography package, their
  material in BIND ``.private`` files (:mod:`dnsseal.crypto.software`);
* ``pkcs11`` (an RFC 7512 ``pkcs11:`` URI): keys made and kept in a token; the ``.private`` file
  holds only BIND's ``Engine:`` / ``Label:`` reference (:mod:`dnsseal.crypto.pkcs11`, imported
  only when such a key or URI is used, so dnsseal works without the ``pkcs11`` extra).

A key's ``.private`` says which store signs for it: :func:`store_for` picks it, and
:func:`sign_function` is what the signer calls (once per key and process).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from dnsseal.crypto.software import SignFunction
from dnsseal.errors import CryptoError, InputError
from dnsseal.keys import algorithms
from dnsseal.keys.model import Key, PrivateMaterial


class KeyStoreError(CryptoError):
    """A key store cannot be opened or used (module missing, token not found, bad PIN)."""


@runtime_checkable
class KeyStore(Protocol):
    """What every key store does.

    ``generate`` makes a key pair in the store and returns the DNSKEY public key data and the
    ``.private`` material that refers to (or holds) the private key.  ``label`` names the new
    key in the store where the store has names (PKCS#11 CKA_LABEL).  ``sign_function`` gives
    ``data -> DNSSEC wire signature`` for a key of this store, raising :class:`CryptoError`
    when the key is not there or does not match ``key.public_key``.
    """

    name: str

    def describe(self) -> str:
        """One line for people: the store and where it is (never a PIN)."""
        ...

    def generate(
        self, alg: algorithms.Algorithm, bits: int | None = None, *, label: str | None = None
    ) -> tuple[bytes, PrivateMaterial]: ...

    def sign_function(self, key: Key) -> SignFunction: ...

    def destroy(self, material: PrivateMaterial) -> None:
        """Delete from the store a key pair :meth:`generate` made (one not used: its tag
        collided), so that no orphan stays there."""
        ...


class SoftwareStore:
    """Keys in files, made and used with the cryptography package."""

    name = "software"

    def describe(self) -> str:
        return "software (key material in .private files)"

    def generate(
        self, alg: algorithms.Algorithm, bits: int | None = None, *, label: str | None = None
    ) -> tuple[bytes, PrivateMaterial]:
        from dnsseal.crypto import software

        return software.generate(alg, bits)

    def sign_function(self, key: Key) -> SignFunction:
        from dnsseal.crypto import software

        return software.sign_function(key)

    def destroy(self, material: PrivateMaterial) -> None:
        """Nothing to delete: the key material is in the ``.private`` file, never written
        for a key not used."""


# scheme -> factory(location) or "module:attribute" of one, imported when first used.
_Factory = Callable[[str], KeyStore]
_REGISTRY: dict[str, _Factory | str] = {
    "software": lambda _location: SoftwareStore(),
    "pkcs11": "dnsseal.crypto.pkcs11:Pkcs11Store.from_uri",
}


def register(scheme: str, factory: _Factory | str) -> None:
    """Add a key store for locations ``<scheme>:...`` (a factory, or ``"module:attr"``)."""
    _REGISTRY[scheme] = factory


def _factory(scheme: str) -> _Factory:
    entry = _REGISTRY.get(scheme)
    if entry is None:
        known = ", ".join(sorted(_REGISTRY))
        raise InputError(f"unknown key store {scheme!r} (known: {known})")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        try:
            obj: object = importlib.import_module(module)
        except ImportError as e:
            raise KeyStoreError(f"the {scheme} key store is not available: {e}") from None
        for part in attr.split("."):
            obj = getattr(obj, part)
        entry = _REGISTRY[scheme] = obj  # type: ignore[assignment]
    assert callable(entry)
    return entry


def open_store(location: str | None) -> KeyStore:
    """The key store at ``location``: ``None``/``""``/``software`` for files, a ``pkcs11:``
    URI for a token.  Raises :class:`InputError` for an unknown scheme and
    :class:`KeyStoreError` when the store's extra is not installed."""
    if not location or location in ("software", "software:"):
        return _factory("software")("")
    scheme, sep, _ = location.partition(":")
    if not sep:
        raise InputError(f"key store {location!r}: expected 'software' or a pkcs11: URI")
    return _factory(scheme.lower())(location)


def reference(material: PrivateMaterial | None) -> str | None:
    """The store location a ``.private`` file refers to (BIND's ``Label:``), or None for key
    material held in the file itself."""
    if material is None:
        return None
    return material.label


def store_for(key: Key) -> KeyStore:
    """The store that holds ``key``'s private key."""
    return open_store(reference(key.private))


def sign_function(key: Key) -> SignFunction:
    """``data -> DNSSEC wire signature`` for ``key``, from whichever store holds it.

    Raises :class:`~dnsseal.errors.KeyNotFound` when the key has no private part and
    :class:`CryptoError` when the store cannot sign with it.
    """
    if key.private is None or key.private.label is None:
        from dnsseal.crypto import software

        return software.sign_function(key)  # the hot, common case: no registry look-up
    return store_for(key).sign_function(key)


def discard(material: PrivateMaterial) -> None:
    """Delete from its store a key pair made and then not used (a key whose tag collided):
    nothing to do for key material held in memory, ``destroy`` for a key in a token."""
    location = reference(material)
    if location is not None:
        open_store(location).destroy(material)


def generate(
    location: str | None,
    alg: algorithms.Algorithm,
    bits: int | None = None,
    *,
    label: str | None = None,
) -> tuple[bytes, PrivateMaterial]:
    """A new key pair in the store at ``location`` (None: software, material in the file):
    the DNSKEY public key and the ``.private`` material (or reference)."""
    return open_store(location).generate(alg, bits, label=label)
