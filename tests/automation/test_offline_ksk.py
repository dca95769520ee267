"""An offline-KSK zone rolls its ZSK with only a Signed Key Response online, on accelerated
time.

dnsseal pregenerates the ZSKs (``ksr keygen``, a 25 s lifetime) and writes the Key Signing
Request (``ksr request``); Knot 3.2's ``keymgr sign-ksr`` signs it with a KSK that only Knot
holds; dnsseal imports the response (``ksr import``) and serves the zone with
``offline-ksk = true``.  Through the roll, every AXFR verifies with ``dnssec-verify`` and
``ldns-verify-zone`` and a validating Unbound, whose trust anchor is the offline KSK's DS,
never answers SERVFAIL.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from conftest import free_port, run_tool
from dnsseal.crypto import keystore
from dnsseal.findings import Severity
from dnsseal.keys import algorithms, ksr
from dnsseal.keys.model import Key
from dnsseal.policy.build import lookup
from dnsseal.policy.model import KeySpec
from dnsseal.server.inline import InlineZone
from dnsseal.server.offlineksk import ResponseProblem
from dnsseal.signer.skr import SkrParams, make_request, pregenerate, sign_request
from dnsseal.signer.verify import verify_zone
from dnsseal.storage.keydir import KeyDirectory
from dnsseal.zone.diff import ZoneDiff

from .conftest import DNSSEAL, ctl, dnsseal_serve, tally, unbound, write_config, zone_text

ZONE = "offline.example."
POLICY = """
[policy.offline]
dnskey-ttl = 2
publish-safety = 1
retire-safety = 1
purge-keys = 0
signatures-refresh = 20
signatures-validity = 30
signatures-validity-dnskey = 30
signatures-jitter = 2
max-zone-ttl = 2
zone-propagation-delay = 1
offline-ksk = true
skr-horizon = "1h"
keys = [
  { role = "ksk", lifetime = "unlimited", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = 25, algorithm = "ECDSAP256SHA256" },
]
"""


def _knot_conf(d: Path) -> Path:
    """Knot's offline KSK side: it holds the KSK and signs requests (seconds-scale RRSIG
    lifetime and refresh, as the accelerated policy needs)."""
    d.mkdir()
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
    dnskey-ttl: 2
    zone-max-ttl: 2
    rrsig-lifetime: 40s
    rrsig-refresh: 10s
    rrsig-pre-refresh: 1s
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: "zone.db"
    dnssec-signing: on
    dnssec-policy: offline
"""
    )
    return conf


def _dnsseal(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(DNSSEAL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"dnsseal {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _axfr_verified(d: Path, port: int, stage: str) -> set[int]:
    """AXFR the zone, check it with dnssec-verify and ldns-verify-zone; the tags of the
    keys that sign data other than the key set (the ZSKs in use)."""
    xfr = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=port, timeout=10))
    path = d / f"axfr-{stage}.zone"
    path.write_text(f"$ORIGIN {ZONE}\n" + xfr.to_text())
    run_tool(["dnssec-verify", "-o", ZONE, path])
    run_tool(["ldns-verify-zone", path])
    tags = set()
    for name, node in xfr.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype == dns.rdatatype.RRSIG and not (
                name == dns.name.empty and rds.covers == dns.rdatatype.DNSKEY
            ):
                tags |= {rd.key_tag for rd in rds}
    return tags


def _dnskey_tags(port: int) -> set[int]:
    q = dns.message.make_query(ZONE, "DNSKEY", want_dnssec=True)
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=3)
    return {dns.dnssec.key_id(rd) for rr in r.answer if rr.rdtype == 48 for rd in rr}


