"""The authoritative server's configuration (TOML) and its zone files.

Reads ``dnsseal.toml`` into a checked, frozen :class:`ServerConfig`; every problem is
reported with its option path (``zone."example.com".allow-transfer[1]``), all problems of a
file at once.  Relative paths are relative to the config file's directory.  Example::

    [server]
    listen = ["127.0.0.1@5300", "::1@5300"]
    control = "dnsseal.sock"          # unix control socket for `dnsseal ctl` (mode 0600)
    tcp-idle-timeout = 10             # seconds
    workers = 2                       # processes sharing the ports (SO_REUSEPORT)
    state-dir = "state"               # journal, signed zones: survive restarts
    key-directory = "keys"            # BIND key files of inline-signed zones (default: keys)
    policies = "policies.toml"        # [policy.NAME] dnssec-policy tables (or a named.conf)
    ixfr-versions = 10                # older zone versions kept for IXFR
    resolvers = ["127.0.0.1@5399"]    # recursive resolvers for checkds = "yes" without
                                      # parental-agents (default: /etc/resolv.conf)
    query-port = 53                   # port of the parent's name servers found through
                                      # them (BIND's `port`; tests and labs change it)

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

    [zone."example.net"]              # bump in the wire: signs a zone transferred in
    primaries = ["192.0.2.1", "192.0.2.2 port 5301 key xfr"]   # hidden primaries
    dnssec-policy = "default"         # (no `file`: the copy is kept in state-dir/
                                      #  example.net.xfr; the primary is never changed)

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

``primaries`` (bump in the wire): the zone's unsigned data comes by IXFR/AXFR from these
servers (``addr[@port] [port N] [key NAME]``, TSIG with key NAME), checked on the SOA's
refresh timer (retry on failure) and at once on a NOTIFY from one of them.  The transferred
copy is stored in the state directory and signed like a ``file``; ``file`` and ``primaries``
exclude each other.  A failed or malformed transfer leaves the previous data served.

This module only reads files; it never binds sockets or parses DNS messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.tsig
import dns.zone

from dnsseal.errors import DnssealError, FileFormatError, OptionError, StorageError
from dnsseal.policy.build import lookup as lookup_policy
from dnsseal.policy.grants import UpdatePolicy
from dnsseal.policy.model import Policy
from dnsseal.storage.config import load_policies
from dnsseal.storage.remotes import Endpoint, Primary, parse_endpoint, parse_remote

__all__ = [  # Endpoint, Primary and parse_endpoint live in storage.remotes
    "CHECKDS_MODES",
    "DEFAULT_PORT",
    "EXAMPLE_TEXT",
    "EXAMPLE_ZONE",
    "TSIG_ALGORITHMS",
    "Endpoint",
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
SERVER_OPTIONS = {
    "listen",
    "control",
    "tcp-idle-timeout",
    "ixfr-versions",
    "udp-payload",
    "workers",
    "state-dir",
    "key-directory",
    "policies",
    "resolvers",
    "query-port",
}
ZONE_OPTIONS = {
    "file",
    "presigned",
    "dnssec-policy",
    "policy",
    "allow-transfer",
    "allow-update",
    "update-policy",
    "also-notify",
    "notify-key",
    "parental-agents",
    "checkds",
    "primaries",
}
CHECKDS_MODES = ("yes", "explicit", "no")
# DS automation (docs/ds-automation.md): the parental agent and the signaling zone.
DS_ZONE_OPTIONS = {"ds-automation", "signaling", "dsync", "ds-trust-anchors", "ds-root",
                   "ds-interval", "ds-ttl"}  # fmt: skip
ZONE_OPTIONS |= DS_ZONE_OPTIONS


@dataclass(frozen=True, slots=True)
class DsAutomation:
    """``ds-automation = true``: act on the children's CDS/CDNSKEY (this zone is their
    parent); ``signaling = true``: this zone (``_signal.<ns host>``) carries the RFC 9615
    signaling records of the zones served here.  ``trust_anchors`` / ``root``: where
    validation of signaling names starts; ``interval``: seconds between scans; ``ttl``:
    the DS TTL (low for ``interval * 10`` after a change); ``dsync``: publish DSYNC."""

    parent: bool = False
    signaling: bool = False
    dsync: bool = False
    trust_anchors: Path | None = None
    root: tuple[Endpoint, ...] = ()
    interval: float = 60.0
    ttl: int = 3600


def ds_automation_options(
    c: _Checker, where: str, spec: dict[str, Any], base: Path, policy: object
) -> DsAutomation | None:
    """The DS automation options of one zone (None when it has none)."""
    if not any(k in spec for k in DS_ZONE_OPTIONS):
        return None
    flags = {}
    for opt in ("ds-automation", "signaling", "dsync"):
        value = spec.get(opt, False)
        if not isinstance(value, bool):
            c.fail(f"{where}.{opt}", "must be true or false")
            value = False
        flags[opt] = value
    if (flags["ds-automation"] or flags["signaling"]) and policy is None:
        c.fail(f"{where}.dnssec-policy", "ds-automation and signaling need inline signing")
    if flags["signaling"] and not where.split('"')[1].lower().startswith("_signal."):
        c.fail(f"{where}.signaling", "a signaling zone is named _signal.<name server host>")
    anchors = spec.get("ds-trust-anchors")
    if anchors is not None and not isinstance(anchors, str):
        c.fail(f"{where}.ds-trust-anchors", "must be a path string")
        anchors = None
    roots = spec.get("ds-root", [])
    if isinstance(roots, str):
        roots = [roots]
    root = tuple(
        e
        for i, t in enumerate(roots)
        if (e := c.check(parse_endpoint, f"{where}.ds-root[{i}]", t, 53)) is not None
    )
    if bool(anchors) != bool(root):
        c.fail(f"{where}.ds-root", "ds-root and ds-trust-anchors go together")
    interval = spec.get("ds-interval", 60)
    if not isinstance(interval, int | float) or interval <= 0:
        c.fail(f"{where}.ds-interval", f"must be a positive number of seconds, got {interval!r}")
        interval = 60
    ttl = spec.get("ds-ttl", 3600)
    if not isinstance(ttl, int) or not 0 <= ttl < 2**31:
        c.fail(f"{where}.ds-ttl", f"must be a TTL in seconds, got {ttl!r}")
        ttl = 3600
    return DsAutomation(
        flags["ds-automation"],
        flags["signaling"],
        flags["dsync"],
        base / anchors if anchors else None,
        root,
        float(interval),
        ttl,
    )


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
    ds: DsAutomation | None = None  # ds-automation / signaling (docs/ds-automation.md)


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


def parse_config(data: dict[str, Any], base: Path, source: Path | None = None) -> ServerConfig:
    """Check a parsed TOML document and build the config.  Raises :class:`OptionError`
    naming the option path (all problems in one message when there are several)."""
    c = _Checker()
    for top in data:
        if top not in ("server", "key", "acl", "zone"):
            c.fail(top, "unknown section (expected server, key, acl, zone)")
    server = data.get("server", {})
    if not isinstance(server, dict):
        server = {}
        c.fail("server", "must be a table")
    for opt in server:
        if opt not in SERVER_OPTIONS:
            c.fail(f"server.{opt}", f"unknown option (known: {', '.join(sorted(SERVER_OPTIONS))})")
    listen_raw = server.get("listen", [f"127.0.0.1@{DEFAULT_PORT}"])
    if isinstance(listen_raw, str):
        listen_raw = [listen_raw]
    listen = tuple(
        e
        for i, t in enumerate(listen_raw)
        if (e := c.check(parse_endpoint, f"server.listen[{i}]", t, DEFAULT_PORT)) is not None
    )
    control = server.get("control")
    if control is not None and not isinstance(control, str):
        c.fail("server.control", "must be a path string")
        control = None
    idle = server.get("tcp-idle-timeout", 10)
    if not isinstance(idle, int | float) or idle <= 0:
        c.fail("server.tcp-idle-timeout", f"must be a positive number of seconds, got {idle!r}")
        idle = 10
    versions = server.get("ixfr-versions", 10)
    if not isinstance(versions, int) or versions < 0:
        c.fail("server.ixfr-versions", f"must be a non-negative integer, got {versions!r}")
        versions = 10
    state_dir = server.get("state-dir")
    if state_dir is not None and not isinstance(state_dir, str):
        c.fail("server.state-dir", "must be a path string")
        state_dir = None
    key_dir = server.get("key-directory")
    if key_dir is not None and not isinstance(key_dir, str):
        c.fail("server.key-directory", "must be a path string")
        key_dir = None
    policies: dict[str, Policy] = {}
    pfile = server.get("policies")
    if pfile is not None:
        if not isinstance(pfile, str):
            c.fail("server.policies", "must be a path string")
        else:
            try:
                policies = load_policies(base / pfile)
            except DnssealError as e:
                c.fail("server.policies", str(e))
    workers = server.get("workers", 1)
    if not isinstance(workers, int) or not 1 <= workers <= 256:
        c.fail("server.workers", f"must be an integer in 1..256, got {workers!r}")
        workers = 1
    resolvers: tuple[Endpoint, ...] | None = None
    if "resolvers" in server:
        items = server["resolvers"]
        if not isinstance(items, list) or not items:
            c.fail("server.resolvers", "must be a non-empty list of addresses")
        else:
            resolvers = tuple(
                r[0]
                for i, t in enumerate(items)
                if (r := c.check(parse_remote, f"server.resolvers[{i}]", t, 53)) is not None
            )
    query_port = server.get("query-port", 53)
    if not isinstance(query_port, int) or not 0 < query_port < 65536:
        c.fail("server.query-port", f"must be a port number, got {query_port!r}")
        query_port = 53
    payload = server.get("udp-payload", 1232)
    if not isinstance(payload, int) or not 512 <= payload <= 4096:
        c.fail("server.udp-payload", f"must be an integer in 512..4096, got {payload!r}")
        payload = 1232

    keys: dict[str, TsigKey] = {}
    for name, spec in data.get("key", {}).items():
        where = f"key.{name}"
        if not isinstance(spec, dict):
            c.fail(where, "must be a table with algorithm and secret")
            continue
        alg = spec.get("algorithm", "hmac-sha256")
        if alg not in TSIG_ALGORITHMS:
            c.fail(f"{where}.algorithm", f"unknown {alg!r} (known: {', '.join(TSIG_ALGORITHMS)})")
            continue
        try:
            secret = base64.b64decode(spec["secret"], validate=True)
        except KeyError:
            c.fail(f"{where}.secret", "missing")
            continue
        except (binascii.Error, TypeError, ValueError):
            c.fail(f"{where}.secret", "is not valid base64")
            continue
        _check_tsig_secret(c, where, alg, secret)
        keys[name] = TsigKey(name, alg, secret)

    acls: dict[str, list[str]] = {}
    for name, items in data.get("acl", {}).items():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            c.fail(f"acl.{name}", "must be a list of strings")
            continue
        acls[name] = items

    zones: list[ZoneConfig] = []
    zone_tables = data.get("zone", {})
    if not isinstance(zone_tables, dict):
        c.fail("zone", 'must be tables: [zone."example.com"]')
        zone_tables = {}
    for zname, spec in zone_tables.items():
        where = _zone_key(zname)
        if not isinstance(spec, dict):
            c.fail(where, "must be a table")
            continue
        for opt in spec:
            if opt not in ZONE_OPTIONS:
                c.fail(
                    f"{where}.{opt}", f"unknown option (known: {', '.join(sorted(ZONE_OPTIONS))})"
                )
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
            if spec.get("dnssec-policy", spec.get("policy")) is None:
                c.fail(
                    f"{where}.primaries",
                    "bump in the wire needs a dnssec-policy (dnsseal signs what it transfers)",
                )
                continue
            if state_dir is None:
                c.fail(f"{where}.primaries", "transferring a zone in needs server.state-dir")
                continue
            zfile = f"{state_dir}/{copy_name(zname)}.xfr"
        elif "file" not in spec or not isinstance(spec["file"], str):
            c.fail(f"{where}.file", "missing (the zone file path, or primaries)")
            continue
        else:
            zfile = spec["file"]
        presigned = spec.get("presigned", False)
        if not isinstance(presigned, bool):
            c.fail(f"{where}.presigned", "must be true or false")
            continue
        policy = spec.get("dnssec-policy", spec.get("policy"))
        if policy is not None:
            if not isinstance(policy, str):
                c.fail(f"{where}.dnssec-policy", "must be a policy name")
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
        agents = tuple(
            ep
            for i, t in enumerate(spec.get("parental-agents", []))
            if (ep := c.check(parse_endpoint, f"{where}.parental-agents[{i}]", t, 53)) is not None
        )
        checkds = spec.get("checkds", "yes" if agents else "explicit")
        if checkds not in CHECKDS_MODES:
            c.fail(f"{where}.checkds", f"must be one of {', '.join(CHECKDS_MODES)}")
            checkds = "explicit"
        notify = tuple(
            ep
            for i, t in enumerate(spec.get("also-notify", []))
            if (ep := c.check(parse_endpoint, f"{where}.also-notify[{i}]", t, 53)) is not None
        )
        nkey = spec.get("notify-key")
        if nkey is not None and nkey not in keys:
            c.fail(f"{where}.notify-key", f"unknown TSIG key {nkey!r}")
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
                ds_automation_options(c, where, spec, base, policy),
            )
        )
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
    )


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
        c.fail(f"{where}.{opt}", "must be a list of strings")
        return ()
    out: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            c.fail(f"{where}.{opt}[{i}]", "must be a string")
        elif item.lstrip("!") in acls:
            out += [("!" if item.startswith("!") else "") + e for e in acls[item.lstrip("!")]]
        else:
            out.append(item)
    for i, item in enumerate(out):
        ref = item.lstrip("!").strip()
        if ref.startswith("key ") and ref[4:].strip() not in keys:
            c.fail(f"{where}.{opt}[{i}]", f"unknown TSIG key {ref[4:].strip()!r}")
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
        raise FileFormatError(str(path), line, re.sub(r"\s*\(at [^)]*\)$", "", msg)) from None
    return parse_config(data, path.parent.resolve(), path)


def default_config(
    zones_dir: Path,
    port: int = DEFAULT_PORT,
    key_dir: Path = Path("keys"),
    state_dir: Path = Path("state"),
) -> ServerConfig:
    """The embedded default: every zone file in ``zones_dir`` (zone name from the file
    name, ``example.com.zone`` / ``.db``) signed inline under the built-in ``default``
    policy with keys in ``key_dir`` and state in ``state_dir``; ``*.signed`` files are
    served as presigned.  127.0.0.1 at ``port``; transfers allowed to loopback."""
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
