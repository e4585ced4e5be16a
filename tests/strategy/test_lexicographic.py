"""Lexicographic objectives at any size: too wide for one weighted sum, they are solved in stages
(`solve_lexicographic`), each holding the stages before it; the result is the exact lexicographic
optimum (brute force), priorities stay first, and the plan says how it was solved."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuplan
from gpuplan.models import Problem
from gpuplan.program import lexicographic, priorities
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.lexicographic import LEXICOGRAPHIC_EXACT, lexicographic_stages, one_stage_span
from tests.oracles import lexicographic_key, lexicographic_optimum
from tests.strategies import lexicographic_fleets

ALL_SIX = ["placed", "cost", "energy", "nodes_used", "gpus_used", "balance"]


def _assignment(problem: Problem, plan: gpuplan.Plan) -> np.ndarray:
    """The plan's GPUs as an assignment [T, K] of the problem's fleet program."""
    c = compile_fleet(problem, flat_tiers=True)
    gpu = {g: i for i, g in enumerate(c.gpu_ids)}
    row = {t: i for i, t in enumerate(c.task_ids)}
    assign = c.program.empty_assign()
    for a in plan.assignments:
        assign[row[a.task], : len(a.gpus)] = [gpu[g] for g in a.gpus]
    return assign


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))


def test_stages_cut_the_levels_into_exact_spans() -> None:
    """Consecutive stages, every level once in order, each stage's span within the limit; one
    stage when everything fits (the weights of one weighted sum, unchanged)."""
    levels = ALL_SIX
    rng = {"placed": 4.0, "cost": 10.0, "energy": 2.0, "nodes_used": 2.0, "gpus_used": 3.0, "balance": 1.0}
    unit = {"placed": 1.0, "cost": 1e-5, "energy": 2e-6, "nodes_used": 1.0, "gpus_used": 1.0, "balance": 1e-3}
    stages = lexicographic_stages(levels, rng, unit)
    assert len(stages) > 1 and one_stage_span(levels, rng, unit) > LEXICOGRAPHIC_EXACT
    assert [k for s in stages for k in s] == levels
    for s in stages:
        last = list(s)[-1]
        assert s[last] == 1.0
        assert sum(w * rng[k] for k, w in s.items()) / unit[last] <= LEXICOGRAPHIC_EXACT
    (one,) = lexicographic_stages(["cost", "gpus_used"], rng, unit)
    assert one == {"cost": 1.0 + 3.0 / 1e-5, "gpus_used": 1.0}


def test_six_criteria_are_past_float64_even_when_tiny() -> None:
    """placed x gpus x nodes x 1e3 x 1e6 x 1e6 units: a tiny fleet already needs several stages,
    and every stage's program weighs only its own levels."""
    problem = Problem.model_validate(_wrong_plan_instance())
    c = compile_fleet(problem)
    assert c.stages > 1 and c.span_units > LEXICOGRAPHIC_EXACT
    weighed = [[k for k, w in compile_fleet(problem, stage=s).terms if w > 0] for s in range(c.stages)]
    assert [k for ks in weighed for k in ks] == [t.kind for t in problem.objective.terms]


def _wrong_plan_instance() -> dict:
    """Equal in every criterion but the last: one node, a full task on one GPU and two halves that
    share a GPU (2 GPUs used) or not (3): only 'gpus_used', sixth of six, tells them apart."""
    return {
        "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 3.0, "power_w": 300}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 3}}],
        "tasks": [
            {"id": "full", "work_h": 2.0, "gpu_share": 1.0},
            {"id": "half1", "work_h": 1.0, "gpu_share": 0.5},
            {"id": "half2", "work_h": 1.0, "gpu_share": 0.5},
        ],
        "objective": {
            "kind": "lexicographic",
            "terms": [{"kind": k} for k in [*ALL_SIX[:4], "balance", "gpus_used"]],
        },
    }


