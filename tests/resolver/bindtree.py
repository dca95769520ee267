"""A local DNSSEC hierarchy signed with BIND's dnssec-keygen/dnssec-signzone and served by
one real ``named`` on 127.0.0.1 (one named can serve every zone of the tree; DS queries are
answered from the parent).  Bogus variants are made by editing the signed zone files the
way a broken signer or an attacker would.

root (NSEC) -> test. (NSEC3, opt-out) -> secure, nsec (NSEC), unsigned (no DS),
ldns (signed by ldns-signzone), knot (kzonesign), rsa, ed, sha1alg, sha384, sha1ds
(algorithms and digests), tampered, expired, dsmismatch, nokey, nonsec3, badsigner;
root -> insec. (no DS).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import pytest

from conftest import free_port, require_tool, run_tool

SOA = "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n"


def _zone_text(origin: str, body: str) -> str:
    return f"$ORIGIN {origin}\n$TTL 300\n{SOA}@ NS ns.test.\n{body}"


LEAF = "www A 192.0.2.1\n"
CHILDREN: dict[str, str] = {
    "secure": LEAF + "*.wild A 192.0.2.7\nalias CNAME www.nsec.test.\nsub A 192.0.2.9\n",
    "nsec": LEAF,
    "unsigned": LEAF,
    "tampered": LEAF,
    "expired": LEAF,
    "dsmismatch": LEAF,
    "nokey": LEAF,
    "nonsec3": LEAF + "*.wild A 192.0.2.7\n",
    "badsigner": LEAF,
    "rsa": LEAF,
    "ed": LEAF,
    "sha1alg": LEAF,
    "sha384": LEAF,
    "sha1ds": LEAF,
    "ldns": LEAF + "*.wild A 192.0.2.7\n",
    "knot": LEAF + "*.wild A 192.0.2.7\n",
}
UNSIGNED = {"unsigned"}
NSEC_ZONES = {"nsec"}
# Other algorithms and DS digest types, each in its own secure zone.
ALGORITHM = {"rsa": "RSASHA256", "ed": "ED25519", "sha1alg": "NSEC3RSASHA1"}
DIGEST = {"sha384": "SHA-384", "sha1ds": "SHA-1"}


def _edit(path: Path, fn: Callable[[list[str]], list[str] | None]) -> None:
    out = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields or line.startswith(";"):
            out.append(line)
            continue
        new = fn(fields)
        if new is not None:
            out.append("\t".join(new))
    path.write_text("\n".join(out) + "\n")


def _keygen(d: Path, zone: str, ksk: bool, algorithm: str = "ECDSAP256SHA256") -> str:
    args = ["dnssec-keygen", "-q", "-K", d, "-a", algorithm, "-L", "300"]
    if algorithm.startswith("RSA"):
        args += ["-b", "1024" if not ksk else "2048"]
    if ksk:
        args += ["-f", "KSK"]
    return run_tool([*args, zone]).stdout.strip()


def _ds(d: Path, keyname: str, digest: str = "SHA-256") -> str:
    """The DS line of a key file, e.g. 'secure.test. IN DS 123 13 2 ABC'."""
    return run_tool(["dnssec-dsfromkey", "-a", digest, d / f"{keyname}.key"]).stdout.strip()


def _sign(
    d: Path,
    zone: str,
    unsigned: Path,
    *,
    nsec3: bool,
    optout: bool = False,
    times: tuple[str, str] | None = None,
) -> Path:
    out = d / f"{zone.rstrip('.') or 'root'}.signed"
    args = ["dnssec-signzone", "-q", "-S", "-K", d, "-O", "full", "-f", out, "-o", zone]
    if nsec3:
        args += ["-3", "-", "-H", "0"]
        if optout:
            args += ["-A"]
    if times:
        args += ["-P", "-s", times[0], "-e", times[1]]
    run_tool([*args, unsigned], cwd=d)
    return out


def _sign_ldns(d: Path, zone: str, src: Path) -> tuple[Path, str]:
    """Sign with ldns-keygen + ldns-signzone (NSEC3); returns the file and its DS line."""
    d.mkdir()
    base = run_tool(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone], cwd=d).stdout.strip()
    run_tool(["ldns-signzone", "-n", "-f", d / "signed", src, d / base], cwd=d)
    return d / "signed", (d / f"{base}.ds").read_text().strip()


def _sign_knot(d: Path, zone: str, src: Path) -> tuple[Path, str]:
    """Sign with Knot's kzonesign (NSEC3, ECDSA P-256 CSK); returns the file and its DS."""
    d.mkdir()
    (d / f"{zone}zone").write_text(src.read_text())
    conf = d / "knot.conf"
    conf.write_text(
        f'database:\n  storage: "{d}"\n'
        "policy:\n  - id: p\n    algorithm: ecdsap256sha256\n    nsec3: on\n"
        "    nsec3-iterations: 0\n    nsec3-salt-length: 0\n"
        f'template:\n  - id: default\n    storage: "{d}"\n    file: "%s.zone"\n'
        "    dnssec-signing: on\n    dnssec-policy: p\n"
        f"zone:\n  - domain: {zone}\n"
    )
    run_tool(["kzonesign", "-c", conf, "-o", d / "out", zone], cwd=d)
    ds = run_tool(["keymgr", "-c", conf, zone, "ds"], cwd=d, check=False).stdout
    line = next(x for x in ds.splitlines() if " DS " in x and x.split()[4] == "2")
    return d / "out" / f"{zone}zone", line


