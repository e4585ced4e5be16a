"""Backend conformance: every backend a user may name, on tiny random programs of both kinds, against
brute force.

Families: the matrix form (a GAP program by itself, one or two resources), Problems that are GAPs
(solved through their GAP view) and fleet Problems (the fleet search). For every exact backend
(cpsat, milp, auto) that accepts the program the backends see (the GAP view's when there is one,
else the fleet program) the plan passes the verifier, is optimal and reaches the brute-force optimum
of the fleet program (the matrix form: of the matrix); where brute force finds no plan it is proven
infeasible. A backend that does not accept the program is refused as an input error on `solver`.
Greedy's plans pass the verifier and are never better than the optimum.

The examples are derandomized, so every run checks the same instances and a failure reproduces;
the discrepancies the battery found are pinned at the end with their exact inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuplan
from gpuplan import InputError, MatrixProblem, Plan, Problem, Status, verify
from gpuplan.backends import REGISTRY
from gpuplan.program.fleet import FleetProgram, compile_fleet
from gpuplan.program.gap import Program
from gpuplan.program.gap_view import compile_problem, gap_view
from gpuplan.program.priorities import TiersTooWide
from tests.oracles import fleet_brute_force, matrix_brute_force
from tests.strategies import cpu_fleets, fleets, gap_problems, matrices, prioritized_problems

#: The exact backends a user may name; `auto` is the strategy's own choice among those that accept.
EXACT = ["cpsat", "milp", "auto"]

#: Every exact backend proves infeasibility of tiny programs of both kinds: CP-SAT and CBC on a GAP
#: program, the fleet CP-SAT model on a fleet program (auto runs it at these sizes). Greedy proves
#: it only when a required task has no eligible GPU at all (presolve); otherwise it says `unknown`.
PROVES_INFEASIBILITY = set(EXACT)

TIME_LIMIT = 3.0
REL = 1e-6

BATTERY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
)


def two_resource_matrices() -> st.SearchStrategy[dict]:
    """Matrix instances with two resources (load and capacity per resource)."""
    return matrices(max_tasks=5, max_gpus=3, cap_max=12).filter(
        lambda m: isinstance(m["matrix"]["capacity"][0], list)
    )


#: The families of tiny programs, by name.
FAMILIES: dict[str, st.SearchStrategy[dict]] = {
    "matrix_1r": matrices(max_tasks=5, max_gpus=4, cap_max=12, max_resources=1),
    "matrix_2r": two_resource_matrices(),
    # Every task has a home: infeasibility, when there is any, is the solver's to prove.
    "matrix_tight": matrices(min_tasks=3, max_tasks=5, cap_max=6, homeless=False),
    "gap_problem": gap_problems(),
    "gap_prioritized": prioritized_problems(),
    "fleet": fleets(),
    "fleet_cpu_only": cpu_fleets(),
}

#: The families whose Problems are GAPs: their program is always the GAP view.
GAP_FAMILIES = {"gap_problem", "gap_prioritized"}


@dataclass(frozen=True)
class Case:
    """One instance: its parsed source, the program the backends see, and the brute-force optimum."""

    source: Problem | MatrixProblem
    program: Program | FleetProgram
    optimum: float | None


def case_of(data: dict) -> Case | None:
    """The case of a problem given as a dict; None when its priority tiers are too wide to weigh
    (such a Problem is solved tier by tier, and its one-objective program does not exist)."""
    source = gpuplan.parse_problem(data)
    if isinstance(source, MatrixProblem):
        return Case(source, compile_problem(source).program, matrix_brute_force(data))
    try:
        fc = compile_fleet(source)
    except TiersTooWide:
        return None
    view = gap_view(fc)
    ref = fleet_brute_force(fc.program)
    return Case(source, fc.program if view is None else view.program, None if ref is None else ref[0])


def accepts(backend: str, program: Program | FleetProgram) -> bool:
    """True when the backend takes the program and can run here (`auto` takes every program)."""
    if backend == "auto":
        return True
    entry = REGISTRY[backend]
    return entry.accepts(program) == "" and entry.available() == ""


def solve(data: dict, backend: str) -> Plan:
    """Solve with `backend` on one worker and check the plan again against its source."""
    plan = gpuplan.solve(data, solver=backend, time_limit_s=TIME_LIMIT, workers=1, seed=0)
    verify(plan, gpuplan.parse_problem(data))
    assert plan.solver_requested == backend
    return plan


def check_exact(data: dict, backend: str) -> None:
    """An exact backend that accepts the program proves the brute-force optimum (or infeasibility);
    one that does not accept it is refused with an input error on `solver`."""
    case = case_of(data)
    if case is None:
        return
    if not accepts(backend, case.program):
        with pytest.raises(InputError) as refused:
            gpuplan.solve(data, solver=backend, time_limit_s=TIME_LIMIT, workers=1)
        assert refused.value.path == "solver"
        return
    plan = solve(data, backend)
    if case.optimum is None:
        assert backend in PROVES_INFEASIBILITY
        assert plan.status is Status.INFEASIBLE, (plan.status, plan.message)
        assert plan.objective is None and not plan.assignments
        return
    tol = REL * max(1.0, abs(case.optimum))
    assert plan.bound is not None and plan.bound <= case.optimum + tol
    if isinstance(case.program, FleetProgram) and (
        plan.stats.get("cpsat_balance_exact") is False or plan.stats.get("cpsat_cost_exact") is False
    ):
        # Two documented limits of the fleet CP-SAT model (backends.fleet_cpsat) keep it from proving
        # optimality: objective coefficients that no power of ten makes integral (the large weights of
        # a lexicographic objective) are rounded and the bound lowered by that rounding; peak
        # utilization is held on a 0.1 % grid when the primary load does not scale exactly (GPU time
        # with a data transfer), so its optimum may exceed the true one by up to lambda_balance / 1000.
        # The plan must still reach the optimum, within that grid.
        grid = case.program.w_balance / 1000 if plan.stats.get("cpsat_balance_exact") is False else 0.0
        assert plan.status in (Status.OPTIMAL, Status.FEASIBLE), (plan.status, plan.message)
        assert case.optimum - tol <= plan.objective <= case.optimum + grid + tol, (
            plan.objective,
            case.optimum,
        )
        return
    assert plan.status is Status.OPTIMAL, (
        plan.status,
        plan.objective,
        case.optimum,
        plan.bound,
        plan.message,
    )
    assert plan.objective == pytest.approx(case.optimum, rel=REL, abs=REL)


def check_greedy(data: dict) -> None:
    """Greedy's plan verifies, is no better than the optimum (equal when it claims optimality), and
    never claims infeasibility of a feasible program."""
    case = case_of(data)
    if case is None:
        return
    plan = solve(data, "greedy")
    if case.optimum is None:
        assert plan.status in (Status.INFEASIBLE, Status.UNKNOWN)
        assert plan.objective is None and not plan.assignments
        return
    if not plan.is_feasible:
        assert plan.status is Status.UNKNOWN and not plan.assignments
        return
    tol = REL * max(1.0, abs(case.optimum))
    assert plan.objective >= case.optimum - tol
    if plan.status is Status.OPTIMAL:
        assert plan.objective == pytest.approx(case.optimum, rel=REL, abs=REL)


# --- the battery ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", EXACT)
@pytest.mark.parametrize("family", list(FAMILIES))
@BATTERY
@given(data=st.data())
def test_exact_backend_reaches_the_brute_force_optimum(
    family: str, backend: str, data: st.DataObject
) -> None:
    """Each exact backend that accepts a family's program is optimal at the brute-force optimum, or
    proves infeasibility; one that does not accept it is refused as an input error."""
    check_exact(data.draw(FAMILIES[family], label=family), backend)


@pytest.mark.parametrize("family", list(FAMILIES))
@BATTERY
@given(data=st.data())
def test_greedy_is_feasible_and_no_better_than_the_optimum(family: str, data: st.DataObject) -> None:
    """Greedy's plans verify and never beat the brute-force optimum."""
    check_greedy(data.draw(FAMILIES[family], label=family))


