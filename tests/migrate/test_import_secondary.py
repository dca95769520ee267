"""`dnsseal import-bind` of a named.conf with secondary zones (TSIG-keyed `primaries`, a
`masters` list, `type slave`): the config it writes is served, and dnsseal serves the zone
exactly as the named primary does (it used to skip such zones with a note)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conftest import Dnsseal, free_port, run_tool
from server.secondaries import (
    SECRET,
    axfr,
    dnsseal_serve,
    named_primary,
    serial,
    wait_until,
)

ZONE = "moved.example."


@pytest.mark.interop
@pytest.mark.slow
def test_imported_secondary_is_served_as_the_primary_serves_it(
    tmp_path: Path, dnsseal: Dnsseal
) -> None:
    port = free_port()
    with named_primary(tmp_path / "primary", ZONE, [port]) as primary:
        bind = tmp_path / "bind"
        bind.mkdir()
        conf = bind / "named.conf"
        conf.write_text(
            f"""key "xfr" {{ algorithm hmac-sha256; secret "{SECRET}"; }};
masters "upstream" {{ 127.0.0.1 port {primary.port} key "xfr"; }};
options {{
    directory "{bind}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    allow-transfer {{ 127.0.0.1; }};
}};
zone "{ZONE}" {{
    type slave;
    masters {{ upstream; }};
    file "moved.example.bk";
    allow-notify {{ 127.0.0.1; }};
}};
zone "other.example" {{
    type secondary;
    primaries {{ 192.0.2.1; 192.0.2.2 port 5353 key "xfr"; }};
    file "other.bk";
}};
"""
        )
        run_tool(["named-checkconf", conf])  # BIND agrees it is valid
        out = tmp_path / "dnsseal.toml"
        r = dnsseal("import-bind", conf, "-o", out)
        assert "moved.example.: a secondary: transferred anew" in r.stderr, r.stderr
        assert "allow-notify: NOTIFY is taken from the primaries" in r.stderr, r.stderr
        data = tomllib.loads(out.read_text())
        moved = data["zone"]["moved.example"]
        assert moved["primaries"] == [f"127.0.0.1 port {primary.port} key xfr"]
        assert "dnssec-policy" not in moved and "file" not in moved
        assert moved["allow-transfer"] == ["127.0.0.1"]
        other = data["zone"]["other.example"]
        assert other["primaries"] == ["192.0.2.1 port 53", "192.0.2.2 port 5353 key xfr"]
        assert data["key"]["xfr"]["secret"] == SECRET
        dnsseal("checkconf", out)

        with dnsseal_serve(tmp_path, port, ZONE):
            wait_until(lambda: serial(port, ZONE) == serial(primary.port, ZONE), 10, "sync")
            assert axfr(port, ZONE) == axfr(primary.port, ZONE, keyed=True)
            # named's NOTIFY (signed with xfr) brings a change at once.
            primary.update(ZONE, f"update add new.{ZONE} 60 A 192.0.2.7")
            wait_until(lambda: serial(port, ZONE) == serial(primary.port, ZONE), 10, "NOTIFY")
            assert axfr(port, ZONE) == axfr(primary.port, ZONE, keyed=True)
