"""The bogus windows BIND's own rules open, where dnsseal deliberately differs.

docs/keymgr-vs-bind.md lists dnsseal's two changes to the rules of "Flexible and Robust
Key Rollover" as BIND applies them (lib/dns/keymgr.c keymgr_have_dnskey and
keymgr_have_rrsig): the (3c) DS-swap pair is not a rule on its own, and the (3h)
signature-swap pair only counts while every other signer's DNSKEY is in every cache.
Here the engine runs once with BIND's rules put back, on the scenarios where they
matter: the cache checker finds the bogus window BIND's rule allows, and with dnsseal's
rules (tests/keymgr/test_regressions.py, same scenarios) there is none.
"""

from __future__ import annotations

import pytest

from dnsseal.keymgr import rules, safety
from dnsseal.keymgr.plan import RolloverRequest
from dnsseal.keymgr.rules import O, R, Ring, U
from dnsseal.policy.model import UNLIMITED, KeySpec

from .helpers import DAY, HOUR, T0, run
from .test_regressions import SHORT


def bind_have_dnskey(self: Ring) -> bool:
    """keymgr_have_dnskey: (3b), the (3c) pair, the (3d) pairs, (3e)."""
    if self.exists((O, None, O, O)):
        return True
    if self.exists((O, None, O, U), (O, None, O, R)):
        return True
    for p in ((U, None, U, O), (O, None, U, O), (U, None, O, O)):
        for s in ((R, None, R, O), (O, None, R, O), (R, None, O, O)):
            if self.exists(p, s):
                return True
    return self.ds_hidden_or_chained(False)


def bind_have_rrsig(self: Ring) -> bool:
    """keymgr_have_rrsig: (3f), the (3g) and (3h) pairs, (3i)."""
    return (
        self.ds_hidden_or_chained(True)
        or self.exists((O, O, None, None))
        or self.exists((U, O, None, None), (R, O, None, None))
        or self.exists((O, U, None, None), (O, R, None, None))
        or self.dnskey_hidden_or_chained()
    )


def test_bind_3c_pair_lets_an_orphan_ds_lose_its_dnskey(monkeypatch: pytest.MonkeyPatch) -> None:
    """CSK -> KSK + ZSK, then the new KSK is rolled while the old CSK's DS may still be
    cached: with BIND's (3c) the old CSK's DNSKEY leaves too early."""
    monkeypatch.setattr(rules.Ring, "have_dnskey", bind_have_dnskey)
    before = SHORT.replace(keys=(KeySpec("csk", 8, UNLIMITED),))
    after = SHORT.replace(keys=(KeySpec("ksk", 8, UNLIMITED), KeySpec("zsk", 8, UNLIMITED)))
    change = T0 + 5 * DAY
    first = run(before, 12, ds_delay=HOUR, scheduled=[(change, after)])
    ksk = next(k for k in first.keys.values() if k.role == "ksk")
    roll = change + 9000
    tl = run(before, 12, ds_delay=HOUR,
             scheduled=[(change, after), (roll, RolloverRequest(ksk.id, roll))])  # fmt: skip
    bogus = safety.check(tl, before)
    assert bogus, "BIND's (3c) rule was expected to open a bogus window here"
    assert any("no chain" in b.reason for b in bogus)


def test_bind_3h_pair_lets_a_third_signer_lose_its_dnskey(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KSK + ZSK -> CSK, then the new CSK is rolled while the old ZSK still signs: with
    BIND's (3h) the old ZSK's DNSKEY leaves while its signatures are cached."""
    monkeypatch.setattr(rules.Ring, "have_rrsig", bind_have_rrsig)
    base = SHORT.replace(parent_ds_ttl=300, parent_propagation_delay=0,
                         signatures_validity=7 * DAY)  # fmt: skip
    kz = base.replace(keys=(KeySpec("ksk", 8, UNLIMITED), KeySpec("zsk", 8, UNLIMITED)))
    csk = base.replace(keys=(KeySpec("csk", 8, UNLIMITED),))
    change = T0 + 5 * DAY
    first = run(kz, 6, ds_delay=0, scheduled=[(change, csk)])
    new = next(k for k in first.keys.values() if k.role == "csk")
    roll = change + 2 * DAY
    tl = run(kz, 20, ds_delay=0,
             scheduled=[(change, csk), (roll, RolloverRequest(new.id, roll))])  # fmt: skip
    bogus = safety.check(tl, kz)
    assert bogus, "BIND's (3h) rule was expected to open a bogus window here"
    assert any("data signed by" in b.reason for b in bogus)
