"""PKCS#11 modules and sessions, per process: loading a module, finding the token a URI names,
reading the PIN, logging in, and trying again when SoftHSM's processes race.

python-pkcs11 initialises a module with C_Initialize(NULL), which promises it no concurrent
calls, so every call into a module goes through :data:`LOCK` (one per process: the server
signs zones in threads); processes sign in parallel.  A forked signing worker notices that
it is not the process that opened the sessions and initialises the module again (PKCS#11
sessions do not survive a fork), so every worker has its own session.

The module comes from the URI's ``module-path`` (or ``module-name``), else
``$DNSSEAL_PKCS11_MODULE``, else :func:`set_default_module` (the server's
``pkcs11-module``).  The PIN comes from ``pin-value`` or from the file ``pin-source`` names,
which must not be readable by group or others (like a private key); the PIN is never logged
or put in an error message.
"""

from __future__ import annotations

import logging
import os
import random
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dnsseal.crypto.keystore import KeyStoreError
from dnsseal.crypto.pkcs11uri import Pkcs11Uri
from dnsseal.errors import KeyNotFound

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


def set_default_module(path: str | None) -> None:
    """The module for URIs without ``module-path`` (from configuration)."""
    if path:
        _DEFAULTS["module"] = path
    else:
        _DEFAULTS.pop("module", None)


def binding() -> Any:
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
LOCK = {"lock": threading.RLock()}


def _new_setup_lock() -> None:
    LOCK["lock"] = threading.RLock()


os.register_at_fork(after_in_child=_new_setup_lock)


def _module(path: str) -> _Module:
    p11 = binding()
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
            raise KeyStoreError(f"{path}: cannot initialise PKCS#11 module: {why(e)}") from None
        entry.pid = os.getpid()
        return entry
    if not os.path.exists(path):
        raise KeyStoreError(f"{path}: PKCS#11 module not found")
    try:
        lib = p11.lib(path)
    except p11.PKCS11Error as e:
        raise KeyStoreError(f"{path}: cannot load PKCS#11 module: {why(e)}") from None
    entry = _MODULES[path] = _Module(os.getpid(), lib, {})
    return entry


class Transient(KeyStoreError):
    """A failure another try may not have: SoftHSM's processes race on its token files
    (two signing workers starting together can see no token, or fail to log in)."""


# Pauses between tries of opening a session and finding a key (plus jitter).
RETRY_DELAYS = (0.05, 0.15, 0.4, 1.0)


def _reset(path: str) -> None:
    with LOCK["lock"]:
        entry = _MODULES.get(path)
        if entry is None:
            return
        entry.sessions.clear()
        entry.pid = os.getpid()
        try:
            entry.lib.reinitialize()
        except Exception as e:
            log.debug("PKCS#11: re-initialising %s failed: %s", path, why(e))


def retrying(uri: Pkcs11Uri, attempt: Callable[[], T]) -> T:
    """``attempt()``, tried again (after re-initialising the module) when the token is not
    found, the key is not seen or the token reports a general error."""
    p11 = binding()
    for delay in (*RETRY_DELAYS, None):
        try:
            # One setup at a time: finding objects in a shared session is one operation,
            # and a retry re-initialises the module under every other thread's feet.
            with LOCK["lock"]:
                return attempt()
        except (Transient, KeyNotFound, p11.GeneralError, p11.DeviceError) as e:
            if delay is None:
                if isinstance(e, KeyStoreError | KeyNotFound):
                    raise
                raise KeyStoreError(f"{uri.without_pin()}: {why(e)}") from None
            log.debug("PKCS#11: %s; trying again", why(e))
            time.sleep(delay + random.uniform(0, delay))
            _reset(module_path(uri))
    raise AssertionError("unreachable")  # pragma: no cover


def why(e: Exception) -> str:
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
    p11 = binding()
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
        raise Transient(f"no PKCS#11 token matches {what} in {lib.so}")
    if len(found) > 1:
        labels = ", ".join(t.label for _, t in found)
        raise KeyStoreError(f"{len(found)} tokens match {what} ({labels}): say token=...")
    return found[0]


def session(uri: Pkcs11Uri, *, rw: bool = False) -> Any:
    """This process's logged-in session on the token ``uri`` names.  ``rw`` opens a
    read-write one (to make keys); it is not cached."""
    with LOCK["lock"]:  # the server signs zones in threads: one loads the module, one logs in
        return _session(uri, rw)


def _session(uri: Pkcs11Uri, rw: bool) -> Any:
    p11 = binding()
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
        raise Transient(f"token {token.label!r}: cannot log in: {why(e)}") from None
    except p11.PKCS11Error as e:
        raise KeyStoreError(f"token {token.label!r}: cannot log in: {why(e)}") from None
    if not rw:
        mod.sessions[slot.slot_id] = s
    return s
