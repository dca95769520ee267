"""Recorded scenarios: capture what upstream servers answered during a resolution, and
replay it later with no network (and, with a pinned clock, reproduce a verdict exactly).

``dnsseal resolve --record FILE`` writes a recording; ``--replay FILE --now TIME`` plays
it back.  A recording is JSON: the time it was made and, per question (name, type), the
wire replies received.  Replies are matched by question, not server, so a replay follows
whatever path the validator takes as long as it asks the same questions.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.name
import dns.rdatatype

from dnsseal.errors import FileFormatError
from dnsseal.resolver.transport import Server, Transport

Key = tuple[str, str]


def _key(wire: bytes) -> Key:
    q = dns.message.from_wire(wire)
    question = q.question[0]
    return question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)


@dataclass
class Recording:
    """Replies by question; ``made_at`` is the clock when recorded (for ``--now``)."""

    made_at: int
    replies: dict[Key, list[bytes]] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "version": 1,
            "made_at": self.made_at,
            "replies": [
                {"name": n, "type": t, "wire": [base64.b64encode(w).decode() for w in ws]}
                for (n, t), ws in sorted(self.replies.items())
            ],
        }
        return json.dumps(data, indent=1) + "\n"

    @staticmethod
    def from_json(text: str, source: str) -> Recording:
        """Raises :class:`FileFormatError` naming ``source``."""
        try:
            data: Any = json.loads(text)
            if data.get("version") != 1:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            rec = Recording(int(data["made_at"]))
            for item in data["replies"]:
                wires = [base64.b64decode(w, validate=True) for w in item["wire"]]
                rec.replies[(str(item["name"]), str(item["type"]))] = wires
            return rec
        except json.JSONDecodeError as e:
            raise FileFormatError(source, e.lineno, e.msg) from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FileFormatError(source, None, f"not a dnsseal recording: {e!r}") from None

    def recorder(self, inner: Transport) -> Transport:
        """A transport that passes through to ``inner`` and keeps every reply."""

        async def exchange(server: Server, wire: bytes, tcp: bool) -> bytes:
            reply = await inner(server, wire, tcp)
            self.replies.setdefault(_key(wire), []).append(reply)
            return reply

        return exchange

    def player(self) -> Transport:
        """A transport that answers from the recording (the last reply for the question,
        with the query's ID); a question never recorded fails like an unreachable server."""

        async def exchange(server: Server, wire: bytes, tcp: bool) -> bytes:
            replies = self.replies.get(_key(wire))
            if not replies:
                raise OSError(f"{_key(wire)} is not in the recording")
            return wire[:2] + replies[-1][2:]

        return exchange