@pytest.mark.parametrize("solver", ["cpsat", "greedy", "auto"])
def test_the_last_of_six_criteria_still_decides(solver: str) -> None:
    """Fails with one float-weighted sum: it cannot see one GPU fewer under weights of 1e18."""
    data = _wrong_plan_instance()
    plan = gpuplan.solve(data, solver=solver, time_limit_s=4, workers=1)
    assert plan.status.has_solution
    assert plan.stats["criterion_gpus_used"] == 2.0
    assert plan.solver == "staged" and plan.stats["lexicographic_stages"] > 1
    assert plan.stats["build_s"] > 0 and plan.stats["verify_s"] > 0  # where the time went
    assert f"solved in {plan.stats['lexicographic_stages']} stages" in plan.message
    assert "float64" in plan.message and "weighed only as far" not in plan.message
    if solver == "cpsat":
        assert plan.status is gpuplan.Status.OPTIMAL
        assert all(plan.stats[f"stage{k + 1}_proven"] for k in range(plan.stats["lexicographic_stages"]))


def test_the_float_weighted_sum_picked_the_wrong_plan() -> None:
    """Regression (found by the property below against one weighted sum): six criteria spanning
    about 1e22 units of 'balance'; the single weighted sum could not see balance 0.75 beside 1.0
    and returned the worse plan. Solved in stages, the last criterion is optimal too."""
    task = {"gpus": 1, "optional": True}
    data = {
        "gpu_types": [
            {"name": "A", "memory_gb": 40, "cost_per_hour": 2.0, "power_w": 300},
            {"name": "B", "memory_gb": 80, "speed": 2.0, "cost_per_hour": 3.0, "power_w": 200},
        ],
        "nodes": [{"id": "n0", "gpu_counts": {"A": 2, "B": 1}}, {"id": "n1", "gpu_counts": {"A": 1}}],
        "tasks": [
            {**task, "id": "t0", "gpu_share": 0.5, "work_h": 1.0},
            {**task, "id": "t1", "gpu_share": 0.5, "work_h": 3.0},
            {**task, "id": "t2", "gpu_share": 0.25, "work_h": 2.0},
        ],
        "objective": {
            "kind": "lexicographic",
            "terms": [{"kind": k} for k in ALL_SIX],
            "placed_weight": "work",
        },
    }
    problem = Problem.model_validate(data)
    best = lexicographic_optimum(problem)
    assert best == pytest.approx((0.0, 4.0, 0.0525, 1.0, 2.0, 0.75))
    plan = gpuplan.solve(data, solver="cpsat", time_limit_s=6, workers=1)
    assert _close(lexicographic_key(problem, _assignment(problem, plan)), best)
    assert plan.stats["criterion_max_utilization"] == 0.75
    assert plan.status is gpuplan.Status.OPTIMAL


@settings(max_examples=25, deadline=None)
@given(problem=lexicographic_fleets())
def test_staged_result_is_the_brute_force_lexicographic_optimum(problem: Problem) -> None:
    """Tiny random fleets, 2-6 criteria in random order, split into stages as far as they go (every
    level its own stage): the plan's criteria are the lexicographic optimum."""
    best = lexicographic_optimum(problem)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lexicographic, "LEXICOGRAPHIC_EXACT", 0.0)
        plan = gpuplan.solve(problem.model_dump(mode="json"), solver="cpsat", time_limit_s=20, workers=1)
    if best is None:
        assert not plan.status.has_solution
        return
    assert plan.status.has_solution
    got = lexicographic_key(problem, _assignment(problem, plan))
    assert _close(got, best), (got, best)
    assert plan.status is gpuplan.Status.OPTIMAL


@settings(max_examples=15, deadline=None)
@given(problem=lexicographic_fleets(ALL_SIX))
def test_all_six_criteria_reach_the_lexicographic_optimum(problem: Problem) -> None:
    """Six criteria, cut into stages by the float64 limit itself."""
    best = lexicographic_optimum(problem)
    plan = gpuplan.solve(problem.model_dump(mode="json"), solver="cpsat", time_limit_s=20, workers=1)
    if best is None:
        return
    got = lexicographic_key(problem, _assignment(problem, plan))
    assert _close(got, best), (got, best)


