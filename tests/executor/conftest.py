"""Fixtures for executor tests (helpers live in exec_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from exec_helpers import sim_fleet


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def uuids() -> dict[str, str]:
    return {g.id: g.uuid for g in sim_fleet().gpus}
