"""``[catalog."NAME"]``: catalog zones (RFC 9432) dnsseal produces for its secondaries.

A catalog zone lists member zones; a secondary that consumes it (Knot's
``catalog-role: interpret``, BIND's ``catalog-zones``) provisions every member by
transfer, so a zone added to dnsseal's config reaches the secondaries with no change on
their side.  Example::

    [catalog."catalog.invalid"]
    allow-transfer = ["secondaries"]  # who may transfer the catalog (and its members)
    also-notify = ["192.0.2.7@53"]    # NOTIFY on a new catalog (and member) serial
    notify-key = "xfr"                # optional: sign those NOTIFYs
    members = ["example.com"]         # default: every configured [zone]
    groups = { signed = ["example.com"] }   # optional RFC 9432 "group" property

The catalog's ``allow-transfer`` and ``also-notify`` (and ``notify-key`` when a member
has none) are added to each member's own: the secondaries the catalog is for must
transfer the members and hear of their new serials.  Needs ``server.state-dir`` (the
catalog's serial survives restarts there).

This module only checks the table; :mod:`dnsseal.server.catalog` builds and serves the
zone.  It imports nothing from ``serverconfig`` at run time (serverconfig calls it).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.exception
import dns.name

from dnsseal.errors import OptionError
from dnsseal.storage import options
from dnsseal.storage.remotes import Endpoint, parse_endpoint

if TYPE_CHECKING:
    from dnsseal.storage.serverconfig import ZoneConfig

__all__ = ["CATALOG_OPTIONS", "CatalogConfig", "parse_catalogs", "with_catalogs"]

Fail = Callable[[str, str], None]  # (option path, message): one problem

# The option names of a [catalog."NAME"] table (their help and docs: storage/options.py)
CATALOG_OPTIONS = options.known('catalog."NAME"')


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    """One catalog zone: its name, its members (zone names as configured, in config
    order) with an optional group each, and who transfers it and hears its NOTIFYs."""

    name: str
    members: tuple[str, ...]
    groups: tuple[tuple[str, str], ...] = ()  # (member, group), members with a group only
    allow_transfer: tuple[str, ...] = ()  # ACL elements, named ACLs expanded
    also_notify: tuple[Endpoint, ...] = ()
    notify_key: str | None = None

    def group_of(self, member: str) -> str | None:
        return dict(self.groups).get(member)


def _norm(name: str) -> str:
    """The key a zone name is compared by: ``Example.COM.`` is ``example.com``.  The
    [zone] names were checked by serverconfig; a cheap key keeps 10,000 zones cheap."""
    return name.lower().rstrip(".") or "."


def parse_catalogs(
    raw: object,
    zones: Sequence[ZoneConfig],
    keys: Collection[str],
    acls: Mapping[str, Sequence[str]],
    has_state_dir: bool,
) -> tuple[tuple[CatalogConfig, ...], list[ZoneConfig], list[OptionError]]:
    """Check the ``[catalog]`` table (None: absent) against the configured ``zones``
    (``keys``: TSIG key names; ``acls``: the named ACLs).  Returns the catalogs, the zones
    as their catalogs extend them (:func:`with_catalogs`) and every problem found, each
    naming its option path; never raises."""
    catalogs, problems = _catalogs(raw, [z.name for z in zones], keys, acls, has_state_dir)
    members, more = with_catalogs(zones, catalogs)
    return catalogs, members, problems + more


def _catalogs(
    raw: object,
    zone_names: Sequence[str],
    keys: Collection[str],
    acls: Mapping[str, Sequence[str]],
    has_state_dir: bool,
) -> tuple[tuple[CatalogConfig, ...], list[OptionError]]:
    problems: list[OptionError] = []

    def fail(option: str, message: str) -> None:
        problems.append(OptionError(option, message))

    if raw is None:
        return (), problems
    if not isinstance(raw, dict):
        fail("catalog", 'expected tables: [catalog."catalog.invalid"]')
        return (), problems
    zones = {_norm(z): z for z in zone_names}
    out: list[CatalogConfig] = []
    for cname, spec in raw.items():
        where = f'catalog."{cname}"'
        if not isinstance(spec, dict):
            fail(where, "expected a table")
            continue
        try:
            dns.name.from_text(cname)
            cat = _norm(cname)
        except dns.exception.DNSException as e:
            fail(where, f"not a valid zone name: {e}")
            continue
        if cat in zones:
            fail(where, f"{cname!r} is also a [zone]: a catalog zone is made by dnsseal")
            continue
        if not has_state_dir:
            fail(where, "a catalog zone needs server.state-dir (its serial survives restarts)")
        for opt in spec:
            if opt not in CATALOG_OPTIONS:
                fail(f"{where}.{opt}", options.unknown_message(opt, CATALOG_OPTIONS))
        members = _members(fail, where, spec.get("members"), zones)
        groups = _groups(fail, where, spec.get("groups"), zones, set(members))
        acl = _acl(fail, f"{where}.allow-transfer", spec.get("allow-transfer", []), keys, acls)
        notify = _endpoints(fail, f"{where}.also-notify", spec.get("also-notify", []))
        nkey = spec.get("notify-key")
        if nkey is not None and (not isinstance(nkey, str) or nkey not in keys):
            fail(f"{where}.notify-key", f"unknown TSIG key {nkey!r}")
            nkey = None
        out.append(CatalogConfig(cname, members, groups, acl, notify, nkey))
    seen: dict[str, str] = {}
    for c in out:
        first = seen.setdefault(_norm(c.name), c.name)
        if first != c.name:
            fail(f'catalog."{c.name}"', f"the same zone as catalog {first!r}")
    return tuple(out), problems


def with_catalogs(
    zones: Sequence[ZoneConfig], catalogs: Sequence[CatalogConfig]
) -> tuple[list[ZoneConfig], list[OptionError]]:
    """``zones`` with each member's ``allow-transfer`` and ``also-notify`` extended by its
    catalogs' (the member's own elements first: its own denials still win), and the
    catalog's ``notify-key`` for members without one.  Returns the zones and the problems
    (a member whose notify-key differs from its catalog's)."""
    problems: list[OptionError] = []
    out = []
    member_sets = [(c, set(c.members)) for c in catalogs]  # 10,000 zones: no list scans
    for member in zones:
        z = member
        for c, members in member_sets:
            if z.name not in members:
                continue
            key = z.notify_key
            if c.also_notify and c.notify_key is not None:
                if key is not None and key != c.notify_key:
                    problems.append(
                        OptionError(
                            f'zone."{z.name}".notify-key',
                            f"{key!r}, but its catalog {c.name!r} signs NOTIFY with "
                            f"{c.notify_key!r}: one key per zone",
                        )
                    )
                key = c.notify_key
            z = dataclasses.replace(
                z,
                allow_transfer=(*z.allow_transfer, *c.allow_transfer),
                also_notify=tuple(dict.fromkeys((*z.also_notify, *c.also_notify))),
                notify_key=key,
            )
        out.append(z)
    return out, problems


def _members(fail: Fail, where: str, raw: object, zones: Mapping[str, str]) -> tuple[str, ...]:
    if raw is None:
        return tuple(zones.values())
    if not isinstance(raw, list):
        fail(f"{where}.members", "expected a list of zone names")
        return ()
    out: dict[str, None] = {}  # ordered, without repeats
    for i, item in enumerate(raw):
        name = zones.get(_norm(item)) if isinstance(item, str) else None
        if name is None:
            fail(f"{where}.members[{i}]", f"{item!r} is not a configured [zone]")
        else:
            out[name] = None
    return tuple(out)


def _groups(
    fail: Fail,
    where: str,
    raw: object,
    zones: Mapping[str, str],
    members: Collection[str],
) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        fail(f"{where}.groups", "expected a table: { GROUP = [zone, ...] }")
        return ()
    out: dict[str, str] = {}
    for group, items in raw.items():
        opt = f"{where}.groups.{group}"
        # A TXT character-string (RFC 9432 group property), and Knot maps it to a template id.
        if not group or len(group.encode()) > 255 or not group.isprintable():
            fail(opt, "a group name is 1 to 255 printable characters")
            continue
        if not isinstance(items, list):
            fail(opt, "expected a list of member zone names")
            continue
        for i, item in enumerate(items):
            name = zones.get(_norm(item)) if isinstance(item, str) else None
            if name is None or name not in members:
                fail(f"{opt}[{i}]", f"{item!r} is not a member of this catalog")
            elif out.setdefault(name, group) != group:
                fail(f"{opt}[{i}]", f"{item!r} is already in group {out[name]!r}")
    return tuple(out.items())


def _acl(
    fail: Fail,
    option: str,
    raw: object,
    keys: Collection[str],
    acls: Mapping[str, Sequence[str]],
) -> tuple[str, ...]:
    """ACL elements with named ACLs expanded (what ``proto.acl.Acl.parse`` takes)."""
    if not isinstance(raw, list) or not all(isinstance(i, str) for i in raw):
        fail(option, "expected a list of strings")
        return ()
    out: list[str] = []
    for i, item in enumerate(raw):
        neg = "!" if item.strip().startswith("!") else ""
        text = item.strip().lstrip("!").strip()
        if text in acls:
            out += [neg + e for e in acls[text]]
            continue
        if text.startswith("key "):
            if text[4:].strip() not in keys:
                fail(f"{option}[{i}]", f"unknown TSIG key {text[4:].strip()!r}")
        elif text not in ("any", "none"):
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                fail(
                    f"{option}[{i}]",
                    f"{item!r} is not an address, network, 'key NAME', 'any', 'none' or the "
                    "name of an [acl] list",
                )
                continue
        out.append(item)
    return tuple(out)


def _endpoints(fail: Fail, option: str, raw: object) -> tuple[Endpoint, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        fail(option, 'expected a list of "ADDR[@PORT]" strings')
        return ()
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse_endpoint(f"{option}[{i}]", item, 53))
        except OptionError as e:
            fail(e.option, e.message)
    return tuple(out)
