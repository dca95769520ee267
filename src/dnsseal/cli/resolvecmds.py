"""``dnsseal resolve`` (like delv) and ``dnsseal resolver`` (a validating recursive service).

Exit status of ``resolve`` (one row per verdict, see :data:`EXIT`): 0 secure, 2 bogus,
3 insecure, 4 indeterminate (no trust anchor, or no server answered); 1 for usage and file
errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import json
from pathlib import Path
from typing import Any

import click
import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsseal import clock
from dnsseal.durations import parse_duration, parse_when
from dnsseal.errors import InputError, OptionError
from dnsseal.resolver.hints import builtin_root_servers, parse_hints, parse_server
from dnsseal.resolver.recording import Recording
from dnsseal.storage import atomic
from dnsseal.storage.files import read_text
from dnsseal.validator.anchors import AnchorSet, parse_trust_anchors, root_anchors
from dnsseal.validator.machine import Config, Result
from dnsseal.validator.verdict import Security

EXIT: dict[Security, int] = {
    Security.SECURE: 0,
    Security.BOGUS: 2,
    Security.INSECURE: 3,
    Security.INDETERMINATE: 4,
}

# delv's wording for each outcome, so people recognise it.
HEADLINE: dict[Security, str] = {
    Security.SECURE: "fully validated",
    Security.INSECURE: "unsigned answer",
    Security.BOGUS: "validation failed",
    Security.INDETERMINATE: "validation indeterminate",
}


NTA_LIFETIME = 3600  # BIND's nta-lifetime default
PERMANENT = 1 << 62  # domain-insecure: a negative trust anchor that does not expire


def parse_nta(text: str, now: int) -> tuple[dns.name.Name, int]:
    """``ZONE`` or ``ZONE=DURATION`` (ISO 8601 or BIND units) -> (zone, expiry)."""
    zone, sep, life = text.partition("=")
    try:
        name = dns.name.from_text(zone)
    except dns.exception.DNSException as e:
        raise OptionError("--nta", f"{zone!r}: {e}") from None
    try:
        seconds = parse_duration(life) if sep else NTA_LIFETIME
    except InputError as e:
        raise OptionError("--nta", str(e)) from None
    return name, now + seconds


def build_config(
    anchor_file: str | None,
    hints_file: str | None,
    server: str | None,
    port: int,
    minimise: bool,
    ntas: tuple[str, ...] = (),
) -> Config:
    """Anchors (-a file, else the built-in root anchors) with negative trust anchors,
    starting servers (@SERVER, else --root-hints, else the IANA root servers) and options
    as a machine Config."""
    anchors: AnchorSet = (
        parse_trust_anchors(read_text(anchor_file), anchor_file) if anchor_file else root_anchors()
    )
    now = clock.now()
    for text in ntas:
        anchors = anchors.with_negative(*parse_nta(text, now))
    if server is not None:
        roots: tuple[tuple[str, int], ...] = (parse_server(server, port),)
        port = roots[0][1]  # address#port: servers learnt from glue use it too
    elif hints_file is not None:
        roots = parse_hints(read_text(hints_file), hints_file, port)
    else:
        roots = builtin_root_servers(port)
    return Config(roots, anchors, minimise=minimise, port=port)


def _split_args(args: tuple[str, ...]) -> tuple[str, str, str | None]:
    name: str | None = None
    rdtype: str | None = None
    server: str | None = None
    for a in args:
        if a.startswith("@"):
            server = a[1:]
            continue
        if rdtype is None and name is not None:
            try:
                dns.rdatatype.from_text(a)
                rdtype = a.upper()
                continue
            except dns.rdatatype.UnknownRdatatype:
                pass
        if name is None:
            name = a
        else:
            raise OptionError("ARGS", f"unexpected argument {a!r}")
    if name is None:
        raise OptionError("NAME", "a name to resolve is required")
    return name, rdtype or "A", server


def result_dict(r: Result) -> dict[str, Any]:
    return {
        "name": r.qname.to_text(),
        "type": dns.rdatatype.to_text(dns.rdatatype.RdataType.make(r.rdtype)),
        "rcode": dns.rcode.to_text(dns.rcode.Rcode.make(r.rcode)),
        "verdict": r.verdict.to_dict(),
        "answer": [line for rrset in r.answer for line in rrset.to_text().splitlines()],
        "authority": [line for rrset in r.authority for line in rrset.to_text().splitlines()],
        "chain": [link.to_dict() for link in r.links],
        "spent": r.spent,
    }


def _print_text(r: Result, explain: bool) -> None:
    if explain:
        for link in r.links:
            click.echo(f";; [{link.security.value:>13}] {link.zone:<24} {link.kind:<7} {link.text}")
    head = HEADLINE[r.verdict.security]
    negative = r.rcode == dns.rcode.NXDOMAIN or not any(x.rdtype == r.rdtype for x in r.answer)
    if negative and r.rcode != dns.rcode.SERVFAIL:
        head = f"negative response, {head}"
    click.echo(f"; {head}: {r.verdict.reason}")
    if r.verdict.ede is not None:
        click.echo(f"; EDE: {r.verdict.ede} ({r.verdict.ede_name})")
    click.echo(f"; rcode: {dns.rcode.to_text(dns.rcode.Rcode.make(r.rcode))}")
    bogus = r.verdict.security is Security.BOGUS
    if bogus and r.answer:
        click.echo("; the data below failed validation; shown for diagnosis only:")
    for rrset in r.answer:
        for line in rrset.to_text().splitlines():
            click.echo(f";{line}" if bogus else line)


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="NAME [TYPE] [@SERVER]")
@click.option(
    "-a", "anchor_file", metavar="FILE", help="trust-anchors { ... }; file (like delv -a)."
)
@click.option("--root-hints", "hints_file", metavar="FILE", help="named.root-style root hints.")
@click.option("-p", "--port", default=53, show_default=True, help="Port for all servers.")
@click.option(
    "--nta",
    "ntas",
    multiple=True,
    metavar="ZONE[=DURATION]",
    help="Negative trust anchor (RFC 7646): do not validate ZONE and below, for DURATION "
    "(default 1h).  Repeatable.",
)
@click.option("--explain", is_flag=True, help="Print each link of the chain of trust.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-minimise", is_flag=True, help="Send full query names (no RFC 9156).")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds per upstream try.")
@click.option("--record", "record_file", metavar="FILE", help="Save every upstream reply to FILE.")
@click.option(
    "--replay",
    "replay_file",
    metavar="FILE",
    help="Answer from a --record FILE instead of the network (no sockets).",
)
@click.option(
    "--now",
    "now_text",
    metavar="TIME",
    help="Validate as of TIME (YYYYMMDDHHMMSS, epoch seconds, now+1d, ...); with --replay "
    "the default is when the recording was made.",
)
def resolve(
    args: tuple[str, ...],
    anchor_file: str | None,
    hints_file: str | None,
    port: int,
    ntas: tuple[str, ...],
    explain: bool,
    as_json: bool,
    no_minimise: bool,
    timeout: float,
    record_file: str | None,
    replay_file: str | None,
    now_text: str | None,
) -> None:
    """Resolve NAME from the root and validate it, like delv.

    @SERVER (an address, or address#port) starts the iteration there instead of at the
    root servers (or --root-hints); -p sets the port for every server.  Without -a the
    built-in root trust anchors (KSK-2017, KSK-2024) are used.

    Exit status: 0 secure, 2 bogus, 3 insecure, 4 indeterminate, 1 on errors.
    """
    from dnsseal.resolver.engine import Resolver
    from dnsseal.resolver.transport import network_transport

    name, rdtype, server = _split_args(args)
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException as e:
        raise OptionError("NAME", f"{name!r}: {e}") from None
    if record_file and replay_file:
        raise OptionError("--record", "cannot be combined with --replay")
    config = build_config(anchor_file, hints_file, server, port, not no_minimise, ntas)
    transport = network_transport(timeout)
    now = clock.now()
    recording = Recording(now)
    if replay_file:
        recording = Recording.from_json(read_text(replay_file), replay_file)
        transport = recording.player()
        now = recording.made_at
    elif record_file:
        transport = recording.recorder(transport)
    if now_text:
        try:
            pinned = parse_when(now_text, now)
        except InputError as e:
            raise OptionError("--now", str(e)) from None
        if pinned is None:
            raise OptionError("--now", "a time is required")
        now = pinned
    fixed = now
    resolver = Resolver(
        config, transport, (lambda: fixed) if (replay_file or now_text) else clock.now
    )
    result = asyncio.run(resolver.resolve(qname, rdtype))
    if record_file:
        atomic.replace(Path(record_file), recording.to_json().encode())
    if as_json:
        click.echo(json.dumps(result_dict(result), indent=2))
    else:
        _print_text(result, explain)
    raise SystemExit(EXIT[result.verdict.security])


@click.command()
@click.option("--listen", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "listen_port", default=53, show_default=True, help="Port to bind.")
@click.option("-a", "anchor_file", metavar="FILE", help="trust-anchors { ... }; file.")
@click.option("--root-hints", "hints_file", metavar="FILE", help="named.root-style root hints.")
@click.option("--upstream-port", default=53, show_default=True, help="Port of upstream servers.")
@click.option(
    "--nta",
    "ntas",
    multiple=True,
    metavar="ZONE[=DURATION]",
    help="Negative trust anchor (RFC 7646): do not validate ZONE and below, for DURATION "
    "(default 1h).  Repeatable.",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="NETWORK",
    help="Clients allowed to query (CIDR, repeatable; default 127.0.0.0/8 and ::1).",
)
@click.option(
    "--state",
    "state_file",
    metavar="FILE",
    help="Keep initial-key/initial-ds anchors current (RFC 5011); state kept in FILE.",
)
@click.option("--no-minimise", is_flag=True, help="Send full query names (no RFC 9156).")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds per upstream try.")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="TOML file whose [resolver] section sets stub-zone, forward-zone, aggressive-nsec, "
    "cache-size and domain-insecure (Unbound's names), http (where /metrics is served) and "
    "resolver-query-timeout and servfail-ttl (BIND's).",
)
@click.option(
    "--udp-threads",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads answering the UDP socket (repeated questions are answered there).",
)
def resolver(
    listen: str,
    listen_port: int,
    anchor_file: str | None,
    hints_file: str | None,
    upstream_port: int,
    ntas: tuple[str, ...],
    allow: tuple[str, ...],
    state_file: str | None,
    no_minimise: bool,
    timeout: float,
    config_file: str | None,
    udp_threads: int,
) -> None:
    """Run a validating recursive resolver: AD on secure answers, SERVFAIL with an
    Extended DNS Error on bogus ones, CD honoured."""
    from dnsseal.resolver.service import serve_forever
    from dnsseal.resolver.settings import ResolverSettings, parse_settings
    from dnsseal.server import counters
    from dnsseal.server import udp as server_udp

    config = build_config(anchor_file, hints_file, None, upstream_port, not no_minimise, ntas)
    settings = ResolverSettings()
    if config_file:
        settings = parse_settings(read_text(config_file), config_file, upstream_port)
        anchors = config.anchors
        for name in settings.insecure:
            anchors = anchors.with_negative(name, PERMANENT)
        config = dataclasses.replace(
            config,
            anchors=anchors,
            stubs=settings.stubs,
            forwards=settings.forwards,
            forward_first=frozenset(settings.forward_first),
            stub_first=frozenset(settings.stub_first),
            query_timeout=settings.query_timeout_ms / 1000,
            servfail_ttl=settings.servfail_ttl,
        )
    for net in allow:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as e:
            raise OptionError("--allow", str(e)) from None
    state = Path(state_file) if state_file else None
    # The authoritative server's query counters and C datagram loop (where built, and not
    # switched off with DNSSEAL_UDP_LOOP=python), which adds its answers to the counters.
    queries = counters.QueryCounts(1)
    native = None
    if server_udp._udpfast and server_udp.native_loop():
        native = functools.partial(server_udp._udpfast.Loop, counts=queries.buffer())
    asyncio.run(
        serve_forever(
            config,
            listen,
            listen_port,
            timeout=timeout,
            state_file=state,
            allow=allow,
            aggressive_nsec=settings.aggressive_nsec,
            cache_bytes=settings.cache_bytes,
            native=native,
            udp_threads=udp_threads,
            queries=queries,
            http=settings.http,
        )
    )
