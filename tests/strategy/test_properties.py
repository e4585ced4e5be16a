"""Property tests: every backend against brute force on random tiny instances."""

from __future__ import annotations

import pytest
from hypothesis import assume, given

import gpuplan
from gpuplan import Plan, Status, verify
from gpuplan.status import OPTIMALITY_TOLERANCE
from tests.oracles import matrix_brute_force, priority_brute_force
from tests.strategies import SETTINGS, matrices, prioritized_problems

TIME_LIMIT = 10.0


def solve_and_verify(problem: dict, backend: str) -> Plan:
    """Solve with `backend` and check the plan again, independently."""
    plan = gpuplan.solve(problem, solver=backend, time_limit_s=TIME_LIMIT, workers=1)
    verify(plan, gpuplan.parse_problem(problem))
    return plan


@pytest.mark.parametrize("backend", ["cpsat", "milp", "auto"])
@SETTINGS
@given(m=matrices(cap_max=20))
def test_exact_backends_match_brute_force_when_feasible(backend, m):
    """On feasible instances cpsat, milp and auto are optimal with exactly the brute-force objective."""
    optimum = matrix_brute_force(m)
    assume(optimum is not None)
    plan = solve_and_verify(m, backend)
    assert plan.status is Status.OPTIMAL, plan.message
    assert plan.objective == pytest.approx(optimum, abs=1e-9)
    assert plan.gap <= OPTIMALITY_TOLERANCE  # optimal: within the stated tolerance
    assert len(plan.assignments) == len(m["matrix"]["cost"])


@pytest.mark.parametrize(
    "backend",
    [
        "cpsat",
        "milp",
        "auto",
    ],
)
@SETTINGS
@given(m=matrices(min_tasks=3, cap_max=6, homeless=False))
def test_exact_backends_prove_infeasibility(backend, m):
    """When brute force finds no assignment, exact backends report status infeasible."""
    assume(matrix_brute_force(m) is None)
    plan = solve_and_verify(m, backend)
    assert plan.status is Status.INFEASIBLE
    assert plan.objective is None and not plan.assignments


@SETTINGS
@given(m=matrices())
def test_greedy_never_beats_optimum(m):
    """Greedy's plan is never cheaper than the optimum, and it never claims a wrong infeasibility."""
    optimum = matrix_brute_force(m)
    plan = solve_and_verify(m, "greedy")
    if plan.is_feasible:
        assert optimum is not None
        assert plan.objective >= optimum - 1e-9
        assert plan.status is Status.FEASIBLE
    elif plan.status is Status.INFEASIBLE:
        assert optimum is None
    else:
        assert plan.status is Status.UNKNOWN


# --- Problem form with optional tasks and priorities -------------------------------------------------------


def placed_per_level(plan: Plan, data: dict, levels: list[int]) -> tuple[int, ...]:
    """Number of placed optional tasks per priority level (high to low)."""
    placed = {a.task for a in plan.assignments}
    return tuple(
        sum(1 for t in data["tasks"] if t["optional"] and t["priority"] == lv and t["id"] in placed)
        for lv in levels
    )


@pytest.mark.parametrize("backend", ["cpsat", "milp", "auto"])
@SETTINGS
@given(data=prioritized_problems())
def test_exact_backends_respect_priorities(backend, data):
    """Exact backends place as many top-priority tasks as possible (then tier by tier), at least cost."""
    best = priority_brute_force(data)
    assume(best is not None)
    counts, cost, levels = best
    plan = solve_and_verify(data, backend)
    assert plan.is_feasible
    got = placed_per_level(plan, data, levels)
    if levels:
        assert got[0] == counts[0]
    assert got == counts
    assert plan.placement_cost == pytest.approx(cost, abs=1e-9)
    required = {t["id"] for t in data["tasks"] if not t["optional"]}
    assert required <= {a.task for a in plan.assignments}


@SETTINGS
@given(data=prioritized_problems())
def test_greedy_respects_priority_rule(data):
    """Greedy's plans pass verify's priority rule and never place more top-tier tasks than possible."""
    best = priority_brute_force(data)
    plan = solve_and_verify(data, "greedy")
    if best is None:
        assert not plan.is_feasible
        return
    counts, _, levels = best
    if plan.is_feasible and levels:
        assert placed_per_level(plan, data, levels)[0] <= counts[0]
