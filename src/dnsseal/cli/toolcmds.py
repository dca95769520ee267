"""The tools BIND operators reach for: ``checkconf`` (named-checkconf), ``checkzone``
(named-checkzone), ``tsig-keygen`` and ``journalprint`` (named-journalprint).

Output and exit status follow BIND's tools: problems one per line, ``zone NAME/IN: loaded
serial N`` for a zone that loads, exit status 1 when anything is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

import click
import dns.exception
import dns.name
import dns.rdatatype

from dnsseal.errors import DnssealError, OptionError, StorageError
from dnsseal.resolver.settings import parse_settings
from dnsseal.server.views import iso_time
from dnsseal.storage.journal import Journal
from dnsseal.storage.serverconfig import (
    TSIG_ALGORITHMS,
    ServerConfig,
    ZoneConfig,
    load_config,
    policies_only,
)
from dnsseal.storage.zonefile import read_zone
from dnsseal.zone.checks import ERROR, check_zone
from dnsseal.zone.model import Zone

# Whole-zone load errors (no line to point at) in named-checkzone's words.
_BIND_WORDS = (
    (re.compile(r"no NS records at the zone apex"), "has no NS records"),
    (re.compile(r"no SOA", re.IGNORECASE), "has 0 SOA records"),
)


def _load_error(label: str, e: DnssealError) -> list[str]:
    for pattern, words in _BIND_WORDS:
        if pattern.search(str(e)):
            return [f"{label}: {words}", f"{label}: not loaded due to errors."]
    return [str(e), f"{label}: not loaded due to errors."]


def _zone_label(name: str) -> str:
    return f"zone {name.rstrip('.') or '.'}/IN"


def _load_checked(name: str, path: Path, presigned: bool = False) -> tuple[Zone | None, list[str]]:
    """Load and check one zone: (the zone or None, lines to print).  The zone is None
    when it would not load (an error)."""
    label = _zone_label(name)
    try:
        zone = read_zone(path, name)
    except DnssealError as e:
        return None, _load_error(label, e)
    lines = []
    errors = False
    for f in check_zone(zone):
        lines.append(f"{label}: {f}")
        errors = errors or f.severity == ERROR
    if presigned and zone.get(zone.origin, dns.rdatatype.DNSKEY) is None:
        lines.append(f"{label}: presigned but not signed: no DNSKEY at the apex")
        errors = True
    if errors:
        return None, [*lines, f"{label}: not loaded due to errors."]
    return zone, [*lines, f"{label}: loaded serial {zone.soa().serial}"]


@click.command("checkzone")
@click.option("-q", "quiet", is_flag=True, help="Quiet: the exit status says it all.")
@click.argument("zone")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def checkzone(quiet: bool, zone: str, file: Path) -> None:
    """Check a zone file as named-checkzone does: syntax (with file and line), CNAME and
    other data, out-of-zone data, the apex SOA and NS, and the integrity checks (an NS
    without address records is an error; an MX or SRV pointing to a CNAME or to a name
    without addresses, a delegation without glue, are warnings).  Prints `zone
    ZONE/IN: loaded serial N` and OK, exit status 0; or the problems, exit status 1."""
    try:
        dns.name.from_text(zone)
    except dns.exception.DNSException as e:
        raise OptionError("ZONE", f"{zone!r} is not a domain name: {e}") from None
    loaded, lines = _load_checked(zone, file)
    if not quiet:
        for line in lines:
            click.echo(line)
        if loaded is not None:
            click.echo("OK")
    if loaded is None:
        raise SystemExit(1)


def _config_problems(e: OptionError) -> list[str]:
    """One line per problem of a config file (OptionError holds several in one message)."""
    text = str(e)
    if "several problems:\n" not in text:
        return [text]
    _, _, rest = text.partition("several problems:\n")
    return [line.strip() for line in rest.splitlines() if line.strip()]


def _zone_lines(z: ZoneConfig) -> tuple[bool, list[str]]:
    if z.primaries:
        return True, [f"{_zone_label(z.name)}: transferred from its primaries: not loaded here"]
    loaded, lines = _load_checked(z.name, z.file, presigned=z.presigned)
    return loaded is not None, lines


def _resolver_problems(file: Path) -> list[str]:
    """The problems of the file's ``[resolver]`` section (read by ``dnsseal resolver
    --config``; the authoritative server leaves it alone)."""
    text = file.read_text()
    if "resolver" not in text:
        return []
    try:
        parse_settings(text, str(file))
    except OptionError as e:
        return _config_problems(e)
    except DnssealError as e:
        return [str(e)]
    return []


@click.command("checkconf")
@click.option(
    "-z", "load_zones", is_flag=True, help="Load every zone file too (as named-checkconf -z)."
)
@click.option("-q", "quiet", is_flag=True, help="Quiet: the exit status says it all.")
@click.argument(
    "file", type=click.Path(path_type=Path, dir_okay=False), default=Path("dnsseal.toml")
)
def checkconf(load_zones: bool, quiet: bool, file: Path) -> None:
    """Check a server configuration (default ./dnsseal.toml) as named-checkconf does: every
    problem on its own line with its option path (`zone."example.com".allow-transfer[1]`),
    exit status 1.  With -z, also load and check every zone file (as `dnsseal checkzone`)
    and print `zone NAME/IN: loaded serial N` for each."""
    problems: list[str] = []
    config: ServerConfig | None = None
    try:
        config = load_config(file)
    except OptionError as e:
        problems = _config_problems(e)
    except DnssealError as e:
        problems = [str(e)]
    problems += _resolver_problems(file) if config is not None else []
    ok = not problems
    lines = [f"{file}: {p}" if not p.startswith(str(file)) else p for p in problems]
    if ok and config is not None and (why := policies_only(config)) is not None:
        lines.append(f"{file}: warning: {why}")
    if config is not None and load_zones:
        for z in sorted(config.zones, key=lambda z: z.name):
            zone_ok, zlines = _zone_lines(z)
            ok = ok and zone_ok
            lines += zlines
    if not quiet:  # all on stdout, as named-checkconf
        for line in lines:
            click.echo(line)
    if not ok:
        raise SystemExit(1)


@click.command("tsig-keygen")
@click.option(
    "-a",
    "algorithm",
    type=click.Choice(sorted(TSIG_ALGORITHMS), case_sensitive=False),
    default="hmac-sha256",
    show_default=True,
    help="HMAC algorithm.",
)
@click.option(
    "--toml",
    "as_toml",
    is_flag=True,
    help='Print a [key."NAME"] table for dnsseal.toml instead of a named.conf key clause.',
)
@click.argument("name", default="tsig-key")
def tsig_keygen(algorithm: str, as_toml: bool, name: str) -> None:
    """Make a TSIG key (RFC 8945) as BIND's tsig-keygen does: a random secret as long as
    the algorithm's output (RFC 8945 6.2), printed as a named.conf `key` clause (for named,
    nsupdate -k, or `dnsseal import-bind`), or with --toml as a table for dnsseal.toml."""
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException as e:
        raise OptionError("NAME", f"{name!r} is not a valid key name: {e}") from None
    if '"' in name or "\\" in name:
        raise OptionError("NAME", f"{name!r}: no quotes or backslashes in a key name")
    algorithm = algorithm.lower()
    size = hashlib.new(algorithm.removeprefix("hmac-")).digest_size
    secret = base64.b64encode(os.urandom(size)).decode()
    if as_toml:
        click.echo(f'[key."{name}"]\nalgorithm = "{algorithm}"\nsecret = "{secret}"')
    else:
        click.echo(f'key "{name}" {{\n\talgorithm {algorithm};\n\tsecret "{secret}";\n}};')


@click.command("journalprint")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The server configuration (its server.state-dir holds the journal).",
)
@click.option(
    "-s",
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The state directory (default: from -c, else ./state).",
)
@click.option("-x", "extra", is_flag=True, help="Also print each change's serials, time and cause.")
@click.argument("zone")
def journalprint(config_path: Path | None, state_dir: Path | None, extra: bool, zone: str) -> None:
    """Print a zone's journal as named-journalprint does: every change since the base
    version, one `del RECORD` / `add RECORD` line per record, oldest first.  With -x, a
    line before each change: `serial FROM -> TO at TIME (CAUSE)`.  The journal is read,
    never written (a running server may keep using it)."""
    if state_dir is None:
        if config_path is not None:
            sd = load_config(config_path).state_dir
            if sd is None:
                raise OptionError("server.state-dir", f"{config_path} configures no state dir")
            state_dir = sd
        else:
            state_dir = Path("state")
    path = state_dir / Journal.FILENAME
    if not path.is_file():
        raise StorageError(str(path), "no journal here (is this the server's state-dir?)")
    with Journal(state_dir) as j:
        base = j.base(zone)
        txns = j.transactions(zone)
    if base is None:
        raise StorageError(str(path), f"no zone {zone!r} in the journal")
    if extra:
        click.echo(
            f"base: serial {base.serial} at {iso_time(base.time)}, {len(base.records)} records"
        )
    for t in txns:
        if extra:
            click.echo(
                f"serial {t.serial_from} -> {t.serial_to} at {iso_time(t.time)} ({t.origin})"
            )
        for r in t.removed:
            click.echo(f"del {r}")
        for r in t.added:
            click.echo(f"add {r}")
