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
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import dns.name

from dnsseal.crypto import keystore
from dnsseal.errors import CryptoError, KeyExists, KeyNotFound, StorageError
from dnsseal.keys import algorithms, bindfmt
from dnsseal.keys.model import Key, PrivateMaterial, zone_file_text
from dnsseal.policy.model import KeySpec
from dnsseal.storage import atomic

log = logging.getLogger(__name__)

_BASENAME_RE = re.compile(r"^K(?P<zone>.+)\+(?P<alg>\d{3})\+(?P<tag>\d{5})$")

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def generate(spec: KeySpec) -> tuple[bytes, PrivateMaterial]:
    """The key manager's key generator (``keymgr.engine.KeyGen``): a new key pair for the
    policy key line ``spec``, in its key-store (the key files when it names none).  Here,
    not in the pure key manager: making a key in an HSM is I/O."""
    return keystore.generate(spec.key_store, algorithms.get(spec.algorithm), spec.bits)


class PlannedKey(Protocol):
    """What :meth:`KeyDirectory.apply` reads of one key of a plan
    (``keymgr.plan.KeyReport``: storage sits below the key manager)."""

    @property
    def key(self) -> Key: ...
    @property
    def created(self) -> bool: ...
    @property
    def purge(self) -> bool: ...


class PlanKeys(Protocol):
    """What :meth:`KeyDirectory.apply` reads of a plan (``keymgr.plan.Plan``)."""

    @property
    def keys(self) -> Sequence[PlannedKey]: ...

    @property
    def discarded(self) -> Sequence[PrivateMaterial]: ...


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
    return _load_key(path, private, None)


def _load_key(path: str | Path, private: bool, stamp: _Stamp | None) -> Key:
    """:func:`load_key`; ``stamp``: the key's files as :func:`_stamp` just saw them (which
    exist, the private file's mode), so as not to ask again."""
    p = Path(path)
    base = p.parent / split_keyfile_name(p.name)
    keyfile = base.with_name(base.name + ".key")
    pub = bindfmt.parse_key(_read(keyfile), str(keyfile))
    privfile = base.with_name(base.name + ".private")
    statefile = base.with_name(base.name + ".state")
    if stamp:  # (what _stamp saw: no need to ask the file system again)
        priv_st, has_state = stamp[1], stamp[2] is not None
        has_private, private_mode = priv_st is not None, priv_st[2] if priv_st else None
    else:
        has_private, has_state, private_mode = privfile.exists(), statefile.exists(), None
    priv = None
    if private and has_private:
        _check_private_mode(privfile, private_mode)
        priv = bindfmt.parse_private(_read(privfile), str(privfile))
    state = None
    if has_state:
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


_Stamp = tuple[tuple[int, int, int, int, int] | None, ...]
# Each key file's path (a str: a Path costs its parts as well) -> its files' stamp, packed
# (:func:`_packed`: a tuple of 15 ints costs three times as much), and the Key as parsed
# (a step that changes nothing hands the zone this same object).  One entry per key read.
_LOADED: dict[str, tuple[bytes, Key]] = {}
_LOADED_MAX = 65536  # keys remembered; then started again
RACY_NS = 2_000_000_000  # a key file changed this recently is read again each time


