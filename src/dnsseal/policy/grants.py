"""Who may change what by dynamic update: BIND's ``update-policy`` grant rules, pure.

A zone's ``update-policy`` is an ordered list of rules; for each record of an UPDATE the
first rule whose identity, name and type match decides (``grant`` allows, ``deny``
refuses); a record no rule matches is refused, and one refused record refuses the whole
UPDATE (REFUSED), as in BIND.  In dnsseal.toml::

    [zone."example.com"]
    update-policy = [
        "grant ddns zonesub ANY",                        # anything in the zone
        "grant web name www.example.com. A AAAA",        # only www's addresses
        "grant * self * A AAAA",                         # a key updates its own name
        "grant dhcp wildcard *.dhcp.example.com. A TXT",
        "deny ddns name secret.example.com.",
        "grant peer name example.com. DNSKEY CDS CDNSKEY",  # multi-signer (RFC 8901 model 2)
    ]

Rule text: ``(grant|deny) IDENTITY RULETYPE [NAME] [TYPE ...]``, BIND's syntax without the
semicolon.  IDENTITY is a TSIG key name; a leading ``*`` label is a wildcard (``*`` is any
key).  An unsigned UPDATE has no identity and matches no rule.  Rule types (the NAME field
is required except for ``zonesub``; for ``self`` it is ignored, write ``*`` or ``.``):

============ ===========================================================================
name         the record's owner is NAME
subdomain    the owner is NAME or below it
zonesub      the owner is the zone or below it (no NAME field)
wildcard     NAME is a wildcard (``*.example.com.``) and the owner matches it
self         the owner is the signer's key name
selfsub      the owner is the key name or below it
selfwild     the owner is one or more labels below the key name
============ ===========================================================================

TYPE: record types; none, or ``ANY``, means every type a user may change (BIND: no type
means all but RRSIG, NS, SOA, NSEC, NSEC3; ``ANY`` all but NSEC and NSEC3).  The key-set
types DNSKEY, CDS and CDNSKEY are only ever granted by a rule that names them: in a zone
whose keys the dnssec-policy manages, a foreign key comes in only through such an explicit
grant (see docs/update-security.md).  BIND's Kerberos, ``tcp-self``, ``6to4-self``,
``external`` and ``local`` forms are not supported (a clear config error).
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype

from dnsseal.errors import OptionError

T = dns.rdatatype
RULE_TYPES = ("name", "subdomain", "zonesub", "wildcard", "self", "selfsub", "selfwild")
# Never granted by "no type" (BIND: isusertype) nor by ANY; NSEC/NSEC3/RRSIG are the
# signer's anyway.
NOT_USER_TYPES = frozenset({T.RRSIG, T.NS, T.SOA, T.NSEC, T.NSEC3})
NOT_ANY_TYPES = frozenset({T.NSEC, T.NSEC3})
# Granted only by a rule that lists them by name.
KEYSET_TYPES = frozenset({T.DNSKEY, T.CDS, T.CDNSKEY})


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``grant``/``deny`` rule.  ``types`` empty: every user type; ``any_type``: the
    rule said ``ANY``."""

    grant: bool
    identity: dns.name.Name
    rule_type: str
    name: dns.name.Name | None
    types: frozenset[int]
    any_type: bool = False

    def matches_identity(self, signer: dns.name.Name) -> bool:
        return _matches_wild(signer, self.identity)

    def matches_name(
        self, owner: dns.name.Name, signer: dns.name.Name, origin: dns.name.Name
    ) -> bool:
        rt = self.rule_type
        if rt == "name":
            return bool(owner == self.name)
        if rt == "subdomain":
            assert self.name is not None
            return owner.is_subdomain(self.name)
        if rt == "zonesub":
            return owner.is_subdomain(origin)
        if rt == "wildcard":
            assert self.name is not None
            return _matches_wild(owner, self.name) and owner != self.name.parent()
        if rt == "self":
            return bool(owner == signer)
        if rt == "selfsub":
            return owner.is_subdomain(signer)
        # selfwild
        return owner.is_subdomain(signer) and owner != signer

    def matches_type(self, rtype: int) -> bool:
        if rtype in KEYSET_TYPES:
            return rtype in self.types  # only ever by name
        if self.any_type:
            return rtype not in NOT_ANY_TYPES
        if not self.types:
            return rtype not in NOT_USER_TYPES
        return rtype in self.types


