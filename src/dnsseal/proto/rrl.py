"""Response rate limiting (RRL) over UDP, with BIND's ``rate-limit`` semantics.

A response is charged to an *account*: the client's network (``ipv4-prefix-length``,
``ipv6-prefix-length``), the kind of response and a name.  Answers and NODATA are charged per
query name and type, NXDOMAIN to the zone (so a flood of random names shares one account),
referrals to the delegation, errors (REFUSED, FORMERR, ...) to the network alone.

Each account holds a balance, as BIND's ``debit_rrl_entry``: it starts at the kind's rate,
is credited ``rate`` per whole second elapsed (never above ``rate``; an account idle for
longer than ``window`` starts afresh) and debited one per response.  A response that takes the
balance below zero is limited; the balance never falls below ``-window * rate``, so a client
that keeps flooding stays limited until it has been quiet for ``window`` seconds.  Of the
limited responses, the first and then every ``slip``-th is *slipped*: a truncated (TC=1)
response with no answer, which a real resolver retries over TCP, while a spoofed victim gets
little; the others are dropped (``slip = 0``: all dropped, ``slip = 1``: all slipped).
Responses over TCP are never limited (the caller does not ask).

Pure: time comes in as ``now`` (seconds); nothing here touches a socket or a clock.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Kind", "RateLimitConfig", "RateLimiter", "Verdict", "classify", "slip_response"]


class Verdict(IntEnum):
    SEND = 0
    DROP = 1
    SLIP = 2


class Kind(IntEnum):
    """BIND's response types, each with its own rate option."""

    ANSWER = 0  # responses-per-second
    NODATA = 1  # nodata-per-second
    REFERRAL = 2  # referrals-per-second
    NXDOMAIN = 3  # nxdomains-per-second
    ERROR = 4  # errors-per-second


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """``[server] rate-limit = { ... }`` (BIND's option names with dashes).  A rate of 0
    leaves that kind unlimited; ``None`` rates take ``responses_per_second``."""

    responses_per_second: int = 0
    nodata_per_second: int | None = None
    referrals_per_second: int | None = None
    nxdomains_per_second: int | None = None
    errors_per_second: int | None = None
    window: int = 15
    slip: int = 2
    ipv4_prefix_length: int = 24
    ipv6_prefix_length: int = 56
    log_only: bool = False
    exempt_clients: tuple[str, ...] = ()
    max_table_size: int = 20000

    def rate(self, kind: Kind) -> int:
        r = (
            None,
            self.nodata_per_second,
            self.referrals_per_second,
            self.nxdomains_per_second,
            self.errors_per_second,
        )[kind]
        return self.responses_per_second if r is None else r


class _Account:
    __slots__ = ("balance", "second", "slip_count")

    def __init__(self, balance: int, second: int) -> None:
        self.balance = balance
        self.second = second
        self.slip_count = 0


class RateLimiter:
    """The accounts of one process.  :meth:`decide` says what to do with one response."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._accounts: dict[tuple[bytes, int, bytes, int], _Account] = {}
        self._exempt = [ipaddress.ip_network(c, strict=False) for c in config.exempt_clients]
        self.limited = 0  # responses dropped or slipped (log-only: that would have been)
        self.slipped = 0

    def prefix(self, client: str) -> bytes:
        """The client's network, as the account key uses it."""
        try:
            addr = ipaddress.ip_address(client)
        except ValueError:
            return client.encode()
        bits = (
            self.config.ipv4_prefix_length if addr.version == 4 else self.config.ipv6_prefix_length
        )
        packed = addr.packed
        whole, rest = divmod(bits, 8)
        out = packed[:whole]
        if rest:
            out += bytes([packed[whole] & (0xFF << (8 - rest)) & 0xFF])
        return bytes([addr.version]) + out

    def exempt(self, client: str) -> bool:
        if not self._exempt:
            return False
        try:
            addr = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(addr in net for net in self._exempt)

    def decide(self, client: str, kind: Kind, name: bytes, qtype: int, now: float) -> Verdict:
        """Charge one UDP response of ``kind`` about ``name`` (lower-case wire form) and
        ``qtype`` to ``client``'s account at time ``now`` (seconds)."""
        cfg = self.config
        rate = cfg.rate(kind)
        if rate <= 0 or self.exempt(client):
            return Verdict.SEND
        second = int(now)
        key = (self.prefix(client), int(kind), name, qtype)
        accounts = self._accounts
        acct = accounts.pop(key, None)  # re-inserted below: the dict stays oldest-first
        if acct is None:
            acct = _Account(rate, second)
            while len(accounts) >= cfg.max_table_size:
                del accounts[next(iter(accounts))]
        else:
            age = second - acct.second
            if age > cfg.window:
                acct.balance, acct.slip_count = rate, 0
            elif age > 0:
                acct.balance += rate * age
                if acct.balance > rate:
                    acct.balance, acct.slip_count = rate, 0
            if age > 0:
                acct.second = second
        accounts[key] = acct
        acct.balance -= 1
        if acct.balance >= 0:
            return Verdict.SEND
        acct.balance = max(acct.balance, -cfg.window * rate)
        verdict = Verdict.DROP
        if cfg.slip > 0:
            first = acct.slip_count == 0
            acct.slip_count += 1
            if acct.slip_count >= cfg.slip:
                acct.slip_count = 0
            if first:
                verdict = Verdict.SLIP
        self.limited += 1
        if cfg.log_only:
            return Verdict.SEND
        if verdict == Verdict.SLIP:
            self.slipped += 1
        return verdict

    def __len__(self) -> int:
        return len(self._accounts)


