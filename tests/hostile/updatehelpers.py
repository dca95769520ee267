"""Shared helpers for the hostile UPDATE / TSIG / OPT tests: a dnsseal server and a named
on loopback serving the same zone with the same keys, hand-made TSIG signatures and raw
UDP exchanges.

Every process is started on a port picked with free_port() and stopped by its PID.
"""

from __future__ import annotations

import base64
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns

DNSSEAL = Path(sys.executable).parent / "dnsseal"
ZONE = "upd.example."
SECRET_B64 = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="  # 32 octets
SECRET = base64.b64decode(SECRET_B64)
OTHER_B64 = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItMDEyMzQ1Njc="  # 32 octets
PEER_B64 = "cGVlci1wZWVyLXBlZXItcGVlci1wZWVyLTAxMjM0NTY="  # 32 octets
HOST_B64 = "aG9zdC1ob3N0LWhvc3QtaG9zdC1ob3N0LTAxMjM0NTY="  # 32 octets
# "host1.upd.example" is a key named like a host, for update-policy's self rules
KEYS = {"ddns": SECRET_B64, "other": OTHER_B64, "peer": PEER_B64, "host1.upd.example": HOST_B64}

ZONE_TEXT = (
    f"$ORIGIN {ZONE}\n$TTL 300\n@ SOA ns1 hostmaster 1 60 30 600 300\n"
    "@ NS ns1\nns1 A 127.0.0.1\nwww A 192.0.2.80\nmail A 192.0.2.25\n"
    "host1 A 192.0.2.1\nsub A 192.0.2.2\na.sub A 192.0.2.3\n"
)

POLICY = """
[policy.fast]
dnskey-ttl = 300
publish-safety = 1
retire-safety = 1
purge-keys = 5
signatures-refresh = 2000
signatures-validity = 3000
signatures-validity-dnskey = 3000
max-zone-ttl = 300
zone-propagation-delay = 1
parent-ds-ttl = 2
parent-propagation-delay = 1
keys = [
  { role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
]
"""


@dataclass(frozen=True)
class Server:
    """A server on 127.0.0.1@port, its directory and its log."""

    port: int
    dir: Path
    log: Path


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


@contextmanager
def dnsseal_server(
    d: Path,
    *,
    allow_update: list[str] | None = None,
    update_policy: list[str] | None = None,
    keys: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`dnsseal serve` of ZONE (inline-signed under a fast policy) in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (d / "zones").mkdir(exist_ok=True)
    (d / "zones" / "upd.zone").write_text(ZONE_TEXT)
    (d / "policies.toml").write_text(POLICY)
    lines = [
        "[server]",
        f'listen = ["127.0.0.1@{port}"]',
        'state-dir = "state"',
        'key-directory = "keys"',
        'policies = "policies.toml"',
        "",
    ]
    for name, secret in (keys if keys is not None else KEYS).items():
        lines += [f'[key."{name}"]', 'algorithm = "hmac-sha256"', f'secret = "{secret}"', ""]
    lines += [f'[zone."{ZONE}"]', 'file = "zones/upd.zone"', 'dnssec-policy = "fast"']
    lines.append('allow-transfer = ["127.0.0.1"]')
    if allow_update is not None:
        lines.append(f"allow-update = {_toml_list(allow_update)}")
    if update_policy is not None:
        lines.append(f"update-policy = {_toml_list(update_policy)}")
    (d / "dnsseal.toml").write_text("\n".join(lines) + "\n")
    log = d / "out.txt"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "-v", "serve", "-c", "dnsseal.toml"], cwd=d, stdout=out, stderr=out
        )
    try:
        try:
            wait_for_dns(port, ZONE, proc, timeout=30)
        except RuntimeError as e:
            raise AssertionError(f"{e}\n{log.read_text()[-3000:]}") from None
        yield Server(port, d, log)
    finally:
        stop(proc)


@contextmanager
def named_server(
    d: Path,
    *,
    allow_update: list[str] | None = None,
    update_policy: list[str] | None = None,
) -> Iterator[Server]:
    """BIND's named serving ZONE under dnssec-policy in ``d``, with the same TSIG keys.
    ``allow_update`` / ``update_policy``: named.conf statements, without the semicolons."""
    named = require_tool("named")
    d.mkdir(parents=True, exist_ok=True)
    (d / "keys").mkdir(exist_ok=True)
    port = free_port()
    (d / "upd.db").write_text(ZONE_TEXT)
    keys = "".join(
        f'key "{n}" {{ algorithm hmac-sha256; secret "{s}"; }};\n' for n, s in KEYS.items()
    )
    access = ""
    if allow_update is not None:
        access += "allow-update { " + "".join(f"{a}; " for a in allow_update) + "};"
    if update_policy is not None:
        access += "update-policy { " + "".join(f"{r}; " for r in update_policy) + "};"
    conf = d / "named.conf"
    conf.write_text(
        f"""options {{
    directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file "{d}/named.pid";
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
{keys}
zone "{ZONE}" {{
    type primary; file "upd.db"; dnssec-policy default; inline-signing no;
    key-directory "keys"; {access}
}};
"""
    )
    run_tool(["named-checkconf", conf])
    log = d / "named.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([named, "-g", "-c", str(conf)], stdout=out, stderr=out)
    try:
        try:
            wait_for_dns(port, ZONE, proc, timeout=30)
            _wait_signed(port, proc)
        except RuntimeError as e:
            raise AssertionError(f"{e}\n{log.read_text()[-3000:]}") from None
        yield Server(port, d, log)
    finally:
        stop(proc)


