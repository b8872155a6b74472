"""The import layers of twin_core, read from the source with ``ast`` (nothing is imported).

``MAY_IMPORT`` is THE table of who may import what (docs/architecture.md shows it; a test below keeps the
two equal). A package imports only what its row names plus the floor; the rows follow ``LEVELS`` (a
package only ever names packages of a lower level), so there is no upward or sideways import and no
circle between packages. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "twin_core"
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
SKIP = (PACKAGE / "demo" / "sample",)  # the sample corpus: a git repository the demo crawls, not code

# Top to bottom. A package may only import packages of a lower level (never its own level: no sideways).
LEVELS: list[tuple[str, ...]] = [
    ("cli",),
    ("demo",),
    ("serving",),
    ("inference",),
    ("deploy",),  # the canary's live-quality check uses evaluation's metrics (issue 20)
    ("evaluation",),
    ("training",),
    ("datasets",),
    ("monitoring",),
    ("etl", "validation", "features"),
    ("llm",),
    ("stores",),
    ("domain", "settings", "progress"),
    ("errors",),
]
FLOOR = ("domain", "settings", "progress", "errors")
_STAGES = ("serving", "inference", "evaluation", "deploy", "training", "datasets", "monitoring")
_STAGES += ("etl", "validation", "features", "llm", "stores")

# package -> the twin_core packages it may import, besides the floor (which every package above it may).
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "cli": ("demo", *_STAGES),
    "demo": _STAGES,
    "serving": ("inference", "features", "llm", "stores"),
    "inference": ("features", "llm", "stores"),
    "evaluation": ("datasets", "features", "llm", "stores"),
    "deploy": ("evaluation", "training", "llm", "stores"),
    "training": ("datasets", "llm", "stores"),
    "datasets": ("validation", "features", "llm", "stores"),
    "monitoring": ("stores",),
    "etl": ("stores",),
    "validation": ("stores",),
    "features": ("stores",),
    "llm": (),
    "stores": (),
    "domain": ("errors",),
    "settings": ("errors",),
    "progress": (),
    "errors": (),
}


def _level(package: str) -> int:
    return next(i for i, names in enumerate(LEVELS) if package in names)


def allowed(package: str) -> set[str]:
    floor = {p for p in FLOOR if _level(p) > _level(package)}
    return set(MAY_IMPORT[package]) | floor


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(path.is_relative_to(skip) for skip in SKIP):
            continue
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(module: str, path: Path, *, top_level_only: bool = False) -> Iterator[tuple[str, int]]:
    """(imported twin_core module, line) for every import in the file; ``top_level_only`` leaves out the
    imports inside functions and under ``if TYPE_CHECKING`` (those never run at import time)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if top_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (n for stmt in child.orelse for n in [stmt, *walk(stmt)])
                continue
            yield child
            yield from walk(child)

    for node in walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from pkg import name`: the submodule pkg.name when it is one, else pkg itself
            targets = [f"{source}.{a.name}" if _is_module(f"{source}.{a.name}") else source for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "twin_core":
                yield target, node.lineno


def package_of(module: str) -> str | None:
    """``twin_core.features.pipeline`` -> ``features``; the root ``twin_core`` itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan): the import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_table_follows_the_levels() -> None:
    listed = [p for names in LEVELS for p in names]
    assert sorted(listed) == sorted(MAY_IMPORT)
    upward = [(p, q) for p, names in MAY_IMPORT.items() for q in names if _level(q) <= _level(p)]
    assert upward == []


def test_every_package_is_in_the_table() -> None:
    packages = {package_of(m) for m, _ in _modules()} - {None}
    missing = sorted(packages - set(MAY_IMPORT))
    assert not missing, f"add these packages to LEVELS and MAY_IMPORT: {missing}"


def test_no_upward_or_sideways_import() -> None:
    bad = []
    for module, path in _modules():
        here = package_of(module)
        if here is None or here not in MAY_IMPORT:
            continue
        for target, line in _imports(module, path):
            there = package_of(target)
            if there is not None and there != here and there not in allowed(here):
                bad.append(f"{path.relative_to(SRC)}:{line} {here} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_import_circle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        here = package_of(module)
        for target, _ in _imports(module, path):
            there = package_of(target)
            if here and there and there != here:
                graph.setdefault(here, set()).add(there)
    assert _sccs(graph) == []


def test_no_import_circle_between_modules_at_import_time() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        for target, _ in _imports(module, path, top_level_only=True):
            if target != module:
                graph.setdefault(module, set()).add(target)
    # a package's __init__ importing its own submodules is how packages work, not a circle
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    assert _sccs(graph) == []


def test_twin_core_never_imports_airflow() -> None:
    bad = []
    for module, path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            bad += [f"{module}:{node.lineno}" for n in names if n.split(".")[0] == "airflow"]
    assert not bad, "\n".join(bad)


def _docs_rows() -> dict[str, str]:
    """``package -> may-import cell`` of the package table in docs/architecture.md."""
    rows = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `(\w+)/?` \|.*\| (.*) \|$", line)
        if match and match.group(1) in MAY_IMPORT:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def docs_cell(package: str) -> str:
    names = [p for names in LEVELS for p in names if p in MAY_IMPORT[package]]
    return ", ".join(f"`{p}`" for p in names) or "—"


@pytest.mark.parametrize("package", list(MAY_IMPORT))
def test_architecture_doc_shows_the_table(package: str) -> None:
    """Each package's row in docs/architecture.md names exactly what it may import (floor aside)."""
    assert _docs_rows().get(package) == docs_cell(package)


BACKENDS = ("pymongo", "qdrant_client", "boto3", "botocore", "litemongo", "mongomock")


def _external_imports(path: Path) -> Iterator[tuple[str, int]]:
    """(top-level name, line) of every absolute import in the file, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((a.name.split(".")[0], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module.split(".")[0], node.lineno


def test_only_stores_knows_a_backend() -> None:
    """The stores own their backends: no other package imports a backend client, even lazily."""
    bad = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for module, path in _modules()
        if package_of(module) != "stores"
        for name, line in _external_imports(path)
        if name in BACKENDS
    ]
    assert not bad, "\n".join(bad)


MAX_FUNCTION_LINES = 60


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (N lines)`` of every function or method longer than ``limit`` lines (def to
    last line, docstring included; a nested function counts in its parent too)."""
    out = []
    for _, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    out.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length} lines)")
    return sorted(out)


def test_no_function_longer_than_60_lines() -> None:
    """Long orchestrators read as plan -> run -> record instead (issue 23)."""
    too_long = long_functions()
    assert not too_long, "\n".join(too_long)
