"""The C datagram loop (dnsseal.server._udpfast) answers exactly like the Python paths.

* It is built by ``pip install`` (``make test`` installs it): a missing module fails here.
* ``_udpfast.answer`` (what the loop does per datagram, without a socket) gives the byte
  path's response byte for byte whenever it answers, on random questions over the signed
  test zones, and it answers the plain positive questions (so the comparison is not
  vacuous).  The byte path itself is compared with the general path in test_wiretable.py.
* The names table prefilled when a WireTable is made holds exactly the names the byte path
  would remember on first ask (delegations, DNAMEs and zones below zones included).
* A running server answers the same bytes with the C loop and with the Python loop.
"""

from __future__ import annotations

import base64
import random
import socket
from pathlib import Path
from types import ModuleType

import dns.message
import dns.name
import dns.rcode
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.proto.engine import Engine, ServedZone
from dnsseal.proto.snapshot import Nsec3Params, ZoneSnapshot, build, load_text, nsec3_digest
from dnsseal.proto.wiretable import WireTable, sort_key
from dnsseal.server import udp

from .conftest import SignedZone, start_dnsseal, stop
from .test_wiretable import QTYPES, _names, _query, _random_case, _summary


def _native() -> ModuleType:
    from dnsseal.server import _udpfast

    return _udpfast


def test_the_c_loop_is_built_and_used() -> None:
    """make test builds the extension: without it the server silently runs the slower
    Python loop, which this test does not let pass unnoticed."""
    assert _native().Loop is not None
    assert udp.native_loop()


def _snaps(signed_zones: dict[str, SignedZone]) -> list[ZoneSnapshot]:
    return [load_text(z.path.read_text(), z.origin) for z in signed_zones.values()]


def test_c_answers_are_the_byte_paths(signed_zones: dict[str, SignedZone]) -> None:
    native = _native()
    snaps = _snaps(signed_zones)
    engine = Engine({s.origin: ServedZone(s) for s in snaps})
    table = engine.wire
    rng = random.Random(20261206)
    names = [n for s in snaps for n in _names(s)]
    held = [(name, t) for s in snaps for name, node in s.nodes.items() for t in node.rrsets]
    answered = positive = 0
    nxdomain = {s.origin: [0, 0] for s in snaps}  # zone -> [byte path's, C's]
    for i in range(8000):
        if i % 2:  # a type the name holds
            name, qtype = rng.choice(held)
        else:
            name, qtype = rng.choice(names), rng.choice(QTYPES)
        qname = _random_case(name, rng)
        wire, _tcp = _query(qname, qtype, rng)
        payload = rng.choice((512, 1232, 4096))
        got = native.answer(wire, None, table.names, table.exist, payload)
        want = table.answer(wire, False, payload)
        if want is not None and want[3] & 0xF == 0 and want[6:8] != b"\0\0":
            first = dns.message.from_wire(want).answer[0]
            positive += first.name == qname and first.rdtype == qtype
        if want is not None and want[3] & 0xF == 3:
            zone = next(s.origin for s in snaps if qname.is_subdomain(s.origin))
            nxdomain[zone][0] += 1
            nxdomain[zone][1] += got is not None
        if got is None:
            continue
        answered += 1
        assert got == want, dns.message.from_wire(wire).question
    # The C lane takes the byte path's plain positive answers (all but the oversized ones).
    assert answered > 2000, (answered, positive)
    assert answered >= positive * 0.9
    # ... and most of its NXDOMAIN answers, in the NSEC, NSEC3 and opt-out zones alike
    # (not below delegations, DNAMEs or where a wildcard applies).
    for zone, (want_nx, got_nx) in nxdomain.items():
        assert got_nx > 50 and got_nx >= want_nx * 0.5, (zone, want_nx, got_nx)