@pytest.mark.interop
@pytest.mark.slow
def test_zsk_roll_with_only_a_signed_key_response(tmp_path: Path) -> None:
    d = tmp_path
    port = free_port()
    write_config(d, port, {ZONE: zone_text(ZONE)}, policies={ZONE: "offline"})
    with (d / "policies.toml").open("a") as f:
        f.write(POLICY)
    (d / "keys").mkdir()
    # Online: ZSKs for the next 70 s (a key every 25 s), and the request for them.
    zsks = _dnsseal(d, "ksr", "keygen", "-K", "keys", "-k", "offline", "-l", "policies.toml",
                    "-i", "now", "-e", "+70", ZONE).split()  # fmt: skip
    assert len(zsks) == 3
    _dnsseal(d, "ksr", "request", "-K", "keys", "-L", "2", "-o", "request.ksr", ZONE,
             "now", "+70")  # fmt: skip
    # Offline: Knot's KSK signs the request.
    kconf = _knot_conf(d / "knot")
    run_tool(["keymgr", "-c", kconf, ZONE, "generate", "ksk=yes", "zsk=no",
              "created=-1d", "publish=-1d", "active=-1d"])  # fmt: skip
    response = run_tool(["keymgr", "-c", kconf, ZONE, "sign-ksr", d / "request.ksr"]).stdout
    (d / "response.skr").write_text(response)
    ds = [line for line in run_tool(["keymgr", "-c", kconf, ZONE, "ds"]).stdout.splitlines()
          if re.search(r" DS \d+ 13 2 ", line)]  # fmt: skip
    assert len(ds) == 1
    ksk_tag = int(ds[0].split()[2])
    # Online again: import and serve; no KSK private key (nor KSK key file) here.
    out = _dnsseal(d, "ksr", "import", "-K", "keys", "response.skr")
    assert "bundles for offline.example." in out
    assert not list((d / "keys").glob("*.private")) or all(
        "KSK" not in p.read_text() for p in (d / "keys").glob("*.key")
    )
    tags = [int(z.rsplit("+", 1)[1]) for z in zsks]
    start = time.monotonic()
    seen_zsks: list[set[int]] = []
    answers = {"servfail": 0, "secure": 0, "insecure": 0}
    with (
        dnsseal_serve(d, ["-c", "dnsseal.toml"], ZONE, port),
        unbound(d, ds, {ZONE: port}) as uport,
    ):
        # The response ends in 70 s, within the 1 h skr-horizon: status and log say so.
        status = ctl(d, "zone-status", ZONE)
        assert "within skr-horizon PT1H: import the next one" in status, status
        stages = {3: "first", 22: "both-published", 30: "second-signs", 43: "first-gone"}
        for at, stage in stages.items():
            while time.monotonic() - start < at:
                q = dns.message.make_query(f"www.{ZONE}", "A", want_dnssec=True)
                tally(answers, dns.query.udp(q, "127.0.0.1", port=uport, timeout=5))
                time.sleep(0.5)
            keyset = _dnskey_tags(port)
            assert ksk_tag in keyset, (stage, keyset)
            seen_zsks.append(_axfr_verified(d, port, stage) - {ksk_tag})
            if stage == "both-published":
                assert {tags[0], tags[1]} <= keyset, (stage, keyset, tags)
            if stage == "first-gone":
                assert tags[0] not in keyset, (stage, keyset, tags)
        # The next period while serving: more ZSKs, a new request from now, Knot signs it,
        # import and loadkeys; the zone takes the longer response at once.
        more = _dnsseal(d, "ksr", "keygen", "-K", "keys", "-k", "offline", "-l",
                        "policies.toml", "-i", "now", "-e", "+60", ZONE).split()  # fmt: skip
        assert len(more) == 2, more  # active from 75 s and 100 s after the start
        _dnsseal(d, "ksr", "request", "-K", "keys", "-L", "2", "-o", "next.ksr", ZONE, "now",
                 "+60")  # fmt: skip
        nxt = run_tool(["keymgr", "-c", kconf, ZONE, "sign-ksr", d / "next.ksr"]).stdout
        (d / "next.skr").write_text(nxt)
        _dnsseal(d, "ksr", "import", "-K", "keys", "next.skr")
        before = re.search(r"ends at ([^,]+),", status)
        assert "keys loaded" in ctl(d, "loadkeys", ZONE)
        after = re.search(r"ends at ([^,]+),", ctl(d, "zone-status", ZONE))
        assert before and after and before.group(1) != after.group(1), (before, after)
        q = dns.message.make_query(f"www.{ZONE}", "A", want_dnssec=True)
        tally(answers, dns.query.udp(q, "127.0.0.1", port=uport, timeout=5))
        _axfr_verified(d, port, "after-import")
    log = (d / "out.txt").read_text()
    assert "WARNING: [offline.example.] DNSSEC: warning: the signed key response ends at" in log
    assert answers["servfail"] == 0, (answers, log[-3000:])
    assert answers["secure"] > 20 and answers["insecure"] == 0, answers
    # The first ZSK signed at first, the second after the roll.
    assert seen_zsks[0] == {tags[0]}, seen_zsks
    assert seen_zsks[-1] == {tags[1]}, seen_zsks


