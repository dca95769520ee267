"""Findings: verdicts as data.

A finding is what ``verify`` and the validator report about DNS data: a stable code (for
scripts and tests), a severity, the owner name it is about, the RFC section that sets the
rule, the Extended DNS Error code where one fits, and a sentence for people.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    owner: str
    message: str
    rfc: str = ""
    rrtype: str = ""
    ede: int | None = None
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity.value,
            "owner": self.owner,
            "message": self.message,
        }
        if self.rrtype:
            out["type"] = self.rrtype
        if self.rfc:
            out["rfc"] = self.rfc
        if self.ede is not None:
            out["ede"] = self.ede
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        what = f"{self.owner}/{self.rrtype}" if self.rrtype else self.owner
        ref = f" [{self.rfc}]" if self.rfc else ""
        return f"{self.severity.value}: {self.code}: {what}: {self.message}{ref}"
