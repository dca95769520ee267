"""proto.update (RFC 2136) on text zones: prerequisites, adds, deletes, refusals."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.update
import pytest

from dnsseal.proto.update import evaluate, zone_name
from dnsseal.zone.diff import apply
from dnsseal.zone.model import Zone
from dnsseal.zone.text import parse_zone_text

ORIGIN = "u.example."
TEXT = """$TTL 300
@ SOA ns hm 1 2 3 4 5
@ NS ns
ns A 192.0.2.1
www A 192.0.2.2
www TXT "x"
alias CNAME www
"""


def zone() -> Zone:
    return parse_zone_text(TEXT, ORIGIN)


def run(u: dns.update.UpdateMessage) -> tuple[int, Zone]:
    msg = dns.message.from_wire(u.to_wire())
    assert zone_name(msg) is not None
    result = evaluate(msg, zone())
    return result.rcode, apply(zone(), result.change)


def names(z: Zone) -> set[str]:
    return {n.to_text() for n in z.rrsets}


def test_add_and_delete_rrset_and_name() -> None:
    u = dns.update.UpdateMessage(ORIGIN)
    u.add("new", 60, "A", "192.0.2.9")
    u.delete("www", "TXT")
    rcode, z = run(u)
    assert rcode == dns.rcode.NOERROR
    assert "www.u.example." in names(z)
    assert "new.u.example." in names(z)
    assert z.get(dns.name.from_text("www.u.example."), 16) is None
    assert z.get(dns.name.from_text("www.u.example."), 1) is not None
    u = dns.update.UpdateMessage(ORIGIN)
    u.delete("www")
    _, z = run(u)
    assert "www.u.example." not in names(z)


def test_apex_soa_and_last_ns_are_kept() -> None:
    u = dns.update.UpdateMessage(ORIGIN)
    u.delete("@")
    u.delete("@", "NS", "ns")
    rcode, z = run(u)
    assert rcode == dns.rcode.NOERROR
    assert "www.u.example." in names(z)
    assert z.get(z.origin, 6) is not None and z.get(z.origin, 2) is not None


@pytest.mark.parametrize(
    ("prereq", "rcode"),
    [
        (lambda u: u.present("nothere"), dns.rcode.NXDOMAIN),
        (lambda u: u.absent("www"), dns.rcode.YXDOMAIN),
        (lambda u: u.present("www", "MX"), dns.rcode.NXRRSET),
        (lambda u: u.absent("www", "A"), dns.rcode.YXRRSET),
        (lambda u: u.present("www", "A", "192.0.2.3"), dns.rcode.NXRRSET),
        (lambda u: u.present("www", "A", "192.0.2.2"), dns.rcode.NOERROR),
    ],
)
def test_prerequisites(prereq: object, rcode: int) -> None:
    u = dns.update.UpdateMessage(ORIGIN)
    prereq(u)  # type: ignore[operator]
    u.add("z", 60, "A", "192.0.2.7")
    got, z = run(u)
    assert got == rcode
    assert ("z.u.example." in names(z)) == (rcode == dns.rcode.NOERROR)


@pytest.mark.parametrize(
    ("name", "rtype", "rdata"),
    [
        ("www", "RRSIG", "A 13 3 300 20300101000000 20200101000000 1 u.example. AAAA"),
        ("www", "NSEC", "u.example. A"),
        ("@", "NSEC3PARAM", "1 0 0 -"),
        ("www", "DNSKEY", "256 3 13 AAAA"),
        ("@", "TYPE65534", r"\# 5 0da6110001"),
    ],
)
def test_managed_records_are_refused(name: str, rtype: str, rdata: str) -> None:
    u = dns.update.UpdateMessage(ORIGIN)
    u.add(name, 60, rtype, rdata)
    rcode, _ = run(u)
    assert rcode == dns.rcode.REFUSED


def test_cname_conflicts_are_ignored_and_outside_names_notzone() -> None:
    u = dns.update.UpdateMessage(ORIGIN)
    u.add("www", 60, "CNAME", "ns")
    u.add("alias", 60, "A", "192.0.2.5")
    rcode, z = run(u)
    assert (rcode == dns.rcode.NOERROR and z == zone()) or z.rrsets == zone().rrsets
    u = dns.update.UpdateMessage(ORIGIN)
    u.add("x.other.example.", 60, "A", "192.0.2.5")
    assert run(u)[0] == dns.rcode.NOTZONE


def test_prerequisites_see_the_served_zone() -> None:
    """A prerequisite on a record only the signed version has (DNSKEY) holds against it."""
    served_text = TEXT + "@ DNSKEY 256 3 13 " + "A" * 88 + "\n"
    served = parse_zone_text(served_text, ORIGIN)
    u = dns.update.UpdateMessage(ORIGIN)
    u.present("@", "DNSKEY")
    u.add("z", 60, "A", "192.0.2.7")
    msg = dns.message.from_wire(u.to_wire())
    assert evaluate(msg, zone()).rcode == dns.rcode.NXRRSET
    assert evaluate(msg, zone(), served).rcode == dns.rcode.NOERROR


def test_private_type_below_the_apex_is_data() -> None:
    """Only the apex's TYPE65534 RRset is the server's signing state."""
    u = dns.update.UpdateMessage(ORIGIN)
    u.add("www", 60, "TYPE65534", r"\# 2 0102")
    rcode, z = run(u)
    assert rcode == dns.rcode.NOERROR
    assert "www.u.example." in names(z)
