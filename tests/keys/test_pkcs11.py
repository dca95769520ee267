"""Keys in a SoftHSMv2 token, with the real tools as oracles.

A token is made in a temporary directory (``SOFTHSM2_CONF`` points at it).  Keys made by
``pkcs11-tool``, by Knot's ``keymgr`` (keystore ``backend: pkcs11``) and by dnsseal are linked to
key files, used to sign, and every signed zone is checked by BIND's ``dnssec-verify`` and
``ldns-verify-zone``; a key dnsseal made in the token is imported by ``keymgr import-pkcs11``
and signs with ``kzonesign``.

dnsseal runs as a subprocess here: a PKCS#11 module is initialised once per process with
the SoftHSM configuration of that moment, so each command gets a fresh process, as a user's
would.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.name
import pytest

from conftest import free_port, require_tool, run_tool, stop, wait_for_dns
from dnsseal.crypto import software
from dnsseal.keys import algorithms
from dnsseal.keys.model import FLAG_ZONE, MAX_TAG_TRIES, Key, tag_collides
from dnsseal.storage.keydir import KeyDirectory

from .test_tag_collision import _revoked_onto, _shifted

pytestmark = pytest.mark.interop

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "dnsseal-test"
PIN = "1234"
ZONE = "hsm.example."
ZONE_TEXT = """\
$TTL 300
@       SOA   ns1 hostmaster 2026120701 3600 600 864000 300
@       NS    ns1
ns1     A     192.0.2.53
www     A     192.0.2.80
        AAAA  2001:db8::80
