"""Which keys sign what: the key set a signing run uses, and BIND's smart-signing rules that
derive it from timing metadata (``dnssec-signzone -S``).

A :class:`SigningKey` says whether a key's DNSKEY is published and whether it signs.  Who
signs which RRset follows dnssec-signzone: keys with the SEP flag (KSKs) sign the DNSKEY,
CDS and CDNSKEY RRsets; other keys (ZSKs) sign everything else and, unless ``ksk_only``
(``-x``), the DNSKEY RRset too; an algorithm without an active ZSK has its KSKs sign
everything (a CSK); ``ignore_ksk_flag`` (``-z``) makes every key sign everything.  A revoked
key signs only the DNSKEY RRset (RFC 5011 2.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.rdatatype

from dnsseal.keys.model import Key

T = dns.rdatatype
KEYSET_TYPES = frozenset({T.DNSKEY, T.CDS, T.CDNSKEY})


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key as one signing run sees it.  ``publish=False`` removes its DNSKEY from the
    zone (a deleted or not yet published key); ``active`` keys sign."""

    key: Key
    publish: bool = True
    active: bool = True

    @property
    def is_ksk(self) -> bool:
        """Signs the key set: SEP flag, or a CSK per its state file."""
        return self.key.role in ("ksk", "csk")

    @property
    def is_zsk(self) -> bool:
        return self.key.role in ("zsk", "csk") and not self.key.is_revoked


@dataclass(frozen=True, slots=True)
class Assignment:
    """The keys that sign the key set (DNSKEY/CDS/CDNSKEY) and the keys that sign all other
    RRsets, as indexes into the run's key list."""

    keyset: tuple[int, ...]
    other: tuple[int, ...]


def assign(keys: Sequence[SigningKey], *, ksk_only: bool, ignore_ksk_flag: bool) -> Assignment:
    """Decide who signs what (see the module docstring)."""
    active = [i for i, k in enumerate(keys) if k.active]
    if ignore_ksk_flag:
        plain = [i for i in active if not keys[i].key.is_revoked]
        return Assignment(tuple(active), tuple(plain))
    zsk_algs = {keys[i].key.algorithm for i in active if keys[i].is_zsk}
    other = tuple(
        i
        for i in active
        if not keys[i].key.is_revoked and (keys[i].is_zsk or keys[i].key.algorithm not in zsk_algs)
    )
    ksk_algs = {keys[i].key.algorithm for i in active if keys[i].is_ksk}
    keyset = tuple(
        i
        for i in active
        if keys[i].is_ksk
        or keys[i].key.is_revoked
        or (not ksk_only or keys[i].key.algorithm not in ksk_algs)
    )
    return Assignment(keyset, other)


def _reached(when: int | None, now: int) -> bool:
    return when is not None and when <= now


def smart_select(keys: Iterable[Key], now: int) -> list[SigningKey]:
    """BIND's smart-signing rules over timing metadata at ``now``.

    Published: Publish (or Activate, when Publish is unset) reached or neither set, and
    Delete not reached.  Active: published, Activate reached or unset, Inactive not reached.
    A key whose Revoke time has passed appears with the REVOKE flag.  Keys without private
    material are published but never sign.
    """
    out = []
    for loaded in keys:
        key = loaded
        t = key.timings
        start = t.publish if t.publish is not None else t.activate
        published = (start is None or start <= now) and not _reached(t.delete, now)
        active = (
            published
            and (t.activate is None or t.activate <= now)
            and not _reached(t.inactive, now)
            and key.private is not None
        )
        if _reached(t.revoke, now) and not key.is_revoked:
            out.append(SigningKey(loaded, publish=False, active=False))
            key = loaded.revoked()
        out.append(SigningKey(key, publish=published, active=active))
    return out
