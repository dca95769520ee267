"""The server's layout rules, checked on the source (ARCHITECTURE.md, "The server").

service.py is the composition root: it builds everything and nothing imports it (but the
programs that start it: the CLI and the worker-process launcher).  The drivers reach the
zones through the zone table and a zone's handle, never through a back-pointer to the
server.  A zone's handle imports no driver, and it alone makes a version the served one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "dnsseal"
SERVER = SRC / "server"
ROOT = "dnsseal.server.service"
# What starts the server (and so builds it): the CLI and the worker-process launcher.
STARTERS = ("cli/", "server/workers.py")
DRIVERS = ["zonetable", "maintenance", "update", "xfrin", "checkds", "dsdriver", "catalog"]
# What a driver must not import: the server, or the module that held a back-pointer to it.
SERVER_SIDE = {ROOT, "dnsseal.server.automation"}
# What the handle must not import, even for types: the server and every driver.
NOT_BELOW_HANDLE = {
    ROOT,
    "dnsseal.server.automation",
    "dnsseal.server.zonetable",
    "dnsseal.server.zones",
    "dnsseal.server.maintenance",
    "dnsseal.server.update",
    "dnsseal.server.checkds",
    "dnsseal.server.dsdriver",
    "dnsseal.server.catalog",
    "dnsseal.server.xfrin",
}


def _imports(tree: ast.AST) -> list[str]:
    """Every module ``tree`` imports, also for types alone (``from dnsseal.server import x``
    counts as ``dnsseal.server.x``)."""
    out: list[str] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return out


def _owner(node: ast.expr) -> bool:
    """Is ``node`` something that held the server: ``self`` or an automation?"""
    if isinstance(node, ast.Name):
        return node.id in {"self", "automation"}
    return isinstance(node, ast.Attribute) and node.attr == "automation"


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), str(path))


def test_nothing_imports_the_composition_root() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "server/service.py" or rel.startswith(STARTERS):
            continue
        if ROOT in _imports(_tree(path)):
            problems.append(f"{rel} imports {ROOT}")
    assert problems == []


@pytest.mark.parametrize("module", DRIVERS)
def test_drivers_reach_no_server(module: str) -> None:
    path = SERVER / f"{module}.py"
    tree = _tree(path)
    problems = [f"imports {m}" for m in _imports(tree) if m in SERVER_SIDE]
    # No back-pointer either: the drivers get the table and the handle, not the server
    # (``self.server``, ``automation.server``; a name server's answer may be ``.server``).
    problems += [
        f"line {node.lineno}: a back-pointer to the server"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "server" and _owner(node.value)
    ]
    assert problems == []


def test_the_handle_imports_no_driver() -> None:
    tree = _tree(SERVER / "zonehandle.py")
    assert [m for m in _imports(tree) if m in NOT_BELOW_HANDLE] == []


def test_no_import_cycle_in_the_server() -> None:
    """The server's modules import each other in one direction only, counting the
    imports made for types alone (a back-pointer typed by the server's class is a loop)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(SERVER.glob("*.py")):
        mods = {m.split(".")[2] for m in _imports(_tree(path)) if m.startswith("dnsseal.server.")}
        graph[path.stem] = {m for m in mods if m != path.stem}
    cycles = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert cycles == []


def test_only_the_handle_makes_a_version_served() -> None:
    """Every served version is set by ZoneHandle (serve, commit and the metadata changes
    of the version served): nothing else builds a ServedZone or assigns ``served``."""
    problems = []
    for path in sorted(SERVER.glob("*.py")):
        if path.name == "zonehandle.py":
            continue
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "ServedZone"
            ):
                problems.append(f"{path.name}:{node.lineno} builds a ServedZone")
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr == "served":
                        problems.append(f"{path.name}:{node.lineno} assigns .served")
    assert problems == []


# Who may call what installs a version into the answer tables (ARCHITECTURE.md: "Every
# change to a served zone goes through ZoneHandle.commit; nothing else installs a version").
# The handle's commit path swaps the table (``swap_zones``); the table alone hands versions
# to the engine, inside its ``swap_zones``; only the handle makes a version the served one
# (``serve``) or marks it expired (``set_expired``).
INSTALLS = {"swap_zones", "serve", "set_expired"}
ENGINE_TABLES = {"set_zones", "replace_zone", "set_pending", "set_all_pending"}
ALLOWED = {
    # the engine's tables: from the table's swap, which only the handle calls
    **{("zonetable.py", "swap_zones", m): "the swap itself" for m in ENGINE_TABLES},
    # a secondary's copy read from its file at a (re)load, served by the load's one swap
    ("zones.py", "expire_by_copy", "set_expired"): "served by commit_zone_set",
}


def _calls_by_function(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """Every call in ``tree`` with the name of the innermost function around it."""
    out: list[tuple[str, ast.Call]] = []

    def walk(node: ast.AST, func: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func = node.name
        if isinstance(node, ast.Call):
            out.append((func, node))
        for child in ast.iter_child_nodes(node):
            walk(child, func)

    walk(tree, "<module>")
    return out


def test_only_the_handle_installs_a_version() -> None:
    """No driver, loader or the server swaps the answer tables or serves a version on its
    own: a reload's zone set, a worker's pushed version, a secondary's expiry all go
    through ZoneHandle (and a reload of 10,000 zones is its one ``commit_zone_set``)."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "server/zonehandle.py":
            continue
        for func, call in _calls_by_function(_tree(path)):
            f = call.func
            if not isinstance(f, ast.Attribute):
                continue
            if f.attr in INSTALLS | ENGINE_TABLES and rel.startswith("server/"):
                if f.attr == "serve" and isinstance(f.value, ast.Name) and f.value.id == "loop":
                    continue  # the C datagram loop's serve(engine) (server/udp.py)
                if (path.name, func, f.attr) in ALLOWED:
                    continue
                problems.append(f"{rel}:{call.lineno} ({func}) calls .{f.attr}()")
            elif f.attr == "swap_zones":
                problems.append(f"{rel}:{call.lineno} ({func}) calls .swap_zones()")
    assert problems == []
