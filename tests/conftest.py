"""Shared test helpers.

Interop tests run the real BIND / Knot / ldns / Unbound / NSD tools.  `make test` installs
them; a missing tool is a failure with a clear message, never a silent skip.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from dnsseal.cli.main import cli

# In CI, property tests run a fixed set of examples so a rare example cannot make a run
# flaky; developers' runs explore new examples (and keep failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a process this test started (by its PID): SIGTERM, then SIGKILL after
    ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_dns(port: int, qname: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Wait until something answers SOA queries for ``qname`` on 127.0.0.1@port; raise if
    ``proc`` exits first or nothing answers within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    q = dns.message.make_query(qname, dns.rdatatype.SOA)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if dns.query.udp(q, "127.0.0.1", port=port, timeout=0.3).answer:
                return
        except (dns.exception.Timeout, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer for {qname} on port {port}")


def require_tool(name: str) -> str:
    """The path of an external tool, or a test failure saying how to get it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: run `make system-deps` as root (see Makefile)")
    return path


def run_tool(
    args: Sequence[str | Path], *, cwd: Path | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run an external tool, failing the test with its output when it fails."""
    argv = [str(a) for a in args]
    argv[0] = require_tool(argv[0])
    proc = subprocess.run(
        argv, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


_PORTS_GIVEN: set[int] = set()
# Below Linux's ephemeral range (32768-60999): a port handed out here is never taken in the
# meantime by some process's outgoing connection.  Each pytest-xdist worker draws from its own
# slice, so two workers never pick the same port either.
_PORT_LOW, _PORT_HIGH = 12000, 32000


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1, not handed out before in this run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    span = (_PORT_HIGH - _PORT_LOW) // max(count, 1)
    low = _PORT_LOW + index * span
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, low + span)
        if port in _PORTS_GIVEN:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
        except OSError:
            continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free port found")


Dnsseal = Callable[..., Result]


@pytest.fixture
def dnsseal() -> Dnsseal:
    """Run ``dnsseal ARGS`` in-process; returns click's Result (exit_code, stdout, stderr).

    With ``ok=True`` (the default) a non-zero exit fails the test with the command's output.
    """

    def run(*args: str | Path, ok: bool = True) -> Result:
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        if ok and result.exit_code != 0:
            pytest.fail(
                f"dnsseal {' '.join(map(str, args))} failed ({result.exit_code}):\n"
                f"{result.output}{result.stderr}"
            )
        return result

    return run


def write_unbound_conf(
    d: Path,
    port: int,
    anchors: Sequence[str],
    stubs: Sequence[tuple[str, int]],
    extra: Sequence[str] = (),
) -> Path:
    """An Unbound config in ``d``: a validator on 127.0.0.1@``port`` trusting ``anchors``
    (DS or DNSKEY texts), with ``stubs`` (zone, port on 127.0.0.1); ``extra`` server lines
    (e.g. ``cache-max-ttl: 2``).  Checked with unbound-checkconf."""
    anchor_lines = "".join(f'    trust-anchor: "{a}"\n' for a in anchors)
    extra_lines = "".join(f"    {line}\n" for line in extra)
    stub_lines = "".join(
        f"stub-zone:\n    name: {z}\n    stub-addr: 127.0.0.1@{p}\n" for z, p in stubs
    )
    conf = d / "unbound.conf"
    conf.write_text(
        f"""server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    use-syslog: no
    logfile: "{d}/unbound.log"
    verbosity: 1
    val-log-level: 2
    chroot: ""
    username: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    num-threads: 1
    so-reuseport: no
    do-not-query-localhost: no
    module-config: "validator iterator"
    qname-minimisation: no
{extra_lines}    access-control: 127.0.0.0/8 allow
{anchor_lines}remote-control:
    control-enable: no
{stub_lines}"""
    )
    run_tool(["unbound-checkconf", conf])
    return conf
