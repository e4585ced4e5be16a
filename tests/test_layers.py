"""Import layering of the gpuplan package, read from the source with `ast` (no module is imported).

Layers, lowest first (docs/architecture.md): errors, status and interrupt; models (pydantic specs); program
(build, decode, verify) and native (the compiled core); bounds, heuristics and backends; strategy;
api (`solve`); the applications (executor, capacity, history, calibration, report); cli. A module
imports only its own layer or lower ones, at module level or inside a function; backends, bounds and
heuristics never import the pydantic models; and no chain of imports comes back to where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gpuplan"
CORE = (
    "gpuplan.models",
    "gpuplan.program",
    "gpuplan.bounds",
    "gpuplan.heuristics",
    "gpuplan.backends",
    "gpuplan.strategy",
    "gpuplan.api",
    "gpuplan.partition",
)
LAYERS = (
    ("gpuplan.errors", "gpuplan.status", "gpuplan.interrupt"),
    ("gpuplan.models",),
    ("gpuplan.program", "gpuplan.native"),
    ("gpuplan.bounds", "gpuplan.heuristics", "gpuplan.backends"),
    ("gpuplan.strategy",),
    ("gpuplan.api", "gpuplan.partition"),
    ("gpuplan.executor", "gpuplan.capacity", "gpuplan.history", "gpuplan.calibration", "gpuplan.report"),
    ("gpuplan.cli",),
)
INDEX_SPACE = ("gpuplan.bounds", "gpuplan.heuristics", "gpuplan.backends")
APPLICATIONS = (
    "gpuplan.executor",
    "gpuplan.capacity",
    "gpuplan.history",
    "gpuplan.calibration",
    "gpuplan.report",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_statements(source: str, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(module named, names imported from it) for every import statement anywhere in `source`
    (functions included); relative imports resolved against `module`. `import a.b` gives (a.b, [])."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.append((base, [alias.name for alias in node.names if alias.name != "*"]))
    return out


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an import statement anywhere in `source` may load (functions included).

    `from a.b import c` counts as `a.b` and `a.b.c` (c may be a submodule); relative imports are
    resolved against `module`.
    """
    found: set[str] = set()
    for base, names in _import_statements(source, module, is_package):
        found.add(base)
        found.update(f"{base}.{name}" for name in names)
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports_by_module() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        out[name] = imported_modules(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return out


IMPORTS = _imports_by_module()


def test_the_walk_sees_the_whole_package() -> None:
    assert {"gpuplan", "gpuplan.cli", "gpuplan.errors", "gpuplan.executor.runner"} <= set(IMPORTS)
    assert "gpuplan.errors" in IMPORTS["gpuplan.cli"]


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import gpuplan.cli\n", "gpuplan.x", "gpuplan.cli"),
        ("def f():\n    from gpuplan.cli import main\n", "gpuplan.x", "gpuplan.cli"),
        ("from gpuplan import cli\n", "gpuplan.x", "gpuplan.cli"),
        ("def f():\n    from ..cli.jsonio import load_json\n", "gpuplan.executor.sim", "gpuplan.cli.jsonio"),
        ("from . import cli\n", "gpuplan.x", "gpuplan.cli"),
    ],
)
def test_imports_are_found_in_every_spelling(source: str, module: str, expected: str) -> None:
    assert expected in imported_modules(source, module)


def test_nothing_outside_the_cli_imports_it() -> None:
    bad = {
        module: sorted(n for n in names if _within(n, ("gpuplan.cli",)))
        for module, names in IMPORTS.items()
        if not _within(module, ("gpuplan.cli",))
    }
    assert {m: n for m, n in bad.items() if n} == {}


def test_the_core_does_not_import_executor_or_capacity() -> None:
    bad = {
        module: sorted(n for n in names if _within(n, APPLICATIONS))
        for module, names in IMPORTS.items()
        if _within(module, CORE)
    }
    assert {m: n for m, n in bad.items() if n} == {}


def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if _within(module, prefixes):
            return rank
    return None


def import_edges(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The gpuplan modules `source` imports: `from a import b` is an edge to the module a.b when b
    is one (a submodule), else to a."""
    edges: set[str] = set()
    for base, names in _import_statements(source, module, is_package):
        edges.update(f"{base}.{n}" if f"{base}.{n}" in known else base for n in names or [""])
    return {e for e in edges if e in known and e != module}


def _edges() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {
        m: import_edges(p.read_text(encoding="utf-8"), m, p.name == "__init__.py", known)
        for m, p in paths.items()
    }


EDGES = _edges()


def test_imports_point_down_the_layers() -> None:
    """Each module imports only modules of its own layer or a lower one."""
    up = {
        module: sorted(n for n in names if (_layer(n) or 0) > (_layer(module) or 0))
        for module, names in EDGES.items()
        if _layer(module) is not None
    }
    assert {m: n for m, n in up.items() if n} == {}


def test_index_space_layers_never_import_the_models() -> None:
    """Backends, bounds and heuristics see compiled programs only, never pydantic specs."""
    bad = {
        module: sorted(n for n in IMPORTS[module] if _within(n, ("gpuplan.models", "pydantic")))
        for module in IMPORTS
        if _within(module, INDEX_SPACE)
    }
    assert {m: n for m, n in bad.items() if n} == {}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """No chain of imports (module level or inside functions) leads back to where it started."""
    assert _cycles(EDGES) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check can fail: a -> b -> c -> a is reported, a tree is not."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}}) == []


def test_a_submodule_import_is_an_edge_to_the_submodule() -> None:
    """`from gpuplan import native` points at gpuplan.native, not at the root package."""
    known = {"gpuplan", "gpuplan.native", "gpuplan.x"}
    assert import_edges("from gpuplan import native\n", "gpuplan.x", False, known) == {"gpuplan.native"}
    assert import_edges("from gpuplan import solve\n", "gpuplan.x", False, known) == {"gpuplan"}


def test_every_package_module_has_a_layer() -> None:
    """A new subpackage must be placed in LAYERS (the root package re-exports and is exempt)."""
    assert sorted(m for m in EDGES if m != "gpuplan" and _layer(m) is None) == []
