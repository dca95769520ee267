"""The pure DS-automation engine (proto.dsautomation): RFC 7344 s4.1, continuity, RFC 9975
consistency, RFC 8078 DELETE, RFC 9615 bootstrapping, replay, algorithms."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.proto.dsautomation import (
    Action,
    Params,
    ServerAnswer,
    SignalAnswer,
    decide,
    ds_ttl,
    new_ds_set,
    signal_child,
    signal_name,
)
from dnsseal.validator import verdict as v

from .childdata import NOW, Child, new_key

T = dns.rdatatype
CHILD = dns.name.from_text("child.example.")
NS_OUT = [dns.name.from_text("ns1.provider.test."), dns.name.from_text("ns2.provider.test.")]


def _signals(child: Child, verdict: v.Verdict | None = None) -> list[SignalAnswer]:
    rr = child.rrsets()
    ok = verdict or v.secure("ok")
    return [SignalAnswer(ns, rr[T.CDS][0], rr[T.CDNSKEY][0], ok, ok) for ns in NS_OUT]


def test_secure_child_roll_is_followed() -> None:
    c = Child("child.example.")
    current = c.ds()
    new = new_key()
    c.ksks.append(new)  # both KSKs sign the DNSKEY RRset, CDS switches to the new one
    c.cds_keys = [new]
    d = decide(CHILD, current, [c.answer("a"), c.answer("b")], NS_OUT, [], NOW)
    assert d.action is Action.SET, d.reason
    assert [x.to_text() for x in d.ds] == [c.ds(keys=[new])[0].to_text()]
    assert d.mode == "secure"
    assert [s for s, _ in d.servers] == ["a", "b"]


def test_unchanged_when_ds_matches() -> None:
    c = Child("child.example.")
    d = decide(CHILD, c.ds(), [c.answer()], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "already matches" in d.reason


def test_cds_signed_only_by_a_key_without_ds_is_refused() -> None:
    # RFC 7344 s4.1: the ZSK (no DS) signing the CDS does not authenticate it.
    c = Child("child.example.")
    current = c.ds()
    new = new_key()
    c.ksks.append(new)
    c.cds_keys = [new]
    c.cds_signers = [c.zsk]
    d = decide(CHILD, current, [c.answer()], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "RFC 7344 s4.1" in d.reason


def test_cds_that_breaks_the_chain_is_refused() -> None:
    # The CDS names a key that is not in the DNSKEY RRset (nothing would validate).
    c = Child("child.example.")
    current = c.ds()
    c.cds_keys = [new_key()]
    d = decide(CHILD, current, [c.answer()], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "break the chain" in d.reason


def test_cds_for_a_key_that_does_not_sign_dnskey_is_refused() -> None:
    c = Child("child.example.")
    current = c.ds()
    c.cds_keys = [c.zsk]  # the ZSK is in the DNSKEY RRset but does not sign it
    d = decide(CHILD, current, [c.answer()], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "break the chain" in d.reason


def test_inconsistent_servers_name_the_server() -> None:
    c = Child("child.example.")
    current = c.ds()
    good = c.answer("ns1.example. 127.0.0.1@53")
    c.ksks.append(new_key())
    c.cds_keys = [c.ksks[1]]
    other = c.answer("ns2.example. 127.0.0.2@53")
    d = decide(CHILD, current, [good, other], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "ns2.example. 127.0.0.2@53 serves CDS" in d.reason
    assert "RFC 9975" in d.reason


def test_nodata_at_one_server_counts() -> None:
    c = Child("child.example.")
    current = c.ds()
    c.ksks.append(new_key())
    c.cds_keys = [c.ksks[1]]
    with_cds = c.answer("a")
    c.publish_cds = c.publish_cdnskey = False
    d = decide(CHILD, current, [with_cds, c.answer("b")], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "b serves CDS none" in d.reason


def test_unanswered_server_blocks() -> None:
    c = Child("child.example.")
    d = decide(CHILD, [], [c.answer("a"), ServerAnswer("b", error="timeout")], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert d.reason.startswith("b did not answer")


def test_delete_from_a_validated_child() -> None:
    c = Child("child.example.")
    current = c.ds()
    c.delete = True
    d = decide(CHILD, current, [c.answer()], NS_OUT, [], NOW)
    assert d.action is Action.DELETE, d.reason


def test_delete_signed_by_no_ds_key_is_refused() -> None:
    c = Child("child.example.")
    current = c.ds()
    c.delete = True
    c.cds_signers = [c.zsk]
    d = decide(CHILD, current, [c.answer()], NS_OUT, [], NOW)
    assert d.action is Action.KEEP


def test_delete_beside_data_aborts() -> None:
    c = Child("child.example.")
    current = c.ds()
    rr = c.rrsets()
    cds, sigs = rr[T.CDS]
    assert cds is not None
    mixed = dns.rrset.from_text_list(
        CHILD, 0, "IN", "CDS", [*(x.to_text() for x in cds), "0 0 0 00"]
    )
    rr[T.CDS] = (mixed, sigs)
    d = decide(CHILD, current, [ServerAnswer("a", rr)], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "DELETE record beside" in d.reason


def test_delete_for_insecure_child_does_nothing() -> None:
    c = Child("child.example.")
    c.delete = True
    d = decide(CHILD, [], [c.answer()], NS_OUT, _signals(c), NOW)
    assert d.action is Action.KEEP


def test_cds_and_cdnskey_must_agree() -> None:
    c = Child("child.example.")
    current = c.ds()
    rr = c.rrsets()
    other = Child("child.example.")
    other.ksks = c.ksks
    other.cds_keys = [c.zsk]
    rr[T.CDNSKEY] = other.rrsets()[T.CDNSKEY]
    d = decide(CHILD, current, [ServerAnswer("a", rr)], NS_OUT, [], NOW)
    assert d.action is Action.KEEP
    assert "CDNSKEY names" in d.reason


def test_bootstrap_through_signaling_names() -> None:
    c = Child("child.example.")
    d = decide(CHILD, [], [c.answer()], NS_OUT, _signals(c), NOW)
    assert d.action is Action.SET, d.reason
    assert d.mode == "bootstrap"
    assert [x.to_text() for x in d.ds] == [x.to_text() for x in c.ds()]


def test_bootstrap_refused_when_a_signal_does_not_validate() -> None:
    c = Child("child.example.")
    signals = _signals(c)
    signals[1] = _signals(c, v.bogus("RRSIG does not verify"))[1]
    d = decide(CHILD, [], [c.answer()], NS_OUT, signals, NOW)
    assert d.action is Action.KEEP
    assert "ns2.provider.test" in d.reason and "not validated" in d.reason


def test_bootstrap_refused_when_a_signal_is_missing_or_differs() -> None:
    c = Child("child.example.")
    d = decide(CHILD, [], [c.answer()], NS_OUT, _signals(c)[:1], NOW)
    assert d.action is Action.KEEP and "was not asked" in d.reason
    other = Child("child.example.")
    signals = [_signals(c)[0], _signals(other)[1]]
    d = decide(CHILD, [], [c.answer()], NS_OUT, signals, NOW)
    assert d.action is Action.KEEP and "must be equal" in d.reason


def test_bootstrap_needs_an_out_of_domain_ns() -> None:
    c = Child("child.example.")
    inside = [dns.name.from_text("ns1.child.example.")]
    d = decide(CHILD, [], [c.answer()], inside, [], NOW)
    assert d.action is Action.KEEP and "inside the child" in d.reason


def test_bootstrap_in_domain_ns_is_skipped() -> None:
    c = Child("child.example.")
    names = [*NS_OUT, dns.name.from_text("ns1.child.example.")]
    d = decide(CHILD, [], [c.answer()], names, _signals(c), NOW)
    assert d.action is Action.SET, d.reason


def test_bootstrap_cds_must_be_signed_by_the_key_it_names() -> None:
    c = Child("child.example.")
    c.cds_signers = [c.zsk]  # signed, but not by a key of the DS set it asks for
    d = decide(CHILD, [], [c.answer()], NS_OUT, _signals(c), NOW)
    assert d.action is Action.KEEP


def test_replay_protection() -> None:
    c = Child("child.example.")
    current = c.ds()
    c.ksks.append(new_key())
    c.cds_keys = [c.ksks[1]]
    params = Params(not_before=c.inception + 1)
    d = decide(CHILD, current, [c.answer()], NS_OUT, [], NOW, params)
    assert d.action is Action.KEEP and "replay" in d.reason
    params = Params(not_before=c.inception)
    assert decide(CHILD, current, [c.answer()], NS_OUT, [], NOW, params).action is Action.SET


def test_expired_signatures_are_refused() -> None:
    c = Child("child.example.")
    current = c.ds()
    c.ksks.append(new_key())
    c.cds_keys = [c.ksks[1]]
    d = decide(CHILD, current, [c.answer()], NS_OUT, [], NOW + 86400 * 40)
    assert d.action is Action.KEEP


def test_digest_selection_follows_dnssec_cds() -> None:
    c = Child("child.example.", digests=(2, 4))
    rr = c.rrsets()
    both = new_ds_set(CHILD, rr[T.CDS][0], rr[T.CDNSKEY][0], Params(digests=(2, 4)))
    assert isinstance(both, tuple) and {d.digest_type for d in both} == {2, 4}
    only256 = new_ds_set(CHILD, rr[T.CDS][0], rr[T.CDNSKEY][0])
    assert isinstance(only256, tuple) and {d.digest_type for d in only256} == {2}
    # CDS with no accepted digest: CDNSKEY is used instead.
    c4 = Child("child.example.", digests=(4,))
    rr4 = c4.rrsets()
    from_key = new_ds_set(CHILD, rr4[T.CDS][0], rr4[T.CDNSKEY][0])
    assert isinstance(from_key, tuple)
    assert [d.to_text() for d in from_key] == [d.to_text() for d in c4.ds()]
    assert isinstance(new_ds_set(CHILD, rr4[T.CDS][0], None), str)
    with pytest.raises(ValueError):
        Params(digests=(1,))


def test_signal_names_round_trip() -> None:
    ns = dns.name.from_text("ns1.provider.test.")
    name = signal_name(CHILD, ns)
    assert name.to_text() == "_dsboot.child.example._signal.ns1.provider.test."
    assert signal_child(name, ns) == CHILD
    assert signal_child(dns.name.from_text("x._signal.ns1.provider.test."), ns) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4), st.booleans())
def test_any_difference_between_servers_blocks(flip: list[str], delete: bool) -> None:
    """Property: whenever one server's CDS set differs, nothing changes; when all agree,
    the decision is the same as with one server."""
    c = Child("child.example.")
    current = c.ds()
    c.ksks.append(new_key())
    c.cds_keys = [c.ksks[1]]
    c.delete = delete
    agreed = c.answer("x")
    answers = [ServerAnswer(f"s{i}", agreed.rrsets) for i in range(len(flip))]
    single = decide(CHILD, current, answers[:1], NS_OUT, [], NOW)
    assert decide(CHILD, current, answers, NS_OUT, [], NOW).action is single.action
    rr = dict(agreed.rrsets)
    rr[T.CDS] = (None, ())
    bad = [*answers, ServerAnswer("odd", rr)]
    assert decide(CHILD, current, bad, NS_OUT, [], NOW).action is Action.KEEP


def test_ds_ttl_is_lowered_after_a_change() -> None:
    assert ds_ttl(1000, 900, 86400, 300, 3600) == 300
    assert ds_ttl(10000, 900, 86400, 300, 3600) == 86400
    assert ds_ttl(1000, None, 86400, 300, 3600) == 86400
