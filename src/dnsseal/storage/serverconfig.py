"""The authoritative server's configuration (TOML) and its zone files.

Reads ``dnsseal.toml`` into a checked, frozen :class:`ServerConfig`; every problem is
reported with its option path (``zone."example.com".allow-transfer[1]``), all problems of a
file at once.  Relative paths are relative to the config file's directory.  The names,
kinds, defaults and ranges of the options are rows of :mod:`dnsseal.storage.options`
(which also generates docs/configuration.md): add an option there.  ``[policy.NAME]``
tables may sit in this file too (as in a policies file).  Example::

    [server]
    listen = ["127.0.0.1@5300", "::1@5300"]
    control = "dnsseal.sock"          # unix control socket for `dnsseal ctl` (mode 0600)
    tcp-idle-timeout = 10             # seconds a connection may wait for its next query
    tcp-write-timeout = 10            # seconds a response may wait for the client to read
    tcp-clients = 1024                # TCP connections open at once
    tcp-clients-per-address = 64      # per IPv4 address or IPv6 /64 (when full, the
                                      # longest-idle connection makes room)
    rate-limit = { responses-per-second = 5, window = 15, slip = 2 }
                                      # RRL over UDP, BIND's names and meaning (off by
                                      # default; also ipv4-prefix-length = 24,
                                      # ipv6-prefix-length = 56, nxdomains-per-second,
                                      # errors-per-second, nodata-per-second,
                                      # referrals-per-second, log-only, exempt-clients,
                                      # max-table-size); with workers > 1 each process
                                      # keeps its own accounts; UDP then runs the Python
                                      # datagram loop (about a third of the C loop's rate)
    workers = 2                       # processes sharing the ports (SO_REUSEPORT)
    state-dir = "state"               # journal, signed zones: survive restarts
    key-directory = "keys"            # BIND key files of inline-signed zones (default: keys)
    policies = "policies.toml"        # [policy.NAME] dnssec-policy tables (or a named.conf)
    ixfr-versions = 10                # older zone versions kept for IXFR
    resolvers = ["127.0.0.1@5399"]    # recursive resolvers for checkds = "yes" without
                                      # parental-agents (default: /etc/resolv.conf)
    query-port = 53                   # port of the parent's name servers found through
                                      # them (BIND's `port`; tests and labs change it)
    pkcs11-module = "/usr/lib/softhsm/libsofthsm2.so"   # for pkcs11: key URIs without
                                      # module-path (docs/hsm.md)

    [key.xfr]                         # TSIG keys (RFC 8945)
    algorithm = "hmac-sha256"
    secret = "base64 secret"

    [acl]                             # named address match lists
    secondaries = ["127.0.0.1", "::1", "key xfr"]

    [zone."example.com"]
    file = "zones/example.com"        # the unsigned source: never modified
    dnssec-policy = "default"         # inline signing (built-in or from server.policies)
    allow-transfer = ["secondaries"]  # ACL names or elements; default: none
    allow-update = ["key ddns"]       # RFC 2136 grants (ACL elements); default: none
    # or, instead of allow-update, BIND's update-policy rules (dnsseal.policy.grants):
    # update-policy = ["grant ddns zonesub ANY", "grant web name www.example.com. A"]
    parental-agents = ["192.0.2.53"]  # asked for our DS RRset when a key waits on it
    checkds = "yes"                   # yes | explicit | no; see below
    serial-update-method = "increment"  # or unixtime | date, as BIND (inline zones)

    [zone."example.net"]              # bump in the wire: signs a zone transferred in
    primaries = ["192.0.2.1", "192.0.2.2 port 5301 key xfr"]   # hidden primaries
    dnssec-policy = "default"         # (no `file`: the copy is kept in state-dir/
                                      #  example.net.xfr; the primary is never changed)

    [zone."example.info"]             # a secondary, as BIND's `type secondary`
    primaries = ["192.0.2.1 key xfr"] # (no dnssec-policy: served as transferred)
    allow-transfer = ["secondaries"]

    [zone."example.org"]
    file = "zones/example.org.signed"
    presigned = true                  # served exactly as signed
    also-notify = ["127.0.0.1@5301"]  # NOTIFY targets on every new serial
    notify-key = "xfr"                # sign NOTIFY with this TSIG key (optional)

``checkds``: ``yes`` asks the ``parental-agents`` for the DS RRset or, when there are none,
the parent zone's own name servers (found through ``server.resolvers``, queried directly on
``server.query-port``); every server asked must agree.  ``explicit``: the operator says when
the DS changed (``dnsseal ctl dnssec -checkds``).  ``no``: never wait for the parent.  The
default is ``yes`` with parental-agents, ``explicit`` without (BIND 9.20 defaults to ``yes``
there too; dnsseal asks for it explicitly because it makes the server send queries to the
resolvers).

``primaries``: the zone's data comes by IXFR/AXFR from these servers (``addr[@port]
[port N] [key NAME]``, TSIG with key NAME), checked on the SOA's refresh timer (retry on
failure) and at once on a NOTIFY from one of them.  The transferred copy is stored in the
state directory; ``file`` and ``primaries`` exclude each other.  A failed or malformed
transfer leaves the previous data served.  With a ``dnssec-policy`` the copy is signed like
a ``file`` (bump in the wire); without one the zone is a plain secondary, served exactly as
transferred (a signed zone with its own signatures), SERVFAIL past the SOA expire time.

This module only reads files; it never binds sockets or parses DNS messages.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import ipaddress
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.tsig
import dns.zone

from dnsseal.errors import DnssealError, FileFormatError, OptionError, StorageError
from dnsseal.policy.build import collect_policies
from dnsseal.policy.build import lookup as lookup_policy
from dnsseal.policy.checks import check_policy
from dnsseal.policy.grants import UpdatePolicy
from dnsseal.policy.model import Policy
from dnsseal.storage import options
from dnsseal.storage.catalogconfig import CatalogConfig, parse_catalogs
from dnsseal.storage.config import load_policies
from dnsseal.storage.remotes import Endpoint, Primary, parse_endpoint, parse_remote

__all__ = [  # Endpoint, Primary and parse_endpoint live in storage.remotes
    "CHECKDS_MODES",
    "DEFAULT_PORT",
    "EXAMPLE_TEXT",
    "EXAMPLE_ZONE",
    "TSIG_ALGORITHMS",
    "Endpoint",
    "ListenerLimits",
    "Primary",
    "ServerConfig",
    "TsigKey",
    "ZoneConfig",
    "copy_name",
    "default_config",
    "ensure_dir",
    "file_signature",
    "load_config",
    "parse_config",
    "parse_endpoint",
    "policies_only",
    "write_example_zone",
]

DEFAULT_PORT = 5300
TSIG_ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}
# The option names come from the one table of options (storage.options): adding an option is
# adding a row there (tests check that these sets and the table agree).
_SERVER, _RATE, _ZONE = "server", "server.rate-limit", 'zone."NAME"'
# rate-limit option -> dnsseal.proto.rrl.RateLimitConfig field (the integers; log-only and
# exempt-clients are read apart)
RATE_LIMIT_OPTIONS = {
    name: name.replace("-", "_")
    for name in options.known(_RATE)
    if options.option(_RATE, name).kind == "integer"
}
SERVER_OPTIONS = set(options.known(_SERVER))
ZONE_OPTIONS = set(options.known(_ZONE))
CHECKDS_MODES = options.option(_ZONE, "checkds").choices
# BIND's serial-update-method for each new signed version (signer.sign.SERIAL_POLICIES less
# "keep", which would serve changed data under an old serial)
SERIAL_METHODS = options.option(_ZONE, "serial-update-method").choices
# DS automation (docs/ds-automation.md): the parental agent and the signaling zone.
DS_ZONE_OPTIONS = {"ds-automation", "signaling", "dsync", "ds-trust-anchors", "ds-root",
                   "ds-interval", "ds-ttl", "dsync-allow", "dsync-child"}  # fmt: skip
SECTIONS = options.TOP_LEVEL  # the top-level tables of a server config


@dataclass(frozen=True, slots=True)
class DsAutomation:
    """``ds-automation = true``: act on the children's CDS/CDNSKEY (this zone is their
    parent); ``signaling = true``: this zone (``_signal.<ns host>``) carries the RFC 9615
    signaling records of the zones served here.  ``trust_anchors`` / ``root``: where
    validation of signaling names starts; ``interval``: seconds between scans; ``ttl``:
    the DS TTL (low for ``interval * 10`` after a change); ``dsync``: publish DSYNC.
    ``notify_acl``: who may send NOTIFY(CDS) (ACL elements; None: anyone); ``children``:
    per-child DSYNC targets (child name, target host, port or None for the listen port)."""

    parent: bool = False
    signaling: bool = False
    dsync: bool = False
    trust_anchors: Path | None = None
    root: tuple[Endpoint, ...] = ()
    interval: float = 60.0
    ttl: int = 3600
    notify_acl: tuple[str, ...] | None = None
    children: tuple[tuple[str, str, int | None], ...] = ()


def ds_automation_options(
    c: _Checker,
    where: str,
    spec: dict[str, Any],
    base: Path,
    policy: object,
    notify_acl: tuple[str, ...] | None = None,
) -> DsAutomation | None:
    """The DS automation options of one zone (None when it has none).  ``notify_acl``:
    ``dsync-allow`` with named ACLs expanded (None when not set)."""
    if not any(k in spec for k in DS_ZONE_OPTIONS):
        return None
    flags = {
        opt: bool(_get(c, _ZONE, where, spec, opt))
        for opt in ("ds-automation", "signaling", "dsync")
    }
    if (flags["ds-automation"] or flags["signaling"]) and policy is None:
        c.fail(f"{where}.dnssec-policy", "ds-automation and signaling need inline signing")
    if flags["signaling"] and not where.split('"')[1].lower().startswith("_signal."):
        c.fail(f"{where}.signaling", "a signaling zone is named _signal.<name server host>")
    # Both act only on a parent that takes NOTIFY(CDS) and publishes DSYNC: anywhere else
    # they would be silently ignored, and the operator would believe the ACL protects them.
    for opt in ("dsync-allow", "dsync-child"):
        if opt in spec and not (flags["ds-automation"] and flags["dsync"]):
            c.fail(f"{where}.{opt}", "takes effect only with ds-automation = true and dsync = true")
    before = len(c.problems)
    anchors = _get(c, _ZONE, where, spec, "ds-trust-anchors")
    root = _endpoints(c, f"{where}.ds-root", spec.get("ds-root", []))
    if len(c.problems) == before and bool(anchors) != bool(root):
        c.fail(f"{where}.ds-root", "ds-root and ds-trust-anchors go together")
    interval = _get(c, _ZONE, where, spec, "ds-interval")
    ttl = _get(c, _ZONE, where, spec, "ds-ttl")
    # used by a parent with ds-automation and dsync, like ds-interval and ds-ttl
    children = _dsync_children(c, f"{where}.dsync-child", spec.get("dsync-child", []))
    return DsAutomation(
        flags["ds-automation"],
        flags["signaling"],
        flags["dsync"],
        base / anchors if anchors else None,
        root,
        float(interval),
        int(ttl),
        notify_acl,
        children,
    )


def _dsync_children(
    c: _Checker, option: str, spec: object
) -> tuple[tuple[str, str, int | None], ...]:
    """``dsync-child = ["kid ns2@5300"]``: a child (relative to the zone or absolute) and the
    host name of its DSYNC target, with an optional port (default: the listen port)."""
    if not isinstance(spec, list):
        c.fail(option, f'expected a list of "CHILD TARGET[@PORT]" strings, got {_kind(spec)}')
        return ()
    out = []
    for i, item in enumerate(spec):
        where = f"{option}[{i}]"
        parts = item.split() if isinstance(item, str) else []
        if len(parts) != 2:
            c.fail(where, f'expected "CHILD TARGET[@PORT]", got {item!r}')
            continue
        child, value = parts
        target, _, p = value.partition("@")
        try:
            dns.name.from_text(child)
            dns.name.from_text(target)
        except dns.exception.DNSException as e:
            c.fail(where, f"not a domain name: {e}")
            continue
        port: int | None = None
        if p:
            if not p.isdigit() or not 0 < int(p) < 65536:
                c.fail(where, f"port {p!r} is not a port number")
                continue
            port = int(p)
        out.append((child, target, port))
    return tuple(out)


ZONE_SUFFIXES = (".signed", ".zone", ".db")


@dataclass(frozen=True, slots=True)
class TsigKey:
    name: str
    algorithm: str
    secret: bytes

    def to_dnspython(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret, TSIG_ALGORITHMS[self.algorithm])


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    """One zone.  ``policy`` set: inline signing of the unsigned ``file`` under that
    dnssec-policy; ``presigned``: ``file`` is served exactly as signed."""

    name: str
    file: Path
    presigned: bool
    allow_transfer: tuple[str, ...] = ()  # ACL elements, ACL names already expanded
    also_notify: tuple[Endpoint, ...] = ()
    notify_key: str | None = None
    policy: str | None = None
    allow_update: tuple[str, ...] = ()  # ACL elements, like allow_transfer
    parental_agents: tuple[Endpoint, ...] = ()
    checkds: str = "yes"  # one of CHECKDS_MODES
    primaries: tuple[Primary, ...] = ()  # bump in the wire: ``file`` is the transferred copy
    update_policy: UpdatePolicy | None = None  # grant rules, instead of allow_update
    serial_method: str = "increment"  # serial-update-method, one of SERIAL_METHODS
    ds: DsAutomation | None = None  # ds-automation / signaling (docs/ds-automation.md)

    @property
    def secondary(self) -> bool:
        """A plain secondary: transferred from ``primaries`` and served exactly as they
        serve it (signed or not), no signing of ours; ``file`` is the copy in state-dir."""
        return bool(self.primaries) and self.policy is None


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """What one client may take from the listeners (``[server]`` options)."""

    tcp_clients: int = 1024  # connections open at once (each costs a descriptor)
    # per IPv4 address / IPv6 /64; when full, that client's longest-idle one is closed
    tcp_clients_per_address: int = 64
    tcp_write_timeout: float = 10.0  # seconds a response may wait for the client to read
    # rate-limit, checked, as (field, value) pairs of dnsseal.proto.rrl.RateLimitConfig
    # (storage does not import proto); None: off, as in BIND, Knot and NSD by default
    rate_limit: tuple[tuple[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """``[alerts]``: who hears of conditions an operator must act on (server.alerts).
    ``command``: a program (argv list) run with the alert as JSON on its standard input;
    ``webhook``: an ``http://`` URL the alert JSON is POSTed to.  Either, both or none."""

    command: tuple[str, ...] = ()
    webhook: str | None = None
    timeout: float = 10.0  # seconds for the command or the POST


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[Endpoint, ...]
    control: Path | None
    zones: tuple[ZoneConfig, ...]
    keys: dict[str, TsigKey] = field(default_factory=dict)
    tcp_idle_timeout: float = 10.0
    ixfr_versions: int = 10
    udp_payload: int = 1232
    workers: int = 1  # processes answering on the same ports (SO_REUSEPORT)
    state_dir: Path | None = None  # the journal (IXFR history across restarts)
    source: Path | None = None  # the file this came from (None: built-in default)
    key_dir: Path | None = None  # key files of inline-signed zones
    policies: dict[str, Policy] = field(default_factory=dict)  # defined dnssec-policies
    resolvers: tuple[Endpoint, ...] | None = None  # None: the system's (resolv.conf)
    query_port: int = 53  # for name servers found in the DNS (checkds without agents)
    pkcs11_module: Path | None = None  # for PKCS#11 key URIs without module-path
    limits: ListenerLimits = field(default_factory=ListenerLimits)
    http: tuple[Endpoint, ...] = ()  # metrics, JSON API, status page (server.http)
    http_tls: tuple[Path, Path] | None = None  # certificate chain and key files (PEM)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    # [logging] (defined at the end of this module: a lambda defers the lookup)
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig())  # noqa: PLW0108
    catalogs: tuple[CatalogConfig, ...] = ()  # [catalog."NAME"] (storage.catalogconfig)


