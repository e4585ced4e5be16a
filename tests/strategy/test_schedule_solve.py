"""Scheduled problems through `solve`: plans say when, equal the brute force on tiny programs, queue
what does not fit at once, and refuse what the schedule strategy cannot take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

import gpuplan
from gpuplan import InputError, Problem, Status
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.schedule import schedule_program
from tests.oracles import schedule_brute_force
from tests.strategies import scheduled_problems

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "queue.json"


def test_a_batch_larger_than_the_fleet_queues() -> None:
    """Six 3-GPU gangs needing 30 GB on twelve such GPUs: a queue, not 'infeasible'; every gang
    starts and ends together, and no GPU runs two gangs at once (the verifier checks it all)."""
    plan = gpuplan.solve(json.loads(EXAMPLE.read_text()), time_limit_s=10)
    assert plan.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert len(plan.assignments) == 6 and not plan.unassigned
    assert all(a.start_h is not None and a.end_h is not None for a in plan.assignments)
    assert max(a.end_h for a in plan.assignments) > min(a.end_h for a in plan.assignments)  # a queue
    assert plan.stats["criterion_completion_time"] == pytest.approx(plan.objective)


@settings(max_examples=25, deadline=None)
@given(scheduled_problems())
def test_solve_equals_brute_force_on_tiny_schedules(data: dict) -> None:
    """Through the whole pipeline (build, list schedules, CP-SAT, decode, verify), the plan's
    objective is the brute-force optimum over integer start grids."""
    problem = Problem.model_validate(data)
    best = schedule_brute_force(schedule_program(compile_fleet(problem)))
    plan = gpuplan.solve(problem, solver="cpsat", time_limit_s=10, workers=1)
    if best is None:
        assert plan.status is Status.INFEASIBLE
        return
    assert plan.status is Status.OPTIMAL
    assert plan.objective == pytest.approx(best[0], rel=1e-6, abs=1e-6)


def test_greedy_returns_an_event_or_list_schedule() -> None:
    plan = gpuplan.solve(json.loads(EXAMPLE.read_text()), solver="greedy", time_limit_s=5)
    assert plan.solver == "greedy" and plan.phases[0].startswith(("event schedule", "list schedule"))
    assert plan.bound is not None and plan.bound <= plan.objective


def test_milp_refuses_a_schedule() -> None:
    with pytest.raises(InputError, match="'milp' cannot take this program: it is scheduled"):
        gpuplan.solve(json.loads(EXAMPLE.read_text()), solver="milp", time_limit_s=5)


def test_left_out_successor_names_its_predecessor() -> None:
    """b waits for a; a cannot meet its deadline, so both are left out, b for a's sake."""
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": "n", "gpus": [{"id": "g", "type": "A"}]}],
        "tasks": [
            {"id": "a", "work_h": 3, "deadline_h": 2, "optional": True},
            {"id": "b", "work_h": 1, "after": ["a"], "optional": True},
            {"id": "c", "work_h": 1, "release_h": 1},
        ],
        "objective": {"kind": "makespan"},
    }
    plan = gpuplan.solve(data, time_limit_s=5)
    why = {u.task: u.reason for u in plan.unassigned}
    assert why["b"] == "its predecessor 'a' (after) is left out"
    assert "cannot end by 2 h" in why["a"]
    (c,) = plan.assignments
    assert c.start_h == pytest.approx(1.0) and plan.stats["criterion_makespan"] == pytest.approx(2.0)


def test_a_chain_past_its_deadline_is_infeasible_with_the_chain_named() -> None:
    """prep (2 h) -> train (3 h) -> eval (1 h) from a release at 1 h cannot end by 6 h: infeasible
    at once, the message naming the chain and where it ends."""
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 2}}],
        "tasks": [
            {"id": "prep", "work_h": 2, "release_h": 1},
            {"id": "train", "work_h": 3, "after": ["prep"]},
            {"id": "eval", "work_h": 1, "after": ["train"], "deadline_h": 6},
            {"id": "other", "work_h": 1},
        ],
    }
    plan = gpuplan.solve(data, time_limit_s=5)
    assert plan.status is Status.INFEASIBLE and plan.solver == "presolve"
    assert plan.message == (
        "task 'eval' cannot end by 6 h (its deadline_h or the horizon): prep (2 h) -> train (3 h) ->"
        " eval (1 h), from 'prep''s release at 1 h at the fastest GPUs, ends at 7 h"
    )


def test_a_list_schedule_that_meets_the_bound_skips_cpsat() -> None:
    """Twelve 1 h tasks on three GPUs: the list schedule's makespan of 4 h is the work over the
    GPUs, a proof; CP-SAT is not run, and the plan says so (a search on a proven plan once spent
    the whole limit)."""
    problem = {
        "gpu_types": [{"name": "A", "memory_gb": 80}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 3}}],
        "tasks": [{"id": f"t{i}", "duration_h": {"A": 1.0}} for i in range(12)],
        "objective": {"kind": "makespan"},
    }
    plan = gpuplan.solve(problem, time_limit_s=20)
    assert plan.status is Status.OPTIMAL and plan.objective == pytest.approx(4.0)
    assert "cpsat" not in plan.phases and "cpsat_status" not in plan.stats
    assert "meets the bound" in plan.solver_reason
