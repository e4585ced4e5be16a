"""Priorities at any size: tiers too wide to weigh exactly are solved tier by tier, never exit 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuplan
import gpuplan.strategy.fleet as fleet_strategy
from benchmarks.priority_batch import batch
from gpuplan.backends.fleet_brute import brute_force
from gpuplan.cli import main
from gpuplan.program import priorities
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.priorities import TiersTooWide, tier_penalties


def _batch(n_tasks: int, seed: int) -> dict:
    """Optional tasks of priorities 0-2, some gangs, on a fleet too small for all of them."""
    rng = np.random.default_rng(seed)
    types = [
        {"name": "big", "memory_gb": 80, "speed": 2.0, "cost_per_hour": 3.0},
        {"name": "small", "memory_gb": 24, "speed": 1.0, "cost_per_hour": 1.0},
    ]
    nodes = [
        {"id": f"n{i}", "gpu_counts": {types[i % 2]["name"]: 2}, "cpu_cores": 16, "memory_gb": 64}
        for i in range(3)
    ]
    tasks = []
    for j in range(n_tasks):
        gang = int(rng.choice([1, 1, 2]))
        tasks.append(
            {
                "id": f"t{j}",
                "gpus": gang,
                "gpu_share": 1.0 if gang > 1 else float(rng.choice([0.5, 1.0])),
                "gpu_memory_gb": float(rng.choice([8, 40])),
                "cpu_cores": float(rng.choice([2, 8])),
                "work_h": float(rng.integers(1, 9)),
                "priority": int(rng.integers(0, 3)),
                "optional": True,
            }
        )
    return {"gpu_types": types, "nodes": nodes, "tasks": tasks}


def test_penalties_are_exact_lexicographic_weights() -> None:
    """One more task of a tier outweighs every cost and all lower-tier tasks together."""
    cand = np.ones(5, dtype=bool)
    prio = np.array([0, 0, 1, 1, 2])
    pen = tier_penalties(cand, prio, span=10.0, extra=np.zeros(5), first_free=False)
    assert pen is not None
    assert pen[0] == 21.0 and pen[2] == 21.0 + 42.0 and pen[4] == 21.0 + 42.0 + 2 * 63.0
    for j in (2, 4):
        assert pen[j] > 10.0 + pen[prio < prio[j]].sum()


def test_too_wide_tiers_say_so() -> None:
    """Past the exact limit the weights are refused instead of rounded."""
    cand = np.ones(4000 * 3, dtype=bool)
    prio = np.repeat([0, 1, 2], 4000)
    assert tier_penalties(cand, prio, span=1e6, extra=np.zeros(cand.size), first_free=False) is None
    with pytest.raises(TiersTooWide):
        compile_fleet(gpuplan.Problem.model_validate(_wide_problem()))


def _wide_problem() -> dict:
    data = _batch(12, seed=0)
    data["tasks"][0]["work_h"] = 1e15  # one huge task makes the tiers' weights overflow
    return data


def test_wide_tiers_solve_tier_by_tier_from_the_cli(tmp_path, capsys) -> None:
    """The command line returns a verified plan (exit 0) where it used to exit 1."""
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(_wide_problem()))
    assert main(["solve", str(path), "--time-limit", "3", "--workers", "1"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["solver"] == "tiered"
    assert "tier by tier" in plan["solver_reason"]
    assert plan["stats"]["priority_tiers"] == 3


def test_wide_tiers_in_the_gap_core_take_the_tiered_path() -> None:
    """A problem without fleet features whose tiers cannot be weighed is solved tier by tier too."""
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1e13}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 2}}],
        "tasks": [{"id": f"t{k}", "work_h": 1 + k, "priority": k % 3, "optional": True} for k in range(6)],
    }
    plan = gpuplan.solve(data, time_limit_s=3, workers=1)
    assert plan.solver == "tiered"
    assert plan.status.has_solution
    placed = {a.task for a in plan.assignments}
    assert {"t2", "t5"} <= placed  # the two priority-2 tasks take the two GPUs
    with pytest.raises(gpuplan.InputError):
        gpuplan.solve(data, solver="milp", time_limit_s=3)


def _top_tier_placed(problem: gpuplan.Problem, tasks: set[str]) -> int:
    top = max(t.priority for t in problem.tasks)
    return sum(1 for t in problem.tasks if t.priority == top and t.id in tasks)


@settings(max_examples=20, deadline=None)
@given(n_tasks=st.integers(3, 5), seed=st.integers(0, 10_000))
def test_the_top_tier_is_placed_as_fully_as_the_exact_optimum(n_tasks, seed, monkeypatch_module) -> None:
    """Forced tier by tier with exact stages, the top tier places as many tasks as the exact
    lexicographic optimum (brute force over the exactly weighted program)."""
    data = _batch(n_tasks, seed)
    problem = gpuplan.Problem.model_validate(data)
    exact = compile_fleet(problem)
    best = brute_force(exact.program)
    assert best is not None  # every task is optional: dropping all is feasible
    optimum = {exact.task_ids[t] for t in np.flatnonzero(best[1][:, 0] >= 0)}
    monkeypatch_module.setattr(priorities, "EXACT_LIMIT", 0.0)
    try:
        plan = gpuplan.solve(data, solver="cpsat", time_limit_s=6, workers=1)
    finally:
        monkeypatch_module.undo()
    assert plan.solver == "tiered"
    placed = {a.task for a in plan.assignments}
    assert _top_tier_placed(problem, placed) == _top_tier_placed(problem, optimum)


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A monkeypatch usable inside a hypothesis test (function-scoped fixtures are not reset)."""
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_penalties_that_overflow_only_the_integer_scale_are_solved_tier_by_tier() -> None:
    """Penalties exact in floats but past 64-bit integers at the view's cost scale: the GAP view
    refuses them, and the problem is solved tier by tier instead of crashing."""
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 3.1415926}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 4}}],
        "tasks": [
            {"id": f"t{i}", "work_h": 1.234567 + i * 1e-7, "priority": i % 8, "optional": True}
            for i in range(60)
        ],
    }
    plan = gpuplan.solve(data, time_limit_s=3, workers=1)
    assert plan.solver == "tiered" and plan.status.has_solution
    placed = {int(a.task[1:]) % 8 for a in plan.assignments}
    assert placed == {7}  # the four GPUs go to the top tier
    assert plan.stats["build_s"] > 0 and plan.stats["verify_s"] > 0  # where the time went


