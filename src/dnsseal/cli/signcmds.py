"""``dnsseal signzone`` and ``dnsseal verify``: thin shells over
:func:`dnsseal.signfile.sign_file` and :func:`dnsseal.signer.verify_zone`, with
dnssec-signzone's and dnssec-verify's option letters."""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import dns.exception
import dns.name

from dnsseal import clock
from dnsseal.cli import progress
from dnsseal.durations import format_bind_time, parse_duration, parse_when
from dnsseal.errors import InputError, OptionError
from dnsseal.findings import Severity
from dnsseal.signer.parallel import ProcessBatchSigner, ProcessBatchVerifier
from dnsseal.signer.sign import SERIAL_POLICIES, SignParams
from dnsseal.signer.verify import VerifyOptions, verify_zone
from dnsseal.signfile import (
    Edits,
    SignFileRequest,
    VerificationFailed,
    nsec3_choice,
    sign_file,
    watch_parent,
)
from dnsseal.storage import zonefile

_CTX = {"help_option_names": ["-h", "--help"]}
log = logging.getLogger(__name__)
# From this size on, the snapshot of the signed file is made in a helper process, in
# parallel with the writing (for a small zone, starting a process costs more than it saves).
_HELPER_MIN = 1 << 20


def _origin(option: str, text: str | None, zonefile_path: str) -> dns.name.Name:
    """-o ORIGIN, defaulting to the zone file's name as dnssec-signzone does."""
    raw = text if text is not None else Path(zonefile_path).name
    try:
        return dns.name.from_text(raw).canonicalize()
    except dns.exception.DNSException as e:
        raise OptionError(option, f"bad zone name {raw!r}: {e}") from None


def _when(option: str, text: str | None, now: int, base: int | None = None) -> int | None:
    if text is None:
        return None
    try:
        value = parse_when(text, now, base=base)
    except InputError as e:
        raise OptionError(option, str(e)) from None
    if value is None:
        raise OptionError(option, "a time is required here, not 'none'")
    return value


