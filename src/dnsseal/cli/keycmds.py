"""``dnsseal keygen``, ``dsfromkey``, ``settime`` and ``keyinfo``: BIND's key tools, with the
same options and output shape so habits carry over."""

from __future__ import annotations

import dataclasses
import json
import logging
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click
import dns.exception
import dns.name
import dns.rdatatype
import dns.ttl
import dns.zone

from dnsseal import clock
from dnsseal.crypto import keystore
from dnsseal.crypto.keystore import KeyStoreError
from dnsseal.durations import format_bind_time, format_human_time, parse_duration, parse_when
from dnsseal.errors import (
    CryptoError,
    DnssealError,
    InputError,
    OptionError,
    UnsupportedAlgorithm,
)
from dnsseal.keys import algorithms
from dnsseal.keys.ds import DIGEST_TYPES, digest_type, make_ds
from dnsseal.keys.model import (
    FLAG_REVOKE,
    FLAG_SEP,
    FLAG_ZONE,
    TIMING_FIELDS,
    Key,
    KeyState,
    KeyTimings,
    RecordState,
    new_key,
)
from dnsseal.policy.build import lookup
from dnsseal.storage.config import load_policies
from dnsseal.storage.files import read_text
from dnsseal.storage.keydir import KeyDirectory, load_key, split_keyfile_name

# BIND spells some options as two words: "-P sync DATE", "-D ds DATE".
_TWO_WORD_OPTIONS = {
    ("-P", "sync"): "--sync-publish",
    ("-D", "sync"): "--sync-delete",
    ("-P", "ds"): "--ds-publish",
    ("-D", "ds"): "--ds-delete",
}

# The time options shared by keygen and settime: (flag, dest, KeyTimings attr, help).
_TIME_OPTIONS = (
    ("-P", "publish", "publish", "publication date"),
    ("-A", "activate", "activate", "activation date"),
    ("-R", "revoke", "revoke", "revocation date"),
    ("-I", "inactive", "inactive", "inactivation date"),
    ("-D", "delete", "delete", "deletion date"),
    ("--sync-publish", "sync_publish", "sync_publish", "CDS/CDNSKEY publication (-P sync)"),
    ("--sync-delete", "sync_delete", "sync_delete", "CDS/CDNSKEY deletion (-D sync)"),
)
_DS_TIME_OPTIONS = (
    ("--ds-publish", "ds_publish", "ds_publish", "DS publication at the parent (-P ds)"),
    ("--ds-delete", "ds_delete", "ds_delete", "DS removal at the parent (-D ds)"),
)


