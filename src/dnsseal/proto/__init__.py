"""Pure DNS protocol engine of the authoritative server: answers, transfers, NOTIFY, ACLs.

Nothing here touches sockets, files or the clock; :class:`dnsseal.proto.engine.Engine` takes
query bytes and returns response bytes, and the server layer only frames them.
"""