OTHER_SIGNERS = {"ldns": _sign_ldns, "knot": _sign_knot}


@dataclass
class Tree:
    directory: Path
    port: int
    zones: list[str]
    anchors: Path  # trust-anchors { . static-ds ...; };
    hints: Path  # named.root-style hints pointing at 127.0.0.1
    proc: subprocess.Popen[bytes]


def build_tree(d: Path) -> tuple[dict[str, Path], str]:
    """Sign every zone; returns zone files by zone name and the root KSK's DS text."""
    files: dict[str, Path] = {}
    test_body = "ns A 127.0.0.1\n"
    for child, body in CHILDREN.items():
        zone = f"{child}.test."
        src = d / f"{child}.zone"
        src.write_text(_zone_text(zone, body))
        test_body += f"{child} NS ns.test.\n"
        if child in UNSIGNED:
            files[zone] = src
            continue
        if child in OTHER_SIGNERS:  # other signer implementations
            files[zone], ds_line = OTHER_SIGNERS[child](d / child, zone, src)
            test_body += f"{child} 300 IN DS {' '.join(ds_line.split()[-4:])}\n"
            continue
        algorithm = ALGORITHM.get(child, "ECDSAP256SHA256")
        ksk = _keygen(d, zone, True, algorithm)
        _keygen(d, zone, False, algorithm)
        times = ("20200101000000", "20200201000000") if child == "expired" else None
        files[zone] = _sign(d, zone, src, nsec3=child not in NSEC_ZONES, times=times)
        ds = _ds(d, ksk, DIGEST.get(child, "SHA-256")).split()
        if child == "dsmismatch":
            ds[-1] = ds[-1][:-4] + ("0000" if ds[-1][-4:] != "0000" else "1111")
        if child == "nokey":
            other = _keygen(d / "spare", zone, True) if (d / "spare").mkdir() is None else ""
            ds = _ds(d / "spare", other).split()
        test_body += f"{child} 300 IN DS {' '.join(ds[-4:])}\n"
    _edit(
        files["tampered.test."],
        lambda f: [*f[:4], "192.0.2.99"] if f[0] == "www.tampered.test." and f[3] == "A" else f,
    )
    _edit(
        files["nonsec3.test."],
        # NSEC3PARAM stays: without it named stops sending RRSIGs for the zone at all.
        lambda f: None if f[3] == "NSEC3" or (f[3] == "RRSIG" and f[4] == "NSEC3") else f,
    )
    _edit(
        files["badsigner.test."],
        lambda f: (
            [*f[:11], "test.", *f[12:]]
            if f[0] == "www.badsigner.test." and f[3] == "RRSIG" and f[4] == "A"
            else f
        ),
    )
    src = d / "test.zone"
    src.write_text(_zone_text("test.", test_body))
    ksk = _keygen(d, "test.", True)
    _keygen(d, "test.", False)
    files["test."] = _sign(d, "test.", src, nsec3=True, optout=True)
    test_ds = _ds(d, ksk).split()
    src = d / "root.zone"
    src.write_text(
        "$ORIGIN .\n$TTL 300\n. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n"
        ". NS ns.test.\nns.test. A 127.0.0.1\n"
        f"test. NS ns.test.\ntest. 300 IN DS {' '.join(test_ds[-4:])}\n"
        "insec. NS ns.insec.\nns.insec. A 127.0.0.1\n"
    )
    ksk = _keygen(d, ".", True)
    _keygen(d, ".", False)
    files["."] = _sign(d, ".", src, nsec3=False)
    insec = d / "insec.zone"
    insec.write_text(
        "$ORIGIN insec.\n$TTL 300\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n"
        "@ NS ns\nns A 127.0.0.1\nwww A 192.0.2.1\n"
    )
    files["insec."] = insec
    return files, " ".join(_ds(d, ksk).split()[-4:])