def _wait_signed(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    q = dns.message.make_query(ZONE, dns.rdatatype.DNSKEY)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"named exited with {proc.returncode}")
        r = exchange(port, q.to_wire())
        if r is not None and dns.message.from_wire(r).answer:
            return
        time.sleep(0.2)
    raise RuntimeError("named did not sign the zone")


def exchange(port: int, wire: bytes, timeout: float = 3) -> bytes | None:
    """Send ``wire`` by UDP to 127.0.0.1@port; the reply, or None if none came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def sign(
    wire: bytes,
    keyname: str,
    secret: bytes,
    algorithm: dns.name.Name | str,
    time_signed: int,
    *,
    fudge: int = 300,
    mac_len: int | None = None,
) -> bytes:
    """``wire`` with a TSIG record appended, its MAC cut to ``mac_len`` octets if given
    (dnspython always signs with the clock and the full MAC)."""
    key = dns.tsig.Key(keyname, secret, algorithm)
    qid = struct.unpack_from("!H", wire)[0]
    rd = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, 0, fudge, b"", qid, 0, b""
    )
    signed, _ = dns.tsig.sign(wire, key, rd, time_signed)
    if mac_len is not None:
        signed = signed.replace(mac=signed.mac[:mac_len])
    rdata = signed.to_wire()
    assert rdata is not None
    rr = dns.name.from_text(keyname).to_wire() + struct.pack("!HHIH", 250, 255, 0, len(rdata))
    arcount = struct.unpack_from("!H", wire, 10)[0]
    return wire[:10] + struct.pack("!H", arcount + 1) + wire[12:] + rr + rdata


@dataclass(frozen=True)
class TsigReply:
    """What a reply says about TSIG: its rcode, and the TSIG record's fields (None when
    there is no TSIG record)."""

    rcode: str
    error: str | None
    mac_len: int | None
    time_signed: int | None
    other: bytes | None
    algorithm: str | None


def tsig_reply(wire: bytes | None) -> TsigReply | None:
    """Read a reply's rcode and TSIG record without checking its MAC."""
    if wire is None:
        return None
    m = dns.message.from_wire(wire, keyring=lambda _msg, _name: False)
    rcode = dns.rcode.to_text(m.rcode())
    if not m.tsig:
        return TsigReply(rcode, None, None, None, None, None)
    t = m.tsig[0]
    # TSIG error 16 is BADSIG (dnspython prints the EDNS meaning of 16, BADVERS)
    error = "BADSIG" if t.error == 16 else dns.rcode.to_text(t.error)
    return TsigReply(rcode, error, len(t.mac), t.time_signed, t.other, t.algorithm.to_text())


def nsupdate(
    port: int, script: str, key: str | None = "ddns", secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    """BIND's nsupdate sending ``script`` for ZONE to 127.0.0.1@port, signed with ``key``."""
    args = [require_tool("nsupdate")]
    if key is not None:
        args += ["-y", f"hmac-sha256:{key}:{secret or KEYS.get(key, SECRET_B64)}"]
    body = f"server 127.0.0.1 {port}\nzone {ZONE}\n{script}\nsend\n"
    return subprocess.run(args, input=body, capture_output=True, text=True, timeout=30, check=False)


def update_rcode(result: subprocess.CompletedProcess[str]) -> str:
    """NOERROR, or what nsupdate says the update failed with (``REFUSED``,
    ``NOTAUTH(BADSIG)``, ...)."""
    if result.returncode == 0:
        return "NOERROR"
    out = result.stdout + result.stderr
    for line in out.splitlines():
        if "update failed:" in line:
            return line.split("update failed:", 1)[1].strip()
    return out.strip().splitlines()[-1] if out.strip() else f"exit {result.returncode}"


def query(port: int, name: str, rtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, want_dnssec=True)
    r = exchange(port, q.to_wire())
    assert r is not None, f"no answer for {name} {rtype}"
    return dns.message.from_wire(r)


def rdata_texts(port: int, name: str, rtype: str) -> set[str]:
    """The RDATA (as text) of ``name`` ``rtype`` as served."""
    want = dns.rdatatype.from_text(rtype)
    return {
        rd.to_text() for rr in query(port, name, rtype).answer if rr.rdtype == want for rd in rr
    }


def foreign_dnskey(d: Path, flags: str = "KSK") -> str:
    """A peer's DNSKEY RDATA for ZONE, made by dnssec-keygen (ECDSA P-256)."""
    d.mkdir(parents=True, exist_ok=True)
    args = ["dnssec-keygen", "-q", "-K", str(d), "-a", "ECDSAP256SHA256"]
    if flags == "KSK":
        args += ["-f", "KSK"]
    name = run_tool([*args, ZONE]).stdout.strip()
    text = (d / f"{name}.key").read_text()
    line = next(ln for ln in text.splitlines() if ln and not ln.startswith(";"))
    return line.split("DNSKEY", 1)[1].strip()


def cds_of(dnskey: str) -> str:
    """The CDS (SHA-256) RDATA for a DNSKEY RDATA text of ZONE."""
    import dns.dnssec
    import dns.rdata

    rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, dnskey)
    ds = dns.dnssec.make_ds(ZONE, rd, "SHA256")  # type: ignore[arg-type]
    return ds.to_text()
