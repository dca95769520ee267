"""BIND's key file formats, as text in and text out (no file I/O here).

* ``K<zone>+<alg>+<tag>.key``: comment lines with timing metadata, then one DNSKEY record.
* ``.private``: ``Private-key-format: v1.3``, ``Algorithm: N (NAME)``, the key material in
  base64 (or, for a key in an HSM, ``Engine:`` and ``Label:``, base64 of NUL-terminated
  strings, as ``dnssec-keyfromlabel`` writes them), then timing metadata as
  ``Tag: YYYYMMDDHHMMSS``.
* ``.state``: the key manager's view (``Lifetime``, ``KSK``, ``DNSKEYState``, ...).

Every reader raises :class:`~dnsseal.errors.FileFormatError` naming the file and line, and
keeps lines it does not know so that writing the key back loses nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from dnsseal.durations import format_bind_time, format_human_time, parse_bind_time
from dnsseal.errors import FileFormatError, InputError
from dnsseal.keys import algorithms
from dnsseal.keys.model import (
    REFERENCE_TAGS,
    STATE_FIELDS_BY_TAG,
    STATE_HEAD_FIELDS,
    STATE_TAIL_FIELDS,
    TIMING_BY_KEY_TAG,
    TIMING_BY_PRIVATE_TAG,
    TIMING_BY_STATE_TAG,
    TIMING_FIELDS,
    Key,
    KeyState,
    KeyTimings,
    PrivateMaterial,
    RecordState,
)

# The key material tags of each family, in the order BIND writes them.
MATERIAL_TAGS: dict[str, tuple[str, ...]] = {
    "rsa": (
        "Modulus",
        "PublicExponent",
        "PrivateExponent",
        "Prime1",
        "Prime2",
        "Exponent1",
        "Exponent2",
        "Coefficient",
    ),
    "ecdsa": ("PrivateKey",),
    "eddsa": ("PrivateKey",),
}


def _time_value(path: str, lineno: int, tag: str, text: str) -> int:
    words = text.split(maxsplit=1)
    word = words[0] if words else ""
    try:
        return parse_bind_time(word)
    except InputError as e:
        raise FileFormatError(path, lineno, f"{tag}: {e}") from None


# --------------------------------------------------------------------------- .key


@dataclass(frozen=True, slots=True)
class PublicKeyFile:
    zone: dns.name.Name
    ttl: int | None
    rdclass: int
    flags: int
    protocol: int
    algorithm: int
    public_key: bytes
    timings: KeyTimings
    comments: tuple[str, ...]  # comment lines other than the ones we generate


def parse_key(text: str, path: str = "<key>") -> PublicKeyFile:
    """Parse a ``.key`` file."""
    timings: dict[str, int] = {}
    comments: list[str] = []
    record: tuple[int, str] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(";"):
            body = line[1:].strip()
            tag, sep, value = body.partition(":")
            if sep and tag in TIMING_BY_KEY_TAG:
                timings[TIMING_BY_KEY_TAG[tag].attr] = _time_value(path, lineno, tag, value)
            elif not body.startswith("This is a "):
                comments.append(raw)
            continue
        if record is not None:
            raise FileFormatError(path, lineno, "more than one record in a key file")
        record = (lineno, line)
    if record is None:
        raise FileFormatError(path, None, "no DNSKEY record found (file empty or truncated?)")
    lineno, line = record
    tokens = line.split()
    if len(tokens) < 4:
        raise FileFormatError(path, lineno, "truncated DNSKEY record")
    try:
        zone = dns.name.from_text(tokens[0])
    except dns.exception.DNSException as e:
        raise FileFormatError(path, lineno, f"bad owner name {tokens[0]!r}: {e}") from None
    i = 1
    ttl: int | None = None
    rdclass = dns.rdataclass.IN
    for _ in range(2):
        tok = tokens[i] if i < len(tokens) else ""
        if ttl is None and tok[:1].isdigit():
            try:
                ttl = dns.ttl.from_text(tok)
            except dns.exception.DNSException:
                raise FileFormatError(path, lineno, f"bad TTL {tok!r}") from None
            i += 1
        elif tok.upper() in ("IN", "CH", "HS"):
            rdclass = dns.rdataclass.from_text(tok)
            i += 1
    rtype = tokens[i].upper() if i < len(tokens) else ""
    if rtype != "DNSKEY":
        if rtype == "KEY":
            raise FileFormatError(path, lineno, "this is a KEY (SIG(0)) key, not a DNSKEY")
        raise FileFormatError(path, lineno, f"expected a DNSKEY record, found {rtype or 'nothing'}")
    fields = dnskey_fields(tokens[i + 1 :])
    if fields is None:  # (anything but the plain form: dnspython reads it, or says why not)
        try:
            rd = dns.rdata.from_text(rdclass, dns.rdatatype.DNSKEY, " ".join(tokens[i + 1 :]))
        except (dns.exception.DNSException, ValueError, binascii.Error) as e:
            raise FileFormatError(path, lineno, f"bad DNSKEY rdata: {e}") from None
        fields = (rd.flags, rd.protocol, int(rd.algorithm), bytes(rd.key))  # type: ignore[attr-defined]
    return PublicKeyFile(
        zone=zone,
        ttl=ttl,
        rdclass=rdclass,
        flags=fields[0],
        protocol=fields[1],
        algorithm=fields[2],
        public_key=fields[3],
        timings=KeyTimings(**timings),
        comments=tuple(comments),
    )


_NOT_PLAIN = frozenset('"();\\')  # what makes dnspython's tokenizer read text otherwise


def dnskey_fields(tokens: list[str]) -> tuple[int, int, int, bytes] | None:
    """Flags, protocol, algorithm and public key of DNSKEY RDATA given as whitespace-split
    ``tokens``, as ``dns.rdata.from_text`` reads them, for the plain form key files have
    (three decimal numbers in range, then at least one base64 word); None for anything
    else.  (A restart reads every zone's keys: dnspython's tokenizer took 48 us a key.)"""
    if len(tokens) < 4:
        return None
    flags, protocol, alg = tokens[0], tokens[1], tokens[2]
    if not (flags.isdigit() and protocol.isdigit() and alg.isdigit()):
        return None
    words = "".join(tokens)
    if not words.isascii() or not _NOT_PLAIN.isdisjoint(words):
        return None
    f, p, a = int(flags), int(protocol), int(alg)
    if f > 0xFFFF or p > 0xFF or a > 0xFF:
        return None
    try:
        key = base64.b64decode("".join(tokens[3:]).encode(), validate=True)
    except binascii.Error:
        return None
    return f, p, a, key


def _b64_lines(data: bytes, width: int = 56) -> str:
    text = base64.b64encode(data).decode("ascii")
    return " ".join(text[i : i + width] for i in range(0, len(text), width))


def format_key(key: Key) -> str:
    """The ``.key`` file text for ``key``, in BIND's layout."""
    kind = "key-signing" if key.is_ksk else "zone-signing"
    lines = [f"; This is a {kind} key, keyid {key.tag}, for {key.zone.to_text()}"]
    for f in TIMING_FIELDS:
        value = key.timings.get(f.attr)
        if f.key_tag and value is not None:
            lines.append(f"; {f.key_tag}: {format_bind_time(value)} ({format_human_time(value)})")
    lines.extend(key.key_comments)
    ttl = f"{key.ttl} " if key.ttl is not None else ""
    cls = dns.rdataclass.to_text(dns.rdataclass.RdataClass(key.rdclass))
    lines.append(
        f"{key.zone.to_text()} {ttl}{cls} DNSKEY {key.flags} {key.protocol} {key.algorithm} "
        f"{_b64_lines(key.public_key)}"
    )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- .private


