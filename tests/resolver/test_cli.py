"""Option and file errors of ``dnsseal resolve`` / ``dnsseal resolver`` name what is wrong
(no network needed: errors are raised before any query)."""

from __future__ import annotations

from pathlib import Path

import dns.name
import pytest

from dnsseal.cli.resolvecmds import _split_args, build_config, parse_nta
from dnsseal.errors import FileFormatError, OptionError, StorageError
from dnsseal.resolver.hints import builtin_root_servers, parse_hints, parse_server
from dnsseal.resolver.recording import Recording


def test_arguments_like_dig() -> None:
    assert _split_args(("example.com", "aaaa", "@192.0.2.1")) == (
        "example.com",
        "AAAA",
        "192.0.2.1",
    )
    assert _split_args(("@::1#5300", "example.com")) == ("example.com", "A", "::1#5300")
    with pytest.raises(OptionError):
        _split_args(("a.", "A", "b."))
    with pytest.raises(OptionError):
        _split_args(("@192.0.2.1",))


def test_servers_and_ports() -> None:
    assert parse_server("192.0.2.1#5300", 53) == ("192.0.2.1", 5300)
    assert parse_server("::1", 5353) == ("::1", 5353)
    for bad in ("ns.example", "192.0.2.1#99999", "192.0.2.1#x"):
        with pytest.raises(OptionError) as e:
            parse_server(bad, 53)
        assert e.value.option == "@SERVER"
    assert len(builtin_root_servers()) == 13
    config = build_config(None, None, "127.0.0.1#5300", 53, True)
    assert config.root_servers == (("127.0.0.1", 5300),) and config.port == 5300


def test_hints_file(tmp_path: Path) -> None:
    text = ". 3600000 NS a.root.\na.root. 3600000 A 192.0.2.1\na.root. 3600000 AAAA ::1\n"
    assert parse_hints(text, "h", 5300) == (("192.0.2.1", 5300), ("::1", 5300))
    with pytest.raises(FileFormatError) as e:
        parse_hints(". 3600000 NS a.root.\na.root. 3600000 A not-an-address\n", "named.root")
    assert e.value.path == "named.root" and e.value.line == 2
    with pytest.raises(FileFormatError, match="no address"):
        parse_hints(". 3600000 NS a.root.\n", "named.root")
    with pytest.raises(StorageError) as s:
        build_config(None, str(tmp_path / "missing.hints"), None, 53, True)
    assert "missing.hints" in str(s.value)


def test_negative_anchor_option() -> None:
    assert parse_nta("broken.example", 100) == (dns.name.from_text("broken.example."), 3700)
    assert parse_nta("broken.example=1d", 0)[1] == 86400
    with pytest.raises(OptionError) as e:
        parse_nta("broken.example=soon", 0)
    assert e.value.option == "--nta"
    config = build_config(None, None, "127.0.0.1", 53, True, ("a.example=1h",))
    assert config.anchors.negative_for(dns.name.from_text("www.a.example."), 0) is not None


def test_builtin_root_servers_match_the_system_root_hints() -> None:
    path = Path("/usr/share/dns/root.hints")  # Debian's named.root (dns-root-data)
    servers = parse_hints(path.read_text(), str(path))
    v4 = [a for a, _ in servers if ":" not in a]
    assert sorted(v4) == sorted(a for a, _ in builtin_root_servers())
    assert len(servers) == 26


def test_recording_file_errors_and_round_trip() -> None:
    rec = Recording(1234, {("www.example.", "A"): [b"\x00\x01abc"]})
    assert Recording.from_json(rec.to_json(), "r.json") == rec
    for bad in ("[", '{"version": 3}', '{"version": 1, "made_at": 1, "replies": [{}]}'):
        with pytest.raises(FileFormatError) as e:
            Recording.from_json(bad, "r.json")
        assert e.value.path == "r.json"
