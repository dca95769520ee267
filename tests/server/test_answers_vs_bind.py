"""dnsseal's answers against BIND's named serving the same zone signed by dnssec-signzone.

For every case of the answering algorithm (exact, CNAME chains, DNAME, wildcard, NXDOMAIN,
NODATA, empty non-terminals, referrals with and without DS, DS from the parent side, NSEC3
owners, truncation), with and without DO, for NSEC, NSEC3 and NSEC3 opt-out zones: same
rcode, same flags, same records in each section.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import build

from .compare import summary
from .conftest import SignedZone

pytestmark = pytest.mark.interop

CASES = [
    ("", "SOA"),
    ("", "NS"),
    ("", "DNSKEY"),
    ("", "MX"),
    ("", "NSEC3PARAM"),
    ("", "NSEC"),
    ("", "DS"),
    ("", "TXT"),
    ("www", "A"),
    ("www", "AAAA"),
    ("www", "TXT"),
    ("WwW", "A"),
    ("www", "MX"),
    ("www", "NSEC"),
    ("www", "RRSIG"),
    ("nope", "A"),
    ("a.nope", "A"),
    ("zzzz", "A"),
    ("0", "A"),
    ("alias", "A"),
    ("alias", "CNAME"),
    ("chain1", "A"),
    ("chain1", "TXT"),
    ("dangling", "A"),
    ("ext", "A"),
    ("x.wild", "A"),
    ("x.wild", "TXT"),
    ("x.wild", "MX"),
    ("a.b.wild", "A"),
    ("wild", "A"),
    ("*.wild", "A"),
    ("q.wcname", "A"),
    ("q.wcname", "CNAME"),
    ("x.dn", "A"),
    ("y.dn", "A"),
    ("dn", "DNAME"),
    ("dn", "A"),
    ("x.dnx", "A"),
    ("c.ent", "A"),
    ("b.c.ent", "TXT"),
    ("a.b.c.ent", "A"),
    ("z.c.ent", "A"),
    ("secure", "A"),
    ("www.secure", "A"),
    ("secure", "DS"),
    ("secure", "NS"),
    ("ns.secure", "A"),
    ("insecure", "DS"),
    ("insecure", "A"),
    ("insecure2", "MX"),
    ("insecure2", "DS"),
    ("deep.er.insecure3", "A"),
    ("deep.er.insecure3", "DS"),
    ("er.insecure3", "A"),
    ("x.er.insecure3", "A"),
    ("long", "TXT"),
    ("many", "TXT"),
]


@pytest.fixture(scope="module")
def engine(signed_zones: dict[str, SignedZone]) -> Engine:
    zones = {}
    for z in signed_zones.values():
        zone = dns.zone.from_file(str(z.path), z.origin, relativize=False)
        snap = build(zone)
        zones[snap.origin] = ServedZone(snap)
    return Engine(zones)


def ask_both(
    engine: Engine, named_port: int, q: dns.message.Message, tcp: bool = False
) -> tuple[dns.message.Message, dns.message.Message]:
    query = dns.query.tcp if tcp else dns.query.udp
    theirs = query(q, "127.0.0.1", port=named_port, timeout=3)
    wire = engine.handle(q.to_wire(), tcp, "127.0.0.1")
    assert len(wire) == 1
    ours = dns.message.from_wire(wire[0])
    return ours, theirs


def qname(origin: str, rel: str) -> str:
    return f"{rel}.{origin}" if rel else origin


TRANSPORTS = {"udp": (1232, False), "tcp": (1232, True), "udp512": (512, False)}


@pytest.mark.parametrize("variant", ["nsec", "nsec3", "optout"])
@pytest.mark.parametrize("do", [True, False], ids=["do", "nodo"])
@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_cases_match_bind(
    engine: Engine,
    named_port: int,
    signed_zones: dict[str, SignedZone],
    variant: str,
    do: bool,
    transport: str,
) -> None:
    """Every case, over UDP, TCP, and UDP with a 512-byte buffer (where the compressing
    renderer and truncation take over from the fast path)."""
    origin = signed_zones[variant].origin
    payload, tcp = TRANSPORTS[transport]
    problems = []
    for rel, rdtype in CASES:
        q = dns.message.make_query(qname(origin, rel), rdtype, want_dnssec=do, payload=payload)
        ours, theirs = ask_both(engine, named_port, q, tcp)
        a, b = summary(ours), summary(theirs)
        if theirs.flags & dns.flags.TC:
            # Truncated: BIND keeps the records that fit, we send none (both allowed by
            # RFC 2181 9), or our compression made it fit; compare rcode and question.
            a = {k: a[k] for k in ("rcode", "question")}
            b = {k: b[k] for k in ("rcode", "question")}
        elif payload == 512 and theirs.flags & dns.flags.AA:
            # With a small buffer BIND leaves out the optional additional data of answers
            # (NS addresses); only referral glue is required (RFC 9471).
            a.pop("additional")
            b.pop("additional")
        if a != b:
            diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
            for k in ("answer", "authority", "additional"):
                if k in diff:
                    diff[k] = ("ours only", a[k] - b[k], "theirs only", b[k] - a[k])  # type: ignore[operator]
            problems.append(f"{rel} {rdtype}: {diff}")
    assert problems == [], "\n".join(problems)


def _differences(ours: dns.message.Message, theirs: dns.message.Message) -> dict[str, object]:
    a, b = summary(ours), summary(theirs)
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


@pytest.mark.parametrize("variant", ["nsec", "nsec3", "optout"])
def test_transport_and_edns_cases_match_bind(
    engine: Engine, named_port: int, signed_zones: dict[str, SignedZone], variant: str
) -> None:
    origin = signed_zones[variant].origin
    queries = [
        # no EDNS: 512-byte limit, the big TXT RRset is truncated
        (dns.message.make_query(f"many.{origin}", "TXT"), False),
        (dns.message.make_query(f"www.{origin}", "A"), False),
        # small EDNS buffer with DO: truncated; over TCP: complete
        (dns.message.make_query(f"many.{origin}", "TXT", want_dnssec=True, payload=512), False),
        (dns.message.make_query(f"many.{origin}", "TXT", want_dnssec=True), True),
        (dns.message.make_query(f"nope.{origin}", "A", want_dnssec=True), True),
        # ANY over TCP gets everything (RFC 8482 only limits UDP)
        (dns.message.make_query(origin, "ANY", want_dnssec=True), True),
        (dns.message.make_query(f"www.{origin}", "RRSIG", want_dnssec=True), True),
        # CD and no RD are echoed
        (dns.message.make_query(f"www.{origin}", "A", want_dnssec=True, flags=dns.flags.CD), False),
        # names outside our zones
        (dns.message.make_query("www.example.org.", "A", want_dnssec=True), False),
        (dns.message.make_query("example.", "SOA"), False),
    ]
    for q, tcp in queries:
        ours, theirs = ask_both(engine, named_port, q, tcp)
        diff = _differences(ours, theirs)
        if ours.flags & theirs.flags & dns.flags.TC:
            # Truncated: BIND keeps the records that fit, we send none (both allowed by
            # RFC 2181 9); the client retries over TCP either way.
            diff = {k: v for k, v in diff.items() if k not in ("answer", "authority")}
        assert diff == {}, q.question


@pytest.mark.parametrize("variant", ["nsec3", "optout"])
def test_nsec3_owner_names_match_bind(
    engine: Engine, named_port: int, signed_zones: dict[str, SignedZone], variant: str
) -> None:
    zone = dns.zone.from_file(str(signed_zones[variant].path), signed_zones[variant].origin)
    owner = next(
        name for name, node in zone.nodes.items() if node.get_rdataset(1, dns.rdatatype.NSEC3)
    ).derelativize(zone.origin)
    for rdtype in ("NSEC3", "A"):
        q = dns.message.make_query(owner, rdtype, want_dnssec=True)
        ours, theirs = ask_both(engine, named_port, q)
        assert _differences(ours, theirs) == {}, rdtype


def test_any_over_udp_is_minimal(engine: Engine, signed_zones: dict[str, SignedZone]) -> None:
    origin = signed_zones["nsec"].origin
    q = dns.message.make_query(origin, "ANY", want_dnssec=True)
    r = dns.message.from_wire(engine.handle(q.to_wire(), False)[0])
    types = {rrset.rdtype for rrset in r.answer} - {dns.rdatatype.RRSIG}
    assert len(types) == 1
    assert r.rcode() == dns.rcode.NOERROR


def test_question_case_is_preserved(engine: Engine, signed_zones: dict[str, SignedZone]) -> None:
    name = "WwW." + signed_zones["nsec"].origin.upper()
    q = dns.message.make_query(name, "A")
    wire = engine.handle(q.to_wire(), False)[0]
    assert name.encode().split(b".")[0] in wire
    assert dns.message.from_wire(wire).question[0].name.to_text() == name


def test_badvers_for_edns_version_1(engine: Engine, signed_zones: dict[str, SignedZone]) -> None:
    q = dns.message.make_query("www." + signed_zones["nsec"].origin, "A", use_edns=1)
    r = dns.message.from_wire(engine.handle(q.to_wire(), False)[0])
    assert r.rcode() == dns.rcode.BADVERS
    assert r.edns == 0
    assert not r.answer


def test_cache_patches_only_the_id(engine: Engine, signed_zones: dict[str, SignedZone]) -> None:
    q = dns.message.make_query("www." + signed_zones["nsec3"].origin, "A", want_dnssec=True)
    first = engine.handle(q.to_wire(), False)[0]
    hits = engine.stats.cache_hits
    q.id = (q.id + 1) % 65536
    second = engine.handle(q.to_wire(), False)[0]
    assert engine.stats.cache_hits == hits + 1
    assert second[2:] == first[2:]
    assert dns.message.from_wire(second).id == q.id
