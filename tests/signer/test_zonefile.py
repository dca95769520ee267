"""Zone files on disk: $INCLUDE (BIND users include their key files), atomic writes."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from conftest import Dnsseal
from dnsseal.errors import FileFormatError, StorageError
from dnsseal.storage.zonefile import read_zone, write_zone
from dnsseal.zone.text import parse_zone_text

from .conftest import FEATURE_ZONE, make_key

T = dns.rdatatype


def test_include_with_and_without_origin(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hosts").write_text("h1 A 192.0.2.1\n$ORIGIN deeper\nh2 A 192.0.2.2\n")
    (tmp_path / "more").write_text("m A 192.0.2.3\n")
    (tmp_path / "zone").write_text(
        "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n"
        "$INCLUDE sub/hosts inc.example.com.\n"
        "after A 192.0.2.4 ; origin restored\n"
        '$INCLUDE "more" ; comment\n'
    )
    z = read_zone(tmp_path / "zone", "example.com.")
    for name in ("h1.inc", "h2.deeper.inc", "after", "m"):
        assert z.get(dns.name.from_text(f"{name}.example.com."), T.A) is not None, name


def test_include_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "zone").write_text("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n$INCLUDE missing\n")
    with pytest.raises(StorageError, match="missing"):
        read_zone(tmp_path / "zone", "example.com.")
    (tmp_path / "loop").write_text("$INCLUDE loop\n")
    with pytest.raises(FileFormatError, match="nested too deeply"):
        read_zone(tmp_path / "loop", "example.com.")


def test_signzone_with_included_key_files(dnsseal: Dnsseal, tmp_path: Path) -> None:
    from dnsseal.storage.keydir import KeyDirectory

    d = KeyDirectory(tmp_path)
    ksk, zsk = make_key(13, ksk=True), make_key(13)
    d.create(ksk)
    d.create(zsk)
    (tmp_path / "example.com").write_text(
        FEATURE_ZONE + f"$INCLUDE {ksk.basename}.key\n$INCLUDE {zsk.basename}.key\n"
    )
    dnsseal("signzone", "-K", tmp_path, "-q", tmp_path / "example.com")
    out = tmp_path / "example.com.signed"
    assert dnsseal("verify", "-o", "example.com", out).exit_code == 0


def test_write_is_atomic_and_reads_back(tmp_path: Path) -> None:
    z = parse_zone_text(FEATURE_ZONE, "example.com.")
    target = tmp_path / "out"
    target.write_text("old")
    write_zone(target, z, header=["test"])
    assert read_zone(target, "example.com.") == z
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp files left
