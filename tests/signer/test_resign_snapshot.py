"""Re-signing an edited signed file from its snapshot (``signer/resign.py``): the output
is byte for byte what reading the whole file gives, the unchanged blocks are not read,
due signatures are still refreshed, and anything doubtful takes the careful path."""

from __future__ import annotations

import base64
import difflib
import logging
import random
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Dnsseal
from dnsseal import clock
from dnsseal.signfile import filesnapshot as snapshot_mod
from dnsseal.signfile.ledger import MAGIC, digest_set, parse_ledger, unpack_ledger
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.zone import fastparse

from .conftest import NOW, external_verify, make_key

DAY = 86400
MODES = {"nsec": [], "nsec3": ["-3", "-"], "optout": ["-3", "ab", "-A"]}
ORIGIN = "example.com."


# -- zones and edits ---------------------------------------------------------------------


def random_zone(rng: random.Random) -> str:
    """A small zone with the shapes that matter: plain names, empty non-terminals,
    delegations (secure and not) with glue, a wildcard, MX and CNAME."""
    out = [
        "$TTL 300",
        "@ SOA ns1 hostmaster 1 3600 900 604800 60",
        "@ NS ns1",
        "ns1 A 192.0.2.1",
    ]
    for i in range(rng.randint(12, 30)):
        r = rng.random()
        if r < 0.55:
            out.append(f"h{i} A 192.0.2.{i}")
            if rng.random() < 0.4:
                out.append(f"h{i} AAAA 2001:db8::{i:x}")
            if rng.random() < 0.2:
                out.append(f'h{i} TXT "host {i}"')
        elif r < 0.7:
            out.append(f"a{i}.b{i % 3}.ent A 192.0.2.{100 + i}")
        elif r < 0.85:
            out += [f"d{i} NS ns.d{i}", f"ns.d{i} A 198.51.100.{i}"]
            if rng.random() < 0.5:
                out.append(f"d{i} DS {1000 + i} 13 2 {'ab' * 32}")
        elif r < 0.9:
            out.append(f'*.w{i} TXT "wild {i}"')
        else:
            out += [f"m{i} MX 10 h0", f"c{i} CNAME h0"]
    return "\n".join(out) + "\n"


Lines = list[str]


def _owners(lines: Lines) -> list[str]:
    seen: dict[str, None] = {}
    for line in lines:
        if line and not line.startswith(";"):
            seen[line.split("\t", 1)[0]] = None
    return list(seen)


def _data_lines(lines: Lines, rtype: str) -> list[int]:
    return [i for i, line in enumerate(lines) if line.split("\t")[3:4] == [rtype]]


def edit_rdata(rng: random.Random, lines: Lines) -> str:
    i = rng.choice(_data_lines(lines, "A"))
    f = lines[i].split("\t")
    f[4] = f"203.0.113.{rng.randint(1, 254)}"
    lines[i] = "\t".join(f)
    return f"A of {f[0]}"


def edit_ttl(rng: random.Random, lines: Lines) -> str:
    i = rng.choice(_data_lines(lines, "A") + _data_lines(lines, "TXT"))
    owner, _, _, rtype, _ = lines[i].split("\t", 4)
    for j, line in enumerate(lines):
        f = line.split("\t")
        if f[0] == owner and f[3:4] == [rtype]:
            f[1] = "777"
            lines[j] = "\t".join(f)
    return f"TTL of {owner} {rtype}"


def delete_name(rng: random.Random, lines: Lines) -> str:
    owner = rng.choice([o for o in _owners(lines) if o.startswith(("h", "a", "c", "m"))])
    lines[:] = [line for line in lines if not line.startswith(owner + "\t")]
    return f"delete {owner}"


