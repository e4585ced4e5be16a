"""The size limits of the input models (docs/limits.md) and what keeps a large fleet cheap to read."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from gpuplan import Problem, parse_problem
from gpuplan.models.base import MAX_NUMBER
from gpuplan.models.fleet import MAX_GPUS
from gpuplan.models.validation import format_validation_error


def _fleet(counts: list[int], **task: object) -> dict:
    return {
        "gpu_types": [{"name": "H100", "memory_gb": 80, "cost_per_hour": 3.0}],
        "nodes": [{"id": f"n{i}", "gpu_counts": {"H100": c}} for i, c in enumerate(counts)],
        "tasks": [{"id": "t", "work_h": 1.0, **task}],
    }


def _error(data: dict) -> str:
    with pytest.raises(ValidationError) as exc:
        parse_problem(data)
    return str(format_validation_error(exc.value))


def test_a_billion_gpus_in_one_node_is_refused_at_once() -> None:
    """Refused in well under a second, naming the node's count (no object per GPU is built)."""
    t0 = time.monotonic()
    msg = _error(_fleet([10**9]))
    assert time.monotonic() - t0 < 2.0
    assert "gpu_counts['H100']" in msg and "1,000,000,000" in msg and f"{MAX_GPUS:,}" in msg


def test_the_limit_counts_the_whole_fleet() -> None:
    """Nodes under the limit each, over it together: refused; exactly at the limit: read."""
    assert "GPUs in all" in _error(_fleet([MAX_GPUS // 2 + 1, MAX_GPUS // 2]))
    assert isinstance(parse_problem(_fleet([MAX_GPUS // 2, MAX_GPUS // 2])), Problem)


def test_numbers_past_the_magnitude_limit_name_their_place() -> None:
    """A number in a dict field names its key; the limit itself is allowed."""
    assert "duration_h['H100']" in _error(_fleet([1], duration_h={"H100": 2 * MAX_NUMBER}))
    assert isinstance(parse_problem(_fleet([1], work_h=MAX_NUMBER)), Problem)


def test_all_gpus_is_built_once_per_nodes() -> None:
    """The counted GPUs are made once; a copy with other nodes gets its own list."""
    p = parse_problem(_fleet([3, 2]))
    assert isinstance(p, Problem)
    first = p.all_gpus()
    assert [g.id for _, g in first] == p.gpu_ids() and first == p.all_gpus()
    first.clear()  # callers get their own list
    assert len(p.all_gpus()) == 5
    fewer = p.model_copy(update={"nodes": p.nodes[:1]})
    assert [g.id for _, g in fewer.all_gpus()] == ["n0/H100/0", "n0/H100/1", "n0/H100/2"]
