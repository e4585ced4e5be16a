"""The scheduled CP-SAT model against brute force over integer start grids on tiny programs, plus
hand-made cases for its scaling of time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from gpuplan.backends.schedule_cpsat import LNS_MIN_S, ScheduleResult, solve_schedule_cpsat
from gpuplan.heuristics.list_schedule import best_of
from gpuplan.program.schedule import ScheduleProgram, lower_bound, objective, violations
from gpuplan.status import Status
from tests.oracles import schedule_brute_force
from tests.strategies import job_shop, on_first_cpsat_solve, random_schedule, schedule_of, scheduled_programs

INF = float("inf")


def solve(sp: ScheduleProgram, hint: tuple[np.ndarray, np.ndarray] | None = None) -> ScheduleResult:
    return solve_schedule_cpsat(sp, time_limit=20.0, workers=1, seed=0, hint=hint)


@settings(max_examples=25, deadline=None)
@given(scheduled_programs())
def test_cpsat_matches_brute_force(sp: ScheduleProgram) -> None:
    """Status, objective and bound agree with exhaustive search; every plan has no violations."""
    res = solve(sp)
    ref = schedule_brute_force(sp)
    if ref is None:
        assert res.status is Status.INFEASIBLE, (res.stats, res.note)
        return
    best = ref[0]
    tol = 1e-6 * max(1.0, abs(best))
    assert res.status is Status.OPTIMAL, (res.stats, res.note)
    assert violations(sp, res.assign, res.start) == []
    assert res.objective == pytest.approx(objective(sp, res.assign, res.start), rel=1e-12, abs=1e-12)
    assert res.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
    assert res.bound is not None and res.bound <= best + tol
    assert lower_bound(sp) <= best + tol


@settings(max_examples=15, deadline=None)
@given(scheduled_programs())
def test_hint_is_kept_when_better(sp: ScheduleProgram) -> None:
    """Hinted with the best list schedule, the answer is feasible and no worse than the hint."""
    assign, start = best_of(sp)
    res = solve(sp, hint=(assign, start))
    if violations(sp, assign, start):
        return
    assert res.status.has_solution
    assert violations(sp, res.assign, res.start) == []
    assert res.objective <= objective(sp, assign, start) + 1e-9


TYPES = [{"name": "A", "memory_gb": 80, "cost_per_hour": 1.0}]


def problem(tasks: list[dict], gpus: int = 1, cpu: float | None = None) -> dict:
    return {
        "gpu_types": TYPES,
        "nodes": [{"id": "n", "gpu_counts": {"A": gpus}, "cpu_cores": cpu}],
        "tasks": tasks,
    }


def test_thirds_of_an_hour_round_up_and_give_no_model_bound() -> None:
    """Durations of 1/3 h cannot be scaled exactly: they are rounded up (the plan stays feasible) and
    the bound is the cheap one, which the note says."""
    tasks = [{"id": f"t{i}", "duration_h": {"A": 1 / 3}} for i in range(3)]
    sp = schedule_of(problem(tasks), [0, 0, 0], [INF] * 3, [INF] * 3, [1, 1, 1], [], w=(1, 0, 0))
    res = solve(sp)
    assert violations(sp, res.assign, res.start) == []
    assert res.objective is not None
    assert res.status is Status.FEASIBLE
    assert res.stats["cpsat_time_exact"] is False
    assert "rounded up" in res.note
    assert res.bound == pytest.approx(sp.fleet.objective(res.assign) + lower_bound(sp), rel=1e-9)
    assert res.bound <= res.objective


def test_chain_on_one_gpu_with_release_and_deadline() -> None:
    """b after a, a released at 1; c's deadline makes it go first: c [0, 1), a [1, 3), b [3, 4)."""
    tasks = [
        {"id": "a", "duration_h": {"A": 2}},
        {"id": "b", "duration_h": {"A": 1}},
        {"id": "c", "duration_h": {"A": 1}},
    ]
    sp = schedule_of(problem(tasks), [1, 0, 0], [INF, INF, 1], [INF] * 3, [1, 1, 1], [(0, 1)], w=(1, 0, 0))
    res = solve(sp)
    assert res.status is Status.OPTIMAL
    assert res.start.tolist() == [1.0, 3.0, 0.0]
    assert res.objective == pytest.approx(sp.fleet.objective(res.assign) + 4.0)


