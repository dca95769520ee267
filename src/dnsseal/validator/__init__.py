"""The validator: pure DNSSEC validation (RFC 4033-4035, 5155, 6840, 9276).

No I/O and no clock: everything takes ``now`` and DNS messages and returns verdicts as data.

- :mod:`.machine` the query state machine (``Query.start()`` / ``feed()``) the resolver drives
- :mod:`.rrsig` RRset signatures on canonical bytes, time windows, wildcard labels
- :mod:`.keyset` DS / trust anchor -> trusted DNSKEY set; :mod:`.policy` algorithms, digests
- :mod:`.denial`, :mod:`.nsec`, :mod:`.nsec3` authenticated denial proofs
- :mod:`.limits` per-query budgets; :mod:`.verdict` outcomes, EDE codes, explain links
- :mod:`.anchors` trust anchors (built-in root, BIND files, negative anchors);
  :mod:`.rfc5011` automated anchor updates; :mod:`.trustcache` key sets shared by queries
- :mod:`.msgview` read-only helpers over DNS responses
"""
