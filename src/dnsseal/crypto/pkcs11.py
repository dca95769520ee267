"""The PKCS#11 key store: keys made and kept in a token (an HSM, or SoftHSMv2 for tests).

The binding is python-pkcs11 (the ``pkcs11`` extra), imported when a PKCS#11 key or URI is
first used.  Private keys never leave the token: we find them by the RFC 7512 URI's
``object=`` (CKA_LABEL) and ``id=`` (CKA_ID), and ask the token to sign.  ECDSA and RSA data
is hashed here and the digest signed by the token (CKM_ECDSA, CKM_RSA_PKCS with a DigestInfo),
which every token supports (SoftHSM 2.6 has no CKM_ECDSA_SHA256); EdDSA signs the data
(CKM_EDDSA).

Sessions: one per process and token, opened when a key is first used and logged in with the
URI's PIN.  python-pkcs11 initialises a module with C_Initialize(NULL), which promises it
no concurrent calls, so every call into a module goes through one lock per process (the
server signs zones in threads); processes sign in parallel.
A forked signing worker notices that it is not the process that opened them and initialises
the module again (PKCS#11 sessions do not survive a fork), so every worker has its own
session.

The module comes from the URI's ``module-path`` (or ``module-name``), else
``$DNSSEAL_PKCS11_MODULE``, else :func:`set_default_module`.  The PIN comes from
``pin-value`` or from the file ``pin-source`` names, which must not be readable by group or
others (like a private key); the PIN is never logged or put in an error message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dnsseal.crypto import wire
from dnsseal.crypto.keystore import KeyStoreError
from dnsseal.crypto.pkcs11uri import Pkcs11Uri
from dnsseal.crypto.software import SignFunction
from dnsseal.errors import CryptoError, KeyNotFound
from dnsseal.keys import algorithms
from dnsseal.keys.model import Key, PrivateMaterial

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)
T = TypeVar("T")

MODULE_ENV = "DNSSEAL_PKCS11_MODULE"
_DEFAULTS: dict[str, str] = {}  # "module": the configured default module
# Where module-name=NAME is looked for (NAME.so, libNAME.so), in order.
MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/local/lib/pkcs11",
    "/usr/lib/softhsm",
    "/usr/lib",
    "/usr/local/lib",
)

# DER of the curve OIDs (CKA_EC_PARAMS) and the key sizes, per algorithm.
_EC_PARAMS = {
    13: (b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", "sha256", 32),  # P-256
    14: (b"\x06\x05\x2b\x81\x04\x00\x22", "sha384", 48),  # P-384
}
_ED_PARAMS = {
    15: (b"\x06\x03\x2b\x65\x70", b"\x13\x0cedwards25519", 32),
    16: (b"\x06\x03\x2b\x65\x71", b"\x13\x0aedwards448", 57),
}
# PKCS#1 v1.5 DigestInfo prefixes (RFC 8017 9.2 note 1).
_DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def set_default_module(path: str | None) -> None:
    """The module for URIs without ``module-path`` (from configuration)."""
    if path:
        _DEFAULTS["module"] = path
    else:
        _DEFAULTS.pop("module", None)


def _binding() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise KeyStoreError(
            "PKCS#11 support needs the python-pkcs11 package: pip install 'dnsseal[pkcs11]'"
        ) from None
    return pkcs11


def module_path(uri: Pkcs11Uri) -> str:
    """The PKCS#11 module (shared library) for ``uri``."""
    if uri.module_path:
        return uri.module_path
    if uri.module_name:
        name = uri.module_name
        for d in MODULE_DIRS:
            for candidate in (f"{d}/{name}.so", f"{d}/lib{name}.so"):
                if os.path.exists(candidate):
                    return candidate
        raise KeyStoreError(f"PKCS#11 module-name={name}: not found in {', '.join(MODULE_DIRS)}")
    env = os.environ.get(MODULE_ENV)
    if env:
        return env
    if "module" in _DEFAULTS:
        return _DEFAULTS["module"]
    raise KeyStoreError(
        f"{uri}: which PKCS#11 module? add ?module-path=/path/to/module.so to the URI "
        f"or set {MODULE_ENV}"
    )


