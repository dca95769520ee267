"""The parent's half of DS automation: from what a child's name servers publish to a decision
about the child's DS RRset.  PURE: the caller queries, this module decides.

Inputs are data: the parent's current DS set, for every (NS name, address) of the child the
DNSKEY, CDS and CDNSKEY RRsets it answered with (or why it did not), the signaling answers
(RFC 9615) with the verdicts the validating resolver gave them, and ``now``.  The output is a
:class:`Decision`: keep, replace the DS set, or remove it, with the reason and one line per
server saying what was seen there.

The rules, in the order they are applied:

- RFC 9975 (CDS consistency): every address of every name server must answer, and all must
  serve the same CDS and the same CDNSKEY RRset (NODATA counts as an answer: it differs from
  data); CDS and CDNSKEY must reference the same keys; a DELETE record beside other data in
  the same RRset, or a DELETE in one RRset and keys in the other, aborts.
- Secure child (the current DS set has a usable DS), RFC 7344 s4.1: at every server, the
  DNSKEY RRset must validate from the current DS set, and the CDS/CDNSKEY RRsets must be
  signed by a key the current DS set points at.  Continuity (as ``dnssec-cds`` checks): for
  every algorithm of the new DS set, a DS of that algorithm matches a key that signs the
  DNSKEY RRset, and every digest type covers the same keys.
- Insecure child, RFC 9615 s4.2 (authenticated bootstrapping): for every name server outside
  the child (in-domain ones cannot carry signaling names), the signaling name's CDS and
  CDNSKEY RRsets validated secure and equal the apex RRsets; the new DS set must match a key
  that signs every server's DNSKEY RRset, and that key set must sign the CDS/CDNSKEY.
- DELETE (RFC 8078 s4): removes the DS set, only for a child validated as above; an
  insecure child's DELETE changes nothing (RFC 8078 s5: never act on unauthenticated data).
- IANA / RFC 8624 recommendations: algorithms that must not be used for signing (RSAMD5, DSA,
  GOST, unknown) are refused; DS digests are taken from :attr:`Params.digests` (SHA-256 by
  default, as ``dnssec-cds``; SHA-1 is never produced).
- Replay (as ``dnssec-cds -s``): with :attr:`Params.not_before`, the signatures that
  authenticate the CDS/CDNSKEY must be incepted at or after it.

The DS set produced follows ``dnssec-cds``: CDS records with an accepted digest type (CDS
preferred), else one DS per CDNSKEY and accepted digest type.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

from dnsseal.validator import verdict as v
from dnsseal.validator.keyset import ds_digest, trust_keys
from dnsseal.validator.limits import Budget
from dnsseal.validator.policy import DEFAULT_POLICY, DIGESTS, REFUSED_ALGORITHMS
from dnsseal.validator.rrsig import ZoneKey, verify_rrset

T = dns.rdatatype
IN = dns.rdataclass.IN
CDS_DELETE = dns.rdata.from_text(IN, T.CDS, "0 0 0 00")
CDNSKEY_DELETE = dns.rdata.from_text(IN, T.CDNSKEY, "0 3 0 AA==")
QTYPES = (T.DNSKEY, T.CDS, T.CDNSKEY)
ALLOWED_DIGESTS = frozenset({2, 4})  # IANA "DS digest" MUST / MAY for delegation (RFC 9558 s3)


class Action(enum.Enum):
    KEEP = "keep"
    SET = "set"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Params:
    """How the parent turns CDS/CDNSKEY into DS.  ``digests``: accepted CDS digest types and
    the digests made from CDNSKEY (``dnssec-cds -a``); ``prefer_cdnskey``: ``dnssec-cds -D``;
    ``not_before``: replay protection (``dnssec-cds -s``), None to skip."""

    digests: tuple[int, ...] = (2,)
    prefer_cdnskey: bool = False
    not_before: int | None = None

    def __post_init__(self) -> None:
        bad = [d for d in self.digests if d not in ALLOWED_DIGESTS]
        if bad or not self.digests:
            raise ValueError(f"DS digest types must be among {sorted(ALLOWED_DIGESTS)}: {bad}")


@dataclass(frozen=True, slots=True)
class ServerAnswer:
    """What one address of one of the child's name servers answered.  ``rrsets`` maps DNSKEY,
    CDS and CDNSKEY to (RRset or None for NODATA, its RRSIGs); ``error`` is set when the server
    did not answer properly (no reply, not authoritative, an error rcode)."""

    server: str  # "ns1.example. 192.0.2.1@53"
    rrsets: dict[int, tuple[dns.rrset.RRset | None, tuple[RRSIG, ...]]] = field(
        default_factory=dict
    )
    error: str | None = None

    def rrset(self, rdtype: int) -> dns.rrset.RRset | None:
        return self.rrsets.get(rdtype, (None, ()))[0]

    def sigs(self, rdtype: int) -> tuple[RRSIG, ...]:
        return self.rrsets.get(rdtype, (None, ()))[1]

    @staticmethod
    def from_replies(
        server: str, child: dns.name.Name, replies: dict[int, dns.message.Message | None]
    ) -> ServerAnswer:
        """Read the replies to DNSKEY, CDS and CDNSKEY queries (RD=0, DO=1) for ``child``.
        A missing reply, an rcode other than NOERROR or a reply without AA is an error."""
        out: dict[int, tuple[dns.rrset.RRset | None, tuple[RRSIG, ...]]] = {}
        for rdtype in QTYPES:
            r = replies.get(rdtype)
            name = T.to_text(rdtype)
            if r is None:
                return ServerAnswer(server, error=f"no answer to {name}")
            if r.rcode() != dns.rcode.NOERROR:
                return ServerAnswer(server, error=f"{name}: rcode {dns.rcode.to_text(r.rcode())}")
            if not r.flags & dns.flags.AA:
                return ServerAnswer(server, error=f"{name}: not authoritative (lame)")
            data = next((rr for rr in r.answer if rr.name == child and rr.rdtype == rdtype), None)
            sigs = tuple(
                rd
                for rr in r.answer
                if rr.name == child and rr.rdtype == T.RRSIG
                for rd in rr
                if isinstance(rd, RRSIG) and rd.type_covered == rdtype
            )
            out[rdtype] = (data, sigs)
        return ServerAnswer(server, out)


@dataclass(frozen=True, slots=True)
class SignalAnswer:
    """The CDS and CDNSKEY RRsets at ``_dsboot.<child>._signal.<ns>`` as the validating
    resolver returned them (None: NODATA/NXDOMAIN), with its verdict on each."""

    ns: dns.name.Name
    cds: dns.rrset.RRset | None
    cdnskey: dns.rrset.RRset | None
    cds_verdict: v.Verdict
    cdnskey_verdict: v.Verdict


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the child's DS set and why.  ``ds`` is the new DS set for SET (sorted
    canonically), empty otherwise; ``servers`` says per server what was seen."""

    child: dns.name.Name
    action: Action
    reason: str
    ds: tuple[DS, ...] = ()
    servers: tuple[tuple[str, str], ...] = ()
    mode: str = ""  # "secure", "bootstrap" or "" when the decision came before either
    # The oldest inception of the signatures that authenticated the CDS/CDNSKEY (None
    # before authentication): the caller's ``Params.not_before`` after it acts.
    inception: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "child": self.child.to_text(),
            "action": self.action.value,
            "reason": self.reason,
            "mode": self.mode,
            "ds": [d.to_text() for d in self.ds],
            "servers": [{"server": s, "seen": note} for s, note in self.servers],
            "inception": self.inception,
        }


