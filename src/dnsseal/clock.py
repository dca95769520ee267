"""The wall clock, for the service and command layers only.

Pure engines (keymgr, signer, validator, proto) never call this: they take ``now`` as an
argument.  Keeping the one call here makes it easy to check (tests/test_layers.py).
"""

from __future__ import annotations

import time


def now() -> int:
    """Seconds since the epoch, as an int (DNSSEC times have one-second resolution)."""
    return int(time.time())