def read_pin(uri: Pkcs11Uri) -> str | None:
    """The PIN ``uri`` gives (``pin-value``, or the first line of the ``pin-source`` file), or
    None.  Raises :class:`KeyStoreError` when the file cannot be read or is readable by group
    or others."""
    if uri.pin_value is not None:
        return uri.pin_value
    if uri.pin_source is None:
        return None
    source = uri.pin_source
    if source.startswith("file://"):
        source = source[len("file://") :]
    elif source.startswith("file:"):
        source = source[len("file:") :]
    path = Path(source)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise KeyStoreError(f"{path}: PIN file is not a regular file")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(
                f"{path}: PIN file is accessible to group or others "
                f"(mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyStoreError(f"{path}: PIN file does not exist") from None
    except UnicodeDecodeError:
        raise KeyStoreError(f"{path}: PIN file is not text") from None
    except OSError as e:
        raise KeyStoreError(f"{path}: cannot read PIN file: {e.strerror}") from None
    lines = text.splitlines()
    pin = lines[0] if lines else ""
    if not pin:
        raise KeyStoreError(f"{path}: PIN file is empty")
    return pin


# ------------------------------------------------------------------- sessions (per process)


@dataclass(slots=True)
class _Module:
    pid: int
    lib: Any
    sessions: dict[int, Any]  # slot id -> logged-in session


_MODULES: dict[str, _Module] = {}
_INHERITED: list[Any] = []  # a forked worker's copies of its parent's sessions, never used
# Every call into a PKCS#11 module, one thread at a time (kept in a dict so that a forked
# child can replace its copy, which another thread of the parent may have held).
_SETUP = {"lock": threading.RLock()}


def _new_setup_lock() -> None:
    _SETUP["lock"] = threading.RLock()


os.register_at_fork(after_in_child=_new_setup_lock)


def _module(path: str) -> _Module:
    p11 = _binding()
    entry = _MODULES.get(path)
    if entry is not None and entry.pid == os.getpid():
        return entry
    if entry is not None:
        # A forked worker: the parent's sessions are not ours (PKCS#11 2.40 6.7.7).  Start
        # the module again in this process and open our own.
        log.debug("PKCS#11: new process %d, initialising %s again", os.getpid(), path)
        # Keep the parent's session objects alive: dropping them would close their handles
        # in the module we are about to start again.
        _INHERITED.extend(entry.sessions.values())
        entry.sessions.clear()
        try:
            entry.lib.reinitialize()
        except p11.PKCS11Error as e:
            raise KeyStoreError(f"{path}: cannot initialise PKCS#11 module: {_why(e)}") from None
        entry.pid = os.getpid()
        return entry
    if not os.path.exists(path):
        raise KeyStoreError(f"{path}: PKCS#11 module not found")
    try:
        lib = p11.lib(path)
    except p11.PKCS11Error as e:
        raise KeyStoreError(f"{path}: cannot load PKCS#11 module: {_why(e)}") from None
    entry = _MODULES[path] = _Module(os.getpid(), lib, {})
    return entry


class _Transient(KeyStoreError):
    """A failure another try may not have: SoftHSM's processes race on its token files
    (two signing workers starting together can see no token, or fail to log in)."""


# Pauses between tries of opening a session and finding a key (plus jitter).
RETRY_DELAYS = (0.05, 0.15, 0.4, 1.0)


def _reset(path: str) -> None:
    with _SETUP["lock"]:
        entry = _MODULES.get(path)
        if entry is None:
            return
        entry.sessions.clear()
        entry.pid = os.getpid()
        try:
            entry.lib.reinitialize()
        except Exception as e:
            log.debug("PKCS#11: re-initialising %s failed: %s", path, _why(e))


def _retrying(uri: Pkcs11Uri, attempt: Callable[[], T]) -> T:
    """``attempt()``, tried again (after re-initialising the module) when the token is not
    found, the key is not seen or the token reports a general error."""
    p11 = _binding()
    for delay in (*RETRY_DELAYS, None):
        try:
            # One setup at a time: finding objects in a shared session is one operation,
            # and a retry re-initialises the module under every other thread's feet.
            with _SETUP["lock"]:
                return attempt()
        except (_Transient, KeyNotFound, p11.GeneralError, p11.DeviceError) as e:
            if delay is None:
                if isinstance(e, KeyStoreError | KeyNotFound):
                    raise
                raise KeyStoreError(f"{uri.without_pin()}: {_why(e)}") from None
            log.debug("PKCS#11: %s; trying again", _why(e))
            time.sleep(delay + random.uniform(0, delay))
            _reset(module_path(uri))
    raise AssertionError("unreachable")  # pragma: no cover


def _why(e: Exception) -> str:
    text = str(e)
    return type(e).__name__ + (f": {text}" if text else "")


def _token_matches(token: Any, slot: Any, uri: Pkcs11Uri) -> bool:
    checks = (
        (uri.token, token.label),
        (uri.manufacturer, token.manufacturer_id),
        (uri.model, token.model),
        (uri.slot_description, slot.slot_description),
        (uri.slot_manufacturer, slot.manufacturer_id),
    )
    if any(want is not None and want != have.strip() for want, have in checks):
        return False
    if uri.serial is not None:
        serial = token.serial
        serial = serial.decode("ascii", "replace") if isinstance(serial, bytes) else str(serial)
        if uri.serial != serial.strip():
            return False
    return uri.slot_id is None or uri.slot_id == slot.slot_id


def _find_token(lib: Any, uri: Pkcs11Uri) -> tuple[Any, Any]:
    p11 = _binding()
    found = []
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except (p11.TokenNotPresent, p11.TokenNotRecognised):
            continue
        if _token_matches(token, slot, uri):
            found.append((slot, token))
    what = uri.without_pin().replace(object=None, id=None, type=None, module_path=None)
    if not found:
        raise _Transient(f"no PKCS#11 token matches {what} in {lib.so}")
    if len(found) > 1:
        labels = ", ".join(t.label for _, t in found)
        raise KeyStoreError(f"{len(found)} tokens match {what} ({labels}): say token=...")
    return found[0]


def session(uri: Pkcs11Uri, *, rw: bool = False) -> Any:
    """This process's logged-in session on the token ``uri`` names.  ``rw`` opens a
    read-write one (to make keys); it is not cached."""
    with _SETUP["lock"]:  # the server signs zones in threads: one loads the module, one logs in
        return _session(uri, rw)


def _session(uri: Pkcs11Uri, rw: bool) -> Any:
    p11 = _binding()
    path = module_path(uri)
    mod = _module(path)
    slot, token = _find_token(mod.lib, uri)
    if not rw and slot.slot_id in mod.sessions:
        return mod.sessions[slot.slot_id]
    pin = read_pin(uri)
    try:
        try:
            s = token.open(rw=rw, user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            s = token.open(rw=rw)  # login is per application and token: already done
    except p11.PinIncorrect:
        raise KeyStoreError(f"token {token.label!r}: PIN incorrect") from None
    except p11.PinLenRange:
        raise KeyStoreError(f"token {token.label!r}: PIN has the wrong length") from None
    except (p11.GeneralError, p11.DeviceError) as e:
        raise _Transient(f"token {token.label!r}: cannot log in: {_why(e)}") from None
    except p11.PKCS11Error as e:
        raise KeyStoreError(f"token {token.label!r}: cannot log in: {_why(e)}") from None
    if not rw:
        mod.sessions[slot.slot_id] = s
    return s


# ------------------------------------------------------------------------- key objects


def _object_filter(uri: Pkcs11Uri, object_class: Any) -> dict[Any, Any]:
    p11 = _binding()
    attrs: dict[Any, Any] = {p11.Attribute.CLASS: object_class}
    if uri.object is not None:
        attrs[p11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[p11.Attribute.ID] = uri.id
    return attrs


def _attr(obj: Any, attribute: Any) -> Any:
    p11 = _binding()
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, KeyError):
        return None


def find_private_key(sess: Any, uri: Pkcs11Uri) -> Any:
    """The one private key object ``uri`` selects (by ``object=`` and/or ``id=``)."""
    p11 = _binding()
    if not uri.selects_object:
        raise KeyStoreError(f"{uri.redacted()}: say which key (object=LABEL or id=%..)")
    found = list(sess.get_objects(_object_filter(uri, p11.ObjectClass.PRIVATE_KEY)))
    if not found:
        raise KeyNotFound(f"no private key matches {uri.without_pin()} in the token")
    if len(found) > 1:
        raise KeyStoreError(
            f"{len(found)} private keys match {uri.without_pin()}: add id=... to the URI"
        )
    return found[0]


def _public_objects(sess: Any, priv: Any) -> Iterator[Any]:
    """The public key objects paired with ``priv`` (same CKA_ID, else same label)."""
    p11 = _binding()
    key_id = _attr(priv, p11.Attribute.ID)
    label = _attr(priv, p11.Attribute.LABEL)
    attrs: dict[Any, Any] = {p11.Attribute.CLASS: p11.ObjectClass.PUBLIC_KEY}
    if key_id:
        attrs[p11.Attribute.ID] = key_id
    elif label:
        attrs[p11.Attribute.LABEL] = label
    else:
        return
    yield from sess.get_objects(attrs)


def _unwrap_octets(data: bytes, size: int) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING by the standard; some tokens give it bare."""
    if len(data) == size:
        return data
    if len(data) >= 2 and data[0] == 0x04:
        n, off = data[1], 2
        if n & 0x80:
            width = n & 0x7F
            n, off = int.from_bytes(data[2 : 2 + width], "big"), 2 + width
        if off + n == len(data):
            return data[off:]
    raise CryptoError(f"unexpected CKA_EC_POINT encoding ({len(data)} octets)")


def _public_from(obj: Any, alg: algorithms.Algorithm) -> bytes | None:
    """DNSKEY public key data from a key object's attributes, or None if it has none."""
    p11 = _binding()
    if alg.family == "rsa":
        n = _attr(obj, p11.Attribute.MODULUS)
        e = _attr(obj, p11.Attribute.PUBLIC_EXPONENT)
        if not n or not e:
            return None
        return wire.rsa_public_wire(int.from_bytes(e, "big"), int.from_bytes(n, "big"))
    point = _attr(obj, p11.Attribute.EC_POINT)
    if not point:
        return None
    if alg.family == "ecdsa":
        raw = _unwrap_octets(point, 1 + 2 * _EC_PARAMS[alg.number][2])
        if raw[0] != 0x04:
            raise CryptoError("compressed EC points are not supported")
        return bytes(raw[1:])
    return bytes(_unwrap_octets(point, _ED_PARAMS[alg.number][2]))


def _check_type(priv: Any, alg: algorithms.Algorithm, uri: Pkcs11Uri) -> None:
    p11 = _binding()
    key_type = _attr(priv, p11.Attribute.KEY_TYPE)
    want = {"rsa": p11.KeyType.RSA, "ecdsa": p11.KeyType.EC, "eddsa": p11.KeyType.EC_EDWARDS}
    if key_type is not None and key_type != want[alg.family]:
        raise CryptoError(
            f"{uri.without_pin()}: the token's key is {getattr(key_type, 'name', key_type)}, "
            f"not a key for {alg.mnemonic}"
        )
    params = _attr(priv, p11.Attribute.EC_PARAMS)
    if params is None or alg.family == "rsa":
        return
    ok = (
        params == _EC_PARAMS[alg.number][0]
        if alg.family == "ecdsa"
        else params in _ED_PARAMS[alg.number][:2]
    )
    if not ok:
        raise CryptoError(f"{uri.without_pin()}: the token's key is not on {alg.mnemonic}'s curve")


def public_key(sess: Any, priv: Any, alg: algorithms.Algorithm, uri: Pkcs11Uri) -> bytes:
    """The DNSKEY public key data of the token's key pair."""
    _check_type(priv, alg, uri)
    for obj in (*_public_objects(sess, priv), priv):
        data = _public_from(obj, alg)
        if data is not None:
            return data
    raise KeyStoreError(
        f"{uri.without_pin()}: the token has no public key for this private key "
        "(import the public key with the same id)"
    )


def _raw_signer(priv: Any, alg: algorithms.Algorithm) -> SignFunction:
    p11 = _binding()
    sign = priv.sign
    if alg.family == "ecdsa":
        hash_name = _EC_PARAMS[alg.number][1]
        ecdsa = p11.Mechanism.ECDSA
        new = getattr(hashlib, hash_name)

        def ecdsa_sign(data: bytes) -> bytes:
            out: bytes = sign(new(data).digest(), mechanism=ecdsa)
            return out

        return ecdsa_sign
    if alg.family == "rsa":
        prefix = _DIGEST_INFO.get(alg.hash_name)
        if prefix is None:
            raise CryptoError(f"{alg.mnemonic}: not supported in PKCS#11 key stores")
        rsa = p11.Mechanism.RSA_PKCS
        new = getattr(hashlib, alg.hash_name)

        def rsa_sign(data: bytes) -> bytes:
            out: bytes = sign(prefix + new(data).digest(), mechanism=rsa)
            return out

        return rsa_sign
    eddsa = p11.Mechanism.EDDSA

    def eddsa_sign(data: bytes) -> bytes:
        out: bytes = sign(data, mechanism=eddsa)
        return out

    return eddsa_sign


def _guarded(function: SignFunction, what: str) -> SignFunction:
    p11 = _binding()
    setup = _SETUP

    def sign(data: bytes) -> bytes:
        try:
            # python-pkcs11 initialises modules without locking arguments (C_Initialize(NULL)),
            # which tells the module it will not be called from two threads at once.
            with setup["lock"]:
                return function(data)
        except p11.PKCS11Error as e:
            raise CryptoError(f"{what}: the token failed to sign: {_why(e)}") from None

    return sign


# ---------------------------------------------------------------------------- the store


def _generate_template(alg: algorithms.Algorithm, bits: int | None) -> dict[str, Any]:
    p11 = _binding()
    attr = p11.Attribute
    if alg.family == "rsa":
        size = bits or alg.default_bits
        if not alg.min_bits <= size <= alg.max_bits:
            raise CryptoError(f"{alg.mnemonic} key size must be {alg.min_bits}..{alg.max_bits}")
        return {"key_type": p11.KeyType.RSA, "key_length": size, "public_template": {}}
    if bits is not None and bits != alg.default_bits:
        raise CryptoError(f"{alg.mnemonic} keys have a fixed size ({alg.default_bits} bits)")
    if alg.family == "ecdsa":
        params = _EC_PARAMS[alg.number][0]
        return {"key_type": p11.KeyType.EC, "public_template": {attr.EC_PARAMS: params}}
    params = _ED_PARAMS[alg.number][0]
    return {"key_type": p11.KeyType.EC_EDWARDS, "public_template": {attr.EC_PARAMS: params}}


class Pkcs11Store:
    """Keys in the token an RFC 7512 URI names (see the module docstring)."""

    name = "pkcs11"

    def __init__(self, uri: Pkcs11Uri) -> None:
        self.uri = uri

    @classmethod
    def from_uri(cls, text: str) -> Pkcs11Store:
        return cls(Pkcs11Uri.parse(text))

    def describe(self) -> str:
        return f"pkcs11 {self.uri.redacted()}"

    def module(self) -> str:
        return module_path(self.uri)

    def session(self, *, rw: bool = False) -> Any:
        """A logged-in session on the store's token (tried again on transient failures)."""
        return _retrying(self.uri, lambda: session(self.uri, rw=rw))

    def link(self, alg: algorithms.Algorithm) -> bytes:
        """The DNSKEY public key of the existing key pair the URI selects (for
        ``keyfromlabel``); checks that the key is of ``alg``'s type and curve."""
        p11 = _binding()

        def attempt() -> bytes:
            sess = self.session()
            priv = find_private_key(sess, self.uri)
            return public_key(sess, priv, alg, self.uri)

        try:
            return _retrying(self.uri, attempt)
        except p11.PKCS11Error as e:
            raise KeyStoreError(f"{self.uri.without_pin()}: {_why(e)}") from None

    def generate(
        self, alg: algorithms.Algorithm, bits: int | None = None, *, label: str | None = None
    ) -> tuple[bytes, PrivateMaterial]:
        """A new key pair in the token, private key not extractable; returns the public key
        and a ``.private`` reference to it (the store's URI with ``object=`` and ``id=``)."""
        p11 = _binding()
        attr = p11.Attribute
        spec = _generate_template(alg, bits)
        key_id = os.urandom(16)
        name = label or f"dnsseal-{key_id.hex()[:16]}"
        sess = self.session(rw=True)
        with _SETUP["lock"]:
            try:
                _pub, priv = sess.generate_keypair(
                    spec["key_type"],
                    spec.get("key_length"),
                    id=key_id,
                    label=name,
                    store=True,
                    public_template={**spec["public_template"], attr.VERIFY: True},
                    private_template={
                        attr.SIGN: True,
                        attr.SENSITIVE: True,
                        attr.EXTRACTABLE: False,
                        attr.PRIVATE: True,
                    },
                )
                public = public_key(sess, priv, alg, self.uri)
            except p11.PKCS11Error as e:
                raise KeyStoreError(
                    f"{self.describe()}: cannot generate a key: {_why(e)}"
                ) from None
            finally:
                sess.close()
        ref = self.uri.replace(object=name, id=key_id, type=None)
        log.info("PKCS#11: generated %s key %s", alg.mnemonic, ref.without_pin())
        return public, PrivateMaterial.reference(ref.to_text())

    def sign_function(self, key: Key) -> SignFunction:
        """``data -> signature`` by the token's key that ``key``'s ``Label:`` names."""
        p11 = _binding()
        label = key.private.label if key.private is not None else None
        uri = Pkcs11Uri.parse(label) if label else self.uri
        alg = algorithms.get(key.algorithm)

        def attempt() -> tuple[Any, bytes]:
            sess = session(uri)
            priv = find_private_key(sess, uri)
            return priv, public_key(sess, priv, alg, uri)

        try:
            priv, public = _retrying(uri, attempt)
        except p11.PKCS11Error as e:
            raise KeyStoreError(f"{key.basename}: {_why(e)}") from None
        if public != key.public_key:
            raise CryptoError(
                f"{key.basename}: the token's key {uri.without_pin()} does not match the "
                "public key in .key"
            )
        return _guarded(_raw_signer(priv, alg), key.basename)

    def session_signer(self, alg: algorithms.Algorithm) -> tuple[SignFunction, bytes, Any]:
        """A throw-away key pair in this process's session (not stored in the token), for
        ``keystore test`` / ``bench``: (sign, DNSKEY public key, private key object to
        destroy)."""
        p11 = _binding()
        attr = p11.Attribute
        spec = _generate_template(alg, None)
        sess = self.session()
        try:
            with _SETUP["lock"]:
                _pub, priv = sess.generate_keypair(
                    spec["key_type"],
                    spec.get("key_length"),
                    store=False,
                    public_template={**spec["public_template"], attr.VERIFY: True},
                    private_template={
                        attr.SIGN: True,
                        attr.SENSITIVE: True,
                        attr.EXTRACTABLE: False,
                    },
                )
                public = _public_from(_pub, alg)
        except p11.PKCS11Error as e:
            raise KeyStoreError(f"{alg.mnemonic}: cannot generate a session key: {_why(e)}") from e
        if public is None:
            raise KeyStoreError(f"{alg.mnemonic}: the token gave no public key")
        return _guarded(_raw_signer(priv, alg), alg.mnemonic), public, (_pub, priv)


def list_keys(sess: Any) -> list[tuple[str, str, str]]:
    """(id as %XX, label, key type) of every private key in the token, for people."""
    p11 = _binding()
    rows = []
    with _SETUP["lock"]:
        for obj in sess.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY}):
            key_id = _attr(obj, p11.Attribute.ID) or b""
            label = _attr(obj, p11.Attribute.LABEL) or ""
            key_type = _attr(obj, p11.Attribute.KEY_TYPE)
            rows.append(
                (
                    "".join(f"%{b:02X}" for b in key_id) or "-",
                    label or "-",
                    getattr(key_type, "name", str(key_type)),
                )
            )
    return sorted(rows)
