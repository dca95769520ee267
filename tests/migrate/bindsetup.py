"""A realistic BIND setup in a directory: what an operator moving to dnsseal has.

Two zones signed inline under a custom dnssec-policy (one with dynamic updates by TSIG,
one with update-policy and also-notify), one secondary signed inline ("bump in the
wire") fed by a hidden primary, a plain secondary, TSIG keys and ACLs in include files,
``controls``, ``logging``, ``statistics-channels`` and a view-free config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

XFR_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM="
DDNS_SECRET = "ZGRucy1zZWNyZXQtZGRucy1zZWNyZXQtZGRucy0wMTI="
SIGNED = ("alpha.test.", "beta.test.")
BUMP = "gamma.test."
PLAIN = "delta.test."
SERIAL = 2026120701


def zone_text(origin: str, serial: int = SERIAL) -> str:
    return (
        f"$ORIGIN {origin}\n$TTL 60\n@ SOA ns1 hostmaster {serial} 60 30 600 30\n"
        "@ NS ns1\nns1 A 127.0.0.1\nwww A 192.0.2.80\nmail A 192.0.2.25\n@ MX 10 mail\n"
        '*.wild TXT "wildcard"\n'
    )


@dataclass
class Setup:
    d: Path  # named.conf's directory
    conf: Path
    port: int  # named's (then dnsseal's) port
    hidden_port: int  # the hidden primary of the bump-in-the-wire zone
    notify_port: int

    @property
    def keys(self) -> Path:
        return self.d / "keys"


POLICY = """
dnssec-policy "migrate" {
    dnskey-ttl 60;
    max-zone-ttl 60;
    publish-safety 5;
    retire-safety 5;
    zone-propagation-delay 5;
    parent-ds-ttl 60;
    parent-propagation-delay 5;
    signatures-refresh 5d;
    signatures-validity 14d;
    signatures-validity-dnskey 14d;
    keys {
        ksk key-directory lifetime unlimited algorithm ecdsap256sha256;
        zsk key-directory lifetime unlimited algorithm ecdsap256sha256;
    };
    nsec3param iterations 0 optout no salt-length 0;
};
"""


def write_setup(d: Path, port: int, hidden_port: int, notify_port: int, ctl_port: int) -> Setup:
    """named.conf (with include files) and zone files in ``d``."""
    (d / "keys").mkdir(exist_ok=True)
    (d / "tsig.conf").write_text(
        f'key "xfr" {{ algorithm hmac-sha256; secret "{XFR_SECRET}"; }};\n'
        f'key "ddns" {{\n\talgorithm hmac-sha256;\n\tsecret "{DDNS_SECRET}";\n}};\n'
    )
    (d / "policy.conf").write_text("/* the site's policy */\n" + POLICY)
    for z in (*SIGNED,):
        (d / f"{z}zone").write_text(zone_text(z))
    conf = d / "named.conf"
    conf.write_text(
        f"""// named.conf of a small signing server
include "{d}/tsig.conf";
include "policy.conf";   # relative: beside named.conf

acl "secondaries" {{ 127.0.0.1; key "xfr"; }};
acl updaters {{ key ddns; }};

options {{
    directory "{d}";
    key-directory "{d}/keys";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-transfer {{ secondaries; }};
    notify explicit;
}};

controls {{
    inet 127.0.0.1 port {ctl_port} allow {{ 127.0.0.1; }} keys {{ "xfr"; }};
}};

statistics-channels {{ inet 127.0.0.1 port {ctl_port + 1} allow {{ 127.0.0.1; }}; }};

logging {{
    channel main {{ file "{d}/named.log" versions 2 size 10m; severity info; print-time yes; }};
    category default {{ main; }};
    category lame-servers {{ null; }};
}};

primaries "hidden" {{ 127.0.0.1 port {hidden_port} key "xfr"; }};
parental-agents "parents" {{ 127.0.0.1 port {notify_port}; }};

zone "alpha.test" {{
    type primary;
    file "alpha.test.zone";
    dnssec-policy "migrate";
    inline-signing yes;
    allow-update {{ updaters; }};
}};

zone "beta.test" IN {{
    type master;
    file "beta.test.zone";
    dnssec-policy migrate;
    inline-signing yes;
    update-policy {{ grant ddns zonesub ANY; grant xfr name www.beta.test. A; }};
    also-notify {{ 127.0.0.1 port {notify_port}; }};
    parental-agents {{ "parents"; }};
    serial-update-method increment;
}};

zone "gamma.test" {{
    type secondary;
    primaries {{ hidden; }};
    file "gamma.test.bk";
    dnssec-policy "migrate";
    inline-signing yes;
}};

zone "delta.test" {{
    type slave;
    masters {{ 127.0.0.1 port {hidden_port}; }};
    file "delta.test.bk";
}};
"""
    )
    return Setup(d, conf, port, hidden_port, notify_port)


def write_hidden(d: Path, port: int) -> Path:
    """The hidden primary's named.conf (unsigned gamma.test and delta.test) in ``d``."""
    d.mkdir(exist_ok=True)
    for z in (BUMP, PLAIN):
        (d / f"{z}zone").write_text(zone_text(z))
    conf = d / "named.conf"
    conf.write_text(
        f"""key "xfr" {{ algorithm hmac-sha256; secret "{XFR_SECRET}"; }};
options {{
    directory "{d}"; pid-file "{d}/named.pid"; session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no;
    allow-transfer {{ 127.0.0.1; key xfr; }}; notify no;
}};
controls {{ }};
zone "gamma.test" {{ type primary; file "gamma.test.zone"; }};
zone "delta.test" {{ type primary; file "delta.test.zone"; }};
"""
    )
    return conf
