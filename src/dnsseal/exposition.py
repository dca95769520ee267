"""The Prometheus text format (0.0.4), written by hand: one scrape as metric families, and
the process metrics both services expose.

Shared by the authoritative server's ``/metrics`` (:mod:`dnsseal.server.metrics`) and the
resolver's (:mod:`dnsseal.resolver.metrics`), which sit on different layers: this module
imports the standard library only.  Written by hand rather than with ``prometheus_client``
because every value is read from a service's state at scrape time (a custom collector in
that library's terms) and the format is a few lines of text; the tests parse the output
with ``prometheus_client``'s own parser and ``promtool check metrics``.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Iterable, Mapping

__all__ = ["CONTENT_TYPE", "Exposition", "process_families"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(v: float) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


class Exposition:
    """Builds one scrape: metric families in order, each with its HELP, TYPE and samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self.names: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        """Add a family (``kind``: gauge, counter, info as gauge...); an empty family still
        gets its HELP and TYPE, so every name is always listed."""
        self.names.append(name)
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")
        sample_name = name
        for labels, value in samples:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
                self._lines.append(f"{sample_name}{{{inner}}} {_number(value)}")
            else:
                self._lines.append(f"{sample_name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def process_families(ex: Exposition, started_at: float) -> None:
    """This process's CPU time, memory, file descriptors and start time (``started_at``,
    POSIX seconds), named as ``prometheus_client``'s process collector names them."""
    t = os.times()
    ex.family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        [({}, t.user + t.system)],
    )
    rss = vsz = None
    try:
        with open("/proc/self/statm") as f:  # Linux; absent elsewhere
            fields = f.read().split()
        vsz, rss = int(fields[0]) * _PAGE, int(fields[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ex.family(
        "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [({}, rss)]
    )
    if vsz is not None:
        ex.family(
            "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", [({}, vsz)]
        )
    try:
        fds = len(os.listdir("/proc/self/fd"))
        ex.family("process_open_fds", "gauge", "Number of open file descriptors.", [({}, fds)])
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    ex.family("process_max_fds", "gauge", "Maximum number of open file descriptors.", [({}, soft)])
    ex.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        [({}, started_at)],
    )
