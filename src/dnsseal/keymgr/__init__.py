"""The key manager: a pure engine, ``step(policy, keys, facts, now) -> Plan``.

See :mod:`.engine` for the state machine, :mod:`.rules` for the safety predicates and
:mod:`.plan` for what comes out.
"""

from dnsseal.keymgr.engine import step
from dnsseal.keymgr.plan import (
    DsSeen,
    DsWithdrawn,
    Facts,
    KeyReport,
    Plan,
    RolloverRequest,
    StepApproved,
)

__all__ = [
    "DsSeen",
    "DsWithdrawn",
    "Facts",
    "KeyReport",
    "Plan",
    "RolloverRequest",
    "StepApproved",
    "step",
]
