"""Keys in a key store (an HSM through PKCS#11): ``dnsseal keyfromlabel`` (like BIND's
dnssec-keyfromlabel) and ``dnsseal keystore test|bench|generate|list`` (like Knot's
``keymgr keystore-test`` / ``keystore-bench``).

Key stores are named by location: ``software`` (key material in files) or an RFC 7512 URI
``pkcs11:token=T;object=O?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=FILE``.
Give the PIN with ``pin-source`` (a file only you can read), not on the command line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import click
import dns.name

from dnsseal import clock
from dnsseal.cli.keycmds import (
    _TIME_OPTIONS,
    BindStyleCommand,
    _time_options,
    _timings,
    _ttl,
    _zone_name,
)
from dnsseal.crypto import keystore, wire
from dnsseal.errors import KeyExists, OptionError, UnsupportedAlgorithm
from dnsseal.keys import algorithms
from dnsseal.keys.model import (
    FLAG_REVOKE,
    FLAG_SEP,
    FLAG_ZONE,
    Key,
    KeyState,
    KeyTimings,
    PrivateMaterial,
    new_key,
    tag_collides,
)
from dnsseal.storage.keydir import KeyDirectory

_CTX = {"help_option_names": ["-h", "--help"]}
# What `keystore test` and `bench` try by default: the algorithms people sign with.
DEFAULT_TEST_ALGORITHMS = ("ECDSAP256SHA256", "ECDSAP384SHA384", "ED25519", "RSASHA256")


def _algorithm(text: str) -> algorithms.Algorithm:
    try:
        return algorithms.for_generation(text)
    except UnsupportedAlgorithm as e:
        raise OptionError("-a", str(e)) from None


def _flags(keyflags: Sequence[str]) -> int:
    flags = FLAG_ZONE
    for f in keyflags:
        if f.upper() == "KSK":
            flags |= FLAG_SEP
        elif f.upper() == "REVOKE":
            flags |= FLAG_REVOKE
        else:
            raise OptionError("-f", f"unknown key flag {f!r} (KSK or REVOKE)")
    return flags


def _pkcs11_store(location: str, option: str) -> Any:
    if not location.lower().startswith("pkcs11:"):
        raise OptionError(option, "expected a PKCS#11 URI (pkcs11:token=...;object=...)")
    store = keystore.open_store(location)
    return store


def _key(
    zone: dns.name.Name,
    flags: int,
    alg: algorithms.Algorithm,
    public: bytes,
    material: PrivateMaterial,
    timings: dict[str, int | None],
    ttl: str | None,
) -> Key:
    return Key(
        zone=zone,
        flags=flags,
        algorithm=alg.number,
        public_key=public,
        ttl=_ttl("-L", ttl) if ttl else None,
        timings=KeyTimings(**timings),
        # The role, as BIND's .state says it; record states come from the timings.
        state=KeyState(ksk=bool(flags & FLAG_SEP), zsk=not flags & FLAG_SEP),
        private=material,
    )


def _refuse_collision(keydir: KeyDirectory, key: Key) -> None:
    """A key that cannot be made again (it is in the token already) is refused if its tag
    collides with a key of the zone (:func:`tag_collides`: tag or revoked tag, both ways),
    as dnssec-keyfromlabel refuses one that "could collide with another key upon
    revokation" unless given -y."""
    for other in keydir.keys(key.zone):
        if tag_collides(key, [other]):
            raise KeyExists(
                f"{keydir.path / key.basename}: key tag {key.tag} (revoked {key.revoked_tag}) "
                f"collides with the existing key {other.basename} (tag {other.tag}, revoked "
                f"{other.revoked_tag}); link another key"
            )


