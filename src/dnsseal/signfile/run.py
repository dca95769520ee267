"""``sign_file(request, now) -> Report``: sign a zone file into a signed zone file, the
library behind ``dnsseal signzone``.

It decides everything between the options and the files: which way to read (the snapshot
path of :mod:`dnsseal.signfile.resign`, which reads only what changed since this signer
wrote the file, or the whole file), which keys sign, the ledger of signatures it trusts,
the verification of the result before it is put in place, and the writing of the signed
file, its ledger and its snapshot.  A whole-file run that does not verify the result in
memory (``-P``, no ``-a``, no ``-D``) signs while it writes: :func:`dnsseal.signer.staged.
stage_zone`, then worker processes sign and format ranges of owners
(:mod:`dnsseal.signfile.stream`); the others sign with :func:`dnsseal.signer.sign_zone` and
then write.  Both write the same bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TextIO

import dns.name
import dns.rdataclass

from dnsseal.durations import format_bind_time
from dnsseal.errors import DnssealError, InputError, OptionError
from dnsseal.findings import Finding, Severity
from dnsseal.keys import ksr
from dnsseal.signer import Nsec3Params, SigningKey, SignParams, check_iterations, sign_zone
from dnsseal.signer.sign import SignStats
from dnsseal.signer.skr import check_response, sign_with_response
from dnsseal.signer.staged import StagedZone, stage_zone
from dnsseal.signer.verify import VerifyOptions, verify_zone
from dnsseal.signfile import stream, textpool
from dnsseal.signfile.edits import Edits
from dnsseal.signfile.filesnapshot import SnapshotBuilder, mac_key, zone_file_blocks
from dnsseal.signfile.helper import ProcessSnapshot, helper_setup, watch_parent
from dnsseal.signfile.keychoice import select_keys
from dnsseal.signfile.ledger import SignatureLedger, pack_ledger, parse_ledger, unpack_ledger
from dnsseal.signfile.resign import Fallback, resign_file
from dnsseal.storage import zonefile
from dnsseal.storage.files import read_text
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.zone.model import Zone
from dnsseal.zone.text import header_text, iter_zone_text, paused_gc

log = logging.getLogger(__name__)
# From this size on, the snapshot of the signed file is made in a helper process, in
# parallel with the writing (for a small zone, starting a process costs more than it saves).
HELPER_MIN = 1 << 20


class VerificationFailed(DnssealError):
    """The signed zone failed its verification; nothing was written.  ``findings`` are
    the errors found."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__(
            f"the signed zone failed verification ({len(findings)} errors); nothing written "
            "(-P skips the verification)"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SignFileRequest:
    """One signing run from ``zonefile`` (the zone ``origin``) to ``output`` (default
    ``ZONEFILE.signed``; ``-`` for the ``stdout`` given to :func:`sign_file`).

    Keys: the ``keyfiles``, and with ``smart`` (``-S``) the keys of ``keydir`` by their
    timing metadata; with neither, the keys of ``keydir`` whose DNSKEY the zone holds.
    ``use_ledger``: trust the signatures the ledger files vouch for, re-sign from the
    snapshot when the input is an edit of a file this signer wrote, and write the output's
    ledger.  ``verify`` (the default; ``-P`` turns it off) verifies the result before it is
    put in place, as dnssec-signzone does: nothing is written when it fails.  ``check``
    (``-a``) verifies it even with ``verify`` off, and reads the whole file.  ``skr``: an
    offline KSK's Signed Key Response supplies the key set and its signatures.
    ``workers``: processes that sign and format the output of a full signing (other
    signing, e.g. with ``check``, is ``params.batch``'s); ``progress(done, total)`` is
    told how far that has come (in owners)."""

    zonefile: str
    origin: dns.name.Name
    params: SignParams
    output: str | None = None
    keydir: str = "."
    smart: bool = False
    keyfiles: tuple[str, ...] = ()
    use_ledger: bool = True
    check: bool = False
    verify: bool = True
    edits: Edits = dataclasses.field(default_factory=Edits)
    skr: str | None = None
    workers: int = 1
    progress: Callable[[int, int], None] | None = dataclasses.field(default=None, compare=False)

    @property
    def out(self) -> str:
        return self.output or f"{self.zonefile}.signed"


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """What a run did: where it wrote, which way it read the input (``snapshot``: only the
    changed parts, from the snapshot in the input's ledger; ``whole``: every record; ``skr``:
    with a Signed Key Response), why not from the snapshot, and the signature counts
    (None for ``skr``)."""

    output: str
    path: Literal["snapshot", "whole", "skr"]
    reason: str
    stats: SignStats | None