DAY = 86400
START = 1_800_000_000


def _key(spec: KeySpec, zone: str, flags: int = 256) -> Key:
    public, material = keystore.generate(None, algorithms.get(spec.algorithm))
    return Key(dns.name.from_text(zone), flags, spec.algorithm, public, private=material)


def test_ninety_days_of_an_offline_ksk_zone_on_simulated_time(tmp_path: Path) -> None:
    # InlineZone driven only by its own wakeups over the period of one response: every
    # version verifies until the next wakeup, the key set is always the offline KSK's,
    # the ZSKs roll, the horizon warning comes 14 days before the end, and once the
    # response has run out the zone is not re-signed (an error says why).
    zone = "sim.example."
    policy = lookup("default", {}).replace(
        name="offline",
        keys=(KeySpec("ksk", 13), KeySpec("zsk", 13, lifetime=30 * DAY)),
        offline_ksk=True,
    )
    kd = KeyDirectory(tmp_path / "keys")
    (tmp_path / "keys").mkdir()
    (tmp_path / "state").mkdir()
    zsks, _ = pregenerate(policy, dns.name.from_text(zone), [], START, START + 90 * DAY,
                          lambda spec: _key(spec, zone))  # fmt: skip
    for k in zsks:
        kd.create(k)
    ksk = _key(KeySpec("ksk", 13), zone, flags=257)
    request = make_request(zsks, START, START + 90 * DAY, policy.dnskey_ttl)
    # Key set signatures valid 9 days, a bundle every 7: their expiry minus the policy's
    # 5-day refresh falls before the next bundle, which must not make the zone re-sign.
    params = SkrParams(validity=9 * DAY, refresh=7 * DAY, cds=(2,), cdnskey=True)
    response = sign_request(request, [ksk], params)
    src = tmp_path / "sim.example.zone"
    src.write_text(zone_text(zone).replace("$TTL 2", "$TTL 300"))
    z = InlineZone(zone, src, policy, tmp_path / "keys", tmp_path / "state")
    with pytest.raises(ResponseProblem, match="no signed key response in"):
        z.maintain(START)
    skr = tmp_path / "keys" / "sim.example.skr"
    skr.write_text(ksr.format_bundles(ksr.SKR, response, START, "test"))
    now = START
    signers: list[int] = []
    statuses = set()
    wakeups = 0
    updated = False
    while now < START + 90 * DAY:
        wakeups += 1
        assert wakeups < 200, "maintenance runs too often"
        z.maintain(now)
        assert z.signed is not None
        nxt = z.next_wakeup()
        assert nxt is not None and nxt > now
        for at in (now, min(nxt, START + 90 * DAY) - 1):
            errors = [str(f) for f in verify_zone(z.signed, at) if f.severity is Severity.ERROR]
            assert errors == [], (at - START, errors)
        origin = dns.name.from_text(zone)
        keyset_sigs = z.signed.rrsigs[origin][dns.rdatatype.DNSKEY].rdatas
        assert [int.from_bytes(w[16:18]) for w in keyset_sigs] == [ksk.tag]
        for rtype in (dns.rdatatype.CDS, dns.rdatatype.CDNSKEY):  # the response's, KSK-signed
            assert z.signed.get(origin, rtype) is not None
            cds_sigs = z.signed.rrsigs[origin][rtype].rdatas
            assert [int.from_bytes(w[16:18]) for w in cds_sigs] == [ksk.tag]
        soa_sig = z.signed.rrsigs[origin][dns.rdatatype.SOA].rdatas
        tag = int.from_bytes(soa_sig[0][16:18])
        if not signers or signers[-1] != tag:
            signers.append(tag)
        statuses.add((now >= START + 76 * DAY, (z.offline.status or "").startswith("warning")))
        if now >= START + 45 * DAY and not updated:
            # A dynamic update mid-roll: signed by the ZSK, the key set stays the bundle's.
            name = dns.name.from_text(f"new.{zone}")
            rec = (name, dns.rdatatype.A, 300, bytes([192, 0, 2, 7]))
            v = z.update(ZoneDiff((), (rec,)), now)
            assert v.zone.get(name, dns.rdatatype.A) is not None
            errors = [str(f) for f in verify_zone(v.zone, now) if f.severity is Severity.ERROR]
            assert errors == [], errors
            keyset_sigs = v.zone.rrsigs[origin][dns.rdatatype.DNSKEY].rdatas
            assert [int.from_bytes(w[16:18]) for w in keyset_sigs] == [ksk.tag]
            updated = True
        now = nxt
    assert signers == [k.tag for k in zsks], (signers, [k.tag for k in zsks])
    assert statuses == {(False, False), (True, True)}, statuses
    assert updated
    with pytest.raises(ResponseProblem, match="has run out"):
        z.maintain(START + 90 * DAY + 15 * DAY)


