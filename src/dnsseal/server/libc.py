"""The two glibc calls the server makes through ctypes (no dependency): a child process
that ends with its parent, and the C heap's free pages given back.  Both do nothing where
the C library or the call is missing (they are about resources, never about answers)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import signal

PR_SET_PDEATHSIG = 1


def _call(name: str, *args: int) -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        getattr(ctypes.CDLL(libc_name, use_errno=True), name)(*args)


def die_with_parent(sig: signal.Signals) -> None:
    """Have the kernel send this process ``sig`` when its parent ends (Linux
    ``PR_SET_PDEATHSIG``; it fires when the thread that forked it ends: fork from the main
    thread)."""
    _call("prctl", PR_SET_PDEATHSIG, sig)


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``)."""
    _call("malloc_trim", 0)