def test_a_lexicographic_objective_too_wide_for_float64_is_solved_in_stages() -> None:
    """Six criteria in lexicographic order over costly tasks: the plan comes back (exit 0 in the
    CLI), solved in stages that each fit float64, and its message says so; two criteria that fit
    one weighted sum are solved as one."""
    data = _batch(8, seed=1)
    for gt in data["gpu_types"]:
        gt["cost_per_hour"] *= 1e6
        gt["power_w"] = 300
    kinds = ["placed", "cost", "energy", "nodes_used", "gpus_used", "balance"]
    data["objective"] = {"kind": "lexicographic", "terms": [{"kind": k} for k in kinds]}
    plan = gpuplan.solve(data, time_limit_s=3, workers=1)
    assert plan.status.has_solution and plan.stats["lexicographic_stages"] > 1
    assert "solved in" in plan.message and "'balance'" in plan.message
    data["objective"]["terms"] = [{"kind": "cost"}, {"kind": "gpus_used"}]
    plan = gpuplan.solve(data, time_limit_s=3, workers=1)
    assert "stages" not in plan.message and "lexicographic_stages" not in plan.stats


@pytest.mark.parametrize(("n_tasks", "n_nodes", "seed"), [(80, 6, 1), (150, 10, 3)])
def test_tier_by_tier_with_the_neighbourhood_search_keeps_priorities(
    n_tasks: int, n_nodes: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later tier may move an earlier tier's tasks (required there, not fixed), so a task an
    earlier tier left out can fit where lower-priority work went; the final repair over every tier
    must leave no such task. These batches once failed the verifier (the batch benchmark exited 1)."""
    monkeypatch.setattr(priorities, "EXACT_LIMIT", 0.0)
    monkeypatch.setattr(fleet_strategy, "FLEET_EXACT_PAIRS", 0)
    plan = gpuplan.solve(batch(n_tasks, n_nodes, seed), time_limit_s=2, workers=1)
    assert plan.solver == "tiered"
    assert any(p.startswith("tier") and "lns" in p for p in plan.phases)
