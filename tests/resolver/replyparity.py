"""The oracle of the fast reply reader: what ``dns.message.from_wire`` builds, compared field
by field (dnspython shuffles RRs in ``to_wire``, so the wire form is no comparison)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rrset

from dnsseal.resolver.replyreader import Reply, read_reply


def value(v: Any) -> Any:
    """A comparable picture of a field: its type and its value, names by exact labels."""
    if isinstance(v, dns.name.Name):
        return ("Name", v.labels)
    if isinstance(v, (tuple, list)):
        return (type(v), tuple(value(x) for x in v))
    if isinstance(v, Mapping):  # SVCB parameters, ...
        return (type(v), tuple((value(k), value(x)) for k, x in v.items()))
    if isinstance(v, dns.rdata.Rdata):
        return _rdata(v)
    slots = sorted({s for c in type(v).__mro__ for s in getattr(c, "__slots__", ())})
    if slots and not isinstance(v, (int, str, bytes)):  # parts of rdata
        return (type(v), tuple((s, value(getattr(v, s, None))) for s in slots))
    if hasattr(v, "__dict__") and not isinstance(v, type) and type(v).__eq__ is object.__eq__:
        return (type(v), tuple((k, value(x)) for k, x in sorted(vars(v).items())))
    return (type(v), v)


def _rdata(rd: dns.rdata.Rdata) -> Any:
    """An rdata: dnspython's class and fields, and whether its hash is dnspython's (the fast
    reader's rdata are dnspython's classes subclassed to keep the hash of their canonical
    form, in a ``_hash`` slot: the class compared is the one it subclasses, and the hash
    kept must be the one dnspython computes, or sets and dicts mixing both go wrong)."""
    cls: type = type(rd)
    if "_hash" in cls.__dict__.get("__slots__", ()):
        cls = cls.__mro__[1]
    slots = sorted({s for c in cls.__mro__ for s in getattr(c, "__slots__", ())})
    try:
        hash_ok = hash(rd) == hash(rd.to_digestable(dns.name.root))
    except dns.exception.DNSException:  # not digestable (dnspython's hash fails too)
        hash_ok = True
    return (cls, tuple((s, value(getattr(rd, s, None))) for s in slots), hash_ok)


def rrset_picture(r: dns.rrset.RRset) -> Any:
    return (
        value(r.name),
        value(r.rdclass),
        value(r.rdtype),
        value(r.covers),
        value(r.deleting),
        value(r.ttl),
        tuple(value(rd) for rd in r),
        tuple(value(rd) for rd in r.items),
    )


def picture(m: dns.message.Message) -> Any:
    """Everything the resolver and validator can read of a parsed message.  The fast
    reader's :class:`Reply` is dnspython's ``QueryMessage`` with ``rcode()`` and ``index``
    computed more cheaply: the class compared is the one it subclasses, and both are read
    through it (so they must agree with dnspython's)."""
    cls: type = type(m)
    if cls is Reply:
        cls = dns.message.QueryMessage
    return (
        cls,
        value(m.id),
        value(m.flags),
        tuple(tuple(rrset_picture(r) for r in s) for s in m.sections),
        None if m.opt is None else rrset_picture(m.opt),
        m.tsig,
        m.wire,
        value(m.rcode()),
        value(m.opcode()),
        m.edns,
        m.ednsflags,
        m.payload,
        m.options,
        sorted((repr(k), value(k[0]), rrset_picture(v)) for k, v in m.index.items()),
        m.origin,
        m.xfr,
        m.request_mac,
        m.keyring,
        m.tsig_ctx,
        m.errors,
    )


def outcome(read: Any, wire: bytes) -> Any:
    try:
        return ("ok", picture(read(wire)))
    except Exception:  # any rejection counts as a rejection
        return ("rejected", "")


def fast_outcome(wire: bytes, scrub: bool = False) -> Any:
    """The fast reader's outcome; it may refuse input only with a DNSException (the one
    exception tree the resolver catches), never with another error."""
    try:
        return ("ok", picture(read_reply(wire, scrub)))
    except dns.exception.DNSException:
        return ("rejected", "")
    except Exception as e:
        raise AssertionError(f"{wire.hex()}: the fast reader raised {e!r}") from e


def check(wire: bytes) -> bool:
    """Both readers give the same message, or both reject ``wire``; returns whether it
    parsed.  A mismatch raises AssertionError naming both outcomes."""
    ours = fast_outcome(wire)
    theirs = outcome(dns.message.from_wire, wire)
    if ours[0] == "rejected" and theirs[0] == "rejected":
        return False
    if ours != theirs:
        raise AssertionError(f"{wire.hex()}: {_first_difference(ours, theirs)}")
    return ours[0] == "ok"


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"at {path}: fast reader {a!r:.300} / dnspython {b!r:.300}"
