"""The test tree itself: module names must be unique, since pytest imports test files by basename
(two `test_cli.py` in different folders once broke collection in a fresh clone)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_test_module_basenames_are_unique() -> None:
    names = Counter(p.name for p in Path(__file__).resolve().parent.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
