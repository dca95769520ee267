"""The journal's record text made from wire (dnsseal.zone.rrtext) is byte for byte
dnspython's: the journal removes records by matching their text."""

from __future__ import annotations

import io
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.proto.snapshot import ZoneSnapshot, build, build_from_model
from dnsseal.server.history import record_lines
from dnsseal.server.versions import record_line
from dnsseal.signer import SignParams, sign_zone
from dnsseal.signer.denial import Nsec3Params
from dnsseal.zone import rrtext
from dnsseal.zone.diff import records
from dnsseal.zone.model import Zone
from dnsseal.zone.text import format_zone
from signer.conftest import NOW, ksk_zsk, zone_from

T = dns.rdatatype
IN = dns.rdataclass.IN


def _old_line(name: dns.name.Name, rtype: int, ttl: int, wire: bytes) -> str:
    """record_line as it was: everything through dnspython."""
    rt = T.RdataType(rtype)
    rd = dns.rdata.from_wire(IN, rt, wire, 0, len(wire))
    return f"{name.to_text()} {ttl} IN {T.to_text(rt)} {rd.to_text()}"


def _old_record_lines(snap: ZoneSnapshot) -> set[str]:
    """history.record_lines as it was: through the snapshot's RRset objects."""
    out = set()
    for rrset in snap.records():
        owner = rrset.name.to_text()
        rtype = T.to_text(rrset.rdtype)
        for rd in rrset:
            out.add(f"{owner} {rrset.ttl} IN {rtype} {rd.to_text()}")
    return out


# Labels with the bytes dnspython escapes (specials, space, controls, high bytes) and
# plenty of plain ones.
_label = st.binary(min_size=1, max_size=12) | st.text(
    'abcXYZ09-_*.\\"();@$ ', min_size=1, max_size=10
).map(str.encode)
names = st.lists(_label, min_size=0, max_size=4).map(lambda ls: dns.name.Name([*ls, b""]))
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
blob = st.binary(min_size=1, max_size=8) | st.binary(min_size=20, max_size=300)  # keys, signatures
rdtypes = st.sets(
    st.integers(1, 300) | st.integers(1, 0xFFFF) | st.sampled_from([1, 2, 6, 15, 16, 28, 46, 47]),
    min_size=0,
    max_size=12,
).map(sorted)
_ipv6 = st.lists(
    st.sampled_from([0, 0, 0, 0xFFFF, 1]) | st.integers(0, 0xFFFF), min_size=8, max_size=8
).map(lambda xs: b"".join(x.to_bytes(2, "big") for x in xs))


def _make(rtype: int, *fields: Any) -> dns.rdata.Rdata:
    cls = dns.rdata.get_rdata_class(IN, T.RdataType(rtype))
    return cls(IN, T.RdataType(rtype), *fields)


def _ds(rtype: int) -> st.SearchStrategy[dns.rdata.Rdata]:
    digest = st.sampled_from([(1, 20), (2, 32), (3, 32), (4, 48), (5, 0), (200, 0)]).flatmap(
        lambda tl: st.tuples(
            st.just(tl[0]),
            st.binary(min_size=tl[1], max_size=tl[1])
            if tl[1]
            else st.binary(min_size=0, max_size=80),
        )
    )
    return st.builds(lambda tag, alg, d: _make(rtype, tag, alg, d[0], d[1]), u16, u8, digest)


def _bitmap(types: list[int]) -> Any:
    from dns.rdtypes.util import Bitmap

    return Bitmap.from_rdtypes([T.RdataType.make(t) for t in types]).windows


