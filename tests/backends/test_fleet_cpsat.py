"""The fleet CP-SAT model against brute force on random tiny fleets, plus a few hand-made cases."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given, settings

from gpuplan.backends.fleet_cpsat import FleetResult, solve_fleet_cpsat
from gpuplan.models import Problem, Status
from gpuplan.program.fleet import NONE, FleetProgram, compile_fleet
from tests.oracles import fleet_brute_force
from tests.strategies import SETTINGS, fleets


def solve(program: FleetProgram, hint: np.ndarray | None = None, limit: float = 10.0) -> FleetResult:
    return solve_fleet_cpsat(program, deadline=time.monotonic() + limit, workers=1, seed=0, hint=hint)


def check_against_brute_force(program: FleetProgram) -> None:
    """CP-SAT's status, objective and bound agree with exhaustive search."""
    res = solve(program)
    ref = fleet_brute_force(program)
    if ref is None:
        assert res.status is Status.INFEASIBLE, res.stats
        assert res.objective is None
        return
    best, _ = ref
    assert res.status.has_solution, res.stats
    assert program.violations(res.assign) == []
    assert res.objective == pytest.approx(program.objective(res.assign), rel=1e-12, abs=1e-12)
    tol = 1e-6 * max(1.0, abs(best))
    grid = 0.0 if res.stats.get("cpsat_balance_exact", True) else program.w_balance / 1000
    assert res.objective >= best - tol
    assert res.objective <= best + tol + grid, (res.objective, best, res.stats)
    assert res.bound is not None
    assert res.bound <= best + tol
    if res.status is Status.OPTIMAL and not grid:
        assert res.bound == pytest.approx(res.objective, rel=1e-6, abs=1e-6)


@SETTINGS
@given(fleets())
def test_cpsat_matches_brute_force(data: dict) -> None:
    """On random tiny fleets CP-SAT's status, objective and bound agree with exhaustive search."""
    try:
        program = compile_fleet(Problem.model_validate(data)).program
    except ValueError:  # priority tiers too wide to weigh (compile refuses)
        assume(False)
    check_against_brute_force(program)


@settings(max_examples=15, deadline=None)
@given(fleets())
def test_hint_is_kept_when_better(data: dict) -> None:
    """With a feasible optimal hint, the answer is at least as good as the hint."""
    program = compile_fleet(Problem.model_validate(data)).program
    ref = fleet_brute_force(program)
    assume(ref is not None)
    best, assign = ref
    res = solve(program, hint=assign, limit=5.0)
    assert res.status.has_solution
    assert program.violations(res.assign) == []
    assert res.objective <= best + 1e-9 * max(1.0, abs(best))


# --- hand-made cases -----------------------------------------------------------------------------------

TYPES = [{"name": "A", "memory_gb": 80, "cost_per_hour": 1.0}]


def compiled(nodes: list[dict], tasks: list[dict], objective: dict | None = None) -> FleetProgram:
    data = {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks, "objective": objective or {"kind": "cost"}}
    return compile_fleet(Problem.model_validate(data)).program


def test_gang_lands_on_one_node() -> None:
    """Two nodes of one free GPU each and one of two: the gang of 2 takes the pair."""
    nodes = [{"id": f"n{i}", "gpu_counts": {"A": c}} for i, c in enumerate([1, 1, 2])]
    p = compiled(nodes, [{"id": "g", "gpus": 2, "work_h": 1}])
    res = solve(p)
    assert res.status is Status.OPTIMAL
    assert set(p.gpu_node[res.assign[0]].tolist()) == {2}


def test_gang_split_over_nodes_is_infeasible() -> None:
    nodes = [{"id": f"n{i}", "gpu_counts": {"A": 1}} for i in range(3)]
    res = solve(compiled(nodes, [{"id": "g", "gpus": 2, "work_h": 1}]))
    assert res.status is Status.INFEASIBLE


