"""The server's log: ``[logging]`` channels (stderr, a file with size rotation, syslog),
severities and categories, as BIND's ``logging { channel ...; category ...; }``.

Every module logs through its own logger (``dnsseal.server.xfrin`` ...); a message's
category comes from :data:`CATEGORY_RULES`, a table of (logger prefix, message pattern,
category) rows, first match wins.  Without ``[logging]`` the server writes every category
from ``info`` up to stderr: zone loads and signings (serial, time taken), key events,
updates, transfers and NOTIFY.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import socket
import sys
import time
from collections.abc import Sequence

from dnsseal.storage.serverconfig import LogChannel, LoggingConfig, parse_endpoint

NOTICE = 25  # syslog's notice, between INFO and WARNING (BIND's severity notice)
logging.addLevelName(NOTICE, "NOTICE")
SEVERITY_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "notice": NOTICE,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

# (logger name prefix, pattern the message must match or None, category): first match wins
CATEGORY_RULES: tuple[tuple[str, str | None, str], ...] = (
    ("dnsseal.proto.tsigauth", None, "security"),
    ("dnsseal", r"\bTSIG\b|rate limit|not allowed|refused by ACL", "security"),
    ("dnsseal", r"\bNOTIFY\b", "notify"),
    ("dnsseal", r"\bUPDATE\b|\bfrozen\b|\bthawed\b", "update"),
    ("dnsseal.server.xfrin", None, "xfer"),
    ("dnsseal", r"\b(AXFR|IXFR|transfer\w*|refresh)\b", "xfer"),
    ("dnsseal.server.control", None, "control"),
    ("dnsseal.server.zonectl", r"\bsynced\b", "control"),
    ("dnsseal.server.dnssecctl", None, "control"),
    ("dnsseal.server.observe", None, "control"),
    ("dnsseal", r"DNSSEC|\bkey\b|\bkeys\b|sign", "dnssec"),
    ("dnsseal.server.checkds", None, "dnssec"),
    ("dnsseal.keymgr", None, "dnssec"),
    ("dnsseal.signer", None, "dnssec"),
    ("dnsseal.server.inline", None, "zone"),
    ("dnsseal.server.zones", None, "zone"),
    ("dnsseal.server.zonectl", None, "zone"),
    ("dnsseal.server.history", None, "zone"),
    ("dnsseal", r"\bloaded\b|\bnot loaded\b|\breload", "zone"),
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _needles(pattern: str) -> tuple[str, ...]:
    r"""Words of which a message must hold one for ``pattern`` to match it: its
    alternatives (one level of group) without their ``\b`` and a trailing ``\w*``.  A
    rule's regex runs only on a message holding one of its words: most lines hold none,
    and a regex starting with ``\b`` tries every position of the line (a few microseconds
    a line, each rule)."""
    words = tuple(
        alt.strip("()").removesuffix(r"\w*") for alt in pattern.replace(r"\b", "").split("|")
    )
    for w in words:  # (a pattern this cannot read needs its words written out)
        if re.fullmatch(r"[\w ]+", w) is None:
            raise AssertionError(f"category pattern {pattern!r}: {w!r} is not a plain word")
    return words


# (logger prefix, words one of which the message holds or None, pattern or None, category)
_Rule = tuple[str, tuple[str, ...] | None, re.Pattern[str] | None, str]
_RULES: tuple[_Rule, ...] = tuple(
    (prefix, _needles(p) if p else None, re.compile(p) if p else None, cat)
    for prefix, p, cat in CATEGORY_RULES
)
_BY_LOGGER: dict[str, tuple[_Rule, ...]] = {}  # logger name -> its rules (up to one without
# a pattern: the rules after it never decide)


def _rules_of(logger: str) -> tuple[_Rule, ...]:
    rules = _BY_LOGGER.get(logger)
    if rules is None:
        mine: list[_Rule] = []
        for rule in _RULES:
            prefix = rule[0]
            if logger == prefix or logger.startswith(prefix + "."):
                mine.append(rule)
                if rule[2] is None:
                    break
        rules = _BY_LOGGER[logger] = tuple(mine)
    return rules


def category_of(logger: str, message: str) -> str:
    """The category of a message ``message`` logged by ``logger`` (``general`` when no
    rule matches)."""
    for _, needles, pattern, cat in _rules_of(logger):
        if pattern is None:
            return cat
        assert needles is not None
        for needle in needles:
            if needle in message:
                if pattern.search(message):
                    return cat
                break
    return "general"


class CategoryFilter(logging.Filter):
    """Sets ``record.category``; with ``categories`` passes only those."""

    def __init__(self, categories: Sequence[str] = ()) -> None:
        super().__init__()
        self.categories = frozenset(categories)

    def filter(self, record: logging.LogRecord) -> bool:
        cat = getattr(record, "category", None)
        if cat is None:
            cat = category_of(record.name, record.getMessage())
            record.category = cat
        return not self.categories or cat in self.categories


def _formatter(channel: LogChannel) -> logging.Formatter:
    if channel.destination == "syslog":  # syslog stamps the time itself
        return logging.Formatter("dnsseal[%(process)d]: %(category)s: %(levelname)s: %(message)s")
    fmt = "%(category)s: %(levelname)s: %(message)s"
    if channel.print_time:
        fmt = "%(asctime)s " + fmt
    formatter = logging.Formatter(fmt, TIME_FORMAT)
    formatter.converter = time.gmtime
    return formatter


def handler_for(channel: LogChannel) -> logging.Handler:
    """The handler writing ``channel``.  Raises OSError (a file that cannot be opened)."""
    handler: logging.Handler
    if channel.destination == "file":
        assert channel.file is not None
        channel.file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            channel.file,
            maxBytes=channel.size,
            backupCount=channel.versions if channel.size else 0,
            encoding="utf-8",
        )
    elif channel.destination == "syslog":
        facility = logging.handlers.SysLogHandler.facility_names[channel.facility]
        if "@" in channel.address:
            ep = parse_endpoint("address", channel.address, 514)
            handler = logging.handlers.SysLogHandler(
                (ep.host, ep.port), facility, socktype=socket.SOCK_DGRAM
            )
        else:
            handler = logging.handlers.SysLogHandler(channel.address, facility)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(SEVERITY_LEVELS[channel.severity])
    handler.addFilter(CategoryFilter(channel.categories))
    handler.setFormatter(_formatter(channel))
    return handler


def configure(config: LoggingConfig, verbose: int = 0) -> list[logging.Handler]:
    """Replace the root logger's handlers with the channels of ``config``.  ``verbose``
    (the ``-v`` count): 2 and more make the stderr channels log debug messages too.
    Returns the handlers.  Raises OSError when a log file cannot be opened."""
    handlers = []
    for channel in config.channels:
        handler = handler_for(channel)
        if verbose >= 2 and channel.destination == "stderr":
            handler.setLevel(logging.DEBUG)
        handlers.append(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(min((h.level for h in handlers), default=logging.WARNING))
    return handlers