@dataclass(frozen=True, slots=True)
class PrivateKeyFile:
    algorithm: int
    material: PrivateMaterial
    timings: KeyTimings


def parse_private(text: str, path: str = "<private>") -> PrivateKeyFile:
    """Parse a ``.private`` file (formats v1.2 and v1.3)."""
    version: str | None = None
    algorithm: int | None = None
    fields: list[tuple[str, bytes]] = []
    timings: dict[str, int] = {}
    extra: list[str] = []
    unreadable_reference = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        tag, sep, value = line.partition(":")
        value = value.strip()
        if not sep:
            raise FileFormatError(path, lineno, f"expected 'Tag: value', found {line[:40]!r}")
        if tag == "Private-key-format":
            if not value.startswith("v1."):
                raise FileFormatError(path, lineno, f"unsupported private key format {value!r}")
            version = value
        elif tag == "Algorithm":
            word = value.split()[0] if value else ""
            if not word.isdigit():
                raise FileFormatError(path, lineno, f"bad algorithm {value!r}")
            algorithm = int(word)
        elif tag in TIMING_BY_PRIVATE_TAG:
            timings[TIMING_BY_PRIVATE_TAG[tag].attr] = _time_value(path, lineno, tag, value)
        elif algorithm is not None and tag in _material_tags(algorithm):
            try:
                fields.append((tag, base64.b64decode(value, validate=True)))
            except binascii.Error:
                raise FileFormatError(path, lineno, f"{tag}: invalid base64") from None
        elif tag in REFERENCE_TAGS:
            # BIND writes these in base64 (of a NUL-terminated string); a line in any other
            # form is not BIND's, so it is kept as it is and not used.
            try:
                fields.append((tag, base64.b64decode(value, validate=True)))
            except binascii.Error:
                extra.append(raw)
                unreadable_reference = True
        else:
            extra.append(raw)
    if version is None:
        raise FileFormatError(path, 1, "missing 'Private-key-format:' line (not a key file?)")
    if algorithm is None:
        raise FileFormatError(path, None, "missing 'Algorithm:' line")
    wanted = _material_tags(algorithm)
    have = {t for t, _ in fields}
    missing = [t for t in wanted if t not in have]
    # A key held in an HSM has a Label: reference instead of its material (dnssec-keyfromlabel).
    if missing and "Label" not in have and not unreadable_reference:
        if "Engine" in have:
            raise FileFormatError(path, None, "Engine: without Label: (which key in the HSM?)")
        raise FileFormatError(
            path, None, f"missing key material {', '.join(missing)} (file truncated?)"
        )
    return PrivateKeyFile(
        algorithm=algorithm,
        material=PrivateMaterial(tuple(fields), version, tuple(extra)),
        timings=KeyTimings(**timings),
    )


