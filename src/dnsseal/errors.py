"""The one exception tree of dnsseal.

Every error dnsseal raises on purpose derives from :class:`DnssealError`::

    DnssealError
    ├── InputError                  the user gave us something we cannot use
    │   ├── FileFormatError         a file is malformed (carries path and line)
    │   ├── OptionError             a command-line or config option is wrong (carries its name)
    │   └── UnsupportedAlgorithm    a DNSSEC algorithm we do not (or will not) handle
    ├── KeyError_                   key directory problems
    │   ├── KeyExists               refusing to overwrite an existing key file
    │   └── KeyNotFound             no such key / private part missing
    ├── StorageError                a file could not be read or written (carries path)
    └── CryptoError                 signing or key generation failed

Verdicts about DNS data (a bad signature, a broken chain) are *not* exceptions: they are
findings returned as data (see :mod:`dnsseal.findings`).  Exceptions are for broken input
files and broken environments.
"""

from __future__ import annotations


class DnssealError(Exception):
    """Base of every deliberate dnsseal error."""


class InputError(DnssealError):
    """The user gave us something we cannot use."""


class FileFormatError(InputError):
    """A file is malformed.  ``path`` and ``line`` (1-based, or None) say where."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class OptionError(InputError):
    """A command-line or configuration option is wrong.  ``option`` names it (``-a`` or
    ``policy.default.dnskey-ttl``)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")


class UnsupportedAlgorithm(InputError):
    """A DNSSEC algorithm we do not handle, or refuse to use for new keys."""


class KeyError_(DnssealError):  # noqa: N801 - avoid shadowing the builtin KeyError
    """Problems with keys in a key directory."""


class KeyExists(KeyError_):
    """A key file is already there; dnsseal never overwrites key material."""


class KeyNotFound(KeyError_):
    """A key, or its private part, is not where it should be."""


class StorageError(DnssealError):
    """A file could not be read or written."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class CryptoError(DnssealError):
    """Signing or key generation failed."""
