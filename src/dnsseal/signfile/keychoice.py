"""Which keys sign a zone file: key files given by name, the key directory by timing
metadata (``-S``), or the key directory's keys whose DNSKEY the zone holds."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdatatype

from dnsseal.errors import OptionError
from dnsseal.keys.model import Key, zone_file_text
from dnsseal.signer import SigningKey
from dnsseal.signer.keysel import smart_select
from dnsseal.storage.keydir import KeyDirectory, load_key
from dnsseal.zone import canonical
from dnsseal.zone.model import Zone


def select_keys(
    zone: Zone, keydir: str, smart: bool, keyfiles: tuple[str, ...], now: int
) -> list[SigningKey]:
    """Explicit key files (published and signing), plus with -S the key directory by timing
    metadata; with neither, the keys in the key directory whose DNSKEY is in the zone
    (``zone`` is only read then; otherwise only its origin is used).  Raises
    :class:`OptionError` when no key would sign."""
    chosen: dict[tuple[int, int, bytes], SigningKey] = {}
    for f in keyfiles:
        key = load_key(f)
        if key.private is None:
            raise OptionError(f, "the private key file is missing; cannot sign with it")
        chosen[(key.algorithm, key.tag, key.public_key)] = SigningKey(key)
    if smart or not keyfiles:
        refuse_misnamed_keys(keydir, zone.origin)
        found: list[Key] = KeyDirectory(keydir).keys(zone.origin)
        if smart:
            for sk in smart_select(found, now):
                chosen.setdefault((sk.key.algorithm, sk.key.tag, sk.key.public_key), sk)
        else:
            dnskey = zone.get(zone.origin, dns.rdatatype.DNSKEY)
            in_zone = set(dnskey.rdatas) if dnskey else set()
            for key in found:
                if canonical.rdata_wire(key.dnskey()) in in_zone:
                    sk = SigningKey(key, publish=True, active=key.private is not None)
                    chosen.setdefault((key.algorithm, key.tag, key.public_key), sk)
    if not any(k.active for k in chosen.values()):
        raise OptionError(
            "KEY",
            f"no signing key for {zone.origin}: give key files, or -S to use the keys in "
            f"{keydir} by their timing metadata",
        )
    return list(chosen.values())


def refuse_misnamed_keys(keydir: str, origin: dns.name.Name) -> None:
    """Raise :class:`OptionError` for a key file named for ``origin`` that holds another
    zone's key (a copied or renamed file): the key directory would pass over it, and the
    zone would be signed without the key the operator meant (its KSK, say) and no word said.
    dnssec-signzone loads it and fails the zone's verification."""
    for path in sorted(Path(keydir).glob(f"K{zone_file_text(origin)}+*.key")):
        key = load_key(path, private=False)
        if key.zone != origin:
            raise OptionError(
                str(path),
                f"the key in this file is for {key.zone}, not {origin} (a copied or renamed "
                "key file?): refusing to sign without it",
            )