_Keep = Callable[..., "Decision"]


def signal_name(child: dns.name.Name, ns: dns.name.Name) -> dns.name.Name:
    """``_dsboot.<child>._signal.<ns>`` (RFC 9615 s3.2)."""
    labels = (b"_dsboot", *child.labels[:-1], b"_signal", *ns.labels)
    return dns.name.Name(labels)


def signal_child(
    name: dns.name.Name, ns: dns.name.Name
) -> dns.name.Name | None:  # inverse of signal_name
    """The child a signaling name under ``ns`` stands for, or None if it is not one."""
    base = dns.name.Name((b"_signal", *ns.labels))
    if not name.is_subdomain(base) or name == base:
        return None
    rel = name.relativize(base).labels
    if len(rel) < 2 or rel[0].lower() != b"_dsboot":
        return None
    return dns.name.Name((*rel[1:], b""))


def _key(rd: dns.rdata.Rdata) -> bytes:
    return rd.to_digestable()


def _set(rrset: dns.rrset.RRset | None) -> frozenset[bytes]:
    return frozenset(_key(rd) for rd in rrset) if rrset is not None else frozenset()


def _show(rrset: dns.rrset.RRset | None) -> str:
    if rrset is None or len(rrset) == 0:
        return "none"
    return "; ".join(sorted(rd.to_text() for rd in rrset))


