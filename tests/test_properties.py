"""Property tests: every backend against brute force on random tiny instances."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import gpuplan
from gpuplan import MatrixProblem, Plan, Problem, Status, verify

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TIME_LIMIT = 10.0


# --- matrix instances ----------------------------------------------------------------------------------


@st.composite
def matrices(
    draw, min_tasks: int = 1, max_tasks: int = 7, max_gpus: int = 3, cap_max: int = 14, homeless: bool = True
) -> dict:
    """A random matrix instance: costs with some nulls, integer loads (1 or 2 resources) and capacities.

    With `homeless=False` every task gets at least one GPU where its cost is given and its loads fit
    the capacities, so any infeasibility has to be proven by the solver rather than by presolve.
    """
    n_t = draw(st.integers(min_tasks, max_tasks))
    n_g = draw(st.integers(1, max_gpus))
    n_r = draw(st.integers(1, 2))
    entry = st.one_of(st.integers(-3, 30), st.integers(0, 40).map(lambda v: v / 4))
    cost = [[None if draw(st.integers(0, 5)) == 0 else draw(entry) for _ in range(n_g)] for _ in range(n_t)]
    loads = [[[draw(st.integers(0, 6)) for _ in range(n_g)] for _ in range(n_t)] for _ in range(n_r)]
    caps = [[draw(st.integers(0, cap_max)) for _ in range(n_g)] for _ in range(n_r)]
    if not homeless:
        for t in range(n_t):
            if not any(
                cost[t][g] is not None and all(loads[r][t][g] <= caps[r][g] for r in range(n_r))
                for g in range(n_g)
            ):
                g = draw(st.integers(0, n_g - 1))
                cost[t][g] = draw(entry)
                for r in range(n_r):
                    loads[r][t][g] = min(loads[r][t][g], caps[r][g])
    for r in range(n_r):
        for t in range(n_t):
            for g in range(n_g):
                if cost[t][g] is None and draw(st.booleans()):
                    loads[r][t][g] = None
    return {
        "matrix": {
            "cost": cost,
            "load": loads[0] if n_r == 1 else loads,
            "capacity": caps[0] if n_r == 1 else caps,
        }
    }


def brute_force(m: dict) -> float | None:
    """Minimum total cost over all assignments of every task to one GPU; None when none is feasible."""
    parsed = MatrixProblem.model_validate(m).matrix
    cost, loads, caps = parsed.cost, parsed.loads(), parsed.capacities()
    n_t, n_g = parsed.n_tasks, parsed.n_gpus
    options = [[g for g in range(n_g) if cost[t][g] is not None] for t in range(n_t)]
    best = None
    for combo in itertools.product(*options):
        used = [[0.0] * n_g for _ in caps]
        ok = True
        for t, g in enumerate(combo):
            for r in range(len(caps)):
                used[r][g] += loads[r][t][g]
                if used[r][g] > caps[r][g]:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            total = sum(cost[t][g] for t, g in enumerate(combo))
            best = total if best is None else min(best, total)
    return best


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
    optimum = brute_force(m)
    assume(optimum is not None)
    plan = solve_and_verify(m, backend)
    assert plan.status is Status.OPTIMAL, plan.message
    assert plan.objective == pytest.approx(optimum, abs=1e-9)
    assert plan.gap == 0
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
    assume(brute_force(m) is None)
    plan = solve_and_verify(m, backend)
    assert plan.status is Status.INFEASIBLE
    assert plan.objective is None and not plan.assignments


@SETTINGS
@given(m=matrices())
def test_greedy_never_beats_optimum(m):
    """Greedy's plan is never cheaper than the optimum, and it never claims a wrong infeasibility."""
    optimum = brute_force(m)
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


@st.composite
def prioritized_problems(draw) -> dict:
    """A tiny Problem: 1-2 GPU types, 1-3 GPUs (all but the first maybe unhealthy), up to 5 tasks."""
    n_types = draw(st.integers(1, 2))
    types = [
        {
            "name": f"T{k}",
            "memory_gb": draw(st.sampled_from([16, 24, 40, 80])),
            "speed": draw(st.sampled_from([1, 2])),
            "cost_per_hour": draw(st.sampled_from([0, 1, 2.5, 3])),
        }
        for k in range(n_types)
    ]
    gpus = [
        {
            "id": f"g{k}",
            "type": draw(st.sampled_from([t["name"] for t in types])),
            "healthy": k == 0 or draw(st.booleans()),
        }
        for k in range(draw(st.integers(1, 3)))
    ]
    tasks = [
        {
            "id": f"t{i}",
            "work_h": draw(st.sampled_from([1, 2, 3, 4])),
            "gpu_share": draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])),
            "gpu_memory_gb": draw(st.sampled_from([0, 8, 16, 30])),
            "optional": draw(st.booleans().map(lambda b: b or draw(st.integers(0, 3)) > 0)),
            "priority": draw(st.integers(0, 2)),
        }
        for i in range(draw(st.integers(1, 5)))
    ]
    problem = {"gpu_types": types, "nodes": [{"id": "n", "gpus": gpus}], "tasks": tasks}
    horizon = draw(st.sampled_from([None, None, 2, 4, 8]))
    if horizon is not None:
        problem["horizon_h"] = horizon
    return problem


def brute_force_priorities(data: dict) -> tuple[tuple[int, ...], float, list[int]] | None:
    """Best (placed optional tasks per priority level, high to low; cost) by enumeration.

    Returns None when the required tasks cannot all be placed.
    """
    p = Problem.model_validate(data)
    types = {t.name: t for t in p.gpu_types}
    gpus = [g for _, g in p.all_gpus()]
    levels = sorted({t.priority for t in p.tasks if t.optional}, reverse=True)
    choices = []
    for task in p.tasks:
        ok = [None] if task.optional else []
        ok += [k for k, g in enumerate(gpus) if g.healthy and task.gpu_memory_gb <= types[g.type].memory_gb]
        choices.append(ok)
    best: tuple[tuple[int, ...], float] | None = None
    for combo in itertools.product(*choices):
        share = [0.0] * len(gpus)
        memory = [0.0] * len(gpus)
        hours = [0.0] * len(gpus)
        cost = 0.0
        for task, k in zip(p.tasks, combo, strict=True):
            if k is None:
                continue
            gt = types[gpus[k].type]
            duration = task.work_h / gt.speed
            share[k] += task.gpu_share
            memory[k] += task.gpu_memory_gb
            hours[k] += duration * task.gpu_share
            cost += duration * task.gpu_share * gt.cost_per_hour
        if p.horizon_h is None:
            fits = all(share[k] <= 1 and memory[k] <= types[g.type].memory_gb for k, g in enumerate(gpus))
        else:
            fits = all(h <= p.horizon_h for h in hours)
        if not fits:
            continue
        counts = tuple(
            sum(
                1
                for t, k in zip(p.tasks, combo, strict=True)
                if t.optional and t.priority == lv and k is not None
            )
            for lv in levels
        )
        key = (tuple(-c for c in counts), cost)
        if best is None or key < (tuple(-c for c in best[0]), best[1]):
            best = (counts, cost)
    return None if best is None else (best[0], best[1], levels)


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
    best = brute_force_priorities(data)
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
    best = brute_force_priorities(data)
    plan = solve_and_verify(data, "greedy")
    if best is None:
        assert not plan.is_feasible
        return
    counts, _, levels = best
    if plan.is_feasible and levels:
        assert placed_per_level(plan, data, levels)[0] <= counts[0]
