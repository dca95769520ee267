"""The validator: pure DNSSEC validation (RFC 4033-4035, 5155, 6840).

No I/O and no clock: everything takes ``now`` and DNS messages, and returns verdicts as
data.  :mod:`.machine` is the query state machine the resolver drives.
"""
