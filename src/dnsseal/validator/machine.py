"""The query state machine: iterative resolution plus chain-of-trust validation, as data.

``Query(qname, rdtype, config, now).start()`` returns either a :class:`Need` ("send this
question to one of these servers and feed me the reply") or the final :class:`Result`;
``feed(reply)`` continues.  The machine never does I/O and never reads the clock, so the
resolver service, the CLI and tests drive it with real sockets, recorded replies or an
in-memory authority alike.  Every path is bounded by :class:`~.limits.Limits`.

Resolution (:mod:`.iterator`, the base class): from the closest zone known, follow
referrals to the zone's servers, and ask another of them after a lame reply or one that
does not validate; CNAME and DNAME chains restart the iteration for the target.  Validation
(here): the zone that signed the data
(RRSIG signer, or the SOA of a negative answer) is reached from the closest trust anchor by
asking DS one label at a time (RFC 4035 s5.2); each secure DS leads to a DNSKEY RRset to
trust; a proven absent DS ends the chain as insecure.

Under a trust anchor the outcomes are secure, insecure (only with a signed proof: a DS
denial, an opt-out span, an unsupported algorithm or digest, RFC 9276's iteration limit, or
a negative trust anchor) or bogus.  Nothing unproven is passed on: a DS or DNSKEY query
without a usable answer, a lame server, a wildcard-expanded NSEC/NSEC3, a negative answer
whose SOA does not verify, or data whose RRSIG names a signer outside the anchored tree are
all bogus.  "Indeterminate" is left for names no anchor covers, and for a resolution that
got no data at all (SERVFAIL, "no server answered").
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

from dnsseal.validator import verdict as v
from dnsseal.validator.denial import Proof, Verify, prove_nodata, prove_nxdomain, prove_wildcard
from dnsseal.validator.iterator import (
    MAX_RETRIES,
    PROBE_TYPE,
    Config,
    Iteration,
    Need,
    Reply,
    Server,
    Zones,
)
from dnsseal.validator.keyset import trust_keys
from dnsseal.validator.msgview import (
    CNAME_T,
    DNAME_T,
    DNSKEY_T,
    DS_T,
    RRSIG_T,
    SOA_T,
    Kind,
    attach_rrsigs,
    classify,
    dname_for,
    find,
    sigs_for,
)
from dnsseal.validator.names import is_subdomain, name_text, parent_name, same_name, suffix
from dnsseal.validator.rrsig import SigCheck, ZoneKey, verify_rrset

# The iterator's data types are part of this module's interface (drivers import them here).
__all__ = [
    "MAX_RETRIES",
    "PROBE_TYPE",
    "Config",
    "Need",
    "Query",
    "Reply",
    "Result",
    "Server",
    "Zones",
    "capped_ttl",
    "negative_ttl",
]

NSEC_T = int(dns.rdatatype.NSEC)
NSEC3_T = int(dns.rdatatype.NSEC3)
_NEGATIVE_TYPES = {SOA_T, RRSIG_T, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}


@dataclass(frozen=True, slots=True)
class Result:
    """The final answer: rcode and RRsets as received (with their RRSIGs), the verdict,
    and the chain links for ``--explain``."""

    qname: dns.name.Name
    rdtype: int
    rcode: int
    answer: tuple[dns.rrset.RRset, ...]
    authority: tuple[dns.rrset.RRset, ...]
    verdict: v.Verdict
    links: tuple[v.Link, ...]
    spent: dict[str, int]
    # Secure RRsets the chain walk proved something with that are not in the answer (the
    # parent's NSEC at an insecure delegation, with its RRSIGs), for the RRset cache.
    proofs: tuple[dns.rrset.RRset, ...] = ()


@dataclass(frozen=True, slots=True)
class _Zone:
    zone: dns.name.Name
    verdict: v.Verdict
    keys: tuple[ZoneKey, ...] = ()
    until: int = 0  # when what proved it expires (0: not to be shared)

    @property
    def secure(self) -> bool:
        return self.verdict.security is v.Security.SECURE

    @property
    def security_shareable(self) -> bool:
        """Secure with keys, or proven insecure: what later queries may start from."""
        sec = self.verdict.security
        return self.until > 0 and (
            (sec is v.Security.SECURE and bool(self.keys)) or sec is v.Security.INSECURE
        )


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: v.Verdict
    rcode: int
    rrsets: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    next: dns.name.Name | None = None


class Query(Iteration):
    """One resolution with validation.  Not thread-safe; one driver feeds it."""

    def __init__(
        self, qname: dns.name.Name | str, rdtype: int | str, config: Config, now: int
    ) -> None:
        super().__init__(config, now)
        self.qname = dns.name.from_text(qname) if isinstance(qname, str) else qname
        self.rdtype = int(dns.rdatatype.RdataType.make(rdtype))
        self.zones: dict[dns.name.Name, _Zone] = {}
        self.links: list[v.Link] = []
        self._gen = self._run()
        self._started = False
        # NSEC/NSEC3 RRsets (with RRSIGs) seen in the answers, by signer: one may deny a DS
        # the chain walk needs (a CNAME's target below an unsigned delegation, say).
        self._denials: dict[dns.name.Name, list[dns.rrset.RRset]] = {}
        self._ds_tried: set[dns.name.Name] = set()  # each child's DS evidence is used once
        self.proofs: list[dns.rrset.RRset] = []  # see Result.proofs

    # --- driving -------------------------------------------------------------------
    def start(self) -> Need | Result:
        """The first step."""
        if self._started:
            raise RuntimeError("Query.start() called twice")
        self._started = True
        try:
            return next(self._gen)
        except StopIteration as stop:
            result: Result = stop.value
            return result

    def feed(self, reply: Reply) -> Need | Result:
        """Give the reply to the last :class:`Need` (None: no server answered)."""
        if not self._started:
            raise RuntimeError("Query.start() first")
        try:
            return self._gen.send(reply if reply is None else attach_rrsigs(reply))
        except StopIteration as stop:
            result: Result = stop.value
            return result

    def prefetch(self, need: Need) -> tuple[Need, ...]:
        """Questions the chain walk will ask about ``need.zone`` that can be sent now,
        alongside ``need`` (Unbound prefetches a signed delegation's DNSKEY the same way):
        the zone's DNSKEY RRset from its servers (when a signature by the zone or a DS for
        it was seen), and its DS RRset from its signed parent's servers unless the referral
        into it carried the DS or a denial of it.  A driver may send them at once and feed
        the replies back when the machine asks the same (qname, rdtype, zone): nothing is
        trusted by fetching, each reply is judged when it is fed.  Empty when no anchor
        covers the zone, its chain state is known, a zone above it is known not to be
        secure, or ``need`` goes to a forwarder or wants another server."""
        zone = need.zone
        if need.recursive or need.fresh or not self._anchored(zone):
            return ()
        anchor = self.config.anchors.closest(zone)
        assert anchor is not None
        for i in range(len(zone) - len(anchor.zone) + 1):
            state = self._peek_state(suffix(zone.labels[i:]))
            if state is not None and (i == 0 or not state.secure):
                return ()  # known, or below a zone that is not secure
        out: list[Need] = []
        if same_name(zone, anchor.zone) or zone in self.signed:
            out.append(Need(zone, DNSKEY_T, need.servers, zone))
        parents = [p for p in self.servers if not same_name(zone, p) and is_subdomain(zone, p)]
        parent = max(parents, key=len, default=None)
        if parent is None or not is_subdomain(parent, anchor.zone):
            return tuple(out)
        if not same_name(parent, anchor.zone) and parent not in self.signed:
            return tuple(out)  # the walk may well stop above
        referral = self._referrals.get(zone)
        kinds = {DS_T, NSEC_T, NSEC3_T}
        if referral is not None and any(r.rdtype in kinds for r in referral[1].authority):
            return tuple(out)  # the walk uses the referral
        if zone in self._ds_tried:
            return tuple(out)  # the walk has been there
        if len(zone) == len(parent) + 1:  # (a walk across more labels asks more)
            out.append(Need(zone, DS_T, self.servers[parent], parent))
        return tuple(out)

    def _peek_state(self, zone: dns.name.Name) -> _Zone | None:
        """``zone``'s chain state if this query or an earlier one (shared) has it."""
        mine = self.zones.get(zone)
        if mine is not None:
            return mine
        shared = self.config.delegations
        if shared is None:
            return None
        state = shared.state(zone, self.now, (self.config.anchors, self.config.policy))
        return state if isinstance(state, _Zone) else None

    # --- helpers -------------------------------------------------------------------
    def _link(self, zone: dns.name.Name, kind: str, text: str, security: v.Security) -> None:
        self.links.append(v.Link(name_text(zone), kind, text, security))

    def _anchored(self, name: dns.name.Name) -> bool:
        """True when a trust anchor covers ``name`` (and no negative anchor lifts it)."""
        anchors = self.config.anchors
        return anchors.closest(name) is not None and anchors.negative_for(name, self.now) is None

    def _shared_state(self, zone: dns.name.Name) -> _Zone | None:
        shared = self.config.delegations
        context = (self.config.anchors, self.config.policy)
        state = shared.state(zone, self.now, context) if shared is not None else None
        if not isinstance(state, _Zone):
            return None
        self._link(
            zone, "cache", f"{state.verdict.reason} (validated earlier)", state.verdict.security
        )
        if state.secure:
            self.zones[zone] = state
        return state

    def _share(self, state: _Zone) -> None:
        shared = self.config.delegations
        if shared is not None and state.security_shareable:
            context = (self.config.anchors, self.config.policy)
            shared.put_state(state.zone, state, state.until, self.now, context)

    def _verifier(
        self,
        section: list[dns.rrset.RRset],
        zone: _Zone,
        used: list[dns.rrset.RRset] | None = None,
    ) -> Verify:
        """Check one RRset of ``section`` with ``zone``'s keys; with ``used``, collect each
        RRset that verified, with its RRSIGs (what a client gets as the proof)."""

        def verify(rrset: dns.rrset.RRset) -> SigCheck:
            sigs = sigs_for(section, rrset.name, rrset.rdtype)
            check = verify_rrset(
                rrset,
                sigs,
                zone.keys,
                zone.zone,
                self.now,
                self.budget,
                self.config.policy,
            )
            if used is not None and check.ok and rrset not in used:
                used.append(rrset)
                used.extend(_covering_sigs(section, rrset))
            return check

        return verify

    # --- chain of trust ------------------------------------------------------------
    def _zone_keys(
        self, zone: dns.name.Name, ds: tuple[DS, ...], anchor_keys: tuple[DNSKEY, ...]
    ) -> Generator[Need, Reply, _Zone]:
        if zone in self.zones:
            return self.zones[zone]
        reply, where = yield from self._iterate(zone, DNSKEY_T)
        if reply is None:
            state = _Zone(
                zone, v.bogus(f"no answer to {zone} DNSKEY from its servers", v.EDE_DNSKEY_MISSING)
            )
        else:
            state = self._keys_from(zone, reply, ds, anchor_keys)
            while state.verdict.security is v.Security.BOGUS:
                # Unsigned or badly signed keys from one server (dnssec-lame): another of
                # the zone's servers may have the signed RRset.
                asked, again = yield from self._ask_elsewhere(zone, DNSKEY_T, where)
                if not asked:
                    break
                if again is not None:
                    other = self._keys_from(zone, again, ds, anchor_keys)
                    if other.secure:
                        state = other
        if not state.secure:
            self._link(zone, "DNSKEY", state.verdict.reason, state.verdict.security)
        self.zones[zone] = state
        return state

    def _keys_from(
        self,
        zone: dns.name.Name,
        reply: dns.message.Message,
        ds: tuple[DS, ...],
        anchor_keys: tuple[DNSKEY, ...],
    ) -> _Zone:
        """``zone``'s keys from its DNSKEY answer ``reply``, checked against ``ds`` or the
        anchor's keys (the trust cache first)."""
        rrset = find(reply.answer, zone, DNSKEY_T)
        sigs = sigs_for(reply.answer, zone, DNSKEY_T)
        cache = self.config.trust_cache
        cache_key = None
        if cache is not None and rrset is not None:
            cache_key = cache.key(zone, rrset, ds, anchor_keys, self.config.policy)
            keys = cache.get(cache_key, self.now)
            if keys is not None:
                state = _Zone(
                    zone,
                    v.secure(f"DNSKEY RRset of {zone} (validated earlier)"),
                    keys,
                    _until(rrset.ttl, sigs, self.now),
                )
                self._link(zone, "DNSKEY", state.verdict.reason, v.Security.SECURE)
                return state
        ks = trust_keys(
            zone,
            rrset,
            sigs,
            ds,
            anchor_keys,
            self.now,
            self.budget,
            self.config.policy,
        )
        state = _Zone(zone, ks.verdict, ks.keys)
        if state.secure and rrset is not None:
            state = _Zone(zone, ks.verdict, ks.keys, _until(rrset.ttl, sigs, self.now))
        if cache is not None and cache_key is not None and rrset is not None and state.secure:
            cache.put(cache_key, ks.keys, rrset.ttl, sigs, self.now)
        for step in ks.steps:
            self._link(zone, "DNSKEY", step, v.Security.SECURE)
        return state

    def _chain_to(self, target: dns.name.Name) -> Generator[Need, Reply, _Zone]:
        """The deepest zone at or above ``target`` reached from a trust anchor, with its
        verdict: secure (with keys), insecure (proven unsigned delegation or negative
        anchor), bogus, or indeterminate (no anchor at all).

        Below an anchor every step is proven or the chain is bogus: a DS query that gets no
        answer, a lame or failing server, or anything that is neither a signed DS, a signed
        denial nor a signed alias ends the walk as bogus, never as "unknown" (which would
        hand unvalidated data to clients)."""
        nta = self.config.anchors.negative_for(target, self.now)
        if nta is not None:
            why = f"negative trust anchor for {nta.zone} (RFC 7646)"
            self._link(nta.zone, "anchor", why, v.Security.INSECURE)
            return _Zone(nta.zone, v.insecure(why))
        anchor = self.config.anchors.closest(target)
        if anchor is None:
            return _Zone(target, v.indeterminate(f"no trust anchor covers {target}"))
        if anchor.zone not in self.zones:
            self._link(
                anchor.zone, "anchor", f"trust anchor {anchor.describe()}", v.Security.SECURE
            )
        cached = self.zones.get(anchor.zone) or self._shared_state(anchor.zone)
        if cached is not None and cached.secure:
            state = cached
        else:
            state = yield from self._zone_keys(anchor.zone, anchor.ds, anchor.keys)
            self._share(state)
        pos = anchor.zone
        # A DS reply that proves nothing (unsigned, badly signed, lame) is asked again of
        # the parent's other servers before the chain is called bogus (dnssec-lame).
        retry: tuple[bool, Reply] = (False, None)
        while state.secure and not same_name(pos, target):
            nxt = suffix(target.labels[-(len(pos) + 1) :])
            cached = self.zones.get(nxt) or self._shared_state(nxt)
            if cached is not None:
                state, pos = cached, nxt
                continue
            reply: Reply
            retrying = retry[0]
            if retrying:
                referral, reply = None, retry[1]
                retry = (False, None)
            else:
                referral = self._referral_ds(nxt, state.zone)
                reply = referral
                if reply is None:
                    servers = yield from self._servers_of(state.zone)
                    reply = yield from self._ask(nxt, DS_T, servers, state.zone)
            if reply is None and retrying:
                retry = yield from self._ask_elsewhere(nxt, DS_T, state.zone)
                if retry[0]:
                    continue
            if reply is None:
                why = f"no answer to {nxt} DS: the chain of trust cannot be built"
                self._link(state.zone, "DS", why, v.Security.BOGUS)
                return _Zone(state.zone, v.bogus(why, v.EDE_NO_REACHABLE_AUTHORITY))
            kind = classify(reply, nxt, DS_T, state.zone)
            section = reply.answer if kind is Kind.ANSWER else reply.authority
            ds = find(section, nxt, DS_T)
            if ds is not None and kind in (Kind.ANSWER, Kind.REFERRAL):
                check = verify_rrset(
                    ds,
                    sigs_for(section, nxt, DS_T),
                    state.keys,
                    state.zone,
                    self.now,
                    self.budget,
                    self.config.policy,
                )
                if not check.ok and referral is not None:
                    continue  # ask the parent itself (the referral is used once)
                self._link(
                    state.zone,
                    "DS",
                    f"{name_text(nxt)} DS: {check.verdict.reason}",
                    check.verdict.security,
                )
                if not check.ok:
                    retry = yield from self._ask_elsewhere(nxt, DS_T, state.zone)
                    if retry[0]:
                        continue
                    return _Zone(state.zone, check.verdict)
                if check.wildcard_encloser is not None:
                    why = f"{nxt} DS is a wildcard expansion: DS RRsets never are"
                    return _Zone(state.zone, v.bogus(why))
                state = yield from self._zone_keys(nxt, tuple(_ds_rdatas(ds)), ())
                if state.secure:
                    ds_until = _until(ds.ttl, sigs_for(section, nxt, DS_T), self.now)
                    state = _Zone(state.zone, state.verdict, state.keys, min(state.until, ds_until))
                    self.zones[nxt] = state
                    self._share(state)
                pos = nxt
                continue
            verify = self._verifier(reply.authority, state)
            proof: Proof
            if kind is Kind.NXDOMAIN:
                proof = prove_nxdomain(nxt, state.zone, reply.authority, verify, self.budget)
                self._link(state.zone, "denial", proof.verdict.reason, proof.verdict.security)
                if not proof.ok or proof.verdict.security is v.Security.INSECURE:
                    return _Zone(state.zone, proof.verdict)
                return state  # nothing exists at or below nxt: no zone cut either
            if kind in (Kind.NODATA, Kind.REFERRAL):
                proof = prove_nodata(nxt, DS_T, state.zone, reply.authority, verify, self.budget)
                if not proof.ok and referral is not None:
                    continue  # ask the parent itself (the referral is used once)
                self._link(state.zone, "denial", proof.verdict.reason, proof.verdict.security)
                if not proof.ok:
                    retry = yield from self._ask_elsewhere(nxt, DS_T, state.zone)
                    if retry[0]:
                        continue
                    return _Zone(state.zone, proof.verdict)
                if proof.delegation or proof.verdict.security is v.Security.INSECURE:
                    if proof.verdict.security is v.Security.SECURE:
                        self._keep_proof(nxt, reply.authority, state.zone)
                    why = f"{nxt} is an insecure delegation: {proof.verdict.reason}"
                    insecure = _Zone(
                        nxt,
                        v.insecure(why, proof.verdict.ede),
                        until=self.now + negative_ttl(reply.authority),
                    )
                    self._share(insecure)
                    return insecure
                pos = nxt
                continue
            if kind in (Kind.CNAME, Kind.DNAME):
                # An alias at (or a DNAME above) nxt, signed by this zone, proves nxt is no
                # zone cut: keep walking with the same keys (as Unbound does).
                alias = self._alias_in_walk(nxt, kind, reply, state)
                if alias is not None:
                    return _Zone(state.zone, alias)
                pos = nxt
                continue
            why = (
                f"{nxt} DS: lame server (no authoritative answer)"
                if kind is Kind.LAME
                else f"{nxt} DS: server answered {dns.rcode.to_text(reply.rcode())}"
            )
            self._link(state.zone, "DS", why, v.Security.BOGUS)
            retry = yield from self._ask_elsewhere(nxt, DS_T, state.zone)
            if retry[0]:
                continue
            return _Zone(state.zone, v.bogus(why, v.EDE_NO_REACHABLE_AUTHORITY))
        return state

    def _keep_proof(
        self, child: dns.name.Name, authority: list[dns.rrset.RRset], zone: dns.name.Name
    ) -> None:
        """Keep the parent's NSEC owned by ``child`` that just proved a secure insecure
        delegation (its signatures verified with ``zone``'s keys, none a wildcard
        expansion), so a later DS question is answered from it."""
        nsec = find(authority, child, NSEC_T)
        sigs = sigs_for(authority, child, NSEC_T)
        labels = len(child.labels) - 1  # the root label is not counted (RFC 4034 s3.1.3)
        if nsec is None or not sigs or any(s.signer != zone or s.labels != labels for s in sigs):
            return
        self.proofs.extend([nsec, *_covering_sigs(authority, nsec)])

    def _referral_ds(self, child: dns.name.Name, parent: dns.name.Name) -> Reply:
        """The referral from ``parent`` into ``child`` when it carries a DS RRset for
        ``child`` or NSEC/NSEC3 records that may deny one (taken once: if it proves nothing
        the parent is asked).  It is judged exactly like the parent's answer to a DS query,
        with the parent's keys."""
        if child in self._ds_tried:
            return None
        self._ds_tried.add(child)
        remembered = self._referrals.get(child)
        kinds = {DS_T, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}
        if remembered is not None and remembered[0] == parent:
            reply = remembered[1]
            if any(r.rdtype in kinds for r in reply.authority):
                return reply
        if parent not in self._denials:
            return None
        # The parent's signed denials from earlier answers, as a NODATA reply to child DS.
        reply = dns.message.make_response(dns.message.make_query(child, DS_T))
        reply.authority = list(self._denials[parent])
        return reply

    def _note_denials(self, reply: dns.message.Message) -> None:
        """Remember the signed NSEC/NSEC3 RRsets of an answer's authority section."""
        for r in reply.authority:
            if r.rdtype != RRSIG_T or r.covers not in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
                continue
            denial = find(reply.authority, r.name, r.covers)
            if denial is None or not r.name.is_subdomain(r[0].signer):
                continue
            held = self._denials.setdefault(r[0].signer, [])
            for rrset in (denial, r):
                if rrset not in held:
                    held.append(rrset)

    def _alias_in_walk(
        self, nxt: dns.name.Name, kind: Kind, reply: dns.message.Message, state: _Zone
    ) -> v.Verdict | None:
        """None when the CNAME at ``nxt`` (or the DNAME above it) that answered a DS query
        is validly signed by ``state``'s zone, else the bogus verdict."""
        rrset = find(reply.answer, nxt, CNAME_T) if kind is Kind.CNAME else None
        if kind is Kind.DNAME:
            rrset = dname_for(reply.answer, nxt)
        assert rrset is not None
        check = verify_rrset(
            rrset,
            sigs_for(reply.answer, rrset.name, rrset.rdtype),
            state.keys,
            state.zone,
            self.now,
            self.budget,
            self.config.policy,
        )
        what = dns.rdatatype.to_text(rrset.rdtype)
        self._link(
            state.zone,
            "DS",
            f"{nxt} DS: {what} at {rrset.name}: {check.verdict.reason}",
            check.verdict.security,
        )
        if not check.ok:
            return v.Verdict(
                check.verdict.security,
                f"{what} in reply to {nxt} DS: {check.verdict.reason}",
                check.verdict.ede,
            )
        if check.wildcard_encloser is not None and kind is Kind.DNAME:
            return self._expanded_dname(rrset.name, state.zone)
        if check.wildcard_encloser is not None:
            verify = self._verifier(reply.authority, state)
            proof = prove_wildcard(
                nxt, check.wildcard_encloser, state.zone, reply.authority, verify, self.budget
            )
            self._link(state.zone, "denial", proof.verdict.reason, proof.verdict.security)
            if proof.verdict.security is not v.Security.SECURE:
                return v.bogus(f"{what} in reply to {nxt} DS: {proof.verdict.reason}")
        return None

    def _expanded_dname(self, owner: dns.name.Name, zone: dns.name.Name) -> v.Verdict:
        """A DNAME whose RRSIG shows wildcard expansion: bogus.  A DNAME owned by a wildcard
        "is to be avoided or outright rejected" (RFC 4592 s4.4): expanding one would feed
        caches different redirection rules; Unbound rejects it as bogus too."""
        why = f"the DNAME at {owner} is a wildcard expansion (RFC 4592 s4.4)"
        self._link(zone, "RRSIG", why, v.Security.BOGUS)
        return v.bogus(why)

    # --- validating one reply ------------------------------------------------------
    def _check_rrset(
        self,
        rrset: dns.rrset.RRset,
        sigs: list[RRSIG],
        reply: dns.message.Message,
        qname: dns.name.Name,
        used: list[dns.rrset.RRset] | None = None,
    ) -> Generator[Need, Reply, v.Verdict]:
        """Validate ``rrset`` (and, for a wildcard expansion, the proof that it was allowed,
        whose records go to ``used``)."""
        owner = rrset.name
        signer = next((s.signer for s in sigs if is_subdomain(owner, s.signer)), None)
        if signer is None and sigs:
            why = f"{owner} is signed by {sigs[0].signer}, which is not an ancestor"
            self._link(owner, "RRSIG", why, v.Security.BOGUS)
            return v.bogus(why)
        state = yield from self._chain_to(signer or owner)
        if not state.secure:
            return state.verdict
        check = verify_rrset(
            rrset, sigs, state.keys, state.zone, self.now, self.budget, self.config.policy
        )
        self._link(state.zone, "RRSIG", check.verdict.reason, check.verdict.security)
        if not check.ok:
            return check.verdict
        if check.wildcard_encloser is not None and rrset.rdtype == DNAME_T:
            return self._expanded_dname(owner, state.zone)
        verdict = check.verdict
        if check.wildcard_encloser is not None:
            verify = self._verifier(reply.authority, state, used)
            proof = prove_wildcard(
                qname, check.wildcard_encloser, state.zone, reply.authority, verify, self.budget
            )
            self._link(state.zone, "denial", proof.verdict.reason, proof.verdict.security)
            if not proof.ok:
                return proof.verdict
            if proof.verdict.security is not v.Security.SECURE:
                verdict = proof.verdict  # insecure (opt-out): the proof still goes out
        if used is not None and rrset.rdtype == CNAME_T:
            # Signed NSEC/NSEC3 that came with a CNAME (the denial of the DS of its target's
            # zone, say) go back with it once they verify with the same keys; a few only, so
            # that padding cannot spend the query's signature budget.  (Other answers keep
            # only the proof they needed: minimal, and no verification spent on the rest.)
            verify = self._verifier(reply.authority, state, used)
            extra = [
                r
                for r in reply.authority
                if r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)
                and r not in used
                and any(
                    same_name(sig.signer, state.zone)
                    for sig in sigs_for(reply.authority, r.name, r.rdtype)
                )
            ]
            for r in extra[: self.config.limits.nsec3_per_proof]:
                verify(r)
        return verdict

    def _validate(
        self, qname: dns.name.Name, rdtype: int, reply: dns.message.Message, zone: dns.name.Name
    ) -> Generator[Need, Reply, _Outcome]:
        kind = classify(reply, qname, rdtype, zone)
        if kind is Kind.REFERRAL and rdtype == DS_T and find(reply.authority, qname, DS_T):
            # The parent answered DS with its referral to the child: the DS RRset it carries
            # is the answer, judged as one (signed by the parent).
            reply, kind = _ds_from_referral(reply, qname), Kind.ANSWER
        rcode = reply.rcode()
        self._note_denials(reply)
        if kind is Kind.REFERRAL and self._forward_for(qname, rdtype) is not None:
            # A forwarder resolves for us: a referral is its last word on the question, a
            # reply without the data, which Unbound takes as the answer (nothing is sent
            # elsewhere).  It is judged as NODATA: insecure only below a proven unsigned
            # delegation, else a signed denial is needed (a referral brings none: bogus).
            kind = Kind.NODATA
        if kind in (Kind.FAILURE, Kind.REFERRAL, Kind.LAME):
            why = f"{qname}: no authoritative answer ({dns.rcode.to_text(rcode)}, {kind.value})"
            # A resolution failure: no data to judge, SERVFAIL whatever the anchors.
            verdict = v.indeterminate(why, v.EDE_NO_REACHABLE_AUTHORITY)
            return _Outcome(verdict, dns.rcode.SERVFAIL)
        if kind is Kind.ANSWER and rdtype == RRSIG_T:
            return self._rrsig_answer(qname, reply)
        if kind in (Kind.ANSWER, Kind.CNAME):
            t = rdtype if kind is Kind.ANSWER else CNAME_T
            rrset = find(reply.answer, qname, t)
            assert rrset is not None
            sigs = sigs_for(reply.answer, qname, t)
            # A wildcard expansion goes out with the proof a downstream validator needs.
            proof: list[dns.rrset.RRset] = []
            verdict = yield from self._check_rrset(rrset, sigs, reply, qname, proof)
            nxt = rrset[0].target if kind is Kind.CNAME else None
            if verdict.security is v.Security.SECURE:
                rrset = capped_ttl(rrset, sigs, self.now)
            rrsets = (rrset, *_sig_rrsets(reply, qname, t))
            return _Outcome(verdict, rcode, rrsets, tuple(proof), nxt)
        if kind is Kind.DNAME:
            dname = dname_for(reply.answer, qname)
            assert dname is not None
            sigs = sigs_for(reply.answer, dname.name, DNAME_T)
            verdict = yield from self._check_rrset(dname, sigs, reply, qname)
            try:
                target = qname.relativize(dname.name).derelativize(dname[0].target)
            except dns.name.NameTooLong:
                sigs_out = _sig_rrsets(reply, dname.name, DNAME_T)
                return _Outcome(verdict, dns.rcode.YXDOMAIN, (dname, *sigs_out))
            # The CNAME is synthesized from the validated DNAME (RFC 6672 s5.3.1): it needs no
            # signature of its own, and for a CNAME query it is the answer.
            cname = dns.rrset.from_text(qname, dname.ttl, "IN", "CNAME", target.to_text())
            rrsets = (dname, *_sig_rrsets(reply, dname.name, DNAME_T), cname)
            return _Outcome(verdict, rcode, rrsets, (), None if rdtype == CNAME_T else target)
        return (yield from self._validate_negative(qname, rdtype, kind, reply))

    def _rrsig_answer(self, qname: dns.name.Name, reply: dns.message.Message) -> _Outcome:
        """An answer to QTYPE RRSIG.  RRSIG RRsets carry no signature of their own (RFC 4035
        s2.2), so nothing can validate them: outside the anchored tree they are passed on
        (indeterminate, no AD); below an anchor they are not (bogus), as no unproven data
        is.  (Unbound passes them on in both cases.)"""
        rcode = reply.rcode()
        if self._anchored(qname):
            why = f"{qname}: RRSIG RRsets are not signed (RFC 4035 s2.2), so cannot be validated"
            self._link(qname, "RRSIG", why, v.Security.BOGUS)
            return _Outcome(v.bogus(why), rcode)
        rrsets = tuple(r for r in reply.answer if r.rdtype == RRSIG_T and r.name == qname)
        return _Outcome(v.indeterminate(f"no trust anchor covers {qname}"), rcode, rrsets)

    def _validate_negative(
        self, qname: dns.name.Name, rdtype: int, kind: Kind, reply: dns.message.Message
    ) -> Generator[Need, Reply, _Outcome]:
        """NXDOMAIN and NODATA: the zone is the SOA's (or, without SOA, the signer of the
        denial records); the SOA must be that zone's apex and verify with its keys, and the
        NSEC/NSEC3 proof must hold (RFC 4035 s5.4)."""
        rcode = reply.rcode()
        section = reply.authority
        soa = next((r for r in section if r.rdtype == SOA_T and qname.is_subdomain(r.name)), None)
        target = soa.name if soa is not None else _denial_signer(reply.authority, qname)
        state = yield from self._chain_to(target or qname)
        # Only what a negative answer is made of goes back to clients.
        authority = tuple(r for r in reply.authority if r.rdtype in _NEGATIVE_TYPES)
        if not state.secure:
            if state.verdict.security is v.Security.SECURE:  # pragma: no cover
                raise AssertionError
            return _Outcome(state.verdict, rcode, (), authority)
        if soa is not None:
            if soa.name != state.zone:
                why = f"the SOA of a negative answer is owned by {soa.name}, not the zone apex"
                why += f" {state.zone}"
                self._link(state.zone, "SOA", why, v.Security.BOGUS)
                return _Outcome(v.bogus(why), rcode, (), authority)
            check = verify_rrset(
                soa,
                sigs_for(reply.authority, soa.name, SOA_T),
                state.keys,
                state.zone,
                self.now,
                self.budget,
                self.config.policy,
            )
            self._link(state.zone, "SOA", check.verdict.reason, check.verdict.security)
            if not check.ok or check.wildcard_encloser is not None:
                verdict = check.verdict if not check.ok else v.bogus(f"{soa.name} SOA expanded")
                return _Outcome(verdict, rcode, (), authority)
        # Once validated, clients get the SOA and the records the proof used, nothing else
        # (unsigned or unused padding stays out of an answer with AD).
        proof, used = self._prove_denial(qname, rdtype, kind, section, soa, state)
        held = [r for r in self._denials.get(state.zone, ()) if r not in section]
        if not proof.ok and held:
            # The zone's signed NSEC/NSEC3 that came earlier in this resolution (with the
            # CNAME that led here, say) prove as well: a forwarder or a server of both zones
            # may not repeat them (Unbound keeps a CNAME reply's NSEC/NSEC3 in the answer).
            merged = [*section, *held]
            again, more = self._prove_denial(qname, rdtype, kind, merged, soa, state)
            if again.ok:
                proof, used = again, more
        self._link(state.zone, "denial", proof.verdict.reason, proof.verdict.security)
        return _Outcome(proof.verdict, rcode, (), tuple(used) if proof.ok else authority)

    def _prove_denial(
        self,
        qname: dns.name.Name,
        rdtype: int,
        kind: Kind,
        records: list[dns.rrset.RRset],
        soa: dns.rrset.RRset | None,
        state: _Zone,
    ) -> tuple[Proof, list[dns.rrset.RRset]]:
        """The NXDOMAIN or NODATA proof from ``records`` with ``state``'s keys, and what a
        client gets with it: the (verified) SOA and the records the proof used."""
        used = [] if soa is None else [soa, *_covering_sigs(records, soa)]
        verify = self._verifier(records, state, used)
        if kind is Kind.NXDOMAIN:
            return prove_nxdomain(qname, state.zone, records, verify, self.budget), used
        return prove_nodata(qname, rdtype, state.zone, records, verify, self.budget), used

    def _chased_denial(
        self, target: dns.name.Name, reply: dns.message.Message
    ) -> Generator[Need, Reply, _Outcome | None]:
        """The denial of an alias's ``target`` that came in the same reply as the alias
        (a server of both zones chases the CNAME into its other zone and answers NXDOMAIN
        or NODATA for the target; Unbound validates that part of the reply too).  It is
        judged like a negative answer from the target's zone: its SOA must be that zone's
        apex, signed with its keys, and the NSEC/NSEC3 proof must hold.  Only a secure
        proof is used (None otherwise: the target's servers are asked, as for any alias),
        so an out-of-bailiwick server can add nothing that the target zone did not sign."""
        if any(r.name == target for r in reply.answer) or dname_for(reply.answer, target):
            return None  # the chain goes on in the answer section
        rcode = reply.rcode()
        if rcode not in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR):
            return None
        soa = next(
            (r for r in reply.authority if r.rdtype == SOA_T and target.is_subdomain(r.name)),
            None,
        )
        if soa is None or not any(r.rdtype in (NSEC_T, NSEC3_T) for r in reply.authority):
            return None
        part = dns.message.make_response(
            dns.message.make_query(target, dns.rdatatype.RdataType.make(self.rdtype))
        )
        part.flags = reply.flags
        part.set_rcode(rcode)
        part.authority = list(reply.authority)
        kind = Kind.NXDOMAIN if rcode == dns.rcode.NXDOMAIN else Kind.NODATA
        out = yield from self._validate_negative(target, self.rdtype, kind, part)
        return out if out.verdict.security is v.Security.SECURE else None

    # --- the whole query -----------------------------------------------------------
    def _run(self) -> Generator[Need, Reply, Result]:
        name = self.qname
        verdict: v.Verdict | None = None
        answer: list[dns.rrset.RRset] = []
        authority: list[dns.rrset.RRset] = []
        rcode: int = dns.rcode.NOERROR
        seen = {name}
        for _ in range(self.config.limits.cname_chain + 1):
            reply: Reply
            referral = self._referrals.get(name) if self.rdtype == DS_T else None
            if referral is not None and find(referral[1].authority, name, DS_T) is not None:
                # A DS asked (a CNAME's target, say) that came with the parent's referral.
                zone, reply = referral
            else:
                reply, zone = yield from self._iterate(name, self.rdtype)
            if reply is None:
                failed = v.indeterminate(
                    f"no usable answer for {name}: {self.budget.describe()}"
                    if self.budget.exhausted
                    else f"no server answered for {name}",
                    v.EDE_NO_REACHABLE_AUTHORITY,
                )
                verdict = failed if verdict is None else v.worst(verdict, failed)
                rcode = dns.rcode.SERVFAIL
                break
            out = yield from self._validate(name, self.rdtype, reply, zone)
            while out.verdict.security is v.Security.BOGUS:
                # A server that strips or breaks signatures (dnssec-lame) or a forged
                # reply: another server of the zone may give data that validates.  What is
                # used is validated like the first; nothing unproven gets through.
                asked, again = yield from self._ask_elsewhere(name, self.rdtype, zone)
                if not asked:
                    break
                if again is not None:
                    other = yield from self._validate(name, self.rdtype, again, zone)
                    if other.verdict.security is not v.Security.BOGUS:
                        out, reply = other, again
            link = out.verdict
            # Data judged "indeterminate" is only for names no anchor covers.  A chain that
            # left the anchored tree (an RRSIG naming a signer above the anchor, say) proves
            # nothing, so the data is bogus.  Each link of a CNAME chain is judged by its own
            # name, a DS RRset by its parent's (where it lives); a SERVFAIL has no data: it
            # stays a resolution failure, "no server answered".
            judged = parent_name(name) if self.rdtype == DS_T and name != dns.name.root else name
            if (
                link.security is v.Security.INDETERMINATE
                and out.rcode != dns.rcode.SERVFAIL
                and self._anchored(judged)
            ):
                link = v.bogus(f"{judged} is under a trust anchor: {link.reason}")
            verdict = link if verdict is None else v.worst(verdict, link)
            answer.extend(out.rrsets)
            authority.extend(r for r in out.authority if r not in authority)
            rcode = out.rcode
            alias = out.next
            if alias is None and self.rdtype == CNAME_T and out.rcode == dns.rcode.NXDOMAIN:
                cname = find(list(out.rrsets), name, CNAME_T)
                alias = cname[0].target if cname is not None else None
            if alias is not None and alias not in seen:
                chased = yield from self._chased_denial(alias, reply)
                if chased is not None:
                    verdict = v.worst(verdict, chased.verdict)
                    authority.extend(r for r in chased.authority if r not in authority)
                    rcode = chased.rcode
                    break
                if out.next is None and rcode == dns.rcode.NXDOMAIN:
                    # QTYPE CNAME answered with NXDOMAIN and no proof of the target's: the
                    # rcode is not signed, and it belongs to the last query cycle (RFC 6604
                    # s3), here the CNAME's own, which the validated CNAME answers.  Never an
                    # unproven NXDOMAIN with AD.
                    rcode = dns.rcode.NOERROR
            if out.next is None:
                break
            if out.next in seen:
                verdict = v.worst(verdict, v.bogus(f"CNAME/DNAME loop at {out.next}", v.EDE_OTHER))
                rcode = dns.rcode.SERVFAIL
                break
            seen.add(out.next)
            name = out.next
        else:
            rcode = dns.rcode.SERVFAIL
            assert verdict is not None
            verdict = v.worst(verdict, v.bogus("CNAME chain too long", v.EDE_OTHER))
        assert verdict is not None
        if self.budget.exhausted:
            verdict = v.worst(verdict, v.bogus(self.budget.describe()))
        return Result(
            self.qname,
            self.rdtype,
            rcode,
            tuple(answer),
            tuple(_soa_ttl_clamped(r) for r in authority),
            verdict,
            tuple(self.links),
            dict(self.budget.spent),
            tuple(self.proofs),
        )


