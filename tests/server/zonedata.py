"""The test zone: one of every case the answering code distinguishes."""

from __future__ import annotations

ZONE_TEMPLATE = """\
$TTL 3600
@ SOA ns1 hostmaster {serial} 7200 3600 1209600 300
@ NS ns1
@ NS ns2
@ MX 10 mail
ns1 A 127.0.0.1
ns2 AAAA ::1
www A 192.0.2.10
www AAAA 2001:db8::10
www TXT "hello world"
mail A 192.0.2.20
alias CNAME www
chain1 CNAME chain2
chain2 CNAME alias
dangling CNAME nothere
ext CNAME www.example.net.
*.wild A 192.0.2.30
*.wild TXT "wildcard"
*.wcname CNAME www
dn DNAME sub
dnx DNAME example.net.
sub A 192.0.2.60
x.sub A 192.0.2.61
a.b.c.ent A 192.0.2.40
secure NS ns.secure
secure DS 12345 13 2 8A9EB1B4A4DE5FA4C8C7D2A8E0F4E9B3A5C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4
ns.secure A 192.0.2.50
insecure NS ns.insecure
insecure NS ns1
ns.insecure A 192.0.2.51
insecure2 NS ns.example.net.
deep.er.insecure3 NS ns.example.net.
tosecure CNAME www.secure
loop1 CNAME loop2
loop2 CNAME loop1
todn CNAME x.dn
towild CNAME a.wild
long TXT "{long}"
many TXT "{long}"
many TXT "{long}2"
many TXT "{long}3"
many TXT "{long}4"
many TXT "{long}5"
many TXT "{long}6"
"""

LONG = "x" * 250

# (directory name, zone origin, dnssec-signzone arguments for the denial chain)
VARIANTS = {
    "nsec": ("nsec.example.", []),
    "nsec3": ("nsec3.example.", ["-3", "-", "-H", "0"]),
    "optout": ("optout.example.", ["-3", "-", "-H", "0", "-A"]),
}


def zone_text(serial: int = 1, extra: str = "") -> str:
    return ZONE_TEMPLATE.format(serial=serial, long=LONG) + extra