def _cds_keys(rrset: dns.rrset.RRset | None) -> set[tuple[int, int]]:
    return {(rd.key_tag, int(rd.algorithm)) for rd in rrset or ()}


def _retype(rd: dns.rdata.Rdata, rdtype: dns.rdatatype.RdataType) -> Any:
    """The same RDATA as another type (CDS -> DS, CDNSKEY -> DNSKEY: RFC 7344 s3)."""
    wire = rd.to_digestable()
    return dns.rdata.from_wire(IN, rdtype, wire, 0, len(wire))


def _as_dnskey(rd: dns.rdata.Rdata) -> DNSKEY:
    key: DNSKEY = _retype(rd, T.DNSKEY)
    return key


def _make_ds(tag: int, alg: int, digest_type: int, digest: bytes) -> DS:
    ds: DS = dns.rdata.from_text(IN, T.DS, f"{tag} {alg} {digest_type} {digest.hex()}")  # type: ignore[assignment]
    return ds


def _cdnskey_keys(rrset: dns.rrset.RRset | None) -> set[tuple[int, int]]:
    return {(dns.dnssec.key_id(_as_dnskey(rd)), int(rd.algorithm)) for rd in rrset or ()}


def _is_delete(rd: dns.rdata.Rdata) -> bool:
    return _key(rd) in (_key(CDS_DELETE), _key(CDNSKEY_DELETE))


def _sorted_ds(ds: Iterable[DS]) -> tuple[DS, ...]:
    unique = {_key(d): d for d in ds}
    return tuple(unique[k] for k in sorted(unique))


def new_ds_set(
    child: dns.name.Name,
    cds: dns.rrset.RRset | None,
    cdnskey: dns.rrset.RRset | None,
    params: Params = Params(),
) -> tuple[DS, ...] | str:
    """The DS set the CDS/CDNSKEY ask for, as ``dnssec-cds`` computes it, or why there is
    none (a string)."""
    usable_cds = [rd for rd in cds or () if rd.digest_type in params.digests]
    if usable_cds and not (params.prefer_cdnskey and cdnskey):
        return _sorted_ds(_retype(rd, T.DS) for rd in usable_cds)
    if cdnskey:
        return _sorted_ds(
            _make_ds(
                dns.dnssec.key_id(_as_dnskey(rd)),
                rd.algorithm,
                d,
                ds_digest(child, _as_dnskey(rd), d),
            )
            for rd in cdnskey
            for d in params.digests
        )
    digests = ", ".join(str(d) for d in params.digests)
    return f"no CDS with an accepted digest type ({digests}) and no CDNSKEY"


def _consistency(answers: Sequence[ServerAnswer]) -> str | None:
    """RFC 9975: the same CDS and CDNSKEY RRsets everywhere.  None when consistent, else the
    reason naming the server that differs from the first one."""
    first = answers[0]
    for t in (T.CDS, T.CDNSKEY):
        want = _set(first.rrset(t))
        for a in answers[1:]:
            if _set(a.rrset(t)) != want:
                name = T.to_text(t)
                return (
                    f"{a.server} serves {name} {_show(a.rrset(t))} but {first.server} serves "
                    f"{name} {_show(first.rrset(t))} (RFC 9975: every name server must agree)"
                )
    return None


