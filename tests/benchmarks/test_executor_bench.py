"""The executor benchmark's measure of its tasks' own start-up."""

from __future__ import annotations

import pytest

from benchmarks.executor_bench import TASK_KINDS, task_start


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_task_start_measures_cpu_and_its_ceiling(kind: str) -> None:
    """Each kind of task starts (it must find CUDA_VISIBLE_DEVICES), takes some CPU, and the ceiling
    is the cores over that CPU."""
    res = task_start(kind, n=3)
    assert res["cpu_ms"] > 0 and res["cores"] >= 1
    assert res["ceiling_per_s"] == pytest.approx(res["cores"] / (res["cpu_ms"] / 1000), rel=0.01)
