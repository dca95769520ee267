"""Name comparisons on label tuples, for the validator's hot paths.

dnspython's ``Name.__eq__``, ``is_subdomain`` and ``__hash__`` lowercase every label in a
Python loop (``fullcompare``): a cold resolution made some 200 such calls.  These give the
same answers from the label tuples: equal when the tuples are equal, otherwise
case-insensitively (ASCII only, as dnspython's ``bytes.lower``); a relative name never
equals nor lies under an absolute one (tests/resolver/test_names.py checks them against
dnspython on random names).  A name's canonical wire form is
:func:`dnsseal.zone.canonical.name_wire`.
"""

from __future__ import annotations

from typing import Any

import dns.name

_NEW = object.__new__
_SET = object.__setattr__
_NAME_HASH = dns.name.Name.__hash__


class HashedName(dns.name.Name):
    """A ``dns.name.Name`` that keeps its hash, and compares equal without ``fullcompare``.

    The names of upstream replies (made by the reply reader) and the ancestors the
    validator walks (:func:`suffix`) are keys of the resolver's and the validator's dicts
    and sets, looked up many times per question; dnspython's ``__hash__`` lowercases every
    octet in a Python loop each time.  This one computes dnspython's hash once (so these
    names and plain ones mix in dicts and sets), and ``==`` is :func:`same_name` (the same
    answer as dnspython's, from the label tuples).  A copy or a pickle is a plain
    ``dns.name.Name``; anything else is inherited."""

    __slots__ = ("_hash",)
    _hash: int | None

    def __init__(self, labels: Any) -> None:  # (the hot paths use hashed_name())
        super().__init__(labels)
        _SET(self, "_hash", None)

    def __hash__(self) -> int:
        h: int | None = self._hash
        if h is None:
            h = _NAME_HASH(self)
            _SET(self, "_hash", h)
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dns.name.Name):
            return False
        return same_name(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __reduce__(self) -> tuple[Any, ...]:
        return dns.name.Name, (self.labels,)


def hashed_name(labels: tuple[bytes, ...]) -> dns.name.Name:
    """A :class:`HashedName` of ``labels``, which must be valid name labels (as
    ``dns.name.Name`` checks them: bytes, 1-63 octets but the last, 255 in all, only the
    last empty); nothing is checked."""
    name = _NEW(HashedName)
    _SET(name, "labels", labels)
    _SET(name, "_hash", None)
    return name


def as_hashed(name: dns.name.Name) -> dns.name.Name:
    """``name`` as a :class:`HashedName` (itself if it is one)."""
    return name if type(name) is HashedName else hashed_name(name.labels)


def parent_name(name: dns.name.Name) -> dns.name.Name:
    """``name.parent()`` (raising ``NoParent`` where it does), as a :func:`suffix`."""
    labels = name.labels
    return suffix(labels[1:]) if len(labels) > 1 else name.parent()


def suffix(labels: tuple[bytes, ...]) -> dns.name.Name:
    """``dns.name.Name(labels)`` for a suffix of a valid name's labels (``name.labels[i:]``),
    without dnspython's checks and conversions (a valid name's suffix passes them all
    unchanged): the validator walks a name's ancestors many times per question."""
    return hashed_name(labels)


def _absolute(labels: tuple[bytes, ...]) -> bool:
    return bool(labels) and labels[-1] == b""


def _same_labels(a: tuple[bytes, ...], b: tuple[bytes, ...]) -> bool:
    for x, y in zip(a, b, strict=True):  # noqa: SIM110 (a loop is cheaper than all(genexpr))
        if x != y and x.lower() != y.lower():
            return False
    return True


def same_name(a: dns.name.Name, b: dns.name.Name) -> bool:
    """``a == b`` as dnspython has it (case-insensitive, absolute differs from relative)."""
    la, lb = a.labels, b.labels
    if la == lb:
        return True
    if len(la) != len(lb):
        return False
    return _same_labels(la, lb)


def is_subdomain(name: dns.name.Name, parent: dns.name.Name) -> bool:
    """``name.is_subdomain(parent)`` as dnspython has it: ``name`` at or below ``parent``."""
    ln, lp = name.labels, parent.labels
    k = len(lp)
    if k > len(ln) or _absolute(ln) != _absolute(lp):
        return False
    tail = ln[len(ln) - k :]
    return tail == lp or _same_labels(tail, lp)  # (the same octets: compared in C)


_TEXT: dict[tuple[bytes, ...], str] = {}
_TEXT_MAX = 4096


def name_text(name: dns.name.Name) -> str:
    """``name.to_text()`` (case kept), remembered by label tuple: for zone names, which the
    validator's reasons and links name over and over (not for query names: the memory
    would grow with every new name, up to the bound)."""
    labels = name.labels
    text = _TEXT.get(labels)
    if text is None:
        if len(_TEXT) >= _TEXT_MAX:
            _TEXT.clear()
        text = _TEXT[labels] = name.to_text()
    return text
