"""``dnsseal ksr sign|validate``: the offline KSK's side of the offline-KSK workflow, in the
file format of Knot's ``keymgr generate-ksr`` / ``sign-ksr`` (see :mod:`dnsseal.keys.ksr`).

The online signer (Knot here) writes a Key Signing Request for a period; the KSK holder signs
it with ``dnsseal ksr sign`` (the KSK in files or in an HSM, linked with ``keyfromlabel``)
and gives back the Signed Key Response, which the online signer imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
import dns.exception
import dns.name

from dnsseal import __version__, clock
from dnsseal.durations import parse_duration, parse_when
from dnsseal.errors import InputError, OptionError
from dnsseal.keys import ksr
from dnsseal.keys.model import Key
from dnsseal.signer.skr import SkrParams, check_response, make_request, sign_request
from dnsseal.storage import atomic
from dnsseal.storage.files import read_text
from dnsseal.storage.keydir import KeyDirectory, load_key

_CTX = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=_CTX)
def ksr_group() -> None:
    """Offline KSK: sign Key Signing Requests, check Signed Key Responses."""


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
@click.option("-o", "output", help="Write the response here (default: standard output).")
@click.argument("request")
def sign(
    directory: str,
    keyfiles: Sequence[str],
    validity: str,
    refresh: str,
    output: str | None,
    request: str,
) -> None:
    """Sign the Key Signing Request REQUEST with the zone's KSKs: print the Signed Key
    Response (like keymgr sign-ksr).  The KSKs are the -k files, or every KSK of the zone
    in -K with its private key (in a file or an HSM)."""
    bundles = ksr.parse(read_text(request), ksr.KSR, request)
    zone = ksr.zone_of(bundles, request)
    params = SkrParams(_duration("-i", validity), _duration("-r", refresh))
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
@click.argument("zone")
@click.argument("start")
@click.argument("end")
def request(directory: str, ttl: str, output: str | None, zone: str, start: str, end: str) -> None:
    """Print the Key Signing Request for ZONE's ZSKs from START to END (like keymgr
    generate-ksr): bundles at START, whenever a ZSK is published or deleted (timing
    metadata) and at END.  Times: YYYYMMDDHHMMSS, +offset, now, now+offset."""
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