mail    MX    10 www
sub     NS    ns.sub
ns.sub  A     192.0.2.99
"""
ALG13 = algorithms.get(13)
# pkcs11-tool --key-type for each algorithm
KEY_TYPES = {
    "ECDSAP256SHA256": "EC:prime256v1",
    "ECDSAP384SHA384": "EC:secp384r1",
    "RSASHA256": "rsa:2048",
    "ED25519": "EC:edwards25519",
}


@dataclass(frozen=True)
class Token:
    dir: Path
    pin_file: Path
    env: dict[str, str]

    def uri(self, path: str = "") -> str:
        """A URI for this token: ``path`` attributes (``object=...;id=...``) added."""
        sep = ";" if path else ""
        return f"pkcs11:token={TOKEN}{sep}{path}?module-path={MODULE}&pin-source={self.pin_file}"

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in args]
        argv[0] = require_tool(argv[0])
        proc = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def dnsseal(self, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "dnsseal.cli.main", *map(str, args)]
        proc = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        if ok and proc.returncode != 0:
            pytest.fail(f"dnsseal {' '.join(argv[3:])} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def keypair(self, key_type: str, label: str, key_id: str) -> None:
        self.run(
            "pkcs11-tool", "--module", MODULE, "--token-label", TOKEN, "--login",
            "--pin", PIN, "--keypairgen", "--key-type", key_type,
            "--label", label, "--id", key_id,
        )  # fmt: skip


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {d}/tokens\nobjectstore.backend = file\n")
    pin_file = d / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    env.pop("DNSSEAL_PKCS11_MODULE", None)
    src = Path(__file__).resolve().parents[2] / "src"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    tok = Token(d, pin_file, env)
    tok.run(
        "softhsm2-util", "--init-token", "--free", "--label", TOKEN,
        "--pin", PIN, "--so-pin", "5678",
    )  # fmt: skip
    yield tok


def _verify(signed: Path, *, single_key: bool = False) -> None:
    """Both outside verifiers accept ``signed``."""
    extra = ["-z"] if single_key else []
    run_tool(["dnssec-verify", *extra, "-o", ZONE, signed])
    run_tool(["ldns-verify-zone", signed])


def _zone(d: Path) -> Path:
    f = d / "zone.db"
    f.write_text(ZONE_TEXT)
    return f


def _signer_tags(signed: Path) -> set[int]:
    tags = set()
    for line in signed.read_text().splitlines():
        parts = line.split()
        # owner [TTL] [class] RRSIG (not the RRSIG in an NSEC type bitmap)
        if "RRSIG" in parts[1:4] and not line.startswith(";"):
            i = parts.index("RRSIG")
            if parts[i - 1] in ("IN", "RRSIG") or parts[i - 1].isdigit():
                tags.add(int(parts[i + 7]))
    return tags


def _tag(basename: str) -> int:
    return int(basename.rsplit("+", 1)[1])


@pytest.mark.parametrize("alg", list(KEY_TYPES))
def test_pkcs11_tool_keys_sign_a_zone(token: Token, tmp_path: Path, alg: str) -> None:
    n = list(KEY_TYPES).index(alg)
    token.keypair(KEY_TYPES[alg], f"ksk-{alg}", f"{0x10 + n:02x}")
    token.keypair(KEY_TYPES[alg], f"zsk-{alg}", f"{0x20 + n:02x}")
    # The KSK by label, the ZSK by CKA_ID: both ways RFC 7512 names a key.
    ksk = token.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", alg, "-f", "KSK",
        "-l", token.uri(f"object=ksk-{alg}"), ZONE,
    ).stdout.strip()  # fmt: skip
    zsk = token.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", alg, "-l", token.uri(f"id=%{0x20 + n:02X}"), ZONE
    ).stdout.strip()
    assert re.fullmatch(rf"K{re.escape(ZONE)}\+\d{{3}}\+\d{{5}}", ksk), ksk
    private = tmp_path / f"{ksk}.private"
    assert private.stat().st_mode & 0o777 == 0o600
    # The .private holds only the reference, as dnssec-keyfromlabel -E pkcs11 writes it.
    lines = dict(line.split(": ", 1) for line in private.read_text().splitlines())
    assert base64.b64decode(lines["Engine"]) == b"pkcs11\0"
    assert base64.b64decode(lines["Label"]) == token.uri(f"object=ksk-{alg}").encode() + b"\0"
    assert "PrivateKey" not in lines and "PrivateExponent" not in lines
    assert (tmp_path / f"{ksk}.state").read_text().count("KSK: yes") == 1

    signed = tmp_path / "zone.signed"
    token.dnsseal("signzone", "-S", "-K", tmp_path, "-o", ZONE, "-f", signed, _zone(tmp_path))
    _verify(signed)
    assert _signer_tags(signed) == {_tag(ksk), _tag(zsk)}


@pytest.mark.slow
def test_signing_workers_each_open_a_session(token: Token, tmp_path: Path) -> None:
    # Over 8000 signatures, so that signzone -n 2 hands them to worker processes (forked after
    # the parent has used the module): each must initialise it again and log in itself.
    token.keypair("EC:prime256v1", "workers", "30")
    key = token.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", "13", "-f", "KSK", "-l", token.uri("object=workers"),
        ZONE,
    ).stdout.strip()  # fmt: skip
    zone = _zone(tmp_path)
    zone.write_text(ZONE_TEXT + "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(4200)))
    signed = tmp_path / "zone.signed"
    out = token.dnsseal(
        "signzone", "-n", "2", "-t", "-z", "-K", tmp_path, "-o", ZONE, "-f", signed, zone,
        tmp_path / f"{key}.key",
    ).stdout  # fmt: skip
    assert re.search(r"Signatures generated:\s+8\d{3}", out), out
    _verify(signed, single_key=True)


def _knot_conf(d: Path, zone: str) -> Path:
    conf = d / "knot.conf"
    conf.write_text(
        f"""server:
    rundir: "{d}"
database:
    storage: "{d}"
keystore:
  - id: hsm
    backend: pkcs11
    config: "pkcs11:token={TOKEN};pin-value={PIN} {MODULE}"
policy:
  - id: hsm
    keystore: hsm
    algorithm: ecdsap256sha256
    manual: on
zone:
  - domain: {zone}
    storage: "{d}"
    file: "zone.db"
    dnssec-signing: on
    dnssec-policy: hsm