class BindStyleCommand(click.Command):
    """Accepts BIND's two-word options (``-P sync DATE``) by rewriting them first."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(args):
            pair = (args[i], args[i + 1].lower()) if i + 1 < len(args) else None
            if pair is not None and pair in _TWO_WORD_OPTIONS:
                out.append(_TWO_WORD_OPTIONS[pair])
                i += 2
                continue
            out.append(args[i])
            i += 1
        return super().parse_args(ctx, out)


def _time_options(
    options: Iterable[tuple[str, str, str, str]],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def deco(f: Callable[..., None]) -> Callable[..., None]:
        for flag, dest, _, helptext in reversed(tuple(options)):
            f = click.option(flag, dest, metavar="WHEN", help=f"Set the {helptext}.")(f)
        return f

    return deco


def _when(option: str, value: str, now: int) -> int | None:
    try:
        return parse_when(value, now)
    except InputError as e:
        raise OptionError(option, str(e)) from None


def _ttl(option: str, value: str) -> int | None:
    if value.lower() == "none":
        return None
    try:
        return int(dns.ttl.from_text(value))
    except dns.exception.DNSException:
        raise OptionError(option, f"bad TTL {value!r}") from None


def _zone_name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise OptionError("ZONE", f"bad zone name {text!r}: {e}") from None


# ----------------------------------------------------------------------------- keygen


@click.command(cls=BindStyleCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-a",
    "algorithm",
    default="ECDSAP256SHA256",
    show_default=True,
    help="Algorithm (name or number).",
)
@click.option("-b", "bits", type=int, help="Key size in bits (RSA only).")
@click.option("-f", "keyflags", multiple=True, help="KSK or REVOKE (repeatable).")
@click.option("-K", "directory", default=".", show_default=True, help="Key directory.")
@click.option("-L", "ttl", help="DNSKEY TTL for the key (or 'none').")
@_time_options(_TIME_OPTIONS)
@click.option("-G", "generate_only", is_flag=True, help="Generate only: no publish/activate.")
@click.option("-C", "compat", is_flag=True, help="Write no timing metadata, not even Created.")
@click.option("-q", "quiet", is_flag=True, help="Quiet: print nothing but the key name.")
@click.option("-n", "nametype", default="ZONE", show_default=True,
              help="Owner type, as dnssec-keygen: only ZONE keys sign zones.")  # fmt: skip
@click.option("-3", "nsec3", is_flag=True,
              help="An NSEC3-capable algorithm (every one dnsseal generates is).")  # fmt: skip
@click.option("-T", "rrtype", default="DNSKEY", show_default=True,
              help="Record type: DNSKEY (KEY, for SIG(0), is not made).")  # fmt: skip
@click.option("-k", "policy_name", metavar="POLICY",
              help="Make the keys POLICY lists (roles, algorithms, sizes), as dnssec-keygen -k; "
                   "POLICY is built in or defined in -l FILE.")  # fmt: skip
@click.option("-l", "policy_file", metavar="FILE",
              help="With -k: the file defining POLICY (named.conf or dnsseal TOML).")  # fmt: skip
@click.option("--key-store", "key_store", metavar="URI",
              help="Make the key in this key store: a pkcs11: URI (the token), or 'software' "
                   "(the default: key material in the .private file).  With -k, the policy "
                   "lines' own key-store is used unless this is given.")  # fmt: skip
@click.option("-S", "predecessor", metavar="KEY",
              help="Make a successor of KEY (same zone, algorithm, size and flags): active "
                   "when KEY goes inactive, published -i before.")  # fmt: skip
@click.option("-i", "prepublish", metavar="INTERVAL", default="30d", show_default=True,
              help="With -S: how long before activation the successor is published.")  # fmt: skip
@click.option("-v", "verbosity", type=int, metavar="LEVEL", help="Log level (as dnssec-keygen).")
@click.argument("zone", required=False)
def keygen(
    algorithm: str,
    bits: int | None,
    keyflags: Sequence[str],
    directory: str,
    ttl: str | None,
    generate_only: bool,
    compat: bool,
    quiet: bool,
    nametype: str,
    nsec3: bool,
    rrtype: str,
    policy_name: str | None,
    policy_file: str | None,
    key_store: str | None,
    predecessor: str | None,
    prepublish: str,
    verbosity: int | None,
    zone: str | None,
    **times: str | None,
) -> None:
    """Generate a key pair for ZONE and print its basename (like dnssec-keygen).

    WHEN takes BIND's forms: YYYYMMDDHHMMSS, YYYYMMDD, +offset, -offset, now, now+offset,
    none.  Without -G, the key is published and active from now.  With -S KEY the zone,
    algorithm, size and flags are KEY's and ZONE may be left out.
    """
    now = clock.now()
    if verbosity is not None and verbosity > 0:
        logging.getLogger().setLevel(logging.DEBUG if verbosity >= 3 else logging.INFO)
    if nametype.upper() != "ZONE":
        raise OptionError("-n", f"{nametype!r}: only ZONE keys sign zones (DNSSEC)")
    if rrtype.upper() != "DNSKEY":
        raise OptionError("-T", f"{rrtype!r}: dnsseal makes DNSKEY keys only (no KEY/SIG(0))")
    if predecessor is not None:
        _successor(predecessor, directory, prepublish, ttl, quiet, now)
        return
    if zone is None:
        raise click.UsageError("missing argument ZONE")
    if policy_file is not None and policy_name is None:
        raise OptionError("-l", "a policy file is read for -k POLICY; give -k too")
    if policy_file is not None and policy_file.lower().startswith("pkcs11:"):
        raise OptionError("-l", "is the file defining the -k policy (as in BIND's "
                          "dnssec-keygen); give a key store with --key-store URI")  # fmt: skip
    if key_store is not None:
        _check_key_store(key_store)
    if policy_name is not None:
        if keyflags:
            # dnssec-keygen 9.18: "-k and -f cannot be used together" (the lines say)
            raise OptionError("-f", "cannot be used with -k: the policy's key lines say")
        _policy_keys(policy_name, policy_file, zone, directory, ttl, quiet, now, key_store)
        return
    try:
        alg = algorithms.for_generation(algorithm)
    except UnsupportedAlgorithm as e:
        raise OptionError("-a", str(e)) from None
    if nsec3 and alg.number in (1, 3, 5, 6):
        raise OptionError("-3", f"{alg.mnemonic} cannot be used with NSEC3")
    if bits is not None and alg.fixed_size and bits != alg.default_bits:
        raise OptionError("-b", f"{alg.mnemonic} keys have a fixed size; drop -b")
    if bits is not None and not alg.min_bits <= bits <= alg.max_bits:
        raise OptionError("-b", f"{alg.mnemonic} key size must be {alg.min_bits}..{alg.max_bits}")
    flags = FLAG_ZONE
    for f in keyflags:
        if f.upper() == "KSK":
            flags |= FLAG_SEP
        elif f.upper() == "REVOKE":
            flags |= FLAG_REVOKE
        else:
            raise OptionError("-f", f"unknown key flag {f!r} (KSK or REVOKE)")
    name = _zone_name(zone)
    keydir = KeyDirectory(directory)
    keydir.check()

    timings = _timings(now, compat, generate_only, times)

    key = _generate(keydir, name, alg, bits, flags, _ttl("-L", ttl) if ttl else None,
                    KeyTimings(**timings), quiet, key_store)  # fmt: skip
    click.echo(key.basename)


def _generate(keydir: KeyDirectory, name: dns.name.Name, alg: algorithms.Algorithm,
              bits: int | None, flags: int, ttl: int | None, timings: KeyTimings,
              quiet: bool, key_store: str | None = None) -> Key:  # fmt: skip
    """Make a key whose tag collides with no key of the zone (:func:`new_key`, as
    dnssec-keygen: thrown away and made again), in ``key_store`` (None: the key files),
    and write its files."""

    def make() -> Key:
        try:
            public, material = keystore.generate(key_store, alg, bits)
        except (InputError, KeyStoreError) as e:
            raise OptionError("--key-store", str(e)) from None
        return Key(zone=name, flags=flags, algorithm=alg.number, public_key=public, ttl=ttl,
                   timings=timings, private=material)  # fmt: skip

    def collided(key: Key) -> None:
        if not quiet:
            click.echo(
                f"key tag {key.tag} collides with an existing key; generating another", err=True
            )
        if key.private is not None:  # a key made in a token: no orphan left there
            try:
                keystore.discard(key.private)
            except CryptoError as e:
                raise OptionError("--key-store", f"a refused key stays in the store: {e}") from None

    key = new_key(make, keydir.keys(name), collided=collided)
    keydir.create(key)
    return key


def _successor(path: str, directory: str, prepublish: str, ttl: str | None, quiet: bool,
               now: int) -> None:  # fmt: skip
    """dnssec-keygen -S: a key like ``path``'s, active when it goes inactive."""
    old = load_key(path, private=False)
    inactive = old.timings.inactive
    if inactive is None:
        raise OptionError(
            "-S", f"{old.basename} has no inactivation date: set one (settime -I) first"
        )
    try:
        lead = parse_duration(prepublish)
    except InputError as e:
        raise OptionError("-i", str(e)) from None
    alg = algorithms.ALGORITHMS.get(old.algorithm)
    if alg is None:
        raise OptionError("-S", f"{old.basename}: unknown algorithm {old.algorithm}")
    publish = inactive - lead
    if publish < now:
        click.echo(
            f"warning: the successor is published at {format_human_time(publish)}, in the "
            "past: the prepublication interval is cut short",
            err=True,
        )
    timings = KeyTimings(created=now, publish=max(publish, now), activate=inactive)
    bits = None if alg.fixed_size else old.bits
    keydir = KeyDirectory(directory)
    keydir.check()
    key = _generate(keydir, old.zone, alg, bits, old.flags & ~FLAG_REVOKE,
                    _ttl("-L", ttl) if ttl else old.ttl, timings, quiet)  # fmt: skip
    click.echo(key.basename)


