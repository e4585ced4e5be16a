"""The compiled core of the branch and bound and the knapsack subgradient (`_gapbb`, built from C).

It is an optional extension (setup.py): an install without a C compiler skips it. This module is
the one place that says whether it is there; callers ask `available()` and get the module from
`core()`.
"""

from __future__ import annotations

from types import ModuleType

try:
    from gpuplan.native import _gapbb
except ImportError:  # pragma: no cover - depends on the install
    _gapbb = None  # type: ignore[assignment]

#: What a plan says when the branch and bound would have run but the compiled core is missing.
UNAVAILABLE = "branch and bound unavailable: the C extension gpuplan.native._gapbb is not built"


def available() -> bool:
    """Whether the compiled core is importable."""
    return _gapbb is not None


def core() -> ModuleType:
    """The compiled module; ImportError naming the fix when it is not built."""
    if _gapbb is None:
        raise ImportError(
            f"{UNAVAILABLE}: reinstall gpuplan (`pip install -e .`) with a C compiler available"
        )
    return _gapbb


__all__ = ["UNAVAILABLE", "available", "core"]
