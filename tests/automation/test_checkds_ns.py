"""checkds = "yes" without parental-agents: the child's server finds the parent zone and its
name servers through a recursive resolver (Unbound, with a stub for the parent) and asks
each of them directly for the DS RRset.  Plus the pure reading of those answers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rrset
import dns.tsigkeyring
import dns.update
import pytest

from conftest import free_port
from dnsseal.proto import parentns

from .conftest import TSIG_SECRET, ctl, dnsseal_serve, unbound, write_config, zone_text
from .test_e2e import ask, rdata_texts

PARENT = "pns.example."
CHILD = "kid.pns.example."
KEYRING = dns.tsigkeyring.from_text({"ddns": ("hmac-sha256", TSIG_SECRET)})


def copy_cds_to_parent(child_port: int, parent_port: int) -> set[str]:
    """The registrar: the parent's DS for the child := the child's CDS (dynamic update)."""
    cds = rdata_texts(ask(child_port, CHILD, "CDS"), dns.rdatatype.CDS)
    assert cds and cds != {"0 0 0 00"}, cds
    u = dns.update.UpdateMessage(PARENT, keyring=KEYRING, keyname="ddns")
    u.delete(CHILD, "DS")
    for text in sorted(cds):
        u.add(CHILD, 2, "DS", text)
    r = dns.query.tcp(u, "127.0.0.1", port=parent_port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR, r
    return cds


def status_until(d: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = ctl(d, "dnssec", "-status", CHILD)
        if re.search(pattern, status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in the status:\n{status}")


@pytest.mark.interop
@pytest.mark.slow
def test_child_finds_parent_ns_through_unbound_and_sees_the_ds(tmp_path: Path) -> None:
    pport, cport = free_port(), free_port()
    pdir, cdir = tmp_path / "parent", tmp_path / "child"
    pdir.mkdir()
    cdir.mkdir()
    write_config(
        pdir,
        pport,
        {PARENT: zone_text(PARENT, extra="kid NS ns.kid\nns.kid A 127.0.0.1\n")},
        zone_options={PARENT: 'allow-update = ["key ddns"]'},
    )
    with (
        dnsseal_serve(pdir, ["-c", "dnsseal.toml"], PARENT, pport),
        unbound(tmp_path, [], {PARENT: pport}) as uport,
    ):
        conf = write_config(
            cdir, cport, {CHILD: zone_text(CHILD)}, zone_options={CHILD: 'checkds = "yes"'}
        )
        # The parent's name servers are at 127.0.0.1 (its glue); BIND's `port` for them.
        text = conf.read_text().replace(
            'policies = "policies.toml"\n',
            f'policies = "policies.toml"\nresolvers = ["127.0.0.1 port {uport}"]\n'
            f"query-port = {pport}\n",
            1,
        )
        conf.write_text(text)
        with dnsseal_serve(cdir, ["-c", "dnsseal.toml"], CHILD, cport):
            # The KSK waits for its DS; the parent's server is asked and has none.
            status = status_until(
                cdir,
                rf"parent NS ns1\.{re.escape(PARENT)} 127\.0\.0\.1@{pport}: DS expected for "
                r"\[\d+\], seen: none",
                30,
            )
            ksk = int(re.search(r"DS expected for \[(\d+)\]", status).group(1))  # type: ignore[union-attr]
            assert "not yet seen" in status
            copy_cds_to_parent(cport, pport)
            status = status_until(cdir, rf"seen: [\d, ]*\b{ksk}\b", 20)
            log = (cdir / "out.txt").read_text()
            deadline = time.monotonic() + 20
            while "seen at every parent name server" not in log and time.monotonic() < deadline:
                time.sleep(0.5)
                log = (cdir / "out.txt").read_text()
            assert f"checkds: DS for key {ksk} seen at every parent name server" in log, log
            # The key manager took it: the DS goes omnipresent, nothing waits on the parent.
            status = status_until(cdir, r"- ds: +omnipresent", 20)
            assert f"DS for {ksk} not yet seen" not in status


def _response(text: str) -> dns.message.Message:
    return dns.message.from_text(text)


def test_parent_zone_from_soa_answers() -> None:
    child = dns.name.from_text("kid.pns.example.")
    apex = _response(
        "id 1\nopcode QUERY\nrcode NOERROR\nflags QR RD RA\n;QUESTION\npns.example. IN SOA\n"
        ";ANSWER\npns.example. 2 IN SOA ns1.pns.example. h.pns.example. 1 2 3 4 5\n"
    )
    assert parentns.parent_zone(child, apex) == dns.name.from_text("pns.example.")
    deeper = dns.name.from_text("a.b.pns.example.")
    nodata = _response(
        "id 1\nopcode QUERY\nrcode NXDOMAIN\nflags QR RD RA\n;QUESTION\nb.pns.example. IN SOA\n"
        ";AUTHORITY\npns.example. 2 IN SOA ns1.pns.example. h.pns.example. 1 2 3 4 5\n"
    )
    assert parentns.parent_zone(deeper, nodata) == dns.name.from_text("pns.example.")
    with pytest.raises(parentns.LookupFailed, match="names no zone above"):
        parentns.parent_zone(child, _response("id 1\nflags QR\n;QUESTION\npns.example. IN SOA\n"))
    failed = _response("id 1\nrcode SERVFAIL\nflags QR\n;QUESTION\npns.example. IN SOA\n")
    with pytest.raises(parentns.LookupFailed, match="SERVFAIL"):
        parentns.parent_zone(child, failed)


def test_ns_names_addresses_and_ds() -> None:
    zone = dns.name.from_text("pns.example.")
    ns = _response(
        "id 1\nflags QR RD RA\n;QUESTION\npns.example. IN NS\n;ANSWER\n"
        "pns.example. 2 IN NS ns2.pns.example.\npns.example. 2 IN NS ns1.pns.example.\n"
    )
    assert [n.to_text() for n in parentns.ns_names(zone, ns)] == [
        "ns1.pns.example.",
        "ns2.pns.example.",
    ]
    with pytest.raises(parentns.LookupFailed, match="no name servers"):
        parentns.ns_names(zone, _response("id 1\nflags QR\n;QUESTION\npns.example. IN NS\n"))
    a = _response(
        "id 1\nflags QR RD RA\n;QUESTION\nns1.pns.example. IN A\n;ANSWER\n"
        "ns1.pns.example. 2 IN CNAME host.pns.example.\nhost.pns.example. 2 IN A 192.0.2.1\n"
        "other.pns.example. 2 IN A 192.0.2.9\n"
    )
    assert parentns.addresses(dns.name.from_text("ns1.pns.example."), a) == ["192.0.2.1"]
    child = dns.name.from_text("kid.pns.example.")
    q = parentns.ds_query(child)
    assert not q.flags & dns.flags.RD
    ds = _response(
        "id 1\nflags QR AA\n;QUESTION\nkid.pns.example. IN DS\n;ANSWER\n"
        "kid.pns.example. 2 IN DS 12345 13 2 "
        "0000000000000000000000000000000000000000000000000000000000000000\n"
    )
    ((tag, alg, digest_type, _),) = parentns.read_ds(q, ds, authoritative=True)
    assert (tag, alg, digest_type) == (12345, 13, 2)
    lame = _response("id 1\nflags QR\n;QUESTION\nkid.pns.example. IN DS\n")
    assert parentns.read_ds(q, lame, authoritative=False) == set()
    with pytest.raises(parentns.LookupFailed, match="lame"):
        parentns.read_ds(q, lame, authoritative=True)
