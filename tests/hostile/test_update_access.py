"""Who may change what by UPDATE in a dnssec-policy zone (docs/update-security.md).

* The key set (DNSKEY, CDS, CDNSKEY) is the policy's: under ``allow-update`` every change
  to it is REFUSED (it used to be accepted, signed with our KSK and served).  Only an
  ``update-policy`` rule naming the type lets a multi-signer peer (RFC 8901 model 2) add
  its keys, and then only valid keys; our own keys and the DELETE records stay out of
  reach, and every CDS/CDNSKEY must match a DNSKEY.
* Data dnsseal's verifier would reject (a 3-octet ECDSA key, a DS off a zone cut, a DS
  digest of the wrong length) is refused, not served.
* update-policy rules mean what they mean in BIND: the same rules and the same nsupdate
  scripts get the same answers from named 9.18 and dnsseal.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.tsig
import dns.update
import dns.zone
import pytest

from dnsseal.errors import OptionError
from dnsseal.policy.grants import UpdatePolicy
from dnsseal.storage.serverconfig import parse_config

from .updatehelpers import (
    DNSSEAL,
    SECRET,
    SECRET_B64,
    ZONE,
    Server,
    cds_of,
    dnsseal_server,
    foreign_dnskey,
    named_server,
    nsupdate,
    rdata_texts,
    update_rcode,
)

interop = pytest.mark.interop
slow = pytest.mark.slow

BAD_ECDSA = "257 3 13 AAAA"  # 3 octets of key where P-256 needs 64
UNKNOWN_ALG = "257 3 200 AwEAAcVp"
CDS_DELETE = "0 0 0 00"
CDNSKEY_DELETE = "0 3 0 AA=="


def verify_clean(server: Server, name: str) -> None:
    """AXFR the zone and run `dnsseal verify` on it: no errors."""
    xfr = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=server.port, timeout=10))
    path = server.dir / name
    path.write_text(xfr.to_text(relativize=False))
    proc = subprocess.run(
        [str(DNSSEAL), "verify", "-o", ZONE, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def rcode(server: Server, script: str, key: str | None = "ddns") -> str:
    return update_rcode(nsupdate(server.port, script, key=key))


@interop
@slow
def test_allow_update_cannot_touch_the_key_set(tmp_path: Path) -> None:
    """The reported hole: a client allowed to update added a DNSKEY, which dnsseal signed
    with the zone's KSK and served.  Now every key-set change is REFUSED and nothing
    changes; the zone still verifies."""
    peer = foreign_dnskey(tmp_path / "peer")
    with dnsseal_server(tmp_path / "d", allow_update=["key ddns"]) as s:
        ours = rdata_texts(s.port, ZONE, "DNSKEY")
        assert len(ours) == 2
        own = sorted(ours)[0]
        for script in (
            f"update add {ZONE} 300 DNSKEY {peer}",
            f"update add {ZONE} 300 CDS {cds_of(peer)}",
            f"update add {ZONE} 300 CDNSKEY {peer}",
            f"update add {ZONE} 300 CDS {CDS_DELETE}",
            f"update add {ZONE} 300 CDNSKEY {CDNSKEY_DELETE}",
            f"update delete {ZONE} DNSKEY {own}",
            f"update delete {ZONE} DNSKEY",
            f"update delete {ZONE} CDS",
            f"update add {ZONE} 300 DNSKEY {BAD_ECDSA}",
        ):
            assert rcode(s, script) == "REFUSED", script
        assert rdata_texts(s.port, ZONE, "DNSKEY") == ours
        assert rdata_texts(s.port, ZONE, "CDNSKEY") <= ours
        # the rest of the zone is still the client's to change
        assert rcode(s, f"update add new.{ZONE} 300 A 192.0.2.7") == "NOERROR"
        verify_clean(s, "after.zone")
    # restarted on the same state: the refused key never got in
    with dnsseal_server(tmp_path / "d", allow_update=["key ddns"]) as s:
        assert rdata_texts(s.port, ZONE, "DNSKEY") == ours


@interop
@slow
def test_where_we_are_stricter_than_named(tmp_path: Path) -> None:
    """named 9.18 under allow-update with dnssec-policy accepts a peer's DNSKEY, the CDS
    and CDNSKEY DELETE records and a DS off a zone cut, and answers SERVFAIL to an invalid
    key; dnsseal refuses all of them (REFUSED).  Both refuse deleting the whole DNSKEY
    RRset.  This table is the record of the deliberate differences
    (docs/update-security.md); it fails if named's answers change."""
    peer = foreign_dnskey(tmp_path / "peer")
    digest = "AB" * 32
    # script -> (named's answer, dnsseal's answer); run in this order on both
    table = {
        f"update add {ZONE} 300 DNSKEY {BAD_ECDSA}": ("SERVFAIL", "REFUSED"),
        f"update add {ZONE} 300 DNSKEY {UNKNOWN_ALG}": ("SERVFAIL", "REFUSED"),
        f"update delete {ZONE} DNSKEY": ("REFUSED", "REFUSED"),
        f"update add www.{ZONE} 300 DS 12345 13 2 {digest}": ("NOERROR", "REFUSED"),
        f"update add {ZONE} 300 CDS {CDS_DELETE}": ("NOERROR", "REFUSED"),
        f"update delete {ZONE} CDS {CDS_DELETE}": ("NOERROR", "REFUSED"),
        f"update add {ZONE} 300 CDNSKEY {CDNSKEY_DELETE}": ("NOERROR", "REFUSED"),
        f"update delete {ZONE} CDNSKEY {CDNSKEY_DELETE}": ("NOERROR", "REFUSED"),
        f"update add {ZONE} 300 DNSKEY {peer}": ("NOERROR", "REFUSED"),
    }
    with (
        named_server(tmp_path / "n", allow_update=["key ddns"]) as named,
        dnsseal_server(tmp_path / "d", allow_update=["key ddns"]) as ours,
    ):
        got = {script: (rcode(named, script), rcode(ours, script)) for script in table}
    assert got == table