@settings(max_examples=15, deadline=None)
@given(problem=lexicographic_fleets(), seed=st.integers(0, 3))
def test_heuristic_stages_never_trade_an_earlier_stage(problem: Problem, seed: int) -> None:
    """Greedy stages too: the plan is lexicographically no worse than stage 1's own result (its
    first-stage objective is at most what stage 1 reported)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lexicographic, "LEXICOGRAPHIC_EXACT", 0.0)
        data = problem.model_dump(mode="json")
        staged = compile_fleet(problem).stages > 1  # not when the criteria are constant (range 0)
        plan = gpuplan.solve(data, solver="greedy", time_limit_s=4, workers=1, seed=seed)
    if not plan.status.has_solution:
        return
    assert (plan.solver == "staged") == staged
    if not staged:
        return
    assert plan.objective == pytest.approx(plan.stats["stage1_objective"])
    assert plan.warm_start_objective is not None
    assert plan.objective <= plan.warm_start_objective * (1 + 1e-9) + 1e-9  # stage 1 never traded


def test_priorities_stay_above_every_criterion() -> None:
    """A high-priority optional task is placed even though every criterion prefers it out."""
    data = _wrong_plan_instance()
    data["tasks"] = [
        {"id": "low", "work_h": 1.0, "gpu_share": 1.0, "optional": True, "priority": 0},
        {"id": "high", "work_h": 8.0, "gpu_share": 1.0, "optional": True, "priority": 5},
    ]
    data["nodes"] = [{"id": "n", "gpu_counts": {"A": 1}}]
    kinds = ["cost", "energy", "nodes_used", "balance", "gpus_used"]
    data["objective"]["terms"] = [{"kind": k} for k in kinds]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lexicographic, "LEXICOGRAPHIC_EXACT", 0.0)
        plan = gpuplan.solve(data, solver="cpsat", time_limit_s=4, workers=1)
    assert plan.stats["lexicographic_stages"] == 5
    assert [a.task for a in plan.assignments] == ["high"]


def test_a_stage_bound_is_not_claimed_for_the_objective() -> None:
    """Stage 1 proven, a later stage cut short: no bound (stage 1's would claim optimality)."""
    data = _wrong_plan_instance()
    plan = gpuplan.solve(data, solver="greedy", time_limit_s=2, workers=1)
    stages = plan.stats["lexicographic_stages"]
    proven = [plan.stats[f"stage{k + 1}_proven"] for k in range(stages)]
    if all(proven):
        assert plan.status is gpuplan.Status.OPTIMAL
    elif proven[0]:
        assert plan.bound is None and plan.status is gpuplan.Status.FEASIBLE and "no bound" in plan.message
    else:
        assert plan.status is gpuplan.Status.FEASIBLE


def test_tiers_too_wide_and_stages_together() -> None:
    """Priority tiers too wide to weigh and a lexicographic objective too wide for one sum: tier by
    tier, each tier's stage solved in lexicographic stages; the plan is verified and says both."""
    data = _wrong_plan_instance()
    data["nodes"] = [{"id": "n", "gpu_counts": {"A": 2}}]
    data["tasks"] = [
        {"id": f"t{i}", "work_h": 1.0 + i, "gpu_share": 0.5, "optional": True, "priority": i % 3}
        for i in range(6)
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(priorities, "EXACT_LIMIT", 0.0)
        plan = gpuplan.solve(data, solver="cpsat", time_limit_s=6, workers=1)
    assert plan.solver == "tiered" and plan.status.has_solution
    assert plan.stats["lexicographic_stages"] > 1 and "stages" in plan.message
    assert sorted(a.task for a in plan.assignments) == ["t1", "t2", "t4", "t5"]  # priorities 1 and 2


def test_a_criterion_that_never_changes_does_not_split_stages() -> None:
    """Regression: lexicographic [cost, energy] on GPUs drawing no power made energy's range 0, its
    unit 1e-18, and so a second stage whose weight 0 the verifier refused (found by the priority
    repair's property test)."""
    from gpuplan.program.lexicographic import lexicographic_stages

    rng = {"cost": 10.0, "energy": 0.0}
    unit = {"cost": 1e-5, "energy": 1e-18}
    assert lexicographic_stages(["cost", "energy"], rng, unit) == [{"cost": 1.0, "energy": 1.0}]
    assert lexicographic_stages(["energy", "cost"], rng, unit) == [{"energy": 1.0, "cost": 1.0}]