def _material_tags(algorithm: int) -> tuple[str, ...]:
    alg = algorithms.ALGORITHMS.get(algorithm)
    if alg is None:
        return ()
    return MATERIAL_TAGS[alg.family]


def format_private(key: Key) -> str:
    """The ``.private`` file text for ``key`` (which must carry its private material)."""
    if key.private is None:
        raise ValueError(f"{key.basename}: no private material to write")
    alg = algorithms.ALGORITHMS.get(key.algorithm)
    name = alg.mnemonic if alg else str(key.algorithm)
    lines = [
        f"Private-key-format: {key.private.format_version}",
        f"Algorithm: {key.algorithm} ({name})",
    ]
    lines += [f"{t}: {base64.b64encode(v).decode('ascii')}" for t, v in key.private.fields]
    lines += [x.strip() for x in key.private.extra]
    for f in TIMING_FIELDS:
        value = key.timings.get(f.attr)
        if value is not None and f.private_tag:
            lines.append(f"{f.private_tag}: {format_bind_time(value)}")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------- .state


@dataclass(frozen=True, slots=True)
class StateFile:
    algorithm: int | None
    length: int | None
    state: KeyState
    timings: KeyTimings  # the times the .state file carries (override .private, as BIND)


def parse_state(text: str, path: str = "<state>") -> StateFile:
    """Parse a ``.state`` file."""
    algorithm: int | None = None
    length: int | None = None
    values: dict[str, object] = {}
    timings: dict[str, int] = {}
    extra: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        tag, sep, value = line.partition(":")
        value = value.strip()
        if not sep:
            raise FileFormatError(path, lineno, f"expected 'Tag: value', found {line[:40]!r}")
        if tag in ("Algorithm", "Length"):
            if not value.isdigit():
                raise FileFormatError(path, lineno, f"{tag}: expected a number, got {value!r}")
            if tag == "Algorithm":
                algorithm = int(value)
            else:
                length = int(value)
        elif tag in TIMING_BY_STATE_TAG:
            timings[TIMING_BY_STATE_TAG[tag].attr] = _time_value(path, lineno, tag, value)
        elif tag in STATE_FIELDS_BY_TAG:
            f = STATE_FIELDS_BY_TAG[tag]
            values[f.attr] = _state_value(path, lineno, tag, f.kind, value)
        else:
            extra.append(raw)
    values["extra"] = tuple(extra)
    return StateFile(algorithm, length, KeyState(**values), KeyTimings(**timings))  # type: ignore[arg-type]


