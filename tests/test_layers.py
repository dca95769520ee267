"""The architecture's layering rules, checked on the source (ARCHITECTURE.md).

Pure packages (keymgr, signer, validator, proto) and the models (zone, keys, policy) must not
do I/O or read the wall clock; imports only go down the layer list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "dnsseal"
PURE = ["keymgr", "signer", "validator", "proto", "zone", "keys", "policy"]
FORBIDDEN_MODULES = {"asyncio", "socket", "os", "pathlib", "subprocess", "selectors", "shutil"}
FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
    ("time", "localtime"),
}
# Which layers each layer may import (besides the foundation modules and itself).
LOWER = {
    "cli": {
        "server",
        "resolver",
        "signfile",
        "storage",
        "keymgr",
        "signer",
        "validator",
        "proto",
        "crypto",
        "zone",
        "keys",
        "policy",
    },
    "server": {
        "storage",
        "keymgr",
        "signer",
        "validator",
        "proto",
        "crypto",
        "zone",
        "keys",
        "policy",
    },
    "resolver": {"storage", "validator", "proto", "crypto", "zone", "keys"},
    # signfile: signing zone files (the file cache around the signer); does file I/O
    # through storage and starts helper processes, so it is not a pure engine.
    "signfile": {"storage", "signer", "crypto", "zone", "keys", "policy"},
    "storage": {"crypto", "zone", "keys", "policy"},
    "keymgr": {"crypto", "zone", "keys", "policy"},
    "signer": {"crypto", "zone", "keys", "policy"},
    "validator": {"crypto", "zone", "keys", "policy"},
    "proto": {"signer", "validator", "crypto", "zone", "keys", "policy"},
    "crypto": {"keys"},
    "zone": {"keys"},
    "keys": set(),
    "policy": {"keys"},
}
FOUNDATION = {"errors", "clock", "durations", "findings", "exposition", "httpserve", "__init__"}


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def _imports(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_do_no_io(package: str) -> None:
    problems = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(), str(path))
        for mod in _imports(tree):
            if mod.split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"{path.relative_to(SRC)} imports {mod}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                base = node.func.value
                if isinstance(base, ast.Name) and (base.id, node.func.attr) in FORBIDDEN_CALLS:
                    problems.append(
                        f"{path.relative_to(SRC)}:{node.lineno} calls {base.id}.{node.func.attr}()"
                    )
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "open"
            ):
                problems.append(f"{path.relative_to(SRC)}:{node.lineno} calls open()")
    assert problems == []


@pytest.mark.parametrize("package", sorted(LOWER))
def test_imports_only_go_down(package: str) -> None:
    allowed = LOWER[package] | {package} | FOUNDATION
    problems = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(), str(path))
        for mod in _imports(tree):
            parts = mod.split(".")
            if parts[0] == "dnsseal" and len(parts) > 1 and parts[1] not in allowed:
                problems.append(f"{path.relative_to(SRC)} imports {mod}")
    assert problems == []


def test_wall_clock_read_only_in_clock_module() -> None:
    # The shell layers (cli, server, resolver) get "now" from dnsseal.clock, so tests can
    # pin it; nothing else in the library reads the time.
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("clock.py",):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                base = node.func.value
                if isinstance(base, ast.Name) and (base.id, node.func.attr) in {
                    ("time", "time"),
                    ("datetime", "now"),
                    ("datetime", "utcnow"),
                }:
                    problems.append(f"{rel}:{node.lineno}")
    assert problems == []
