"""The three BIND key file formats: reading BIND's own output, round trips (hypothesis),
and unknown lines kept."""

from __future__ import annotations

import dns.name
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsseal.keys import bindfmt
from dnsseal.keys.model import (
    TIMING_FIELDS,
    Key,
    KeyState,
    KeyTimings,
    PrivateMaterial,
    RecordState,
)

# Files as BIND 9.18's dnssec-keygen -k and dnssec-settime -s write them.
BIND_KEY = """\
; This is a key-signing key, keyid 4720, for example.net.
; Created: 20261121221603 (Sat Nov 21 22:16:03 2026)
; Publish: 20261121221603 (Sat Nov 21 22:16:03 2026)
; Activate: 20261121221603 (Sat Nov 21 22:16:03 2026)
; Revoke: 20261201221603 (Tue Dec  1 22:16:03 2026)
; SyncPublish: 20261122221603 (Sun Nov 22 22:16:03 2026)
; SyncDelete: 20261126221603 (Thu Nov 26 22:16:03 2026)
example.net. 3600 IN DNSKEY 257 3 13 ZGDbMP7SpaVP9BhXPnlFHe7GGA3N8/HfsT9EqsTlRT/HaP3SiDR6rDZH \
GepmtZp+6lLaHoEt6PSAyYQONtPz/Q==
"""
BIND_PRIVATE = """\
Private-key-format: v1.3
Algorithm: 13 (ECDSAP256SHA256)
PrivateKey: BaXDQ53Z6DnG6rsLaUCzEaL6EjFwrReDgUHbVRHvQ6U=
Created: 20261121221603
Publish: 20261121221603
Activate: 20261121221603
Revoke: 20261201221603
DSPublish: 20261124221603
SyncPublish: 20261122221603
SyncDelete: 20261126221603
"""
BIND_STATE = """\
; This is the state of key 4720, for example.net.
Algorithm: 13
Length: 256
Lifetime: 31536000
KSK: yes
ZSK: no
Generated: 20261121221603 (Sat Nov 21 22:16:03 2026)
Published: 20261121221603 (Sat Nov 21 22:16:03 2026)
Active: 20261121221603 (Sat Nov 21 22:16:03 2026)
DNSKEYChange: 20261121221601 (Sat Nov 21 22:16:01 2026)
KRRSIGChange: 20261121221601 (Sat Nov 21 22:16:01 2026)
DSChange: 20261121221601 (Sat Nov 21 22:16:01 2026)
DNSKEYState: omnipresent
KRRSIGState: omnipresent
DSState: rumoured
GoalState: omnipresent
"""

T0 = 1795299363  # 20261121221603


def test_reads_bind_files() -> None:
    pub = bindfmt.parse_key(BIND_KEY, "K.key")
    priv = bindfmt.parse_private(BIND_PRIVATE, "K.private")
    state = bindfmt.parse_state(BIND_STATE, "K.state")
    key = bindfmt.assemble(pub, priv, state, "K.key")
    assert key.tag == 4720
    assert key.zone == dns.name.from_text("example.net.")
    assert key.ttl == 3600
    assert key.is_ksk and key.role == "ksk"
    assert key.timings.created == T0
    assert key.timings.revoke == T0 + 10 * 86400
    assert key.timings.ds_publish == T0 + 3 * 86400
    assert key.timings.sync_publish == T0 + 86400
    assert key.state is not None
    assert key.state.lifetime == 31536000
    assert key.state.ksk is True and key.state.zsk is False
    assert key.state.dnskey is RecordState.OMNIPRESENT
    assert key.state.ds is RecordState.RUMOURED
    assert key.state.ds_change == T0 - 2
    assert key.state.goal is RecordState.OMNIPRESENT
    # And we write what we read: parse(format(x)) == x for all three files.
    assert bindfmt.parse_key(bindfmt.format_key(key)) == pub
    assert bindfmt.parse_private(bindfmt.format_private(key)).material == priv.material
    again = bindfmt.parse_state(bindfmt.format_state(key))
    assert again.state == state.state
    assert again.length == 256


def test_written_files_look_like_binds() -> None:
    key = bindfmt.assemble(
        bindfmt.parse_key(BIND_KEY), bindfmt.parse_private(BIND_PRIVATE), None, "K"
    )
    assert bindfmt.format_key(key) == BIND_KEY
    assert bindfmt.format_private(key) == BIND_PRIVATE


def test_unknown_lines_are_kept() -> None:
    priv = BIND_PRIVATE + "Label: pkcs11:object=ksk\nFutureTag: 42\n"
    state = BIND_STATE + "DSPubCount: 1\nSomethingNew: yes\n"
    key = bindfmt.assemble(
        bindfmt.parse_key(BIND_KEY + "; operator note: escrowed\n"),
        bindfmt.parse_private(priv),
        bindfmt.parse_state(state),
        "K",
    )
    assert "Label: pkcs11:object=ksk" in bindfmt.format_private(key)
    assert "FutureTag: 42" in bindfmt.format_private(key)
    assert "DSPubCount: 1" in bindfmt.format_state(key)
    assert "SomethingNew: yes" in bindfmt.format_state(key)
    assert "; operator note: escrowed" in bindfmt.format_key(key)


# ------------------------------------------------------------------- round trips

