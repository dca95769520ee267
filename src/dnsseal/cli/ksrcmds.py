"""``dnsseal ksr keygen|request|sign|validate|import``: the offline-KSK workflow, in the file
format of Knot's ``keymgr generate-ksr`` / ``sign-ksr`` (see :mod:`dnsseal.keys.ksr`).

The online signer pregenerates ZSKs (``keygen``) and writes a Key Signing Request for a
period (``request``); the KSK holder signs it (``sign``: the KSK in files or in an HSM,
linked with ``keyfromlabel``) and gives back the Signed Key Response, which the online
signer checks and stores in its key directory (``import``) for ``serve`` and ``signzone``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
import dns.dnssec
import dns.exception
import dns.name

from dnsseal import __version__, clock
from dnsseal.durations import parse_duration, parse_when
from dnsseal.errors import InputError, OptionError
from dnsseal.keys import ksr
from dnsseal.keys.ds import digest_type
from dnsseal.keys.model import FLAG_ZONE, Key, new_key
from dnsseal.policy.build import lookup
from dnsseal.policy.model import KeySpec
from dnsseal.signer.skr import (
    SkrParams,
    check_response,
    make_request,
    pregenerate,
    sign_request,
)
from dnsseal.storage import atomic, config
from dnsseal.storage.files import read_text
from dnsseal.storage.keydir import KeyDirectory, generate, load_key

_CTX = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=_CTX)
def ksr_group() -> None:
    """Offline KSK: pregenerate ZSKs, make and sign Key Signing Requests, check and import
    Signed Key Responses."""


def _duration(option: str, text: str) -> int:
    try:
        return parse_duration(text)
    except InputError as e:
        raise OptionError(option, str(e)) from None


def _ksks(directory: str, keyfiles: Sequence[str], zone: object) -> list[Key]:
    if keyfiles:
        keys = [load_key(f) for f in keyfiles]
    else:
        keys = [
            k
            for k in KeyDirectory(directory).keys(zone)  # type: ignore[arg-type]
            if k.is_ksk and not k.is_revoked and k.private is not None
        ]
    for k in keys:
        if k.private is None:
            raise OptionError(k.basename, "the private key file is missing; cannot sign with it")
        if not k.is_ksk:
            raise OptionError(k.basename, "not a KSK (no SEP flag)")
    if not keys:
        raise OptionError("-K", f"no KSK of {zone} with a private key in {directory}")
    return keys


@ksr_group.command("sign", context_settings=_CTX)
@click.option("-K", "directory", default=".", show_default=True, help="Key directory (KSKs).")
@click.option("-k", "keyfiles", multiple=True, help="Sign with this KSK only (repeatable).")
@click.option("-i", "validity", default="14d", show_default=True, help="Signature validity.")
@click.option("-r", "refresh", default="7d", show_default=True, help="A new bundle every...")
@click.option(
    "--cds",
    "cds",
    multiple=True,
    metavar="DIGEST",
    help="Put CDS records of this digest type (SHA-256, 2, ...) for the KSKs in "
    "every bundle (repeatable).",
)
@click.option("--cdnskey", is_flag=True, help="Put CDNSKEY records for the KSKs in every bundle.")
@click.option("-o", "output", help="Write the response here (default: standard output).")
@click.argument("request")
def sign(
    directory: str,
    keyfiles: Sequence[str],
    validity: str,
    refresh: str,
    cds: Sequence[str],
    cdnskey: bool,
    output: str | None,
    request: str,
) -> None:
    """Sign the Key Signing Request REQUEST with the zone's KSKs: print the Signed Key
    Response (like keymgr sign-ksr).  The KSKs are the -k files, or every KSK of the zone
    in -K with its private key (in a file or an HSM)."""
    bundles = ksr.parse(read_text(request), ksr.KSR, request)
    zone = ksr.zone_of(bundles, request)
    try:
        digests = tuple(digest_type(d).number for d in cds)
    except InputError as e:
        raise OptionError("--cds", str(e)) from None
    params = SkrParams(_duration("-i", validity), _duration("-r", refresh), cds=digests,
                       cdnskey=cdnskey)  # fmt: skip
    response = sign_request(bundles, _ksks(directory, keyfiles, zone), params)
    text = ksr.format_bundles(ksr.SKR, response, clock.now(), f"dnsseal {__version__}")
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic.replace(Path(output), text.encode(), 0o644)


@ksr_group.command("request", context_settings=_CTX)
@click.option("-K", "directory", default=".", show_default=True, help="Key directory (ZSKs).")
@click.option("-L", "ttl", default="3600", show_default=True, help="DNSKEY TTL.")
@click.option("-o", "output", help="Write the request here (default: standard output).")
@click.option("-i", "start_opt", help="START, as dnssec-ksr request spells it.")
@click.option("-e", "end_opt", help="END, as dnssec-ksr request spells it.")
@click.argument("zone")
@click.argument("start", required=False)
@click.argument("end", required=False)
def request(
    directory: str,
    ttl: str,
    output: str | None,
    start_opt: str | None,
    end_opt: str | None,
    zone: str,
    start: str | None,
    end: str | None,
) -> None:
    """Print the Key Signing Request for ZONE's ZSKs from START to END (like keymgr
    generate-ksr ZONE START END, or dnssec-ksr request -i START -e END ZONE): bundles at
    START, whenever a ZSK is published or deleted (timing metadata) and at END.  Times:
    YYYYMMDDHHMMSS, +offset, now, now+offset."""
    if (start_opt or end_opt) and (start or end):
        raise OptionError("-i", "give the period either as -i/-e or as START END, not both")
    start, end = (start_opt or "now", end_opt) if start_opt or end_opt else (start, end)
    if start is None or end is None:
        raise OptionError("END", "the end of the period is needed (END, or -e)")
    now = clock.now()
    name = _zone(zone)
    zsks = [k for k in KeyDirectory(directory).keys(name) if not k.is_ksk]
    bundles = make_request(zsks, _when("START", start, now), _when("END", end, now),
                           _duration("-L", ttl))  # fmt: skip
    text = ksr.format_bundles(ksr.KSR, bundles, now, f"dnsseal {__version__}")
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic.replace(Path(output), text.encode(), 0o644)


def _when(option: str, text: str, now: int) -> int:
    try:
        value = parse_when(text, now)
    except InputError as e:
        raise OptionError(option, str(e)) from None
    if value is None:
        raise OptionError(option, "a time is needed")
    return value


def _zone(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise OptionError("ZONE", f"bad zone name {text!r}: {e}") from None


@ksr_group.command("validate", context_settings=_CTX)
@click.argument("response")
def validate(response: str) -> None:
    """Check a Signed Key Response: every bundle's DNSKEY RRset signed by a KSK in it, valid
    from the bundle's time until the next bundle's (like keymgr validate-skr)."""
    bundles = ksr.parse(read_text(response), ksr.SKR, response)
    problems = check_response(bundles)
    for p in problems:
        click.echo(f"{response}: {p}", err=True)
    if problems:
        raise click.ClickException(f"{response}: {len(problems)} problem(s)")
    click.echo(
        f"{response}: {len(bundles)} bundles for {ksr.zone_of(bundles, response)} "
        f"from {bundles[0].time} to {bundles[-1].time}: ok"
    )


@ksr_group.command("keygen", context_settings=_CTX)
@click.option("-K", "directory", default=".", show_default=True, help="Key directory (ZSKs).")
@click.option("-k", "policy_name", required=True, help="dnssec-policy name (its ZSK line).")
@click.option("-l", "conf", help="TOML or named.conf file defining the policy.")
@click.option("-i", "start", default="now", show_default=True, help="Start of the period.")
@click.option("-e", "end", required=True, help="End of the period.")
@click.argument("zone")
def keygen(directory: str, policy_name: str, conf: str | None, start: str, end: str,
           zone: str) -> None:  # fmt: skip
    """Pregenerate ZONE's ZSKs from -i to -e, rolled by the policy's ZSK lifetime (like
    dnssec-ksr keygen and keymgr pregenerate): the chain continues from the ZSKs in -K.
    Prints the new keys' basenames.  Times: YYYYMMDDHHMMSS, +offset, now, now+offset."""
    now = clock.now()
    name = _zone(zone)
    try:
        policy = lookup(policy_name, config.load_policies(conf))
    except OptionError as e:
        raise OptionError("-k", e.message) from None  # lookup names the option -p
    kd = KeyDirectory(directory)
    existing = kd.keys(name)
    made: list[Key] = []

    def make(spec: KeySpec) -> Key:
        def one() -> Key:
            public, private = generate(spec)
            return Key(name, FLAG_ZONE, spec.algorithm, public, private=private)

        def collided(key: Key) -> None:
            click.echo(f"key tag {key.tag} collides with an existing key; generating another",
                       err=True)  # fmt: skip

        # (the keys of the period collide neither with the zone's nor with each other)
        made.append(new_key(one, existing + made, collided=collided))
        return made[-1]

    try:
        new, changed = pregenerate(policy, name, existing, _when("-i", start, now),
                                   _when("-e", end, now), make)  # fmt: skip
    except InputError as e:
        raise OptionError("-k", str(e)) from None
    kd.write(create=new, save=changed)
    for k in new:
        click.echo(k.basename)