"""
    )
    return conf


def test_knot_key_in_the_token_is_used_by_dnsseal(token: Token, tmp_path: Path) -> None:
    kd = tmp_path / "knot"
    kd.mkdir()
    conf = _knot_conf(kd, ZONE)
    key_id = token.run("keymgr", "-c", conf, ZONE, "generate", "algorithm=13", "ksk=yes")
    key_id_hex = key_id.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", key_id_hex), key_id.stdout
    pct = "".join(f"%{key_id_hex[i : i + 2]}" for i in range(0, len(key_id_hex), 2))
    keys = tmp_path / "keys"
    keys.mkdir()
    base = token.dnsseal(
        "keyfromlabel", "-K", keys, "-a", "ECDSAP256SHA256", "-f", "KSK",
        "-l", token.uri(f"id={pct}"), ZONE,
    ).stdout.strip()  # fmt: skip
    # Same DNSKEY as Knot publishes for it.
    knot_dnskey = token.run("keymgr", "-c", conf, ZONE, "dnskey").stdout.split()
    ours = (keys / f"{base}.key").read_text().splitlines()[-1].split()
    assert knot_dnskey[1:5] == ["DNSKEY", "257", "3", "13"], knot_dnskey
    assert "".join(ours[ours.index("DNSKEY") + 4 :]) == "".join(knot_dnskey[5:])
    signed = tmp_path / "zone.signed"
    token.dnsseal("signzone", "-S", "-z", "-K", keys, "-o", ZONE, "-f", signed, _zone(tmp_path))
    _verify(signed, single_key=True)
    assert _signer_tags(signed) == {_tag(base)}


def test_dnsseal_key_in_the_token_is_used_by_knot(token: Token, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    base = token.dnsseal(
        "keystore", "generate", "-K", keys, "-a", "ECDSAP256SHA256", "-f", "KSK",
        "-n", "for-knot", "-l", token.uri(), ZONE,
    ).stdout.strip()  # fmt: skip
    label = (keys / f"{base}.private").read_text().split("Label: ")[1].split()[0]
    uri = base64.b64decode(label).rstrip(b"\0").decode()
    m = re.search(r";id=((?:%[0-9A-F]{2})+)", uri)
    assert m and ";object=for-knot" in uri, uri
    key_id = m.group(1).replace("%", "").lower()
    # Knot imports it by CKA_ID and signs with it.
    kd = tmp_path / "knot"
    kd.mkdir()
    conf = _knot_conf(kd, ZONE)
    token.run(
        "keymgr", "-c", conf, ZONE, "import-pkcs11", key_id,
        "algorithm=13", "size=256", "ksk=yes", "zsk=yes",
    )  # fmt: skip
    (kd / "zone.db").write_text(ZONE_TEXT)
    out = kd / "out"
    out.mkdir()
    token.run("kzonesign", "-c", conf, "-o", out, ZONE)
    signed = out / "zone.db"
    _verify(signed, single_key=True)
    assert _signer_tags(signed) == {_tag(base)}
    # And dnsseal signs with it too.
    ours = tmp_path / "ours.signed"
    token.dnsseal("signzone", "-S", "-z", "-K", keys, "-o", ZONE, "-f", ours, _zone(tmp_path))
    _verify(ours, single_key=True)


def test_keystore_test_and_bench(token: Token) -> None:
    out = token.dnsseal("keystore", "test", token.uri()).stdout
    for alg in KEY_TYPES:
        assert re.search(rf"{alg}\s+ok$", out, re.M), out
    bench = token.dnsseal(
        "keystore", "bench", "-s", "0.2", "-a", "ECDSAP256SHA256", token.uri()
    ).stdout
    m = re.search(r"ECDSAP256SHA256\s+(\d+) signatures/s", bench)
    assert m and int(m.group(1)) > 0, bench
    soft = token.dnsseal("keystore", "bench", "-s", "0.2", "-a", "13", "software").stdout
    assert re.search(r"ECDSAP256SHA256\s+\d+ signatures/s", soft), soft


def test_group_readable_pin_file_is_refused(token: Token, tmp_path: Path) -> None:
    token.keypair("EC:prime256v1", "pinmode", "40")
    loose = tmp_path / "pin"
    loose.write_text(PIN)
    loose.chmod(0o640)
    uri = token.uri("object=pinmode").replace(str(token.pin_file), str(loose))
    r = token.dnsseal("keyfromlabel", "-K", tmp_path, "-a", "13", "-l", uri, ZONE, ok=False)
    assert r.returncode == 1
    assert f"{loose}: PIN file is accessible to group or others (mode 640)" in r.stderr
    assert "Traceback" not in r.stderr and PIN not in r.stderr
    assert list(tmp_path.glob("K*")) == []


def test_errors_name_the_problem(token: Token, tmp_path: Path) -> None:
    token.keypair("EC:prime256v1", "err-a", "50")
    token.keypair("EC:prime256v1", "err-b", "51")
    # No such key.
    r = token.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", "13", "-l", token.uri("object=nope"), ZONE, ok=False
    )
    assert r.returncode == 1 and "no private key matches" in r.stderr, r.stderr
    # A P-256 key linked as P-384.
    r = token.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", "14", "-l", token.uri("object=err-a"), ZONE, ok=False
    )
    assert r.returncode == 1 and "curve" in r.stderr, r.stderr
    # A wrong PIN, given as pin-value, is not echoed.
    bad = token.uri("object=err-a").replace(f"pin-source={token.pin_file}", "pin-value=9999")
    r = token.dnsseal("keyfromlabel", "-K", tmp_path, "-a", "13", "-l", bad, ZONE, ok=False)
    assert r.returncode == 1 and "PIN incorrect" in r.stderr and "9999" not in r.stderr
    # A .private whose Label names another key than the .key: signing refuses it.
    base = token.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", "13", "-l", token.uri("object=err-a"), ZONE
    ).stdout.strip()
    private = tmp_path / f"{base}.private"
    other = base64.b64encode(token.uri("object=err-b").encode() + b"\0").decode()
    text = re.sub(r"^Label: .*$", f"Label: {other}", private.read_text(), flags=re.M)
    private.write_text(text)
    r = token.dnsseal(
        "signzone", "-z", "-K", tmp_path, "-o", ZONE, "-f", tmp_path / "s", _zone(tmp_path),
        tmp_path / f"{base}.key", ok=False,
    )  # fmt: skip
    assert r.returncode == 1 and "does not match the public key" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()
    assert "Traceback" not in r.stderr


SERVE_POLICY = """
[policy.hsm]
dnskey-ttl = 2
publish-safety = 1
retire-safety = 1
purge-keys = 5
signatures-refresh = 20
signatures-validity = 30
signatures-validity-dnskey = 30
max-zone-ttl = 2
zone-propagation-delay = 1
parent-ds-ttl = 2
parent-propagation-delay = 1
keys = [
  { role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
]
"""


@pytest.mark.slow
def test_server_signs_with_hsm_keys(token: Token, tmp_path: Path) -> None:
    # dnsseal serve adopts the HSM keys in its key directory for the policy and keeps the zone
    # signed with them: the transferred zone verifies and every RRSIG is by a token key.  The
    # keys' labels name no module: the server's pkcs11-module option gives it.
    token.keypair("EC:prime256v1", "serve-ksk", "70")
    token.keypair("EC:prime256v1", "serve-zsk", "71")
    keys = tmp_path / "keys"
    keys.mkdir()
    with_env = Token(token.dir, token.pin_file, dict(token.env, DNSSEAL_PKCS11_MODULE=MODULE))
    tags = {
        _tag(
            with_env.dnsseal(
                "keyfromlabel", "-K", keys, "-a", "13", *flag,
                "-l", f"pkcs11:token={TOKEN};object={o}?pin-source={token.pin_file}", ZONE,
            ).stdout.strip()
        )
        for o, flag in (("serve-ksk", ["-f", "KSK"]), ("serve-zsk", []))
    }  # fmt: skip
    (tmp_path / "zone.db").write_text(ZONE_TEXT)
    (tmp_path / "policies.toml").write_text(SERVE_POLICY)
    port = free_port()
    conf = tmp_path / "dnsseal.toml"
    conf.write_text(
        f"""[server]
listen = ["127.0.0.1@{port}"]
state-dir = "state"
key-directory = "keys"
policies = "policies.toml"
pkcs11-module = "{MODULE}"

[zone."{ZONE}"]
file = "zone.db"
dnssec-policy = "hsm"
allow-transfer = ["127.0.0.1"]
"""
    )
    argv = [sys.executable, "-m", "dnsseal.cli.main", "-v", "serve", "-c", str(conf)]
    with (tmp_path / "out.txt").open("ab") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=token.env, stdout=out, stderr=out)
    try:
        try:
            wait_for_dns(port, ZONE, proc, timeout=60)
        except RuntimeError as e:
            pytest.fail(f"{e}\n{(tmp_path / 'out.txt').read_text()}")
        axfr = run_tool(["dig", "@127.0.0.1", "-p", str(port), ZONE, "AXFR", "+nocmd"]).stdout
    finally:
        stop(proc)
    signed = tmp_path / "served.zone"
    signed.write_text(axfr)
    _verify(signed)
    assert _signer_tags(signed) == tags
    assert list(keys.glob("*.private")) and len(list(keys.glob("*.key"))) == 2  # no new keys


def test_module_by_name_or_from_the_environment(token: Token, tmp_path: Path) -> None:
    # A label as people write it for BIND has no module-path: the module then comes from
    # $DNSSEAL_PKCS11_MODULE, or the URI names it by module-name.
    token.keypair("EC:prime256v1", "no-module", "80")
    bare = f"pkcs11:token={TOKEN};object=no-module?pin-source={token.pin_file}"
    r = token.dnsseal("keyfromlabel", "-K", tmp_path, "-a", "13", "-l", bare, ZONE, ok=False)
    assert r.returncode == 1 and "DNSSEAL_PKCS11_MODULE" in r.stderr, r.stderr
    with_env = Token(token.dir, token.pin_file, dict(token.env, DNSSEAL_PKCS11_MODULE=MODULE))
    base = with_env.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", "13", "-f", "KSK", "-l", bare, ZONE
    ).stdout.strip()
    signed = tmp_path / "zone.signed"
    with_env.dnsseal("signzone", "-S", "-z", "-K", tmp_path, "-o", ZONE, "-f", signed,
                     _zone(tmp_path))  # fmt: skip
    _verify(signed, single_key=True)
    assert _signer_tags(signed) == {_tag(base)}
    by_name = f"pkcs11:token={TOKEN}?module-name=softhsm2&pin-source={token.pin_file}"
    listing = token.dnsseal("keystore", "list", by_name).stdout
    assert re.search(r"^%80\tno-module\tEC$", listing, re.M), listing


def _served_dnskey_tags(port: int) -> set[int]:
    import dns.dnssec
    import dns.message
    import dns.query

    q = dns.message.make_query(ZONE, "DNSKEY", want_dnssec=True)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
    return {dns.dnssec.key_id(rd) for rr in r.answer if rr.rdtype == 48 for rd in rr}


@pytest.mark.slow
def test_policy_keys_made_in_the_token_through_a_zsk_roll(token: Token, tmp_path: Path) -> None:
    # A policy whose keys live in the token (key-store): the server's key manager makes the
    # KSK and ZSK there, then the ZSK's successor, and the zone stays verifiably signed.
    uri = token.uri()
    policy = SERVE_POLICY.replace(
        '{ role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" }',
        f'{{ role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256", '
        f'key-store = "{uri}" }}',
    ).replace(
        '{ role = "zsk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" }',
        f'{{ role = "zsk", lifetime = "25s", algorithm = "ECDSAP256SHA256", key-store = "{uri}" }}',
    )
    assert policy.count("key-store") == 2
    (tmp_path / "keys").mkdir()
    (tmp_path / "zone.db").write_text(ZONE_TEXT)
    (tmp_path / "policies.toml").write_text(policy)
    port = free_port()
    conf = tmp_path / "dnsseal.toml"
    conf.write_text(
        f"""[server]
listen = ["127.0.0.1@{port}"]
state-dir = "state"
key-directory = "keys"
policies = "policies.toml"

[zone."{ZONE}"]
file = "zone.db"
dnssec-policy = "hsm"
allow-transfer = ["127.0.0.1"]
"""
    )
    argv = [sys.executable, "-m", "dnsseal.cli.main", "-v", "serve", "-c", str(conf)]
    log = tmp_path / "out.txt"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=token.env, stdout=out, stderr=out)
    try:
        try:
            wait_for_dns(port, ZONE, proc, timeout=60)
        except RuntimeError as e:
            pytest.fail(f"{e}\n{log.read_text()}")
        first = _served_dnskey_tags(port)
        assert len(first) == 2, log.read_text()
        deadline = time.monotonic() + 150
        now_tags = first
        while time.monotonic() < deadline:
            now_tags = _served_dnskey_tags(port)
            # the first ZSK is gone, a successor serves (the KSK stays)
            if len(now_tags & first) == 1 and len(now_tags) == 2:
                break
            time.sleep(1)
        assert len(now_tags & first) == 1 and len(now_tags) == 2, (first, now_tags, log.read_text())
        axfr = run_tool(["dig", "@127.0.0.1", "-p", str(port), ZONE, "AXFR", "+nocmd"]).stdout
    finally:
        stop(proc)
    signed = tmp_path / "served.zone"
    signed.write_text(axfr)
    _verify(signed)
    assert _signer_tags(signed) == now_tags
    # Every key the policy made is a reference to the token, none holds key material.
    privates = list((tmp_path / "keys").glob("*.private"))
    assert len(privates) >= 3
    for p in privates:
        text = p.read_text()
        assert "Label: " in text and "PrivateKey" not in text, text


THREADS_SCRIPT = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from dnsseal.crypto import keystore, wire
from dnsseal.storage.keydir import load_key
key = load_key(sys.argv[1])
pub = wire.public_key_object(key.algorithm, key.public_key)
barrier = threading.Barrier(8)
def work(i):
    barrier.wait()
    sign = keystore.sign_function(key)  # the first use of the module, in 8 threads at once
    return all(wire.verify(13, pub, sign(b"%d" % j), b"%d" % j) for j in range(50))
with ThreadPoolExecutor(8) as ex:
    print(sum(ex.map(work, range(8))))
"""


def test_threads_share_the_module_and_session(token: Token, tmp_path: Path) -> None:
    # The server signs zones in threads: the first uses of a module may come at once (this
    # failed with "already initialized" before loading and logging in took a lock).
    token.keypair("EC:prime256v1", "threads", "90")
    base = token.dnsseal(
        "keyfromlabel", "-K", tmp_path, "-a", "13", "-l", token.uri("object=threads"), ZONE
    ).stdout.strip()
    for _ in range(3):
        r = subprocess.run(
            [sys.executable, "-c", THREADS_SCRIPT, str(tmp_path / f"{base}.key")],
            env=token.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert r.returncode == 0 and r.stdout.strip() == "8", r.stderr


def _knot_offline_conf(d: Path, role: str) -> Path:
    """Knot with an offline-KSK policy: ``online`` (ZSKs, makes requests, imports responses)
    or ``ksk`` (Knot's own offline KSK signer, to compare with)."""
    conf = d / "knot.conf"
    conf.write_text(
        f"""server:
    rundir: "{d}"
database:
    storage: "{d}"
policy:
  - id: offline
    algorithm: ecdsap256sha256
    manual: on
    offline-ksk: on
    dnskey-ttl: 3600
    zone-max-ttl: 3600
    zsk-lifetime: 30d
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: "zone.db"
    dnssec-signing: on
    dnssec-policy: offline
"""
    )
    (d / "zone.db").write_text(ZONE_TEXT)
    assert role in ("online", "ksk")
    return conf


def test_offline_ksk_in_the_token_signs_knots_key_requests(token: Token, tmp_path: Path) -> None:
    # Knot is the online signer (ZSKs only); dnsseal holds the KSK in the token, signs Knot's
    # Key Signing Request, and Knot signs the zone with the Signed Key Response it imports.
    online = tmp_path / "online"
    online.mkdir()
    conf = _knot_offline_conf(online, "online")
    token.run("keymgr", "-c", conf, ZONE, "pregenerate", "+60d")
    request = tmp_path / "request.ksr"
    request.write_text(token.run("keymgr", "-c", conf, ZONE, "generate-ksr", "+0", "+60d").stdout)
    keys = tmp_path / "keys"
    keys.mkdir()
    ksk = token.dnsseal(
        "keystore", "generate", "-K", keys, "-a", "13", "-f", "KSK", "-P", "-1d", "-A", "-1d",
        "-n", "offline-ksk", "-l", token.uri(), ZONE,
    ).stdout.strip()  # fmt: skip
    response = tmp_path / "response.skr"
    token.dnsseal("ksr", "sign", "-K", keys, "-o", response, request)
    assert "ok" in token.dnsseal("ksr", "validate", response).stdout
    # The same bundle times as Knot's own offline signer gives for the same request.
    kd = tmp_path / "knot-ksk"
    kd.mkdir()
    kconf = _knot_offline_conf(kd, "ksk")
    token.run("keymgr", "-c", kconf, ZONE, "generate", "ksk=yes", "zsk=no",
              "created=-1d", "publish=-1d", "active=-1d")  # fmt: skip
    knots = token.run("keymgr", "-c", kconf, ZONE, "sign-ksr", request).stdout
    times = re.compile(r"^;; SignedKeyResponse 1\.0 (\d+) ", re.M)
    assert times.findall(response.read_text()) == times.findall(knots) != []
    (tmp_path / "knot.skr").write_text(knots)
    assert "ok" in token.dnsseal("ksr", "validate", tmp_path / "knot.skr").stdout
    # Knot takes our response and signs the zone with it.
    token.run("keymgr", "-c", conf, ZONE, "import-skr", response)
    out = online / "out"
    out.mkdir()
    token.run("kzonesign", "-c", conf, "-o", out, ZONE)
    signed = out / "zone.db"
    _verify(signed)
    assert _tag(ksk) in _signer_tags(signed)
    # A response whose signature was tampered with is refused.
    bad = tmp_path / "bad.skr"
    text = response.read_text()
    bad.write_text(
        re.sub(
            r"(RRSIG DNSKEY 13 2 3600 \d+ \d+ \d+ \S+ )(\S)",
            lambda m: m.group(1) + ("B" if m.group(2) == "A" else "A"),
            text,
            count=1,
        )
    )
    assert bad.read_text() != text
    r = token.dnsseal("ksr", "validate", bad, ok=False)
    assert r.returncode == 1 and "does not verify" in r.stderr, r.stderr


def test_knot_signs_dnsseals_key_request(token: Token, tmp_path: Path) -> None:
    # The other direction of the request format: dnsseal's ZSKs (a roll within the period)
    # make the request, Knot's offline KSK signs it, dnsseal checks Knot's response.
    keys = tmp_path / "keys"
    keys.mkdir()
    old = token.dnsseal("keygen", "-K", keys, "-a", "13", "-P", "-1d", "-A", "-1d",
                        "-I", "+30d", "-D", "+31d", ZONE).stdout.strip()  # fmt: skip
    new = token.dnsseal("keygen", "-K", keys, "-a", "13", "-P", "+29d", "-A", "+30d",
                        ZONE).stdout.strip()  # fmt: skip
    request = tmp_path / "request.ksr"
    token.dnsseal("ksr", "request", "-K", keys, "-o", request, ZONE, "now", "+60d")
    text = request.read_text()
    assert text.count(";; KeySigningRequest 1.0 ") == 5  # start, +29d, +31d, end; trailer
    kd = tmp_path / "knot-ksk"
    kd.mkdir()
    kconf = _knot_offline_conf(kd, "ksk")
    token.run("keymgr", "-c", kconf, ZONE, "generate", "ksk=yes", "zsk=no",
              "created=-1d", "publish=-1d", "active=-1d")  # fmt: skip
    response = tmp_path / "knot.skr"
    response.write_text(token.run("keymgr", "-c", kconf, ZONE, "sign-ksr", request).stdout)
    assert "ok" in token.dnsseal("ksr", "validate", response).stdout
    body = response.read_text()
    for base in (old, new):
        key = (keys / f"{base}.key").read_text().splitlines()[-1].split()
        b64 = "".join(key[key.index("DNSKEY") + 4 :])
        assert b64[:20] in body.replace(" ", "").replace("\t", "").replace("\n", "")


# ------------------------------------------------------------------ key tag collisions
# A collision is rare by chance (about 1 in 16,000 per key of the zone), so the tests make
# one: an existing key file whose public key is the token key's moved so that the tags meet.


def _tag_onto_revoked(new: Key) -> bytes:
    """A public key whose tag is ``new``'s revoked tag and that collides with ``new`` in no
    other way: a key the old check (``new``'s tag against the others' tags and revoked
    tags) let through."""
    for delta in (128, -128):
        try:
            pk = _shifted(new.public_key, delta)
        except StopIteration:
            continue
        k = Key(new.zone, new.flags, new.algorithm, pk)
        if k.tag == new.revoked_tag and new.tag not in (k.tag, k.revoked_tag):
            return pk
    raise AssertionError("no such key")  # (every P-256 key has both kinds of octet)


def _linked(token: Token, tmp_path: Path, label: str, key_id: str) -> Key:
    """The key ``label`` the token holds, as keyfromlabel links it (in a scratch directory)."""
    token.keypair("EC:prime256v1", label, key_id)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    base = token.dnsseal(
        "keyfromlabel", "-K", scratch, "-a", "13", "-l", token.uri(f"object={label}"), ZONE
    ).stdout.strip()
    (key,) = KeyDirectory(scratch).keys(dns.name.from_text(ZONE))
    assert key.basename == base
    return key


@pytest.mark.parametrize("direction", ["new-revoked-is-existing", "existing-revoked-is-new"])
def test_keyfromlabel_refuses_a_key_whose_tag_collides(
    token: Token, tmp_path: Path, direction: str
) -> None:
    """dnssec-keyfromlabel refuses (fatal, unless -y) a key that "could collide with another
    key upon revokation": the token's key cannot be made again, so linking it is refused,
    naming the key it collides with.  The new key's own revoked tag was not counted (the
    first case was written)."""
    label = f"tagcol-{direction[:3]}"
    new = _linked(token, tmp_path, label, "60" if direction.startswith("new") else "61")
    public = _tag_onto_revoked(new) if direction.startswith("new") else _revoked_onto(new)
    keys = tmp_path / "keys"
    keys.mkdir()
    existing = Key(new.zone, FLAG_ZONE, 13, public, private=software.generate(ALG13)[1])
    assert tag_collides(new, [existing]) and new.tag != existing.tag
    KeyDirectory(keys).create(existing)
    before = sorted(p.name for p in keys.iterdir())
    r = token.dnsseal(
        "keyfromlabel", "-K", keys, "-a", "13", "-l", token.uri(f"object={label}"), ZONE, ok=False
    )
    assert r.returncode == 1, r.stdout
    assert r.stdout == ""
    assert f"collides with the existing key {existing.basename}" in r.stderr, r.stderr
    assert f"{new.basename}: key tag {new.tag} (revoked {new.revoked_tag})" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in keys.iterdir()) == before


# Run instead of `dnsseal`: the first N keys the token makes are given the public key in
# the file named first (the token's objects are real; only the DNSKEY they get collides),
# and the URI of every key made is written to the file named second.
_COLLIDING_GENERATE = """
import sys
from pathlib import Path

from dnsseal.cli.main import main
from dnsseal.crypto.pkcs11 import Pkcs11Store

colliding, made_log, times = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
real = Pkcs11Store.generate
made = []


def generate(self, *args, **kwargs):
    public, material = real(self, *args, **kwargs)
    made.append(material.label)
    made_log.write_text("\\n".join(made))
    return (bytes.fromhex(colliding.read_text()) if len(made) <= times else public), material


Pkcs11Store.generate = generate
main(sys.argv[4:])
"""


def _token_labels(token: Token) -> set[str]:
    out = token.dnsseal("keystore", "list", token.uri()).stdout
    return {line.split("\t")[1] for line in out.splitlines()}


def _object_label(uri: str) -> str:
    m = re.search(r";object=([^;?]+)", uri)
    assert m, uri
    return m.group(1)


def _colliding_generate(
    token: Token, tmp_path: Path, keys: Path, public: bytes, times: int
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    script = tmp_path / "colliding_generate.py"
    script.write_text(_COLLIDING_GENERATE)
    (tmp_path / "colliding").write_text(public.hex())
    made_log = tmp_path / "made"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "colliding"), str(made_log), str(times),
         "keystore", "generate", "-K", str(keys), "-a", "13", "-l", token.uri(), ZONE],
        env=token.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return proc, [_object_label(u) for u in made_log.read_text().split()]