def add_name(rng: random.Random, lines: Lines) -> str:
    n = rng.randint(0, 10**6)
    form = rng.choice(["rel", "abs", "nottl", "deep"])
    text = {
        "rel": f"new{n} 300 A 192.0.2.77",
        "abs": f"new{n}.{ORIGIN} 300 IN AAAA 2001:db8::77",
        "nottl": f"new{n} A 192.0.2.78",  # the TTL of the line before it
        "deep": f'x{n}.y{n}.{ORIGIN} 300 IN TXT "deep"',
    }[form]
    lines.insert(rng.randint(2, len(lines)), text)
    return f"add {form} new{n}"


def add_record(rng: random.Random, lines: Lines) -> str:
    owner = rng.choice([o for o in _owners(lines) if re.match(r"h\d+\.", o)] or ["h0." + ORIGIN])
    lines.insert(rng.randint(2, len(lines)), f'{owner} 300 IN TXT "added to {owner}"')
    return f"TXT added at {owner}"


def add_delegation(rng: random.Random, lines: Lines) -> str:
    n = rng.randint(0, 10**6)
    at = rng.randint(2, len(lines))
    lines[at:at] = [f"dz{n} 300 NS ns.dz{n}", f"ns.dz{n} 300 A 198.51.100.99"]
    return f"delegation dz{n}"


def delete_rrsig(rng: random.Random, lines: Lines) -> str:
    i = rng.choice(_data_lines(lines, "RRSIG")[1:])
    del lines[i]
    return "an RRSIG line deleted"


def add_ds(rng: random.Random, lines: Lines) -> str:
    cuts = [f[0] for f in (line.split("\t") for line in lines) if f[3:4] == ["NS"]]
    cuts = [c for c in cuts if c != ORIGIN]
    if not cuts:
        return add_name(rng, lines)
    owner = rng.choice(cuts)
    lines.insert(rng.randint(2, len(lines)), f"{owner} 300 IN DS 4242 13 2 {'cd' * 32}")
    return f"DS at {owner}"


def edit_chain(rng: random.Random, lines: Lines) -> str:
    """Change an NSEC or NSEC3 record's TTL (the signer makes the chain anew anyway)."""
    i = rng.choice(_data_lines(lines, "NSEC") + _data_lines(lines, "NSEC3"))
    f = lines[i].split("\t")
    f[1] = str(int(f[1]) + 1)
    lines[i] = "\t".join(f)
    return f"chain record of {f[0]}"


def reformat_line(rng: random.Random, lines: Lines) -> str:
    """Write a record another way (relative owner, no class, TTL in units): the same
    RRset, so its signature stays."""
    i = rng.choice(_data_lines(lines, "A") + _data_lines(lines, "TXT"))
    owner, ttl, _, rtype, rdata = lines[i].split("\t", 4)
    rel = owner[: -len(ORIGIN) - 1] if owner.endswith("." + ORIGIN) else owner
    lines[i] = (
        f"{rel} {int(ttl) // 60}m {rtype} {rdata}"
        if int(ttl) % 60 == 0
        else (f"{rel} {ttl} {rtype} {rdata}")
    )
    return f"reformatted {rtype} of {owner}"


def damage_signature(rng: random.Random, lines: Lines) -> str:
    i = rng.choice(_data_lines(lines, "RRSIG")[1:])
    head, sig = lines[i].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    lines[i] = f"{head} {base64.b64encode(bytes(raw)).decode()}"
    return f"signature of {lines[i].split(chr(9))[0]} damaged"


def duplicate_line(rng: random.Random, lines: Lines) -> str:
    line = rng.choice(lines[2:])
    lines.insert(rng.randint(2, len(lines)), line)
    return "a line duplicated"


# Edits the fast path must always take on (no cut above unchanged names, no chain edit).
ALWAYS_FAST: list[Callable[[random.Random, Lines], str]] = [
    edit_rdata,
    edit_ttl,
    delete_name,
    add_name,
    add_record,
    add_delegation,
    delete_rrsig,
    add_ds,
    edit_chain,
    reformat_line,
    damage_signature,
    duplicate_line,
]


