"""Package boundaries inside ``otel_gemini``: who may import what, and no import cycle.

The rule (docs/architecture.md): a module whose name starts with ``_`` inside a subpackage
(``otel_gemini.export._spool``) is that package's own; other packages use what the package's
``__init__`` offers. The top-level ``otel_gemini/_*.py`` modules are the shared internals
every package may use (settings helpers, background loops, suppression, attributes).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "otel_gemini"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, module imported, whether at module level outside TYPE_CHECKING)."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    runtime_lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            runtime_lines.add(node.lineno)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, node.lineno in runtime_lines
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target, node.lineno in runtime_lines
            for alias in node.names:  # ``from otel_gemini.export import _spool``
                yield node.lineno, f"{target}.{alias.name}", node.lineno in runtime_lines


def _owner(module: str) -> str:
    """The subpackage a module belongs to (``otel_gemini.export``), or ``otel_gemini``."""
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE_DIR / parts[1]).is_dir():
        return ".".join(parts[:2])
    return "otel_gemini"


def _sources() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_no_module_imports_another_packages_private_module() -> None:
    violations = []
    for path in _sources():
        importer = _module_name(path)
        for line, target, _ in _imports(path):
            parts = target.split(".")
            if parts[0] != "otel_gemini" or len(parts) < 3:
                continue
            owner = _owner(target)
            private = any(part.startswith("_") for part in target.split(".")[2:])
            if owner != "otel_gemini" and private and _owner(importer) != owner:
                violations.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line} {target}")
    assert violations == []


def _runtime_graph() -> dict[str, set[str]]:
    """Module -> the ``otel_gemini`` modules it imports at module level."""
    modules = {_module_name(path): path for path in _sources()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for _, target, at_module_level in _imports(path):
            # A submodule importing names from its own package's ``__init__`` (or the
            # ``from package import _module`` form) is not a cycle: the package is loading.
            ancestor = name.startswith(target + ".")
            if at_module_level and target in modules and target != name and not ancestor:
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(_owner(module), set()).update(
            _owner(t) for t in targets if _owner(t) != _owner(module)
        )
    return packages


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycle(level: str) -> None:
    graph = _runtime_graph()
    if level == "package":
        graph = _package_graph(graph)
        graph.pop("otel_gemini", None)  # the top level re-exports and configures everything
        graph = {p: {t for t in ts if t in graph} for p, ts in graph.items()}
    assert _cycles(graph) == []


def test_no_test_module_imports_another_test_module() -> None:
    """Shared test helpers live in helper modules (``tests/usage_fixtures.py``…), not in a
    test module another one imports: that would collect and run its tests twice over."""
    tests_dir = Path(__file__).resolve().parent
    found = []
    for path in sorted(tests_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.split(".")[-1].startswith("test_"):
                    found.append(f"{path.name}:{node.lineno} {name}")
    assert found == []