@ksr_group.command("import", context_settings=_CTX)
@click.option("-K", "directory", default=".", show_default=True, help="Key directory.")
@click.argument("response")
def import_(directory: str, response: str) -> None:
    """Check the Signed Key Response RESPONSE (as ksr validate) and store it in the key
    directory for serve and signzone (like keymgr import-skr): bundles from its first one
    on replace those held."""
    bundles = ksr.parse(read_text(response), ksr.SKR, response)
    zone = ksr.zone_of(bundles, response)
    problems = check_response(bundles)
    if problems:
        for p in problems:
            click.echo(f"{response}: {p}", err=True)
        raise click.ClickException(f"{response}: {len(problems)} problem(s); not imported")
    kd = KeyDirectory(directory)
    have = {k.dnskey() for k in kd.keys(zone)}
    for b in bundles:
        for rd in ksr.dnskey_rrset(b) or ():
            if not rd.flags & 1 and rd not in have:
                click.echo(f"{response}: warning: bundle at {b.time}: ZSK "
                           f"{dns.dnssec.key_id(rd)} has no key files in {directory}",
                           err=True)  # fmt: skip
    path = Path(directory) / ksr.skr_filename(zone)
    held: list[ksr.Bundle] = []
    if path.exists():
        held = ksr.parse(read_text(path), ksr.SKR, str(path))
    merged = ksr.merge(held, bundles)
    text = ksr.format_bundles(ksr.SKR, merged, clock.now(), f"dnsseal {__version__}")
    atomic.replace(path, text.encode(), 0o644)
    click.echo(f"{path}: {len(merged)} bundles for {zone} from {merged[0].time} "
               f"to {merged[-1].time}")  # fmt: skip
