"""The authoritative server's service layer (asyncio): sockets, control socket, reloads,
NOTIFY.  Protocol decisions live in :mod:`dnsseal.proto`; this package only does the I/O."""
