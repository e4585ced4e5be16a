"""Import layering of the gpuplan package, read from the source with `ast` (no module is imported).

The command line (`gpuplan.cli`) sits on top: nothing else in gpuplan imports it, at module level
or inside a function, so the library works without it. The core (models, optimizer, solvers) does
not import the applications built on it (executor, capacity).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gpuplan"
CORE = ("gpuplan.models", "gpuplan.optimizer", "gpuplan.solvers")
APPLICATIONS = ("gpuplan.executor", "gpuplan.capacity")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an import statement anywhere in `source` may load (functions included).

    `from a.b import c` counts as `a.b` and `a.b.c` (c may be a submodule); relative imports are
    resolved against `module`.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
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
