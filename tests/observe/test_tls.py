"""The HTTP listener over TLS (server.http-tls-cert / -key), and clean start-up errors."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

from automation.conftest import DNSSEAL, dnsseal_serve, write_config, zone_text
from conftest import free_port, run_tool

from .conftest import wait_until, with_http

ZONE = "tls.example."


def self_signed(d: Path) -> tuple[Path, Path]:
    cert, key = d / "http.crt", d / "http.key"
    run_tool(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
    )  # fmt: skip
    return cert, key


@pytest.mark.interop
def test_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port, http = free_port(), free_port(socket.SOCK_STREAM)
    conf = write_config(tmp_path, port, {ZONE: zone_text(ZONE)})
    with_http(conf, http)
    conf.write_text(
        conf.read_text().replace(
            "[server]\n", f'[server]\nhttp-tls-cert = "{cert.name}"\nhttp-tls-key = "{key.name}"\n'
        )
    )
    with dnsseal_serve(tmp_path, ["-c", "dnsseal.toml"], ZONE, port):
        ctx = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{http}/api/v1/zones"

        def get() -> bytes | None:
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
                    return bytes(r.read())
            except OSError:
                return None

        body = wait_until(get, 15, "the HTTPS listener")
        assert json.loads(body)["zones"][0]["zone"] == ZONE
        # openssl's client agrees on the certificate served
        proc = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{http}", "-CAfile", str(cert),
             "-verify_return_error", "-brief"],
            input="", capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "Verification: OK" in proc.stderr + proc.stdout, proc.stderr
        # plain HTTP to the TLS port gets nothing, and the listener lives on
        with socket.create_connection(("127.0.0.1", http), timeout=15) as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert not c.recv(100).startswith(b"HTTP/1.1 200")
        assert get() is not None
    assert "Traceback" not in (tmp_path / "out.txt").read_text()


def test_unusable_certificate_is_a_one_line_error(tmp_path: Path) -> None:
    port, http = free_port(), free_port(socket.SOCK_STREAM)
    conf = write_config(tmp_path, port, {ZONE: zone_text(ZONE)})
    with_http(conf, http)
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    conf.write_text(
        conf.read_text().replace(
            "[server]\n", '[server]\nhttp-tls-cert = "bad.pem"\nhttp-tls-key = "bad.pem"\n'
        )
    )
    proc = subprocess.run(
        [str(DNSSEAL), "serve", "-c", str(conf)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "http-tls-cert" in proc.stderr and "bad.pem" in proc.stderr, proc.stderr