def _state_value(path: str, lineno: int, tag: str, kind: str, value: str) -> object:
    if kind == "num":
        if not value.isdigit():
            raise FileFormatError(path, lineno, f"{tag}: expected a number, got {value!r}")
        return int(value)
    if kind == "bool":
        if value.lower() not in ("yes", "no"):
            raise FileFormatError(path, lineno, f"{tag}: expected yes or no, got {value!r}")
        return value.lower() == "yes"
    if kind == "time":
        return _time_value(path, lineno, tag, value)
    try:
        return RecordState.parse(value)
    except ValueError:
        allowed = ", ".join(s.value for s in RecordState)
        raise FileFormatError(path, lineno, f"{tag}: unknown state {value!r} ({allowed})") from None


def format_state(key: Key) -> str:
    """The ``.state`` file text for ``key``, in BIND's order."""
    st = key.state or KeyState()
    lines = [
        f"; This is the state of key {key.tag}, for {key.zone.to_text()}",
        f"Algorithm: {key.algorithm}",
        f"Length: {key.bits}",
    ]
    lines += _state_lines(st, STATE_HEAD_FIELDS)
    for f in TIMING_FIELDS:
        value = key.timings.get(f.attr)
        if value is not None:
            lines.append(f"{f.state_tag}: {format_bind_time(value)} ({format_human_time(value)})")
    lines += _state_lines(st, STATE_TAIL_FIELDS)
    lines += [x.strip() for x in st.extra]
    return "\n".join(lines) + "\n"


def _state_lines(st: KeyState, fields: Iterable[object]) -> list[str]:
    out = []
    for f in fields:
        value = getattr(st, f.attr)  # type: ignore[attr-defined]
        if value is None:
            continue
        kind = f.kind  # type: ignore[attr-defined]
        tag = f.tag  # type: ignore[attr-defined]
        if kind == "num":
            out.append(f"{tag}: {value}")
        elif kind == "bool":
            out.append(f"{tag}: {'yes' if value else 'no'}")
        elif kind == "time":
            out.append(f"{tag}: {format_bind_time(value)} ({format_human_time(value)})")
        else:
            out.append(f"{tag}: {value.value}")
    return out


def assemble(
    pub: PublicKeyFile,
    priv: PrivateKeyFile | None,
    state: StateFile | None,
    path: str,
) -> Key:
    """Build a :class:`Key` from its files, checking they belong together.

    Times: the ``.private`` file's times are authoritative over the ``.key`` comments, and a
    ``.state`` file's over both (as in BIND, where the key manager owns the state file).
    """
    if priv is not None and priv.algorithm != pub.algorithm:
        raise FileFormatError(
            path,
            None,
            f".private says algorithm {priv.algorithm}, .key says {pub.algorithm}",
        )
    merged: dict[str, int | None] = {}
    for f in TIMING_FIELDS:
        for source in (state.timings if state else None, priv.timings if priv else None):
            if source is not None and source.get(f.attr) is not None:
                merged[f.attr] = source.get(f.attr)
                break
        else:
            merged[f.attr] = pub.timings.get(f.attr)
    return Key(
        zone=pub.zone,
        flags=pub.flags,
        algorithm=pub.algorithm,
        public_key=pub.public_key,
        protocol=pub.protocol,
        ttl=pub.ttl,
        rdclass=pub.rdclass,
        timings=KeyTimings(**merged),
        state=state.state if state else None,
        private=priv.material if priv else None,
        key_comments=pub.comments,
    )