# -- running both paths ------------------------------------------------------------------


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    kd = tmp_path / "keys"
    kd.mkdir()
    KeyDirectory(kd).create(make_key(13, ksk=True))
    KeyDirectory(kd).create(make_key(13))
    return kd


@pytest.fixture
def at_now(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    def set_now(when: int) -> None:
        monkeypatch.setattr(clock, "now", lambda: when)

    set_now(NOW)
    return set_now


def _ledger(path: Path) -> Path:
    return Path(f"{path}.ledger")


def _stats(output: str) -> list[str]:
    return re.findall(r"^Signatures (?:generated|retained|dropped):.*$", output, re.M)


def resign_both(dnsseal: Dnsseal, caplog: pytest.LogCaptureFixture, signed: Path, text: str,
                args: list[str], tag: str) -> tuple[Path, bool]:  # fmt: skip
    """Write ``text`` as an edit of ``signed`` twice: re-sign one copy with its ledger file
    (the fast path when it applies) and the other without any (the careful path, every
    signature verified); assert the outputs are identical.  Returns the fast copy and
    whether the fast path ran."""
    fast, careful = signed.with_name(f"{tag}.fast"), signed.with_name(f"{tag}.careful")
    fast.write_text(text)
    careful.write_text(text)
    shutil.copyfile(_ledger(signed), _ledger(fast))
    _ledger(careful).unlink(missing_ok=True)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        r1 = dnsseal("signzone", *args, "-t", "-f", fast, fast)
    took_fast = any("re-signed from the snapshot" in r.getMessage() for r in caplog.records)
    r2 = dnsseal("signzone", *args, "-t", "-f", careful, careful)
    if fast.read_bytes() != careful.read_bytes():
        diff = difflib.unified_diff(
            careful.read_text().splitlines(),
            fast.read_text().splitlines(),
            "careful",
            "fast",
            lineterm="",
        )
        pytest.fail("fast and careful outputs differ:\n" + "\n".join(list(diff)[:40]))
    assert _stats(r1.output) == _stats(r2.output)
    _same_snapshot(_ledger(fast), _ledger(careful))
    return fast, took_fast


def _same_snapshot(fast: Path, careful: Path) -> None:
    """The fast path's snapshot describes its output as the careful path's does, and its
    ledger holds every signature the careful path's does."""
    a, b = unpack_ledger(fast.read_bytes()), unpack_ledger(careful.read_bytes())
    assert a is not None and b is not None
    sa, sb = snapshot_mod.decode(a.snapshot), snapshot_mod.decode(b.snapshot)
    assert len(sa) == len(sb)
    for field in ("lens", "digests", "owner_lens", "owners", "sigs", "min_exp", "max_inc"):
        assert getattr(sa.cols, field) == getattr(sb.cols, field), field
    assert [sa.types(i) for i in range(len(sa))] == [sb.types(i) for i in range(len(sb))]
    assert list(sa.chain) == list(sb.chain)
    assert [sa.chain_bitmap(j) for j in sa.chain] == [sb.chain_bitmap(j) for j in sb.chain]
    assert sa.pages == sb.pages
    assert (sa.header_len, sa.header_digest, sa.chain_ttl) == (
        sb.header_len,
        sb.header_digest,
        sb.chain_ttl,
    )
    assert digest_set(b.digests) <= digest_set(a.digests)


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_fast_resign_equals_careful_on_random_edits(
    mode: str,
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    caplog: pytest.LogCaptureFixture,
    at_now: Callable[[int], None],
) -> None:
    args = ["-S", "-K", str(keydir), "-o", ORIGIN, *MODES[mode]]
    rng = random.Random(f"resign {mode}")
    fast_runs = 0
    trials = 20
    for trial in range(trials):
        src = tmp_path / f"zone{trial}"
        src.write_text(random_zone(rng))
        signed = tmp_path / f"signed{trial}"
        dnsseal("signzone", *args, "-q", "-f", signed, src)
        current = signed
        for step in range(3):  # later edits start from the fast path's own output
            lines = current.read_text().splitlines()
            edits = rng.sample(ALWAYS_FAST, rng.randint(1, 3))
            applied = [e(rng, lines) for e in edits]
            fast, took_fast = resign_both(dnsseal, caplog, current,
                                          "\n".join(lines) + "\n", args,
                                          f"t{trial}s{step}")  # fmt: skip
            assert took_fast, (mode, trial, step, applied, caplog.text)
            fast_runs += took_fast
            current = fast
    assert fast_runs == 3 * trials


def test_unchanged_blocks_are_not_read(
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    caplog: pytest.LogCaptureFixture,
    at_now: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # -P: no post-signing verification, which reads the whole output by design
    args = ["-S", "-K", str(keydir), "-o", ORIGIN, "-3", "-", "-P"]
    src = tmp_path / "zone"
    src.write_text(
        "$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 60\n@ NS ns1\nns1 A 192.0.2.1\n"
        + "".join(f"h{i} A 192.0.2.{i % 250}\nh{i} AAAA 2001:db8::{i:x}\n" for i in range(400))
    )
    signed = tmp_path / "signed"
    dnsseal("signzone", *args, "-q", "-f", signed, src)
    text = signed.read_text()
    assert text.count("\th17.example.com.\t") == 0
    edited = text.replace("h17.example.com.\t300\tIN\tA\t192.0.2.17",
                          "h17.example.com.\t300\tIN\tA\t192.0.2.99")  # fmt: skip
    assert edited != text
    read: list[int] = []
    real = fastparse.parse

    def counting(t: str, *args: object) -> object:
        read.append(len(t))
        return real(t, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(fastparse, "parse", counting)
    _, took_fast = resign_both(dnsseal, caplog, signed, edited, args, "one")
    assert took_fast
    # The careful run read everything once; the fast one read the changed block, the apex
    # and the line before the change: a few hundred octets of a file of hundreds of KiB.
    careful_read = read.pop()
    assert careful_read >= len(edited) - 100
    assert sum(read) < len(edited) // 50, read
    msg = next(r.getMessage() for r in caplog.records if "from the snapshot" in r.getMessage())
    m = re.search(r"(\d+) of (\d+) blocks reused unread, (\d+) read", msg)
    assert m is not None and int(m.group(2)) - int(m.group(1)) <= 3, msg


def test_signatures_due_in_unchanged_blocks_are_refreshed(
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    caplog: pytest.LogCaptureFixture,
    at_now: Callable[[int], None],
) -> None:
    args = ["-S", "-K", str(keydir), "-o", ORIGIN]
    src = tmp_path / "zone"
    src.write_text(random_zone(random.Random(7)))
    signed = tmp_path / "signed"
    dnsseal("signzone", *args, "-q", "-f", signed, src)  # valid NOW-1h .. NOW+30d
    # Ten days later, one name changes: its block gets signatures valid until NOW+40d.
    at_now(NOW + 10 * DAY)
    lines = signed.read_text().splitlines()
    edit_rdata(random.Random(1), lines)
    later, took_fast = resign_both(dnsseal, caplog, signed, "\n".join(lines) + "\n", args, "d10")
    assert took_fast
    # At day 24 the first signatures expire within a quarter of the validity (7.5 days):
    # every block but the one changed at day 10 is due, and is re-signed.
    at_now(NOW + 24 * DAY)
    text = later.read_text()
    lines = text.splitlines()
    add_name(random.Random(2), lines)
    final, took_fast = resign_both(dnsseal, caplog, later, "\n".join(lines) + "\n", args, "d24")
    assert took_fast
    msg = next(r.getMessage() for r in caplog.records if "from the snapshot" in r.getMessage())
    due = int(re.search(r"(\d+) blocks due", msg).group(1))  # type: ignore[union-attr]
    assert due > 5, msg
    old_exp = clock_text(NOW - 3600 + 30 * DAY)
    assert old_exp in text and old_exp not in final.read_text()
    assert clock_text(NOW + 10 * DAY - 3600 + 30 * DAY) in final.read_text()


def clock_text(t: int) -> str:
    import time

    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


@pytest.mark.parametrize(
    "damage",
    ["flip", "truncate", "foreign", "version1", "garbage"],
)
def test_a_damaged_or_foreign_snapshot_is_not_trusted(
    damage: str,
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    caplog: pytest.LogCaptureFixture,
    at_now: Callable[[int], None],
) -> None:
    args = ["-S", "-K", str(keydir), "-o", ORIGIN, "-3", "-"]
    src = tmp_path / "zone"
    src.write_text(random_zone(random.Random(3)))
    signed = tmp_path / "signed"
    dnsseal("signzone", *args, "-q", "-f", signed, src)
    ledger = _ledger(signed)
    raw = ledger.read_bytes()
    lf = unpack_ledger(raw)
    assert lf is not None and lf.snapshot
    if damage == "flip":  # one bit of one block's digest: the MAC no longer fits
        pos = len(raw) - 200
        ledger.write_bytes(raw[:pos] + bytes([raw[pos] ^ 1]) + raw[pos + 1 :])
    elif damage == "truncate":
        ledger.write_bytes(raw[: len(raw) // 2])
    elif damage == "foreign":  # the same zone signed with other keys
        other = tmp_path / "otherkeys"
        other.mkdir()
        KeyDirectory(other).create(make_key(13, ksk=True, n=5))
        KeyDirectory(other).create(make_key(13, n=6))
        theirs = tmp_path / "theirs"
        dnsseal("signzone", "-S", "-K", other, "-o", ORIGIN, "-3", "-", "-q", "-f", theirs, src)
        shutil.copyfile(_ledger(theirs), ledger)
    elif damage == "version1":
        ledger.write_bytes(MAGIC + bytes(lf.digests))
    else:
        ledger.write_bytes(b"garbage")
    lines = signed.read_text().splitlines()
    edit_rdata(random.Random(4), lines)
    _, took_fast = resign_both(dnsseal, caplog, signed, "\n".join(lines) + "\n", args, damage)
    assert not took_fast
    assert "reading the whole file" in caplog.text


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("chain", ["-3", "-"]),  # NSEC -> NSEC3
        ("ksk only", ["-x"]),
        ("new key", []),
        ("directive", []),
        ("cut above names", []),
        ("data at an NSEC3 owner", ["-3", "-"]),
        ("SOA minimum", []),
    ],
)
def test_what_the_snapshot_cannot_vouch_for_takes_the_careful_path(
    what: str,
    change: list[str],
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    caplog: pytest.LogCaptureFixture,
    at_now: Callable[[int], None],
) -> None:
    base = ["-S", "-K", str(keydir), "-o", ORIGIN]
    first = ["-3", "-"] if "NSEC3" in what else []
    src = tmp_path / "zone"
    src.write_text(random_zone(random.Random(5)) + "a.deep A 192.0.2.50\n")
    signed = tmp_path / "signed"
    dnsseal("signzone", *base, *first, "-q", "-f", signed, src)
    lines = signed.read_text().splitlines()
    if what == "new key":
        KeyDirectory(keydir).create(make_key(13, n=3))
    elif what == "directive":
        lines.insert(5, "$TTL 60")
        lines.insert(6, "late A 192.0.2.60")
    elif what == "cut above names":
        lines.insert(5, f"deep.{ORIGIN} 300 IN NS ns.elsewhere.net.")
    elif what == "data at an NSEC3 owner":
        owner = next(x.split("\t")[0] for x in lines if "\tNSEC3\t" in x)
        lines.insert(5, f"{owner} 300 IN A 192.0.2.61")
    elif what == "SOA minimum":
        lines[1] = lines[1].replace(" 604800 60", " 604800 61")
    else:
        edit_rdata(random.Random(6), lines)
    _, took_fast = resign_both(dnsseal, caplog, signed, "\n".join(lines) + "\n",
                               [*base, *change], what.replace(" ", "_"))  # fmt: skip
    assert not took_fast, what
    assert "reading the whole file" in caplog.text


def test_no_ledger_reads_everything_and_writes_no_ledger(
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    at_now: Callable[[int], None],
) -> None:
    args = ["-S", "-K", str(keydir), "-o", ORIGIN]
    src = tmp_path / "zone"
    src.write_text(random_zone(random.Random(8)))
    signed = tmp_path / "signed"
    dnsseal("signzone", *args, "-q", "-f", signed, src)
    lines = signed.read_text().splitlines()
    edit_rdata(random.Random(9), lines)
    a, b = tmp_path / "a", tmp_path / "b"
    for p in (a, b):
        p.write_text("\n".join(lines) + "\n")
    shutil.copyfile(_ledger(signed), _ledger(a))
    dnsseal("signzone", *args, "-q", "-f", a, a)
    dnsseal("signzone", *args, "-q", "--no-ledger", "-f", b, b)
    assert a.read_bytes() == b.read_bytes()
    assert not _ledger(b).exists()
    assert parse_ledger(_ledger(a).read_bytes())


@pytest.mark.interop
@pytest.mark.parametrize("mode", ["nsec", "optout"])
def test_fast_output_passes_the_external_verifiers(
    mode: str,
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    caplog: pytest.LogCaptureFixture,
    at_now: Callable[[int], None],
) -> None:
    import time

    at_now(int(time.time()))  # the tools check the times against the real clock
    args = ["-S", "-K", str(keydir), "-o", ORIGIN, *MODES[mode]]
    src = tmp_path / "example.com"
    src.write_text(random_zone(random.Random(10)))
    signed = tmp_path / "signed"
    dnsseal("signzone", *args, "-q", "-f", signed, src)
    rng = random.Random(11)
    lines = signed.read_text().splitlines()
    for e in (add_name, add_delegation, delete_name, edit_rdata, add_ds):
        e(rng, lines)
    fast, took_fast = resign_both(dnsseal, caplog, signed, "\n".join(lines) + "\n", args, "x")
    assert took_fast
    external_verify(fast, tools=("dnssec-verify", "ldns-verify-zone"))


@pytest.mark.parametrize("mode", ["nsec", "optout"])
def test_the_helper_process_makes_the_same_snapshot(
    mode: str,
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    at_now: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large files get their snapshot made in a helper process, from the text as it is
    written: the ledger file is the same byte for byte."""
    from dnsseal.signfile import run as signfile_run

    args = ["-S", "-K", str(keydir), "-o", ORIGIN, *MODES[mode]]
    src = tmp_path / "zone"
    src.write_text(random_zone(random.Random(12)))
    here, helper = tmp_path / "here", tmp_path / "helper"
    dnsseal("signzone", *args, "-q", "-f", here, src)
    monkeypatch.setattr(signfile_run, "HELPER_MIN", 0)
    monkeypatch.setattr(signfile_run, "zone_file_blocks", _small_batches)
    dnsseal("signzone", *args, "-q", "-f", helper, src)
    assert here.read_bytes() == helper.read_bytes()
    assert _ledger(here).read_bytes() == _ledger(helper).read_bytes()


@pytest.mark.parametrize("mode", ["nsec", "optout"])
def test_signed_and_formatted_by_workers_is_the_same(
    mode: str,
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    at_now: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With -P (no verification of the result in memory), a zone is signed while it is
    written; with -n, by worker processes that sign and format a few owners per piece:
    the signed file and its ledger file are the same byte for byte, and the signed file
    is what the run that verifies the zone before writing it writes."""
    from dnsseal.signfile import stream

    args = ["-S", "-K", str(keydir), "-o", ORIGIN, *MODES[mode]]
    src = tmp_path / "zone"
    src.write_text(random_zone(random.Random(13)))
    one, two, checked = tmp_path / "one", tmp_path / "two", tmp_path / "checked"
    dnsseal("signzone", *args, "-q", "-f", checked, src)
    dnsseal("signzone", *args, "-q", "-P", "-f", one, src)
    monkeypatch.setattr(stream, "MIN_OWNERS", 0)
    monkeypatch.setattr(stream, "BATCH", 3)
    pieces: list[int] = []
    real = stream.signed_zone_blocks

    def counting(*a: Any, **k: Any) -> Iterator[bytes]:
        for piece in real(*a, **k):
            pieces.append(len(piece))
            yield piece

    monkeypatch.setattr(stream, "signed_zone_blocks", counting)
    dnsseal("signzone", *args, "-q", "-P", "-n", "2", "-f", two, src)
    assert len(pieces) > 3  # the header, then pieces of three owners
    assert one.read_bytes() == two.read_bytes() == checked.read_bytes()
    assert _ledger(one).read_bytes() == _ledger(two).read_bytes()
    _same_snapshot(_ledger(one), _ledger(checked))


_real_blocks = snapshot_mod.zone_file_blocks


def _small_batches(*args: object) -> object:
    return _real_blocks(*args, batch=3)  # type: ignore[arg-type]


def test_an_edited_blocks_other_rrsets_keep_their_signatures_unchecked(
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    at_now: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No signature is checked: the block's other RRsets are recognised by their groups'
    digests and keep their signatures, and the signature left over the edited RRset is
    known to be ours over other data (its line as written, the RRset's lines not) and is
    replaced.  The careful path checks them all, with the same result."""
    from dnsseal.signer import parallel

    args = ["-S", "-K", str(keydir), "-o", ORIGIN]
    src = tmp_path / "zone"
    src.write_text(
        "$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 60\n@ NS ns1\nns1 A 192.0.2.1\n"
        'www A 192.0.2.7\nwww AAAA 2001:db8::7\nwww TXT "seven"\n'
    )
    signed = tmp_path / "signed"
    dnsseal("signzone", *args, "-q", "-f", signed, src)
    text = signed.read_text()
    edited = text.replace("\tA\t192.0.2.7\n", "\tA\t192.0.2.8\n")
    assert edited != text
    checked: list[int] = []
    real = parallel._verify_chunk

    def counting(jobs: list[tuple[int, bytes, bytes]]) -> list[bool]:
        checked.append(len(jobs))
        return real(jobs)

    monkeypatch.setattr(parallel, "_verify_chunk", counting)
    fast, careful = tmp_path / "fast", tmp_path / "careful"
    for p in (fast, careful):
        p.write_text(edited)
    shutil.copyfile(_ledger(signed), _ledger(fast))
    with caplog.at_level(logging.INFO):
        r = dnsseal("signzone", *args, "-t", "-f", fast, fast)
    assert sum(checked) == 0, checked
    assert "(1 of them group by group)" in caplog.text, caplog.text
    assert re.search(r"Signatures generated:\s+1\n", r.output), r.output
    checked.clear()
    dnsseal("signzone", *args, "-f", careful, careful)
    assert sum(checked) > 5
    assert fast.read_bytes() == careful.read_bytes()


def test_a_block_edited_next_to_a_new_name_is_read_whole(
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    caplog: pytest.LogCaptureFixture,
    at_now: Callable[[int], None],
) -> None:
    """An edit of one RRset is taken group by group, unless the chain touches the block
    too (here a name added after it changes its NSEC): then it is read whole, and the
    output is still the careful path's."""
    args = ["-S", "-K", str(keydir), "-o", ORIGIN]
    src = tmp_path / "zone"
    src.write_text(
        "$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 60\n@ NS ns1\nns1 A 192.0.2.1\n"
        "a A 192.0.2.7\na AAAA 2001:db8::7\nc A 192.0.2.9\n"
    )
    signed = tmp_path / "signed"
    dnsseal("signzone", *args, "-q", "-f", signed, src)
    edited = signed.read_text().replace("\tA\t192.0.2.7\n", "\tA\t192.0.2.8\n")
    edited += f"b.{ORIGIN}\t300\tIN\tA\t192.0.2.20\n"
    with caplog.at_level(logging.DEBUG):
        _, took_fast = resign_both(dnsseal, caplog, signed, edited, args, "lane")
    assert took_fast
    assert "1 changed blocks are not lanes after all" in caplog.text


@pytest.mark.parametrize("mode", ["nsec", "optout"])
def test_a_streamed_re_signing_writes_what_the_verified_one_writes(
    mode: str,
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    at_now: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An edited signed file read whole (keys chosen by its DNSKEY records), a day later:
    with -P it is signed while written (signatures kept from the ledger or checked,
    others made), by workers with -n 2; without -P the signed zone is verified before it
    is written.  Same text, same snapshot, the same signatures in the ledger."""
    from dnsseal.signfile import stream

    monkeypatch.setattr(stream, "MIN_OWNERS", 0)
    monkeypatch.setattr(stream, "BATCH", 5)
    rng = random.Random(f"stream {mode}")
    src = tmp_path / "zone"
    src.write_text(random_zone(rng))
    signed = tmp_path / "signed"
    dnsseal("signzone", "-S", "-K", str(keydir), "-o", ORIGIN, *MODES[mode], "-q", "-P",
            "-f", signed, src)  # fmt: skip
    lines = signed.read_text().splitlines()
    edit_rdata(rng, lines)
    add_name(rng, lines)
    at_now(NOW + DAY)
    outs = {}
    for name, extra in (("verified", []), ("streamed", ["-P", "-n", "2"]),
                        ("unledgered", ["-P", "--no-ledger"])):  # fmt: skip
        edited = tmp_path / f"edited.{name}"
        edited.write_text("\n".join(lines) + "\n")
        shutil.copyfile(_ledger(signed), _ledger(edited))
        out = outs[name] = tmp_path / f"out.{name}"
        dnsseal("signzone", "-K", str(keydir), "-o", ORIGIN, *MODES[mode], "-q", *extra,
                "-f", out, edited)  # fmt: skip
    assert outs["streamed"].read_bytes() == outs["verified"].read_bytes()
    assert outs["unledgered"].read_bytes() == outs["verified"].read_bytes()
    _same_snapshot(_ledger(outs["streamed"]), _ledger(outs["verified"]))
    a = unpack_ledger(_ledger(outs["streamed"]).read_bytes())
    b = unpack_ledger(_ledger(outs["verified"]).read_bytes())
    assert a is not None and b is not None
    assert digest_set(a.digests) == digest_set(b.digests)
    assert not _ledger(outs["unledgered"]).exists()


@pytest.mark.interop
@pytest.mark.parametrize("mode", ["nsec", "nsec3", "optout"])
def test_streamed_output_passes_the_external_verifiers(
    mode: str,
    tmp_path: Path,
    keydir: Path,
    dnsseal: Dnsseal,
    at_now: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signed while written by two workers (-P -n 2): dnssec-verify and ldns-verify-zone
    accept the zone."""
    import time

    from dnsseal.signfile import stream

    monkeypatch.setattr(stream, "MIN_OWNERS", 0)
    monkeypatch.setattr(stream, "BATCH", 4)
    at_now(int(time.time()))  # the tools check the times against the real clock
    src = tmp_path / "example.com"
    src.write_text(random_zone(random.Random(14)))
    signed = tmp_path / "signed"
    dnsseal("signzone", "-S", "-K", str(keydir), "-o", ORIGIN, *MODES[mode], "-q", "-P",
            "-n", "2", "-f", signed, src)  # fmt: skip
    external_verify(signed, tools=("dnssec-verify", "ldns-verify-zone"))
