"""A key directory in BIND's layout: ``K<zone>+<alg>+<tag>.key/.private/.state``.

Reading never guesses: a malformed file is an error naming the file and line.  Writing is
atomic, private files are mode 0600, and a new key never replaces an existing file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
from pathlib import Path

import dns.name

from dnsseal.errors import KeyExists, KeyNotFound, StorageError
from dnsseal.keys import bindfmt
from dnsseal.keys.model import Key, key_tag, zone_file_text
from dnsseal.storage import atomic

log = logging.getLogger(__name__)

_BASENAME_RE = re.compile(r"^K(?P<zone>.+)\+(?P<alg>\d{3})\+(?P<tag>\d{5})$")

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def split_keyfile_name(name: str) -> str:
    """The basename ``Kzone+alg+tag`` of a key file path given with or without suffix."""
    base = os.path.basename(name)
    for suffix in (".key", ".private", ".state"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyNotFound(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise StorageError(str(path), f"not a text file ({e.reason})") from None
    except OSError as e:
        raise StorageError(str(path), f"cannot read: {e.strerror}") from None


def load_key(path: str | Path, *, private: bool = True) -> Key:
    """Load one key from any of its file names (``.key``, ``.private``, ``.state`` or the
    bare basename).  The ``.private`` and ``.state`` files are read when present."""
    p = Path(path)
    base = p.parent / split_keyfile_name(p.name)
    keyfile = base.with_name(base.name + ".key")
    pub = bindfmt.parse_key(_read(keyfile), str(keyfile))
    priv = None
    privfile = base.with_name(base.name + ".private")
    if private and privfile.exists():
        _check_private_mode(privfile)
        priv = bindfmt.parse_private(_read(privfile), str(privfile))
    statefile = base.with_name(base.name + ".state")
    state = None
    if statefile.exists():
        state = bindfmt.parse_state(_read(statefile), str(statefile))
    key = bindfmt.assemble(pub, priv, state, str(keyfile))
    m = _BASENAME_RE.match(base.name)
    if m and (int(m.group("alg")), int(m.group("tag"))) != (key.algorithm, key.tag):
        log.warning(
            "%s: file name says %s+%s but the key is algorithm %d tag %d",
            keyfile,
            m.group("alg"),
            m.group("tag"),
            key.algorithm,
            key.tag,
        )
    return key


def _check_private_mode(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s: private key file is accessible to group or others (mode %o); it should be 0600",
            path,
            stat.S_IMODE(mode),
        )


class KeyDirectory:
    """The keys of one directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def check(self) -> None:
        if not self.path.is_dir():
            raise StorageError(str(self.path), "key directory does not exist")

    def file(self, key: Key, suffix: str) -> Path:
        return self.path / f"{key.basename}{suffix}"

    def keys(self, zone: dns.name.Name | None = None) -> list[Key]:
        """Every key in the directory (for ``zone`` only, when given), sorted by basename."""
        self.check()
        pattern = f"K{zone_file_text(zone)}+*.key" if zone is not None else "K*.key"
        out = []
        for f in sorted(self.path.glob(pattern)):
            k = load_key(f)
            if zone is None or k.zone == zone:
                out.append(k)
        return out

    def tag_in_use(self, zone: dns.name.Name, algorithm: int, tag: int) -> bool:
        """Would a key with ``tag`` collide with one already here, counting the tags the
        existing keys would have once revoked (as dnssec-keygen does)?"""
        for k in self.keys(zone):
            if k.algorithm != algorithm:
                continue
            revoked_tag = key_tag(k.flags | 0x80, k.protocol, k.algorithm, k.public_key)
            if tag in (k.tag, revoked_tag):
                return True
        return False

    def create(self, key: Key) -> None:
        """Write a new key's files.  Nothing is overwritten: if any of its files exists the
        call raises :class:`KeyExists` and leaves the directory as it was."""
        self.check()
        files = [(".key", bindfmt.format_key(key), PUBLIC_MODE)]
        if key.private is not None:
            files.append((".private", bindfmt.format_private(key), PRIVATE_MODE))
        if key.state is not None:
            files.append((".state", bindfmt.format_state(key), PUBLIC_MODE))
        for suffix, _, _ in files:
            if self.file(key, suffix).exists():
                raise KeyExists(f"{self.file(key, suffix)}: already exists; refusing to overwrite")
        done: list[Path] = []
        try:
            # The private file first: a .key without its .private is a broken key.
            for suffix, text, mode in sorted(files, key=lambda f: f[0] != ".private"):
                target = self.file(key, suffix)
                atomic.create(target, text.encode(), mode)
                done.append(target)
        except BaseException:
            for p in done:
                with contextlib.suppress(OSError):
                    p.unlink()
            raise

    def save(self, key: Key, *, write_state: bool | None = None) -> list[Path]:
        """Rewrite an existing key's metadata (timings, state), each file atomically.

        The public key and private material are taken from ``key`` as loaded; the
        ``.state`` file is written when it exists already or ``write_state`` is true.
        Returns the files written.
        """
        keyfile = self.file(key, ".key")
        if not keyfile.exists():
            raise KeyNotFound(f"{keyfile}: no such key")
        written = []
        atomic.replace(keyfile, bindfmt.format_key(key).encode())
        written.append(keyfile)
        if key.private is not None:
            pf = self.file(key, ".private")
            atomic.replace(pf, bindfmt.format_private(key).encode(), PRIVATE_MODE)
            written.append(pf)
        sf = self.file(key, ".state")
        if write_state or (write_state is None and sf.exists()):
            atomic.replace(sf, bindfmt.format_state(key).encode())
            written.append(sf)
        return written


__all__ = ["KeyDirectory", "KeyExists", "load_key", "split_keyfile_name"]