@click.command(cls=BindStyleCommand, context_settings=_CTX)
@click.option("-a", "algorithm", required=True, help="Algorithm (name or number).")
@click.option("-l", "label", required=True, help="The key in the token: a pkcs11: URI.")
@click.option("-E", "engine", default="pkcs11", show_default=True, help="Engine (pkcs11 only).")
@click.option("-f", "keyflags", multiple=True, help="KSK or REVOKE (repeatable).")
@click.option("-K", "directory", default=".", show_default=True, help="Key directory.")
@click.option("-L", "ttl", help="DNSKEY TTL for the key (or 'none').")
@_time_options(_TIME_OPTIONS)
@click.option("-G", "generate_only", is_flag=True, help="No publish/activate times.")
@click.option("-C", "compat", is_flag=True, help="Write no timing metadata, not even Created.")
@click.argument("zone")
def keyfromlabel(
    algorithm: str,
    label: str,
    engine: str,
    keyflags: Sequence[str],
    directory: str,
    ttl: str | None,
    generate_only: bool,
    compat: bool,
    zone: str,
    **times: str | None,
) -> None:
    """Link a key pair held in an HSM to key files for ZONE (like dnssec-keyfromlabel).

    The key is found by the -l URI's object= (label) and/or id=; its public key goes in the
    .key file, and the .private file holds only the reference (BIND's Engine: and Label:).
    Prints the key's basename.
    """
    if engine.lower() != "pkcs11":
        raise OptionError("-E", f"engine {engine!r}: only pkcs11 is supported")
    alg = _algorithm(algorithm)
    store = _pkcs11_store(label, "-l")
    if not store.uri.selects_object:
        raise OptionError("-l", "say which key: object=LABEL and/or id=%XX in the URI")
    keydir = KeyDirectory(directory)
    keydir.check()
    timings = _timings(clock.now(), compat, generate_only, times)
    public = store.link(alg)
    material = PrivateMaterial.reference(label, engine.lower())
    key = _key(_zone_name(zone), _flags(keyflags), alg, public, material, timings, ttl)
    _refuse_collision(keydir, key)
    keydir.create(key)
    click.echo(key.basename)


@click.group(context_settings=_CTX)
def keystore_group() -> None:
    """Key stores: test, benchmark, list and make keys in an HSM (PKCS#11)."""


@keystore_group.command("generate", cls=BindStyleCommand, context_settings=_CTX)
@click.option("-a", "algorithm", default="ECDSAP256SHA256", show_default=True, help="Algorithm.")
@click.option("-b", "bits", type=int, help="Key size in bits (RSA only).")
@click.option("-l", "location", required=True, help="The key store: a pkcs11: URI (token).")
@click.option("-n", "name", help="Label (CKA_LABEL) of the new key in the token.")
@click.option("-f", "keyflags", multiple=True, help="KSK or REVOKE (repeatable).")
@click.option("-K", "directory", default=".", show_default=True, help="Key directory.")
@click.option("-L", "ttl", help="DNSKEY TTL for the key (or 'none').")
@_time_options(_TIME_OPTIONS)
@click.option("-G", "generate_only", is_flag=True, help="No publish/activate times.")
@click.argument("zone")
def generate(
    algorithm: str,
    bits: int | None,
    location: str,
    name: str | None,
    keyflags: Sequence[str],
    directory: str,
    ttl: str | None,
    generate_only: bool,
    zone: str,
    **times: str | None,
) -> None:
    """Make a key pair for ZONE in the token (private key not extractable) and write its
    key files (like dnssec-keygen, with the key in the HSM).  A key whose tag collides with
    a key of the zone is deleted from the token and another made.  Prints the basename."""
    alg = _algorithm(algorithm)
    store = _pkcs11_store(location, "-l")
    keydir = KeyDirectory(directory)
    keydir.check()
    timings = _timings(clock.now(), False, generate_only, times)
    zone_name, flags = _zone_name(zone), _flags(keyflags)

    def make() -> Key:
        public, material = store.generate(alg, bits, label=name)
        return _key(zone_name, flags, alg, public, material, timings, ttl)

    def collided(key: Key) -> None:
        if key.private is not None:
            store.destroy(key.private)  # (no orphan in the token)
        click.echo(
            f"key tag {key.tag} collides with an existing key; deleted it from the token, "
            "generating another",
            err=True,
        )

    key = new_key(make, keydir.keys(zone_name), collided=collided)
    try:
        keydir.create(key)
    except BaseException:
        if key.private is not None:
            store.destroy(key.private)  # (its files are not written: nothing refers to it)
        raise
    click.echo(key.basename)


