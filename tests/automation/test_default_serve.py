"""`dnsseal serve` without a config (what `make serve` runs) signs the example zone and a
real validating Unbound, with the printed DS as trust anchor, validates its answers."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import free_port

from .conftest import axfr_verify, dnsseal_serve, printed_ds, unbound

ZONE = "demo.example."
CASES = [
    ("www.demo.example.", "A", dns.rcode.NOERROR, True),
    ("www.demo.example.", "TXT", dns.rcode.NOERROR, False),  # NODATA
    ("nope.demo.example.", "A", dns.rcode.NXDOMAIN, False),
    ("a.wild.demo.example.", "TXT", dns.rcode.NOERROR, True),  # wildcard
    ("alias.demo.example.", "A", dns.rcode.NOERROR, True),  # CNAME
    ("demo.example.", "DNSKEY", dns.rcode.NOERROR, True),
]


@pytest.mark.interop
def test_default_mode_signs_example_zone_and_unbound_validates(tmp_path: Path) -> None:
    port = free_port()
    with dnsseal_serve(tmp_path, ["-p", str(port)], ZONE, port):
        out = (tmp_path / "out.txt").read_text()
        assert (tmp_path / "zones" / "demo.example.zone").exists()
        ds = printed_ds(tmp_path / "out.txt", ZONE)
        assert f"dig @127.0.0.1 -p {port} {ZONE}" in (tmp_path / "out.txt").read_text()
        assert "created" in out or "demo.example" in out
        assert list((tmp_path / "keys").glob("Kdemo.example.+013+*.state"))
        assert (tmp_path / "state" / "demo.example.signed").exists()
        axfr_verify(tmp_path, ZONE, port)
        with unbound(tmp_path, [ds], {ZONE: port}) as uport:
            for qname, qtype, rcode, has_answer in CASES:
                q = dns.message.make_query(qname, qtype, want_dnssec=True)
                r = dns.query.udp(q, "127.0.0.1", port=uport, timeout=10)
                assert r.rcode() == rcode, (qname, qtype, r)
                assert r.flags & dns.flags.AD, f"{qname} {qtype} not validated:\n{r}"
                assert bool(r.answer) == has_answer, (qname, qtype, r)


@pytest.mark.interop
def test_restart_keeps_keys_serial_and_signatures(tmp_path: Path) -> None:
    """A restart reuses the keys and the journal: same DS, same serial, no new key."""
    port = free_port()
    with dnsseal_serve(tmp_path, ["-p", str(port)], ZONE, port):
        ds1 = printed_ds(tmp_path / "out.txt", ZONE)
        soa1 = _soa_serial(port)
    keys1 = sorted(p.name for p in (tmp_path / "keys").iterdir())
    (tmp_path / "out.txt").unlink()
    with dnsseal_serve(tmp_path, ["-p", str(port)], ZONE, port):
        ds2 = printed_ds(tmp_path / "out.txt", ZONE)
        assert _soa_serial(port) == soa1
    assert ds1 == ds2
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == keys1


@pytest.mark.interop
@pytest.mark.parametrize("gone", [(".key",), (".key", ".private", ".state")])
def test_missing_key_file_is_an_error_not_a_new_key(tmp_path: Path, gone: tuple[str, ...]) -> None:
    port = free_port()
    with dnsseal_serve(tmp_path, ["-p", str(port)], ZONE, port):
        pass
    for suffix in gone:
        for f in (tmp_path / "keys").glob(f"K*{suffix}"):
            f.unlink()
    (tmp_path / "out.txt").unlink()
    with dnsseal_serve(tmp_path, ["-p", str(port)], ZONE, port):
        text = (tmp_path / "out.txt").read_text()
        # The version signed before keeps being served; no key was made to replace it.
        assert _soa_serial(port) == 1
    assert "missing key file" in text
    assert not list((tmp_path / "keys").glob("K*.key"))


def _soa_serial(port: int) -> int:
    r = dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=port, timeout=3)
    return int(r.answer[0][0].serial)