def _sig_rrsets(
    reply: dns.message.Message, name: dns.name.Name, rdtype: int
) -> list[dns.rrset.RRset]:
    return [
        r for r in reply.answer if r.rdtype == RRSIG_T and r.name == name and r.covers == rdtype
    ]


def _covering_sigs(section: list[dns.rrset.RRset], rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
    """The RRSIG RRsets of ``section`` that cover ``rrset``."""
    return [
        r
        for r in section
        if r.rdtype == RRSIG_T and r.name == rrset.name and r.covers == rrset.rdtype
    ]


def _denial_signer(authority: list[dns.rrset.RRset], qname: dns.name.Name) -> dns.name.Name | None:
    """Without an SOA, the zone of a negative answer is the signer of its denial records
    (the deepest one that is an ancestor of ``qname``)."""
    best: dns.name.Name | None = None
    for r in authority:
        if r.rdtype == RRSIG_T and r.covers in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
            for rd in r:
                if qname.is_subdomain(rd.signer) and (best is None or len(rd.signer) > len(best)):
                    best = rd.signer
    return best


def _until(ttl: int, sigs: list[RRSIG], now: int) -> int:
    """When an RRset validated at ``now`` stops being usable: its TTL or the first
    expiry of its signatures."""
    until = now + ttl
    for sig in sigs:
        left = (sig.expiration - now) & 0xFFFFFFFF
        until = min(until, now + (left if left < 0x80000000 else 0))
    return until


def negative_ttl(authority: Sequence[dns.rrset.RRset]) -> int:
    """How long a denial may be cached (RFC 2308 s5, RFC 9077): the smallest TTL of the
    records that make it, and the SOA's MINIMUM field."""
    ttls = []
    for r in authority:
        ttls.append(r.ttl)
        if r.rdtype == SOA_T:
            ttls.append(r[0].minimum)
    return min(ttls) if ttls else 0


def _soa_ttl_clamped(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """An authority-section SOA with its TTL at most its MINIMUM field: the TTL a negative
    answer is passed on and cached with (RFC 2308 s3 and s5, as Unbound does when it reads a
    reply).  Its RRSIG keeps its own TTL (the signature carries the original one)."""
    if rrset.rdtype != SOA_T or not rrset or rrset.ttl <= rrset[0].minimum:
        return rrset
    return dns.rrset.from_rdata_list(rrset.name, rrset[0].minimum, list(rrset))


def _ds_from_referral(reply: dns.message.Message, qname: dns.name.Name) -> dns.message.Message:
    """``reply`` (a referral to ``qname``) as the answer to ``qname`` DS: its DS RRset and
    their RRSIGs in the answer section, nothing else."""
    out = dns.message.make_response(dns.message.make_query(qname, DS_T, want_dnssec=True))
    out.flags = reply.flags
    ds = find(reply.authority, qname, DS_T)
    assert ds is not None
    out.answer = [ds, *_covering_sigs(reply.authority, ds)]
    return out


def _ds_rdatas(rrset: dns.rrset.RRset) -> list[DS]:
    return [rd for rd in rrset if isinstance(rd, DS)]


def capped_ttl(rrset: dns.rrset.RRset, sigs: list[RRSIG], now: int) -> dns.rrset.RRset:
    """RFC 4035 s5.3.3: a validated RRset's TTL is at most its RRSIGs' original TTL and the
    time left before they expire (a copy is returned when the TTL changes)."""
    limit = rrset.ttl
    for sig in sigs:
        left = (sig.expiration - now) & 0xFFFFFFFF
        limit = min(limit, sig.original_ttl, left if left < 0x80000000 else 0)
    if limit == rrset.ttl:
        return rrset
    return dns.rrset.from_rdata_list(rrset.name, limit, list(rrset))