def _policy_keys(name: str, file: str | None, zone: str, directory: str, ttl: str | None,
                 quiet: bool, now: int, key_store: str | None = None) -> None:  # fmt: skip
    """dnssec-keygen -k: one key per line of the policy's keys, published and active now,
    each in ``key_store`` or else in its line's key-store."""
    try:
        policy = lookup(name, load_policies(file) if file else {})
    except OptionError as e:
        raise OptionError("-k", e.message) from None  # lookup names the option -p
    except DnssealError as e:
        raise OptionError("-k", str(e)) from None
    if not policy.keys:
        raise OptionError("-k", f"policy {name!r} has no keys")
    zname = _zone_name(zone)
    keydir = KeyDirectory(directory)
    keydir.check()
    for spec in policy.keys:
        alg = algorithms.ALGORITHMS[spec.algorithm]
        flags = FLAG_ZONE | (FLAG_SEP if spec.ksk else 0)
        timings = KeyTimings(created=now, publish=now, activate=now)
        key_ttl = _ttl("-L", ttl) if ttl else policy.dnskey_ttl
        store = key_store if key_store is not None else spec.key_store
        if store is not None and key_store is None:
            _check_key_store(store)
        key = _generate(keydir, zname, alg, spec.bits, flags, key_ttl, timings, quiet, store)
        click.echo(key.basename)