@interop
@slow
def test_multi_signer_peer_needs_an_explicit_grant(tmp_path: Path) -> None:
    """update-policy: `zonesub ANY` does not reach the key set; a rule naming DNSKEY, CDS
    and CDNSKEY for the peer's key does, for valid keys other than ours only, and keeps
    CDS/CDNSKEY consistent with the DNSKEY RRset.  The peer's key is signed, served,
    verifies, and survives a restart."""
    peer = foreign_dnskey(tmp_path / "peer")
    other = foreign_dnskey(tmp_path / "peer2")
    grants = ["grant ddns zonesub ANY", f"grant peer name {ZONE} DNSKEY CDS CDNSKEY"]
    d = tmp_path / "d"
    with dnsseal_server(d, update_policy=grants) as s:
        ours = rdata_texts(s.port, ZONE, "DNSKEY")
        own = sorted(ours)[0]
        assert rcode(s, f"update add {ZONE} 300 DNSKEY {peer}", key="ddns") == "REFUSED"
        assert rcode(s, f"update add www.{ZONE} 300 A 192.0.2.1", key="peer") == "REFUSED"
        for bad in (BAD_ECDSA, UNKNOWN_ALG, own):
            assert rcode(s, f"update add {ZONE} 300 DNSKEY {bad}", key="peer") == "REFUSED", bad
        assert rcode(s, f"update delete {ZONE} DNSKEY {own}", key="peer") == "REFUSED"
        assert rcode(s, f"update add {ZONE} 300 CDS {CDS_DELETE}", key="peer") == "REFUSED"
        # a CDS for a key that is not in the DNSKEY RRset would make the parent's DS dangle
        assert rcode(s, f"update add {ZONE} 300 CDS {cds_of(other)}", key="peer") == "REFUSED"
        assert rcode(s, f"update add {ZONE} 300 CDNSKEY {other}", key="peer") == "REFUSED"
        # nor one for our own keys: when to ask the parent for their DS is the policy's
        ksk = next(k for k in ours if k.startswith("257 "))
        assert rcode(s, f"update add {ZONE} 300 CDS {cds_of(ksk)}", key="peer") == "REFUSED"
        assert rcode(s, f"update add {ZONE} 300 CDNSKEY {ksk}", key="peer") == "REFUSED"

        assert rcode(s, f"update add {ZONE} 300 DNSKEY {peer}", key="peer") == "NOERROR"
        assert rcode(s, f"update add {ZONE} 300 CDS {cds_of(peer)}", key="peer") == "NOERROR"
        assert rcode(s, f"update add {ZONE} 300 CDNSKEY {peer}", key="peer") == "NOERROR"
        keys = rdata_texts(s.port, ZONE, "DNSKEY")
        assert len(keys) == 3 and ours < keys
        verify_clean(s, "with-peer.zone")
        # the peer's key cannot go while its CDS still points at it
        assert rcode(s, f"update delete {ZONE} DNSKEY {peer}", key="peer") == "REFUSED"
    with dnsseal_server(d, update_policy=grants) as s:
        assert rdata_texts(s.port, ZONE, "DNSKEY") == keys
        script = (
            f"update delete {ZONE} CDS {cds_of(peer)}\nupdate delete {ZONE} CDNSKEY {peer}\n"
            f"update delete {ZONE} DNSKEY {peer}"
        )
        assert rcode(s, script, key="peer") == "NOERROR"
        assert rdata_texts(s.port, ZONE, "DNSKEY") == ours
        verify_clean(s, "peer-gone.zone")