def test_keystore_generate_deletes_a_colliding_key_and_makes_another(
    token: Token, tmp_path: Path
) -> None:
    """A key made in the token whose revoked tag is an existing key's tag is deleted from
    the token (C_DestroyObject, private and public) and another made, as dnssec-keygen
    makes another.  It was written (its revoked tag was not checked) and a key refused for
    its tag stayed in the token."""
    keys = tmp_path / "keys"
    keys.mkdir()
    first = token.dnsseal(
        "keystore", "generate", "-K", keys, "-a", "13", "-l", token.uri(), ZONE
    ).stdout.strip()
    (existing,) = KeyDirectory(keys).keys(dns.name.from_text(ZONE))
    assert existing.basename == first
    proc, made = _colliding_generate(token, tmp_path, keys, _revoked_onto(existing), 1)
    assert proc.returncode == 0, proc.stderr
    assert len(made) == 2
    kept = [k for k in KeyDirectory(keys).keys(dns.name.from_text(ZONE)) if k != existing]
    assert len(kept) == 1 and proc.stdout.strip() == kept[0].basename
    assert kept[0].private is not None and kept[0].private.label is not None
    assert _object_label(kept[0].private.label) == made[1]
    assert f"key tag {Key(existing.zone, FLAG_ZONE, 13, _revoked_onto(existing)).tag}" in (
        proc.stderr
    )
    labels = _token_labels(token)
    assert made[0] not in labels and made[1] in labels
    # No public key object of the thrown-away key is left either.
    objects = token.run(
        "pkcs11-tool", "--module", MODULE, "--token-label", TOKEN, "--login", "--pin", PIN,
        "--list-objects",
    ).stdout  # fmt: skip
    assert made[0] not in objects and made[1] in objects


def test_keystore_generate_gives_up_leaving_no_key_in_the_token(
    token: Token, tmp_path: Path
) -> None:
    """When every key made collides, the command stops with a one-line error naming the
    zone, and every key it made is gone from the token."""
    keys = tmp_path / "keys"
    keys.mkdir()
    token.dnsseal("keystore", "generate", "-K", keys, "-a", "13", "-l", token.uri(), ZONE)
    (existing,) = KeyDirectory(keys).keys(dns.name.from_text(ZONE))
    before = _token_labels(token)
    proc, made = _colliding_generate(token, tmp_path, keys, existing.public_key, MAX_TAG_TRIES)
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        f"{ZONE}: could not make a key whose tag collides with no existing key"
        in (proc.stderr.strip().splitlines()[-1])
    )
    assert "Traceback" not in proc.stderr
    assert len(made) == MAX_TAG_TRIES
    assert _token_labels(token) == before
    assert KeyDirectory(keys).keys(dns.name.from_text(ZONE)) == [existing]
