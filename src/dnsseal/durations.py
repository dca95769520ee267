"""Durations and points in time in the forms DNS operators type.

* Durations: ISO 8601 (``P1Y``, ``P60D``, ``PT1H``, ``P2W``) and BIND's TTL-style unit forms
  (``3600``, ``1h30m``, ``2w``, ``1d``), plus ``unlimited`` where the caller allows it.
  Years are 365 days and months 31 days, as named.conf counts them (BIND's
  lib/isccfg/duration.c, isccfg_duration_toseconds: a ``P6M`` lifetime is 16070400 s);
  weeks do not mix with other units (``P1W2D`` is an error there too).
* Times (``-P/-A/-I/-D/-R``, ``-s/-e``): BIND's forms ``YYYYMMDD``, ``YYYYMMDDHHMMSS``,
  ``+offset`` / ``-offset`` from a base, ``now`` optionally followed by an offset, ``none``,
  and seconds since the epoch.  Offsets use BIND's units: ``y mo w d h mi s`` (default s).

Everything here is pure: the current time comes in as an argument.
"""

from __future__ import annotations

import datetime
import re
import time

from dnsseal.errors import InputError

MINUTE = 60
HOUR = 3600
DAY = 86400
WEEK = 7 * DAY
MONTH = 30 * DAY  # in dnssec-keygen/-settime offsets ("+6mo"): bin/dnssec/dnssectool.c
ISO_MONTH = 31 * DAY  # in named.conf ISO 8601 durations ("P6M"): lib/isccfg/duration.c
YEAR = 365 * DAY

_ISO_RE = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?$",
    re.IGNORECASE,
)
_ISO_UNITS = {"y": YEAR, "mo": ISO_MONTH, "w": WEEK, "d": DAY, "h": HOUR, "mi": MINUTE, "s": 1}
# BIND TTL-style units (named.conf durations and dnssec-* TTLs).
_TTL_UNITS = {"w": WEEK, "d": DAY, "h": HOUR, "m": MINUTE, "s": 1}
_TTL_RE = re.compile(r"(\d+)([wdhms]?)", re.IGNORECASE)
# Offsets of dnssec-keygen / dnssec-settime / dnssec-signzone.
_OFFSET_RE = re.compile(r"(\d+)(y|mo|mi|w|d|h|m|s)?", re.IGNORECASE)
_OFFSET_UNITS = {
    "y": YEAR,
    "mo": MONTH,
    "m": MONTH,  # BIND reads a bare "m" in an offset as month
    "w": WEEK,
    "d": DAY,
    "h": HOUR,
    "mi": MINUTE,
    "s": 1,
    "": 1,
}

UNLIMITED = -1


def parse_duration(text: str, *, allow_unlimited: bool = False) -> int:
    """Parse a duration into seconds.  ``unlimited`` gives :data:`UNLIMITED` when allowed.

    Raises :class:`InputError` with the offending text.
    """
    s = text.strip()
    if not s:
        raise InputError("empty duration")
    low = s.lower()
    if low in ("unlimited", "infinite"):
        if allow_unlimited:
            return UNLIMITED
        raise InputError(f"duration {text!r}: 'unlimited' is not allowed here")
    if low.startswith("p"):
        m = _ISO_RE.match(s)
        if not m or s.upper() in ("P", "PT") or s.upper().endswith("T"):
            raise InputError(f"bad ISO 8601 duration {text!r} (examples: P1Y, P60D, PT1H)")
        parts = m.groupdict()
        if parts["w"] is not None and any(v is not None for k, v in parts.items() if k != "w"):
            raise InputError(f"bad ISO 8601 duration {text!r}: weeks do not mix with other units")
        return sum(int(v) * _ISO_UNITS[k] for k, v in m.groupdict().items() if v is not None)
    total = 0
    pos = 0
    for m in _TTL_RE.finditer(low):
        if m.start() != pos:
            break
        unit = m.group(2) or "s"
        total += int(m.group(1)) * _TTL_UNITS[unit]
        pos = m.end()
    if pos != len(low) or pos == 0:
        raise InputError(f"bad duration {text!r} (examples: 3600, 1h, 2d, P60D, PT1H)")
    return total