@pytest.mark.parametrize("family", sorted(GAP_FAMILIES))
@BATTERY
@given(data=st.data())
def test_gap_families_are_gap_programs(family: str, data: st.DataObject) -> None:
    """Problems with one GPU per task, cost only and eligibility rules have a GAP view that milp accepts."""
    fc = compile_fleet(Problem.model_validate(data.draw(FAMILIES[family], label=family)))
    view = gap_view(fc)
    assert view is not None
    assert REGISTRY["milp"].accepts(view.program) == ""


# --- discrepancies found by the battery, with their exact inputs ------------------------------------------

#: Costs scale exactly (x1000) but GPU time does not (the transfer adds 8 x 20 / 36000 h): the GAP
#: view's loads are inexact yet relax, and `program.solution.proven_status` / `cost_bound_to_user`
#: read `scaling_exact` (costs *and* loads) as if the costs were inexact, lowering the bound by
#: n_tasks / (2 x 1000). Every exact backend returns the optimum 3.385 as `feasible`, bound 3.3845.
INEXACT_LOADS_EXACT_COSTS = {
    "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 3}],
    "nodes": [{"id": "n0", "gpu_counts": {"A": 1}, "bandwidth_gbps": 10}],
    "tasks": [{"id": "t0", "gpu_share": 0.75, "input_gb": 20, "duration_h": {"A": 1.5}}],
    "horizon_h": 4,
}

