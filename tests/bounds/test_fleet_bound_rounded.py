"""The aggregated LP on a rounded-down relaxation (fewer task classes) still bounds every plan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given

import gpuplan.bounds.fleet as fb
from gpuplan.backends.fleet_brute import brute_force
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet
from tests.strategies import SETTINGS, fleets


@SETTINGS
@given(fleets())
def test_the_rounded_bound_is_below_the_optimum(data: dict) -> None:
    p = compile_fleet(Problem.model_validate(data), flat_tiers=True).program
    ref = brute_force(p)
    assume(ref is not None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fb, "LP_CLASSES", 1)  # round as far as the grids go
        lp = fb.fleet_lower_bound(p)
    best = ref[0]
    assert lp.bound <= best + 1e-6 * max(1.0, abs(best))


def test_rounding_merges_tasks_that_differ_in_cost_only() -> None:
    tasks = [{"id": f"t{i}", "gpus": 1, "work_h": 1 + i / 100, "optional": True} for i in range(30)]
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 2.0}],
        "nodes": [{"id": "n0", "gpu_counts": {"A": 4}}],
        "tasks": tasks,
    }
    p = compile_fleet(Problem.model_validate(data)).program
    assert fb.aggregate(p).task_rep.size == 30
    q, ag, how = fb.rounded_down(p, classes=5)
    assert fb.aggregate(q).task_rep.size == ag.task_rep.size <= 5
    assert how.startswith("costs down to")
    assert np.all(q.cost_c <= p.cost_c) and np.all(q.penalty == p.penalty)
