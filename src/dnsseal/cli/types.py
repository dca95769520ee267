"""Click parameter types shared by the commands: values checked when the command line is
read, with click's usual one-line "Invalid value for '-p'" error."""

from __future__ import annotations

import click

# A UDP/TCP port to listen on or send to (0 would mean "any port" to the kernel).
PORT = click.IntRange(1, 65535)