times = st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1))
timings = st.builds(KeyTimings, **{f.attr: times for f in TIMING_FIELDS})
record_states = st.one_of(st.none(), st.sampled_from(list(RecordState)))
states = st.builds(
    KeyState,
    lifetime=st.one_of(st.none(), st.integers(0, 10**9)),
    predecessor=st.one_of(st.none(), st.integers(0, 65535)),
    successor=st.one_of(st.none(), st.integers(0, 65535)),
    ksk=st.one_of(st.none(), st.booleans()),
    zsk=st.one_of(st.none(), st.booleans()),
    dnskey_change=times,
    zrrsig_change=times,
    krrsig_change=times,
    ds_change=times,
    dnskey=record_states,
    zrrsig=record_states,
    krrsig=record_states,
    ds=record_states,
    goal=record_states,
    extra=st.lists(
        st.from_regex(r"\A[A-Z][A-Za-z]{2,12}: [a-z0-9]{1,8}\Z", fullmatch=True), max_size=3
    ).map(tuple),
)
labels = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z", fullmatch=True)
zones = st.lists(labels, min_size=0, max_size=4).map(
    lambda ls: dns.name.from_text(".".join(ls) + ".") if ls else dns.name.root
)
algs = st.sampled_from([(8, 260), (10, 260), (13, 64), (14, 96), (15, 32), (16, 57)])


@st.composite
def keys(draw: st.DrawFn) -> Key:
    alg, size = draw(algs)
    public = draw(st.binary(min_size=size, max_size=size))
    if alg in (8, 10):
        public = b"\x03\x01\x00\x01" + public[4:]
    tags = (
        ("PrivateKey",)
        if alg not in (8, 10)
        else (
            "Modulus",
            "PublicExponent",
            "PrivateExponent",
            "Prime1",
            "Prime2",
            "Exponent1",
            "Exponent2",
            "Coefficient",
        )
    )
    material = PrivateMaterial(tuple((t, draw(st.binary(min_size=1, max_size=64))) for t in tags))
    state = draw(st.one_of(st.none(), states))
    key_timings = draw(timings)
    if state is None:  # without a state file there is nowhere to keep the DS removal time
        key_timings = key_timings.replace(ds_delete=None)
    return Key(
        zone=draw(zones),
        flags=draw(st.sampled_from([256, 257, 384, 385])),
        algorithm=alg,
        public_key=public,
        ttl=draw(st.one_of(st.none(), st.integers(0, 2**31 - 1))),
        timings=key_timings,
        state=state,
        private=material,
    )


@settings(max_examples=150)
@given(keys())
def test_key_file_round_trip(key: Key) -> None:
    back = bindfmt.parse_key(bindfmt.format_key(key))
    assert (back.zone, back.ttl, back.flags, back.algorithm, back.public_key) == (
        key.zone, key.ttl, key.flags, key.algorithm, key.public_key,
    )  # fmt: skip
    for f in TIMING_FIELDS:
        if f.key_tag:
            assert back.timings.get(f.attr) == key.timings.get(f.attr)


@settings(max_examples=150)
@given(keys())
def test_private_file_round_trip(key: Key) -> None:
    back = bindfmt.parse_private(bindfmt.format_private(key))
    assert back.algorithm == key.algorithm
    assert back.material == key.private
    # BIND keeps the DS removal time in the .state file only.
    assert back.timings == key.timings.replace(ds_delete=None)


@settings(max_examples=150)
@given(keys())
def test_state_file_round_trip(key: Key) -> None:
    back = bindfmt.parse_state(bindfmt.format_state(key))
    assert back.state == (key.state or KeyState())
    assert back.timings == key.timings
    assert back.algorithm == key.algorithm


@settings(max_examples=100)
@given(keys())
def test_whole_key_round_trip(key: Key) -> None:
    again = bindfmt.assemble(
        bindfmt.parse_key(bindfmt.format_key(key)),
        bindfmt.parse_private(bindfmt.format_private(key)),
        bindfmt.parse_state(bindfmt.format_state(key)) if key.state else None,
        "K",
    )
    assert again == key


_TOKEN = st.text(alphabet='0123456789+/=ABCDEFabcxyz"();\\#-.é٣', min_size=0, max_size=12).filter(
    lambda t: t.strip() == t and t != "" and " " not in t
)


@given(
    st.one_of(
        st.lists(_TOKEN, min_size=0, max_size=6),
        st.tuples(
            st.integers(0, 70000).map(str),
            st.integers(0, 300).map(str),
            st.sampled_from(["8", "13", "15", "256", "013", "ECDSAP256SHA256"]),
            st.binary(max_size=70).map(lambda b: __import__("base64").b64encode(b).decode()),
            st.integers(0, 8),
        ).map(
            lambda t: [
                t[0],
                t[1],
                t[2],
                *[t[3][i : i + t[4] + 1] for i in range(0, len(t[3]), t[4] + 1)],
            ]
        ),
    )
)
def test_dnskey_fields_are_what_dnspython_reads(tokens: list[str]) -> None:
    """The plain form's fields are dnspython's; whatever the fast path declines, or gets
    wrong, would differ here (None is always allowed: dnspython then reads the text)."""
    import binascii

    import dns.exception
    import dns.rdata

    fast = bindfmt.dnskey_fields(tokens)
    if fast is None:
        return
    try:
        rd = dns.rdata.from_text(1, 48, " ".join(tokens))
    except (dns.exception.DNSException, ValueError, binascii.Error) as e:
        raise AssertionError(f"dnspython refuses {tokens!r} ({e}); the fast path read it") from e
    assert fast == (rd.flags, rd.protocol, int(rd.algorithm), bytes(rd.key))  # type: ignore[attr-defined]


def test_dnskey_fields_decline_what_dnspython_refuses() -> None:
    for bad in (["65536", "3", "13", "AAAA"], ["257", "256", "13", "AAAA"], ["257", "3", "13"],
                ["257", "3", "13", "AA;A="], ["257", "3"], ["25٣", "3", "13", "AAAA"]):  # fmt: skip
        assert bindfmt.dnskey_fields(bad) is None
    assert bindfmt.dnskey_fields(["257", "3", "13", "AAAA", "AQ=="]) == (257, 3, 13, b"\0\0\0\1")