def _shape(cds: dns.rrset.RRset | None, cdnskey: dns.rrset.RRset | None) -> str | None:
    """DELETE alone or keys only, and CDS / CDNSKEY naming the same keys.  None when fine."""
    deletes = 0
    for name, rrset in (("CDS", cds), ("CDNSKEY", cdnskey)):
        if not rrset:
            continue
        n = sum(1 for rd in rrset if _is_delete(rd))
        if n and n != len(rrset):
            return f"the {name} RRset has a DELETE record beside other records (RFC 8078 s4)"
        deletes += bool(n)
    present = sum(1 for r in (cds, cdnskey) if r)
    if deletes and deletes != present:
        return "DELETE in one of CDS / CDNSKEY and keys in the other (RFC 9975)"
    if deletes:
        return None
    if cds and cdnskey:
        a, b = _cds_keys(cds), _cdnskey_keys(cdnskey)
        if a != b:
            return (
                f"CDS names keys {sorted(t for t, _ in a)} but CDNSKEY names "
                f"{sorted(t for t, _ in b)} (RFC 9975: they must agree)"
            )
        by_key = {
            (dns.dnssec.key_id(_as_dnskey(rd)), int(rd.algorithm)): _as_dnskey(rd) for rd in cdnskey
        }
        for rd in cds:
            key = by_key.get((rd.key_tag, int(rd.algorithm)))
            if key is None or rd.digest_type not in DIGESTS:
                continue
            if ds_digest(cds.name, key, rd.digest_type) != rd.digest:
                return f"CDS {rd.key_tag} does not match the CDNSKEY of that key"
    return None


def _refused_algorithms(ds: Sequence[DS]) -> str | None:
    for d in ds:
        alg = int(d.algorithm)
        if alg in REFUSED_ALGORITHMS or not DEFAULT_POLICY.algorithm_supported(alg):
            name = REFUSED_ALGORITHMS.get(alg, f"algorithm {alg}")
            return f"DS {d.key_tag} uses {name}, which must not be used for signing (RFC 8624)"
    return None


def continuity(
    child: dns.name.Name,
    new_ds: Sequence[DS],
    answer: ServerAnswer,
    now: int,
) -> str | None:
    """Would ``new_ds`` keep the chain to ``answer``'s DNSKEY RRset?  None when every
    algorithm of the new DS set leads to a key that signs the DNSKEY RRset and every digest
    type covers the same keys; else why not (the check ``dnssec-cds`` makes)."""
    dnskey = answer.rrset(T.DNSKEY)
    sigs = answer.sigs(T.DNSKEY)
    for alg in sorted({int(d.algorithm) for d in new_ds}):
        subset = [d for d in new_ds if int(d.algorithm) == alg]
        ks = trust_keys(child, dnskey, sigs, subset, [], now, Budget())
        if ks.verdict.security is not v.Security.SECURE:
            return (
                f"the new DS set would break the chain at {answer.server}: algorithm {alg}: "
                f"{ks.verdict.reason}"
            )
    per_digest: dict[int, set[tuple[int, int]]] = {}
    for d in new_ds:
        per_digest.setdefault(d.digest_type, set()).add((d.key_tag, int(d.algorithm)))
    if len({frozenset(s) for s in per_digest.values()}) > 1:
        return "the DS digest types of the new DS set do not cover the same keys"
    return None


def _ds_keys(child: dns.name.Name, dnskey: dns.rrset.RRset, ds_set: Sequence[DS]) -> list[ZoneKey]:
    """The keys of ``dnskey`` that a DS of ``ds_set`` matches."""
    out = []
    for rd in dnskey:
        k = ZoneKey.of(child, rd)
        for d in ds_set:
            if (
                d.key_tag == k.tag
                and int(d.algorithm) == k.algorithm
                and d.digest_type in DIGESTS
                and ds_digest(child, rd, d.digest_type) == d.digest
            ):
                out.append(k)
                break
    return out


