"""An inline-signed zone's offline KSK (policy ``offline-ksk``): the imported Signed Key
Response in the key directory (``<zone>.skr``, written by ``dnsseal ksr import``) gives the
DNSKEY, CDS and CDNSKEY RRsets and their signatures for each moment; the pregenerated ZSKs
(``dnsseal ksr keygen``) sign the rest by their timing metadata.  No key is made or rolled
here: that is Knot's offline-ksk mode and BIND 9.20's ``offline-ksk yes``.

:class:`ResponseKeys` stands in for the key manager step of :mod:`dnsseal.server.inline`: it
reads the response again when the file changes, picks the bundle for ``now`` and says when
the next bundle or ZSK event is due; ``status`` warns when the response ends within the
policy's ``skr-horizon``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import dns.name

from dnsseal.durations import format_duration, format_human_time
from dnsseal.errors import DnssealError
from dnsseal.keymgr.plan import KeyReport, Plan
from dnsseal.keys import ksr
from dnsseal.keys.model import Key
from dnsseal.policy.model import Policy
from dnsseal.signer.skr import (
    bundle_at,
    bundle_expiration,
    check_response,
    install_bundle,
    keyset_input,
    keyset_rdatas,
    next_bundle_time,
    offline_keys,
)
from dnsseal.storage.files import read_text
from dnsseal.zone.model import Zone

log = logging.getLogger(__name__)


class ResponseProblem(DnssealError):
    """No usable response for now (none imported, not yet applying, run out, bad file, no
    ZSK of the bundle here); the previous version stays served."""


class ResponseKeys:
    """The imported response of one zone and the bundle in use (see the module docstring)."""

    def __init__(self, origin: dns.name.Name, key_dir: Path) -> None:
        self.origin = origin
        self.name = origin.to_text()
        self.path = key_dir / ksr.skr_filename(origin)
        self.bundles: list[ksr.Bundle] = []
        self.file_sig: tuple[int, int] | None = None
        self.bundle: ksr.Bundle | None = None
        self.status: str | None = None
        self.running_out = False  # the response ends within skr-horizon (status warns)

    def load(self) -> list[ksr.Bundle]:
        """The response (read again when the file changed), checked like ``ksr validate``.
        Raises :class:`ResponseProblem` or :class:`~dnsseal.errors.FileFormatError`."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise ResponseProblem(
                f"offline-ksk: no signed key response in {self.path} "
                f"(dnsseal ksr import -K {self.path.parent} FILE)"
            ) from None
        except OSError as e:
            raise ResponseProblem(f"{self.path}: {e.strerror or e}") from None
        sig = (st.st_mtime_ns, st.st_size)
        if sig != self.file_sig:
            bundles = ksr.parse(read_text(self.path), ksr.SKR, str(self.path))
            problems = check_response(bundles)
            if not problems and ksr.zone_of(bundles, str(self.path)) != self.origin:
                problems = [f"a response for {ksr.zone_of(bundles)}, not {self.origin}"]
            if problems:
                raise ResponseProblem(f"{self.path}: {problems[0]}")
            self.bundles, self.file_sig = bundles, sig
            log.info("[%s] DNSSEC: signed key response %s: %d bundles", self.name, self.path,
                     len(bundles))  # fmt: skip
        return self.bundles

    def step(self, policy: Policy, keys: Sequence[Key], now: int) -> Plan:
        """The plan at ``now``: the bundle's DNSKEY RRset published, its ZSKs that are
        active by their timing metadata signing, the next bundle or ZSK timing event next.
        Raises :class:`ResponseProblem` when no bundle applies, it has run out or none of
        its ZSKs can sign here."""
        bundles = self.load()
        bundle = bundle_at(bundles, now)
        if bundle is None:
            raise ResponseProblem(f"{self.path}: no bundle applies yet (the first starts at "
                                  f"{format_human_time(bundles[0].time)})")  # fmt: skip
        exp = bundle_expiration(bundle)
        if exp is None or exp <= now:
            raise ResponseProblem(
                f"{self.path}: the signed key response has run out (its last key set "
                f"signatures expired at {format_human_time(exp or 0)}); import the next one"
            )
        chosen = offline_keys(keys, bundle, now)
        if not any(k.active for k in chosen):
            raise ResponseProblem(
                f"no ZSK of the key set from {format_human_time(bundle.time)} is active here "
                "with its private key (pregenerate them with dnsseal ksr keygen)"
            )
        events = [t for t in (next_bundle_time(bundles, now),) if t is not None]
        for k in keys:
            t = k.timings
            events += [x for x in (t.publish, t.activate, t.inactive, t.delete) if x and x > now]
        self._horizon(policy.skr_horizon, bundles[-1].time, now)
        self.bundle = bundle
        return Plan(
            self.origin, policy.name, now, tuple(KeyReport(k) for k in keys),
            dnskeys=tuple(k.key for k in chosen if k.publish),
            zsk_signers=tuple(k.key for k in chosen if k.active),
            next_event=min(events, default=None),
        )  # fmt: skip

    def _horizon(self, horizon: int, end: int, now: int) -> None:
        status = f"signed key response until {format_human_time(end)}"
        self.running_out = end - now < horizon
        if self.running_out:
            status = (
                f"warning: the signed key response ends at {format_human_time(end)}, "
                f"within skr-horizon {format_duration(horizon)}: import the next one"
            )
            if status != self.status:
                log.warning("[%s] DNSSEC: %s", self.name, status)
        self.status = status

    def keyset_rdatas(self) -> set[bytes]:
        """Every key set record of the response (the server's own, never a peer's)."""
        return keyset_rdatas(self.bundles)

    def dnskey_ttl(self) -> int | None:
        keyset = ksr.dnskey_rrset(self.bundle) if self.bundle is not None else None
        return keyset.ttl if keyset is not None else None

    def prepare(self, zone: Zone) -> Zone:
        """The zone to sign, with the bundle's key set in place."""
        return keyset_input(zone, self.bundle) if self.bundle is not None else zone

    def install(self, zone: Zone) -> Zone:
        """The signed zone with the bundle's key set and the offline KSK's signatures."""
        return install_bundle(zone, self.bundle) if self.bundle is not None else zone
