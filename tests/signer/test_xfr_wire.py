"""Zone transfers rendered from the snapshot's stored wire (no RRset object or parsed record
per RRset: a 100k-name presigned zone took minutes to send by AXFR and kept every record
parsed) give the records the RRset-based renderer gives; IXFR differences computed from the
nodes two versions do not share equal the differences of the full record sets.

Oracles: dnspython reads and TSIG-verifies every message of the sequences; the records are
compared with the old path's (:func:`axfr_body` / :func:`records_of`)."""

from __future__ import annotations

import random

import dns.message
import dns.name
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest

from dnsseal.proto import xfr
from dnsseal.proto.snapshot import ZoneSnapshot, build_from_model, update_from_model
from dnsseal.signer import Nsec3Params, SignParams, sign_changes, sign_zone
from dnsseal.zone.diff import diff
from dnsseal.zone.text import parse_zone_text

from .conftest import NOW, ORIGIN, ksk_zsk, zone_from
from .test_chain_incremental import random_change

KEYRING = dns.tsigkeyring.from_text(
    {"xfr.": ("hmac-sha256", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM=")}
)


def _query(
    origin: dns.name.Name, rdtype: str = "AXFR", serial: int | None = None
) -> dns.message.Message:
    q = dns.message.make_query(origin, rdtype)
    if serial is not None:
        soa = dns.rrset.from_text(origin, 0, "IN", "SOA", f". . {serial} 0 0 0 0")
        q.authority.append(soa)
    q.use_tsig(KEYRING, keyname="xfr.")
    return dns.message.from_wire(q.to_wire(), keyring=KEYRING)  # as the server reads it


def _read(
    query: dns.message.Message, wires: list[bytes]
) -> list[tuple[dns.name.Name, int, int, int, bytes]]:
    """Every record of the response sequence, in order, each message TSIG-verified."""
    out = []
    ctx = None
    mac = query.mac
    for i, w in enumerate(wires):
        m = dns.message.from_wire(
            w, keyring=KEYRING, request_mac=mac, xfr=True, tsig_ctx=ctx, multi=True
        )
        assert m.had_tsig and m.question[0].name == query.question[0].name
        ctx = m.tsig_ctx
        mac = m.mac if i == 0 else mac
        for rrset in m.answer:
            for rd in rrset:
                out.append((rrset.name, rrset.ttl, rd.rdtype, rrset.covers, rd.to_digestable()))
    return out


def _flat(rrsets: list[dns.rrset.RRset]) -> list[tuple[dns.name.Name, int, int, int, bytes]]:
    return [(r.name, r.ttl, rd.rdtype, r.covers, rd.to_digestable()) for r in rrsets for rd in r]


BIG = "\n".join(
    ["$TTL 300", "@ SOA ns1 hostmaster 1 3600 900 604800 60", "@ NS ns1", "ns1 A 192.0.2.1"]
    + [f"h{i} A 10.0.{i // 250}.{i % 250}" for i in range(1500)]
    + [f'big TXT "{"x" * 200} {i}"' for i in range(120)]  # one RRset larger than a message
)


@pytest.mark.parametrize("nsec3", [None, Nsec3Params()], ids=["nsec", "nsec3"])
def test_axfr_from_wire_equals_the_rrset_path(nsec3: Nsec3Params | None) -> None:
    zone = sign_zone(parse_zone_text(BIG, ORIGIN), ksk_zsk(), SignParams(nsec3=nsec3), NOW).zone
    snap = build_from_model(zone)
    q = _query(snap.origin)
    wires = xfr.render_axfr(q, snap)
    assert len(wires) > 10
    got = _read(q, wires)
    assert got == _flat(xfr.axfr_body(snap))  # same records, same order, SOA first and last
    assert got[0][2] == dns.rdatatype.SOA and got[-1] == got[0]
    # Owners were compressed: smaller than the old renderer's messages in total
    assert sum(map(len, wires)) < sum(map(len, xfr.render_transfer(q, xfr.axfr_body(snap))))


def test_axfr_from_wire_parses_no_record() -> None:
    zone = sign_zone(parse_zone_text(BIG, ORIGIN), ksk_zsk(), SignParams(), NOW).zone
    snap = build_from_model(zone)
    before = _parsed(snap)
    xfr.render_axfr(_query(snap.origin), snap)
    assert _parsed(snap) == before


def _parsed(snap: ZoneSnapshot) -> int:
    """How many RRsets of the snapshot have been made into RRset objects."""
    return sum(
        1
        for nodes in (snap.nodes, snap.nsec3_nodes)
        for n in nodes.values()
        for table in (n.rrsets, n.sigs)
        for rr in getattr(table, "_done", None) or {}
    )


def _old_ixfr(versions: list[ZoneSnapshot], start: int) -> list[dns.rrset.RRset]:
    """The IXFR body as computed before: full record sets of every version."""
    soa_now = versions[-1].apex.rrsets[dns.rdatatype.SOA]
    body = [soa_now]
    old_records = xfr.records_of(versions[start])
    for snap in versions[start + 1 :]:
        new_records = xfr.records_of(snap)
        old_soa = {
            r for r in old_records if r[3].rdtype == dns.rdatatype.SOA and r[0] == snap.origin
        }
        new_soa = {
            r for r in new_records if r[3].rdtype == dns.rdatatype.SOA and r[0] == snap.origin
        }
        body += xfr.group_records(old_soa) + xfr.group_records(old_records - new_records - old_soa)
        body += xfr.group_records(new_soa) + xfr.group_records(new_records - old_records - new_soa)
        old_records = new_records
    body.append(soa_now)
    return body


@pytest.mark.parametrize("nsec3", [None, Nsec3Params()], ids=["nsec", "nsec3"])
def test_ixfr_from_unshared_nodes_equals_full_differences(nsec3: Nsec3Params | None) -> None:
    keys = ksk_zsk()
    params = SignParams(nsec3=nsec3, serial="increment")
    zone = sign_zone(zone_from(), keys, params, NOW).zone
    versions = [build_from_model(zone)]
    rng = random.Random(1995)
    for step in range(13):
        new = sign_changes(
            zone, random_change(rng, zone), keys, params, NOW + step, fresh_until=NOW + 999
        ).zone
        names = {r[0] for r in (*diff(zone, new).removed, *diff(zone, new).added)}
        if step < 12:
            versions.append(update_from_model(versions[-1], new, names))
        else:  # a version built from scratch: it shares no node with the one before
            versions.append(build_from_model(new))
        zone = new
    current, history = versions[-1], versions[:-1]
    for start in (0, 5, len(versions) - 3, len(versions) - 2):
        q = _query(current.origin, "IXFR", versions[start].serial)
        body = xfr.ixfr_diffs(current, history, versions[start].serial)
        assert body is not None
        assert _flat(body) == _flat(_old_ixfr(versions, start))
        # (dnspython's renderer shuffles the records within each RRset)
        assert _by_rrset(_read(q, xfr.transfer(q, current, history))) == _by_rrset(_flat(body))


def _by_rrset(records: list[tuple[dns.name.Name, int, int, int, bytes]]) -> list[object]:
    """Consecutive records of one RRset as one sorted group: order between RRsets kept."""
    out: list[tuple[object, list[bytes]]] = []
    for name, ttl, rdtype, covers, rd in records:
        key = (name, ttl, rdtype, covers)
        if out and out[-1][0] == key:
            out[-1][1].append(rd)
        else:
            out.append((key, [rd]))
    return [(k, sorted(v)) for k, v in out]


def test_ixfr_parses_only_what_changed() -> None:
    keys = ksk_zsk()
    params = SignParams(serial="increment")
    zone = sign_zone(parse_zone_text(BIG, ORIGIN), keys, params, NOW).zone
    old = build_from_model(zone)
    change = random_change(random.Random(7), zone)
    new_zone = sign_changes(zone, change, keys, params, NOW + 1, fresh_until=NOW + 999).zone
    names = {r[0] for r in (*diff(zone, new_zone).removed, *diff(zone, new_zone).added)}
    new = update_from_model(old, new_zone, names)
    before = _parsed(old) + _parsed(new)
    body = xfr.ixfr_diffs(new, [old], old.serial)
    assert body is not None and len(body) > 4
    # the SOAs, and the changed names' RRsets with their chain neighbours': not the zone's
    assert _parsed(old) + _parsed(new) - before < 40
