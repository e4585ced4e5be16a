"""The fleet search runs the node-pattern bound and starts from its plan when every task is optional."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import assume, given

import gpuplan
from gpuplan.backends.fleet_brute import brute_force
from gpuplan.models import Problem
from gpuplan.program import priorities
from gpuplan.program.fleet import compile_fleet
from tests.bounds.test_node_patterns import pattern_fleets
from tests.strategies import SETTINGS


def test_cpu_bound_nodes_are_seen_full() -> None:
    """Four nodes of 2 GPUs and 8 cores; six tasks of 1 GPU and 6 cores: one fits a node. Pooled
    CPU (32 cores) would hold five; the node patterns say four, which the plan places."""
    problem = {
        "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 1.0}],
        "nodes": [{"id": f"n{i}", "gpu_counts": {"A": 2}, "cpu_cores": 8, "memory_gb": 64} for i in range(4)],
        "tasks": [
            {"id": f"t{i}", "gpus": 1, "cpu_cores": 6, "work_h": 1 + i, "optional": True} for i in range(6)
        ],
    }
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=5)
    assert len(plan.assignments) == 4
    assert plan.phases[0] == "greedy(node patterns)"
    p = compile_fleet(Problem.model_validate(problem)).program
    drop = float(p.penalty[0])
    # at most four placeable: the bound counts two tasks dropped
    assert float(p.penalty.sum()) - float(plan.stats["pattern_bound"]) <= 4 * drop * (1 + 1e-9)
    assert plan.bound is not None and plan.bound >= float(plan.stats["pattern_bound"]) - 1e-6 * drop


@pytest.fixture(scope="module")
def wide() -> Iterator[pytest.MonkeyPatch]:
    """Every priority tier counts as too wide to weigh (a monkeypatch usable inside hypothesis)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(priorities, "EXACT_LIMIT", 0.0)
    yield mp
    mp.undo()


@SETTINGS
@given(pattern_fleets())
def test_a_tiered_solve_bounds_the_tier_optimal_plans(wide: pytest.MonkeyPatch, data: dict) -> None:
    """Solved tier by tier with the node-pattern stages: the plan passes the verifier (priority
    dominance included), and its bound stays below the flat price of a tier-optimal plan (the
    optimum of the exactly weighted program, by brute force)."""
    problem = Problem.model_validate(data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(priorities, "EXACT_LIMIT", float("inf"))
        exact = compile_fleet(problem).program
    ref = brute_force(exact)
    assume(ref is not None)
    flat = compile_fleet(problem, flat_tiers=True).program
    price = flat.objective(ref[1])  # type: ignore[index]
    plan = gpuplan.solve(data, solver="greedy", time_limit_s=2, workers=1)
    assume(plan.solver == "tiered")  # else no task has a home
    assert plan.bound is not None and plan.objective is not None
    assert plan.bound <= price + 1e-6 * max(1.0, abs(price))
    assert plan.bound <= plan.objective + 1e-6 * max(1.0, abs(plan.objective))


def test_a_tiered_solve_whose_lp_is_unsolved_starts_from_whole_gpu_configurations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the stages' LP is not solved in time its columns make a poor plan, but the plan from
    whole GPU configurations needs only its shapes: the tiered solve starts from it (before, it fell
    back to greedy orders: on the 10,000-task ladder rung with priorities and a 20 s limit, 4,049
    placed at 60.6%, against 4,602 at 0.003% now)."""
    from gpuplan.strategy import fleet

    real = fleet.node_pattern_bound

    def unsolved(*args: object, **kwargs: object) -> object:
        pat = real(*args, **kwargs)  # type: ignore[arg-type]
        if pat is not None:
            pat.converged = False
        return pat

    monkeypatch.setattr(priorities, "EXACT_LIMIT", 0.0)
    monkeypatch.setattr(fleet, "node_pattern_bound", unsolved)
    nodes = [{"id": f"n{i}", "gpu_counts": {"B": 2}, "cpu_cores": 8, "memory_gb": 64} for i in range(6)]
    tasks = [
        {"id": f"t{i}", "gpus": 1, "gpu_share": 0.5, "cpu_cores": 2, "gpu_memory_gb": 8, "priority": i % 2}
        for i in range(30)
    ]
    for t in tasks:
        t.update(optional=True, work_h=1.0)
    problem = {"gpu_types": [{"name": "B", "memory_gb": 16}], "nodes": nodes, "tasks": tasks}
    plan = gpuplan.solve(problem, time_limit_s=5, workers=1)
    assert plan.solver == "tiered"
    assert plan.stats["pattern_skipped"] == "the stages' LP was not solved in time"
    assert plan.stats["pattern_plan"] == "GPU configurations"
    assert len(plan.assignments) == 24  # four halves of 2 cores per node of 8 cores
