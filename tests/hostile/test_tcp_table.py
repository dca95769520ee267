"""The TCP connection table on its own: who is admitted, who makes room, what is logged
(time as an argument, fake transports)."""

from __future__ import annotations

from typing import Any

from dnsseal.server.tcpclients import LOG_EVERY, TcpClients, client_key


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def test_per_address_limit_evicts_that_address_longest_idle() -> None:
    t = TcpClients()
    mine = [FakeTransport() for _ in range(3)]
    conns = [t.admit(x, "192.0.2.1", float(i), 100, 3) for i, x in enumerate(mine)]
    other = FakeTransport()
    assert t.admit(other, "192.0.2.2", 5.0, 100, 3) is not None
    assert all(conns)
    newest = FakeTransport()
    assert t.admit(newest, "192.0.2.1", 9.0, 100, 3) is not None
    assert [x.aborted for x in mine] == [True, False, False]
    assert not other.aborted and len(t) == 4 and t.evicted == 1


def test_busy_connections_are_never_evicted() -> None:
    t = TcpClients()
    busy = []
    for i in range(2):
        c = t.admit(FakeTransport(), "192.0.2.1", float(i), 2, 2)
        assert c is not None
        c.idle_since = None  # answering a query
        busy.append(c)
    assert t.admit(FakeTransport(), "192.0.2.9", 3.0, 2, 2) is None
    assert t.refused == 1 and len(t) == 2
    assert not any(c.transport.aborted for c in busy)  # type: ignore[attr-defined]


def test_full_table_evicts_the_longest_idle_of_anyone() -> None:
    t = TcpClients()
    ts = [FakeTransport() for _ in range(4)]
    for i, x in enumerate(ts):
        assert t.admit(x, f"192.0.2.{i}", 10.0 - i, 4, 4) is not None  # the last is oldest
    assert t.admit(FakeTransport(), "198.51.100.1", 20.0, 4, 4) is not None
    assert [x.aborted for x in ts] == [False, False, False, True]


def test_drop_frees_the_slot_and_is_idempotent() -> None:
    t = TcpClients()
    c = t.admit(FakeTransport(), "192.0.2.1", 0.0, 1, 1)
    assert c is not None
    t.drop(c)
    t.drop(c)
    assert len(t) == 0 and t.per_key == {}
    assert t.admit(FakeTransport(), "192.0.2.1", 1.0, 1, 1) is not None


def test_ipv6_counts_per_64() -> None:
    assert client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::1")
    assert client_key("2001:db8:1:3::5") != client_key("2001:db8:1:2::5")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("192.0.2.1") != client_key("192.0.2.2")


def test_refusals_are_logged_once_per_period() -> None:
    t = TcpClients()
    busy = t.admit(FakeTransport(), "192.0.2.1", 0.0, 1, 1)
    assert busy is not None
    busy.idle_since = None
    lines = []
    for i in range(1000):
        assert t.admit(FakeTransport(), f"10.0.{i // 256}.{i % 256}", i * 0.01, 1, 1) is None
        line = t.log_line(i * 0.01)
        if line:
            lines.append(line)
    assert len(lines) == 1 + int(999 * 0.01 // LOG_EVERY)
    assert lines[0].startswith("1 TCP connection(s) refused")
    assert t.log_line(100.0) is not None  # what came after the last line
    assert t.log_line(200.0) is None  # nothing new
