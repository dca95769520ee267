"""The answers of a signaling zone (``signaling = true``, RFC 9615 s3-5), answered online
like Knot's onlinesign module, checked by three validators: Unbound, BIND's ``delv`` and
``dnsseal resolve``, under a policy with NSEC and one with NSEC3.

The signaling name holds the child's apex CDS/CDNSKEY (secure); other types there are a
secure NODATA; the empty non-terminals between the apex and the signaling name are secure
NODATA with no referral (no zone cut); a name that is not there is a secure NODATA too
(NXDOMAIN promoted, as Knot does).  Every denial is one minimally covering NSEC at the
query name (next name ``\\000.<qname>``) whose bitmap lists CDS and CDNSKEY unless asked
for: nothing in an answer lets the zone, and so the operator's customers, be walked.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from automation.conftest import write_config
from conftest import free_port, require_tool, stop, wait_for_dns, write_unbound_conf

DNSSEAL = [sys.executable, "-m", "dnsseal.cli.main"]
ZONE = "_signal.ns1.provider.test."
CHILD = "kid.parent.test."
SIGNAL = f"_dsboot.{CHILD}{ZONE}"
T = dns.rdatatype

pytestmark = [pytest.mark.interop, pytest.mark.slow]

# (name, type, rcode, has an answer)
CASES = [
    (SIGNAL, "CDS", dns.rcode.NOERROR, True),
    (SIGNAL, "CDNSKEY", dns.rcode.NOERROR, True),
    (SIGNAL, "A", dns.rcode.NOERROR, False),
    (SIGNAL, "DS", dns.rcode.NOERROR, False),
    (f"{CHILD}{ZONE}", "CDS", dns.rcode.NOERROR, False),  # empty non-terminals
    (f"parent.test.{ZONE}", "NS", dns.rcode.NOERROR, False),
    (f"test.{ZONE}", "CDNSKEY", dns.rcode.NOERROR, False),
    (f"_dsboot.other.example.{ZONE}", "CDS", dns.rcode.NOERROR, False),  # not there
    (f"x.{SIGNAL}", "CDS", dns.rcode.NOERROR, False),
    (f"zzz.{ZONE}", "A", dns.rcode.NOERROR, False),
    (SIGNAL, "NSEC", dns.rcode.NOERROR, True),
]


def _minimal(r: dns.message.Message, qname: str, qtype: str) -> None:
    """The only denial record is the NSEC at ``qname`` covering just it, and its bitmap
    has CDS and CDNSKEY except ``qtype``."""
    owner = dns.name.from_text(qname)
    nsecs = [rr for rr in (*r.answer, *r.authority) if rr.rdtype in (T.NSEC, T.NSEC3)]
    assert len(nsecs) == 1 and nsecs[0].rdtype == T.NSEC, (qname, qtype, r)
    (nsec,) = nsecs
    assert nsec.name == owner, (qname, qtype, r)
    assert nsec[0].next == dns.name.Name((b"\x00", *owner.labels)), (qname, qtype, r)
    types = {T.to_text(t) for w in nsec[0].windows for t in _types(w)}
    assert types >= {"CDS", "CDNSKEY", "NSEC", "RRSIG"} - {qtype}, (qname, qtype, types)
    assert qtype not in types or qtype == "NSEC", (qname, qtype, types)


def _ask(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def _nsec3_owner(name: str, salt: bytes, iterations: int) -> str:
    wire = dns.name.from_text(name).canonicalize().to_wire()
    digest = hashlib.sha1(wire + salt).digest()
    for _ in range(iterations):
        digest = hashlib.sha1(digest + salt).digest()
    b32 = (
        base64.b32encode(digest)
        .decode()
        .translate(
            str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHIJKLMNOPQRSTUV")
        )
    )
    return f"{b32.lower()}.{ZONE}"


def _bitmap_at_signal(r: dns.message.Message) -> set[str]:
    """The types the NSEC (or the matching NSEC3) for the signaling name lists."""
    for rr in r.authority:
        if rr.rdtype == T.NSEC and rr.name == dns.name.from_text(SIGNAL):
            return {T.to_text(t) for rd in rr for w in rd.windows for t in _types(w)}
        if rr.rdtype == T.NSEC3:
            rd = rr[0]
            if rr.name.to_text().lower() == _nsec3_owner(SIGNAL, rd.salt, rd.iterations):
                return {T.to_text(t) for w in rd.windows for t in _types(w)}
    raise AssertionError(f"no NSEC/NSEC3 for {SIGNAL}:\n{r}")


def _types(window: tuple[int, bytes]) -> list[int]:
    base, bits = window
    return [
        base * 256 + i * 8 + j for i, byte in enumerate(bits) for j in range(8) if byte & 0x80 >> j
    ]


@pytest.mark.parametrize("policy", ["fast", "fast3"])
def test_signaling_answers_validate(tmp_path: Path, policy: str) -> None:
    d = tmp_path
    port = free_port()
    signal = f"$ORIGIN {ZONE}\n$TTL 2\n@ SOA ns1.provider.test. h 1 60 30 600 2\n@ NS ns1\n"
    signal = signal.replace("@ NS ns1", "@ NS ns1.provider.test.")
    child = (
        f"$ORIGIN {CHILD}\n$TTL 2\n@ SOA ns1.provider.test. h 1 60 30 600 2\n"
        "@ NS ns1.provider.test.\nwww A 192.0.2.80\n"
    )
    # An unsigned root for `dnsseal resolve`, which iterates from it.
    root = (
        "$ORIGIN .\n$TTL 2\n@ SOA a.root. h 1 60 30 600 2\n@ NS a.root.\na.root. A 127.0.0.1\n"
        f"{ZONE} NS ns1.provider.test.\nns1.provider.test. A 127.0.0.1\n"
    )
    write_config(
        d,
        port,
        {ZONE: signal, CHILD: child, ".": root},
        policies={ZONE: policy, CHILD: "fast", ".": "insecure-fast"},
        zone_options={ZONE: "signaling = true\nds-interval = 1"},
    )
    with (d / "out.txt").open("ab") as out:
        proc = subprocess.Popen(
            [*DNSSEAL, "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, ZONE, proc, timeout=30)
        deadline = time.monotonic() + 30
        while not _ask(port, SIGNAL, "CDS").answer:
            assert time.monotonic() < deadline, (d / "out.txt").read_text()[-4000:]
            time.sleep(0.3)
        # The records are the child's apex RRsets, exactly.
        for rtype in ("CDS", "CDNSKEY"):
            here, apex = _ask(port, SIGNAL, rtype), _ask(port, CHILD, rtype)
            t = T.from_text(rtype)
            assert {rd for rr in here.answer if rr.rdtype == t for rd in rr} == {
                rd for rr in apex.answer if rr.rdtype == t for rd in rr
            }
        assert _bitmap_at_signal(_ask(port, SIGNAL, "A")) >= {"CDS", "CDNSKEY"}
        for name, rtype, rcode, has_answer in CASES:
            r = _ask(port, name, rtype)
            assert r.rcode() == rcode and bool(r.answer) == has_answer, (name, rtype, r)
            assert r.flags & dns.flags.AA, (name, rtype, r)
            assert not any(rr.rdtype == T.NS for rr in r.authority), (name, rtype, r)
            if not has_answer or rtype == "NSEC":
                _minimal(r, name, rtype)

        (dnskey,) = [
            rd for rr in _ask(port, ZONE, "DNSKEY").answer if rr.rdtype == T.DNSKEY for rd in rr
            if rd.flags & 1
        ]  # fmt: skip
        ds = dns.dnssec.make_ds(ZONE, dnskey, "SHA256")
        (d / "anchors.conf").write_text(
            f'trust-anchors {{ "{ZONE}" static-ds {ds.key_tag} {ds.algorithm} '
            f'{ds.digest_type} "{ds.digest.hex().upper()}"; }};\n'
        )
        # delv and dnsseal resolve ask the authoritative server directly.
        delv = require_tool("delv")
        for name, rtype, _, has_answer in CASES:
            out = subprocess.run(
                [delv, "@127.0.0.1", "-p", str(port), "-a", str(d / "anchors.conf"),
                 f"+root={ZONE}", name, rtype],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert "fully validated" in out.stdout, (name, rtype, out.stdout, out.stderr)
            negative = "; negative response, fully validated" in out.stdout
            assert negative == (not has_answer), (name, rtype, out.stdout)
            res = subprocess.run(
                [*DNSSEAL, "resolve", "-a", str(d / "anchors.conf"), "-p", str(port),
                 name, rtype, "@127.0.0.1"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert res.returncode == 0, (name, rtype, res.stdout, res.stderr)
        udir = d / "unbound"
        udir.mkdir()
        uport = free_port()
        conf = write_unbound_conf(
            udir,
            uport,
            [f"{ZONE} DS {ds.to_text()}"],
            [(ZONE, port)],
            extra=('local-zone: "test." nodefault',),
        )
        ub = subprocess.Popen(
            [require_tool("unbound"), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_dns(uport, ZONE, ub, timeout=20)
            for name, rtype, rcode, has_answer in CASES:
                q = dns.message.make_query(name, rtype, want_dnssec=True)
                r = dns.query.udp(q, "127.0.0.1", port=uport, timeout=10)
                assert r.rcode() == rcode and bool(r.answer) == has_answer, (name, rtype, r)
                assert r.flags & dns.flags.AD, (name, rtype, r)
        finally:
            stop(ub)
    finally:
        stop(proc)