def _duration(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except InputError as e:
        raise OptionError(option, str(e)) from None


def _verbosity(level: int | None) -> None:
    """dnssec-signzone's ``-v LEVEL`` (given after the subcommand): 1 and 2 log info,
    3 and up debug."""
    if level is None:
        return
    if level < 0:
        raise OptionError("-v", f"a level is 0 or more, got {level}")
    wanted = logging.DEBUG if level >= 3 else logging.INFO if level >= 1 else logging.WARNING
    root = logging.getLogger()
    root.setLevel(min(root.level, wanted) if root.level else wanted)


def _formats(output_format: str, input_format: str) -> None:
    """-O and -I: which of BIND's formats dnsseal reads and writes (and why not the rest)."""
    if output_format.lower() not in ("text", "full"):
        raise OptionError(
            "-O",
            f"{output_format!r}: dnsseal writes text (also called full: one record per line, "
            "absolute names); BIND's binary raw format is not written (named loads the text "
            "file; named-compilezone -F raw converts it)",
        )
    if input_format.lower() != "text":
        raise OptionError(
            "-I",
            f"{input_format!r}: dnsseal reads text zone files; convert a raw file with "
            "named-compilezone -f raw -F text",
        )


class _ProgressBar:
    """A rich progress bar on stderr, shown only once signing has taken over a second."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None

    def update(self, done: int, total: int) -> None:
        if self._progress is None:
            if time.perf_counter() - self._start < 1.0 or done >= total:
                return
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("Signing", total=total)
        self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_stats(stats_generated: int, retained: int, dropped: int, sign_s: float,
                 run_s: float) -> None:  # fmt: skip
    rate = stats_generated / sign_s if sign_s > 0 else 0.0
    rows = [
        ("Signatures generated:", str(stats_generated)),
        ("Signatures retained:", str(retained)),
        ("Signatures dropped:", str(dropped)),
        ("Signing time in seconds:", f"{sign_s:.3f}"),
        ("Signatures per second:", f"{rate:.3f}"),
        ("Runtime in seconds:", f"{run_s:.3f}"),
    ]
    for label, value in rows:
        click.echo(f"{label:<36}{value:>12}")


@click.command(context_settings=_CTX)
@click.argument("zonefile_path", metavar="ZONEFILE")
@click.argument("keyfiles", nargs=-1, metavar="[KEY...]")
@click.option("-o", "origin_text", metavar="ORIGIN", help="Zone origin (default: file name).")
@click.option("-f", "output", metavar="OUTPUT", help="Output file (default ZONEFILE.signed).")
@click.option("-K", "keydir", metavar="DIR", default=".", show_default=True,
              help="Key directory.")  # fmt: skip
@click.option("-S", "smart", is_flag=True, help="Smart signing: keys by timing metadata.")
@click.option("-3", "salt", metavar="SALT", help="Use NSEC3 with this hex salt ('-': none).")
@click.option("-H", "iterations", type=int, default=0, show_default=True,
              help="NSEC3 extra iterations (RFC 9276: use 0).")  # fmt: skip
@click.option("-A", "opt_out", is_flag=True, help="NSEC3 opt-out for unsigned delegations.")
@click.option("--force-iterations", is_flag=True,
              help="Allow NSEC3 iterations above 0 (still at most 100).")  # fmt: skip
@click.option("-s", "start", metavar="TIME", help="Signature inception (default now-1h).")
@click.option("-e", "end", metavar="TIME", help="Signature expiration (default start+30d).")
@click.option("-i", "interval", metavar="DURATION",
              help="Re-sign signatures expiring within this (default: validity/4).")  # fmt: skip
@click.option("-j", "jitter", metavar="DURATION", help="Spread expirations over this much.")
@click.option("-N", "serial", type=click.Choice(SERIAL_POLICIES, case_sensitive=False),
              default="keep", show_default=True,
              help="SOA serial format (any case, as dnssec-signzone).")  # fmt: skip
@click.option("-O", "output_format", metavar="FORMAT", default="text", show_default=True,
              help="Output format: text or full (both: one record per line, absolute names); "
                   "BIND's binary raw format is not written.")  # fmt: skip
@click.option("-I", "input_format", metavar="FORMAT", default="text", show_default=True,
              help="Input format: text (BIND's binary raw format is not read).")  # fmt: skip
@click.option("-P", "no_verify", is_flag=True,
              help="Skip the verification of the signed zone (done by default, as "
                   "dnssec-signzone does: nothing is written when it fails).")  # fmt: skip
@click.option("-D", "dnssec_only", is_flag=True,
              help="Output only the records signing adds (RRSIG, NSEC, NSEC3, NSEC3PARAM; "
                   "DNSKEY too with -S), for $INCLUDE in the zone file.")  # fmt: skip
@click.option("-g", "ds_from_dsset", is_flag=True,
              help="Replace the DS records of child zones with those of their "
                   "dsset-CHILD. files (in -d DIR).")  # fmt: skip
@click.option("-d", "dsset_dir", metavar="DIR", default=".", show_default=True,
              help="Where -g finds dsset- files.")  # fmt: skip
@click.option("-M", "max_ttl", metavar="TTL",
              help="Cap every TTL of the zone at TTL before signing.")  # fmt: skip
@click.option("-X", "keyset_end", metavar="TIME",
              help="Expiration of the DNSKEY RRset's signatures (default: as -e).")  # fmt: skip
@click.option("-u", "update_chain", is_flag=True,
              help="Update the NSEC/NSEC3 chain: dnsseal always builds the chain the options "
                   "ask for (-3/-H/-A or NSEC), so -u is what it does anyway.")  # fmt: skip
@click.option("-R", "remove_unpublished", is_flag=True,
              help="Drop signatures of keys no longer published: dnsseal keeps only signatures "
                   "of the keys it signs with, so -R is what it does anyway.")  # fmt: skip
@click.option("-v", "verbosity", type=int, metavar="LEVEL", default=None,
              help="Log level, as dnssec-signzone's -v (1: info, 3 and up: debug).")  # fmt: skip
@click.option("-x", "ksk_only", is_flag=True, help="Sign the DNSKEY RRset with KSKs only.")
@click.option("-z", "ignore_ksk", is_flag=True, help="Ignore the KSK flag: all keys sign all.")
@click.option("-n", "workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes for signing and checks.")  # fmt: skip
@click.option("-T", "dnskey_ttl", metavar="TTL",
              help="DNSKEY RRset TTL (default: the zone's, the keys', SOA minimum).")  # fmt: skip
@click.option("-a", "check", is_flag=True,
              help="Verify the signed zone (dnsseal verify) before writing it.")  # fmt: skip
@click.option(
    "--skr",
    "skr",
    metavar="FILE",
    help="Offline KSK: the DNSKEY/CDS/CDNSKEY RRsets and their signatures from "
    "this Signed Key Response (the bundle for now); the key directory's ZSKs sign "
    "the rest by their timing metadata.",
)
@click.option("-t", "stats", is_flag=True, help="Print statistics.")
@click.option("-q", "quiet", is_flag=True, help="Quiet: do not print the output file name.")
@click.option("--ledger/--no-ledger", "use_ledger", default=True, show_default=True,
              help="Keep signatures listed in the signature ledger (OUTPUT.ledger or "
                   "ZONEFILE.ledger) without verifying them, re-sign an edited signed file "
                   "from the snapshot in ZONEFILE.ledger, and write OUTPUT.ledger.  "
                   "With --no-ledger the whole file is read and every kept signature is "
                   "verified, as dnssec-signzone does.")  # fmt: skip
def signzone(
    zonefile_path: str,
    keyfiles: tuple[str, ...],
    origin_text: str | None,
    output: str | None,
    keydir: str,
    smart: bool,
    salt: str | None,
    iterations: int,
    opt_out: bool,
    force_iterations: bool,
    start: str | None,
    end: str | None,
    interval: str | None,
    jitter: str | None,
    serial: str,
    ksk_only: bool,
    ignore_ksk: bool,
    workers: int,
    dnskey_ttl: str | None,
    check: bool,
    skr: str | None,
    stats: bool,
    quiet: bool,
    use_ledger: bool,
    output_format: str,
    input_format: str,
    no_verify: bool,
    dnssec_only: bool,
    ds_from_dsset: bool,
    dsset_dir: str,
    max_ttl: str | None,
    keyset_end: str | None,
    update_chain: bool,
    remove_unpublished: bool,
    verbosity: int | None,
) -> None:
    """Sign ZONEFILE with the given KEY files and/or (-S) the keys in the key directory.

    Signatures already in ZONEFILE are kept when they are valid, made by a key that signs
    the RRset and not due for refresh (smart re-sign).  Checking that a kept signature is
    valid costs more than making a new one, so dnsseal skips the check for signatures in
    its signature ledger: OUTPUT.ledger, written next to each signed output, lists a keyed
    digest (the key being derived from the private key) of every signature it holds
    together with the exact RRset and key it covers.  Only a signature that dnsseal made or
    verified over exactly the same data with the same key matches; everything else is
    verified.  --no-ledger verifies everything.

    The ledger file also holds a snapshot of the signed file's text: one digest per owner's
    block of lines.  Re-signing that file after editing it (in place, or writing elsewhere)
    reads only the blocks that changed and the few their change touches, and copies the
    rest as it is; the result is what reading the whole file gives.  Anything it cannot
    vouch for (other keys or options, directives among the changes, a damaged snapshot)
    makes it read the whole file instead; -v says which way it went and why.
    """
    t0 = time.perf_counter()
    now = clock.now()
    _verbosity(verbosity)
    serial = serial.lower()
    _formats(output_format, input_format)
    if dnssec_only and (serial != "keep" or max_ttl is not None):
        raise OptionError("-D", "cannot be combined with -N (serial updating) or -M")
    origin = _origin("-o", origin_text, zonefile_path)
    nsec3 = nsec3_choice(salt, iterations, opt_out, force_iterations)
    inception = _when("-s", start, now)
    base = inception if inception is not None else now - 3600
    expiration = _when("-e", end, now, base=base)
    keyset_expiration = _when("-X", keyset_end, now, base=base)
    edits = Edits(
        _duration("-M", max_ttl),
        Path(dsset_dir) if ds_from_dsset else None,
        dnssec_only,
        smart,
    )
    bar = _ProgressBar() if not quiet and sys.stderr.isatty() else None
    watch = functools.partial(watch_parent, os.getpid())  # workers end if signzone is killed
    params = SignParams(
        inception=inception,
        expiration=expiration,
        keyset_expiration=keyset_expiration,
        jitter=_duration("-j", jitter) or 0,
        refresh=_duration("-i", interval),
        nsec3=nsec3,
        serial=serial,
        ksk_only=ksk_only,
        ignore_ksk_flag=ignore_ksk,
        dnskey_ttl=_duration("-T", dnskey_ttl),
        batch=ProcessBatchSigner(workers, progress=bar.update if bar else None, setup=watch),
        verify_batch=ProcessBatchVerifier(workers, setup=watch),
    )
    request = SignFileRequest(
        zonefile_path,
        origin,
        params,
        output=output,
        keydir=keydir,
        smart=smart,
        keyfiles=keyfiles,
        use_ledger=use_ledger,
        check=check,
        verify=not no_verify,
        edits=edits,
        skr=skr,
        workers=workers,
        progress=bar.update if bar else None,
    )
    t1 = time.perf_counter()
    try:
        report = sign_file(request, now, stdout=sys.stdout)
    except VerificationFailed as e:
        for f in e.findings:
            click.echo(str(f), err=True)
        raise click.ClickException(str(e)) from None
    finally:
        if bar is not None:
            bar.close()
    t2 = time.perf_counter()
    if stats and report.stats is not None:
        done = report.stats
        _print_stats(done.generated, done.retained, done.dropped, t2 - t1,
                     time.perf_counter() - t0)  # fmt: skip
    if not quiet and report.output != "-":
        click.echo(report.output)


@click.command(context_settings=_CTX)
@click.argument("zonefile_path", metavar="ZONEFILE")
@click.option("-o", "origin_text", metavar="ORIGIN", help="Zone origin (default: file name).")
@click.option("-t", "at", metavar="TIME", help="Check validity at TIME (default now).")
@click.option("-x", "ksk_only", is_flag=True,
              help="As dnssec-verify -x (ZSK signatures on DNSKEY are not required).")  # fmt: skip
@click.option("-z", "ignore_ksk", is_flag=True,
              help="Ignore the KSK flag: any key may sign the DNSKEY RRset.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
@click.option("-n", "workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes for checking signatures.")  # fmt: skip
@click.option("--expire-within", metavar="DURATION",
              help="Warn about signatures expiring within DURATION (e.g. P7D).")  # fmt: skip
@click.pass_context
def verify(
    ctx: click.Context,
    zonefile_path: str,
    origin_text: str | None,
    at: str | None,
    ksk_only: bool,
    ignore_ksk: bool,
    as_json: bool,
    workers: int,
    expire_within: str | None,
) -> None:
    """Verify a signed zone: signatures, chains, placement and parameters.

    Exit status: 0 when clean, 1 when there are errors, 2 when there are only warnings.
    """
    real_now = clock.now()
    origin = _origin("-o", origin_text, zonefile_path)
    now = _when("-t", at, real_now) if at is not None else real_now
    assert now is not None
    options = VerifyOptions(
        ksk_only=ksk_only,
        ignore_ksk_flag=ignore_ksk,
        expire_within=_duration("--expire-within", expire_within) or 0,
        batch=ProcessBatchVerifier(workers, setup=functools.partial(watch_parent, os.getpid())),
    )
    size = progress.total_size([Path(zonefile_path)])
    with progress.activity(f"Verifying {origin}", size):
        zone = zonefile.read_zone(zonefile_path, origin)
        findings = verify_zone(zone, now, options)
    errors = sum(f.severity is Severity.ERROR for f in findings)
    warnings = sum(f.severity is Severity.WARNING for f in findings)
    if as_json:
        import json

        doc = {
            "zone": origin.to_text(),
            "time": now,
            "clean": not errors and not warnings,
            "errors": errors,
            "warnings": warnings,
            "findings": [f.to_dict() for f in findings],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for f in findings:
            click.echo(str(f))
        if errors or warnings:
            click.echo(f"{origin}: {errors} error(s), {warnings} warning(s)", err=True)
        else:
            click.echo(f"Zone {origin} is verified and complete at {format_bind_time(now)}")
    ctx.exit(1 if errors else 2 if warnings else 0)
