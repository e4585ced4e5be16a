"""The fleet model end to end: compile rules, greedy feasibility, bounds against brute force,
solve() on the bundled example, re-planning, and the verifier catching broken plans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from gpuplan import solve
from gpuplan.bounds.fleet import fleet_lower_bound, packing_bound
from gpuplan.heuristics.fleet_greedy import (
    FleetState,
    eject_improve,
    fleet_greedy,
    state_of,
    swap_improve,
    trade_improve,
)
from gpuplan.models import GPU, GPUType, Node, Objective, Problem, Task
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.verify import VerificationError, verify
from tests.oracles import fleet_brute_force, fleet_spots
from tests.strategies import FLEET_TYPES, tiny_fleet_problems

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.json"
TYPES = FLEET_TYPES


def _example() -> Problem:
    return Problem.model_validate(json.loads(EXAMPLE.read_text()))


# --- compile ------------------------------------------------------------------------------------------


def test_eligibility_rules_compile_to_the_class_mask() -> None:
    p = Problem(
        gpu_types=TYPES,
        nodes=[
            Node(id="n1", gpu_counts={"A": 2}, labels={"zone": "x"}),
            Node(
                id="n2",
                gpus=[GPU(id="hot", type="B", temperature_c=95), GPU(id="sick", type="B", healthy=False)],
            ),
        ],
        tasks=[
            Task(id="no-a", work_h=1, forbidden_types=["A"]),
            Task(id="big", work_h=1, min_gpu_memory_gb=60),
            Task(id="zone-y", work_h=1, node_selector={"zone": "y"}),
            Task(id="gang3", work_h=1, gpus=3),
            Task(id="gang2", work_h=1, gpus=2, same_type=True),
        ],
        temperature_limit_c=90,
    )
    prog = compile_fleet(p).program
    usable = np.array([prog.eligible(t).any() for t in range(prog.n_tasks)])
    # no-a and big may only use B GPUs, which are hot or unhealthy; zone-y has no node; gang3 needs 3.
    assert usable.tolist() == [False, False, False, False, True]
    assert prog.eligible(4).tolist() == [True, True, False, False]


def test_transfer_time_and_dataset_charge() -> None:
    p = Problem(
        gpu_types=TYPES,
        nodes=[Node(id="n1", gpu_counts={"A": 2}, bandwidth_gbps=8.0)],
        tasks=[Task(id=f"t{i}", work_h=1, gpu_share=0.5, input_gb=3600, dataset="d") for i in range(2)],
        transfer_cost_per_gb=0.01,
    )
    c = compile_fleet(p)
    # 3600 GB over 8 Gbit/s = 1 h: duration 2 h, cost 2 h x 0.5 x 2.0 = 2.0 per task.
    assert c.duration[0, 0] == pytest.approx(2.0)
    prog = c.program
    a = prog.empty_assign()
    a[0, 0], a[1, 0] = 0, 1
    assert prog.objective(a) == pytest.approx(2.0 + 2.0 + 36.0)  # one copy of the dataset


def test_a_trade_of_two_gpus_contents_makes_cpu_room() -> None:
    """Node A has GPU share for t but not its CPU; B has CPU but no GPU room. Trading the contents of
    A's GPU a0 (two half-GPU tasks, 8 cores) with B's b0 (one whole-GPU task, 1 core) makes room:
    no single-task ejection or swap can (a half-GPU task does not fit beside a whole one)."""
    nodes = [{"id": n, "gpu_counts": {"B": 2}, "cpu_cores": 10, "memory_gb": 100} for n in ("A", "B")]
    tasks = [
        {"id": "s1", "gpu_share": 0.5, "cpu_cores": 4, "work_h": 1},
        {"id": "s2", "gpu_share": 0.5, "cpu_cores": 4, "work_h": 1},
        {"id": "q", "gpu_share": 0.5, "cpu_cores": 1, "work_h": 1},
        {"id": "w", "cpu_cores": 1, "work_h": 1},
        {"id": "v", "cpu_cores": 1, "work_h": 1},
        {"id": "t", "gpu_share": 0.5, "cpu_cores": 4, "work_h": 1, "optional": True},
    ]
    p = Problem.model_validate({"gpu_types": TYPES, "nodes": nodes, "tasks": tasks})
    c = compile_fleet(p)
    prog = c.program
    gpu = {g: k for k, g in enumerate(c.gpu_ids)}
    a0, a1, b0, b1 = (gpu[f"{n}/B/{k}"] for n, k in (("A", 0), ("A", 1), ("B", 0), ("B", 1)))
    start = prog.empty_assign()
    for task, g in zip(("s1", "s2", "q", "w", "v"), (a0, a0, a1, b0, b1), strict=True):
        start[c.task_ids.index(task), 0] = g
    t = c.task_ids.index("t")
    for move in (eject_improve, swap_improve):
        state = state_of(prog, start)
        assert move(state, deadline=float("inf")) == 0, move.__name__
    state = state_of(prog, start)
    assert trade_improve(state, deadline=float("inf")) == 1
    assert prog.violations(state.assign) == []
    assert state.assign[t, 0] == a1
    assert {c.task_ids[u] for u in np.flatnonzero(state.assign[:, 0] == b0)} == {"s1", "s2"}
    assert {c.task_ids[u] for u in np.flatnonzero(state.assign[:, 0] == a0)} == {"w"}
    assert prog.objective(state.assign) < prog.objective(start)


@st_.composite
def _cpu_starved(draw: st_.DrawFn) -> tuple[Problem, list[int]]:
    """Two or three nodes of 2 GPUs with few cores, shared-GPU tasks heavy on cores (room for the
    trade move), and an order to lay them in."""
    nodes = [
        {"id": f"n{k}", "gpu_counts": {"B": 2}, "cpu_cores": draw(st_.integers(4, 12)), "memory_gb": 100}
        for k in range(draw(st_.integers(2, 3)))
    ]
    tasks = [
        {
            "id": f"t{k}",
            "gpu_share": draw(st_.sampled_from([0.25, 0.5, 1.0])),
            "cpu_cores": draw(st_.integers(1, 6)),
            "work_h": 1,
            "optional": draw(st_.booleans()),
        }
        for k in range(draw(st_.integers(3, 10)))
    ]
    order = draw(st_.permutations(range(len(tasks))))
    return Problem.model_validate({"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}), list(order)


@settings(max_examples=150, deadline=None)
@given(_cpu_starved())
def test_trades_keep_every_rule_and_never_cost_more(case: tuple[Problem, list[int]]) -> None:
    """From a start laid in a drawn order, trades of GPU contents (which do happen on such fleets:
    32 placements in 600 draws) break no rule, leave out no placed task and never raise the
    objective."""
    problem, order = case
    prog = compile_fleet(problem).program
    state = FleetState(prog)
    for t in order:
        spot = state.best_spot(t)
        if spot is not None:
            state.place(t, spot)
    before = state.assign[:, 0] >= 0
    start = prog.objective(state.assign)
    trade_improve(state, deadline=float("inf"))
    assert np.all(state.assign[before, 0] >= 0)
    assert [v for v in prog.violations(state.assign) if "dropped" not in v] == []
    assert prog.objective(state.assign) <= start + 1e-9 * max(1.0, abs(start))


# --- random tiny problems ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(tiny_fleet_problems())
def test_greedy_is_feasible_and_bounds_hold(problem: Problem) -> None:
    """Greedy plus moves never break a rule; both bounds stay at or below the brute-force optimum."""
    prog = compile_fleet(problem).program
    state = fleet_greedy(prog)
    assert [v for v in prog.violations(state.assign) if "dropped" not in v] == []
    # One pass only ever adds load: a required task it leaves out fits nowhere in its final plan.
    out = np.flatnonzero((state.assign[:, 0] < 0) & ~prog.optional)
    assert {int(t): fleet_spots(prog, state.assign, int(t)) for t in out} == {int(t): [] for t in out}
    before = state.assign[:, 0] >= 0
    eject_improve(state, deadline=float("inf"))
    swap_improve(state, deadline=float("inf"))
    trade_improve(state, deadline=float("inf"))
    placed = state.assign[:, 0] >= 0
    assert np.all(placed[before])  # the moves place tasks, they never leave one out
    bad = [v for v in prog.violations(state.assign) if "dropped" not in v]
    assert bad == []
    best = fleet_brute_force(prog)
    all_required = not np.any(~placed & ~prog.optional)
    if best is None:
        assert not all_required  # a plan with every required task would be feasible
        return
    lp = fleet_lower_bound(prog)
    pack = packing_bound(prog)
    assert lp.bound <= best[0] + 1e-6 * max(1.0, abs(best[0]))
    if pack is not None:
        assert pack.bound <= best[0] + 1e-6 * max(1.0, abs(best[0]))
    if all_required:
        assert prog.objective(state.assign) >= best[0] - 1e-6 * max(1.0, abs(best[0]))


def test_packing_bound_sees_fragmentation() -> None:
    """Three 0.6-GPU tasks on two GPUs: only two fit, and the packing bound proves it."""
    p = Problem(
        gpu_types=TYPES,
        nodes=[Node(id="n", gpu_counts={"A": 2})],
        tasks=[Task(id=f"t{i}", work_h=1, gpu_share=0.6, optional=True) for i in range(3)],
        objective=Objective(kind="placed"),
    )
    prog = compile_fleet(p).program
    assert fleet_lower_bound(prog).bound == pytest.approx(0.0, abs=1e-9)  # the plain LP misses it
    assert packing_bound(prog).bound == pytest.approx(0.6)
    plan = solve(p, time_limit_s=5, workers=1)
    assert plan.status.value == "optimal" and plan.objective == pytest.approx(0.6)


# --- solve() end to end --------------------------------------------------------------------------------


def test_example_plan_holds_every_rule() -> None:
    problem = _example()
    plan = solve(problem, time_limit_s=5, workers=1)
    assert plan.status.has_solution
    by_task = {a.task: a for a in plan.assignments}
    pre = by_task["pretrain"]
    assert len(pre.gpus) == 4 and len({g.split("/")[0] for g in pre.gpus}) == 1
    serve_nodes = {by_task[f"serve-{i}"].node for i in (1, 2, 3) if f"serve-{i}" in by_task}
    assert len(serve_nodes) == sum(f"serve-{i}" in by_task for i in (1, 2, 3))
    assert "edge-1/l4-b" not in {g for a in plan.assignments for g in a.gpus}  # over the limit
    assert by_task["embed"].gpu_type == "L4"
    assert by_task["serve-1"].moved is False  # migration cost keeps it home
    verify(plan, problem)


def test_high_migration_cost_moves_nothing() -> None:
    nodes = [Node(id="n1", gpu_counts={"A": 2}), Node(id="n2", gpu_counts={"B": 2})]
    base = dict(gpu_types=TYPES, nodes=nodes)
    # On the pricier B GPUs now; moving to A saves 1 per task-hour, moving costs 100.
    tasks = [Task(id=f"t{i}", work_h=1, current_gpus=[f"n2/B/{i}"], migration_cost=100.0) for i in range(2)]
    plan = solve(Problem(**base, tasks=tasks), time_limit_s=5, workers=1)
    assert plan.status.value == "optimal"
    assert all(a.moved is False for a in plan.assignments)
    cheap = [t.model_copy(update={"migration_cost": 0.1}) for t in tasks]
    plan = solve(Problem(**base, tasks=cheap), time_limit_s=5, workers=1)
    assert all(a.moved is True for a in plan.assignments)


def test_placed_objective_prefers_large_requests() -> None:
    p = Problem(
        gpu_types=TYPES,
        nodes=[Node(id="n", gpu_counts={"A": 1}, cpu_cores=8)],
        tasks=[
            Task(id="small", work_h=1, gpu_share=0.25, cpu_cores=4, optional=True),
            Task(id="large", work_h=1, gpu_share=0.75, cpu_cores=6, optional=True),
        ],
        objective=Objective(kind="placed"),
    )
    plan = solve(p, time_limit_s=5, workers=1)
    assert [a.task for a in plan.assignments] == ["large"]
    assert plan.objective == pytest.approx(0.25) and plan.status.value == "optimal"


def test_milp_is_refused_for_fleet_problems() -> None:
    with pytest.raises(ValueError, match="milp"):
        solve(_example(), solver="milp", time_limit_s=1)


# --- the verifier ----------------------------------------------------------------------------------------


def _tampered(plan, task: str, **changes):
    assignments = [a.model_copy(update=changes) if a.task == task else a for a in plan.assignments]
    return plan.model_copy(update={"assignments": assignments})


def test_verifier_rejects_broken_fleet_plans() -> None:
    problem = _example()
    plan = solve(problem, time_limit_s=5, workers=1)
    by_task = {a.task: a for a in plan.assignments}
    pre = by_task["pretrain"]
    other = "dgx-1" if pre.node == "dgx-2" else "dgx-2"
    split = [*pre.gpus[:3], f"{other}/A100-80G/3"]
    cases = [
        _tampered(plan, "pretrain", gpus=split),
        _tampered(plan, "pretrain", gpus=pre.gpus[:3]),
        _tampered(plan, "embed", gpus=[pre.gpus[0]], node=pre.node),
        _tampered(plan, "serve-1", moved=not by_task["serve-1"].moved),
    ]
    serve = [by_task[f"serve-{i}"] for i in (1, 2, 3) if f"serve-{i}" in by_task]
    if len(serve) >= 2:
        cases.append(_tampered(plan, serve[1].task, gpus=serve[0].gpus, node=serve[0].node))
    for bad in cases:
        with pytest.raises(VerificationError):
            verify(bad, problem)


def test_verifier_rejects_node_cpu_overload() -> None:
    p = Problem(
        gpu_types=TYPES,
        nodes=[Node(id="n", gpu_counts={"A": 2}, cpu_cores=4)],
        tasks=[Task(id=f"t{i}", work_h=1, cpu_cores=3, optional=True) for i in range(2)],
    )
    plan = solve(p, time_limit_s=5, workers=1)
    assert len(plan.assignments) == 1
    placed = plan.assignments[0]
    extra = placed.model_copy(update={"task": "t1" if placed.task == "t0" else "t0", "gpus": ["n/A/1"]})
    forged = plan.model_copy(update={"assignments": [placed, extra], "unassigned": []})
    with pytest.raises(VerificationError, match="CPU"):
        verify(forged, p)


def test_violations_name_each_broken_rule() -> None:
    p = Problem(
        gpu_types=TYPES,
        nodes=[Node(id="n1", gpu_counts={"A": 2}, cpu_cores=4), Node(id="n2", gpu_counts={"A": 1, "B": 1})],
        tasks=[
            Task(id="gang", work_h=1, gpus=2, same_type=True),
            Task(id="pinned", work_h=1, allowed_types=["B"], cpu_cores=5),
            Task(id="req", work_h=1),
        ],
    )
    prog = compile_fleet(p).program
    a = prog.empty_assign()
    a[0] = [0, 2]  # n1 and n2
    a[1, 0] = 0  # type A not allowed, and 5 cores on a 4-core node
    found = " | ".join(prog.violations(a))
    for words in ("gang spans nodes", "task 1: ineligible GPU", "required task 2 dropped", "node CPU"):
        assert words in found
    a = prog.empty_assign()
    a[0] = [2, 3]  # n2: one A and one B
    a[2] = [1, -1]
    assert prog.violations(a) == ["required task 1 dropped", "task 0: gang mixes types"]
    a[0] = [0, 0]
    assert "task 0: a GPU used twice" in prog.violations(a)
    a[0] = [0, -1]
    assert "task 0: 1 GPUs for a gang of 2" in prog.violations(a)


def test_migration_is_part_of_cost_and_its_weight() -> None:
    """Regression: migration was counted at weight 1 whatever the objective, breaking lexicographic
    order (gpus_used first must consolidate two running half-GPU tasks despite their moves)."""
    tasks = [
        Task(id=x, work_h=1, gpu_share=0.5, current_gpus=[f"n0/A/{i}"], migration_cost=5)
        for i, x in enumerate("ab")
    ]
    base = dict(gpu_types=TYPES[:1], nodes=[Node(id="n0", gpu_counts={"A": 2})], tasks=tasks)
    lex = Objective(kind="lexicographic", terms=[{"kind": "gpus_used"}, {"kind": "cost"}])
    prog = compile_fleet(Problem(**base, objective=lex)).program
    best = fleet_brute_force(prog)
    assert best is not None and np.unique(best[1][best[1] >= 0]).size == 1
    weighted = Objective(kind="weighted", terms=[{"kind": "gpus_used"}, {"kind": "cost", "weight": 10}])
    assert compile_fleet(Problem(**base, objective=weighted)).program.move_cost.tolist() == [50.0, 50.0]
    plain = compile_fleet(Problem(**base, objective=Objective(kind="gpus_used"))).program
    assert plain.move_cost.tolist() == [5.0, 5.0]  # no cost criterion: migration at weight 1


@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("*.json")), ids=lambda p: p.stem)
def test_every_bundled_example_solves(path: Path) -> None:
    plan = solve(json.loads(path.read_text()), time_limit_s=5, workers=1)
    assert plan.status.value == "optimal"


def test_consolidate_example_uses_one_node_then_balances() -> None:
    plan = solve(json.loads((EXAMPLE.parent / "consolidate.json").read_text()), time_limit_s=5, workers=1)
    assert plan.stats["criterion_nodes_used"] == 1
    assert plan.stats["criterion_max_utilization"] == pytest.approx(0.75)


def test_horizon_lets_whole_gpu_tasks_and_gangs_take_turns() -> None:
    """Regression: with a horizon, whole-GPU tasks and gangs were given their GPUs for the whole
    horizon; GPU-hours add up instead (two 2-GPU gangs and two 1 h tasks on 2 GPUs in 4 h)."""
    p = Problem(
        gpu_types=TYPES[:1],
        nodes=[Node(id="n", gpu_counts={"A": 2})],
        tasks=[
            Task(id="g1", gpus=2, work_h=1.5),
            Task(id="g2", gpus=2, work_h=1.5),
            Task(id="w1", work_h=1),
            Task(id="w2", work_h=1),
        ],
        horizon_h=4,
    )
    prog = compile_fleet(p).program
    state = fleet_greedy(prog)
    assert np.all(state.assign[:, 0] >= 0) and prog.violations(state.assign) == []
    plan = solve(p, time_limit_s=5, workers=1)
    assert plan.status.value == "optimal" and len(plan.assignments) == 4


def test_lexicographic_weights_count_migration_in_the_cost_unit() -> None:
    """Regression: with free GPUs (cost range 0) the cost unit ignored migration, so cost's
    lexicographic weight was ~1e18 and migration overflowed the integer model (NaN coefficients)."""
    free = GPUType(name="A", memory_gb=40)
    p = Problem(
        gpu_types=[free],
        nodes=[Node(id="n", gpu_counts={"A": 2})],
        tasks=[Task(id="t", work_h=1, gpu_share=0.5, current_gpus=["n/A/0"], migration_cost=1)],
        objective=Objective(kind="lexicographic", terms=[{"kind": "cost"}, {"kind": "gpus_used"}]),
    )
    prog = compile_fleet(p).program
    assert np.all(np.isfinite(prog.move_cost)) and prog.move_cost.max() < 1e9
    plan = solve(p, time_limit_s=5, workers=1)
    assert plan.status.value == "optimal" and plan.assignments[0].moved is False