@settings(max_examples=300, deadline=None)
@given(
    name=st.binary(min_size=1, max_size=255),
    salt=st.binary(max_size=255),
    iterations=st.integers(0, 20),
)
def test_the_c_nsec3_hash_is_rfc5155s(name: bytes, salt: bytes, iterations: int) -> None:
    """The lane's own SHA-1 (FIPS 180-4) gives hashlib's NSEC3 hashes, block edges included."""
    params = Nsec3Params(salt=salt, iterations=iterations)
    want = nsec3_digest(params, name).to_bytes(20, "big")
    assert _native().nsec3_hash(name, salt, iterations) == want


def test_the_c_nsec3_hash_vectors() -> None:
    """RFC 5155 Appendix A: example. with salt aabbccdd and 12 iterations."""
    native = _native()
    salt = bytes.fromhex("aabbccdd")
    for text, want in (
        ("example.", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
        ("a.example.", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
        ("ns1.example.", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
    ):
        got = native.nsec3_hash(dns.name.from_text(text).to_wire(), salt, 12)
        assert base64.b32hexencode(got).decode().lower() == want
    with pytest.raises(ValueError):
        native.nsec3_hash(b"\x00", b"x" * 256, 0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.binary(min_size=1, max_size=5), min_size=0, max_size=4).map(
            lambda labels: (b"", *labels)
        ),
        min_size=2,
        max_size=8,
    )
)
def test_sort_keys_order_like_canonical_keys(keys: list[tuple[bytes, ...]]) -> None:
    """The bytes the C lane bisects sort exactly as the reversed label tuples do (RFC 4034
    6.1 order), octets 0 and 1 inside labels included."""
    assert sorted(keys, key=sort_key) == sorted(keys)
    assert len({sort_key(k) for k in keys}) == len(set(keys))


def test_c_answers_every_existing_name_and_type(signed_zones: dict[str, SignedZone]) -> None:
    native = _native()
    snaps = _snaps(signed_zones)
    table = Engine({s.origin: ServedZone(s) for s in snaps}).wire
    answered = 0
    for snap in snaps:
        for name, node in snap.nodes.items():
            for rdtype in [*node.rrsets, *QTYPES]:
                for do in (False, True):
                    q = dns.message.make_query(name, rdtype, want_dnssec=do, payload=4096)
                    wire = q.to_wire()
                    got = native.answer(wire, None, table.names, table.exist, 4096)
                    if got is not None:
                        answered += 1
                        assert got == table.answer(wire, False, 4096), (name, rdtype, do)
    assert answered > 100


def test_c_answers_from_the_response_cache_with_the_query_id() -> None:
    native = _native()
    q = dns.message.make_query("www.example.", "A").to_wire()
    cached = b"\x84\x00" + q[4:] + b"payload"
    other = b"\xab\xcd" + q[2:]
    assert native.answer(other, {q[2:]: cached}, {}, {}, 1232) == b"\xab\xcd" + cached
    assert native.answer(other, {}, {}, {}, 1232) is None
    for hostile in (b"", b"\x00", b"\xff" * 11, b"\x00" * 17, other[:20], other + b"\x00"):
        assert native.answer(hostile, {}, {}, {}, 1232) is None


_TABLES: dict[str, WireTable] = {}


@settings(max_examples=400, deadline=None)
@given(
    variant=st.sampled_from(["nsec", "nsec3", "optout"]),
    data=st.binary(min_size=0, max_size=80),
    prefix=st.integers(0, 60),
    flip=st.integers(0, 59),
)
def test_hostile_bytes_get_nothing_or_the_byte_paths_answer(
    signed_zones: dict[str, SignedZone], variant: str, data: bytes, prefix: int, flip: int
) -> None:
    """Random bytes, alone, after a valid query's first bytes, or one octet of a valid
    query changed: the C lanes answer nothing or what the byte path answers, and never
    crash the interpreter or raise."""
    z = signed_zones[variant]
    if variant not in _TABLES:
        _TABLES[variant] = WireTable([load_text(z.path.read_text(), z.origin)], {})
    table = _TABLES[variant]
    native = _native()
    for qname in (f"www.{z.origin}", f"nx-{flip}.{z.origin}"):
        q = dns.message.make_query(qname, "A", want_dnssec=True).to_wire()
        changed = bytearray(q)
        changed[flip % len(q)] ^= data[0] if data else 0xFF
        for wire in (data, q[:prefix] + data, bytes(changed)):
            got = native.answer(wire, None, table.names, table.exist, 1232)
            if got is not None:
                assert got == table.answer(wire, False, 1232)


PARENT = """
$ORIGIN example.
$TTL 300
@        SOA ns hostmaster 1 3600 600 86400 300
@        NS ns
ns       A 192.0.2.1
www      A 192.0.2.2
deep.er.name A 192.0.2.3
sub      NS ns.sub
ns.sub   A 192.0.2.4
below.ns.sub A 192.0.2.5
redir    DNAME elsewhere.example.
x.redir  A 192.0.2.6
child    NS ns.child
in.child A 192.0.2.7
*.wild   TXT "wildcard"
"""

CHILD = """
$ORIGIN child.example.
$TTL 300
@        SOA ns hostmaster 1 3600 600 86400 300
@        NS ns
ns       A 192.0.2.8
in       A 192.0.2.9
"""


def _remembered(snaps: list[ZoneSnapshot]) -> dict[bytes, object]:
    """What the byte path remembers when every name of ``snaps`` is asked for once."""
    table = WireTable(snaps, {})
    table.names.clear()
    for snap in snaps:
        for name in [*snap.nodes, *snap.ents, *snap.nsec3_nodes]:
            table.answer(dns.message.make_query(name, "A").to_wire(), False, 1232)
    return dict(table.names)


def test_prefilled_names_are_what_the_byte_path_remembers(
    signed_zones: dict[str, SignedZone],
) -> None:
    unsigned = [
        build(dns.zone.from_text(PARENT, "example.", relativize=False)),
        build(dns.zone.from_text(CHILD, "child.example.", relativize=False)),
    ]
    for snaps in (_snaps(signed_zones), unsigned, unsigned[:1]):
        prefilled = WireTable(snaps, {}).names
        remembered = _remembered(snaps)
        assert prefilled.keys() == remembered.keys()
        for key, entry in prefilled.items():
            again = remembered[key]
            assert entry[0].current.snap is again[0].current.snap  # type: ignore[index]
            assert all(a is b for a, b in zip(entry[1:], again[1:], strict=True))  # type: ignore[call-overload]
    names = WireTable(unsigned, {}).names
    lowered = {dns.name.from_wire(k, 0)[0].to_text() for k in names}
    assert "www.example." in lowered and "in.child.example." in lowered
    assert "ns.sub.example." not in lowered  # glue below a delegation
    assert "x.redir.example." not in lowered  # below a DNAME
    assert "in.child.example." in lowered
    # ... and answered from the child zone, not the parent's occluded data
    wz = names[dns.name.from_text("in.child.example.").to_wire()][0]
    assert wz.current.snap.origin == dns.name.from_text("child.example.")


def test_exist_says_where_a_plain_nxdomain_applies() -> None:
    parent = build(dns.zone.from_text(PARENT, "example.", relativize=False))
    child = build(dns.zone.from_text(CHILD, "child.example.", relativize=False))
    exist = WireTable([parent, child], {}).exist

    def zone(name: str) -> str | None:
        wz = exist[dns.name.from_text(name).to_wire()]
        return None if wz is None else wz.current.snap.origin.to_text()

    assert zone("example.") == "example."
    assert zone("www.example.") == "example."
    assert zone("name.example.") == "example."  # an empty non-terminal
    assert zone("er.name.example.") == "example."
    assert zone("sub.example.") is None  # a delegation
    assert zone("ns.sub.example.") is None  # below it
    assert zone("redir.example.") is None  # a DNAME
    assert zone("x.redir.example.") is None
    assert zone("wild.example.") is None  # a wildcard child: synthesis, not NXDOMAIN
    assert zone("child.example.") == "child.example."  # the deeper zone wins
    assert zone("in.child.example.") == "child.example."
    assert dns.name.from_text("nowhere.example.").to_wire() not in exist


def test_a_new_table_keeps_unchanged_zones_entries(signed_zones: dict[str, SignedZone]) -> None:
    snaps = _snaps(signed_zones)
    first = WireTable(snaps, {})
    changed = load_text(next(iter(signed_zones.values())).path.read_text(), snaps[0].origin)
    second = WireTable([changed, *snaps[1:]], {}, first)
    for snap in snaps[1:]:
        assert second.prefilled[id(snap)][2] is first.prefilled[id(snap)][2]
    assert second.prefilled[id(changed)][2] is not first.prefilled[id(snaps[0])][2]
    assert {entry[0].current.snap for entry in second.names.values()} == {changed, *snaps[1:]}
    assert second.prefilled[id(snaps[1])][3] is first.prefilled[id(snaps[1])][3]


def _exchange(port: int, family: int, host: str, wires: list[bytes]) -> list[bytes | None]:
    out: list[bytes | None] = []
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for wire in wires:
            s.sendto(wire, (host, port))
            try:
                out.append(s.recv(65535))
            except TimeoutError:
                out.append(None)
    return out


def _questions(signed_zones: dict[str, SignedZone]) -> list[bytes]:
    rng = random.Random(5)
    snaps = _snaps(signed_zones)
    names = [n for s in snaps for n in _names(s)]
    wires = []
    for i in range(600):
        wire, _tcp = _query(_random_case(rng.choice(names), rng), rng.choice(QTYPES), rng)
        wires.append(wire)
        if i % 3 == 0:
            wires.append(wire)  # asked again: a response-cache hit
    # A plain query, then hostile ones: garbage gets FORMERR or nothing, never a crash.
    q = dns.message.make_query(f"www.{snaps[0].origin}", "A", want_dnssec=True)
    q.id = 77
    wires += [q.to_wire(), b"\x00\x01\x00\x00" + b"\xff" * 30, q.to_wire()[:15], q.to_wire()]
    return wires


@pytest.mark.slow
def test_a_running_server_answers_the_same_from_either_loop(
    signed_zones: dict[str, SignedZone], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wires = _questions(signed_zones)
    answers = {}
    for loop in ("c", "python"):
        if loop == "python":
            monkeypatch.setenv(udp.LOOP_ENV, "python")
        workdir = tmp_path / loop
        workdir.mkdir()
        server = start_dnsseal(workdir, signed_zones, v6=True, workers=2)
        try:
            v4 = _exchange(server.port, socket.AF_INET, "127.0.0.1", wires)
            v6 = _exchange(server.port, socket.AF_INET6, "::1", wires[:50])
            status = server.ctl("status")
            assert status.returncode == 0, status.stderr
        finally:
            stop(server.proc)
        answers[loop] = (v4, v6)
        assert server.proc.returncode == 0 or server.proc.returncode < 0
    # The same messages (RRset order may differ: the general path's sets iterate in each
    # process's hash order).
    for got in (answers["c"], answers["python"]):
        assert all(a is not None for a in got[0][:-3])
    summaries = {
        loop: [_summary(a) if a is not None else None for a in (*v4, *v6)]
        for loop, (v4, v6) in answers.items()
    }
    assert summaries["c"] == summaries["python"]
    v4, v6 = answers["c"]
    assert v4[-1] is not None and dns.message.from_wire(v4[-1]).id == 77
    assert summaries["c"][len(v4) :] == summaries["c"][:50]  # IPv6 as IPv4
