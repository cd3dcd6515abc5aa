"""The package's import graph has no cycle, dynamic imports by name included.

Every ``import``/``from ... import`` inside ``src/xpnet`` (at any depth: in functions too)
and every string constant that names an xpnet module (``importlib.import_module`` of a
name from a table, as the kernel registry does) is an edge. A cycle would mean two modules
that each need the other loaded first: the order they load in then depends on which one a
user happens to import first.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import xpnet

PACKAGE = Path(xpnet.__file__).parent
MODULE_NAME = re.compile(r"^xpnet(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(module: str, path: Path, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _encloses(package: str, module: str) -> bool:
    """``module`` is ``package`` or inside it: Python loads a package before its
    submodules, so naming it (``resources.files("xpnet.datasets")``) is no edge."""
    return module == package or module.startswith(package + ".")


def import_graph() -> dict[str, set[str]]:
    """Edges module -> module it imports, among xpnet's own modules."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node.level, node.module)
                for alias in node.names:  # ``from pkg import submodule`` names a module
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
            elif isinstance(node, ast.Constant) and MODULE_NAME.match(str(node.value)):
                targets = [str(node.value)]
            graph[module] |= {t for t in targets if t in modules and not _encloses(t, module)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert graph["xpnet.functional.conv"] >= {"xpnet.kernels", "xpnet._saved"}
    assert "xpnet.kernels.numpy" in graph["xpnet.kernels"]  # the registry's import by name
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