def _authenticate(
    child: dns.name.Name,
    answer: ServerAnswer,
    keys: Sequence[ZoneKey],
    now: int,
    params: Params,
) -> str | int:
    """Are the server's CDS and CDNSKEY RRsets signed by one of ``keys``?  The reason when
    not; else the inception of the oldest of the signatures that authenticate them (for
    replay protection: the next change must come with signatures at least that new)."""
    oldest: int | None = None
    for t in (T.CDS, T.CDNSKEY):
        rrset = answer.rrset(t)
        if not rrset:
            continue
        sigs = answer.sigs(t)
        check = verify_rrset(rrset, sigs, keys, child, now, Budget())
        if not check.ok:
            tags = ", ".join(str(k.tag) for k in keys) or "none"
            return (
                f"{answer.server}: {T.to_text(t)} not signed by a key the DS set authenticates "
                f"(keys {tags}): {check.verdict.reason} (RFC 7344 s4.1)"
            )
        newest = max(
            (s.inception for s in sigs if s.key_tag == check.key_tag and s.type_covered == t),
            default=0,
        )
        if params.not_before is not None and newest < params.not_before:
            return (
                f"{answer.server}: the {T.to_text(t)} signatures were made before the last "
                "accepted change (replay protection)"
            )
        oldest = newest if oldest is None else min(oldest, newest)
    return oldest or 0


def _usable_current(current: Sequence[DS]) -> list[DS]:
    return [
        d
        for d in current
        if DEFAULT_POLICY.algorithm_supported(int(d.algorithm))
        and DEFAULT_POLICY.digest_supported(d.digest_type)
    ]


def decide(
    child: dns.name.Name,
    current_ds: Sequence[DS],
    answers: Sequence[ServerAnswer],
    ns_names: Sequence[dns.name.Name],
    signals: Sequence[SignalAnswer],
    now: int,
    params: Params = Params(),
) -> Decision:
    """The decision for ``child`` (see the module docstring for the rules)."""
    seen = tuple(
        (
            a.server,
            a.error
            if a.error
            else f"CDS {_show(a.rrset(T.CDS))}; CDNSKEY {_show(a.rrset(T.CDNSKEY))}",
        )
        for a in answers
    )

    def keep(reason: str, mode: str = "") -> Decision:
        return Decision(child, Action.KEEP, reason, (), seen, mode)

    if not answers:
        return keep("no name server of the child was asked")
    failed = [a for a in answers if a.error]
    if failed:
        return keep(
            f"{failed[0].server} did not answer properly ({failed[0].error}); every name "
            "server must answer (RFC 9975)"
        )
    problem = _consistency(answers)
    if problem:
        return keep(problem)
    first = answers[0]
    cds, cdnskey = first.rrset(T.CDS), first.rrset(T.CDNSKEY)
    if not cds and not cdnskey:
        return keep("the child publishes no CDS or CDNSKEY")
    problem = _shape(cds, cdnskey)
    if problem:
        return keep(problem)
    delete = any(_is_delete(rd) for rd in (cds or cdnskey or ()))
    usable = _usable_current(current_ds)
    if usable:
        return _secure(child, current_ds, usable, answers, delete, now, params, keep)
    if current_ds:
        return keep(
            "the current DS set uses no supported algorithm or digest; the child cannot be "
            "authenticated from it"
        )
    if delete:
        return keep("the child asks for DELETE but has no DS: nothing to remove", "bootstrap")
    return _bootstrap(child, answers, ns_names, signals, now, params, keep)


def _secure(
    child: dns.name.Name,
    current_ds: Sequence[DS],
    usable: Sequence[DS],
    answers: Sequence[ServerAnswer],
    delete: bool,
    now: int,
    params: Params,
    keep: _Keep,
) -> Decision:
    inceptions: list[int] = []
    for a in answers:
        dnskey = a.rrset(T.DNSKEY)
        ks = trust_keys(child, dnskey, a.sigs(T.DNSKEY), usable, [], now, Budget())
        if ks.verdict.security is not v.Security.SECURE or dnskey is None:
            return keep(
                f"{a.server}: the DNSKEY RRset does not validate from the current DS set: "
                f"{ks.verdict.reason}",
                "secure",
            )
        got = _authenticate(child, a, _ds_keys(child, dnskey, usable), now, params)
        if isinstance(got, str):
            return keep(got, "secure")
        inceptions.append(got)
    seen = keep("").servers
    if delete:
        return Decision(
            child,
            Action.DELETE,
            "the validated child asks for DELETE (RFC 8078 s4): the DS set is removed",
            (),
            seen,
            "secure",
            min(inceptions),
        )
    decision = _propose(child, current_ds, answers, now, params, keep, "secure", seen)
    return dataclasses.replace(decision, inception=min(inceptions))


