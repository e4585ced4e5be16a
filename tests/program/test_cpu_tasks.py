"""CPU-only tasks (`gpus: 0`): validation, the host-slot compilation, every solver against brute
force, competition for node CPU with GPU tasks, GPU-less nodes and the verifier."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from gpuplan import solve
from gpuplan.backends.fleet_brute import brute_force
from gpuplan.backends.fleet_cpsat import solve_fleet_cpsat
from gpuplan.bounds.fleet import fleet_lower_bound, packing_bound
from gpuplan.heuristics.fleet_greedy import FleetState, eject_improve, fleet_greedy, swap_improve
from gpuplan.models import Node, Problem, Status, Task
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.gap_view import gap_like
from gpuplan.program.verify import VerificationError, verify
from tests.strategies import SETTINGS, cpu_fleets

TYPES = [{"name": "A", "memory_gb": 80, "cost_per_hour": 2.0, "power_w": 400}]


def problem(nodes: list[dict], tasks: list[dict], **extra) -> Problem:
    return Problem.model_validate({"gpu_types": TYPES, "nodes": nodes, "tasks": tasks, **extra})


# --- the model -------------------------------------------------------------------------------------------


def test_cpu_only_task_is_valid_and_uses_the_fleet_program() -> None:
    t = Task(id="etl", gpus=0, cpu_cores=4, memory_gb=8, work_h=1)
    p = problem([{"id": "c", "cpu_cores": 8}], [t.model_dump()])
    assert not gap_like(compile_fleet(p))  # host slots: not a GAP
    assert p.all_gpus() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gpu_share", 0.5),
        ("gpu_memory_gb", 10),
        ("allowed_types", ["A"]),
        ("forbidden_types", ["A"]),
        ("min_gpu_memory_gb", 40),
        ("same_type", True),
        ("duration_h", {"A": 2}),
        ("current_gpus", []),
    ],
)
def test_gpu_fields_are_refused_on_a_cpu_only_task(field: str, value: object) -> None:
    """Each GPU-only field of a CPU-only task is an error naming that field."""
    with pytest.raises(ValidationError, match=field):
        Task.model_validate({"id": "t", "gpus": 0, "work_h": 1, field: value})


def test_cpu_only_task_keeps_the_defaults_and_node_fields() -> None:
    Task(id="t", gpus=0, work_h=1, gpu_share=1.0, node_selector={"zone": "a"}, anti_affinity="s")
    with pytest.raises(ValidationError, match="work_h or duration_h"):
        Task(id="t", gpus=0)
    with pytest.raises(ValidationError, match="gpus"):
        Task(id="t", gpus=-1, work_h=1)


# --- compilation ------------------------------------------------------------------------------------------


def test_host_slots_only_when_some_task_is_cpu_only() -> None:
    nodes = [{"id": "g", "gpu_counts": {"A": 2}, "cpu_cores": 16}, {"id": "c", "cpu_cores": 8}]
    gpu_task = {"id": "t", "work_h": 1, "cpu_cores": 2}
    plain = compile_fleet(problem(nodes, [gpu_task])).program
    assert plain.n_gpus == 2 and not plain.host.any()
    c = compile_fleet(problem(nodes, [gpu_task, {"id": "e", "gpus": 0, "cpu_cores": 4, "work_h": 3}]))
    p = c.program
    assert p.n_gpus == 4 and p.host.tolist() == [False, False, True, True]
    assert p.gpu_node[p.host].tolist() == [0, 1]
    assert p.eligible(0).tolist() == [True, True, False, False]
    assert p.eligible(1).tolist() == [False, False, True, True]
    assert p.cpu_only.tolist() == [False, True]
    assert p.gang[1] == 1 and p.share[1] == 0.0 and p.cost_c[1].max() == 0.0
    assert np.nanmax(c.duration[1]) == 3.0


@pytest.mark.parametrize(("how", "expected"), [("gpu", 0.0), ("count", 1.0), ("work", 3.0)])
def test_placed_weight_of_a_cpu_only_task(how: str, expected: float) -> None:
    p = problem(
        [{"id": "c", "cpu_cores": 8}],
        [{"id": "e", "gpus": 0, "cpu_cores": 4, "work_h": 3, "optional": True}],
        objective={"kind": "placed", "placed_weight": how},
    )
    assert compile_fleet(p).program.weight.tolist() == [expected]


def test_horizon_and_selector_limit_cpu_only_tasks() -> None:
    p = problem(
        [{"id": "c", "cpu_cores": 8, "labels": {"zone": "a"}}, {"id": "g", "gpu_counts": {"A": 1}}],
        [
            {"id": "long", "gpus": 0, "work_h": 5, "optional": True},
            {"id": "picky", "gpus": 0, "work_h": 1, "node_selector": {"zone": "b"}, "optional": True},
            {"id": "ok", "gpus": 0, "work_h": 1, "node_selector": {"zone": "a"}},
        ],
        horizon_h=4,
    )
    plan = solve(p, time_limit_s=5, workers=1)
    assert plan.status is Status.OPTIMAL
    assert {a.task: a.node for a in plan.assignments} == {"ok": "c"}
    reasons = {u.task: u.reason for u in plan.unassigned}
    assert "horizon" in reasons["long"] and "labels" in reasons["picky"]


# --- plans ------------------------------------------------------------------------------------------------


def test_cpu_only_node_receives_cpu_tasks() -> None:
    """A node without GPUs takes CPU-only tasks; the plan lists them with no GPU and their node."""
    p = problem(
        [{"id": "g", "gpu_counts": {"A": 1}, "cpu_cores": 2}, {"id": "c", "cpu_cores": 8, "memory_gb": 32}],
        [{"id": f"e{i}", "gpus": 0, "cpu_cores": 4, "memory_gb": 16, "work_h": 1} for i in range(2)],
    )
    for solver in ("greedy", "cpsat", "auto"):
        plan = solve(p, solver=solver, time_limit_s=5, workers=1)
        assert plan.status is Status.OPTIMAL, solver
        assert [(a.gpus, a.node, a.gpu_type, a.cost) for a in plan.assignments] == [([], "c", None, 0.0)] * 2
        assert [g.gpu for g in plan.gpus] == ["g/A/0"]
        assert plan.stats["criterion_gpus_used"] == 0 and plan.stats["criterion_nodes_used"] == 1
        summary = plan.summary()
        assert "node (CPU-only tasks)" in summary
        assert any(line.split() == ["c", "e0,", "e1"] for line in summary.splitlines())
        verify(plan, p)


def test_fleet_without_any_gpu() -> None:
    """Only GPU-less nodes: CPU-only tasks are placed, a GPU task has nowhere to go."""
    p = problem(
        [{"id": "c0", "cpu_cores": 4}, {"id": "c1", "cpu_cores": 4}],
        [
            {"id": "e0", "gpus": 0, "cpu_cores": 3, "work_h": 1, "anti_affinity": "s"},
            {"id": "e1", "gpus": 0, "cpu_cores": 3, "work_h": 1, "anti_affinity": "s"},
            {"id": "train", "work_h": 1, "optional": True},
        ],
        objective={"kind": "nodes_used"},
    )
    plan = solve(p, time_limit_s=5, workers=1)
    assert plan.status is Status.OPTIMAL
    assert sorted(a.node for a in plan.assignments) == ["c0", "c1"]
    assert [u.task for u in plan.unassigned] == ["train"]


def test_cpu_task_leaves_the_gpu_node_to_the_gpu_task() -> None:
    """The GPU node has CPU for either task but not both; the CPU-only node fits the CPU task only.
    Every backend finds the one plan that places both, whatever the order."""
    nodes = [
        {"id": "gpu-node", "gpu_counts": {"A": 1}, "cpu_cores": 16, "memory_gb": 64},
        {"id": "cpu-node", "cpu_cores": 8, "memory_gb": 64},
    ]
    for priority in (0, 1):
        p = problem(
            nodes,
            [
                {"id": "etl", "gpus": 0, "cpu_cores": 8, "work_h": 1, "optional": True, "priority": priority},
                {"id": "train", "cpu_cores": 12, "work_h": 1, "optional": True},
            ],
            objective={"kind": "placed", "placed_weight": "count"},
        )
        for solver in ("greedy", "cpsat", "auto"):
            plan = solve(p, solver=solver, time_limit_s=5, workers=1)
            where = {a.task: a.node for a in plan.assignments}
            assert where == {"etl": "cpu-node", "train": "gpu-node"}, (solver, priority)
            assert plan.status is Status.OPTIMAL


def test_moves_evict_a_cpu_task_for_a_gpu_task() -> None:
    """A greedy start with the CPU task on the GPU node: the ejection move relocates it."""
    nodes = [
        {"id": "gpu-node", "gpu_counts": {"A": 1}, "cpu_cores": 16},
        {"id": "cpu-node", "cpu_cores": 8},
    ]
    p = problem(
        nodes,
        [
            {"id": "etl", "gpus": 0, "cpu_cores": 8, "work_h": 1, "optional": True},
            {"id": "train", "cpu_cores": 12, "work_h": 1, "optional": True},
        ],
        objective={"kind": "placed", "placed_weight": "count"},
    )
    prog = compile_fleet(p).program
    state = FleetState(prog)
    state.place(0, np.flatnonzero(prog.host & (prog.gpu_node == 0)))
    assert state.best_spot(1) is None
    assert eject_improve(state, deadline=float("inf")) == 1
    assert prog.violations(state.assign) == []
    assert prog.gpu_node[state.assign[:, 0]].tolist() == [1, 0]


# --- the verifier -----------------------------------------------------------------------------------------


def test_verifier_checks_cpu_only_tasks() -> None:
    nodes = [
        {"id": "g", "gpu_counts": {"A": 1}, "cpu_cores": 4, "labels": {"zone": "a"}},
        {"id": "c", "cpu_cores": 8, "labels": {"zone": "b"}},
    ]
    p = problem(
        nodes,
        [
            {"id": "e", "gpus": 0, "cpu_cores": 6, "work_h": 1},
            {"id": "z", "gpus": 0, "cpu_cores": 1, "work_h": 1, "node_selector": {"zone": "b"}},
        ],
    )
    plan = solve(p, time_limit_s=5, workers=1)
    verify(plan, p)

    def forged(task: str, **changes) -> object:
        rows = [a.model_copy(update=changes) if a.task == task else a for a in plan.assignments]
        return plan.model_copy(update={"assignments": rows})

    cases = {
        "CPU": forged("e", node="g"),  # 6 cores on a 4-core node
        "unknown node": forged("e", node="nowhere"),
        "GPU": forged("e", gpus=["g/A/0"]),
        "labels": forged("z", node="g"),
    }
    for words, bad in cases.items():
        with pytest.raises(VerificationError, match=words):
            verify(bad, p)


# --- every solver against brute force on tiny random fleets -----------------------------------------------


def mixed_fleets() -> st.SearchStrategy[Problem]:
    """Tiny Problems with CPU-only tasks beside GPU tasks (the shared `cpu_fleets` strategy)."""
    return cpu_fleets().map(Problem.model_validate)


@SETTINGS
@given(mixed_fleets())
def test_cpsat_matches_brute_force_with_cpu_only_tasks(p: Problem) -> None:
    assume(any(t.gpus == 0 for t in p.tasks))
    prog = compile_fleet(p).program
    ref = brute_force(prog)
    res = solve_fleet_cpsat(prog, deadline=time.monotonic() + 10, workers=1, seed=0)
    if ref is None:
        assert res.status is Status.INFEASIBLE
        return
    best = ref[0]
    tol = 1e-6 * max(1.0, abs(best))
    grid = 0.0 if res.stats.get("cpsat_balance_exact", True) else prog.w_balance / 1000
    assert res.status.has_solution and prog.violations(res.assign) == []
    assert best - tol <= res.objective <= best + tol + grid
    assert res.bound is not None and res.bound <= best + tol


@SETTINGS
@given(mixed_fleets())
def test_greedy_moves_and_bounds_with_cpu_only_tasks(p: Problem) -> None:
    """Greedy and moves break no rule; the LP and packing bounds stay at or below the optimum; the
    plans of every backend pass the verifier (solve runs it) and are no better than the optimum."""
    assume(any(t.gpus == 0 for t in p.tasks))
    prog = compile_fleet(p).program
    state = fleet_greedy(prog)
    eject_improve(state, deadline=float("inf"))
    swap_improve(state, deadline=float("inf"))
    assert [v for v in prog.violations(state.assign) if "dropped" not in v] == []
    ref = brute_force(prog)
    for solver in ("greedy", "auto"):
        plan = solve(p, solver=solver, time_limit_s=5, workers=1)
        verify(plan, p)
        if ref is not None and plan.objective is not None:
            assert plan.objective >= ref[0] - 1e-6 * max(1.0, abs(ref[0]))
        if ref is not None and plan.bound is not None:
            assert plan.bound <= ref[0] + 1e-6 * max(1.0, abs(ref[0]))
        for a in plan.assignments:
            if p.tasks[[t.id for t in p.tasks].index(a.task)].gpus == 0:
                assert a.gpus == [] and a.node is not None
    if ref is None:
        return
    tol = 1e-6 * max(1.0, abs(ref[0]))
    assert fleet_lower_bound(prog).bound <= ref[0] + tol
    pack = packing_bound(prog)
    if pack is not None:
        assert pack.bound <= ref[0] + tol


def test_node_without_gpus_is_valid_for_gpu_tasks_too() -> None:
    """A GPU-less node is allowed in a problem without CPU-only tasks; it simply takes no GPU task."""
    p = Problem(
        gpu_types=[{"name": "A", "memory_gb": 80}],
        nodes=[Node(id="c", cpu_cores=8), Node(id="g", gpu_counts={"A": 1})],
        tasks=[Task(id="t", work_h=1, cpu_cores=2)],
    )
    plan = solve(p, time_limit_s=5, workers=1)
    assert [a.node for a in plan.assignments] == ["g"]
