"""The DS automation options of a zone (storage.serverconfig.ds_automation_options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsseal.errors import OptionError
from dnsseal.storage.serverconfig import DsAutomation, Endpoint, parse_config


def _config(zone: str, opts: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(
        f"""
[server]
state-dir = "state"
[zone."{zone}"]
file = "z"
dnssec-policy = "default"
{opts}
"""
    )


def test_parent_options(tmp_path: Path) -> None:
    cfg = parse_config(
        _config(
            "parent.test",
            "ds-automation = true\nds-interval = 2\nds-ttl = 300\ndsync = true\n"
            'ds-trust-anchors = "a.conf"\nds-root = ["127.0.0.1@5300"]',
        ),
        tmp_path,
    )
    assert cfg.zones[0].ds == DsAutomation(
        parent=True,
        signaling=False,
        dsync=True,
        trust_anchors=tmp_path / "a.conf",
        root=(Endpoint("127.0.0.1", 5300),),
        interval=2.0,
        ttl=300,
    )


def test_dsync_allow_and_children(tmp_path: Path) -> None:
    import tomllib

    text = """
[server]
state-dir = "state"
[key.cds]
algorithm = "hmac-sha256"
secret = "Y2RzLW5vdGlmeS1zZWNyZXQtY2RzLW5vdGlmeS1zZWNyZXQ="
[acl]
kids = ["key cds", "127.0.0.1"]
[zone."parent.test"]
file = "z"
dnssec-policy = "default"
ds-automation = true
dsync = true
dsync-allow = ["kids"]
dsync-child = ["kid ns2@5302", "b.kid2.parent.test. notify.example."]
"""
    ds = parse_config(tomllib.loads(text), tmp_path).zones[0].ds
    assert ds is not None
    assert ds.notify_acl == ("key cds", "127.0.0.1")
    assert ds.children == (("kid", "ns2", 5302), ("b.kid2.parent.test.", "notify.example.", None))


def test_no_options_no_automation(tmp_path: Path) -> None:
    assert parse_config(_config("example.test", ""), tmp_path).zones[0].ds is None


@pytest.mark.parametrize(
    ("zone", "opts", "option"),
    [
        ("p.test", 'ds-automation = "yes"', 'zone."p.test".ds-automation'),
        ("p.test", "signaling = true", 'zone."p.test".signaling'),
        ("_signal.ns1.p.test", "ds-interval = 0", 'zone."_signal.ns1.p.test".ds-interval'),
        ("p.test", "ds-ttl = -1", 'zone."p.test".ds-ttl'),
        ("p.test", 'ds-root = ["nowhere"]', 'zone."p.test".ds-root[0]'),
        ("p.test", 'ds-root = ["127.0.0.1"]', 'zone."p.test".ds-root'),
        ("p.test", "ds-trust-anchors = 5", 'zone."p.test".ds-trust-anchors'),
        ("p.test", 'dsync-allow = "key cds"', 'zone."p.test".dsync-allow'),
        (
            "p.test",
            'ds-automation = true\ndsync = true\ndsync-allow = ["key nokey"]',
            'zone."p.test".dsync-allow[0]',
        ),
        (
            "p.test",
            'ds-automation = true\ndsync = true\ndsync-child = ["kid a b"]',
            'zone."p.test".dsync-child[0]',
        ),
        (
            "p.test",
            'ds-automation = true\ndsync = true\ndsync-child = ["kid ns@99999"]',
            'zone."p.test".dsync-child[0]',
        ),
        (
            "p.test",
            'ds-automation = true\ndsync = true\ndsync-child = "kid ns"',
            'zone."p.test".dsync-child',
        ),
        (
            "p.test",
            'ds-automation = true\ndsync = true\ndsync-child = ["kid"]',
            'zone."p.test".dsync-child[0]',
        ),
    ],
)
def test_errors_name_the_option(tmp_path: Path, zone: str, opts: str, option: str) -> None:
    with pytest.raises(OptionError) as e:
        parse_config(_config(zone, opts), tmp_path)
    assert option in str(e.value)


def test_ds_automation_needs_inline_signing(tmp_path: Path) -> None:
    import tomllib

    data = tomllib.loads('[zone."p.test"]\nfile = "z"\npresigned = true\nds-automation = true\n')
    with pytest.raises(OptionError) as e:
        parse_config(data, tmp_path)
    assert "need inline signing" in str(e.value)


@pytest.mark.parametrize(
    ("opts", "option"),
    [
        ('dsync-allow = ["127.0.0.1"]', "dsync-allow"),
        ('dsync-child = ["kid ns2"]', "dsync-child"),
        ('dsync = true\ndsync-allow = ["127.0.0.1"]', "dsync-allow"),
        ('ds-automation = true\ndsync-child = ["kid ns2"]', "dsync-child"),
    ],
)
def test_parent_only_options_are_refused_elsewhere(tmp_path: Path, opts: str, option: str) -> None:
    # They were accepted and then ignored: an operator would think the ACL guarded the zone.
    with pytest.raises(OptionError) as e:
        parse_config(_config("p.test", opts), tmp_path)
    assert f'zone."p.test".{option}' in str(e.value)
    assert "ds-automation = true and dsync = true" in str(e.value)
