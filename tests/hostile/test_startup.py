"""A start that fails says why in one line, exits non-zero and creates nothing on disk.

Every case runs ``dnsseal serve`` as a subprocess in a fresh directory and compares the
directory tree (paths, sizes, mtimes) before and after.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port, stop, wait_for_dns
from dnsseal.storage.serverconfig import EXAMPLE_TEXT
from server.conftest import DNSSEAL

Tree = list[tuple[str, int, int]]


def tree(d: Path) -> Tree:
    return sorted(
        (str(p.relative_to(d)), p.lstat().st_size, p.lstat().st_mtime_ns) for p in d.rglob("*")
    )


def serve_fails(cwd: Path, *args: str, watch: Path | None = None) -> str:
    """Run ``dnsseal serve ARGS`` in ``cwd``, expect a clean failure that leaves ``watch``
    (default ``cwd``) unchanged; returns the one stderr line."""
    watch = watch or cwd
    before = tree(watch)
    proc = subprocess.run(
        [str(DNSSEAL), "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0, f"started: {proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert tree(watch) == before, "a failed start changed the disk"
    return lines[0]


def write_config(
    d: Path,
    port: int,
    listen: list[str] | None = None,
    control: str | None = "ctl.sock",
    state: str = "state",
    workers: int = 1,
) -> Path:
    (d / "zones").mkdir(exist_ok=True)
    (d / "zones" / "demo.example.zone").write_text(EXAMPLE_TEXT)
    listen = listen or [f"127.0.0.1@{port}"]
    lines = [
        "[server]",
        "listen = [" + ", ".join(f'"{x}"' for x in listen) + "]",
        f'state-dir = "{state}"',
        f"workers = {workers}",
        *([f'control = "{control}"'] if control else []),
        "",
        '[zone."demo.example"]',
        'file = "zones/demo.example.zone"',
        'dnssec-policy = "default"',
    ]
    conf = d / "dnsseal.toml"
    conf.write_text("\n".join(lines) + "\n")
    return conf


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port with something else listening on TCP and bound on UDP (not dnsseal)."""
    port = free_port()
    with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        t.bind(("127.0.0.1", port))
        t.listen()
        u.bind(("127.0.0.1", port))
        yield port