def _dnsseal_fails(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(DNSSEAL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.interop
def test_signzone_with_knots_response_and_bad_responses_refused(tmp_path: Path) -> None:
    # dnssec-signzone's role with an offline KSK: the ZSKs dnsseal pregenerated sign, the
    # key set comes from the response Knot's KSK signed; BIND's and ldns's verifiers agree.
    d = tmp_path
    (d / "keys").mkdir()
    (d / "policies.toml").write_text(POLICY.replace("lifetime = 25", "lifetime = 3600"))
    _dnsseal(d, "ksr", "keygen", "-K", "keys", "-k", "offline", "-l", "policies.toml",
             "-e", "+3h", ZONE)  # fmt: skip
    _dnsseal(d, "ksr", "request", "-K", "keys", "-L", "2", "-o", "request.ksr", ZONE,
             "now", "+3h")  # fmt: skip
    kconf = _knot_conf(d / "knot")
    run_tool(["keymgr", "-c", kconf, ZONE, "generate", "ksk=yes", "zsk=no",
              "created=-1d", "publish=-1d", "active=-1d"])  # fmt: skip
    response = run_tool(["keymgr", "-c", kconf, ZONE, "sign-ksr", d / "request.ksr"]).stdout
    (d / "response.skr").write_text(response)
    (d / "zone.db").write_text(zone_text(ZONE))
    _dnsseal(d, "signzone", "-S", "-K", "keys", "--skr", "response.skr", "-o", ZONE, "zone.db")
    run_tool(["dnssec-verify", "-o", ZONE, d / "zone.db.signed"])
    run_tool(["ldns-verify-zone", d / "zone.db.signed"])
    # A tampered response is refused by import and by signzone, with one line each.
    bad = d / "bad.skr"
    bundles = ksr.parse(response, ksr.SKR)
    first = bundles[0]
    sigs = first.rrset(dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY)
    assert sigs is not None
    forged = dns.rrset.RRset(sigs.name, sigs.rdclass, sigs.rdtype, sigs.covers)
    for rd in sigs:
        flipped = bytes([rd.signature[0] ^ 1]) + rd.signature[1:]
        forged.add(rd.replace(signature=flipped), sigs.ttl)
    rrsets = tuple(forged if rr is sigs else rr for rr in first.rrsets)
    tampered = [ksr.Bundle(first.time, rrsets), *bundles[1:]]
    bad.write_text(ksr.format_bundles(ksr.SKR, tampered, first.time, "test"))
    err = _dnsseal_fails(d, "ksr", "import", "-K", "keys", "bad.skr")
    assert "does not verify" in err and "not imported" in err, err
    assert not (d / "keys" / "offline.example.skr").exists()
    err = _dnsseal_fails(d, "signzone", "-S", "-K", "keys", "--skr", "bad.skr", "-o", ZONE,
                         "zone.db")  # fmt: skip
    assert "--skr" in err and "does not verify" in err, err
    # A response for another zone's keys cannot sign this one.
    other = response.replace(ZONE, "other.example.")
    (d / "other.skr").write_text(other)
    err = _dnsseal_fails(d, "signzone", "-S", "-K", "keys", "--skr", "other.skr", "-o", ZONE,
                         "zone.db")  # fmt: skip
    assert "--skr" in err, err
    # A policy with a CSK has no ZSK to pregenerate.
    (d / "csk.toml").write_text(
        '[policy.csk]\nkeys = [{ role = "csk", lifetime = "unlimited", algorithm = 13 }]\n'
    )
    err = _dnsseal_fails(d, "ksr", "keygen", "-K", "keys", "-k", "csk", "-l", "csk.toml",
                         "-e", "+1d", ZONE)  # fmt: skip
    assert "no separate ZSK" in err, err
    err = _dnsseal_fails(d, "ksr", "keygen", "-K", "keys", "-k", "nope", "-l", "csk.toml",
                         "-e", "+1d", ZONE)  # fmt: skip
    assert "-k: no policy named 'nope'" in err, err


@pytest.mark.interop
def test_knot_serves_cds_from_dnsseals_response(tmp_path: Path) -> None:
    # Knot 3.2 as the online signer: it takes the CDS/CDNSKEY RRsets and their signatures
    # from a response dnsseal signed (ksr sign --cds --cdnskey) and kzonesign's zone, with
    # them, passes BIND's and ldns's verifiers; the CDS is the DS of dnsseal's KSK.
    d = tmp_path
    online = d / "online"
    online.mkdir()
    conf = online / "knot.conf"
    conf.write_text(
        f"""server:
    rundir: "{online}"
database:
    storage: "{online}"
policy:
  - id: offline
    algorithm: ecdsap256sha256
    manual: on
    offline-ksk: on
    dnskey-ttl: 3600
    zone-max-ttl: 3600
    zsk-lifetime: 30d
zone:
  - domain: {ZONE}
    storage: "{online}"
    file: "zone.db"
    dnssec-signing: on
    dnssec-policy: offline
"""
    )
    (online / "zone.db").write_text(zone_text(ZONE))
    run_tool(["keymgr", "-c", conf, ZONE, "pregenerate", "+60d"])
    request = run_tool(["keymgr", "-c", conf, ZONE, "generate-ksr", "+0", "+60d"]).stdout
    (d / "request.ksr").write_text(request)
    (d / "keys").mkdir()
    ksk = _dnsseal(d, "keygen", "-K", "keys", "-f", "KSK", "-P", "-1d", "-A", "-1d", ZONE).strip()
    _dnsseal(d, "ksr", "sign", "-K", "keys", "--cds", "SHA-256", "--cdnskey", "-o",
             "response.skr", "request.ksr")  # fmt: skip
    assert "ok" in _dnsseal(d, "ksr", "validate", "response.skr")
    run_tool(["keymgr", "-c", conf, ZONE, "import-skr", d / "response.skr"])
    (d / "out").mkdir()
    run_tool(["kzonesign", "-c", conf, "-o", d / "out", ZONE])
    signed = d / "out" / "zone.db"
    run_tool(["dnssec-verify", "-o", ZONE, signed])
    run_tool(["ldns-verify-zone", signed])
    zone = dns.zone.from_file(str(signed), ZONE)
    cds = zone.get_rdataset("@", "CDS")
    ds = _dnsseal(d, "dsfromkey", "-2", f"keys/{ksk}.key").split()
    assert cds is not None and {rd.to_text().lower() for rd in cds} == {" ".join(ds[-4:]).lower()}
    assert zone.get_rdataset("@", "CDNSKEY") is not None
    err = _dnsseal_fails(d, "ksr", "sign", "-K", "keys", "--cds", "MD5", "request.ksr")
    assert "--cds" in err and "unknown DS digest type" in err, err
