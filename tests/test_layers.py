"""The house's floors, read from the source (every import, also inside functions and under
TYPE_CHECKING): vocabulary and pure rules at the bottom, the core on them alone, only the runtime
above it, and no import running back up (no cycle).

Issue 15: "the core imports only `model`, `classify`, `verdict` and `backoff`; no edge imports it;
the house has no circles and no import running back up".
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import cookie_supervisor

PACKAGE = "cookie_supervisor"
ROOT = Path(cookie_supervisor.__file__).parent

# The bottom floors: what each may import of the package (stdlib apart).
FLOOR = {
    "cookie_supervisor.classify": set(),
    "cookie_supervisor.backoff": set(),
    "cookie_supervisor.model": {"cookie_supervisor.classify"},
    "cookie_supervisor.verdict": {"cookie_supervisor.classify", "cookie_supervisor.model"},
}
CORE = "cookie_supervisor.core"
CORE_MAY_IMPORT = {f"{PACKAGE}.{m}" for m in ("model", "classify", "verdict", "backoff")}
# The runtime: the only modules above the core that may import it. supervisor carries out the
# core's effects, poller tells it what the queue holds, and app wires them; the rest are views
# of the core's state the runtime serves: the status and the one verdict (views), the
# scrape-time gauges (metrics), and what the state file remembers of it across a restart
# (memory). No edge (state, bull, redisconn, webhooks, reports, ...).
RUNTIME = {f"{PACKAGE}.{m}" for m in ("supervisor", "poller", "app", "views", "metrics", "memory")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = modules()


def imported(name: str, path: Path) -> Iterator[str]:
    """Every module `name` imports (absolute names), ours and others'."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from cookie_supervisor import core` imports the module cookie_supervisor.core
                sub = f"{base}.{alias.name}"
                yield sub if sub in MODULES else base


def ours(name: str) -> set[str]:
    return {m for m in imported(name, MODULES[name]) if m == PACKAGE or m.startswith(PACKAGE + ".")}


GRAPH = {name: ours(name) - {name} for name in MODULES}


def in_core(name: str) -> bool:
    return name == CORE or name.startswith(CORE + ".")


def test_the_scan_sees_the_house() -> None:
    assert {CORE, f"{CORE}.step", f"{PACKAGE}.supervisor", f"{PACKAGE}.model"} <= MODULES.keys()
    assert f"{CORE}.step" in GRAPH[CORE]  # `from cookie_supervisor.core.step import step`
    assert CORE in GRAPH[f"{PACKAGE}.supervisor"]  # `from cookie_supervisor import core`


@pytest.mark.parametrize("name", sorted(FLOOR))
def test_the_bottom_floors_import_only_what_is_below_them(name: str) -> None:
    assert GRAPH[name] <= FLOOR[name]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if in_core(n)))
def test_the_core_imports_only_vocabulary_pure_rules_and_the_stdlib(name: str) -> None:
    assert {m for m in GRAPH[name] if not in_core(m)} <= CORE_MAY_IMPORT
    others = {m.partition(".")[0] for m in imported(name, MODULES[name])} - {PACKAGE}
    assert others <= set(sys.stdlib_module_names), f"{name} imports {others}"


def test_only_the_runtime_imports_the_core() -> None:
    importers = {n for n, deps in GRAPH.items() if not in_core(n) and any(map(in_core, deps))}
    assert importers <= RUNTIME, f"edges import the core: {sorted(importers - RUNTIME)}"


def test_no_import_cycles() -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for dep in sorted(GRAPH.get(name, ())):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def test_only_step_pursues_the_refresh_need() -> None:
    """Issue 15: `step` runs the sub-machine for the event, then pursues the refresh need once
    (`refresh.pursue`, the one place a refresh is asked for); no sub-machine pursues it itself."""
    callers: dict[str, int] = {}
    for name, path in MODULES.items():
        if in_core(name):
            calls = [
                node
                for node in ast.walk(ast.parse(path.read_text(), str(path)))
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "pursue"
            ]
            if calls:
                callers[name] = len(calls)
    assert callers == {f"{CORE}.step": 1}
