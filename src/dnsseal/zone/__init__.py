"""Zone data: the in-memory model, canonical wire forms (RFC 4034 s6) and master-file text.

Pure: nothing here opens files or reads the clock; :mod:`dnsseal.storage.zonefile` does the
I/O.
"""
