"""A LazyRRset read by a second reader while the first one parses it (two transfers
rendered in threads) must never look empty: a secondary then missed records."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdatatype
import pytest

from dnsseal.proto import snapshot
from dnsseal.proto.snapshot import LazyRRset
from dnsseal.zone import canonical
from dnsseal.zone.model import RRset

T = dns.rdatatype


def test_a_reader_during_parsing_sees_every_record(monkeypatch: pytest.MonkeyPatch) -> None:
    name = dns.name.from_text("h1.example.")
    m = RRset(name, T.A, 60, (bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])))
    lazy = LazyRRset(name, T.A, snapshot._response_wire(canonical.name_wire(name), m))
    seen: list[int] = []
    real = dns.rdata.from_wire

    def from_wire(*args: object) -> dns.rdata.Rdata:
        if not seen:  # the other reader comes in while the first is parsing
            seen.append(-1)
            seen.append(len(lazy.items))
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(dns.rdata, "from_wire", from_wire)
    assert len(lazy.items) == 2
    assert seen == [-1, 2]
