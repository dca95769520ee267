"""What one small signed zone's snapshot and byte-table entries hold (issue #15), counted.

A zone of ``zones_bench.py`` (SOA, NS and 6 names with an A record, signed with NSEC) is
about 3.4 KiB of response wire; its snapshot and byte-table entries were 19 KiB, with
dnspython RRsets and RDATA for the negative SOA, four empty frozensets, empty dicts and
lists for tables the zone does not use, and the NSEC order twice.  Counted with
``sys.getsizeof`` over the objects reachable from them (names aside: the zone model
shares them), never timed.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import sys
import types
from collections.abc import Iterable

import dns.name
import dns.rdata
import dns.rrset

from dnsseal.proto import snapshot, wiretable
from dnsseal.proto.snapshot import WireRRsets, ZoneSnapshot, build_from_model, rrset_wires
from dnsseal.proto.wiretable import WireTable
from dnsseal.signer import Nsec3Params, SignParams, sign_zone
from dnsseal.zone.text import parse_zone_text
from signer.conftest import NOW, ksk_zsk

BENCH_ZONE = (
    "$ORIGIN example.com.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 3600\n"
    "@ NS ns1\nns1 A 192.0.2.1\n" + "".join(f"host{j} A 192.0.2.{j + 10}\n" for j in range(5))
)
STOP = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    enum.Enum,  # (RdataType members: shared)
    dns.name.Name,
)


def _reachable(roots: Iterable[object], shared: set[int]) -> list[object]:
    """Every object reachable from ``roots`` once, not walking into ``STOP`` kinds or the
    objects in ``shared`` (by id)."""
    seen = set(shared)
    out = []
    stack = list(roots)
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, STOP):
            continue
        out.append(o)
        stack.extend(gc.get_referents(o))
    return out


def test_a_small_signed_zone_holds_its_wire_and_little_else() -> None:
    for params in (SignParams(), SignParams(nsec3=Nsec3Params())):
        zone = sign_zone(parse_zone_text(BENCH_ZONE, "example.com."), ksk_zsk()[:1], params, NOW)
        snap = build_from_model(zone.zone)
        table = WireTable([snap], {})
        # The containers shared by every zone that does not need its own (the modules'
        # and the snapshot's class defaults).
        defaults = [f.default for f in dataclasses.fields(ZoneSnapshot)]
        shared = {
            id(o)
            for o in (*vars(snapshot).values(), *vars(wiretable).values(), *defaults)
            if isinstance(o, (dict, list, frozenset)) and not o
        }
        objs = _reachable((snap, table.prefilled[id(snap)]), shared)
        made = [o for o in objs if isinstance(o, (dns.rrset.RRset, dns.rdata.Rdata))]
        assert made == [], "the build makes no dnspython RRset or RDATA"
        empty = [
            o
            for o in objs
            if type(o) in (dict, list, set, frozenset)
            and not o
            and o is not snap.wire_memo
            and o is not snap.nsec3_cache  # (an NSEC3 zone's: filled by its denials)
        ]
        assert empty == [], "an empty container of the zone's own"
        nodes = len(snap.by_key) + len(snap.nsec3_nodes)
        dicts = sum(1 for o in objs if type(o) is dict)
        # The C lane's two wire tables per name; by_key, the wire memo, the byte table's
        # two shares of the zone; NSEC3: the NSEC3 nodes by name and hash, hash memo.
        assert dicts <= 2 * nodes + 7, dicts
        wire = sum(
            len(w)
            for node in (*snap.by_key.values(), *snap.nsec3_nodes.values())
            for table_ in (node.rrsets, node.sigs)
            if isinstance(table_, WireRRsets)
            for _, w in rrset_wires(table_)
        )
        size = sum(sys.getsizeof(o) for o in objs)
        # Beyond the wire: about 1 KiB per name (its Node, two WireRRsets and their
        # dicts, its share of the name tables) and 3 KiB for the zone (was 2.4 KiB per
        # name and 4 KiB here).
        assert size - wire < 1100 * nodes + 3072, (size, wire, nodes)
