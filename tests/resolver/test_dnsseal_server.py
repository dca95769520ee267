"""``dnsseal resolve``'s validator against the same BIND-signed hierarchy served by
dnsseal's own authoritative server (``dnsseal serve --zones-dir``)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from conftest import free_port, stop
from dnsseal.cli.resolvecmds import build_config
from dnsseal.resolver.engine import Resolver
from dnsseal.validator import verdict as v

from .bindtree import build_tree, wait_for
from .test_bind_interop import CASES

pytestmark = [pytest.mark.interop, pytest.mark.slow]
UNSERVED = {"www.unsigned.test.", "www.insec."}  # unsigned zones: `serve` refuses to load them


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    d = tmp_path_factory.mktemp("dnsseal-serve")
    files, root_ds = build_tree(d)
    zones = d / "zones"
    zones.mkdir()
    for zone, path in files.items():
        shutil.copy(path, zones / ("..signed" if zone == "." else f"{zone}signed"))
    tag, alg, dt, digest = root_ds.split()
    (d / "anchors.conf").write_text(
        f'trust-anchors {{ . static-ds {tag} {alg} {dt} "{digest}"; }};\n'
    )
    (d / "root.hints").write_text(". 3600000 NS ns.test.\nns.test. 3600000 A 127.0.0.1\n")
    port = free_port()
    log = d / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dnsseal.cli.main",
                "serve",
                "--zones-dir",
                str(zones),
                "-p",
                str(port),
            ],
            stdout=out,
            stderr=out,
            cwd=d,
        )
    try:
        wait_for(port, proc, log)
        yield d, port
    finally:
        stop(proc)


@pytest.mark.parametrize(("name", "rdtype", "security", "ede", "rcode"), CASES)
def test_verdicts_against_dnsseal_serve(
    served: tuple[Path, int],
    name: str,
    rdtype: str,
    security: v.Security,
    ede: int | None,
    rcode: int | None,
) -> None:
    d, port = served
    config = build_config(str(d / "anchors.conf"), str(d / "root.hints"), None, port, True)
    result = asyncio.run(Resolver(config).resolve(name, rdtype))
    if "nonsec3" in name:
        # dnsseal serve cannot answer from a zone whose NSEC3 chain was stripped (it fails
        # the query); whatever happens, such an answer must never be accepted.
        assert result.verdict.security in (v.Security.BOGUS, v.Security.INDETERMINATE)
        return
    if name in UNSERVED:
        # dnsseal serve does not load unsigned zones, so the delegation to them is lame (its
        # own referral comes back): SERVFAIL, never "no data" passed on as insecure.
        assert "not loaded" in (d / "serve.log").read_text()
        assert result.rcode == dns.rcode.SERVFAIL and not result.answer, result
        return
    assert (result.verdict.security, result.verdict.ede) == (security, ede), result.verdict
    if rcode is not None:
        assert result.rcode == rcode