RDATA: dict[int, st.SearchStrategy[dns.rdata.Rdata]] = {
    T.A: st.binary(min_size=4, max_size=4).map(lambda a: _make(T.A, a)),
    T.AAAA: _ipv6.map(lambda a: _make(T.AAAA, a)),
    T.NS: names.map(lambda n: _make(T.NS, n)),
    T.CNAME: names.map(lambda n: _make(T.CNAME, n)),
    T.SOA: st.builds(
        lambda a, b, *xs: _make(T.SOA, a, b, *xs), names, names, u32, u32, u32, u32, u32
    ),
    T.MX: st.builds(lambda p, n: _make(T.MX, p, n), u16, names),
    T.TXT: st.lists(st.binary(max_size=60), min_size=1, max_size=4).map(lambda s: _make(T.TXT, s)),
    T.DS: _ds(T.DS),
    T.CDS: _ds(T.CDS),
    T.DNSKEY: st.builds(lambda *f: _make(T.DNSKEY, *f), u16, u8, u8, blob),
    T.CDNSKEY: st.builds(lambda *f: _make(T.CDNSKEY, *f), u16, u8, u8, blob),
    T.RRSIG: st.builds(
        lambda *f: _make(T.RRSIG, *f),
        st.integers(1, 0xFFFF),
        u8,
        u8,
        u32,
        u32,
        u32,
        u16,
        names,
        blob,
    ),
    T.NSEC: st.builds(lambda n, ts: _make(T.NSEC, n, _bitmap(ts)), names, rdtypes),
    T.NSEC3: st.builds(
        lambda a, f, i, s, h, ts: _make(T.NSEC3, a, f, i, s, h, _bitmap(ts)),
        u8,
        u8,
        u16,
        st.binary(max_size=255),
        st.binary(min_size=1, max_size=40) | st.binary(min_size=20, max_size=20),
        rdtypes,
    ),
    T.NSEC3PARAM: st.builds(
        lambda *f: _make(T.NSEC3PARAM, *f), u8, u8, u16, st.binary(max_size=255)
    ),
}


def _wire(rd: dns.rdata.Rdata) -> bytes:
    f = io.BytesIO()
    rd.to_wire(f)
    return f.getvalue()


@pytest.mark.parametrize("rtype", sorted(RDATA), ids=T.to_text)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_text_is_dnspython_text(rtype: int, data: st.DataObject) -> None:
    assert rtype in rrtext.FORMATTERS
    rd = data.draw(RDATA[rtype])
    owner = data.draw(names)
    ttl = data.draw(u32)
    wire = _wire(rd)
    assert record_line((owner, rtype, ttl, wire)) == _old_line(owner, rtype, ttl, wire)
    assert rrtext.rdata_text(rtype, wire) == rd.to_text()