def _stamp(keyfile: Path) -> _Stamp:
    """What tells a key's files changed: each file's inode, size, mode, mtime and ctime
    (a rename over it, a write or a chmod changes them; no tool can set the ctime back)."""
    out: list[tuple[int, int, int, int, int] | None] = []
    for suffix in (".key", ".private", ".state"):
        try:
            st = os.stat(keyfile.with_suffix(suffix))
        except FileNotFoundError:
            out.append(None)
            continue
        except OSError:
            return ()  # not cacheable: load_key says why
        out.append((st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


_PRESENT = struct.Struct("<BQQIqq")  # 1, inode, size, mode, mtime, ctime
_ABSENT = b"\0"


def _packed(stamp: _Stamp) -> bytes:
    """``stamp`` as bytes that compare equal exactly when the stamps do."""
    return b"".join(_ABSENT if t is None else _PRESENT.pack(1, *t) for t in stamp)


def _load_known(keyfile: Path) -> Key:
    """:func:`load_key` of ``keyfile`` (a ``.key``), parsed again only when one of the
    key's files changed since the last call: a zone's keys are read at each restore and
    each maintenance step, thousands of zones at a start."""
    stamp = _stamp(keyfile)
    name = str(keyfile)
    known = _LOADED.get(name)
    packed = _packed(stamp) if stamp else b""
    if packed and known is not None and known[0] == packed:
        return known[1]
    key = _load_key(keyfile, True, stamp)
    # Kept under the stamp taken before the read (a change during the read makes the next
    # stamp differ) and only if the files last changed well before now: file times tick
    # at the kernel's coarse clock, so a rewrite of the same size within one tick of the
    # last could otherwise look unchanged (git's "racy" entries, same remedy).
    settled = time.time_ns() - RACY_NS
    if stamp and all(t is None or t[4] < settled for t in stamp):
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[name] = (packed, key)
    return key


def _check_private_mode(path: Path, mode: int | None = None) -> None:
    if mode is None:
        mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s: private key file is accessible to group or others (mode %o); it should be 0600",
            path,
            stat.S_IMODE(mode),
        )


class _Listing:
    """The ``K*`` file names of one directory by the zone their name starts with, read once
    and read again only when the directory changed (its mtime), so finding one zone's keys
    among thousands of zones' files costs that zone's files, not a scan of all of them.

    Our own writes keep it current without a scan (:meth:`KeyDirectory.write` notes the
    files it creates and deletes, :meth:`KeyDirectory.save` its renames): the directory is
    checked unchanged just before the write and its new mtime taken just after.  The limit:
    a file another process writes into the directory during one of our writes, or within the
    same tick of the file system's clock as our last look (a few milliseconds: the mtime does
    not change then), is seen at the directory's next change, not at once."""

    def __init__(self) -> None:
        self.mtime_ns = -1
        self.by_prefix: dict[str, set[str]] = {}  # "K<zone>+" -> file names
        self.scans = 0  # full reads of the directory (tests count them)
        # Held from the check before a write of ours to the note after it, and around
        # every look: threads of one process never lose each other's files.
        self.lock = threading.RLock()
        self.dir_sync = _DirSync()

    def fresh(self, path: Path) -> _Listing:
        """This listing, read again if the directory changed since."""
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            self.mtime_ns, self.by_prefix = -1, {}
            return self
        if mtime != self.mtime_ns:
            self.by_prefix = {}
            with os.scandir(path) as entries:
                for entry in entries:
                    self._add(entry.name)
            self.mtime_ns = mtime
            self.scans += 1
        return self

    def _add(self, name: str) -> None:
        if not name.startswith("K"):
            return
        # Under every "K<text>+" prefix of the name: what glob("K<zone>+*") matches.
        plus = name.find("+")
        while plus != -1:
            self.by_prefix.setdefault(name[: plus + 1], set()).add(name)
            plus = name.find("+", plus + 1)

    def noted(self, path: Path, before: int, names: list[str]) -> None:
        """Our write of ``names`` is done; ``before``: the mtime the directory had just
        before it (when that was not the listing's, the next look reads it again)."""
        if before != self.mtime_ns:
            return
        for name in names:
            self._add(name)
        try:
            self.mtime_ns = path.stat().st_mtime_ns
        except OSError:
            self.mtime_ns = -1

    def forget(self, names: list[str]) -> None:
        """``names`` were removed (by us, under the lock)."""
        for name in names:
            plus = name.find("+")
            while plus != -1:
                self.by_prefix.get(name[: plus + 1], set()).discard(name)
                plus = name.find("+", plus + 1)

    def files(self, prefix: str, suffix: str) -> list[str]:
        return sorted(n for n in self.by_prefix.get(prefix, ()) if n.endswith(suffix))

    def has(self, name: str) -> bool:
        """Is ``name`` (a ``K...+...`` file name) in the directory as last read?"""
        plus = name.find("+")
        return plus != -1 and name in self.by_prefix.get(name[: plus + 1], ())


class _DirSync:
    """The fsyncs of one directory that make names durable, shared by the threads that
    need one at the same time (a group commit): a thread whose names must be durable waits
    for an fsync that started after it placed them, and starts one only when none is
    running.  At a start, the zones' threads place their keys' ``.private`` files together:
    one fsync then covers the names of several zones (was one per zone)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.started = 0  # fsyncs started
        self.done = 0  # the last fsync finished: names placed before it started are durable
        self.running = False

    def sync(self, path: Path) -> None:
        """Make the names placed in ``path`` so far durable (raises OSError as fsync)."""
        with self.cond:
            want = self.started + 1  # one that starts from now on
            while self.done < want:
                if self.running:
                    self.cond.wait()
                    continue
                self.running = True
                self.started += 1
                mine = self.started
                ok = False
                self.cond.release()
                try:
                    atomic.fsync_dir(path)  # (looked up at each call: tests count them)
                    ok = True
                finally:
                    self.cond.acquire()
                    self.running = False
                    if ok:
                        self.done = mine
                    self.cond.notify_all()


_listings: dict[Path, _Listing] = {}
_MISNAMED: set[Path] = set()  # key files named for one zone holding another's key (warned)


def _listing(path: Path) -> _Listing:
    key = Path(os.path.abspath(path))
    got = _listings.get(key)
    if got is None:
        got = _listings[key] = _Listing()
    return got


class KeyDirectory:
    """The keys of one directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._listed: _Listing | None = None  # _listing(path), looked up once

    def _listing(self) -> _Listing:
        got = self._listed
        if got is None:
            got = self._listed = _listing(self.path)
        return got

    def files(self, zone: dns.name.Name, suffix: str) -> list[Path]:
        """The files ``K<zone>+*<suffix>`` here (what glob would find), sorted."""
        listing = self._listing()
        with listing.lock:
            names = listing.fresh(self.path).files(f"K{zone_file_text(zone)}+", suffix)
        return [self.path / n for n in names]

    def missing_keys(self, zone: dns.name.Name) -> list[str]:
        """The ``.key`` files of ``zone`` missing beside their ``.state`` file (a key
        deleted by hand, or half of one restored), as the directory's listing has them."""
        prefix = f"K{zone_file_text(zone)}+"
        listing = self._listing()
        with listing.lock:
            fresh = listing.fresh(self.path)
            keyfiles = (n[: -len(".state")] + ".key" for n in fresh.files(prefix, ".state"))
            return [n for n in keyfiles if not fresh.has(n)]

    def check(self) -> None:
        if not self.path.is_dir():
            raise StorageError(str(self.path), "key directory does not exist")

    def file(self, key: Key, suffix: str) -> Path:
        return self.path / f"{key.basename}{suffix}"

    def keys(self, zone: dns.name.Name | None = None) -> list[Key]:
        """Every key in the directory (for ``zone`` only, when given), sorted by basename."""
        self.check()
        if zone is not None:
            found = self.files(zone, ".key")
        else:
            found = sorted(self.path.glob("K*.key"))
        out = []
        for f in found:
            k = _load_known(f)
            if zone is None or k.zone == zone:
                out.append(k)
            elif f not in _MISNAMED:  # (said once per file: keys() runs at every maintenance)
                _MISNAMED.add(f)
                log.warning(
                    "%s: its key is for %s, not for %s as the file's name says: not used",
                    f,
                    k.zone,
                    zone,
                )
        return out

    def create(self, key: Key) -> None:
        """Write a new key's files.  Nothing is overwritten: if any of its files exists the
        call raises :class:`KeyExists` and leaves the directory as it was."""
        self.write(create=(key,))

    def apply(self, plan: PlanKeys, before: Iterable[Key]) -> None:
        """Carry out what a key manager step (:class:`dnsseal.keymgr.plan.Plan`) decided
        for the keys ``before`` it: its new keys created, the metadata it changed saved,
        the keys it purged deleted (:meth:`write`).  The one way a plan reaches the
        files, for the server's zones and ``dnsseal keys run`` alike."""
        old = {k.id: k for k in before}
        create: list[Key] = []
        save: list[Key] = []
        purge: list[Key] = []
        for r in plan.keys:
            if r.created:
                create.append(r.key)
            elif r.purge:
                purge.append(r.key)
            elif old.get(r.key.id) != r.key:
                save.append(r.key)
        self.write(create=create, save=save, purge=purge)
        for material in plan.discarded:  # keys made in a token and thrown away: no orphan
            try:
                keystore.discard(material)
            except CryptoError as e:
                log.warning("%s: a key made and not used (its tag collided) stays: %s",
                            material.label, e)  # fmt: skip

    def write(
        self, *, create: Sequence[Key] = (), save: Sequence[Key] = (), purge: Sequence[Key] = ()
    ) -> None:
        """Create the keys ``create`` (as :meth:`create`: all or none of them, nothing
        overwritten), then rewrite the metadata of ``save`` (their ``.state`` too) and
        delete the files of ``purge`` (a purged key's: only the key manager purges, after
        purge-keys has passed).  New keys come first: no saved file names a successor
        whose files are not there yet.

        Durable with few syncs: every file's data is fsync'd before its name appears (temp
        file, fsync, link or rename), the new keys' ``.private`` names are made durable
        (one fsync of the directory for all of them, shared with other threads that need
        one at the same time) before any ``.key`` names its key, and the other names by
        one more fsync of the directory at the end (or at the end of the caller's
        :func:`atomic.deferred_dir_sync` block).  Were three per key (one per file), or
        one per key and the caller's at the end; and one per file saved.
        Raises KeyExists, KeyNotFound (a key to save has no files) or StorageError."""
        with atomic.deferred_dir_sync():
            if create:
                self._create(create)
            for key in save:
                self.save(key, write_state=True)
            for key in purge:
                self._purge(key)

    def _create(self, keys: Sequence[Key]) -> None:
        self.check()
        # Every key's files, the private ones first: they are placed, and their names made
        # durable, before a .key names its key (a .key without its .private is a broken
        # key).
        private: list[tuple[Path, bytes, int]] = []
        public: list[tuple[Path, bytes, int]] = []
        names: set[str] = set()
        for key in keys:
            base = key.basename  # (made once: it formats the zone's name)
            if base in names:
                raise KeyExists(f"{self.path / base}.key: made twice; refusing to overwrite")
            names.add(base)
            if key.private is not None:
                data = bindfmt.format_private(key).encode()
                private.append((self.path / f"{base}.private", data, PRIVATE_MODE))
            public.append(
                (self.path / f"{base}.key", bindfmt.format_key(key).encode(), PUBLIC_MODE)
            )
            if key.state is not None:
                data = bindfmt.format_state(key).encode()
                public.append((self.path / f"{base}.state", data, PUBLIC_MODE))
        files = private + public
        targets = [target for target, _, _ in files]
        listing = self._listing()
        # Each file's data is written and fsync'd outside the listing's lock (keys of many
        # zones made in parallel threads at a start overlap their fsyncs), between the
        # temp files' creation and the names, each under the lock (both change the
        # directory: the listing notes them, or it would read the directory again).
        # Whether a file is there is asked of the listing (fresh: the directory read again
        # if it changed), not of each file; a file it could miss (another process's, in
        # the same tick of the directory's clock) still makes link_new refuse.
        opened: list[tuple[int, Path]] = []
        with listing.lock:
            before = listing.fresh(self.path).mtime_ns
            try:
                for target in targets:
                    if listing.has(target.name):
                        raise KeyExists(f"{target}: already exists; refusing to overwrite")
                for target in targets:
                    opened.append(atomic.open_temp(target))
            except BaseException:
                for fd, tmp in opened:
                    atomic.discard_temp(fd, tmp)
                raise
            finally:
                listing.noted(self.path, before, [])
        placed: list[Path] = []
        filled = 0  # temp files handed to fill_temp (which closes them, or removes them)
        try:
            for (fd, tmp), (target, data, mode) in zip(opened, files, strict=True):
                filled += 1
                atomic.fill_temp(fd, tmp, target, data, mode)
            first = len(private)
            if first:
                self._link(opened[:first], targets[:first], placed)
                listing.dir_sync.sync(self.path)
            self._link(opened[first:], targets[first:], placed)
        except BaseException:
            for p in placed:
                with contextlib.suppress(OSError):
                    p.unlink()
            for i, (fd, tmp) in enumerate(opened):
                if i >= filled:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                if i >= len(placed):  # (link_new removed the ones it placed)
                    with contextlib.suppress(OSError):
                        tmp.unlink()
            raise

    def _link(self, group: list[tuple[int, Path]], targets: list[Path], placed: list[Path]) -> None:
        """Put finished temp files in place (:func:`atomic.link_new`), noting the names in
        the directory's listing."""
        if not group:
            return
        listing = self._listing()
        names: list[str] = []
        with listing.lock:
            before = listing.fresh(self.path).mtime_ns
            try:
                for (_, tmp), target in zip(group, targets, strict=True):
                    atomic.link_new(tmp, target)
                    placed.append(target)
                    names.append(target.name)
            finally:
                listing.noted(self.path, before, names)

    def _purge(self, key: Key) -> list[Path]:
        """Delete a purged key's ``.key``, ``.private`` and ``.state`` files; returns those
        that were there."""
        removed = []
        listing = self._listing()
        with listing.lock:
            before = listing.fresh(self.path).mtime_ns
            for suffix in (".key", ".private", ".state"):
                f = self.file(key, suffix)
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                    removed.append(f)
            listing.forget([f.name for f in removed])
            listing.noted(self.path, before, [])
        return removed

    def save(self, key: Key, *, write_state: bool | None = None) -> list[Path]:
        """Rewrite an existing key's metadata (timings, state), each file atomically.

        The public key and private material are taken from ``key`` as loaded; the
        ``.state`` file is written when it exists already or ``write_state`` is true.
        Returns the files written.
        """
        keyfile = self.file(key, ".key")
        if not keyfile.exists():
            raise KeyNotFound(f"{keyfile}: no such key")
        written: list[Path] = []
        listing = self._listing()
        with listing.lock:
            before = listing.fresh(self.path).mtime_ns
            try:
                self._save(key, keyfile, write_state, written)
            finally:
                listing.noted(self.path, before, [])
        return written

    def _save(self, key: Key, keyfile: Path, write_state: bool | None, written: list[Path]) -> None:
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


__all__ = ["KeyDirectory", "KeyExists", "generate", "load_key", "split_keyfile_name"]
