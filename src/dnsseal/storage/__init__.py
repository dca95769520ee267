"""The only library code that opens files: key directory, zone files, journal, audit log."""
