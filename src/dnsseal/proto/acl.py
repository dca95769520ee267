"""Access control lists: who may transfer a zone (and later, update it).

An ACL is an ordered list of elements, first match wins, like BIND's address match lists:
``"any"``, ``"none"``, an address or a network (``"192.0.2.0/24"``, ``"::1"``), ``"key NAME"``
(the request is TSIG-signed with that key) and any of these negated with a leading ``!``.
A request that matches nothing is denied.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.name

from dnsseal.errors import OptionError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AclElement:
    """One element: exactly one of ``network``, ``key`` or ``any_`` is set."""

    negated: bool
    network: Network | None = None
    key: dns.name.Name | None = None
    any_: bool = False

    def matches(self, address: str, key: dns.name.Name | None) -> bool:
        if self.any_:
            return True
        if self.key is not None:
            return key is not None and key == self.key
        assert self.network is not None
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return ip.version == self.network.version and ip in self.network


@dataclass(frozen=True, slots=True)
class Acl:
    """An ordered access list; :meth:`allows` returns the verdict of the first match."""

    elements: tuple[AclElement, ...] = ()

    def allows(self, address: str, key: dns.name.Name | None) -> bool:
        """True if a request from ``address`` signed with TSIG ``key`` (or None) is allowed."""
        for element in self.elements:
            if element.matches(address, key):
                return not element.negated
        return False

    @classmethod
    def parse(cls, option: str, items: list[str], known_keys: set[str] | None = None) -> Acl:
        """Build an ACL from its text elements.  ``option`` names the config option for
        errors; ``known_keys``, when given, lists the TSIG key names that may be referenced.

        Raises :class:`OptionError` for an element that is not an address, network, key
        reference, ``any`` or ``none``."""
        elements: list[AclElement] = []
        for i, raw in enumerate(items):
            where = f"{option}[{i}]"
            if not isinstance(raw, str):
                raise OptionError(where, f"expected a string, got {raw!r}")
            text = raw.strip()
            negated = text.startswith("!")
            text = text.lstrip("!").strip()
            if text == "any":
                elements.append(AclElement(negated, any_=True))
            elif text == "none":
                elements.append(AclElement(not negated, any_=True))
            elif text.startswith("key "):
                keyname = text[4:].strip()
                if known_keys is not None and keyname not in known_keys:
                    raise OptionError(where, f"unknown TSIG key {keyname!r}")
                elements.append(AclElement(negated, key=dns.name.from_text(keyname)))
            else:
                try:
                    net = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    raise OptionError(
                        where, f"{raw!r} is not an address, network, 'key NAME', 'any' or 'none'"
                    ) from None
                elements.append(AclElement(negated, network=net))
        return cls(tuple(elements))