def _propose(
    child: dns.name.Name,
    current_ds: Sequence[DS],
    answers: Sequence[ServerAnswer],
    now: int,
    params: Params,
    keep: _Keep,
    mode: str,
    seen: tuple[tuple[str, str], ...],
) -> Decision:
    first = answers[0]
    new = new_ds_set(child, first.rrset(T.CDS), first.rrset(T.CDNSKEY), params)
    if isinstance(new, str):
        return keep(new, mode)
    problem = _refused_algorithms(new)
    if problem:
        return keep(problem, mode)
    for a in answers:
        problem = continuity(child, new, a, now)
        if problem:
            return keep(problem, mode)
    if {_key(d) for d in new} == {_key(d) for d in current_ds}:
        return keep("the DS set already matches the child's CDS/CDNSKEY", mode)
    tags = ", ".join(sorted({str(d.key_tag) for d in new}))
    why = (
        "validated with the current DS set (RFC 7344 s4.1)"
        if mode == "secure"
        else "bootstrapped through signaling names under every out-of-domain NS (RFC 9615)"
    )
    return Decision(child, Action.SET, f"DS set for keys {tags}, {why}", new, seen, mode)


def _bootstrap(
    child: dns.name.Name,
    answers: Sequence[ServerAnswer],
    ns_names: Sequence[dns.name.Name],
    signals: Sequence[SignalAnswer],
    now: int,
    params: Params,
    keep: _Keep,
) -> Decision:
    mode = "bootstrap"
    outside = sorted({n for n in ns_names if not n.is_subdomain(child)})
    if not outside:
        return keep(
            "every name server is inside the child; no signaling name can authenticate it "
            "(RFC 9615 s4.1)",
            mode,
        )
    by_ns = {s.ns: s for s in signals}
    first = answers[0]
    for ns in outside:
        s = by_ns.get(ns)
        where = signal_name(child, ns)
        if s is None:
            return keep(f"signaling name {where} was not asked", mode)
        for name, verdict, rrset, apex in (
            ("CDS", s.cds_verdict, s.cds, first.rrset(T.CDS)),
            ("CDNSKEY", s.cdnskey_verdict, s.cdnskey, first.rrset(T.CDNSKEY)),
        ):
            if _set(rrset) != _set(apex):
                return keep(
                    f"{where} {name} is {_show(rrset)}, the child apex has {_show(apex)} "
                    "(RFC 9615 s4.2: they must be equal)",
                    mode,
                )
            if rrset and verdict.security is not v.Security.SECURE:
                return keep(
                    f"{where} {name} is not validated: {verdict.security.value}: "
                    f"{verdict.reason} (RFC 9615 s4.2)",
                    mode,
                )
    new = new_ds_set(child, first.rrset(T.CDS), first.rrset(T.CDNSKEY), params)
    if isinstance(new, str):
        return keep(new, mode)
    # The apex RRsets must be signed by a key the new DS set points at (as RFC 7344 s4.1).
    inceptions: list[int] = []
    for a in answers:
        dnskey = a.rrset(T.DNSKEY)
        ks = trust_keys(child, dnskey, a.sigs(T.DNSKEY), new, [], now, Budget())
        if ks.verdict.security is not v.Security.SECURE or dnskey is None:
            return keep(
                f"{a.server}: the DNSKEY RRset is not signed by a key of the proposed DS set: "
                f"{ks.verdict.reason}",
                mode,
            )
        got = _authenticate(child, a, _ds_keys(child, dnskey, new), now, params)
        if isinstance(got, str):
            return keep(got, mode)
        inceptions.append(got)
    decision = _propose(child, (), answers, now, params, keep, mode, keep("").servers)
    return dataclasses.replace(decision, inception=min(inceptions))


def ds_ttl(now: int, last_change: int | None, normal: int, low: int, hold: int) -> int:
    """The TTL to give the child's DS RRset: ``low`` for ``hold`` seconds after a change (so
    a mistake is undone quickly), ``normal`` otherwise."""
    if last_change is not None and now - last_change < hold:
        return min(low, normal)
    return normal