#: The same with every cost 0 (cost scale 1): the optimum 0.0 comes back `feasible` with bound -0.5.
INEXACT_LOADS_ZERO_COSTS = {
    "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 0}],
    "nodes": [{"id": "n0", "gpu_counts": {"A": 1}, "bandwidth_gbps": 10}],
    "tasks": [{"id": "t0", "gpu_share": 0.25, "input_gb": 20, "work_h": 0.5}],
    "horizon_h": 2,
}

#: GPU time 0.5 x (4 + 8 x 20 / 36000) h, scaled by 1e11 (inexact, the largest scale within budget):
#: CBC, started from the greedy plan, ends "Optimal" with x = 0.0022 / 0.9978 on one task, which
#: `_read_assign` rounds onto one GPU, over its horizon; milp then falls back to the greedy plan
#: (`feasible`, no bound, solver greedy) although the optimum 12.01333 is found by cpsat and auto.
HUGE_LOAD_SCALE = {
    "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 3}],
    "nodes": [{"id": "n0", "gpu_counts": {"A": 2}, "bandwidth_gbps": 10}],
    "tasks": [
        {"id": "t0", "gpu_share": 0.5, "input_gb": 20, "duration_h": {"A": 4}},
        {"id": "t1", "gpu_share": 0.5, "input_gb": 20, "duration_h": {"A": 4}},
    ],
    "horizon_h": 4,
}

#: A running optional gang of priority 0 holds both GPUs; greedy keeps it there and leaves out the
#: priority-1 task that fits (brute force: place t0, drop t1, objective 1.0); `solve` then raises
#: VerificationError ("task 't0' (priority 1) left out though it fits").
RUNNING_GANG_BLOCKS_PRIORITY = {
    "gpu_types": [{"name": "A", "memory_gb": 16, "cost_per_hour": 0}],
    "nodes": [{"id": "n0", "gpu_counts": {"A": 2}}],
    "tasks": [
        {"id": "t0", "gpu_share": 0.25, "priority": 1, "optional": True, "work_h": 0.5},
        {
            "id": "t1",
            "gpus": 2,
            "priority": 0,
            "optional": True,
            "work_h": 0.5,
            "current_gpus": ["n0/A/0", "n0/A/1"],
        },
    ],
}


@pytest.mark.parametrize(
    "data",
    [INEXACT_LOADS_EXACT_COSTS, INEXACT_LOADS_ZERO_COSTS],
    ids=["costs_x1000", "zero_costs"],
)
@pytest.mark.parametrize("backend", EXACT)
def test_exact_backends_prove_optimum_with_inexact_loads(backend: str, data: dict) -> None:
    """One task whose GPU time includes a transfer (inexact loads, exact costs) is proven optimal."""
    check_exact(data, backend)


@pytest.mark.parametrize(
    "backend",
    ["cpsat", "milp", "auto"],
)
def test_exact_backends_prove_optimum_at_a_huge_load_scale(backend: str) -> None:
    """Two tasks that each fill one GPU's horizon, with loads scaled by 1e11, are proven optimal."""
    check_exact(HUGE_LOAD_SCALE, backend)


def test_greedy_places_a_higher_priority_task_before_a_running_gang() -> None:
    """Greedy drops the running lower-priority gang rather than the higher-priority task."""
    check_greedy(RUNNING_GANG_BLOCKS_PRIORITY)


@pytest.mark.parametrize("backend", EXACT)
def test_exact_backends_place_a_higher_priority_task_before_a_running_gang(backend: str) -> None:
    """Exact backends reach the optimum of the running-gang input greedy fails on."""
    check_exact(RUNNING_GANG_BLOCKS_PRIORITY, backend)