def _raw_update(server: Server, *records: tuple[str, str, str]) -> str:
    """An UPDATE adding ``records`` (name, type, RDATA text; generic form allowed), signed
    with key ddns, sent by dnspython: nsupdate checks DS digest lengths itself."""
    u = dns.update.UpdateMessage(ZONE, keyring=dns.tsig.Key("ddns", SECRET), keyname="ddns")
    for name, rtype, text in records:
        u.add(name, 300, dns.rdata.from_text("IN", rtype, text))
    reply = dns.query.udp(u, "127.0.0.1", port=server.port, timeout=5)
    return dns.rcode.to_text(reply.rcode())


@interop
@slow
def test_data_the_verifier_rejects_is_refused(tmp_path: Path) -> None:
    """A DS where there is no zone cut (DS_NOT_AT_CUT) or with a digest type dnsseal
    cannot check is refused, not signed and served; a DS at a delegation is fine."""
    digest = "AB" * 32
    kid = f"kid.{ZONE}"
    with dnsseal_server(tmp_path / "d", allow_update=["key ddns"]) as s:
        assert rcode(s, f"update add www.{ZONE} 300 DS 12345 13 2 {digest}") == "REFUSED"
        ns = (kid, "NS", "ns.kid.example.net.")
        # a digest type nobody can check (dnspython itself refuses known types of the
        # wrong length while reading the message: FORMERR before any of this)
        assert _raw_update(s, ns, (kid, "DS", "12345 13 7 0102")) == "REFUSED"
        assert _raw_update(s, ns, (kid, "DS", f"12345 13 2 {digest}")) == "NOERROR"
        verify_clean(s, "ds.zone")


POLICY_RULES = [
    f"grant other name www.{ZONE} A",
    f"grant other subdomain sub.{ZONE} TXT",
    f"grant other wildcard *.wild.{ZONE} A",
    f"deny ddns name mail.{ZONE} ANY",
    "grant ddns zonesub ANY",
    "grant host1.upd.example self host1.upd.example A TXT",
]
# (key, nsupdate line): run in this order on both servers
POLICY_CASES = [
    ("other", f"update add www.{ZONE} 300 A 192.0.2.10"),
    ("other", f"update add www.{ZONE} 300 AAAA 2001:db8::10"),
    ("other", f"update add mail.{ZONE} 300 A 192.0.2.11"),
    ("other", f"update add sub.{ZONE} 300 TXT here"),
    ("other", f"update add x.y.sub.{ZONE} 300 TXT deep"),
    ("other", f"update add x.sub.{ZONE} 300 A 192.0.2.12"),
    ("other", f"update add a.wild.{ZONE} 300 A 192.0.2.13"),
    ("other", f"update add b.c.wild.{ZONE} 300 A 192.0.2.14"),
    ("other", f"update add wild.{ZONE} 300 A 192.0.2.15"),
    ("ddns", f"update add mail.{ZONE} 300 TXT nope"),
    ("ddns", f"update delete mail.{ZONE} A"),
    ("ddns", f"update add new.{ZONE} 300 A 192.0.2.16"),
    ("ddns", f"update add new.{ZONE} 300 MX 10 mail.{ZONE}"),
    ("ddns", f"update add {ZONE} 300 TXT apex"),
    ("host1.upd.example", f"update add host1.{ZONE} 300 A 192.0.2.17"),
    ("host1.upd.example", f"update add host1.{ZONE} 300 TXT me"),
    ("host1.upd.example", f"update add host1.{ZONE} 300 MX 10 mail.{ZONE}"),
    ("host1.upd.example", f"update add www.{ZONE} 300 A 192.0.2.18"),
    ("peer", f"update add www.{ZONE} 300 A 192.0.2.19"),
    (None, f"update add www.{ZONE} 300 A 192.0.2.20"),
    ("ddns", f"update add www.{ZONE} 300 A 192.0.2.21\nupdate add mail.{ZONE} 300 A 1.2.3.4"),
    ("ddns", f"update delete sub.{ZONE}"),
    ("other", f"update delete a.wild.{ZONE}"),
]


