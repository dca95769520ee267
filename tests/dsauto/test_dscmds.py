"""`dnsseal signaling-zone` and `dnsseal parent-check` (the commands around the engine)."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone

from conftest import Dnsseal

CHILD_TEXT = """$ORIGIN {origin}
$TTL 300
@ SOA ns1.provider.test. hostmaster 1 60 30 600 60
@ NS ns1.provider.test.
@ NS {second}
@ 0 CDS 12345 13 2 1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F809
@ 0 CDNSKEY 257 3 13 ( mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+
    KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== )
www A 192.0.2.1
"""


def test_signaling_zone_copies_the_apex_of_children_naming_the_host(
    dnsseal: Dnsseal, tmp_path: Path
) -> None:
    a = tmp_path / "a.zone"
    a.write_text(CHILD_TEXT.format(origin="a.example.", second="ns2.provider.test."))
    b = tmp_path / "b.zone"
    b.write_text(CHILD_TEXT.format(origin="b.example.", second="ns9.other.test."))
    out = tmp_path / "signal.txt"
    dnsseal(
        "signaling-zone", "--ns", "ns2.provider.test.", "-o", out,
        f"a.example.={a}", f"b.example.={b}",
    )  # fmt: skip
    origin = dns.name.from_text("_signal.ns2.provider.test.")
    got = dns.zone.from_text(
        "$TTL 0\n@ SOA x. y. 1 1 1 1 1\n@ NS x.\n" + out.read_text(),
        origin=origin,
        relativize=False,
    )
    child = dns.zone.from_text(a.read_text(), origin="a.example.", relativize=False)
    owner = dns.name.from_text("_dsboot.a.example._signal.ns2.provider.test.")
    for t in (dns.rdatatype.CDS, dns.rdatatype.CDNSKEY):
        assert got.find_rdataset(owner, t) == child.find_rdataset("a.example.", t)
    # b.example. does not name ns2.provider.test.: nothing for it
    names = {n.to_text() for n in got.nodes}
    assert names == {origin.to_text(), owner.to_text()}


def test_signaling_zone_bad_argument_is_one_line(dnsseal: Dnsseal, tmp_path: Path) -> None:
    r = dnsseal("signaling-zone", "--ns", "ns1.example.", "nofile", ok=False)
    assert r.exit_code != 0
    assert "expected ZONE=FILE" in r.output
    assert "Traceback" not in r.output
