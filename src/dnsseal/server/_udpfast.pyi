from collections.abc import Callable
from typing import Any

QT_SLOTS: int
RC_SLOTS: int
SLOT_WORDS: int
TRUNC_WORD: int
EXIST_SLOTS: int

class Loop:
    dropped: int
    def __init__(self, fd: int, cache_limit: int, counts: Any = None) -> None: ...
    def serve(
        self, engine: Any
    ) -> tuple[list[tuple[bytes, Any, bytes]], int, int, int, int, bool]: ...
    def send(self, replies: list[tuple[bytes, bytes]]) -> None: ...

def configure(
    nsec_denial: Callable[..., Any],
    nsec3_denial: Callable[..., Any],
    encloser: Callable[..., Any],
) -> None: ...
def nsec3_hash(name: bytes, salt: bytes, iterations: int) -> bytes: ...
def answer(
    query: bytes,
    cache: dict[bytes, bytes] | None,
    names: dict[bytes, Any],
    exist: dict[bytes, Any],
    payload: int,
) -> bytes | None: ...