def format_duration(seconds: int) -> str:
    """Seconds as the shortest exact ISO 8601 duration (``P1Y``, ``P60D``, ``PT1H30M``)."""
    if seconds == UNLIMITED:
        return "unlimited"
    if seconds < 0:
        raise ValueError("negative duration")
    if seconds == 0:
        return "PT0S"
    out = "P"
    rest = seconds
    if rest % YEAR == 0:
        return f"P{rest // YEAR}Y"
    days, rest = divmod(rest, DAY)
    if days:
        out += f"{days}D"
    if rest:
        out += "T"
        h, rest = divmod(rest, HOUR)
        mi, s = divmod(rest, MINUTE)
        if h:
            out += f"{h}H"
        if mi:
            out += f"{mi}M"
        if s:
            out += f"{s}S"
    return out


def parse_offset(text: str) -> int:
    """A BIND offset without its sign: ``30d``, ``1y``, ``6mo``, ``90mi``, ``3600``.

    Several parts may follow each other (``1d12h``).
    """
    low = text.strip().lower()
    total = 0
    pos = 0
    for m in _OFFSET_RE.finditer(low):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _OFFSET_UNITS[m.group(2) or ""]
        pos = m.end()
    if pos != len(low) or pos == 0:
        raise InputError(f"bad time offset {text!r} (examples: 30d, 1y, 6mo, 12h, 90mi)")
    return total


def format_bind_time(ts: int) -> str:
    """``YYYYMMDDHHMMSS`` in UTC, as BIND writes times in key files."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(ts))


def format_human_time(ts: int) -> str:
    """BIND's ctime-like rendering: ``Sat Nov 21 22:16:01 2026`` (UTC)."""
    t = time.gmtime(ts)
    return time.strftime("%a %b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", t)


_EPOCH_DAY = 719163  # datetime.date(1970, 1, 1).toordinal()


def parse_bind_time(text: str) -> int:
    """``YYYYMMDDHHMMSS`` or ``YYYYMMDD`` (UTC) to seconds since the epoch.

    What ``calendar.timegm(time.strptime(s, "%Y%m%d%H%M%S"))`` gives (seconds up to 61,
    as strptime takes them), without strptime: a restart reads 16 times per key."""
    s = text.strip()
    if not s.isdigit() or len(s) not in (8, 14):
        raise InputError(f"bad time {text!r}: expected YYYYMMDDHHMMSS or YYYYMMDD")
    try:
        day = datetime.date(int(s[:4]), int(s[4:6]), int(s[6:8])).toordinal() - _EPOCH_DAY
        hour, minute, second = (int(s[8:10]), int(s[10:12]), int(s[12:14])) if s[8:] else (0, 0, 0)
        if hour > 23 or minute > 59 or second > 61:
            raise ValueError(s)
    except ValueError:  # (also a digit int() does not take, as strptime does not)
        raise InputError(f"bad time {text!r}: not a valid date") from None
    return day * 86400 + hour * 3600 + minute * 60 + second


def parse_when(text: str, now: int, *, base: int | None = None) -> int | None:
    """A BIND time specification, relative to ``now`` (or ``base`` for ``+offset``).

    Returns None for ``none`` (the time is unset).  Forms: ``none``, ``now``, ``now+1d``,
    ``+30d``, ``-1h``, ``YYYYMMDD``, ``YYYYMMDDHHMMSS``, or seconds since the epoch.
    """
    s = text.strip().lower()
    if s in ("none", "unset"):
        return None
    rel_base = now if base is None else base
    if s.startswith("now"):
        rest = s[3:]
        if not rest:
            return now
        if rest[0] in "+-":
            off = parse_offset(rest[1:])
            return now + off if rest[0] == "+" else now - off
        raise InputError(f"bad time {text!r}")
    if s.startswith("+"):
        return rel_base + parse_offset(s[1:])
    if s.startswith("-"):
        return rel_base - parse_offset(s[1:])
    if s.isdigit() and len(s) in (8, 14):
        return parse_bind_time(s)
    if s.isdigit() and len(s) <= 10:
        return int(s)
    raise InputError(
        f"bad time {text!r}: use YYYYMMDDHHMMSS, YYYYMMDD, +offset, now[+offset] or none"
    )
