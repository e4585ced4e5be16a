"""One battery of reference problems, run against every backend.

Exact backends (cpsat, milp, auto) must reach the known optimum; greedy must return a feasible
plan no better than the optimum. Every plan is checked again with `verify`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import gpuplan
from gpuplan import MatrixProblem, Plan, Problem, Status, verify
from gpuplan.status import OPTIMALITY_TOLERANCE
from tests.oracles import matrix_brute_force

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "examples" / "cluster.json"

BACKENDS = ["greedy", "cpsat", "milp", "auto"]
EXACT = {"cpsat", "milp", "auto"}
# For problems that only a solver (not presolve) can prove infeasible.
BACKENDS_PROVING_INFEASIBILITY = [
    "greedy",
    "cpsat",
    "milp",
    "auto",
]
TIME_LIMIT = 5.0


def run(problem: dict | Problem | MatrixProblem, backend: str, **kwargs: object) -> Plan:
    """Solve with `backend`, check the plan independently, and return it."""
    kwargs.setdefault("time_limit_s", TIME_LIMIT)
    plan = gpuplan.solve(problem, solver=backend, **kwargs)
    source = gpuplan.parse_problem(problem) if isinstance(problem, dict) else problem
    verify(plan, source)
    assert plan.solver_requested == backend
    return plan


def assert_reaches(plan: Plan, backend: str, optimum: float, greedy_finds: bool = True) -> None:
    """Exact backends prove the optimum; greedy is feasible and no better than it.

    Greedy never backtracks, so on some tight instances (`greedy_finds=False`) it may find no plan:
    it must then say `unknown`, never `infeasible`.
    """
    if backend == "greedy" and not greedy_finds and plan.status is Status.UNKNOWN:
        assert plan.objective is None
        return
    if backend in EXACT:
        assert plan.status is Status.OPTIMAL, plan.message
        assert plan.objective == pytest.approx(optimum, abs=1e-9)
        assert plan.gap <= OPTIMALITY_TOLERANCE  # optimal: within the stated tolerance
        assert plan.bound is not None and plan.bound <= plan.objective + 1e-9
    else:
        assert plan.status is Status.FEASIBLE
        assert plan.objective >= optimum - 1e-9
        assert plan.solver == "greedy"


def placement(plan: Plan) -> dict[str, str]:
    """task id -> GPU id of a plan."""
    return {a.task: a.gpus[0] for a in plan.assignments}


# --- matrix instances with known optima --------------------------------------------------------------

MATRIX_CASES = {
    # classic 3x3 assignment (unit loads, unit capacities): optimum 1 + 2 + 2
    "assignment3x3": (
        {"cost": [[4, 1, 3], [2, 0, 5], [3, 2, 2]], "load": [[1] * 3] * 3, "capacity": [1, 1, 1]},
        5.0,
        {"0": "1", "1": "0", "2": "2"},
    ),
    # the cheap GPU can take only one task: the task that loses least on the dear GPU moves
    "capacity_forces_choice": (
        {"cost": [[1, 2], [1, 10]], "load": [[1, 1], [1, 1]], "capacity": [1, 1]},
        3.0,
        {"0": "1", "1": "0"},
    ),
    # null entries and ids: a must go to y (filling it), so b and c share x
    "nulls_and_ids": (
        {
            "cost": [[None, 3], [2, 4], [1, None]],
            "load": [[None, 2], [2, 2], [1, None]],
            "capacity": [3, 2],
            "task_ids": ["a", "b", "c"],
            "gpu_ids": ["x", "y"],
        },
        6.0,
        {"a": "y", "b": "x", "c": "x"},
    ),
    # loads differ per GPU; decimal costs (exact scaling by 100)
    "heterogeneous_loads_decimals": (
        {
            "cost": [[1.25, 2.5], [0.75, 3.0], [2.0, 0.5], [1.5, 1.0]],
            "load": [[3, 1], [2, 2], [2, 3], [1, 2]],
            "capacity": [5, 4],
        },
        # t0->1 (2.5) t1->0 (0.75) t2->1 (0.5) t3->0 (1.5): loads 3/5 and 4/4; runner-up 6.25
        5.25,
        {"0": "1", "1": "0", "2": "1", "3": "0"},
    ),
    # two resources: only the pair {A, B} fits on the cheap GPU in both dimensions at once
    "two_resources": (
        {
            "cost": [[1, 10], [1, 10], [1, 10]],
            "load": [[[3, 3], [1, 1], [2, 2]], [[1, 1], [3, 3], [2, 2]]],
            "capacity": [[4, 100], [4, 100]],
            "task_ids": ["A", "B", "C"],
            "gpu_ids": ["cheap", "dear"],
        },
        12.0,
        {"A": "cheap", "B": "cheap", "C": "dear"},
    ),
    # negative costs are allowed in the matrix form
    "negative_costs": (
        {"cost": [[-5, 1], [-4, -1], [0, 2]], "load": [[2, 1], [2, 1], [1, 1]], "capacity": [3, 2]},
        -6.0,
        {"0": "0", "1": "1", "2": "0"},
    ),
}

# Cases where greedy's one pass (cheapest GPU with room) paints itself into a corner.
GREEDY_MAY_FAIL = {"heterogeneous_loads_decimals"}


@pytest.mark.parametrize("case", list(MATRIX_CASES))
def test_reference_optima_are_right(case):
    """The hand-computed optima of the battery agree with brute force."""
    m, optimum, _ = MATRIX_CASES[case]
    assert matrix_brute_force({"matrix": m}) == pytest.approx(optimum)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(MATRIX_CASES))
def test_matrix_reference_optimum(backend, case):
    """Each backend solves the matrix reference instances (exact ones to the known optimum)."""
    m, optimum, expected = MATRIX_CASES[case]
    plan = run({"matrix": m}, backend)
    assert_reaches(plan, backend, optimum, greedy_finds=case not in GREEDY_MAY_FAIL)
    if not plan.is_feasible:
        return
    assert not plan.unassigned
    assert plan.placement_cost == pytest.approx(plan.objective)
    assert plan.penalty == 0
    if backend in EXACT:
        assert placement(plan) == expected
    costs = {a.task: a.cost for a in plan.assignments}
    assert sum(costs.values()) == pytest.approx(plan.objective)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_model_input_accepted(backend):
    """solve() takes a MatrixProblem model as well as its dict form."""
    m, optimum, _ = MATRIX_CASES["assignment3x3"]
    plan = run(MatrixProblem.model_validate({"matrix": m}), backend)
    assert_reaches(plan, backend, optimum)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_gpu_usage_reported(backend):
    """The plan's per-GPU usage adds up the loads placed on each GPU."""
    m, _, _ = MATRIX_CASES["two_resources"]
    plan = run({"matrix": m}, backend)
    usage = {u.gpu: u for u in plan.gpus}
    assert set(usage) == {"cheap", "dear"}
    for u in plan.gpus:
        assert u.tasks == sum(1 for a in plan.assignments if a.gpus == [u.gpu])
        for r, used in u.used.items():
            assert used <= u.capacity[r] + 1e-9
    if backend in EXACT:
        assert usage["cheap"].used == {"load0": 4.0, "load1": 4.0}
        assert usage["cheap"].utilization == 1.0