def _check_key_store(location: str) -> None:
    try:
        keystore.open_store(location)
    except (InputError, KeyStoreError) as e:
        raise OptionError("--key-store", str(e)) from None


def _timings(
    now: int, compat: bool, generate_only: bool, times: dict[str, str | None]
) -> dict[str, int | None]:
    """A new key's timing metadata: Created (unless -C), Publish and Activate now (unless
    -G), then the -P/-A/-I/-D/... options, which -C and -G refuse."""
    timings: dict[str, int | None] = {}
    if not compat:
        timings["created"] = now
        if not generate_only:
            timings["publish"] = now
            timings["activate"] = now
    for flag, dest, attr, _ in _TIME_OPTIONS:
        value = times.get(dest)
        if value is not None:
            if compat or generate_only:
                raise OptionError(flag, "cannot set times with -C or -G")
            timings[attr] = _when(flag, value, now)
    _check_order(timings)
    return timings


def _check_order(timings: dict[str, int | None]) -> None:
    pub, act = timings.get("publish"), timings.get("activate")
    ina, dele = timings.get("inactive"), timings.get("delete")
    if pub is not None and act is not None and pub > act:
        click.echo("warning: key is published after it becomes active", err=True)
    if ina is not None and dele is not None and dele < ina:
        click.echo("warning: key is deleted before it becomes inactive", err=True)
    if act is not None and ina is not None and ina < act:
        click.echo("warning: key becomes inactive before it is active", err=True)