def _outcome(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except Exception as e:  # what dnspython raises is the point
        return type(e)


@pytest.mark.parametrize("rtype", sorted(RDATA), ids=T.to_text)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_arbitrary_wire_same_text_or_same_error(rtype: int, data: st.DataObject) -> None:
    """Bytes that are not valid RDATA never get text that dnspython would not give: the
    fast path hands what it is unsure of to dnspython."""
    valid = _wire(data.draw(RDATA[rtype]))
    wire = data.draw(
        st.binary(max_size=80)
        | st.builds(lambda cut: valid[:cut], st.integers(0, len(valid)))
        | st.builds(lambda extra: valid + extra, st.binary(min_size=1, max_size=3))
        | st.builds(
            lambda i, b: valid[:i] + bytes([b]) + valid[i + 1 :], st.integers(0, len(valid)), u8
        )
    )
    name = dns.name.from_text("x.example.")
    assert _outcome(record_line, (name, rtype, 60, wire)) == _outcome(
        _old_line, name, rtype, 60, wire
    )


def test_other_types_through_dnspython() -> None:
    name = dns.name.from_text("Upper.example.")
    for rtype, text in [(T.SRV, "0 5 5060 SIP.Example.COM."), (T.CAA, '0 issue "ca.net"')]:
        rd = dns.rdata.from_text(IN, rtype, text)
        wire = _wire(rd)
        assert record_line((name, rtype, 7, wire)) == _old_line(name, rtype, 7, wire)


def _signed(nsec3: Nsec3Params | None) -> Zone:
    return sign_zone(zone_from(), ksk_zsk(), SignParams(nsec3=nsec3), NOW).zone


SIGNED = [None, Nsec3Params(), Nsec3Params(salt=b"\xc0\xff\xee", iterations=3)]


@pytest.mark.parametrize("nsec3", SIGNED, ids=["nsec", "nsec3", "nsec3-salt"])
def test_signed_zone_lines_equal(nsec3: Nsec3Params | None) -> None:
    zone = _signed(nsec3)
    recs = list(records(zone))
    assert {r[1] for r in recs} >= {T.SOA, T.RRSIG, T.DNSKEY, T.DS, T.TXT, T.AAAA, T.MX}
    assert (T.NSEC3 if nsec3 else T.NSEC) in {r[1] for r in recs}
    assert [record_line(r) for r in recs] == [_old_line(*r) for r in recs]


@pytest.mark.parametrize("nsec3", SIGNED, ids=["nsec", "nsec3", "nsec3-salt"])
def test_record_lines_from_wire(nsec3: Nsec3Params | None) -> None:
    zone = _signed(nsec3)
    snap = build_from_model(zone)
    before = _parsed(snap)  # (the build reads the apex SOA and DNSKEY)
    assert before < 5
    lines = record_lines(snap)
    assert _parsed(snap) == before  # no RRset object made and kept in the snapshot
    assert lines == _old_record_lines(build_from_model(zone))
    assert len(lines) == len(list(records(zone)))
    # a snapshot of ordinary dnspython RRsets (not stored wire) gives the same lines
    dz = dns.zone.from_text(format_zone(zone), zone.origin, relativize=False)
    assert record_lines(build(dz)) == lines


def _parsed(snap: ZoneSnapshot) -> int:
    """How many RRsets of the snapshot have been made into RRset objects (as
    tests/signer/test_xfr_wire.py counts them)."""
    return sum(
        1
        for nodes in (snap.nodes, snap.nsec3_nodes)
        for n in nodes.values()
        for table in (n.rrsets, n.sigs)
        for _ in getattr(table, "_done", None) or {}
    )


def test_caches_stay_bounded_and_right() -> None:
    """More distinct names, times and bitmaps than the caches hold: still dnspython's text
    (the caches empty themselves when full)."""
    owner = dns.name.from_text("example.")
    for i in range(5000):
        target = dns.name.from_text(f"n{i}.example.")
        for rd in (
            _make(T.NS, target),
            _make(T.RRSIG, T.A, 13, 2, 300, 2_000_000_000 + i, 1_000_000_000, 7, target, b"s" * 64),
            _make(T.NSEC, target, _bitmap([1, 46, 47, 256 + i % 4000])),
        ):
            wire = _wire(rd)
            assert record_line((owner, rd.rdtype, 60, wire)) == _old_line(
                owner, rd.rdtype, 60, wire
            )
    assert len(rrtext._NAME_CACHE) <= rrtext._NAME_CACHE_MAX
    assert len(rrtext._BITMAP_TEXT) <= 4096


def test_signature_times_text_is_libc_strftime_and_its_cache_stays_small() -> None:
    """RRSIG times as text (both the journal's and the zone text's formatters) are what
    the C library's strftime gives, for times spread over more minutes than the cache
    holds; the cache keeps at most _MINUTE_TEXT_MAX minutes (it held every second:
    65,536 entries, about 8 MiB each in two modules, once 10,000 zones were signed)."""
    import random
    import time

    from dnsseal.zone import rdtext

    rng = random.Random(15)
    times = [rng.randrange(0, 2**32) for _ in range(20_000)]
    times += range(2_000_000_000 - 90_000, 2_000_000_000 + 90_000, 13)
    times += [0, 59, 60, 86_399, 86_400, 2**32 - 1]
    for t in times:
        assert rdtext.time_text(t) == time.strftime("%Y%m%d%H%M%S", time.gmtime(t)), t
        assert len(rdtext._MINUTE_TEXT) <= rdtext._MINUTE_TEXT_MAX


def test_a_restart_does_not_read_the_zone_it_journaled_already(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal already holds this serial (a restart): its records are not read again
    (in a forked server, reading them copies every page of the zone into the process)."""
    from dnsseal.server import history

    snap = build_from_model(_signed(None))
    journal = history.JournalHistory(tmp_path, writer=True)
    journal.record(snap, NOW)
    read: list[int] = []
    monkeypatch.setattr(history, "record_lines", lambda s: read.append(1) or record_lines(s))
    journal.record(snap, NOW + 60)
    assert read == []