def test_optional_successor_of_a_dropped_task_is_dropped() -> None:
    """a cannot meet its deadline and is optional, so its successor b (optional) is left out too."""
    tasks = [
        {"id": "a", "duration_h": {"A": 2}, "optional": True},
        {"id": "b", "duration_h": {"A": 1}, "optional": True},
    ]
    sp = schedule_of(problem(tasks), [0, 0], [1, INF], [INF] * 2, [1, 1], [(0, 1)])
    res = solve(sp)
    assert res.status is Status.OPTIMAL
    assert (res.assign[:, 0] < 0).all()
    assert np.isnan(res.start).all()


def test_required_successor_of_an_impossible_task_is_infeasible() -> None:
    tasks = [
        {"id": "a", "duration_h": {"A": 2}, "optional": True},
        {"id": "b", "duration_h": {"A": 1}},
    ]
    sp = schedule_of(problem(tasks), [0, 0], [1, INF], [INF] * 2, [1, 1], [(0, 1)])
    assert solve(sp).status is Status.INFEASIBLE


def test_random_fleet_plan_is_valid_and_no_worse_than_its_hint() -> None:
    """20 random tasks with gangs, shares, CPU and host memory, chains and float releases (time
    rounded, so no model bound): the plan breaks no rule and improves on the list schedule or keeps it."""
    sp = random_schedule(20, 2, seed=5, deadlines=True)
    hint = best_of(sp)
    assert violations(sp, *hint) == []
    res = solve_schedule_cpsat(sp, time_limit=5.0, workers=1, seed=0, hint=hint)
    assert res.status.has_solution
    assert violations(sp, res.assign, res.start) == []
    assert res.objective <= objective(sp, *hint) + 1e-9
    assert res.bound is not None and res.bound <= res.objective


def test_unproven_search_goes_on_with_neighbourhoods_from_its_schedule() -> None:
    """A job shop the first part cannot prove: the rest of the time searches neighbourhoods from its
    schedule, and the answer is no worse than that schedule, valid, with the first part's bound."""
    sp = job_shop(jobs=12, machines=4, ops=6, seed=1)
    hint = best_of(sp)
    res = solve_schedule_cpsat(sp, time_limit=3.0, workers=1, seed=0, hint=hint)
    assert res.stats["cpsat_status"] == "FEASIBLE", res.stats
    assert res.stats["cpsat_lns_status"] in ("FEASIBLE", "OPTIMAL"), res.stats
    assert res.objective is not None and res.objective <= res.stats["cpsat_first_objective"]
    assert violations(sp, res.assign, res.start) == []
    assert res.bound is not None and lower_bound(sp) - 1e-6 <= res.bound <= res.objective


def test_first_part_without_a_schedule_leaves_the_rest_to_the_full_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first part that ends with no schedule (here: stopped after presolve) does not end the solve:
    the rest of the time is the full search, which finds and proves the small job shop's optimum."""
    calls = on_first_cpsat_solve(monkeypatch, stop_after_presolve=True)
    sp = job_shop(jobs=3, machines=2, ops=2, seed=0)
    res = solve_schedule_cpsat(sp, time_limit=10.0, workers=1, seed=0)
    assert res.stats["cpsat_status"] == "UNKNOWN" and res.stats["cpsat_rest_status"] == "OPTIMAL"
    assert len(calls) == 2 and "cpsat_lns_status" not in res.stats
    assert res.status is Status.OPTIMAL and violations(sp, res.assign, res.start) == []


def test_a_neighbourhood_search_that_ends_early_leaves_the_rest_to_the_full_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The neighbourhood-only part ending before its time (here: stopped after presolve) does not end
    the solve: the rest is the full search from the first part's schedule, and no worse than it."""
    from gpuplan.backends import schedule_cpsat

    real = schedule_cpsat.solve_cpsat
    calls: list[bool] = []

    def lns_stops_after_presolve(solver: Any, model: Any, callback: Any = None) -> Any:
        calls.append(bool(solver.parameters.use_lns_only))
        if solver.parameters.use_lns_only:
            solver.parameters.stop_after_presolve = True
        return real(solver, model, callback)

    monkeypatch.setattr(schedule_cpsat, "solve_cpsat", lns_stops_after_presolve)
    sp = job_shop(jobs=12, machines=4, ops=6, seed=1)
    res = solve_schedule_cpsat(sp, time_limit=3.0, workers=1, seed=0, hint=best_of(sp))
    assert calls == [False, True, False], res.stats
    assert res.stats["cpsat_lns_status"] == "UNKNOWN" and res.stats["cpsat_lns_s"] < 1.0
    assert res.stats["cpsat_rest_status"] in ("FEASIBLE", "OPTIMAL") and res.stats["cpsat_rest_s"] > 1.0
    assert res.objective is not None and res.objective <= res.stats["cpsat_first_objective"]
    assert violations(sp, res.assign, res.start) == []


