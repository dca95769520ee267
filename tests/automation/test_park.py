"""A small inline-signed zone keeps its models packed between changes (issue #15:
10,000 small zones; ``InlineZone.park``).  A read gives the same records; each change
(maintenance, source edit, UPDATE, ``signing -clear``) starts from them and leaves them
packed again; a zone above ``PARK_NAMES`` owners keeps its models (its UPDATEs must not
pay O(zone)).  The signatures' verification is the outside check here; the answers
through UPDATEs are checked against named by tests/server/test_worker_answers.py and
tests/automation/test_update_vs_named.py, which now run on parked zones."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdatatype

from dnsseal.findings import Severity
from dnsseal.policy.build import lookup
from dnsseal.proto.snapshot import build_from_model
from dnsseal.server import inline as inline_mod
from dnsseal.server.inline import InlineZone
from dnsseal.signer.verify import verify_zone
from dnsseal.zone.diff import ZoneDiff, apply
from dnsseal.zone.model import RRset, Zone

from .conftest import zone_text

NOW = 1_800_000_000
T = dns.rdatatype


def _zone(tmp_path: Path, extra: str = "") -> InlineZone:
    src = tmp_path / "p.example.zone"
    src.write_text(zone_text("p.example.", extra=extra).replace("$TTL 2", "$TTL 300"))
    (tmp_path / "state").mkdir(exist_ok=True)
    return InlineZone("p.example.", src, lookup("default", {}), tmp_path / "keys",
                      tmp_path / "state")  # fmt: skip


def _ok(zone: Zone, now: int) -> None:
    errors = [str(f) for f in verify_zone(zone, now) if f.severity is Severity.ERROR]
    assert not errors, errors


def test_a_small_zone_is_parked_between_changes_and_reads_the_same_records(
    tmp_path: Path,
) -> None:
    z = _zone(tmp_path)
    v = z.maintain(NOW)
    assert v is not None
    z.save_source_copy()  # (the caller's, once the version is journaled)
    assert z._file_copy is None and z.copy_path.exists()  # read back when the file changes
    assert z.parked and isinstance(z._signed, bytes) and isinstance(z._unsigned, bytes)
    assert z.signed == v.zone  # the same records, TTLs, owners and classes
    assert z.signed is not z.signed  # (a new model per read: nothing kept)
    unsigned = z.unsigned
    assert unsigned is not None and T.RRSIG not in {t for n in unsigned.rrsets.values()
                                                   for t in n}  # fmt: skip
    # nothing due: no new version, still parked
    assert z.maintain(NOW + 60) is None and z.parked
    # an UPDATE on the parked zone: the version is the previous one plus its diff
    name = dns.name.from_text("new.p.example.")
    rec = (name, T.A, 300, b"\xc0\x00\x02\x07")
    before = z.signed
    assert before is not None
    v2 = z.update(ZoneDiff((), (rec,)), NOW + 120)
    assert z.parked
    assert apply(before, v2.diff) == v2.zone == z.signed
    assert z.signed is not None and z.signed.get(name, T.A) == RRset(name, T.A, 300, (rec[3],))
    assert z.unsigned is not None and z.unsigned.get(name, T.A) is not None
    _ok(v2.zone, NOW + 120)
    # a source edit on the parked zone (its copy was dropped once written: read back)
    z.source.write_text(z.source.read_text().replace("192.0.2.80", "192.0.2.81")
                        .replace(" 1 60 30", " 2 60 30"))  # fmt: skip
    z.file_sig = None  # (the same second and size: make sure the edit is seen)
    v3 = z.maintain(NOW + 180)
    assert v3 is not None and z.parked
    www = dns.name.from_text("www.p.example.")
    assert v3.zone.get(www, T.A) == RRset(www, T.A, 300, (b"\xc0\x00\x02\x51",))
    assert z.signed == v3.zone and z.signed.get(name, T.A) is not None  # the UPDATE kept
    _ok(v3.zone, NOW + 180)


def test_a_zone_above_the_bound_keeps_its_models(tmp_path: Path) -> None:
    hosts = "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(inline_mod.PARK_NAMES))
    z = _zone(tmp_path, hosts)
    v = z.maintain(NOW)
    assert v is not None and not z.parked
    assert z.signed is z.signed is v.zone  # the model itself, kept
    name = dns.name.from_text("new.p.example.")
    v2 = z.update(ZoneDiff((), ((name, T.A, 300, b"\xc0\x00\x02\x07"),)), NOW + 60)
    assert not z.parked and z.signed is v2.zone


def test_a_settled_zone_reads_its_model_from_the_snapshot_served(tmp_path: Path) -> None:
    """Once its version is served (and pushed to the workers), a parked zone drops its own
    packed form: the snapshot served holds the same records (``InlineZone.settle``)."""
    z = _zone(tmp_path)
    v = z.maintain(NOW)
    assert v is not None and isinstance(z._signed, bytes)
    # refused: a snapshot of another serial (not this version)
    assert not z.settle(build_from_model(inline_mod._with_serial(v.zone, v.serial + 1)))
    assert isinstance(z._signed, bytes)
    snap = build_from_model(v.zone)
    assert z.settle(snap) and z._signed is snap and z.parked and z.packed_signed is None
    assert z.signed == v.zone and z.signed_serial == v.serial
    assert not z.settle(snap)  # (once)
    # a change starts from it, and leaves the zone packed (its own bytes again)
    name = dns.name.from_text("new.p.example.")
    rec = (name, T.A, 300, b"\xc0\x00\x02\x07")
    v2 = z.update(ZoneDiff((), (rec,)), NOW + 120)
    assert apply(v.zone, v2.diff) == v2.zone == z.signed
    assert isinstance(z._signed, bytes) and z.signed_serial == v2.serial
    _ok(v2.zone, NOW + 120)
    assert not z.settle(snap)  # the version before: not this one
    assert z.signed == v2.zone
    # during a change (the model unpacked), a settle changes nothing
    z._unpark()
    assert not z.settle(build_from_model(v2.zone)) and z.signed is z.signed
    assert z.park() and z.settle(build_from_model(v2.zone)) and z.signed == v2.zone
    # nothing due: the settled zone stays as it is
    assert z.maintain(NOW + 180) is None and z.signed == v2.zone
