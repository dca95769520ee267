"""``dnsseal import-bind``: move a BIND server's configuration to dnsseal
(docs/migrating-from-bind.md)."""

from __future__ import annotations

from pathlib import Path

import click

from dnsseal.storage.importbind import import_named_conf, write_imported

CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.command("import-bind", context_settings=CONTEXT)
@click.argument("named_conf", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="dnsseal.toml",
              show_default=True, help="The dnsseal config to write.")  # fmt: skip
@click.option("--state-dir", default="state", show_default=True,
              help="dnsseal's state directory (journal, signed copies), relative to the "
              "output file.")  # fmt: skip
@click.option("-n", "--dry-run", is_flag=True, help="Print the config instead of writing it.")
def import_bind(named_conf: str, output: str, state_dir: str, dry_run: bool) -> None:
    """Turn NAMED_CONF (with its include files) into a dnsseal config.

    Keys stay where BIND keeps them (the key-directory is used in place, key states
    kept); custom dnssec-policy blocks go to OUTPUT's stem + .policies.toml.  Every item
    skipped is listed on stderr and at the end of the config.  The result is checked as
    `dnsseal serve -c` checks it before anything is written."""
    out = Path(output)
    policies = out.with_name(out.stem + ".policies.toml")
    result = import_named_conf(Path(named_conf), policies.name, state_dir)
    if dry_run:
        if result.policies is not None:
            click.echo(f"# {policies}\n{result.policies}")
        click.echo(result.config, nl=False)
    else:
        write_imported(result, out, policies)
        also = f" and {policies}" if result.policies else ""
        zones = ", ".join(result.zones) or "none"
        click.echo(f"wrote {out}{also}: {len(result.zones)} zone(s): {zones}")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