# -- reading just enough of the wire ------------------------------------------------------

NOERROR, NXDOMAIN = 0, 3
AA = 0x0400


def _name_end(wire: bytes, off: int) -> int:
    """The offset after the (possibly compressed) name at ``off``; raises ValueError."""
    while True:
        if off >= len(wire):
            raise ValueError("name runs past the end")
        n = wire[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        if n & 0xC0:
            raise ValueError("bad label type")
        off += n + 1


def _read_name(wire: bytes, off: int) -> bytes:
    """The name at ``off`` in lower-case uncompressed wire form; raises ValueError."""
    out = bytearray()
    hops = 0
    while True:
        if off >= len(wire):
            raise ValueError("name runs past the end")
        n = wire[off]
        if n == 0:
            out.append(0)
            return bytes(out).lower()
        if n & 0xC0 == 0xC0:
            hops += 1
            if hops > 64 or off + 1 >= len(wire):
                raise ValueError("compression loop")
            off = ((n & 0x3F) << 8) | wire[off + 1]
            continue
        if n & 0xC0:
            raise ValueError("bad label type")
        out += wire[off : off + n + 1]
        off += n + 1


def classify(query: bytes, response: bytes) -> tuple[Kind, bytes, int]:
    """The account a UDP ``response`` to ``query`` is charged to: (kind, name, qtype).
    Never raises: what cannot be read is an error charged to the network alone."""
    try:
        rcode = response[3] & 0x0F
        ancount, nscount = struct.unpack_from("!HH", response, 6)
        if rcode not in (NOERROR, NXDOMAIN):
            return Kind.ERROR, b"", 0
        qend = _name_end(query, 12)
        qname = query[12:qend].lower()
        qtype = struct.unpack_from("!H", query, qend)[0]
        if rcode == NOERROR and ancount:
            return Kind.ANSWER, qname, qtype
        if rcode == NOERROR and (response[2] << 8) & AA:
            return Kind.NODATA, qname, qtype
        # NXDOMAIN: the zone (the SOA's owner); a referral: the delegation (the NS owner)
        off = _name_end(response, 12) + 4
        for _ in range(ancount):
            off = _name_end(response, off)
            off += 10 + struct.unpack_from("!H", response, off + 8)[0]
        owner = _read_name(response, off) if nscount else qname
        if rcode == NXDOMAIN:
            return Kind.NXDOMAIN, owner, 0
        return Kind.REFERRAL, owner, 0
    except (ValueError, IndexError, struct.error):
        return Kind.ERROR, b"", 0


def slip_response(response: bytes) -> bytes:
    """The slipped form of ``response``: its header with TC set, the question, no records
    (a resolver retries over TCP).  ``response`` must hold a question."""
    try:
        qend = _name_end(response, 12) + 4
    except ValueError:
        qend = 12
    if qend > len(response) or not struct.unpack_from("!H", response, 4)[0]:
        qend = 12
    qd = 1 if qend > 12 else 0
    flags = struct.unpack_from("!H", response, 2)[0] | 0x0200  # TC
    return response[:2] + struct.pack("!HHHHH", flags, qd, 0, 0, 0) + response[12:qend]
