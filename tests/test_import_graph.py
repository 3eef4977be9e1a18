"""Imports flow one way: no cycles among the package's modules nor among the benchmark scripts.

A cycle hides in lazy (function-level) imports too, so every ``import`` statement counts, wherever
it stands.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path, package: str | None) -> set[str]:
    """Names of the sibling modules ``path`` imports (top-level module names only)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    # Imports only a type checker runs make no cycle at run time.
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and package is not None:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                if node.module is None:
                    # "from . import x" imports the submodule x, not the package's __init__
                    found.update(f"{base}.{alias.name}" for alias in node.names)
                else:
                    found.add(f"{base}.{node.module}")
            elif node.module:
                found.add(node.module)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_benchmark_scripts_import_one_way() -> None:
    scripts = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py")}
    graph = {name: _imports(path, None) & scripts.keys() for name, path in scripts.items()}
    assert _cycle(graph) is None, f"import cycle among benchmarks: {_cycle(graph)}"


def test_cycle_finder_finds_a_cycle() -> None:
    # The check above must be able to fail.
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_package_modules_import_one_way() -> None:
    """No cycle among aiowriter's own modules (the root ``__init__``, which re-exports
    everything, and the generated ``_proto`` are left out)."""
    pkg_root = ROOT / "aiowriter"
    modules: dict[str, tuple[Path, str]] = {}
    for path in pkg_root.rglob("*.py"):
        if "_proto" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        if path.name == "__init__.py":
            name = package = ".".join(parts[:-1])
        else:
            name = ".".join(parts)
            package = ".".join(parts[:-1])
        modules[name] = (path, package)
    graph = {
        name: {m for m in _imports(path, package) if m in modules and m not in (name, "aiowriter")}
        for name, (path, package) in modules.items()
        if name != "aiowriter"
    }
    assert _cycle(graph) is None, f"import cycle in aiowriter: {_cycle(graph)}"