def copy_name(zone: str) -> str:
    """The file name stem the state directory uses for ``zone`` (``example.com``, root:
    ``root``)."""
    return zone.rstrip(".") or "root"


def _zone_key(name: str) -> str:
    return f'zone."{name}"'


class _Checker:
    """Collects every problem of a config file before raising (the user fixes them all)."""

    def __init__(self) -> None:
        self.problems: list[OptionError] = []

    def check(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OptionError as e:
            self.problems.append(e)
            return None

    def fail(self, option: str, message: str) -> None:
        self.problems.append(OptionError(option, message))


_kind = options.kind_of  # ``integer 5``, ``string 'x'``, ``a table``


def _get(c: _Checker, section: str, where: str, table: dict[str, Any], name: str) -> Any:
    """Option ``name`` of ``table`` (at path ``where``) checked as its row in the table of
    options says (kind, range, choices): its default when absent or wrong (then a problem
    on ``c``)."""
    row = options.option(section, name)
    if name not in table:
        return row.default
    value, problem = row.check(table[name])
    if problem is not None:
        c.fail(f"{where}.{name}", problem)
    return value


def _unknown(c: _Checker, where: str, table: dict[str, Any], names: Iterable[str]) -> None:
    """A problem for each option of ``table`` not in ``names`` (with a suggestion)."""
    names = set(names)
    for opt in table:
        if opt not in names:
            c.fail(f"{where}.{opt}", options.unknown_message(opt, names))


def _table(c: _Checker, option: str, value: object, what: str) -> dict[str, Any]:
    """``value`` if it is a TOML table, else {} and a problem (``what`` it should hold)."""
    if isinstance(value, dict):
        return value
    c.fail(option, f"expected {what}, got {_kind(value)}")
    return {}


def _str_list(c: _Checker, option: str, value: object, what: str) -> list[str]:
    """A list of strings (a single string counts as a list of one); each other item, or a
    value that is no list, is a problem naming it (``option[i]``)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        c.fail(option, f"expected a list of {what}, got {_kind(value)}")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(item)
        else:
            c.fail(f"{option}[{i}]", f"expected {what}, got {_kind(item)}")
    return out


def _inline_policies(
    c: _Checker, raw: object, policies: dict[str, Policy], pfile: Path | None
) -> None:
    """The ``[policy.NAME]`` tables of the server config, added to ``policies`` (those of
    ``server.policies``); problems (as ``dnsseal policy check`` reports them) go to ``c``."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        c.fail("policy", f"expected [policy.NAME] tables, got {_kind(raw)}")
        return
    built, errors = collect_policies(raw)
    c.problems.extend(errors)
    for name, defined in built.items():
        if name in policies:
            c.fail(f"policy.{name}", f"defined twice: here and in {pfile} (server.policies)")
            continue
        policies[name] = defined
        if not any(e.option.startswith(f"policy.{name}.") for e in errors):
            for unsafe in check_policy(defined):
                c.fail(unsafe.option, unsafe.message)


def parse_config(data: dict[str, Any], base: Path, source: Path | None = None) -> ServerConfig:
    """Check a parsed TOML document and build the config.  Raises :class:`OptionError`
    naming the option path (all problems in one message when there are several)."""
    c = _Checker()
    for top in data:
        if top not in SECTIONS:
            close = difflib.get_close_matches(top, SECTIONS, n=1, cutoff=0.7)
            hint = f"did you mean [{close[0]}]?" if close else f"expected {', '.join(SECTIONS)}"
            c.fail(top, f"unknown section ({hint})")
    server = _table(c, "server", data.get("server", {}), "the [server] table")
    _unknown(c, "server", server, SERVER_OPTIONS)
    listen_raw = server.get("listen", list(options.option(_SERVER, "listen").default))  # type: ignore[call-overload]
    if not isinstance(listen_raw, str | list):
        c.fail(
            "server.listen", f'expected a list of "ADDR[@PORT]" strings, got {_kind(listen_raw)}'
        )
        listen_raw = []
    if isinstance(listen_raw, str):
        listen_raw = [listen_raw]
    for i, t in enumerate(listen_raw):
        if not isinstance(t, str):
            c.fail(f"server.listen[{i}]", f'expected an "ADDR[@PORT]" string, got {_kind(t)}')
    listen = tuple(
        e
        for i, t in enumerate(listen_raw)
        if isinstance(t, str)
        and (e := c.check(parse_endpoint, f"server.listen[{i}]", t, DEFAULT_PORT)) is not None
    )

    def get(name: str) -> Any:
        return _get(c, _SERVER, "server", server, name)

    control = get("control")
    idle = get("tcp-idle-timeout")
    versions = get("ixfr-versions")
    state_dir = get("state-dir")
    key_dir = get("key-directory")
    pfile = get("policies")
    policies: dict[str, Policy] = {}
    if pfile is not None:
        try:
            policies = load_policies(base / pfile)
        except DnssealError as e:
            c.fail("server.policies", str(e))
        # What `dnsseal policy check` rejects, the server does not run (same checks).
        for defined in policies.values():
            for unsafe in check_policy(defined):
                c.fail(f"{base / pfile}: {unsafe.option}", unsafe.message)
    _inline_policies(c, data.get("policy"), policies, base / pfile if pfile else None)
    workers = get("workers")
    resolvers: tuple[Endpoint, ...] | None = None
    if "resolvers" in server:
        items = server["resolvers"]
        if not isinstance(items, list) or not items:
            c.fail(
                "server.resolvers", f"expected a non-empty list of addresses, got {_kind(items)}"
            )
        else:
            resolvers = tuple(
                r[0]
                for i, t in enumerate(items)
                if (r := c.check(parse_remote, f"server.resolvers[{i}]", t, 53)) is not None
            )
    query_port = get("query-port")
    pkcs11_module = get("pkcs11-module")
    limits = _listener_limits(c, server)
    payload = get("udp-payload")

    keys: dict[str, TsigKey] = {}
    key_tables = _table(c, "key", data.get("key", {}), "[key.NAME] tables (TSIG keys)")
    for name, spec in key_tables.items():
        where = f"key.{name}"
        if not isinstance(spec, dict):
            c.fail(where, f"expected a table with algorithm and secret, got {_kind(spec)}")
            continue
        _unknown(c, where, spec, options.known("key.NAME"))
        try:
            dns.name.from_text(name)  # it goes on the wire in TSIG records
        except dns.exception.DNSException as e:
            c.fail(where, f"not a valid key name: {e}")
            continue
        alg = spec.get("algorithm", "hmac-sha256")
        if not isinstance(alg, str) or alg not in TSIG_ALGORITHMS:
            c.fail(
                f"{where}.algorithm",
                f"unknown {_kind(alg)} (known: {', '.join(TSIG_ALGORITHMS)})",
            )
            continue
        if "secret" not in spec:
            c.fail(f"{where}.secret", "missing")
            continue
        if not isinstance(spec["secret"], str):
            c.fail(f"{where}.secret", f"expected a base64 string, got {_kind(spec['secret'])}")
            continue
        try:
            secret = base64.b64decode(spec["secret"], validate=True)
        except (binascii.Error, ValueError):
            c.fail(f"{where}.secret", "is not valid base64")
            continue
        _check_tsig_secret(c, where, alg, secret)
        keys[name] = TsigKey(name, alg, secret)

    acls: dict[str, list[str]] = {}
    for name, items in _table(c, "acl", data.get("acl", {}), "a table of named lists").items():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            c.fail(f"acl.{name}", f"expected a list of strings, got {_kind(items)}")
            continue
        acls[name] = items
    for name, items in acls.items():
        for i, item in enumerate(items):
            problem = _acl_element_problem(item, keys, acls)
            if problem is not None:
                c.fail(f"acl.{name}[{i}]", problem)

    zones: list[ZoneConfig] = []
    zone_tables = _table(c, "zone", data.get("zone", {}), 'tables: [zone."example.com"]')
    for zname, spec in zone_tables.items():
        where = _zone_key(zname)
        if not isinstance(spec, dict):
            c.fail(where, f"expected a table, got {_kind(spec)}")
            continue
        _unknown(c, where, spec, ZONE_OPTIONS)
        try:
            dns.name.from_text(zname)
        except dns.exception.DNSException as e:
            c.fail(where, f"not a valid zone name: {e}")
            continue
        primaries = _primaries(c, where, spec.get("primaries"), keys)
        if primaries is None:
            continue
        if primaries:
            if "file" in spec:
                c.fail(
                    f"{where}.file",
                    "a zone with primaries has no file: the transferred copy is kept in "
                    "server.state-dir (remove one of file and primaries)",
                )
                continue
            if state_dir is None:
                c.fail(f"{where}.primaries", "transferring a zone in needs server.state-dir")
                continue
            zfile = f"{state_dir}/{copy_name(zname)}.xfr"
        elif "file" not in spec:
            c.fail(f"{where}.file", "missing (the zone file path, or primaries)")
            continue
        elif not isinstance(spec["file"], str):
            c.fail(f"{where}.file", f"expected a path string, got {_kind(spec['file'])}")
            continue
        else:
            zfile = spec["file"]
        if "presigned" in spec and not isinstance(spec["presigned"], bool):
            _get(c, _ZONE, where, spec, "presigned")  # reports it
            continue
        presigned = bool(_get(c, _ZONE, where, spec, "presigned"))
        policy = spec.get("dnssec-policy", spec.get("policy"))
        if primaries and policy is None:
            presigned = True  # a secondary: served exactly as the primaries serve it
        if policy is not None:
            if not isinstance(policy, str):
                spelt = "dnssec-policy" if "dnssec-policy" in spec else "policy"
                c.fail(f"{where}.{spelt}", f"expected a policy name, got {_kind(policy)}")
                continue
            if presigned:
                c.fail(f"{where}.dnssec-policy", "a presigned zone is not signed by dnsseal")
                continue
            try:
                lookup_policy(policy, policies)
            except OptionError as e:
                c.fail(f"{where}.dnssec-policy", e.message)
                continue
            if state_dir is None:
                c.fail(f"{where}.dnssec-policy", "inline signing needs server.state-dir")
        elif not presigned:
            c.fail(
                f"{where}.presigned" if "presigned" in spec else f"{where}.dnssec-policy",
                'set dnssec-policy = "default" (dnsseal signs the zone) or presigned = true '
                "(the file is served exactly as signed)",
            )
            continue
        acl_lists = {
            opt: _acl_items(c, where, opt, spec.get(opt, []), acls, keys)
            for opt in ("allow-transfer", "allow-update")
        }
        if acl_lists["allow-update"] and policy is None:
            c.fail(f"{where}.allow-update", "dynamic update needs an inline-signed zone")
        update_policy = _update_policy(c, where, spec, keys, policy)
        agents = _endpoints(c, f"{where}.parental-agents", spec.get("parental-agents", []))
        checkds = _get(c, _ZONE, where, spec, "checkds") or ("yes" if agents else "explicit")
        notify = _endpoints(c, f"{where}.also-notify", spec.get("also-notify", []))
        nkey = spec.get("notify-key")
        if nkey is not None and not isinstance(nkey, str):
            c.fail(f"{where}.notify-key", f"expected a TSIG key name, got {_kind(nkey)}")
            nkey = None
        elif nkey is not None and nkey not in keys:
            c.fail(f"{where}.notify-key", f"unknown TSIG key {nkey!r}")
        serial_method = _get(c, _ZONE, where, spec, "serial-update-method")
        if serial_method != "increment" and policy is None:
            c.fail(f"{where}.serial-update-method", "only inline-signed zones get new serials")
        zones.append(
            ZoneConfig(
                zname,
                base / zfile,
                presigned,
                acl_lists["allow-transfer"],
                notify,
                nkey,
                policy,
                acl_lists["allow-update"],
                agents,
                str(checkds),
                primaries,
                update_policy,
                serial_method,
                ds_automation_options(
                    c,
                    where,
                    spec,
                    base,
                    policy,
                    _acl_items(c, where, "dsync-allow", spec["dsync-allow"], acls, keys)
                    if "dsync-allow" in spec
                    else None,
                ),
            )
        )
    catalogs, zones, problems = parse_catalogs(
        data.get("catalog"), zones, keys, acls, bool(state_dir)
    )
    c.problems += problems  # [catalog."NAME"]: storage.catalogconfig
    http, http_tls, alerts = _observe_options(c, server, data.get("alerts"), base)
    log_config = _logging(c, data.get("logging"), base)
    if c.problems:
        if len(c.problems) == 1:
            raise c.problems[0]
        raise OptionError(
            str(source) if source else "config",
            "several problems:\n  " + "\n  ".join(str(p) for p in c.problems),
        )
    return ServerConfig(
        listen=listen,
        control=(base / control) if control else None,
        zones=tuple(zones),
        keys=keys,
        tcp_idle_timeout=float(idle),
        ixfr_versions=versions,
        udp_payload=payload,
        workers=workers,
        state_dir=(base / state_dir) if state_dir else None,
        source=source,
        key_dir=base / (key_dir or "keys"),
        policies=policies,
        resolvers=resolvers,
        query_port=query_port,
        pkcs11_module=(base / pkcs11_module) if pkcs11_module else None,
        limits=limits,
        http=http,
        http_tls=http_tls,
        alerts=alerts,
        logging=log_config,
        catalogs=catalogs,
    )


def _listener_limits(c: _Checker, server: dict[str, Any]) -> ListenerLimits:
    """The TCP limits and the rate limit of ``[server]``; problems go to ``c``."""
    clients = _get(c, _SERVER, "server", server, "tcp-clients")
    per_address = _get(c, _SERVER, "server", server, "tcp-clients-per-address")
    timeout = _get(c, _SERVER, "server", server, "tcp-write-timeout")
    return ListenerLimits(
        clients, min(per_address, clients), float(timeout), _rate_limit(c, server.get("rate-limit"))
    )


def _rate_limit(c: _Checker, spec: object) -> tuple[tuple[str, Any], ...] | None:
    where = "server.rate-limit"
    if spec is None:
        return None
    if not isinstance(spec, dict):
        c.fail(where, "expected a table: rate-limit = { responses-per-second = 5, ... }")
        return None
    _unknown(c, where, spec, options.known(_RATE))
    values: dict[str, Any] = {}
    for opt in spec:
        if opt in RATE_LIMIT_OPTIONS:
            before = len(c.problems)
            v = _get(c, _RATE, where, spec, opt)
            if len(c.problems) == before:
                values[RATE_LIMIT_OPTIONS[opt]] = v
    if "log-only" in spec:
        values["log_only"] = bool(_get(c, _RATE, where, spec, "log-only"))
    if "exempt-clients" in spec:
        nets = _str_list(
            c, f"{where}.exempt-clients", spec["exempt-clients"], "addresses or networks"
        )
        for i, net in enumerate(nets):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                c.fail(f"{where}.exempt-clients[{i}]", f"{net!r} is not an address or network")
        values["exempt_clients"] = tuple(nets)
    return tuple(sorted(values.items()))


def _observe_options(
    c: _Checker, server: dict[str, Any], alerts: object, base: Path
) -> tuple[tuple[Endpoint, ...], tuple[Path, Path] | None, AlertsConfig]:
    """``server.http`` (addresses for the HTTP listener; default none: off),
    ``server.http-tls-cert`` / ``http-tls-key`` (HTTPS; both or neither) and the
    ``[alerts]`` table."""
    tls: tuple[Path, Path] | None = None
    before = len(c.problems)
    cert = _get(c, _SERVER, "server", server, "http-tls-cert")
    key = _get(c, _SERVER, "server", server, "http-tls-key")
    if len(c.problems) > before:
        pass  # reported
    elif (cert is None) != (key is None):
        c.fail("server.http-tls-cert", "give both http-tls-cert and http-tls-key, or neither")
    elif cert is not None:
        tls = (base / cert, base / key)
    raw = server.get("http", [])
    if isinstance(raw, str):
        raw = [raw]
    http: tuple[Endpoint, ...] = ()
    if not isinstance(raw, list):
        c.fail("server.http", 'must be a list of addresses like "127.0.0.1@8053"')
    else:
        http = tuple(
            e
            for i, t in enumerate(raw)
            if (e := c.check(parse_endpoint, f"server.http[{i}]", t, 8053)) is not None
        )
    if alerts is None:
        return http, tls, AlertsConfig()
    if not isinstance(alerts, dict):
        c.fail("alerts", f"expected the [alerts] table, got {_kind(alerts)}")
        return http, tls, AlertsConfig()
    _unknown(c, "alerts", alerts, options.known("alerts"))
    command = alerts.get("command", [])
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not all(isinstance(a, str) and a for a in command):
        c.fail("alerts.command", "expected a program and its arguments (a list of strings)")
        command = []
    webhook = _get(c, "alerts", "alerts", alerts, "webhook")
    if webhook is not None and not re.match(r"^https?://[^/\s]+", webhook):
        c.fail("alerts.webhook", f"expected an http:// or https:// URL, got {webhook!r}")
        webhook = None
    timeout = _get(c, "alerts", "alerts", alerts, "timeout")
    return http, tls, AlertsConfig(tuple(command), webhook, float(timeout))


def _primaries(
    c: _Checker, where: str, items: object, keys: dict[str, TsigKey]
) -> tuple[Primary, ...] | None:
    """The zone's primaries (empty: none configured; None: wrong, reported)."""
    if items is None:
        return ()
    if not isinstance(items, list) or not items:
        c.fail(f"{where}.primaries", "must be a non-empty list of 'address [port N] [key NAME]'")
        return None
    out = []
    for i, item in enumerate(items):
        opt = f"{where}.primaries[{i}]"
        parsed = c.check(parse_remote, opt, item, 53)
        if parsed is None:
            return None
        ep, key = parsed
        if key is not None and key not in keys:
            c.fail(opt, f"unknown TSIG key {key!r}")
            return None
        out.append(Primary(ep, key))
    return tuple(out)


def _check_tsig_secret(c: _Checker, where: str, alg: str, secret: bytes) -> None:
    """RFC 8945 6.2: a secret shorter than the algorithm's output weakens the MAC; an
    empty one lets anyone sign.  Reported on ``c`` (the key stays known, so the options
    naming it do not report it missing as well)."""
    need = hashlib.new(alg.removeprefix("hmac-")).digest_size
    if len(secret) < need:
        c.fail(
            f"{where}.secret",
            f"{len(secret)} octets: {alg} needs at least {need} (RFC 8945 6.2); "
            f"make one with `tsig-keygen -a {alg}`",
        )


def _update_policy(
    c: _Checker, where: str, spec: dict[str, Any], keys: dict[str, TsigKey], policy: str | None
) -> UpdatePolicy | None:
    """The zone's update-policy rules (None: not set); problems reported on ``c``."""
    if "update-policy" not in spec:
        return None
    opt = f"{where}.update-policy"
    if spec.get("allow-update"):
        c.fail(opt, "set either allow-update or update-policy, not both")
        return None
    if policy is None:
        c.fail(opt, "dynamic update needs an inline-signed zone")
        return None
    result: UpdatePolicy | None = c.check(UpdatePolicy.parse, opt, spec["update-policy"], set(keys))
    return result


def _acl_items(
    c: _Checker,
    where: str,
    opt: str,
    items: object,
    acls: dict[str, list[str]],
    keys: dict[str, TsigKey],
) -> tuple[str, ...]:
    """An ACL option's elements with named ACLs expanded; unknown TSIG keys reported."""
    if not isinstance(items, list):
        c.fail(f"{where}.{opt}", f"expected a list of strings, got {_kind(items)}")
        return ()
    out: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            c.fail(f"{where}.{opt}[{i}]", f"expected a string, got {_kind(item)}")
        elif item.lstrip("!") in acls:
            out += [("!" if item.startswith("!") else "") + e for e in acls[item.lstrip("!")]]
        else:
            out.append(item)
    for i, item in enumerate(items):
        if isinstance(item, str):
            problem = _acl_element_problem(item, keys, acls)
            if problem is not None:
                c.fail(f"{where}.{opt}[{i}]", problem)
    return tuple(out)


def _acl_element_problem(
    item: str, keys: dict[str, TsigKey], acls: dict[str, list[str]]
) -> str | None:
    """Why ``item`` is not an ACL element (what ``proto.acl.Acl.parse`` takes, or the name
    of an [acl] list), or None.  Checked here so a bad element stops the server at startup
    instead of failing every request that reaches it."""
    text = item.strip().lstrip("!").strip()
    if text in ("any", "none") or text in acls:
        return None
    if text.startswith("key "):
        name = text[4:].strip()
        if name not in keys:
            return f"unknown TSIG key {name!r}"
        return None
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return (
            f"{item!r} is not an address, network, 'key NAME', 'any', 'none' or the name of "
            "an [acl] list"
        )
    return None


def _endpoints(c: _Checker, option: str, items: object) -> tuple[Endpoint, ...]:
    """A list of ``addr[@port]`` strings (port 53 by default; one string: a list of one)."""
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        c.fail(option, f'expected a list of "ADDR[@PORT]" strings, got {_kind(items)}')
        return ()
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            c.fail(f"{option}[{i}]", f'expected an "ADDR[@PORT]" string, got {_kind(item)}')
        elif (ep := c.check(parse_endpoint, f"{option}[{i}]", item, 53)) is not None:
            out.append(ep)
    return tuple(out)


def load_config(path: Path) -> ServerConfig:
    """Read and check a TOML config file.  Raises StorageError (unreadable),
    FileFormatError (not TOML, with the line) or OptionError (wrong option, with its path)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise StorageError(str(path), e.strerror or str(e)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's message ends "(at line N, column M)" or "(at end of document)".
        msg = str(e)
        m = re.search(r"\(at line (\d+), column \d+\)$", msg)
        line = (
            int(m.group(1)) if m else (text.count("\n") + 1 if "end of document" in msg else None)
        )
        msg = re.sub(r"\s*\(at [^)]*\)$", "", msg)
        if _NAMED_CONF.search(text):
            msg += (
                f" (this looks like a BIND named.conf: convert it with `dnsseal import-bind "
                f"{path} -o dnsseal.toml`; `dnsseal policy check` reads its dnssec-policy blocks)"
            )
        raise FileFormatError(str(path), line, msg) from None
    return parse_config(data, path.parent.resolve(), path)


# A named.conf statement: `options {`, `zone "example.com" {`, `dnssec-policy "x" {`.
_NAMED_CONF = re.compile(
    r'^\s*(options|zone\s+"[^"]*"|dnssec-policy\s+"?[\w.-]+"?|key\s+"[^"]*"|acl\s+"?[\w.-]+"?)'
    r"(\s+\w+)?\s*\{",
    re.MULTILINE,
)


def policies_only(config: ServerConfig) -> str | None:
    """Why ``config`` is a policy file rather than a server config (it defines policies
    but no zone), or None.  ``serve`` refuses such a file, ``checkconf`` warns."""
    if config.zones or not config.policies:
        return None
    return (
        f"defines dnssec-policies ({', '.join(sorted(config.policies))}) but no zones: to serve "
        'zones, add [zone."NAME"] tables, or name this file in server.policies of a server '
        "config (`dnsseal policy check` checks it as it is)"
    )


def default_config(
    zones_dir: Path,
    port: int = DEFAULT_PORT,
    key_dir: Path = Path("keys"),
    state_dir: Path = Path("state"),
) -> ServerConfig:
    """The embedded default: every zone file in ``zones_dir`` (zone name from the file
    name, ``example.com.zone`` / ``.db``) signed inline under the built-in ``default``
    policy with keys in ``key_dir`` and state in ``state_dir``; ``*.signed`` files are
    served as presigned.  127.0.0.1 at ``port``; transfers allowed to loopback.  Raises
    :class:`OptionError` (``--port``) for a port out of range, before anything is made."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise OptionError("--port", f"expected a port number in 1..65535, got {_kind(port)}")
    zones = []
    loopback = ("127.0.0.1", "::1")
    if zones_dir.is_dir():
        for path in sorted(zones_dir.iterdir()):
            if path.is_file() and path.name.endswith(ZONE_SUFFIXES):
                name = path.name
                for suffix in ZONE_SUFFIXES:
                    name = name.removesuffix(suffix)
                presigned = path.name.endswith(".signed")
                zones.append(
                    ZoneConfig(
                        name,
                        path.resolve(),
                        presigned,
                        allow_transfer=loopback,
                        policy=None if presigned else "default",
                        checkds="explicit",
                    )
                )
    return ServerConfig(
        listen=(Endpoint("127.0.0.1", port),),
        control=Path("dnsseal.sock").resolve(),
        zones=tuple(zones),
        state_dir=state_dir.resolve(),
        key_dir=key_dir.resolve(),
    )


EXAMPLE_ZONE = "demo.example"
EXAMPLE_TEXT = """\
; An example zone written by `dnsseal serve` (no zone files were found).  Edit it and
; run `dnsseal ctl reload`: dnsseal signs it again; this file is never modified.
$ORIGIN demo.example.
$TTL 300
@       SOA   ns1 hostmaster 1 3600 900 604800 300
        NS    ns1
        MX    10 mail
        TXT   "dnsseal example zone"
ns1     A     127.0.0.1
mail    A     192.0.2.25
www     A     192.0.2.80
        AAAA  2001:db8::80
*.wild  TXT   "wildcard"
alias   CNAME www
"""


def write_example_zone(zones_dir: Path) -> Path:
    """Create ``zones_dir`` (if needed) and the example zone in it; returns its path.
    Raises StorageError."""
    from dnsseal.storage import atomic

    ensure_dir(zones_dir)
    path = zones_dir / f"{EXAMPLE_ZONE}.zone"
    try:
        atomic.create(path, EXAMPLE_TEXT.encode())
    except OSError as e:
        raise StorageError(str(path), e.strerror or str(e)) from None
    return path


def ensure_dir(path: Path) -> None:
    """Create a state directory (mode 0700) if missing; raises StorageError."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(str(path), f"cannot create directory: {e.strerror or e}") from None


def file_signature(path: Path) -> tuple[int, int]:
    """(mtime_ns, size) of a file, to skip reloading an unchanged zone."""
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


# -- [logging] ------------------------------------------------------------------------------

_LOG = "logging.channel.NAME"
LOG_SEVERITIES = options.option(_LOG, "severity").choices
LOG_CATEGORIES = (
    "general",
    "zone",
    "dnssec",
    "update",
    "xfer",
    "notify",
    "control",
    "security",
)
LOG_DESTINATIONS = options.option(_LOG, "destination").choices
SYSLOG_FACILITIES = options.option(_LOG, "facility").choices
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True, slots=True)
class LogChannel:
    """One place log messages go (BIND's ``channel``): where, from which severity, for
    which categories (empty: all)."""

    name: str
    destination: str = "stderr"
    severity: str = "info"
    categories: tuple[str, ...] = ()
    file: Path | None = None
    size: int = 0  # bytes; 0: never rotate
    versions: int = 3
    facility: str = "daemon"
    address: str = "/dev/log"
    print_time: bool = True


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``: the channels (default: one, stderr at info, every category)."""

    channels: tuple[LogChannel, ...] = (LogChannel("default"),)


def parse_size(text: str | int) -> int:
    """``10k``, ``50M``, ``1G`` or a number of bytes.  Raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a size is not negative")
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)b?\s*", str(text), re.IGNORECASE)
    if m is None:
        raise ValueError(f"expected a size like 10M, 500k or 1048576, got {text!r}")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def parse_logging(raw: object, base: Path) -> LoggingConfig:
    """Check ``[logging]`` (``[logging.channel.NAME]`` tables) and build it.  Raises
    :class:`OptionError` naming the option path, every problem at once."""
    c = _Checker()
    out = _logging(c, raw, base)
    if c.problems:
        if len(c.problems) == 1:
            raise c.problems[0]
        raise OptionError("logging", "several problems:\n  " + "\n  ".join(map(str, c.problems)))
    return out


def _logging(c: _Checker, raw: object, base: Path) -> LoggingConfig:
    if raw is None:
        return LoggingConfig()
    table = _table(c, "logging", raw, "the [logging] table")
    _unknown(c, "logging", table, ("channel",))
    channels = []
    specs = _table(c, "logging.channel", table.get("channel", {}), "[logging.channel.NAME] tables")
    for name, spec in specs.items():
        where = f"logging.channel.{name}"
        if not isinstance(spec, dict):
            c.fail(where, f"expected a table, got {_kind(spec)}")
            continue
        _unknown(c, where, spec, options.known(_LOG))

        def get(opt: str, spec: dict[str, Any] = spec, where: str = where) -> Any:
            return _get(c, _LOG, where, spec, opt)

        if "destination" in spec and get("destination") != spec["destination"]:
            continue  # reported
        dest = get("destination")
        severity = get("severity")
        cats = _str_list(c, f"{where}.categories", spec.get("categories", []), "category names")
        for i, cat in enumerate(cats):
            if cat not in LOG_CATEGORIES:
                c.fail(
                    f"{where}.categories[{i}]",
                    f"unknown category {cat!r} (known: {', '.join(LOG_CATEGORIES)})",
                )
        path: Path | None = None
        if dest == "file":
            f = spec.get("file")
            if not isinstance(f, str) or not f:
                c.fail(f"{where}.file", 'a file channel needs file = "PATH"')
                continue
            path = base / f
        elif "file" in spec:
            c.fail(f"{where}.file", f'only for destination = "file" (this one is {dest})')
        size = 0
        try:
            size = parse_size(spec.get("size", 0))
        except ValueError as e:
            c.fail(f"{where}.size", str(e))
        versions = get("versions")
        facility = get("facility")
        address = get("address")
        if not address:
            c.fail(f"{where}.address", f"expected a socket path or HOST@PORT, got {_kind(address)}")
            address = "/dev/log"
        elif "@" not in address:
            address = str(base / address)
        else:
            c.check(parse_endpoint, f"{where}.address", address, 514)
        print_time = get("print-time")
        channels.append(
            LogChannel(
                name,
                str(dest),
                str(severity),
                tuple(cats),
                path,
                size,
                versions,
                str(facility),
                address,
                print_time,
            )
        )
    return LoggingConfig(tuple(channels)) if channels else LoggingConfig()
