"""The ``dnsseal`` command: argument parsing and printing only."""
