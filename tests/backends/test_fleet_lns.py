"""The fleet large-neighbourhood search: never worse than its start, always a plan, and it finds
what a gangs-first greedy misses."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given

import gpuplan
import gpuplan.strategy.fleet as fleet_strategy
from gpuplan.backends.fleet_lns import fleet_lns
from gpuplan.heuristics.fleet_greedy import FleetState, fleet_greedy, task_order
from gpuplan.models import Problem
from gpuplan.program.fleet import FleetProgram, compile_fleet
from tests.strategies import SETTINGS, fleets


@SETTINGS
@given(fleets())
def test_never_worse_than_its_start_and_always_a_plan(data: dict) -> None:
    p = compile_fleet(Problem.model_validate(data), flat_tiers=True).program
    start = fleet_greedy(p, task_order(p)).assign
    assume(not p.violations(start))
    res = fleet_lns(p, start, deadline=time.monotonic() + 0.3, workers=1, seed=0)
    assert p.violations(res.assign) == []
    assert res.objective == pytest.approx(p.objective(res.assign))
    assert res.objective <= p.objective(start) + 1e-9 * max(1.0, abs(p.objective(start)))
    assert res.stats["lns_rounds"] >= 1


def crowded() -> dict:
    """One node of two GPUs; a gang of two and two single tasks, all optional: the gang alone is
    what a gangs-first greedy places, the two singles are one more task."""
    return {
        "gpu_types": [{"name": "A", "memory_gb": 80}],
        "nodes": [{"id": "n0", "gpu_counts": {"A": 2}}],
        "tasks": [
            {"id": "gang", "gpus": 2, "work_h": 1, "optional": True},
            {"id": "s1", "gpus": 1, "work_h": 1, "optional": True},
            {"id": "s2", "gpus": 1, "work_h": 1, "optional": True},
        ],
    }


def test_it_places_two_singles_where_the_greedy_put_one_gang() -> None:
    p = compile_fleet(Problem.model_validate(crowded()), flat_tiers=True).program
    start = fleet_greedy(p, task_order(p)).assign
    assert int((start[:, 0] >= 0).sum()) == 1  # the gang, first in the greedy's order
    res = fleet_lns(p, start, deadline=time.monotonic() + 2.0, workers=1, seed=0)
    assert int((res.assign[:, 0] >= 0).sum()) == 2
    assert res.stats["lns_improved"] >= 1


def test_auto_runs_it_past_the_exact_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the exact model, from a start not proven optimal (the gang alone), auto runs the search,
    which finds the two singles."""

    def gang_first(p: FleetProgram, *args: object, **kwargs: object) -> tuple[FleetState, str]:
        return fleet_greedy(p, task_order(p)), "greedy(dominant)"

    monkeypatch.setattr(fleet_strategy, "FLEET_EXACT_PAIRS", 0)
    monkeypatch.setattr(fleet_strategy, "_starts", gang_first)
    plan = gpuplan.solve(crowded(), time_limit_s=1.0)
    assert "lns" in plan.phases
    assert plan.solver == "lns"
    assert sorted(a.task for a in plan.assignments) == ["s1", "s2"]
    assert np.isfinite(plan.wall_time_s) and plan.wall_time_s <= 1.5
