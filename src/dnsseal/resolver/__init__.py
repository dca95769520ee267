"""The resolver service layer: sockets, caches and the driver that feeds DNS replies to the
pure :mod:`dnsseal.validator.machine` query state machine.

- :mod:`.engine` ``Resolver`` (transport + clock + caches -> validated results)
- :mod:`.transport` UDP/TCP exchanges; :mod:`.cache` memory-bounded TTL caches;
  :mod:`.aggressive` validated NSEC reuse (RFC 8198); :mod:`.hints` root hints
- :mod:`.service` the recursive service (AD, SERVFAIL + EDE, CD, DO, allow list);
  :mod:`.listener` its UDP threads and rendered-answer cache; :mod:`.warmup` first-use costs
- :mod:`.settings` the ``[resolver]`` config section (stub-zone, forward-zone, ...)
- :mod:`.metrics` what the service counts and its ``/metrics`` text; :mod:`.http` the
  listener serving it (``[resolver] http``)
- :mod:`.trustmaint` RFC 5011 refreshes and the state file
- :mod:`.recording` record / replay upstream replies (reproducible verdicts)
"""