def wait_for(port: int, proc: subprocess.Popen[bytes], log: Path, name: str = "test.") -> None:
    """Poll until the server on ``port`` answers ``name`` SOA; fail with its log if not."""
    q = dns.message.make_query(name, "SOA")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.3)
            if r.rcode() == dns.rcode.NOERROR and r.answer:
                return
        except (OSError, dns.exception.Timeout):
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError(f"server on port {port} did not start:\n{log.read_text()}")


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until something answers on 127.0.0.1@port: a NOTIFY for a zone neither serves
    is answered at once (an error), without any upstream query."""
    q = dns.message.make_query("example.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            dns.query.udp(q, "127.0.0.1", port=port, timeout=0.3)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    pytest.fail(f"nothing answers on port {port}: {log.read_text(errors='replace')[-2000:]}")


def start_named(d: Path, files: dict[str, Path]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    zones = "".join(f'zone "{z}" {{ type primary; file "{p}"; }};\n' for z, p in files.items())
    conf = d / "named.conf"
    conf.write_text(
        f'options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; '
        f'listen-on-v6 {{ none; }}; pid-file "{d}/named.pid"; recursion no; '
        "dnssec-validation no; notify no; };\ncontrols { };\n" + zones
    )
    named = require_tool("named")
    with (d / "named.log").open("wb") as log:
        proc = subprocess.Popen([named, "-g", "-c", str(conf)], stdout=log, stderr=log)
    wait_for(port, proc, d / "named.log")
    return proc, port


def tree(tmp: Path) -> Iterator[Tree]:
    files, root_ds = build_tree(tmp)
    proc, port = start_named(tmp, files)
    try:
        tag, alg, dt, digest = root_ds.split()
        anchors = tmp / "anchors.conf"
        anchors.write_text(f'trust-anchors {{\n  . static-ds {tag} {alg} {dt} "{digest}";\n}};\n')
        hints = tmp / "root.hints"
        hints.write_text(". 3600000 NS ns.test.\nns.test. 3600000 A 127.0.0.1\n")
        yield Tree(tmp, port, list(files), anchors, hints, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_unbound(t: Tree) -> tuple[subprocess.Popen[bytes], int]:
    """A validating Unbound over the same tree: stub zones send every zone to named's port,
    the same root DS as trust anchor."""
    port = free_port()
    d = t.directory
    ds = " ".join(t.anchors.read_text().split("static-ds")[1].replace('"', "").split()[:4])
    (d / "unbound.anchor").write_text(f". IN DS {ds.rstrip(';')}\n")
    stubs = "".join(
        f'stub-zone:\n  name: "{z}"\n  stub-addr: 127.0.0.1@{t.port}\n' for z in t.zones
    )
    conf = d / "unbound.conf"
    conf.write_text(
        "server:\n"
        f"  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n"
        '  username: ""\n  chroot: ""\n'
        f'  directory: "{d}"\n  pidfile: "{d}/unbound.pid"\n  use-syslog: no\n'
        f'  logfile: "{d}/unbound.log"\n  do-not-query-localhost: no\n'
        f'  trust-anchor-file: "{d}/unbound.anchor"\n  qname-minimisation: no\n'
        '  module-config: "validator iterator"\n  ede: yes\n  val-log-level: 2\n'
        '  verbosity: 1\n  local-zone: "test." nodefault\n'
        "remote-control:\n  control-enable: no\n" + stubs
    )
    run_tool(["unbound-checkconf", conf])
    unbound = require_tool("unbound")
    (d / "unbound.log").touch()
    proc = subprocess.Popen(
        [unbound, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(port, proc, d / "unbound.log", "secure.test.")
    return proc, port