def test_short_or_proven_solve_is_one_full_search() -> None:
    """Below LNS_MIN_S, or when the first part proves the optimum, no neighbourhood-only part runs."""
    sp = job_shop(jobs=12, machines=4, ops=6, seed=1)
    short = solve_schedule_cpsat(sp, time_limit=LNS_MIN_S / 2, workers=1, seed=0, hint=best_of(sp))
    assert "cpsat_lns_status" not in short.stats
    tiny = job_shop(jobs=2, machines=2, ops=2, seed=0)
    proven = solve_schedule_cpsat(tiny, time_limit=10.0, workers=1, seed=0)
    assert proven.status is Status.OPTIMAL
    assert "cpsat_lns_status" not in proven.stats


def test_a_first_schedule_that_meets_the_bounds_ends_the_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first part stopped at its first schedule (the optimal hint), which the cheap bound proves
    (12 GPU-hours at 1 per hour, plus the work over the GPUs for the makespan): no time-indexed
    bound, no further search, OPTIMAL."""
    from gpuplan.backends import schedule_cpsat

    real = schedule_cpsat.solve_cpsat
    calls: list[str] = []

    def first_stops_at_a_schedule(solver: Any, model: Any, callback: Any = None) -> Any:
        # at its first schedule, with no presolve and no LP, CP-SAT has not proved it yet
        solver.parameters.stop_after_first_solution = True
        solver.parameters.cp_model_presolve = False
        solver.parameters.linearization_level = 0
        calls.append("solve")
        return real(solver, model, callback)

    monkeypatch.setattr(schedule_cpsat, "solve_cpsat", first_stops_at_a_schedule)
    tasks = [{"id": f"t{i}", "duration_h": {"A": 1.0}} for i in range(12)]
    sp = schedule_of(problem(tasks, gpus=3), [0] * 12, [INF] * 12, [INF] * 12, [1] * 12, [], w=(1, 0, 0))
    res = solve_schedule_cpsat(sp, time_limit=20.0, workers=1, seed=0, hint=best_of(sp))
    if res.stats["cpsat_status"] == "OPTIMAL":
        pytest.skip("CP-SAT proved the first schedule itself")
    assert res.stats["cpsat_status"] == "FEASIBLE" and res.stats["cpsat_closed_by"] == "bounds", res.stats
    assert len(calls) == 1 and "cpsat_ti_status" not in res.stats and "cpsat_lns_status" not in res.stats
    assert res.status is Status.OPTIMAL and res.objective == pytest.approx(12.0 + 4.0)  # cost + makespan


def test_a_search_stops_at_a_schedule_the_bound_proves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The searches after the first part stop at the first schedule the cheap bound proves (12
    one-hour tasks on 3 GPUs: cost 12 plus makespan 4) instead of running out their time."""
    from gpuplan.backends import schedule_cpsat

    real = schedule_cpsat.solve_cpsat
    calls: list[bool] = []

    def first_is_poor(solver: Any, model: Any, callback: Any = None) -> Any:
        if not calls:  # no presolve, no LP, first schedule: not proven, and likely not optimal
            solver.parameters.stop_after_first_solution = True
            solver.parameters.cp_model_presolve = False
            solver.parameters.linearization_level = 0
        calls.append(callback is not None)
        return real(solver, model, callback)

    monkeypatch.setattr(schedule_cpsat, "solve_cpsat", first_is_poor)
    tasks = [{"id": f"t{i}", "duration_h": {"A": 1.0}} for i in range(12)]
    sp = schedule_of(problem(tasks, gpus=3), [0] * 12, [INF] * 12, [INF] * 12, [1] * 12, [], w=(1, 0, 0))
    res = solve_schedule_cpsat(sp, time_limit=20.0, workers=1, seed=0)
    assert res.status is Status.OPTIMAL and res.objective == pytest.approx(16.0), res.stats
    # the time-indexed bound runs in a thread beside the search and may prove 4 first (seen once
    # under load): either way the search stops at the proven schedule
    assert res.stats.get("cpsat_closed_by") in ("bounds", "time-indexed bound"), res.stats
    assert "cpsat_rest_status" not in res.stats
    if "cpsat_lns_status" in res.stats:  # the first schedule was not optimal: the search stopped
        assert calls == [False, True] and res.stats["cpsat_lns_s"] < 10, res.stats