def test_spread_group_uses_three_nodes() -> None:
    """Three replicas of one spread group on three nodes, though one node could hold them all."""
    nodes = [{"id": "big", "gpu_counts": {"A": 3}}, {"id": "s1", "gpu_counts": {"A": 1}}]
    nodes.append({"id": "s2", "gpu_counts": {"A": 1}})
    tasks = [{"id": f"r{i}", "work_h": 1, "gpu_share": 0.25, "anti_affinity": "svc"} for i in range(3)]
    p = compiled(nodes, tasks, {"kind": "nodes_used"})
    res = solve(p)
    assert res.status is Status.OPTIMAL
    assert sorted(p.gpu_node[res.assign[:, 0]].tolist()) == [0, 1, 2]
    assert res.objective == pytest.approx(3.0)


def test_high_migration_cost_keeps_tasks_in_place() -> None:
    """GPUs of type B cost half as much; a migration cost of 100 keeps running tasks on A anyway."""
    types = [
        {"name": "A", "memory_gb": 80, "cost_per_hour": 2.0},
        {"name": "B", "memory_gb": 80, "cost_per_hour": 1.0},
    ]
    nodes = [{"id": "old", "gpu_counts": {"A": 2}}, {"id": "new", "gpu_counts": {"B": 2}}]

    def program(tasks: list[dict]) -> FleetProgram:
        return compile_fleet(
            Problem.model_validate({"gpu_types": types, "nodes": nodes, "tasks": tasks})
        ).program

    # GPU indices: old/A/0 = 0, old/A/1 = 1, new/B/0 = 2, new/B/1 = 3.
    p = program(
        [
            {"id": "run", "work_h": 1, "current_gpus": ["old/A/1"], "migration_cost": 100},
            {"id": "new", "work_h": 1},
        ]
    )
    res = solve(p)
    assert res.status is Status.OPTIMAL
    assert res.assign[0, 0] == 1  # stays
    assert p.gpu_node[res.assign[1, 0]] == 1  # the new task takes the cheap node
    assert res.objective == pytest.approx(3.0)
    gang = {"id": "g", "gpus": 2, "work_h": 1, "current_gpus": ["old/A/1", "old/A/0"]}
    p = program([dict(gang, migration_cost=100)])
    res = solve(p)
    assert sorted(res.assign[0].tolist()) == [0, 1]
    assert res.objective == pytest.approx(4.0)
    p = program([dict(gang, migration_cost=0.1)])  # cheap to move: 2 + 0.1 < 4
    res = solve(p)
    assert sorted(res.assign[0].tolist()) == [2, 3]
    assert res.objective == pytest.approx(2.1)


def test_lexicographic_placed_then_gpus_used() -> None:
    """Place everything first, then pack: the four halves share two GPUs, the whole task a third."""
    nodes = [{"id": "n0", "gpu_counts": {"A": 4}}]
    tasks = [{"id": f"h{i}", "work_h": 1, "gpu_share": 0.5, "optional": True} for i in range(4)]
    tasks.append({"id": "w", "work_h": 1, "optional": True})
    terms = [{"kind": "placed"}, {"kind": "gpus_used"}]
    p = compiled(nodes, tasks, {"kind": "lexicographic", "terms": terms})
    res = solve(p)
    assert res.status is Status.OPTIMAL
    assert np.all(res.assign[:, 0] >= 0)
    assert np.unique(res.assign[res.assign >= 0]).size == 3
    # Weighted with a small weight on placement, consolidation wins: the whole task is dropped.
    terms = [{"kind": "placed", "weight": 0.1}, {"kind": "gpus_used"}]
    p = compiled(nodes, tasks, {"kind": "weighted", "terms": terms})
    res = solve(p)
    assert res.assign[4, 0] == NONE
    assert res.objective == pytest.approx(fleet_brute_force(p)[0])


def test_dropped_required_task_without_room_is_infeasible_and_hint_is_used() -> None:
    nodes = [{"id": "n0", "gpu_counts": {"A": 1}}]
    p = compiled(nodes, [{"id": "a", "work_h": 1}, {"id": "b", "work_h": 1}])
    assert solve(p).status is Status.INFEASIBLE
    p = compiled(nodes, [{"id": "a", "work_h": 1}, {"id": "b", "work_h": 1, "optional": True}])
    hint = np.array([[0], [NONE]])
    res = solve(p, hint=hint, limit=0.0)
    assert res.status.has_solution
    assert p.violations(res.assign) == []


