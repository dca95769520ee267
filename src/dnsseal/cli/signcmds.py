"""``dnsseal signzone`` and ``dnsseal verify``: thin shells over :mod:`dnsseal.signer`,
with dnssec-signzone's and dnssec-verify's option letters."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import dns.exception
import dns.name
import dns.rdatatype
import dns.zone

from dnsseal import clock
from dnsseal.cli import progress
from dnsseal.durations import format_bind_time, parse_duration, parse_when
from dnsseal.errors import InputError, OptionError
from dnsseal.findings import Severity
from dnsseal.keys import ksr
from dnsseal.keys.model import Key, zone_file_text
from dnsseal.signer import Nsec3Params, SigningKey, SignParams, check_iterations, sign_zone
from dnsseal.signer.keysel import smart_select
from dnsseal.signer.ledger import SignatureLedger, pack_ledger, parse_ledger, unpack_ledger
from dnsseal.signer.parallel import ProcessBatchSigner, ProcessBatchVerifier, ProcessSnapshot
from dnsseal.signer.resign import Fallback, resign_file
from dnsseal.signer.sign import SERIAL_POLICIES, SignStats
from dnsseal.signer.skr import check_response, sign_with_response
from dnsseal.signer.snapshot import SnapshotBuilder, mac_key, zone_file_blocks
from dnsseal.signer.verify import VerifyOptions, verify_zone
from dnsseal.storage import zonefile
from dnsseal.storage.files import read_text
from dnsseal.storage.keydir import KeyDirectory, load_key
from dnsseal.zone import canonical
from dnsseal.zone.model import Zone, ZoneBuilder
from dnsseal.zone.text import header_text, paused_gc

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


def _salt(text: str) -> bytes:
    if text == "-":
        return b""
    try:
        salt = bytes.fromhex(text)
    except ValueError:
        raise OptionError("-3", f"salt {text!r} is not hexadecimal (or '-' for none)") from None
    if len(salt) > 255:
        raise OptionError("-3", "salt longer than 255 octets")
    return salt


def _select_keys(
    zone: Zone, keydir: str, smart: bool, keyfiles: tuple[str, ...], now: int
) -> list[SigningKey]:
    """Explicit key files (published and signing), plus with -S the key directory by timing
    metadata; with neither, the keys in the key directory whose DNSKEY is in the zone
    (``zone`` is only read then; otherwise only its origin is used)."""
    chosen: dict[tuple[int, int, bytes], SigningKey] = {}
    for f in keyfiles:
        key = load_key(f)
        if key.private is None:
            raise OptionError(f, "the private key file is missing; cannot sign with it")
        chosen[(key.algorithm, key.tag, key.public_key)] = SigningKey(key)
    if smart or not keyfiles:
        _refuse_misnamed_keys(keydir, zone.origin)
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


def _refuse_misnamed_keys(keydir: str, origin: dns.name.Name) -> None:
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


def _verify_or_fail(zone: Zone, now: int, params: SignParams) -> None:
    """The post-signing verification (dnssec-signzone's, skipped with -P): errors are
    printed and nothing is written."""
    options = VerifyOptions(ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    errors = [f for f in verify_zone(zone, now, options) if f.severity is Severity.ERROR]
    if errors:
        for f in errors:
            click.echo(str(f), err=True)
        raise click.ClickException(
            f"the signed zone failed verification ({len(errors)} errors); nothing written "
            "(-P skips the verification)"
        )


_SIGNER_TYPES = frozenset(
    int(t)
    for t in (
        dns.rdatatype.RRSIG,
        dns.rdatatype.NSEC,
        dns.rdatatype.NSEC3,
        dns.rdatatype.NSEC3PARAM,
    )
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Edits:
    """What -M, -g and -D change around the signing (each makes signzone read the whole
    file and write no ledger)."""

    max_ttl: int | None = None
    dsset_dir: Path | None = None  # -g: DS records from dsset- files here
    dnssec_only: bool = False  # -D
    with_dnskey: bool = False  # -D with -S: DNSKEY records too

    @property
    def any(self) -> bool:
        return self.max_ttl is not None or self.dsset_dir is not None or self.dnssec_only

    def before(self, zone: Zone) -> Zone:
        """The zone to sign: TTLs capped (-M), child DS records from dsset- files (-g)."""
        if self.max_ttl is None and self.dsset_dir is None:
            return zone
        ds_sets = self._ds_sets(zone) if self.dsset_dir is not None else {}
        b = ZoneBuilder(zone.origin, zone.rdclass)
        cap = self.max_ttl
        for rr in zone.iter_rrsets():
            if rr.rtype == dns.rdatatype.DS and rr.name in ds_sets:
                continue
            ttl = min(rr.ttl, cap) if cap is not None else rr.ttl
            for rd in rr.rdatas:
                b.add(rr.name, rr.rtype, ttl, rd)
        for sigs in zone.rrsigs.values():
            for rr in sigs.values():
                ttl = min(rr.ttl, cap) if cap is not None else rr.ttl
                for rd in rr.rdatas:
                    b.add(rr.name, rr.rtype, ttl, rd)
        for name, records in ds_sets.items():
            for ttl, rd in records:
                b.add(name, dns.rdatatype.DS, min(ttl, cap) if cap is not None else ttl, rd)
        return b.build()

    def _ds_sets(self, zone: Zone) -> dict[dns.name.Name, list[tuple[int, bytes]]]:
        """Per delegation with a dsset-CHILD. file: its DS records (TTL, RDATA)."""
        assert self.dsset_dir is not None
        out: dict[dns.name.Name, list[tuple[int, bytes]]] = {}
        for name, node in zone.rrsets.items():
            if name == zone.origin or dns.rdatatype.NS not in node:
                continue
            path = self.dsset_dir / f"dsset-{name.to_text()}"
            if not path.is_file():
                log.info("[%s] -g: no %s: DS records of %s kept", zone.origin, path, name)
                continue
            ttl = node[dns.rdatatype.NS].ttl  # for lines without a TTL, as the NS set's
            try:
                parsed = dns.zone.from_text(
                    f"$TTL {ttl}\n" + read_text(path), origin=name, check_origin=False
                )
            except dns.exception.DNSException as e:
                raise OptionError("-g", f"{path}: {e}") from None
            rdataset = parsed.get_rdataset(name, dns.rdatatype.DS)
            if rdataset is None:
                raise OptionError("-g", f"{path}: no DS records for {name}")
            out[name] = [(rdataset.ttl, canonical.rdata_wire(rd)) for rd in rdataset]
        return out

    def only_dnssec(self, zone: Zone) -> Zone:
        """-D: the records signing made (and DNSKEY with -S), for $INCLUDE."""
        b = ZoneBuilder(zone.origin, zone.rdclass)
        keep = _SIGNER_TYPES | ({int(dns.rdatatype.DNSKEY)} if self.with_dnskey else set())
        for rr in zone.iter_rrsets():
            if rr.rtype in keep:
                for rd in rr.rdatas:
                    b.add(rr.name, rr.rtype, rr.ttl, rd)
        for sigs in zone.rrsigs.values():
            for rr in sigs.values():
                for rd in rr.rdatas:
                    b.add(rr.name, rr.rtype, rr.ttl, rd)
        return b.build()


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
    nsec3 = None
    if salt is not None:
        try:
            check_iterations(iterations, force=force_iterations)
        except InputError as e:
            raise OptionError("-H", str(e)) from None
        nsec3 = Nsec3Params(salt=_salt(salt), iterations=iterations, opt_out=opt_out)
    elif opt_out or iterations:
        raise OptionError("-A" if opt_out else "-H", "only meaningful with NSEC3 (-3 SALT|-)")
    inception = _when("-s", start, now)
    base = inception if inception is not None else now - 3600
    expiration = _when("-e", end, now, base=base)
    keyset_expiration = _when("-X", keyset_end, now, base=base)
    edits = _Edits(
        _duration("-M", max_ttl),
        Path(dsset_dir) if ds_from_dsset else None,
        dnssec_only,
        smart,
    )
    out = output or f"{zonefile_path}.signed"
    header = [f"File written on {format_bind_time(now)} by dnsseal signzone"]
    bar = _ProgressBar() if not quiet and sys.stderr.isatty() else None
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
        batch=ProcessBatchSigner(workers, progress=bar.update if bar else None),
        verify_batch=ProcessBatchVerifier(workers),
    )
    t1 = time.perf_counter()
    if skr is not None:
        _sign_with_response(zonefile_path, out, origin, keydir, skr, now, params, header)
        if not quiet and out != "-":
            click.echo(out)
        return
    try:
        with paused_gc():  # a run over acyclic data: collections would only rescan the zone
            done: SignStats | None = None
            if not use_ledger or out == "-" or check or edits.any:
                why = (
                    "--no-ledger"
                    if not use_ledger
                    else "-a"
                    if check
                    else "output to stdout"
                    if out == "-"
                    else "-D, -g or -M"
                )
                log.info("[%s] reading the whole file: %s", origin, why)
            elif not smart and not keyfiles:
                log.info("[%s] reading the whole file: keys chosen by its DNSKEY records", origin)
            else:
                keys = _select_keys(Zone(origin, {}), keydir, smart, keyfiles, now)
                done = _resign_from_snapshot(zonefile_path, out, origin, keys, params, now,
                                             header, verify=not no_verify)  # fmt: skip
            if done is None:
                done = _sign_careful(zonefile_path, out, origin, keydir, smart, keyfiles, now,
                                     params, use_ledger and not edits.any,
                                     check or not no_verify, header, edits)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    t2 = time.perf_counter()
    if stats:
        _print_stats(done.generated, done.retained, done.dropped, t2 - t1,
                     time.perf_counter() - t0)  # fmt: skip
    if not quiet and out != "-":
        click.echo(out)


def _sign_with_response(zonefile_path: str, out: str, origin: dns.name.Name, keydir: str,
                        skr: str, now: int, params: SignParams,
                        header: list[str]) -> None:  # fmt: skip
    """Sign with the key directory's ZSKs and the response bundle for now (no ledger: the
    key set's signatures are the offline KSK's)."""
    bundles = ksr.parse(read_text(skr), ksr.SKR, skr)
    problems = check_response(bundles)
    if problems:
        raise OptionError("--skr", f"{skr}: {problems[0]}")
    zone = zonefile.read_zone(zonefile_path, origin)
    zsks = [k for k in KeyDirectory(keydir).keys(origin) if not k.is_ksk]
    try:
        signed = sign_with_response(zone, zsks, bundles, params, now)
    except InputError as e:
        raise OptionError("--skr", f"{skr}: {e}") from None
    if out == "-":
        from dnsseal.zone.text import iter_zone_text

        sys.stdout.writelines(iter_zone_text(signed.zone, header=header))
    else:
        zonefile.write_zone(out, signed.zone, header=header)


def _resign_from_snapshot(zonefile_path: str, out: str, origin: dns.name.Name,
                          keys: list[SigningKey], params: SignParams, now: int,
                          header: list[str], verify: bool = True) -> SignStats | None:  # fmt: skip
    """Re-sign ZONEFILE, an edit of a file this command wrote, from the snapshot in its
    ledger file (see :mod:`dnsseal.signer.resign`); None (and the reason logged) when the
    careful path must do it."""
    raw = zonefile.read_ledger(zonefile_path)
    ledger_file = unpack_ledger(raw) if raw is not None else None
    if ledger_file is None:
        why = "no ledger file" if raw is None else "the ledger file holds no snapshot"
        log.info("[%s] reading the whole file: %s", origin, why)
        return None
    buf = zonefile.read_bytes(zonefile_path)
    try:
        got = resign_file(buf, ledger_file, keys, params, now, origin, header=header)
    except Fallback as e:
        log.info("[%s] reading the whole file: %s", origin, e)
        return None
    if not verify:
        zonefile.write_chunks(out, got.pieces)
    else:  # written aside, verified, then put in place: a zone that fails is not written
        aside = f"{out}.dnsseal-verify"
        zonefile.write_chunks(aside, got.pieces)
        try:
            _verify_or_fail(zonefile.read_zone(aside, origin), now, params)
        except BaseException:
            Path(aside).unlink(missing_ok=True)
            raise
        Path(aside).replace(out)
    key = mac_key(keys, origin, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    zonefile.write_ledger(out, pack_ledger(got.digests, got.snapshot, key))
    return got.stats


def _helper_setup(parent: int) -> None:
    """Run first in the snapshot helper process: a lower priority (it should take an idle
    core, not the writer's), and an exit once ``parent`` is gone.  Its pool's pipes stay
    open in the helper itself, so a ``kill -9`` of signzone would otherwise leave it
    waiting on them for ever."""
    os.nice(10)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _sign_careful(zonefile_path: str, out: str, origin: dns.name.Name, keydir: str,
                  smart: bool, keyfiles: tuple[str, ...], now: int, params: SignParams,
                  use_ledger: bool, check: bool, header: list[str],
                  edits: _Edits | None = None) -> SignStats:  # fmt: skip
    """Read the whole of ZONEFILE, sign it and write OUTPUT (and its ledger file)."""
    head = header_text(header).encode()
    helper = None
    if use_ledger and out != "-" and zonefile.file_size(zonefile_path) >= _HELPER_MIN:
        # Started before the zone is read, so it stays small.
        helper = ProcessSnapshot(origin, dns.rdataclass.IN, params.nsec3, 0, now, head,
                                 setup=functools.partial(_helper_setup, os.getpid()))  # fmt: skip
    try:
        return _sign_whole_file(zonefile_path, out, origin, keydir, smart, keyfiles, now,
                                params, use_ledger, check, header, head, helper,
                                edits or _Edits())  # fmt: skip
    finally:
        if helper is not None:
            helper.close()


def _sign_whole_file(zonefile_path: str, out: str, origin: dns.name.Name, keydir: str,
                     smart: bool, keyfiles: tuple[str, ...], now: int, params: SignParams,
                     use_ledger: bool, check: bool, header: list[str], head: bytes,
                     helper: ProcessSnapshot | None, edits: _Edits) -> SignStats:  # fmt: skip
    zone = edits.before(zonefile.read_zone(zonefile_path, origin))
    keys = _select_keys(zone, keydir, smart, keyfiles, now)
    ledger = None
    if use_ledger:
        known: set[bytes] = set()
        if any(zone.rrsigs.values()):
            for path in {zonefile_path, out} - {"-"}:
                raw = zonefile.read_ledger(path)
                known |= (parse_ledger(raw) or set()) if raw is not None else set()
        ledger = SignatureLedger(keys, known)
    signed = sign_zone(zone, keys, dataclasses.replace(params, ledger=ledger), now)
    del zone
    if check:
        _verify_or_fail(signed.zone, now, params)
    if edits.dnssec_only:
        signed = dataclasses.replace(signed, zone=edits.only_dnssec(signed.zone))
    if out == "-":
        from dnsseal.zone.text import iter_zone_text

        sys.stdout.writelines(iter_zone_text(signed.zone, header=header))
        return signed.stats
    if ledger is None:
        zonefile.write_zone(out, signed.zone, header=header)
        return signed.stats
    ttl = signed.zone.soa().negative_ttl  # the TTL of the chain records
    sink = helper or SnapshotBuilder(origin, signed.zone.rdclass, params.nsec3, ttl, now, head)
    zonefile.write_chunks(out, zone_file_blocks(signed.zone, head, sink.feed))
    stats = signed.stats
    del signed  # the zone's memory, before the snapshot's arrives
    key = mac_key(keys, origin, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    zonefile.write_ledger(out, pack_ledger(ledger.made, sink.to_bytes(chain_ttl=ttl), key))
    return stats


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
        batch=ProcessBatchVerifier(workers),
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