@pytest.mark.parametrize("backend", BACKENDS_PROVING_INFEASIBILITY)
def test_infeasible_matrix(backend):
    """Three unit tasks on two unit GPUs: exact backends prove infeasibility, greedy says unknown."""
    m = {"matrix": {"cost": [[1, 2]] * 3, "load": [[1, 1]] * 3, "capacity": [1, 1]}}
    plan = run(m, backend)
    assert plan.status is (Status.UNKNOWN if backend == "greedy" else Status.INFEASIBLE)
    assert plan.objective is None
    assert not plan.assignments
    assert {u.task for u in plan.unassigned} == {"0", "1", "2"}
    if backend != "greedy":
        assert all("proven infeasible" in u.reason for u in plan.unassigned)


@pytest.mark.parametrize("backend", BACKENDS)
def test_required_task_with_no_eligible_gpu(backend):
    """A required task with only null costs makes the problem infeasible; its reason says why."""
    m = {
        "matrix": {
            "cost": [[1, 2], [None, None]],
            "load": [[1, 1], [None, None]],
            "capacity": [1, 1],
            "task_ids": ["ok", "homeless"],
        }
    }
    plan = run(m, backend)
    assert plan.status is Status.INFEASIBLE
    assert plan.objective is None and not plan.assignments
    reasons = {u.task: u.reason for u in plan.unassigned}
    assert "null" in reasons["homeless"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_required_task_too_big_for_every_gpu(backend):
    """A required task whose load exceeds every capacity is infeasible, and the reason says so."""
    m = {"matrix": {"cost": [[1, 2], [1, 1]], "load": [[1, 1], [5, 6]], "capacity": [4, 4]}}
    plan = run(m, backend)
    assert plan.status is Status.INFEASIBLE
    assert "exceeds the capacity" in {u.task: u.reason for u in plan.unassigned}["1"]


# --- Problem form ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> dict:
    """examples/cluster.json as a dict."""
    return json.loads(CLUSTER.read_text())


@pytest.mark.parametrize("backend", BACKENDS)
def test_cluster_example(cluster, backend):
    """examples/cluster.json solves on every backend with all rules respected."""
    problem = Problem.model_validate(cluster)
    plan = run(problem, backend)
    assert plan.is_feasible
    tasks = {t.id: t for t in problem.tasks}
    placed = placement(plan)
    for t in problem.tasks:
        if not t.optional:
            assert t.id in placed
    # hopper-1/gpu2 is over the 85 C limit and hopper-1/gpu3 is unhealthy
    assert not {"hopper-1/gpu2", "hopper-1/gpu3"} & set(placed.values())
    # horizon: each GPU's tasks fit in 24 h
    hours: dict[str, float] = {}
    for a in plan.assignments:
        hours[a.gpus[0]] = hours.get(a.gpus[0], 0.0) + a.duration_h * tasks[a.task].gpu_share
        assert a.gpu_type in (tasks[a.task].allowed_types or [a.gpu_type])
    assert max(hours.values()) <= 24 + 1e-9
    reasons = {u.task: u.reason for u in plan.unassigned}
    assert "needs 96 GB" in reasons["llm-serve-xl"]
    assert "80 GB" in reasons["llm-serve-xl"]
    if backend in EXACT:
        greedy = gpuplan.solve(problem, solver="greedy", time_limit_s=TIME_LIMIT)
        assert plan.objective <= greedy.objective + 1e-9


def test_cluster_example_from_dict_with_options(cluster):
    """A dict problem uses its own options (solver) when no argument overrides them."""
    data = dict(cluster, options={"solver": "greedy", "time_limit_s": 3})
    plan = gpuplan.solve(data)
    assert plan.solver_requested == "greedy"
    assert plan.solver == "greedy"


def fleet(*gpus: dict, types: list[dict] | None = None, **extra: object) -> dict:
    """A Problem dict with one node holding the given GPUs (default type A: 80 GB, price 1)."""
    return {
        "gpu_types": types or [{"name": "A", "memory_gb": 80, "cost_per_hour": 1}],
        "nodes": [{"id": "n", "gpus": list(gpus)}],
        **extra,
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_priorities_drop_lowest_first(backend):
    """An overloaded fleet drops the lowest-priority optional work, never higher-priority work."""
    tasks = [
        {"id": "req", "work_h": 1, "gpu_share": 0.5},
        {"id": "hi", "work_h": 9, "gpu_share": 1.0, "optional": True, "priority": 3},
        {"id": "mid1", "work_h": 2, "gpu_share": 0.5, "optional": True, "priority": 2},
        {"id": "mid2", "work_h": 2, "gpu_share": 0.5, "optional": True, "priority": 2},
        {"id": "lo1", "work_h": 0.1, "gpu_share": 0.25, "optional": True, "priority": 1},
        {"id": "lo2", "work_h": 0.1, "gpu_share": 0.25, "optional": True, "priority": 1},
    ]
    p = fleet({"id": "g0", "type": "A"}, {"id": "g1", "type": "A"}, tasks=tasks)
    plan = run(p, backend)
    assert plan.is_feasible
    placed = set(placement(plan))
    assert {"req", "hi"} <= placed
    assert len(placed & {"mid1", "mid2"}) == 1
    assert not placed & {"lo1", "lo2"}
    assert plan.penalty > 0
    assert plan.objective == pytest.approx(plan.placement_cost + plan.penalty)
    for u in plan.unassigned:
        assert "no room left" in u.reason


@pytest.mark.parametrize("backend", BACKENDS)
def test_priority_beats_count(backend):
    """One high-priority task is kept over two lower-priority tasks that need the same room."""
    tasks = [
        {"id": "lo1", "work_h": 1, "gpu_share": 0.5, "optional": True, "priority": 0},
        {"id": "lo2", "work_h": 1, "gpu_share": 0.5, "optional": True, "priority": 0},
        {"id": "hi", "work_h": 50, "gpu_share": 1.0, "optional": True, "priority": 1},
    ]
    plan = run(fleet({"id": "g0", "type": "A"}, tasks=tasks), backend)
    assert set(placement(plan)) == {"hi"}
    assert {u.task for u in plan.unassigned} == {"lo1", "lo2"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_optional_tasks_placed_when_room(backend):
    """Optional tasks are all placed when they fit (no penalty is paid)."""
    tasks = [{"id": f"t{i}", "work_h": 1, "gpu_share": 0.25, "optional": True} for i in range(4)]
    plan = run(fleet({"id": "g0", "type": "A"}, tasks=tasks), backend)
    assert len(plan.assignments) == 4
    assert plan.penalty == 0
    assert plan.objective == pytest.approx(4 * 0.25)


@pytest.mark.parametrize("backend", BACKENDS)
def test_horizon_respected(backend):
    """With a horizon each GPU's work fits in it; the speed of the type sets the durations."""
    types = [
        {"name": "fast", "memory_gb": 80, "speed": 2, "cost_per_hour": 3},
        {"name": "slow", "memory_gb": 80, "speed": 1, "cost_per_hour": 1},
    ]
    tasks = [{"id": f"t{i}", "work_h": 4} for i in range(3)]
    tasks.append({"id": "extra", "work_h": 4, "optional": True})
    p = fleet({"id": "f", "type": "fast"}, {"id": "s", "type": "slow"}, types=types, tasks=tasks, horizon_h=5)
    plan = run(p, backend)
    assert plan.is_feasible
    used: dict[str, float] = {}
    for a in plan.assignments:
        assert a.duration_h == (2.0 if a.gpu_type == "fast" else 4.0)
        used[a.gpus[0]] = used.get(a.gpus[0], 0.0) + a.duration_h
    assert all(h <= 5 for h in used.values())
    # fast takes 2 tasks (2 h each at 6 per task), slow takes 1 (4 h at 1): the extra one is dropped
    assert len(plan.assignments) == 3
    assert [u.task for u in plan.unassigned] == ["extra"]
    assert plan.placement_cost == pytest.approx(6 + 6 + 4)
    assert {u.gpu: u.used["gpu_time_h"] for u in plan.gpus} == {"f": 4.0, "s": 4.0}


@pytest.mark.parametrize("backend", BACKENDS)
def test_horizon_too_short_for_required_task(backend):
    """A required task longer than the horizon on every GPU is infeasible, with the hours named."""
    types = [{"name": "A", "memory_gb": 80, "speed": 2, "cost_per_hour": 1}]
    tasks = [{"id": "long", "work_h": 20}, {"id": "short", "work_h": 1}]
    plan = run(fleet({"id": "g", "type": "A"}, types=types, tasks=tasks, horizon_h=5), backend)
    assert plan.status is Status.INFEASIBLE
    reason = {u.task: u.reason for u in plan.unassigned}["long"]
    assert "10 h" in reason and "horizon is 5 h" in reason


@pytest.mark.parametrize("backend", BACKENDS)
def test_horizon_side_by_side_share(backend):
    """With a horizon gpu_share scales GPU time: two half-share 4 h tasks use 4 h of a 5 h budget."""
    tasks = [{"id": f"t{i}", "work_h": 4, "gpu_share": 0.5} for i in range(2)]
    plan = run(fleet({"id": "g", "type": "A"}, tasks=tasks, horizon_h=5), backend)
    assert plan.is_feasible
    assert plan.gpus[0].used == {"gpu_time_h": 4.0}
    assert plan.objective == pytest.approx(4.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unhealthy_and_hot_gpus_get_nothing(backend):
    """Unhealthy GPUs and GPUs over the temperature limit receive no task, even when cheapest."""
    types = [
        {"name": "cheap", "memory_gb": 80, "cost_per_hour": 0.1},
        {"name": "dear", "memory_gb": 80, "cost_per_hour": 5},
    ]
    gpus = [
        {"id": "sick", "type": "cheap", "healthy": False},
        {"id": "hot", "type": "cheap", "temperature_c": 91},
        {"id": "warm", "type": "dear", "temperature_c": 80},  # at the limit: allowed
        {"id": "cold", "type": "dear"},  # no reading: allowed
    ]
    tasks = [
        {"id": "a", "work_h": 2, "gpu_share": 0.5},
        {"id": "b", "work_h": 2, "gpu_share": 0.5},
        {"id": "c", "work_h": 2, "gpu_share": 0.5},
        {"id": "only-cheap", "work_h": 1, "optional": True, "allowed_types": ["cheap"]},
    ]
    plan = run(fleet(*gpus, types=types, tasks=tasks, temperature_limit_c=80), backend)
    assert plan.is_feasible
    placed = placement(plan)
    assert set(placed) == {"a", "b", "c"}
    assert set(placed.values()) <= {"warm", "cold"}
    assert plan.placement_cost == pytest.approx(3 * 2 * 0.5 * 5)
    reason = {u.task: u.reason for u in plan.unassigned}["only-cheap"]
    assert "unhealthy or over the temperature limit" in reason
    usage = {u.gpu: u for u in plan.gpus}
    assert usage["sick"].tasks == 0 and usage["hot"].tasks == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_and_allowed_types(backend):
    """Memory adds up side by side and allowed_types restricts the GPU type."""
    types = [
        {"name": "big", "memory_gb": 80, "cost_per_hour": 2},
        {"name": "small", "memory_gb": 24, "cost_per_hour": 1},
    ]
    tasks = [
        {"id": "m1", "work_h": 1, "gpu_share": 0.25, "gpu_memory_gb": 16},
        {"id": "m2", "work_h": 1, "gpu_share": 0.25, "gpu_memory_gb": 16},  # 32 GB > 24 GB together
        {"id": "pinned", "work_h": 1, "gpu_share": 0.25, "allowed_types": ["big"]},
    ]
    p = fleet({"id": "B", "type": "big"}, {"id": "S", "type": "small"}, types=types, tasks=tasks)
    plan = run(p, backend)
    placed = placement(plan)
    assert placed["pinned"] == "B"
    assert sorted([placed["m1"], placed["m2"]]) == ["B", "S"]
    usage = {u.gpu: u for u in plan.gpus}
    assert usage["S"].used["gpu_memory_gb"] == 16
    if backend in EXACT:
        assert plan.objective == pytest.approx(0.25 * 2 + 0.25 * 1 + 0.25 * 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_explicit_duration_overrides_work(backend):
    """duration_h for a type overrides work_h / speed; types without a duration are not used."""
    types = [
        {"name": "A", "memory_gb": 80, "speed": 1, "cost_per_hour": 1},
        {"name": "B", "memory_gb": 80, "speed": 1, "cost_per_hour": 1},
    ]
    tasks = [{"id": "t", "duration_h": {"B": 0.5}}]
    plan = run(fleet({"id": "a", "type": "A"}, {"id": "b", "type": "B"}, types=types, tasks=tasks), backend)
    (a,) = plan.assignments
    assert a.gpus == ["b"] and a.duration_h == 0.5 and a.cost == pytest.approx(0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_task_list(backend):
    """A problem without tasks is trivially optimal (greedy: feasible) with objective 0."""
    plan = run(fleet({"id": "g", "type": "A"}, tasks=[]), backend)
    assert plan.is_feasible
    assert plan.objective == 0
    assert not plan.assignments and not plan.unassigned


@pytest.mark.parametrize("backend", sorted(EXACT))
def test_inexact_durations_exactly_filling_the_horizon(backend):
    """Six tasks of 1/6 h each exactly fill a 1 h horizon: a plan exists and is not called infeasible."""
    types = [{"name": "H100", "memory_gb": 80, "speed": 3, "cost_per_hour": 1}]
    tasks = [{"id": f"t{i}", "work_h": 0.5} for i in range(6)]
    assert sum([0.5 / 3] * 6) <= 1.0
    problem = fleet({"id": "g", "type": "H100"}, types=types, tasks=tasks, horizon_h=1)
    plan = gpuplan.solve(problem, solver=backend, time_limit_s=5)
    assert plan.status is not Status.INFEASIBLE
    assert plan.is_feasible and len(plan.assignments) == 6


# --- time limits and warm start ----------------------------------------------------------------------------


def random_matrix(n_tasks: int, n_gpus: int, seed: int) -> dict:
    """A random feasible integer matrix instance with ~30% slack capacity."""
    rng = np.random.default_rng(seed)
    load = rng.integers(1, 10, (n_tasks, n_gpus))
    cap = [int(n_tasks * 5 / n_gpus * 1.3)] * n_gpus
    return {
        "matrix": {
            "cost": rng.integers(1, 100, (n_tasks, n_gpus)).tolist(),
            "load": load.tolist(),
            "capacity": cap,
        }
    }


@pytest.fixture(scope="module")
def medium() -> MatrixProblem:
    """A 300 x 30 random instance, parsed once."""
    return MatrixProblem.model_validate(random_matrix(300, 30, seed=0))


@pytest.mark.clock
@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_time_limit_returns_in_time(medium, backend):
    """A 0.05 s limit on a 300 x 30 instance still returns a verified plan within limit + 1 s."""
    limit = 0.05
    started = time.monotonic()
    plan = gpuplan.solve(medium, solver=backend, time_limit_s=limit)
    elapsed = time.monotonic() - started
    verify(plan, medium)
    assert plan.status in (Status.OPTIMAL, Status.FEASIBLE, Status.UNKNOWN)
    assert plan.wall_time_s <= limit + 1.0
    assert elapsed <= limit + 1.5
    if plan.is_feasible:
        assert len(plan.assignments) == 300


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_start_recorded_and_never_worse(backend):
    """The greedy warm start is recorded and the returned plan is never worse than it."""
    m = random_matrix(40, 6, seed=3)
    plan = run(m, backend, time_limit_s=3)
    assert plan.warm_start_objective is not None
    assert plan.objective <= plan.warm_start_objective + 1e-9
    if backend == "greedy":
        assert plan.objective == plan.warm_start_objective


def test_cpsat_hint_accepted_and_improves():
    """CP-SAT starts from the greedy hint, records incumbents and ends at or below the warm start."""
    plan = run(random_matrix(40, 6, seed=4), "cpsat", time_limit_s=3)
    assert plan.solver == "cpsat"
    assert plan.warm_start_objective is not None
    assert plan.objective <= plan.warm_start_objective
    assert plan.incumbents
    assert plan.incumbents[-1].objective >= plan.objective - 1e-9
    assert plan.stats["variables"] == 40 * 6


def test_auto_records_choice_and_reason():
    """auto solves a small problem to optimality and records the backend it chose and why."""
    plan = run({"matrix": MATRIX_CASES["assignment3x3"][0]}, "auto")
    assert plan.status is Status.OPTIMAL
    assert plan.solver not in ("", "auto")
    assert plan.solver_reason


def test_unknown_solver_rejected():
    """An unknown backend name is a ValueError naming it."""
    with pytest.raises(ValueError, match="gurobi"):
        gpuplan.solve({"matrix": MATRIX_CASES["assignment3x3"][0]}, solver="gurobi")