def start(d: Path, conf: Path, port: int) -> subprocess.Popen[bytes]:
    with (d / "serve.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "serve", "-c", str(conf)], cwd=d, stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, "demo.example.", proc, timeout=60)
    except Exception:
        stop(proc)
        raise RuntimeError((d / "serve.log").read_text()) from None
    return proc


def test_port_out_of_range(tmp_path: Path) -> None:
    line = serve_fails(tmp_path, "-p", "70000")
    assert "-p" in line and "70000" in line


def test_port_in_use_default_mode_creates_no_demo_zone(tmp_path: Path, held_port: int) -> None:
    """Before: the demo zone, its keys and the journal were written, then bind failed."""
    line = serve_fails(tmp_path, "-p", str(held_port))
    assert "in use" in line and str(held_port) in line
    assert not list(tmp_path.iterdir())


def test_udp_port_in_use(tmp_path: Path) -> None:
    port = free_port()
    conf = write_config(tmp_path, port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", port))
        line = serve_fails(tmp_path, "-c", str(conf))
    assert line.startswith("Error: server.listen[0]: ") and "(UDP)" in line and "in use" in line


def test_address_not_on_this_host(tmp_path: Path) -> None:
    port = free_port()
    conf = write_config(tmp_path, port, listen=[f"127.0.0.1@{port}", f"192.0.2.1@{port}"])
    line = serve_fails(tmp_path, "-c", str(conf))
    assert "server.listen[1]" in line and "not an address of this host" in line


@pytest.mark.parametrize(
    "control",
    ["missing/dir/ctl.sock", "/proc/dnsseal-test.sock", "/proc/self/ctl.sock", "x" * 120],
)
def test_control_socket_cannot_be_made(tmp_path: Path, control: str) -> None:
    conf = write_config(tmp_path, free_port(), control=control)
    line = serve_fails(tmp_path, "-c", str(conf))
    assert line.startswith("Error: server.control: "), line


def test_state_dir_cannot_be_made(tmp_path: Path) -> None:
    """The control socket is bound before the state directory is tried: it is removed."""
    conf = write_config(tmp_path, free_port(), state="/proc/dnsseal-state")
    line = serve_fails(tmp_path, "-c", str(conf))
    assert line.startswith("Error: server.state-dir: /proc/dnsseal-state"), line


def test_control_path_is_a_file_it_is_kept(tmp_path: Path) -> None:
    conf = write_config(tmp_path, free_port())
    (tmp_path / "ctl.sock").write_text("not a socket\n")
    line = serve_fails(tmp_path, "-c", str(conf))
    assert "is not a socket" in line
    assert (tmp_path / "ctl.sock").read_text() == "not a socket\n"


def test_zones_dir_typo_is_not_created(tmp_path: Path) -> None:
    line = serve_fails(tmp_path, "--zones-dir", "zonse", "-p", str(free_port()))
    assert "--zones-dir" in line and "zonse" in line


def test_explicit_empty_zones_dir_gets_no_demo_zone(tmp_path: Path) -> None:
    (tmp_path / "myzones").mkdir()
    line = serve_fails(tmp_path, "--zones-dir", "myzones", "-p", str(free_port()))
    assert "no zone files" in line


@pytest.mark.slow
def test_default_zones_dir_missing_gets_the_demo_zone(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(DNSSEAL), "serve", "-p", str(port)], cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        wait_for_dns(port, "demo.example.", proc, timeout=60)
    finally:
        # A loaded CI machine can take a while to finish the first signing: give SIGTERM
        # time, so the clean-stop assertions below are about the server, not the timeout.
        stop(proc, timeout=60)
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]
    assert (tmp_path / "zones" / "demo.example.zone").read_text() == EXAMPLE_TEXT
    assert not (tmp_path / "dnsseal.sock").exists()  # removed on stop


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_second_server_on_the_same_port_fails(tmp_path: Path, workers: int) -> None:
    """Two unrelated servers (own state, own control socket) on one port: the second fails
    (before: with workers > 1 both bound TCP with SO_REUSEPORT and shared the port)."""
    port = free_port()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = start(a, write_config(a, port, workers=workers), port)
    try:
        conf_b = write_config(b, port, workers=workers)
        line = serve_fails(b, "-c", str(conf_b))
        assert "in use" in line and str(port) in line
        assert first.poll() is None
        wait_for_dns(port, "demo.example.", first)
    finally:
        stop(first)


@pytest.mark.slow
def test_second_server_on_the_same_state_dir_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    port = free_port()
    first = start(a, write_config(a, port), port)
    try:
        conf_b = write_config(b, free_port(), control="ctl-b.sock", state=str(a / "state"))
        line = serve_fails(b, "-c", str(conf_b))
        assert "server.state-dir" in line and f"pid {first.pid}" in line
        # ... and its control socket, bound before the lock was tried, is gone again
        assert not (b / "ctl-b.sock").exists()
    finally:
        stop(first)


@pytest.mark.slow
def test_live_control_socket_is_not_taken_over(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    port = free_port()
    first = start(a, write_config(a, port), port)
    try:
        conf_b = write_config(b, free_port(), control=str(a / "ctl.sock"))
        line = serve_fails(b, "-c", str(conf_b))
        assert "another server is using this control socket" in line
        time.sleep(0.2)
        assert (a / "ctl.sock").is_socket()
    finally:
        stop(first)


@pytest.mark.slow
def test_restart_after_kill_9(tmp_path: Path) -> None:
    """kill -9 leaves the control socket file and the lock file: a restart takes both over
    (the kernel released the lock with the process)."""
    port = free_port()
    conf = write_config(tmp_path, port)
    first = start(tmp_path, conf, port)
    first.kill()
    first.wait()
    assert (tmp_path / "ctl.sock").is_socket()
    second = start(tmp_path, conf, port)
    try:
        assert (tmp_path / "state" / "dnsseal.lock").read_text().strip() == str(second.pid)
    finally:
        stop(second)
