"""NOTIFY (RFC 1996): sent at start and on every new serial, TSIG-signed with notify-key,
retried until the secondary acknowledges."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import dns.message
import dns.opcode
import dns.rdatatype
import pytest

from conftest import free_port

from .conftest import SignedZone, sign_zone, start_dnsseal, stop
from .test_xfr import KEYRING

pytestmark = pytest.mark.interop


class FakeSecondary:
    """Receives NOTIFYs on 127.0.0.1; ignores the first one, acknowledges the others."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.received: list[tuple[int, bool]] = []  # (serial, signed)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = dns.message.from_wire(data, keyring=KEYRING)
            assert msg.opcode() == dns.opcode.NOTIFY
            self.received.append((msg.answer[0][0].serial, msg.had_tsig))
            if len(self.received) > 1:
                self.sock.sendto(dns.message.make_response(msg).to_wire(), addr)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


def test_notify_is_signed_retried_and_sent_on_new_serial(
    signed_zones: dict[str, SignedZone], tmp_path: Path
) -> None:
    secondary = FakeSecondary()
    zone = sign_zone(tmp_path / "z", "nsec", serial=7)
    server = start_dnsseal(
        tmp_path, {"nsec": zone}, also_notify={"nsec": [f"127.0.0.1@{secondary.port}"]}
    )
    try:
        deadline = time.monotonic() + 10
        while len(secondary.received) < 2:  # the first went unanswered: a retry follows
            assert time.monotonic() < deadline, secondary.received
            time.sleep(0.1)
        assert secondary.received[:2] == [(7, True), (7, True)]
        deadline = time.monotonic() + 5
        while "acknowledged" not in server.ctl("zone-status", zone.origin).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.1)

        sign_zone(tmp_path / "z", "nsec", serial=8)
        assert server.ctl("reload").returncode == 0
        deadline = time.monotonic() + 10
        while (8, True) not in secondary.received:
            assert time.monotonic() < deadline, secondary.received
            time.sleep(0.1)

        out = server.ctl("notify", zone.origin)
        assert out.returncode == 0 and "acknowledged serial 8" in out.stdout
        assert "NOTIFY serial 7" in server.log.read_text()
    finally:
        stop(server.proc)
        secondary.close()
