"""The safety rules of "Flexible and Robust Key Rollover" (van Rijswijk-Deij et al.), as
BIND's keymgr applies them, written over a ring of keys being updated.

Each key has four records (DNSKEY, ZRRSIG, KRRSIG, DS), each hidden / rumoured /
omnipresent / unretentive, or ``None`` where the record does not apply (a ZSK has no DS).
A transition of one record is allowed when, for each of the three rules (a DS exists, a
DNSKEY chain exists, zone signatures exist), the rule either does not hold now or still
holds after the transition.  The predicates can be asked "as if" one record of one key had
already moved (``subject``, ``rtype``, ``nxt``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dnsseal.keys.model import Key, RecordState

H = RecordState.HIDDEN
R = RecordState.RUMOURED
O = RecordState.OMNIPRESENT  # noqa: E741 - the paper's letter
U = RecordState.UNRETENTIVE

DNSKEY, ZRRSIG, KRRSIG, DS = 0, 1, 2, 3
RTYPES = ("DNSKEY", "ZRRSIG", "KRRSIG", "DS")
RECORD_ATTRS = ("dnskey", "zrrsig", "krrsig", "ds")
CHANGE_ATTRS = ("dnskey_change", "zrrsig_change", "krrsig_change", "ds_change")

Pattern = tuple[RecordState | None, RecordState | None, RecordState | None, RecordState | None]
ANY: Pattern = (None, None, None, None)
ALL_HIDDEN: Pattern = (H, H, H, H)


@dataclass(slots=True)
class Work:
    """A key while the engine works on it (mutable; turned back into a Key at the end)."""

    key: Key
    ksk: bool
    zsk: bool
    states: list[RecordState | None]
    changes: list[int | None]
    goal: RecordState | None
    timings: dict[str, int | None]
    lifetime: int | None
    predecessor: int | None
    successor: int | None
    created: bool = False
    purge: bool = False
    log: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)

    @property
    def tag(self) -> int:
        return self.key.tag

    @property
    def alg(self) -> int:
        return self.key.algorithm

    @property
    def role(self) -> str:
        return "csk" if self.ksk and self.zsk else ("ksk" if self.ksk else "zsk")

    def all_hidden(self) -> bool:
        return all(s is None or s is H for s in self.states)


class Ring:
    """The keys of one zone, with an optional pretended transition.

    The keys' states do not change while a Ring is asked (the engine makes one per
    transition it weighs), so each key's states as the rules see them (a record that does
    not apply counts as hidden, the pretended transition applied) are taken once, and so is
    the list of the subject's algorithm's keys: the rules ask about them ~150 times."""

    __slots__ = ("_same", "_seen", "keys", "nxt", "rtype", "subject")

    def __init__(
        self,
        keys: Sequence[Work],
        subject: Work,
        rtype: int = -1,
        nxt: RecordState | None = None,
        *,
        _kept: list[Work] | None = None,
    ) -> None:
        # Keys gone for good (goal hidden, every record hidden) can neither help nor hurt
        # any rule; leaving them out keeps a long history of old keys cheap.
        self.keys = (
            _kept
            if _kept is not None
            else [
                k for k in keys if k is subject or not (k.purge or (k.goal is H and k.all_hidden()))
            ]
        )
        self.subject = subject
        self.rtype = rtype
        self.nxt = nxt
        self._seen: dict[int, tuple[RecordState, ...]] = {}
        for k in self.keys:
            self._seen[id(k)] = self._effective(k)
        self._same: list[Work] | None = None

    def _effective(self, k: Work) -> tuple[RecordState, ...]:
        return tuple((self.state(k, i) or H) for i in range(4))

    def pretend(self, nxt: RecordState | None) -> Ring:
        return Ring(self.keys, self.subject, self.rtype, nxt, _kept=self.keys)

    def state(self, k: Work, i: int) -> RecordState | None:
        if self.nxt is not None and i == self.rtype and k is self.subject:
            return self.nxt
        return k.states[i]

    def match(self, k: Work, pat: Pattern) -> bool:
        """Each non-None entry of ``pat`` equals k's state; a record that does not apply
        to k counts as hidden."""
        e = self._seen.get(id(k))
        if e is None:  # (not one of the ring's keys)
            e = self._effective(k)
        a, b, c, d = pat
        return (
            (a is None or e[0] is a)
            and (b is None or e[1] is b)
            and (c is None or e[2] is c)
            and (d is None or e[3] is d)
        )

    def _same_alg(self, match_alg: bool) -> list[Work]:
        if not match_alg:
            return self.keys
        same = self._same
        if same is None:
            alg = self.subject.alg
            same = self._same = [k for k in self.keys if k.alg == alg]
        return same

    # -- successor relation (equation 2 of the paper) -------------------------------

    def _predecessor_of(self, k: Work) -> Work | None:
        """The live key whose successor k is (k 'depends' on it), if any."""
        for d in self.keys:
            if d.successor == k.tag and k.predecessor == d.tag and d is not k:
                if all((s or H) is H for s in d.states):
                    continue
                return d
        return None

    def is_successor(self, x: Work, z: Work, depth: int = 0) -> bool:
        if depth > len(self.keys) or self._predecessor_of(x) is not None:
            return False
        dz = self._predecessor_of(z)
        if dz is None:
            return False
        if dz is x:
            return True
        zst: Pattern = (z.states[0], z.states[1], z.states[2], z.states[3])
        if dz is not z and self.match(dz, zst):
            return self.is_successor(x, dz, depth + 1)
        return False

    def exists(
        self,
        pat: Pattern,
        succ: Pattern | None = None,
        *,
        match_alg: bool = True,
    ) -> bool:
        """A key matching ``pat`` (and, with ``succ``, a successor of it matching ``succ``)."""
        for d in self._same_alg(match_alg):
            if not self.match(d, pat):
                continue
            if succ is None:
                return True
            for s in self.keys:
                if s is not d and self.match(s, succ) and self.is_successor(d, s):
                    return True
        return False

    # -- the three rules ---------------------------------------------------------------

    def have_ds(self, secure_to_insecure: bool) -> bool:
        """(3a) some DS is published or being published (any algorithm)."""
        return (
            self.exists((None, None, None, O), match_alg=False)
            or self.exists((None, None, None, R), match_alg=False)
            or (secure_to_insecure and bool(self.keys))
        )

    def ds_hidden_or_chained(self, must_be_hidden: bool) -> bool:
        """(3e) every DS of this algorithm is hidden, or has an omnipresent DNSKEY chain."""
        for d in self._same_alg(True):
            if self.match(d, (None, None, None, H)):
                continue
            if must_be_hidden:
                return False
            if self.match(d, (O, None, O, None)):
                continue
            if not self.exists((O, None, O, O)):
                return False
        return True

    def have_dnskey(self) -> bool:
        """(3b), (3d), (3e): a DS -> DNSKEY -> KRRSIG chain for every cache.

        The paper's (3c) -- one key's DS unretentive, its successor's rumoured, both
        DNSKEYs omnipresent -- is deliberately not a rule on its own here.  It assumes the
        parent swapped exactly those two DS records, so that every cached DS RRset holds
        one of them.  A third DS still unretentive (a key retired by a policy change, CSK
        to KSK + ZSK, while the new KSK already rolls) breaks that: a cache may hold a DS
        RRset naming only the third key, and (3c) would let that key's DNSKEY leave.
        (3e) asks it of every DS that some cache may hold, and the (3c) pair itself
        always passes (3e) (both DNSKEYs and KRRSIGs are omnipresent), so (3c) adds
        nothing sound on top of (3e).  (3d) stays: there both DS records are in every
        cache, so any other DS does not matter.
        """
        if self.exists((O, None, O, O)):
            return True
        for p in ((U, None, U, O), (O, None, U, O), (U, None, O, O)):
            if not self.exists(p):  # (no key like p: none with a successor either)
                continue
            for s in ((R, None, R, O), (O, None, R, O), (R, None, O, O)):
                if self.exists(p, s):
                    return True
        return self.ds_hidden_or_chained(False)

    def dnskey_hidden_or_chained(self) -> bool:
        """(3i) every published DNSKEY of this algorithm has omnipresent signatures."""
        for d in self._same_alg(True):
            if self.match(d, (H, None, None, None)):
                continue
            if not self.exists((self.state(d, DNSKEY) or H, O, None, None)):
                return False
        return True

    def signers_published(self) -> bool:
        """Every key of this algorithm whose zone signatures some cache may hold (ZRRSIG
        not hidden) has its DNSKEY in every cache."""
        return all(
            self.match(d, (O, None, None, None))
            for d in self._same_alg(True)
            if not self.match(d, (None, H, None, None))
        )

    def have_rrsig(self) -> bool:
        """(3f)-(3i): zone data signatures that some published DNSKEY validates.

        (3h) -- one key's ZRRSIG unretentive, its successor's rumoured, both DNSKEYs
        omnipresent -- assumes every cached RRset carries a signature of one of those two.
        It holds only while no third key's signatures may be cached without its DNSKEY:
        after KSK + ZSK -> CSK, the old ZSK still signs (omnipresent ZRRSIG) while the new
        CSK, rolled by the operator, swaps its signatures with its successor's; the pair
        alone let the old ZSK's DNSKEY leave while RRsets signed only by it were cached.
        """
        return (
            self.ds_hidden_or_chained(True)
            or self.exists((O, O, None, None))
            or self.exists((U, O, None, None), (R, O, None, None))
            or (self.exists((O, U, None, None), (O, R, None, None)) and self.signers_published())
            or self.dnskey_hidden_or_chained()
        )


def transition_safe(
    keys: Sequence[Work], k: Work, rtype: int, nxt: RecordState, secure_to_insecure: bool
) -> str | None:
    """None when moving k's ``rtype`` record to ``nxt`` keeps the zone valid for every
    cache, else the name of the rule that forbids it."""
    now = Ring(keys, k, rtype)
    after = now.pretend(nxt)
    if now.have_ds(secure_to_insecure) and not after.have_ds(secure_to_insecure):
        return "a DS must stay at the parent"
    if now.have_dnskey() and not after.have_dnskey():
        return "a DS -> DNSKEY chain must stay"
    if now.have_rrsig() and not after.have_rrsig():
        return "zone signatures must stay verifiable"
    return None


def policy_allows(keys: Sequence[Work], k: Work, rtype: int, nxt: RecordState) -> str | None:
    """The rollover methods' order (pre-publication, double-KSK): None when ``rtype`` of k
    may become ``nxt``, else what it waits for.  Only introductions are restricted."""
    if nxt is not R:
        return None
    dnskey = k.states[DNSKEY] or H
    if rtype == DNSKEY:
        return None
    if rtype == KRRSIG:
        return None if dnskey is not H else "its DNSKEY to be published"
    if rtype == DS:
        return None if dnskey is O else "its DNSKEY to be in every cache"
    # ZRRSIG: pre-publication, unless this is a new algorithm (or a new zone).
    if dnskey is O:
        return None
    ring = Ring(keys, k, rtype, nxt)
    if (
        ring.exists((O, None, O, O))
        or ring.exists((O, None, O, U), (O, None, O, R))
        or ring.exists((U, None, None, O), (R, None, None, O))
    ):
        return "its DNSKEY to be in every cache (pre-publication)"
    return None
