"""What ``-M``, ``-g`` and ``-D`` change around the signing of a zone file."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import dns.exception
import dns.name
import dns.rdatatype
import dns.zone

from dnsseal.errors import OptionError
from dnsseal.storage.files import read_text
from dnsseal.zone import canonical
from dnsseal.zone.model import Zone, ZoneBuilder

log = logging.getLogger(__name__)

SIGNER_TYPES = frozenset(
    int(t)
    for t in (
        dns.rdatatype.RRSIG,
        dns.rdatatype.NSEC,
        dns.rdatatype.NSEC3,
        dns.rdatatype.NSEC3PARAM,
    )
)


@dataclasses.dataclass(frozen=True, slots=True)
class Edits:
    """What -M, -g and -D change around the signing (each makes signzone read the whole
    file and write no ledger)."""

    max_ttl: int | None = None
    dsset_dir: Path | None = None  # -g: DS records from dsset- files here
    dnssec_only: bool = False  # -D
    with_dnskey: bool = False  # -D with -S: DNSKEY records too

    @property
    def any(self) -> bool:
        return self.max_ttl is not None or self.dsset_dir is not None or self.dnssec_only

    def before(self, zone: Zone) -> Zone:
        """The zone to sign: TTLs capped (-M), child DS records from dsset- files (-g)."""
        if self.max_ttl is None and self.dsset_dir is None:
            return zone
        ds_sets = self._ds_sets(zone) if self.dsset_dir is not None else {}
        b = ZoneBuilder(zone.origin, zone.rdclass)
        cap = self.max_ttl
        for rr in zone.iter_rrsets():
            if rr.rtype == dns.rdatatype.DS and rr.name in ds_sets:
                continue
            ttl = min(rr.ttl, cap) if cap is not None else rr.ttl
            for rd in rr.rdatas:
                b.add(rr.name, rr.rtype, ttl, rd)
        for sigs in zone.rrsigs.values():
            for rr in sigs.values():
                ttl = min(rr.ttl, cap) if cap is not None else rr.ttl
                for rd in rr.rdatas:
                    b.add(rr.name, rr.rtype, ttl, rd)
        for name, records in ds_sets.items():
            for ttl, rd in records:
                b.add(name, dns.rdatatype.DS, min(ttl, cap) if cap is not None else ttl, rd)
        return b.build()

    def _ds_sets(self, zone: Zone) -> dict[dns.name.Name, list[tuple[int, bytes]]]:
        """Per delegation with a dsset-CHILD. file: its DS records (TTL, RDATA)."""
        assert self.dsset_dir is not None
        out: dict[dns.name.Name, list[tuple[int, bytes]]] = {}
        for name, node in zone.rrsets.items():
            if name == zone.origin or dns.rdatatype.NS not in node:
                continue
            path = self.dsset_dir / f"dsset-{name.to_text()}"
            if not path.is_file():
                log.info("[%s] -g: no %s: DS records of %s kept", zone.origin, path, name)
                continue
            ttl = node[dns.rdatatype.NS].ttl  # for lines without a TTL, as the NS set's
            try:
                parsed = dns.zone.from_text(
                    f"$TTL {ttl}\n" + read_text(path), origin=name, check_origin=False
                )
            except dns.exception.DNSException as e:
                raise OptionError("-g", f"{path}: {e}") from None
            rdataset = parsed.get_rdataset(name, dns.rdatatype.DS)
            if rdataset is None:
                raise OptionError("-g", f"{path}: no DS records for {name}")
            out[name] = [(rdataset.ttl, canonical.rdata_wire(rd)) for rd in rdataset]
        return out

    def only_dnssec(self, zone: Zone) -> Zone:
        """-D: the records signing made (and DNSKEY with -S), for $INCLUDE."""
        b = ZoneBuilder(zone.origin, zone.rdclass)
        keep = SIGNER_TYPES | ({int(dns.rdatatype.DNSKEY)} if self.with_dnskey else set())
        for rr in zone.iter_rrsets():
            if rr.rtype in keep:
                for rd in rr.rdatas:
                    b.add(rr.name, rr.rtype, rr.ttl, rd)
        for sigs in zone.rrsigs.values():
            for rr in sigs.values():
                for rd in rr.rdatas:
                    b.add(rr.name, rr.rtype, rr.ttl, rd)
        return b.build()
