"""What goes into and comes out of the key manager.

Facts are things only the outside world knows (the parent's DS RRset, an operator's
request).  A :class:`Plan` is everything the caller needs to act: the keys with their new
states and timing metadata (to be saved), keys to create and purge, the records to publish,
who signs what, when to call again, and for each waiting key a sentence saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.name

from dnsseal.findings import Finding
from dnsseal.keys.model import Key, KeyId, PrivateMaterial


@dataclass(frozen=True, slots=True)
class DsSeen:
    """The parent publishes a DS for ``key`` since ``when`` (checkds said so)."""

    key: KeyId
    when: int


@dataclass(frozen=True, slots=True)
class DsWithdrawn:
    """The parent has no DS for ``key`` any more, since ``when``."""

    key: KeyId
    when: int


@dataclass(frozen=True, slots=True)
class RolloverRequest:
    """Roll ``key`` at ``when`` (``rndc dnssec -rollover``): it retires then."""

    key: KeyId
    when: int


@dataclass(frozen=True, slots=True)
class StepApproved:
    """The operator approved the pending step at ``when`` (``dnssec -step``, manual-mode):
    the next step at or after ``when`` makes it."""

    when: int


Fact = DsSeen | DsWithdrawn | RolloverRequest | StepApproved


@dataclass(frozen=True, slots=True)
class Facts:
    items: tuple[Fact, ...] = ()

    @classmethod
    def of(cls, *items: Fact) -> Facts:
        return cls(tuple(items))


@dataclass(frozen=True, slots=True)
class KeyReport:
    """One key after the step: its new metadata and what happened to it."""

    key: Key
    changes: tuple[str, ...] = ()
    waiting: str | None = None  # why a record of this key cannot move yet
    created: bool = False
    purge: bool = False
    missing_private: bool = False
    retired: bool = False  # the key started to leave in this step (its goal became hidden)

    @property
    def tag(self) -> int:
        return self.key.tag


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of one engine step for one zone at ``now``."""

    zone: dns.name.Name
    policy: str
    now: int
    keys: tuple[KeyReport, ...]
    dnskeys: tuple[Key, ...] = ()  # the DNSKEY RRset
    ksk_signers: tuple[Key, ...] = ()  # sign DNSKEY, CDS, CDNSKEY
    zsk_signers: tuple[Key, ...] = ()  # sign everything else
    cds: tuple[Key, ...] = ()  # CDS/CDNSKEY for these keys
    cds_delete: bool = False  # publish the RFC 8078 DELETE CDS/CDNSKEY
    # When to run again: the earliest timed transition, or an hour from now while a DS
    # change waits for the parent (as BIND's next key event).
    next_event: int | None = None
    problems: tuple[Finding, ...] = ()
    to_generate: tuple[str, ...] = field(default=())  # roles needed when no keygen given
    # The earliest time something can move by time alone (no parent recheck): what a
    # simulation that delivers the parent's DS changes itself waits for.
    next_timed_event: int | None = None
    # BIND's "next key event" (keymgr nexttime): state changes and rollovers, with the
    # hourly parent recheck, but not purges (BIND deletes purged key files on whichever
    # run comes after purge-keys; dnsseal schedules a run for it: next_purge).
    next_state_event: int | None = None
    next_purge: int | None = None
    # manual-mode: what the step would do that waits for the operator's approval (a key to
    # create, a record to publish or withdraw), one sentence each; empty when nothing waits
    pending: tuple[str, ...] = ()
    # Key material the step made and then did not keep (a key whose tag collided, made
    # again): for a key in a token, what the storage adapter deletes from it.
    discarded: tuple[PrivateMaterial, ...] = ()

    @property
    def created(self) -> Sequence[KeyReport]:
        return [r for r in self.keys if r.created]

    @property
    def retired(self) -> Sequence[KeyReport]:
        return [r for r in self.keys if r.retired]

    @property
    def purged(self) -> Sequence[KeyReport]:
        return [r for r in self.keys if r.purge]

    @property
    def changed(self) -> Sequence[KeyReport]:
        return [r for r in self.keys if r.changes]

    def report(self, key: Key) -> KeyReport:
        for r in self.keys:
            if r.key.id == key.id:
                return r
        raise LookupError(f"key {key.tag} is not in the plan")