def nsec3_choice(
    salt: str | None, iterations: int, opt_out: bool, force_iterations: bool
) -> Nsec3Params | None:
    """The chain dnssec-signzone's ``-3 SALT``, ``-H`` and ``-A`` ask for: NSEC3 with those
    parameters when a salt (hex, or ``-`` for none) is given, else NSEC.  Raises
    :class:`OptionError` naming the option at fault."""
    if salt is None:
        if opt_out or iterations:
            raise OptionError("-A" if opt_out else "-H", "only meaningful with NSEC3 (-3 SALT|-)")
        return None
    try:
        check_iterations(iterations, force=force_iterations)
    except InputError as e:
        raise OptionError("-H", str(e)) from None
    return Nsec3Params(salt=_salt(salt), iterations=iterations, opt_out=opt_out)


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


def sign_file(request: SignFileRequest, now: int, *, stdout: TextIO | None = None) -> Report:
    """Sign ``request.zonefile`` at time ``now`` and write the result (see
    :class:`SignFileRequest`); ``stdout`` receives the text when the output is ``-``.

    Raises :class:`OptionError`, :class:`~dnsseal.errors.InputError`,
    :class:`~dnsseal.errors.StorageError` for unusable input, keys or options, and
    :class:`VerificationFailed` when the result fails its verification (nothing written
    then)."""
    out = request.out
    if out == "-" and stdout is None:
        raise ValueError("output '-' needs a stdout to write to")
    header = [f"File written on {format_bind_time(now)} by dnsseal signzone"]
    if request.skr is not None:
        _sign_with_response(request, out, now, header, stdout)
        return Report(out, "skr", "--skr", None)
    edits = request.edits
    with paused_gc():  # a run over acyclic data: collections would only rescan the zone
        done: SignStats | None = None
        why = _why_whole(request, out)
        if why is None:
            keys = select_keys(Zone(request.origin, {}), request.keydir, request.smart,
                               request.keyfiles, now)  # fmt: skip
            done, why = _resign_from_snapshot(request, out, keys, now, header)
        if done is not None:
            return Report(out, "snapshot", "", done)
        log.info("[%s] reading the whole file: %s", request.origin, why)
        stats = _sign_careful(request, out, now, request.use_ledger and not edits.any,
                              request.check or request.verify, header, stdout)  # fmt: skip
        return Report(out, "whole", why or "", stats)


def _why_whole(request: SignFileRequest, out: str) -> str | None:
    """Why the whole file must be read whatever the snapshot says, or None."""
    if not request.use_ledger:
        return "--no-ledger"
    if request.check:
        return "-a"
    if out == "-":
        return "output to stdout"
    if request.edits.any:
        return "-D, -g or -M"
    if not request.smart and not request.keyfiles:
        return "keys chosen by its DNSKEY records"
    return None