@keystore_group.command("list", context_settings=_CTX)
@click.argument("location")
def list_keys(location: str) -> None:
    """List the key pairs in the token: id, label, type."""
    from dnsseal.crypto import pkcs11

    store = _pkcs11_store(location, "LOCATION")
    for row in pkcs11.list_keys(store.session()):
        click.echo("\t".join(row))


@keystore_group.command("test", context_settings=_CTX)
@click.option("-a", "algs", multiple=True, help="Algorithm to test (repeatable; default: common).")
@click.argument("location")
def test(algs: Sequence[str], location: str) -> None:
    """Check that the key store can make keys and sign with them, per algorithm (like Knot's
    keymgr keystore-test).  Uses session keys: nothing is stored in the token."""
    store = keystore.open_store(location)
    click.echo(store.describe())
    failed = 0
    for text in algs or DEFAULT_TEST_ALGORITHMS:
        alg = _algorithm(text)
        try:
            sign, public, _objects = _test_signer(store, alg)
            data = os.urandom(64)
            sig = sign(data)
            ok = wire.verify(alg.number, wire.public_key_object(alg.number, public), sig, data)
            result = "ok" if ok else "failed: the signature does not verify"
        except Exception as e:
            result = f"failed: {e}"
        failed += result != "ok"
        click.echo(f"  {alg.mnemonic:<18} {result}")
    if failed:
        raise click.ClickException(f"{failed} algorithm(s) failed")


def _test_signer(store: Any, alg: algorithms.Algorithm) -> tuple[Any, bytes, Any]:
    if hasattr(store, "session_signer"):
        return store.session_signer(alg)  # type: ignore[no-any-return]
    public, material = store.generate(alg)
    key = Key(dns.name.root, FLAG_ZONE, alg.number, public, private=material)
    return store.sign_function(key), public, None


def _bench_worker(location: str, alg_number: int, seconds: float) -> tuple[int, float]:
    """Sign for ``seconds`` with a fresh key in this process's session; (signatures, time)."""
    store = keystore.open_store(location)
    sign, _public, _objects = _test_signer(store, algorithms.get(alg_number))
    data = os.urandom(100)
    count = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(16):
            sign(data)
        count += 16
        now = time.perf_counter()
        if now >= end:
            return count, now - start


@keystore_group.command("bench", context_settings=_CTX)
@click.option("-a", "algs", multiple=True, help="Algorithm (repeatable; default: common).")
@click.option("-j", "workers", type=int, default=1, show_default=True, help="Processes.")
@click.option("-s", "seconds", type=float, default=1.0, show_default=True, help="Per algorithm.")
@click.argument("location")
def bench(algs: Sequence[str], workers: int, seconds: float, location: str) -> None:
    """Signatures per second of the key store, per algorithm (like Knot's keymgr
    keystore-bench); with -j, that many processes, each with its own session."""
    if workers < 1:
        raise OptionError("-j", "at least one process")
    if not 0 < seconds <= 600:
        raise OptionError("-s", "between 0 and 600 seconds")
    store = keystore.open_store(location)
    click.echo(f"{store.describe()}, {workers} process(es), {seconds:g} s per algorithm")
    for text in algs or DEFAULT_TEST_ALGORITHMS:
        alg = _algorithm(text)
        try:
            if workers == 1:
                results = [_bench_worker(location, alg.number, seconds)]
            else:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(workers) as ex:
                    futures = [
                        ex.submit(_bench_worker, location, alg.number, seconds)
                        for _ in range(workers)
                    ]
                    results = [f.result() for f in futures]
        except Exception as e:
            click.echo(f"  {alg.mnemonic:<18} failed: {e}")
            continue
        rate = sum(n / t for n, t in results)
        click.echo(f"  {alg.mnemonic:<18} {rate:10.0f} signatures/s")