# -------------------------------------------------------------------------- dsfromkey


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-1", "sha1", is_flag=True, help="SHA-1 digest (deprecated).")
@click.option("-2", "sha256", is_flag=True, help="SHA-256 digest (the default).")
@click.option("-4", "sha384", is_flag=True, help="SHA-384 digest.")
@click.option("-a", "digests", multiple=True, help="Digest type by name or number (repeatable).")
@click.option("-A", "all_keys", is_flag=True, help="With -f: all keys, not only KSKs.")
@click.option("-C", "cds", is_flag=True, help="Print CDS records instead of DS.")
@click.option("-c", "rdclass", default="IN", show_default=True, help="Class of the output.")
@click.option("-f", "zonefile", help="Read the keys from this zone file (DNSKEY records).")
@click.option("-K", "directory", default=None, help="Directory of the key files.")
@click.option("-T", "ttl", help="TTL of the output records (omitted by default).")
@click.argument("keys", nargs=-1, required=True)
def dsfromkey(
    sha1: bool,
    sha256: bool,
    sha384: bool,
    digests: Sequence[str],
    all_keys: bool,
    cds: bool,
    rdclass: str,
    zonefile: str | None,
    directory: str | None,
    ttl: str | None,
    keys: Sequence[str],
) -> None:
    """Print the DS (or CDS) records of KEYS (like dnssec-dsfromkey).

    KEYS are key files (``Kzone+alg+tag.key`` or the basename); with -f, the argument is the
    zone name and the keys come from the DNSKEY records in the zone file.
    """
    types: list[int] = []
    for on, number in ((sha1, 1), (sha256, 2), (sha384, 4)):
        if on and number not in types:
            types.append(number)
    for d in digests:
        try:
            number = digest_type(d).number
        except InputError as e:
            raise OptionError("-a", str(e)) from None
        if number not in types:
            types.append(number)
    if not types:
        types = [2]
    for t in types:
        if DIGEST_TYPES[t].deprecated:
            click.echo(
                f"warning: DS digest type {t} ({DIGEST_TYPES[t].mnemonic}) is deprecated "
                "(RFC 8624: MUST NOT be used for new DS records)",
                err=True,
            )
    out_ttl = _ttl("-T", ttl) if ttl else None

    if zonefile is not None:
        if len(keys) != 1:
            raise OptionError("-f", "with -f give exactly one argument: the zone name")
        key_objs = [
            k for k in _keys_from_zonefile(zonefile, _zone_name(keys[0])) if all_keys or k.is_ksk
        ]
    else:
        key_objs = []
        for k in keys:
            path = Path(directory) / k if directory and not Path(k).is_absolute() else Path(k)
            key_objs.append(load_key(path, private=False))

    rtype = "CDS" if cds else "DS"
    ttl_text = f" {out_ttl}" if out_ttl is not None else ""
    for key in key_objs:
        if key.is_revoked:
            click.echo(f"warning: key {key.tag} is revoked; skipping it", err=True)
            continue
        for t in types:
            ds = make_ds(key, t)
            click.echo(
                f"{key.zone.to_text()}{ttl_text} {rdclass.upper()} {rtype} {ds.rdata_text()}"
            )


def _keys_from_zonefile(path: str, origin: dns.name.Name) -> list[Key]:
    text = read_text(path)
    try:
        zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    except dns.exception.SyntaxError as e:
        raise InputError(f"{path}: {e}") from None
    except dns.exception.DNSException as e:
        raise InputError(f"{path}: cannot load zone: {e}") from None
    rds = zone.get_rdataset(origin, dns.rdatatype.DNSKEY)
    if rds is None:
        raise InputError(f"{path}: no DNSKEY records at {origin.to_text()}")
    return [
        Key(
            zone=origin,
            flags=rd.flags,
            algorithm=int(rd.algorithm),
            public_key=bytes(rd.key),
            protocol=rd.protocol,
            ttl=rds.ttl,
        )
        for rd in rds
    ]


# ---------------------------------------------------------------------------- settime

_PRINT_ORDER = (
    ("C", "created"),
    ("P", "publish"),
    ("A", "activate"),
    ("R", "revoke"),
    ("I", "inactive"),
    ("D", "delete"),
    ("Psync", "sync_publish"),
    ("Dsync", "sync_delete"),
    ("Pds", "ds_publish"),
    ("Dds", "ds_delete"),
)
_LABELS = {f.attr: f.label for f in TIMING_FIELDS}
_STATE_OPTIONS = (
    ("-d", "ds", "ds_change"),
    ("-k", "dnskey", "dnskey_change"),
    ("-r", "krrsig", "krrsig_change"),
    ("-z", "zrrsig", "zrrsig_change"),
)