@interop
@slow
def test_update_policy_rules_answer_as_named(tmp_path: Path) -> None:
    """BIND's rule types (name, subdomain, wildcard, zonesub, self, deny, first match
    wins, unsigned requests match nothing, one refused record refuses the message): the
    same rules, the same nsupdate scripts in the same order, the same answers."""
    with (
        named_server(tmp_path / "n", update_policy=POLICY_RULES) as named,
        dnsseal_server(tmp_path / "d", update_policy=POLICY_RULES) as ours,
    ):
        got = {
            who: [rcode(server, script, key=key) for key, script in POLICY_CASES]
            for who, server in (("named", named), ("dnsseal", ours))
        }
    table = [
        f"{key} {script!r}: named {a}, dnsseal {b}"
        for (key, script), a, b in zip(POLICY_CASES, got["named"], got["dnsseal"], strict=True)
    ]
    assert got["named"] == got["dnsseal"], "\n".join(table)
    # the table is not all one answer: both grants and refusals were exercised
    assert {"NOERROR", "REFUSED"} <= set(got["named"]), "\n".join(table)


# -- the rules and their config, pure -----------------------------------------------------

BAD_RULES = {
    "permit ddns zonesub ANY": "expected (grant|deny) IDENTITY RULETYPE",
    "grant ddns krb5-self . A": "rule type 'krb5-self' is not supported",
    "grant nokey zonesub ANY": "unknown TSIG key 'nokey'",
    f"grant ddns wildcard www.{ZONE} A": "is not a wildcard name",
    "grant ddns name": "the name rule needs a NAME field",
    f"grant ddns name www.{ZONE} NOTATYPE": "'NOTATYPE' is not a record type",
    f"grant ddns name www.{ZONE} A(1)": "record count limits are not supported",
}


@pytest.mark.parametrize("rule", list(BAD_RULES))
def test_bad_update_policy_rule_is_a_one_line_config_error(tmp_path: Path, rule: str) -> None:
    text = f"""[server]
state-dir = "state"
[key.ddns]
secret = "{SECRET_B64}"
[zone."{ZONE}"]
file = "z.zone"
dnssec-policy = "default"
update-policy = ["grant ddns zonesub ANY", "{rule}"]
"""
    with pytest.raises(OptionError) as e:
        parse_config(tomllib.loads(text), tmp_path)
    assert e.value.option == f'zone."{ZONE}".update-policy[1]'
    assert BAD_RULES[rule] in str(e.value)
    assert "\n" not in str(e.value)


def test_allow_update_and_update_policy_exclude_each_other(tmp_path: Path) -> None:
    text = f"""[server]
state-dir = "state"
[key.ddns]
secret = "{SECRET_B64}"
[zone."{ZONE}"]
file = "z.zone"
dnssec-policy = "default"
allow-update = ["key ddns"]
update-policy = ["grant ddns zonesub ANY"]
"""
    with pytest.raises(OptionError, match="either allow-update or update-policy"):
        parse_config(tomllib.loads(text), tmp_path)


def test_key_set_is_granted_only_by_name() -> None:
    origin = dns.name.from_text(ZONE)
    key = dns.name.from_text("k")
    broad = UpdatePolicy.parse("p", ["grant k zonesub ANY", "grant k zonesub"], {"k"})
    for t in ("DNSKEY", "CDS", "CDNSKEY"):
        assert not broad.decide(key, origin, dns.rdatatype.from_text(t), origin), t
    assert broad.decide(key, origin, dns.rdatatype.TXT, origin)
    assert broad.decide(key, origin, dns.rdatatype.NS, origin)  # ANY includes NS (BIND)
    typeless = UpdatePolicy.parse("p", ["grant k zonesub"], {"k"})
    assert not typeless.decide(key, origin, dns.rdatatype.NS, origin)  # "no type" does not
    named = UpdatePolicy.parse("p", [f"grant k name {ZONE} DNSKEY"], {"k"})
    assert named.decide(key, origin, dns.rdatatype.DNSKEY, origin)
    assert not named.decide(None, origin, dns.rdatatype.DNSKEY, origin)  # unsigned
    assert not named.decide(key, dns.name.from_text(f"www.{ZONE}"), 48, origin)
