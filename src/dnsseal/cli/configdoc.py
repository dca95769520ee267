"""``docs/configuration.md`` from the table of options (:mod:`dnsseal.storage.options`).

Regenerate with ``make docs`` (``python -m dnsseal.cli.configdoc docs/configuration.md``);
``tests/storage/test_options.py`` fails when the committed page differs from what this
writes, and prints that command.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dnsseal.storage import options
from dnsseal.storage.config import write_text

# Said in backquotes by the staleness test: `{COMMAND}`.
COMMAND = "make docs` (or `python -m dnsseal.cli.configdoc docs/configuration.md`)"

KIND_TEXT = {
    "integer": "integer",
    "seconds": "seconds",
    "boolean": "boolean",
    "path": "path",
    "choice": "string",
    "string": "string",
    "name": "name",
    "addresses": 'list of "ADDR[@PORT]"',
    "remotes": 'list of "ADDR[@PORT] [port N] [key NAME]"',
    "acl": "ACL list",
    "strings": "list of strings",
    "table": "table",
    "tables": "list of tables",
    "duration": "duration",
    "size": "size",
    "base64": "base64 string",
    "rules": "list of grant rules",
    "digests": "list of digest types",
    "algorithm": "algorithm",
}

INTRO = """\
# Configuration reference

<!-- Generated from src/dnsseal/storage/options.py by `make docs`: do not edit by hand. -->

`dnsseal serve -c dnsseal.toml` reads one TOML file with BIND's option names.  Paths are
relative to the file's directory.  `dnsseal checkconf [-z] dnsseal.toml` reports every
problem of the file at once, one line each with its option path
(`zone."example.com".allow-transfer[1]: ...`), and exits 1 (`-z` loads the zones too); the
server refuses to start on the same problems.  A misspelt option is named with the closest
known one (`server.listne: unknown option (did you mean 'listen'?)`).

A small but complete file:

```toml
[server]
listen = ["127.0.0.1@53", "::1@53"]
control = "dnsseal.sock"
state-dir = "state"
key-directory = "keys"

[key.xfr]
algorithm = "hmac-sha256"
secret = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="   # dnsseal tsig-keygen --toml xfr

[acl]
secondaries = ["192.0.2.0/24", "key xfr"]

[policy.standard]                   # or in their own file: server.policies
keys = [
  { role = "ksk", lifetime = "P1Y", algorithm = "ECDSAP256SHA256" },
  { role = "zsk", lifetime = "P90D", algorithm = "ECDSAP256SHA256" },
]

[zone."example.com"]
file = "zones/example.com"          # unsigned source; dnsseal signs it
dnssec-policy = "standard"
allow-transfer = ["secondaries"]

[zone."example.net"]                # bump in the wire: signs what the primary sends
primaries = ["192.0.2.1 key xfr"]
dnssec-policy = "default"

[zone."example.org"]
file = "zones/example.org.signed"
presigned = true
```

Policies (`[policy.NAME]`) may sit in the server config, as above, or in their own file
named by `server.policies` (TOML, or a BIND named.conf whose `dnssec-policy` blocks are
used).  `dnsseal policy check FILE` checks the policies of either kind of file (a server
config's other sections are left to `dnsseal checkconf`); `dnsseal keys ... -c FILE` takes
either too.  A policy defined in both places is an error.

The same file may hold a `[resolver]` section for `dnsseal resolver --config FILE`; the
authoritative server ignores it and `dnsseal checkconf` checks it.

Types: a *duration* is ISO 8601 (`P1D`, `PT1H`), BIND units (`1d`, `1h`) or seconds; a
*size* is bytes or `10k`, `64m`, `1g`; an *ACL list* holds addresses, networks,
`key NAME`, `any`, `none` and names of `[acl]` lists (`!` negates); a *name* names
something defined elsewhere (a TSIG key, a policy).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole page."""
    out = [INTRO]
    for section in options.SECTIONS:
        rows = [o for o in options.OPTIONS if o.section == section.name]
        out.append(f"\n## `[{section.name}]`\n\n{section.help}\n")
        out.append("| Option | Type | Default | Range / choices | Example | Description |")
        out.append("|---|---|---|---|---|---|")
        for o in rows:
            rng = o.range_text()
            cells = (
                f"`{o.name}`",
                KIND_TEXT[o.kind],
                _cell(o.shown_default()),
                _cell(rng) if rng else "",
                f"`{_cell(o.example)}`",
                _cell(o.help),
            )
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m dnsseal.cli.configdoc docs/configuration.md", file=sys.stderr)
        return 2
    write_text(Path(argv[0]), render())
    print(f"wrote {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