@click.command(cls=BindStyleCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-K", "directory", default=None, help="Directory of the key file.")
@click.option("-L", "ttl", help="Set the DNSKEY TTL ('none' to unset).")
@_time_options(_TIME_OPTIONS + _DS_TIME_OPTIONS)
@click.option(
    "-p",
    "print_what",
    multiple=True,
    help="Print times: C P Psync A R I D Dsync Pds Dds or all (repeatable).",
)
@click.option("-u", "unix", is_flag=True, help="Print times as seconds since the epoch.")
@click.option("-s", "write_state", is_flag=True, help="Update the key state file.")
@click.option("-g", "goal", help="Goal state (with -s): HIDDEN or OMNIPRESENT.")
@click.option("-d", "ds_state", nargs=2, help="DS state and when it changed (with -s).")
@click.option("-k", "dnskey_state", nargs=2, help="DNSKEY state and when (with -s).")
@click.option("-r", "krrsig_state", nargs=2, help="KSK RRSIG state and when (with -s).")
@click.option("-z", "zrrsig_state", nargs=2, help="ZSK RRSIG state and when (with -s).")
@click.argument("keyfile")
def settime(
    directory: str | None,
    ttl: str | None,
    print_what: Sequence[str],
    unix: bool,
    write_state: bool,
    goal: str | None,
    ds_state: tuple[str, str] | None,
    dnskey_state: tuple[str, str] | None,
    krrsig_state: tuple[str, str] | None,
    zrrsig_state: tuple[str, str] | None,
    keyfile: str,
    **times: str | None,
) -> None:
    """Set and print a key's timing metadata and states (like dnssec-settime)."""
    now = clock.now()
    path = (
        Path(directory) / keyfile
        if directory and not Path(keyfile).is_absolute()
        else Path(keyfile)
    )
    key = load_key(path)
    changes: dict[str, int | None] = {}
    for flag, dest, attr, _ in _TIME_OPTIONS + _DS_TIME_OPTIONS:
        value = times.get(dest)
        if value is not None:
            changes[attr] = _when(flag, value, now)
    state_opts = {
        "ds": ds_state,
        "dnskey": dnskey_state,
        "krrsig": krrsig_state,
        "zrrsig": zrrsig_state,
    }
    wants_state = goal is not None or any(v is not None for v in state_opts.values())
    if wants_state and not write_state:
        raise OptionError("-s", "-g, -d, -k, -r and -z change the state file: add -s")
    if "ds_delete" in changes and not write_state and key.state is None:
        raise OptionError("-D ds", "the DS removal time is kept in the .state file: add -s")
    new = key
    if changes:
        new = new.with_timings(new.timings.replace(**changes))
    if ttl is not None:
        new = dataclasses.replace(new, ttl=_ttl("-L", ttl))
    if write_state:
        st = new.state or KeyState()
        updates: dict[str, object] = {}
        if goal is not None:
            updates["goal"] = _record_state("-g", goal)
        for flag, attr, change_attr in _STATE_OPTIONS:
            pair = state_opts[attr]
            if pair is not None:
                updates[attr] = _record_state(flag, pair[0])
                updates[change_attr] = _when(flag, pair[1], now)
        new = new.with_state(st.replace(**updates))
    if new != key or write_state:
        if new.private is None:
            raise click.ClickException(f"{path}: the .private file is needed to change a key")
        KeyDirectory(path.parent).save(new, write_state=write_state or None)
    if print_what:
        _print_times(new, print_what, unix)


def _record_state(option: str, text: str) -> RecordState:
    try:
        return RecordState.parse(text)
    except ValueError:
        raise OptionError(
            option, f"unknown state {text!r} (hidden, rumoured, omnipresent, unretentive)"
        ) from None


def _print_times(key: Key, what: Sequence[str], unix: bool) -> None:
    wanted: list[str] = []
    for w in what:
        if w.lower() == "all":
            wanted = [a for _, a in _PRINT_ORDER]
            break
        for letter, attr in _PRINT_ORDER:
            if w == letter or (len(letter) > 1 and w.lower() == letter.lower()):
                wanted.append(attr)
                break
        else:
            raise OptionError("-p", f"unknown time {w!r} (C P Psync A R I D Dsync Pds Dds all)")
    for attr in wanted:
        value = key.timings.get(attr)
        if value is None:
            shown = "UNSET"
        else:
            shown = str(value) if unix else format_human_time(value)
        click.echo(f"{_LABELS[attr]}: {shown}")


# ---------------------------------------------------------------------------- keyinfo


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("keyfiles", nargs=-1, required=True)
def keyinfo(as_json: bool, keyfiles: Sequence[str]) -> None:
    """One readable summary per key: zone, role, algorithm, size, tag, timings, states."""
    infos = []
    for kf in keyfiles:
        key = load_key(kf)
        infos.append(_key_info(key, Path(kf)))
    if as_json:
        json.dump(infos, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for i, info in enumerate(infos):
        if i:
            click.echo("")
        _print_info(info)


def _key_info(key: Key, path: Path) -> dict[str, Any]:
    alg = algorithms.ALGORITHMS.get(key.algorithm)
    privfile = path.parent / (split_keyfile_name(path.name) + ".private")
    private: dict[str, Any] = {"present": key.private is not None}
    if privfile.exists():
        private["mode"] = f"{stat.S_IMODE(privfile.stat().st_mode):04o}"
    info: dict[str, Any] = {
        "key": key.basename,
        "zone": key.zone.to_text(),
        "role": key.role,
        "flags": key.flags,
        "revoked": key.is_revoked,
        "algorithm": key.algorithm,
        "algorithm_name": alg.mnemonic if alg else f"ALG{key.algorithm}",
        "bits": key.bits,
        "tag": key.tag,
        "ttl": key.ttl,
        "private": private,
        "timings": {
            f.attr: key.timings.get(f.attr) for f in TIMING_FIELDS if key.timings.get(f.attr)
        },
        "ds": {str(t): make_ds(key, t).digest.hex().upper() for t in (2,)},
    }
    if key.state is not None:
        st = key.state
        info["state"] = {
            "goal": st.goal.value if st.goal else None,
            "lifetime": st.lifetime,
            "predecessor": st.predecessor,
            "successor": st.successor,
            **{
                rec: {
                    "state": getattr(st, rec).value if getattr(st, rec) else None,
                    "since": getattr(st, f"{rec}_change"),
                }
                for rec in ("dnskey", "krrsig", "zrrsig", "ds")
            },
        }
    return info


def _fmt_time(ts: int | None) -> str:
    if ts is None:
        return "-"
    return f"{format_bind_time(ts)} ({format_human_time(ts)})"


def _print_info(info: dict[str, Any]) -> None:
    role = info["role"].upper() + (", REVOKED" if info["revoked"] else "")
    priv = info["private"]
    if priv["present"]:
        privtext = "present" + (f" (mode {priv['mode']})" if "mode" in priv else "")
    else:
        privtext = "MISSING"
    rows = [
        ("zone", info["zone"]),
        ("role", f"{role} (flags {info['flags']})"),
        ("algorithm", f"{info['algorithm_name']} ({info['algorithm']}), {info['bits']} bits"),
        ("key tag", str(info["tag"])),
        ("TTL", str(info["ttl"]) if info["ttl"] is not None else "(zone default)"),
        ("private key", privtext),
        ("DS SHA-256", info["ds"]["2"]),
    ]
    for f in TIMING_FIELDS:
        if f.attr in info["timings"]:
            rows.append((f.label.lower(), _fmt_time(info["timings"][f.attr])))
    st = info.get("state")
    if st:
        rows.append(("goal", st["goal"] or "-"))
        if st["lifetime"] is not None:
            rows.append(("lifetime", f"{st['lifetime']} s"))
        for rec in ("dnskey", "krrsig", "zrrsig", "ds"):
            s = st[rec]
            if s["state"]:
                since = f" since {_fmt_time(s['since'])}" if s["since"] else ""
                rows.append((f"{rec.upper()} state", f"{s['state']}{since}"))
    click.echo(info["key"])
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        click.echo(f"  {label + ':':<{width + 1}} {value}")