def _matches_wild(name: dns.name.Name, pattern: dns.name.Name) -> bool:
    """BIND's dns_name_matcheswildcard for a wildcard ``pattern``, equality otherwise."""
    if pattern.is_wild():
        return name.is_subdomain(pattern.parent()) and name != pattern.parent()
    return bool(name == pattern)


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    """A zone's ordered rules."""

    rules: tuple[Rule, ...]

    def decide(
        self, signer: dns.name.Name | None, owner: dns.name.Name, rtype: int, origin: dns.name.Name
    ) -> bool:
        """May ``signer`` (a TSIG key name, None: unsigned) change ``owner``/``rtype``?"""
        if signer is None:
            return False
        owner = owner.canonicalize()
        signer = signer.canonicalize()
        for rule in self.rules:
            if (
                rule.matches_identity(signer)
                and rule.matches_name(owner, signer, origin)
                and rule.matches_type(rtype)
            ):
                return rule.grant
        return False

    @classmethod
    def parse(cls, option: str, items: object, known_keys: set[str] | None = None) -> UpdatePolicy:
        """Rules from their text (see the module docstring).  ``known_keys``, when given:
        an identity without a wildcard must name one of these TSIG keys.  Raises
        :class:`OptionError` naming ``option[i]``."""
        if not isinstance(items, list):
            raise OptionError(option, 'must be a list of rules like "grant KEY zonesub ANY"')
        return cls(tuple(parse_rule(f"{option}[{i}]", t, known_keys) for i, t in enumerate(items)))


def _name(where: str, text: str, what: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text).canonicalize()
    except dns.exception.DNSException as e:
        raise OptionError(where, f"{what} {text!r} is not a domain name: {e}") from None


def parse_rule(where: str, text: object, known_keys: set[str] | None = None) -> Rule:
    """One rule; raises :class:`OptionError` naming ``where``."""
    if not isinstance(text, str):
        raise OptionError(where, f"expected a rule string, got {text!r}")
    words = text.replace(";", " ").split()
    if len(words) < 3 or words[0].lower() not in ("grant", "deny"):
        raise OptionError(
            where, f"{text!r}: expected (grant|deny) IDENTITY RULETYPE [NAME] [TYPES]"
        )
    grant = words[0].lower() == "grant"
    identity = _name(where, words[1], "identity")
    if (
        known_keys is not None
        and not identity.is_wild()
        and not any(identity == dns.name.from_text(k).canonicalize() for k in known_keys)
    ):
        raise OptionError(where, f"unknown TSIG key {words[1]!r}")
    rule_type = words[2].lower()
    if rule_type not in RULE_TYPES:
        raise OptionError(
            where,
            f"rule type {words[2]!r} is not supported (supported: {', '.join(RULE_TYPES)})",
        )
    rest = words[3:]
    name: dns.name.Name | None = None
    if rule_type != "zonesub":
        if not rest:
            raise OptionError(where, f"{text!r}: the {rule_type} rule needs a NAME field")
        if rule_type not in ("self", "selfsub", "selfwild"):
            name = _name(where, rest[0], "name")
            if rule_type == "wildcard" and not name.is_wild():
                raise OptionError(where, f"wildcard rule: {rest[0]!r} is not a wildcard name")
        rest = rest[1:]
    types: set[int] = set()
    any_type = False
    for t in rest:
        if "(" in t:
            raise OptionError(where, f"{t!r}: record count limits are not supported")
        try:
            rtype = T.from_text(t.upper())
        except dns.rdatatype.UnknownRdatatype:
            raise OptionError(where, f"{t!r} is not a record type") from None
        if rtype == T.ANY:
            any_type = True
        else:
            types.add(int(rtype))
    return Rule(grant, identity, rule_type, name, frozenset(types), any_type)