def test_balance_is_exact_on_share_grid() -> None:
    """Shares scale to an integer capacity of 100 (hundredths): the balance term is exact, no 0.1% grid."""
    nodes = [{"id": "n0", "gpu_counts": {"A": 2}}]
    tasks = [{"id": f"t{i}", "work_h": 1, "gpu_share": s} for i, s in enumerate([0.5, 0.25, 0.25, 0.5])]
    p = compiled(nodes, tasks, {"kind": "balance"})
    res = solve(p)
    assert res.status is Status.OPTIMAL
    assert res.stats["cpsat_balance_exact"]
    assert res.objective == pytest.approx(0.75)
    assert res.bound == pytest.approx(0.75)


def test_inexact_loads_still_fill_a_gpu_exactly() -> None:
    """Loads of 1/3 h (transfer time included) scale inexactly (rounded up): three of them still fill
    the single GPU's horizon of 1 h, and the bound stays valid."""
    nodes = [{"id": "n0", "gpu_counts": {"A": 1}, "bandwidth_gbps": 3}]
    dur = 1 / 3 - 8 * 10 / (3600 * 3)
    tasks = [{"id": f"t{i}", "duration_h": {"A": dur}, "input_gb": 10} for i in range(3)]
    data = {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks, "horizon_h": 1.0}
    p = compile_fleet(Problem.model_validate(data)).program
    res = solve(p)
    assert not res.stats["cpsat_loads_exact"] and res.stats["cpsat_loads_relax"]
    assert res.status is Status.OPTIMAL
    assert p.violations(res.assign) == []
    assert res.bound is not None and res.bound <= res.objective == pytest.approx(1.0)


def test_feasible_hint_replaces_a_missing_or_worse_answer() -> None:
    """A solver that found nothing (or worse) hands back the caller's feasible hint."""
    from gpuplan.backends.fleet_cpsat import _with_hint

    nodes = [{"id": "n0", "gpu_counts": {"A": 2}}]
    p = compiled(nodes, [{"id": "a", "work_h": 1}, {"id": "b", "work_h": 2}])
    hint = np.array([[1], [0]])
    none = FleetResult(p.empty_assign(), Status.UNKNOWN, None, None)
    res = _with_hint(p, hint, none)
    assert res.status is Status.FEASIBLE and res.objective == pytest.approx(3.0)
    assert np.array_equal(res.assign, hint)
    worse = FleetResult(hint, Status.FEASIBLE, 4.0, 2.0)
    assert _with_hint(p, hint, worse).objective == pytest.approx(3.0)
    assert _with_hint(p, np.array([[0], [0]]), none) is none  # an infeasible hint is ignored


@pytest.mark.clock
def test_short_deadline_answer_is_consistent() -> None:
    """Stopped early on a mid-size fleet, whatever the status: a feasible plan above a valid bound."""
    types = [
        {"name": "A", "memory_gb": 80, "cost_per_hour": 3.0},
        {"name": "B", "memory_gb": 24, "cost_per_hour": 1.0},
    ]
    nodes = [{"id": f"n{i}", "gpu_counts": {"AB"[i % 2]: 4}, "cpu_cores": 32} for i in range(4)]
    tasks = [
        {
            "id": f"t{i}",
            "gpus": [1, 2, 1, 4][i % 4],
            "gpu_share": [0.5, 1.0, 0.25, 1.0][i % 4],
            "work_h": 1 + i % 3,
            "cpu_cores": 4,
            "optional": i % 3 == 0,
        }
        for i in range(14)
    ]
    terms = [{"kind": "cost"}, {"kind": "gpus_used"}, {"kind": "balance"}]
    data = {
        "gpu_types": types,
        "nodes": nodes,
        "tasks": tasks,
        "objective": {"kind": "weighted", "terms": terms},
    }
    p = compile_fleet(Problem.model_validate(data)).program
    res = solve(p, limit=0.3)
    assert res.status is not Status.INFEASIBLE
    assert res.bound is not None
    if res.status.has_solution:
        assert p.violations(res.assign) == []
        assert res.bound <= res.objective
        assert all(b >= 0 for _, b in res.incumbents)
