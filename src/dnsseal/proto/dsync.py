"""Generalized DNS notifications (RFC 9859): DSYNC records and NOTIFY(CDS).  PURE.

The parent publishes at ``_dsync.<parent>`` (or, for one child, at
``<child labels>._dsync.<parent>``) ``DSYNC CDS NOTIFY <port> <target>``: where children
send NOTIFY(CDS) when their CDS/CDNSKEY change.  A NOTIFY(CDS) is an ordinary NOTIFY whose
question is ``<child> CDS`` (or CDNSKEY).  The parent answers NOERROR and checks the child
at once, or, when a source or a child sends too many, REFUSED with Extended DNS Error 15
("Blocked", RFC 8914) saying it is rate-limited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

T = dns.rdatatype
IN = dns.rdataclass.IN
LABEL = b"_dsync"
SCHEME_NOTIFY = 1
EDE_BLOCKED = 15
EDE_PROHIBITED = 18
NOTIFY_TYPES = (T.CDS, T.CDNSKEY)


def parent_owner(parent: dns.name.Name) -> dns.name.Name:
    """``_dsync.<parent>``: the DSYNC records for every child."""
    return dns.name.Name((LABEL, *parent.labels))


def child_owner(child: dns.name.Name, parent: dns.name.Name) -> dns.name.Name:
    """``<child labels below parent>._dsync.<parent>`` (RFC 9859 s4.1, child-specific)."""
    rel = child.relativize(parent).labels
    return dns.name.Name((*rel, LABEL, *parent.labels))


def dsync_rdata(rdtype: int, port: int, target: dns.name.Name) -> dns.rdata.Rdata:
    """``DSYNC <type> NOTIFY <port> <target>``."""
    text = f"{T.to_text(T.RdataType(rdtype))} NOTIFY {port} {target.to_text()}"
    return dns.rdata.from_text(IN, T.DSYNC, text)


def notify_targets(
    answers: list[dns.rdata.Rdata], rdtype: int = T.CDS
) -> list[tuple[dns.name.Name, int]]:
    """The (target, port) of the DSYNC records for ``rdtype`` with the NOTIFY scheme."""
    out = []
    for rd in answers:
        if getattr(rd, "rrtype", None) == rdtype and getattr(rd, "scheme", None) == 1:
            out.append((rd.target, int(rd.port)))  # type: ignore[attr-defined]
    return sorted(set(out))


def make_notify(child: dns.name.Name, qid: int, rdtype: int = T.CDS) -> dns.message.Message:
    """NOTIFY(CDS) for ``child`` (RFC 9859 s3: the question names the child and the type)."""
    msg = dns.message.make_query(child, T.RdataType(rdtype))
    msg.id = qid
    msg.set_opcode(dns.opcode.NOTIFY)
    msg.flags = dns.opcode.to_flags(dns.opcode.NOTIFY)
    return msg


def read_notify(msg: dns.message.Message) -> dns.name.Name | None:
    """The child a NOTIFY(CDS/CDNSKEY) is about, None for any other NOTIFY."""
    if msg.opcode() != dns.opcode.NOTIFY or len(msg.question) != 1:
        return None
    q = msg.question[0]
    if q.rdtype not in NOTIFY_TYPES or q.rdclass != IN:
        return None
    return q.name


def response(
    msg: dns.message.Message, rcode: int, blocked: str | None = None, ede: int = EDE_BLOCKED
) -> dns.message.Message:
    """The answer to a NOTIFY(CDS): ``rcode``, with Extended DNS Error ``ede`` (15, Blocked:
    rate-limited; 18, Prohibited: not allowed by dsync-allow) and ``blocked`` as its text."""
    r = dns.message.make_response(msg)
    r.set_rcode(dns.rcode.Rcode(rcode))
    if rcode == dns.rcode.NOERROR:
        r.flags |= dns.flags.AA
    if blocked is not None:
        r.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(dns.edns.EDECode(ede), blocked)])
    return r


@dataclass
class RateLimit:
    """Token buckets: each key may send ``burst`` at once, then one per ``every`` seconds.
    ``allow(key, now)`` takes a token when there is one.  ``now`` is monotonic seconds."""

    burst: int
    every: float
    _buckets: dict[object, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: object, now: float) -> bool:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) / self.every)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 10000:  # bounded: forget the oldest idle keys
            for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:5000]:
                del self._buckets[k]
        return True