def verify_or_fail(zone: Zone, now: int, params: SignParams) -> None:
    """The post-signing verification (dnssec-signzone's, skipped with -P): raises
    :class:`VerificationFailed` with the errors found."""
    options = VerifyOptions(ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    errors = [f for f in verify_zone(zone, now, options) if f.severity is Severity.ERROR]
    if errors:
        raise VerificationFailed(errors)


def _sign_with_response(request: SignFileRequest, out: str, now: int, header: list[str],
                        stdout: TextIO | None) -> None:  # fmt: skip
    """Sign with the key directory's ZSKs and the response bundle for now (no ledger: the
    key set's signatures are the offline KSK's)."""
    skr, origin = request.skr, request.origin
    assert skr is not None
    bundles = ksr.parse(read_text(skr), ksr.SKR, skr)
    problems = check_response(bundles)
    if problems:
        raise OptionError("--skr", f"{skr}: {problems[0]}")
    zone = zonefile.read_zone(request.zonefile, origin)
    zsks = [k for k in KeyDirectory(request.keydir).keys(origin) if not k.is_ksk]
    try:
        signed = sign_with_response(zone, zsks, bundles, request.params, now)
    except InputError as e:
        raise OptionError("--skr", f"{skr}: {e}") from None
    if out == "-":
        assert stdout is not None
        stdout.writelines(iter_zone_text(signed.zone, header=header))
    else:
        zonefile.write_zone(out, signed.zone, header=header)


def _resign_from_snapshot(request: SignFileRequest, out: str, keys: list[SigningKey], now: int,
                          header: list[str]) -> tuple[SignStats | None, str]:  # fmt: skip
    """Re-sign the input, an edit of a file this signer wrote, from the snapshot in its
    ledger file (see :mod:`dnsseal.signfile.resign`): the stats, or None and the reason
    when the whole file must be read."""
    path, origin, params = request.zonefile, request.origin, request.params
    raw = zonefile.read_ledger(path)
    ledger_file = unpack_ledger(raw) if raw is not None else None
    if ledger_file is None:
        return None, "no ledger file" if raw is None else "the ledger file holds no snapshot"
    buf = zonefile.read_bytes(path)
    try:
        got = resign_file(buf, ledger_file, keys, params, now, origin, header=header)
    except Fallback as e:
        return None, str(e)
    if not request.verify:
        zonefile.write_chunks(out, got.pieces)
    else:  # written aside, verified, then put in place: a zone that fails is not written
        aside = f"{out}.dnsseal-verify"
        zonefile.write_chunks(aside, got.pieces)
        try:
            verify_or_fail(zonefile.read_zone(aside, origin), now, params)
        except BaseException:
            Path(aside).unlink(missing_ok=True)
            raise
        Path(aside).replace(out)
    key = mac_key(keys, origin, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    zonefile.write_ledger(out, pack_ledger(got.digests, got.snapshot, key))
    return got.stats, ""


def _sign_careful(request: SignFileRequest, out: str, now: int, use_ledger: bool, check: bool,
                  header: list[str], stdout: TextIO | None) -> SignStats:  # fmt: skip
    """Read the whole input, sign it and write the output (and its ledger file)."""
    head = header_text(header).encode()
    helper = None
    streaming = not check and not request.edits.dnssec_only
    if (use_ledger and out != "-" and not streaming
            and zonefile.file_size(request.zonefile) >= HELPER_MIN):  # fmt: skip
        # Started before the zone is read, so it stays small.  (A streaming run's workers
        # make the snapshot's rows themselves.)
        setup = functools.partial(helper_setup, os.getpid())
        helper = ProcessSnapshot(request.origin, dns.rdataclass.IN, request.params.nsec3, 0,
                                 now, head, setup=setup)  # fmt: skip
    try:
        return _sign_whole_file(request, out, now, use_ledger, check, header, head, helper,
                                stdout)  # fmt: skip
    finally:
        if helper is not None:
            helper.close()


def _sign_whole_file(request: SignFileRequest, out: str, now: int, use_ledger: bool,
                     check: bool, header: list[str], head: bytes, helper: ProcessSnapshot | None,
                     stdout: TextIO | None) -> SignStats:  # fmt: skip
    origin, params, edits = request.origin, request.params, request.edits
    zone = edits.before(zonefile.read_zone(request.zonefile, origin))
    keys = select_keys(zone, request.keydir, request.smart, request.keyfiles, now)
    ledger = None
    if use_ledger:
        known: set[bytes] = set()
        if any(zone.rrsigs.values()):
            for path in {request.zonefile, out} - {"-"}:
                raw = zonefile.read_ledger(path)
                known |= (parse_ledger(raw) or set()) if raw is not None else set()
        ledger = SignatureLedger(keys, known)
    if not check and not edits.dnssec_only:  # (keep in step with _sign_careful)
        # Signed and written at once, piece by piece (no signed zone is built).
        staged = stage_zone(zone, keys, dataclasses.replace(params, ledger=ledger), now)
        del zone
        return _write_streaming(request, out, staged, keys, now, head, ledger, stdout)
    signed = sign_zone(zone, keys, dataclasses.replace(params, ledger=ledger), now)
    del zone
    if check:
        verify_or_fail(signed.zone, now, params)
    if edits.dnssec_only:
        signed = dataclasses.replace(signed, zone=edits.only_dnssec(signed.zone))
    if out == "-":
        assert stdout is not None
        stdout.writelines(iter_zone_text(signed.zone, header=header))
        return signed.stats
    if ledger is None:
        zonefile.write_zone(out, signed.zone, header=header)
        return signed.stats
    ttl = signed.zone.soa().negative_ttl  # the TTL of the chain records
    sink = helper or SnapshotBuilder(origin, signed.zone.rdclass, params.nsec3, ttl, now, head)
    if request.workers > 1 and len(signed.zone.rrsets) >= textpool.MIN_OWNERS:
        setup = functools.partial(watch_parent, os.getpid())
        blocks = textpool.parallel_zone_blocks(signed.zone, head, sink.feed, request.workers,
                                               setup)  # fmt: skip
    else:
        blocks = zone_file_blocks(signed.zone, head, sink.feed)
    zonefile.write_chunks(out, blocks)
    stats = signed.stats
    del signed  # the zone's memory, before the snapshot's arrives
    key = mac_key(keys, origin, ksk_only=params.ksk_only, ignore_ksk_flag=params.ignore_ksk_flag)
    zonefile.write_ledger(out, pack_ledger(ledger.made, sink.to_bytes(chain_ttl=ttl), key))
    return stats


def _write_streaming(request: SignFileRequest, out: str, staged: StagedZone,
                     keys: list[SigningKey], now: int, head: bytes,
                     ledger: SignatureLedger | None,
                     stdout: TextIO | None) -> SignStats:  # fmt: skip
    """Sign the staged zone while writing it (:mod:`dnsseal.signfile.stream`); the ledger
    file's snapshot is made of the rows the workers make with the text."""
    origin, params = request.origin, request.params
    ttl = staged.zone.soa().negative_ttl  # the TTL of the chain records
    sink: SnapshotBuilder | None = None
    if ledger is not None and out != "-":
        sink = SnapshotBuilder(origin, staged.zone.rdclass, params.nsec3, ttl, now, head)
    tally = stream.StreamTally()
    setup = functools.partial(watch_parent, os.getpid())
    feed = sink.add_rows if sink is not None else None
    blocks = stream.signed_zone_blocks(staged, head, feed, tally, request.workers, setup,
                                request.progress)  # fmt: skip
    if out == "-":
        assert stdout is not None
        stdout.writelines(block.decode() for block in blocks)
    else:
        zonefile.write_chunks(out, blocks)
    stats = tally.stats(staged)
    del staged
    if sink is not None and ledger is not None:
        key = mac_key(keys, origin, ksk_only=params.ksk_only,
                      ignore_ksk_flag=params.ignore_ksk_flag)  # fmt: skip
        zonefile.write_ledger(out, pack_ledger(ledger.made, sink.to_bytes(chain_ttl=ttl), key))
    return stats
