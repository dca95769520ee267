"""Compare two DNS responses the way the interop tests need: rcode, flags and the set of
records in each section, ignoring order and OPT options."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdatatype

FLAGS = dns.flags.QR | dns.flags.AA | dns.flags.TC | dns.flags.RD | dns.flags.CD | dns.flags.AD

Record = tuple[str, str, str, int, str]


def section(rrsets: list[dns.rrset.RRset]) -> set[Record]:
    out = set()
    for rrset in rrsets:
        for rd in rrset:
            out.add(
                (
                    rrset.name.to_text().lower(),
                    dns.rdatatype.to_text(rrset.rdtype),
                    dns.rdatatype.to_text(rrset.covers),
                    rrset.ttl,
                    rd.to_text().lower(),
                )
            )
    return out


def summary(m: dns.message.Message) -> dict[str, object]:
    return {
        "rcode": m.rcode(),
        "flags": dns.flags.to_text(m.flags & FLAGS),
        "do": bool(m.ednsflags & dns.flags.DO) if m.edns >= 0 else None,
        "question": [q.to_text() for q in m.question],
        "answer": section(m.answer),
        "authority": section(m.authority),
        "additional": section(m.additional),
    }
