"""The compiled parts, built from C: the branch and bound and the knapsack subgradient (`_gapbb`),
the tabu search of disjunctive schedules (`_shop`), and the executor's task wrapper (`wrapper.c`,
the program `gpuplan-wrapper`).

They are optional (setup.py): an install without a C compiler skips them. This module is the one
place that says whether they are there; callers ask `available()` / `shop_available()` and get the
modules from `core()` / `shop_core()`, and the wrapper's path from `wrapper()`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

try:
    from gpuplan.native import _gapbb
except ImportError:  # pragma: no cover - depends on the install
    _gapbb = None  # type: ignore[assignment]
try:
    from gpuplan.native import _shop
except ImportError:  # pragma: no cover - depends on the install
    _shop = None  # type: ignore[assignment]

#: What a plan says when the branch and bound would have run but the compiled core is missing.
UNAVAILABLE = "branch and bound unavailable: the C extension gpuplan.native._gapbb is not built"
#: What a plan says when the shop search would have run but its compiled core is missing.
SHOP_UNAVAILABLE = "shop search unavailable: the C extension gpuplan.native._shop is not built"


def available() -> bool:
    """Whether the compiled core is importable."""
    return _gapbb is not None


def _built(module: ModuleType | None, unavailable: str) -> ModuleType:
    """`module`; ImportError naming the fix when it is not built."""
    if module is None:
        raise ImportError(
            f"{unavailable}: reinstall gpuplan (`pip install -e .`) with a C compiler available"
        )
    return module


def core() -> ModuleType:
    """The compiled module; ImportError naming the fix when it is not built."""
    return _built(_gapbb, UNAVAILABLE)


def shop_available() -> bool:
    """Whether the shop search's compiled core is importable."""
    return _shop is not None


def shop_core() -> ModuleType:
    """The shop search's compiled module; ImportError naming the fix when it is not built."""
    return _built(_shop, SHOP_UNAVAILABLE)


#: What the executor logs when it forks Python wrappers because the compiled one is missing.
WRAPPER_UNAVAILABLE = (
    "the compiled task wrapper gpuplan/native/gpuplan-wrapper is not built: wrappers are forked Python "
    "processes, some 4 ms more CPU per launch (reinstall gpuplan with a C compiler available)"
)


def wrapper() -> str | None:
    """The path of the compiled task wrapper (`wrapper.c`), or None when it is not built."""
    path = Path(__file__).with_name("gpuplan-wrapper")
    return str(path) if os.access(path, os.X_OK) else None


__all__ = [
    "SHOP_UNAVAILABLE",
    "UNAVAILABLE",
    "WRAPPER_UNAVAILABLE",
    "available",
    "core",
    "shop_available",
    "shop_core",
    "wrapper",
]
