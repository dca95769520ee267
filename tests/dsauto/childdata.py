"""Signed child apex data built in memory (dnspython signs): the test double for what a
child's name server answers to DNSKEY / CDS / CDNSKEY.  Keys are ECDSA P-256 (alg 13)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG

from dnsseal.proto.dsautomation import ServerAnswer

T = dns.rdatatype
IN = dns.rdataclass.IN
NOW = 1_800_000_000


@dataclass
class Key:
    private: ec.EllipticCurvePrivateKey
    dnskey: DNSKEY

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)


def new_key(ksk: bool = True) -> Key:
    priv = ec.generate_private_key(ec.SECP256R1())
    flags = 257 if ksk else 256
    return Key(priv, dns.dnssec.make_dnskey(priv.public_key(), 13, flags))


def ds_of(child: str, key: Key, digest: int = 2) -> DS:
    return dns.dnssec.make_ds(child, key.dnskey, digest)


@dataclass
class Child:
    """A child apex: its keys, which keys sign what, and the CDS/CDNSKEY it publishes."""

    name: str
    ksks: list[Key] = field(default_factory=lambda: [new_key()])
    zsk: Key = field(default_factory=lambda: new_key(False))
    cds_keys: list[Key] | None = None  # None: the KSKs
    delete: bool = False
    digests: tuple[int, ...] = (2,)
    cds_signers: list[Key] | None = None  # None: the KSKs
    publish_cds: bool = True
    publish_cdnskey: bool = True
    inception: int = NOW - 3600

    @property
    def origin(self) -> dns.name.Name:
        return dns.name.from_text(self.name)

    def ds(self, digest: int = 2, keys: list[Key] | None = None) -> list[DS]:
        return [ds_of(self.name, k, digest) for k in (keys or self.ksks)]

    def _sign(
        self, rrset: dns.rrset.RRset, signers: list[Key]
    ) -> tuple[dns.rrset.RRset, tuple[RRSIG, ...]]:
        sigs = tuple(
            dns.dnssec.sign(
                rrset,
                k.private,
                self.origin,
                k.dnskey,
                inception=self.inception,
                expiration=NOW + 86400 * 30,
            )
            for k in signers
        )
        return rrset, sigs

    def rrsets(self) -> dict[int, tuple[dns.rrset.RRset | None, tuple[RRSIG, ...]]]:
        o = self.origin
        keys = [*self.ksks, self.zsk]
        dnskey = dns.rrset.from_rdata_list(o, 3600, [k.dnskey for k in keys])
        out: dict[int, tuple[dns.rrset.RRset | None, tuple[RRSIG, ...]]] = {
            T.DNSKEY: self._sign(dnskey, self.ksks)
        }
        signers = self.ksks if self.cds_signers is None else self.cds_signers
        cds_keys = self.ksks if self.cds_keys is None else self.cds_keys
        if self.delete:
            cds = [dns.rdata.from_text(IN, T.CDS, "0 0 0 00")]
            cdnskey = [dns.rdata.from_text(IN, T.CDNSKEY, "0 3 0 AA==")]
        else:
            cds = [
                dns.rdata.from_text(IN, T.CDS, ds_of(self.name, k, d).to_text())
                for k in cds_keys
                for d in self.digests
            ]
            cdnskey = [dns.rdata.from_text(IN, T.CDNSKEY, k.dnskey.to_text()) for k in cds_keys]
        out[T.CDS] = (
            self._sign(dns.rrset.from_rdata_list(o, 0, cds), signers)
            if self.publish_cds
            else (None, ())
        )
        out[T.CDNSKEY] = (
            self._sign(dns.rrset.from_rdata_list(o, 0, cdnskey), signers)
            if self.publish_cdnskey
            else (None, ())
        )
        return out

    def answer(self, server: str = "ns1.example. 127.0.0.1@53") -> ServerAnswer:
        return ServerAnswer(server, self.rrsets())
