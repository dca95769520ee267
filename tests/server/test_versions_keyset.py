"""The key-set records a version's own signers stand for (``signer_keyset_rdatas``), now
computed from wire forms: the same as dnspython's make_ds (the old text round trip)."""

from __future__ import annotations

from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dnsseal.server.versions import signer_keyset_rdatas
from dnsseal.storage import zonefile
from dnsseal.zone import canonical
from dnsseal.zone.model import Zone

from .conftest import sign_zone

IN = dns.rdataclass.IN
T = dns.rdatatype


def _reference(zone: Zone) -> set[bytes]:
    """What the function computed before: dnspython's key tag and make_ds, through text."""
    tags = {
        int.from_bytes(wire[16:18], "big")
        for node in zone.rrsigs.values()
        for rr in node.values()
        for wire in rr.rdatas
    }
    out: set[bytes] = set()
    dnskeys = zone.get(zone.origin, T.DNSKEY)
    for wire in dnskeys.rdatas if dnskeys else ():
        rd = dns.rdata.from_wire(IN, T.DNSKEY, wire, 0, len(wire))
        if dns.dnssec.key_id(rd) not in tags:  # type: ignore[arg-type]
            continue
        out.add(wire)
        for digest in ("SHA1", "SHA256", "SHA384"):
            ds = dns.dnssec.make_ds(zone.origin, rd, digest, validating=True)
            out.add(canonical.rdata_wire(dns.rdata.from_text(IN, T.CDS, ds.to_text())))
    return out


def test_signer_keyset_rdatas_equal_dnspythons_digests(tmp_path: Path) -> None:
    for variant in ("nsec", "nsec3"):
        signed = sign_zone(tmp_path / variant, variant)
        zone = zonefile.read_zone(signed.path, dns.name.from_text(signed.origin))
        ours = signer_keyset_rdatas(zone)
        assert ours == _reference(zone)
        assert len(ours) == 2 * 4  # KSK and ZSK sign: each DNSKEY and 3 CDS digests


def test_a_packed_version_unpacks_to_the_same_zone(tmp_path: Path) -> None:
    """What a restart reads instead of the journal's text (a zone BIND signed: NSEC and
    NSEC3 chains, two keys); anything else packed, or another zone's, is refused."""
    from dnsseal.server.versions import pack_version, record_line, unpack_version, zone_from_lines
    from dnsseal.zone.diff import records

    for variant in ("nsec", "nsec3"):
        signed = sign_zone(tmp_path / variant, variant)
        origin = dns.name.from_text(signed.origin)
        zone = zonefile.read_zone(signed.path, origin)
        data = pack_version(zone)
        back = unpack_version(data, origin)
        assert back is not None
        assert back == zone
        assert sorted(records(back)) == sorted(records(zone))
        text = zone_from_lines((record_line(r) for r in records(zone)), origin)
        assert back == text  # what the journal's text gives
        assert unpack_version(data, dns.name.from_text("other.")) is None
        assert unpack_version(data[:-3], origin) is None
        assert unpack_version(b"garbage", origin) is None
    import marshal

    fmt, labels = b"dnsseal zone 1", origin.labels
    soa = (6, 300, (zone.get(zone.origin, T.SOA).rdatas))  # type: ignore[union-attr]
    for bad in (
        ("x", (), 1, (), ()),  # another format
        (fmt, labels, 1, (((b"A", *labels), (soa,)),), ()),  # upper case
        (fmt, labels, 1, (((b"a" * 64, *labels), (soa,)),), ()),  # label too long
        (fmt, labels, 1, (((b"x", b""), (soa,)),), ()),  # outside the zone
        (fmt, labels, 1, ((labels, ((1, 300, ("a",)),)),), ()),  # not RDATA
        (fmt, labels, 1, ((labels, ()),), ()),  # an empty node
        (fmt, labels, 1, (((b"x", *labels), (soa,)),), ()),  # no SOA at the apex
    ):
        assert unpack_version(marshal.dumps(bad), origin) is None
    assert unpack_version(marshal.dumps((fmt, labels, 1, ((labels, (soa,)),), ())), origin)
