"""The resolver service layer: sockets, cache and the driver that feeds DNS replies to the
pure :mod:`dnsseal.validator.machine` query state machine."""
