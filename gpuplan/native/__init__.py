"""The compiled cores, built from C: the branch and bound and the knapsack subgradient (`_gapbb`),
and the tabu search of disjunctive schedules (`_shop`).

They are optional extensions (setup.py): an install without a C compiler skips them. This module is
the one place that says whether they are there; callers ask `available()` / `shop_available()` and
get the modules from `core()` / `shop_core()`.
"""

from __future__ import annotations

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


__all__ = ["SHOP_UNAVAILABLE", "UNAVAILABLE", "available", "core", "shop_available", "shop_core"]
