"""A tamper battery for verify(): valid engine plans are accepted, and each rule, broken once, is
rejected with a message that names it; single moves agree with the fleet program's own feasibility."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpuplan
from gpuplan import Assignment, Plan, Problem, Status, Unassigned, VerificationError, verify
from gpuplan.models import GPUUsage
from gpuplan.program.decode_fleet import decode_fleet
from gpuplan.program.fleet import NONE, FleetCompiled, compile_fleet
from tests.strategies import SETTINGS, fleets, tiny_fleet_problems

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: Small problems, each set up for the rules the examples do not reach.
HAND_MADE: dict[str, dict] = {
    # Two pools of one-GPU-type nodes with limited CPU and host memory, and a mixed node for a gang.
    "nodes": {
        "gpu_types": [
            {"name": "A", "memory_gb": 40, "cost_per_hour": 1.0},
            {"name": "B", "memory_gb": 80, "cost_per_hour": 2.0},
        ],
        "nodes": [
            {"id": "n0", "gpu_counts": {"A": 2}, "cpu_cores": 8, "memory_gb": 32, "labels": {"pool": "p"}},
            {"id": "n1", "gpu_counts": {"A": 2}, "cpu_cores": 8, "memory_gb": 32, "labels": {"pool": "p"}},
            {"id": "m", "gpu_counts": {"A": 2, "B": 1}, "labels": {"pool": "mix"}},
        ],
        "tasks": [
            {"id": "c1", "work_h": 1, "gpu_share": 0.25, "cpu_cores": 6, "node_selector": {"pool": "p"}},
            {"id": "c2", "work_h": 1, "gpu_share": 0.25, "cpu_cores": 6, "node_selector": {"pool": "p"}},
            {"id": "r1", "work_h": 1, "gpu_share": 0.25, "memory_gb": 20, "node_selector": {"pool": "p"}},
            {"id": "r2", "work_h": 1, "gpu_share": 0.25, "memory_gb": 20, "node_selector": {"pool": "p"}},
            {"id": "gang", "gpus": 2, "same_type": True, "work_h": 1, "node_selector": {"pool": "mix"}},
        ],
    },
    # One GPU, two optional tasks alike but for their priority: only the higher one fits.
    "one_gpu": {
        "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 1.0}],
        "nodes": [{"id": "n", "gpus": [{"id": "g", "type": "A"}]}],
        "tasks": [
            {"id": "hi", "work_h": 1, "optional": True, "priority": 2},
            {"id": "lo", "work_h": 1, "optional": True, "priority": 1},
        ],
    },
    # Room for both optional tasks.
    "room": {
        "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 1.0}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 2}}],
        "tasks": [
            {"id": "a", "work_h": 1, "optional": True},
            {"id": "b", "work_h": 2, "optional": True},
        ],
    },
    # Two criteria in order: the plan reports the weights it used.
    "lex": {
        "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 1.0}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 2}}],
        "tasks": [{"id": "a", "work_h": 1}, {"id": "b", "work_h": 2, "gpu_share": 0.5}],
        "objective": {"kind": "lexicographic", "terms": [{"kind": "gpus_used"}, {"kind": "cost"}]},
    },
}


@functools.cache
def solved(name: str) -> tuple[Problem, Plan]:
    """The problem called `name` (an example file or a hand-made one) and the engine's plan for it."""
    if name == "scheduled":  # no solver schedules yet: the hand-made schedule
        problem = Problem.model_validate(SCHEDULED)
        return problem, _scheduled_plan(problem, SCHEDULE)
    data = HAND_MADE[name] if name in HAND_MADE else json.loads((EXAMPLES / f"{name}.json").read_text())
    problem = Problem.model_validate(data)
    plan = gpuplan.solve(problem, time_limit_s=5, workers=1, seed=0)
    assert plan.status.has_solution
    return problem, plan


# --- building tampered plans -------------------------------------------------------------------------


def _by_task(plan: Plan) -> dict[str, Assignment]:
    return {a.task: a for a in plan.assignments}


def _replace(plan: Plan, task: str, **changes: object) -> Plan:
    """`plan` with the assignment of `task` changed by `changes` (nothing else recomputed)."""
    out = [a.model_copy(update=changes) if a.task == task else a for a in plan.assignments]
    return plan.model_copy(update={"assignments": out})


def _placed(p: Problem, task_id: str, gpus: list[str]) -> Assignment:
    """An assignment of `task_id` on `gpus` whose node, type, duration, cost and moved flag are
    recomputed from the specs (the formulas of the Problem's documentation)."""
    task = next(t for t in p.tasks if t.id == task_id)
    where = {g.id: (n, g) for n, g in p.all_gpus()}
    types = {t.name: t for t in p.gpu_types}
    money, durs, kinds = 0.0, [], set()
    for gid in gpus:
        node, gpu = where[gid]
        gt = types[gpu.type]
        base = task.duration_h[gt.name] if task.duration_h and gt.name in task.duration_h else None
        if base is None:
            assert task.work_h is not None
            base = task.work_h / gt.speed
        if node.bandwidth_gbps is not None:
            base += 8.0 * task.input_gb / (3600.0 * node.bandwidth_gbps)
        durs.append(base)
        kinds.add(gt.name)
        money += base * task.gpu_share * gt.cost_per_hour
    if task.dataset is None:
        money += p.transfer_cost_per_gb * task.input_gb
    moved = None
    if task.current_gpus is not None:
        left = len(set(task.current_gpus) - set(gpus))
        money += task.migration_cost * left / task.gpus
        moved = left > 0
    return Assignment(
        task=task_id,
        gpus=gpus,
        node=where[gpus[0]][0].id,
        gpu_type=kinds.pop() if len(kinds) == 1 else None,
        cost=money,
        duration_h=max(durs),
        moved=moved,
    )


def _move(plan: Plan, p: Problem, task: str, gpus: list[str]) -> Plan:
    """`plan` with `task` moved onto `gpus`, its own assignment kept consistent with the specs."""
    new = _placed(p, task, gpus)
    out = [new if a.task == task else a for a in plan.assignments]
    return plan.model_copy(update={"assignments": out})


def _assign(c: FleetCompiled, plan: Plan) -> np.ndarray:
    """The plan in the fleet program's index space (a CPU-only task takes its node's host slot)."""
    index = {g: i for i, g in enumerate(c.gpu_ids)}
    rows = {t: i for i, t in enumerate(c.task_ids)}
    assign = c.program.empty_assign()
    for a in plan.assignments:
        slots = a.gpus or [f"{a.node}/host"]
        assign[rows[a.task], : len(slots)] = [index[g] for g in slots]
    return assign


def _decoded(c: FleetCompiled, assign: np.ndarray) -> Plan:
    """The plan the engine's decoder makes of `assign`: every number consistent with it."""
    return decode_fleet(
        c,
        assign,
        Status.FEASIBLE,
        None,
        solver="tampered",
        phases=["tampered"],
        requested="tampered",
        reason="",
        started=time.monotonic(),
        warm=None,
        incumbents=[],
        stats={},
    )


def _redecoded(p: Problem, plan: Plan, changes: dict[str, list[str] | None]) -> Plan:
    """`plan` with tasks moved (a GPU list or host slot) or dropped (None), every number recomputed."""
    c = compile_fleet(p)
    assign = _assign(c, plan)
    index = {g: i for i, g in enumerate(c.gpu_ids)}
    for task, gpus in changes.items():
        row = c.task_ids.index(task)
        assign[row] = NONE
        if gpus is not None:
            assign[row, : len(gpus)] = [index[g] for g in gpus]
    return _decoded(c, assign)


# --- the engine's plans are accepted ----------------------------------------------------------------

SOURCES = ["fleet", "cpu_tasks", "cluster", *HAND_MADE]


@pytest.mark.parametrize("name", SOURCES)
def test_engine_plans_are_accepted(name: str) -> None:
    """The engine's plan for each example and hand-made problem passes verify."""
    problem, plan = solved(name)
    verify(plan, problem)
    verify(_redecoded(problem, plan, {}), problem)


def test_hand_made_plans_have_the_expected_shape() -> None:
    """The hand-made problems are solved as the tampers below expect."""
    _, nodes = solved("nodes")
    at = _by_task(nodes)
    assert at["c1"].node != at["c2"].node and at["r1"].node != at["r2"].node
    assert at["gang"].gpu_type == "A"
    _, one = solved("one_gpu")
    assert [a.task for a in one.assignments] == ["hi"] and [u.task for u in one.unassigned] == ["lo"]
    _, room = solved("room")
    assert {a.task for a in room.assignments} == {"a", "b"}


# --- one tamper per rule -----------------------------------------------------------------------------


def _free_gpu(plan: Plan, p: Problem, node: str) -> str:
    """A GPU of `node` that no task of `plan` uses."""
    used = {g for a in plan.assignments for g in a.gpus}
    return next(g.id for n, g in p.all_gpus() if n.id == node and g.id not in used)


def _split_gang(p: Problem, plan: Plan) -> Plan:
    """The 4-GPU gang 'pretrain' with its last GPU on the other DGX node."""
    pre = _by_task(plan)["pretrain"]
    other = "dgx-1" if pre.node == "dgx-2" else "dgx-2"
    return _move(plan, p, "pretrain", [*pre.gpus[:3], _free_gpu(plan, p, other)])


def _mixed_gang(p: Problem, plan: Plan) -> Plan:
    """The same_type gang with one of its A GPUs swapped for the node's B GPU."""
    return _move(plan, p, "gang", [_by_task(plan)["gang"].gpus[0], "m/B/0"])


def _next_to(task: str, other: str) -> Callable[[Problem, Plan], Plan]:
    """Move `task` onto the (first) GPU of `other`."""
    return lambda p, plan: _move(plan, p, task, [_by_task(plan)[other].gpus[0]])


def _onto(task: str, gpus: list[str]) -> Callable[[Problem, Plan], Plan]:
    """Move `task` onto `gpus`."""
    return lambda p, plan: _move(plan, p, task, gpus)


def _edit(task: str, **changes: object) -> Callable[[Problem, Plan], Plan]:
    """Change fields of the assignment of `task` (nothing recomputed)."""
    return lambda p, plan: _replace(plan, task, **changes)


def _plan_edit(fn: Callable[[Plan], dict]) -> Callable[[Problem, Plan], Plan]:
    """Change fields of the plan itself, as `fn` of the plan."""
    return lambda p, plan: plan.model_copy(update=fn(plan))


def _unassign(task: str) -> Callable[[Problem, Plan], Plan]:
    """Move `task` from the assignments to the unassigned list (numbers left as they were)."""

    def tamper(p: Problem, plan: Plan) -> Plan:
        kept = [a for a in plan.assignments if a.task != task]
        return plan.model_copy(
            update={"assignments": kept, "unassigned": [*plan.unassigned, Unassigned(task=task, reason="x")]}
        )

    return tamper


def _swap_priorities(p: Problem, plan: Plan) -> Plan:
    """On the one-GPU fleet: the lower-priority task placed, the higher one dropped."""
    return _redecoded(p, plan, {"hi": None, "lo": ["g"]})


@dataclass(frozen=True)
class Tamper:
    """One rule broken once: the plan it starts from, how it is broken, the wording expected."""

    rule: str
    source: str
    tamper: Callable[[Problem, Plan], Plan]
    match: str
    missed: str = ""  # why verify() accepts this broken plan (a known gap: the test is xfail strict)


TAMPERS = [
    Tamper("gang_split_over_nodes", "fleet", _split_gang, r"'pretrain': gang spans nodes"),
    Tamper(
        "gang_too_few_gpus",
        "fleet",
        lambda p, plan: _move(plan, p, "pretrain", _by_task(plan)["pretrain"].gpus[:3]),
        r"'pretrain' needs 4 distinct GPU\(s\)",
    ),
    Tamper(
        "gang_duplicated_gpu",
        "fleet",
        lambda p, plan: _move(
            plan, p, "pretrain", [*_by_task(plan)["pretrain"].gpus[:3], _by_task(plan)["pretrain"].gpus[0]]
        ),
        r"'pretrain' needs 4 distinct GPU\(s\)",
    ),
    Tamper("same_type_gang_mixes_types", "nodes", _mixed_gang, r"'gang': gang mixes types \['A', 'B'\]"),
    Tamper(
        "node_selector", "fleet", _onto("finetune-a", ["edge-1/l4-c", "edge-1/l4-a"]), r"lacks the labels"
    ),
    Tamper(
        "forbidden_type",
        "fleet",
        lambda p, plan: _move(plan, p, "embed", [_free_gpu(plan, p, "dgx-1")]),
        r"'embed' may not run on GPU .*: type A100-80G forbidden",
    ),
    Tamper(
        "type_not_allowed",
        "cluster",
        _onto("pretrain-0", ["edge-1/L4-24G/0"]),
        r"'pretrain-0' may not run on GPU .*: type L4-24G not allowed",
    ),
    Tamper(
        "gpu_memory_of_type",
        "cluster",
        _onto("finetune-0", ["edge-1/L4-24G/0"]),
        r"'finetune-0' may not run on GPU .*: needs 40.0 GB, type L4-24G has 24.0 GB",
    ),
    Tamper(
        "min_gpu_memory",
        "fleet",
        _onto("eval-big", ["edge-1/l4-c"]),
        r"'eval-big' may not run on GPU .*: needs 80.0 GB, type L4 has 24.0 GB",
    ),
    Tamper("unhealthy_gpu", "cluster", _onto("finetune-0", ["hopper-1/gpu3"]), r"GPU unhealthy"),
    Tamper(
        "temperature_limit",
        "fleet",
        _onto("serve-3", ["edge-1/l4-b"]),
        r"'serve-3' may not run on GPU 'edge-1/l4-b': GPU over the temperature limit",
    ),
    Tamper(
        "task_longer_than_horizon",
        "cluster",
        _onto("pretrain-2", ["ampere-2/A100-80G/1"]),
        r"'pretrain-2' may not run on GPU .*: 33.6 GPU-hours exceed the horizon 24",
    ),
    Tamper(
        "gpu_share_over_one",
        "fleet",
        _next_to("eval-big", "serve-2"),
        r"GPU 'dgx-1/A100-80G/\d' over capacity on gpu_share: 1.5 > 1",
    ),
    Tamper(
        "gpu_memory_side_by_side", "fleet", _next_to("notebook", "serve-3"), r"over memory: 30 GB > 24 GB"
    ),
    Tamper(
        "gpu_time_over_horizon",
        "cluster",
        _next_to("pretrain-2", "pretrain-0"),
        r"GPU 'hopper-1/gpu\d' over capacity on gpu_time_h: 39.5\d* > 24",
    ),
    Tamper("node_cpu", "nodes", _next_to("c2", "c1"), r"node 'n\d' over CPU: 12 > 8 cores"),
    Tamper("node_host_memory", "nodes", _next_to("r2", "r1"), r"node 'n\d' over host memory: 40 > 32 GB"),
    Tamper(
        "anti_affinity",
        "fleet",
        lambda p, plan: _move(plan, p, "serve-2", [_free_gpu(plan, p, _by_task(plan)["serve-1"].node or "")]),
        r"spread group 'chat-service' twice on node",
    ),
    Tamper(
        "cpu_only_anti_affinity",
        "cpu_tasks",
        lambda p, plan: _replace(plan, "etl-2", node=_by_task(plan)["etl-1"].node),
        r"'etl-2': spread group 'etl' twice on node",
    ),
    Tamper(
        "cpu_only_given_a_gpu",
        "cpu_tasks",
        _edit("tokenize", gpus=["gpu-1/A100-80G/0"]),
        r"CPU-only task 'tokenize' on GPU\(s\)",
    ),
    Tamper(
        "cpu_only_unknown_node", "cpu_tasks", _edit("tokenize", node="nowhere"), r"on unknown node 'nowhere'"
    ),
    Tamper(
        "cpu_only_node_selector", "cpu_tasks", _edit("report", node="cpu-1"), r"'report': node 'cpu-1' lacks"
    ),
    Tamper(
        "required_left_unassigned",
        "fleet",
        _unassign("pretrain"),
        r"required task 'pretrain' left unassigned",
    ),
    Tamper(
        "assigned_and_unassigned",
        "fleet",
        _plan_edit(lambda plan: {"unassigned": [Unassigned(task="serve-2", reason="x")]}),
        r"'serve-2' unknown or also assigned",
    ),
    Tamper(
        "assigned_twice",
        "fleet",
        _plan_edit(lambda plan: {"assignments": [*plan.assignments, _by_task(plan)["embed"]]}),
        r"'embed' appears twice",
    ),
    Tamper(
        "missing_from_both_lists",
        "fleet",
        _plan_edit(lambda plan: {"assignments": [a for a in plan.assignments if a.task != "serve-2"]}),
        r"neither assigned nor unassigned: \['serve-2'\]",
    ),
    Tamper(
        "unknown_task",
        "fleet",
        _plan_edit(
            lambda plan: {
                "assignments": [
                    *plan.assignments,
                    _by_task(plan)["embed"].model_copy(update={"task": "ghost"}),
                ]
            }
        ),
        r"unknown task 'ghost'",
    ),
    Tamper(
        "unknown_unassigned_task",
        "fleet",
        _plan_edit(lambda plan: {"unassigned": [Unassigned(task="ghost", reason="x")]}),
        r"unassigned task 'ghost' unknown",
    ),
    Tamper(
        "unknown_gpu", "fleet", _edit("serve-2", gpus=["dgx-9/A100-80G/0"]), r"on unknown GPU 'dgx-9/A100"
    ),
    Tamper("wrong_node", "fleet", _edit("serve-3", node="dgx-1"), r"'serve-3': reported node 'dgx-1'"),
    Tamper(
        "wrong_type", "fleet", _edit("serve-3", gpu_type="A100-80G"), r"'serve-3': reported type 'A100-80G'"
    ),
    Tamper(
        "wrong_duration",
        "fleet",
        lambda p, plan: _replace(plan, "embed", duration_h=_by_task(plan)["embed"].duration_h * 2),
        r"'embed': reported duration",
    ),
    Tamper(
        "wrong_moved_flag",
        "fleet",
        lambda p, plan: _replace(plan, "serve-1", moved=not _by_task(plan)["serve-1"].moved),
        r"'serve-1': moved flag",
    ),
    Tamper(
        "wrong_cost",
        "fleet",
        lambda p, plan: _replace(plan, "serve-2", cost=_by_task(plan)["serve-2"].cost + 0.5),
        r"'serve-2': reported cost .* \(money\)",
    ),
    Tamper(
        "wrong_cost_gang_with_transfer",
        "fleet",
        lambda p, plan: _replace(plan, "finetune-a", cost=_by_task(plan)["finetune-a"].cost * 0.9),
        r"'finetune-a': reported cost",
    ),
    Tamper(
        "wrong_objective",
        "fleet",
        _plan_edit(lambda plan: {"objective": plan.objective + 1.0}),
        r"objective .* != placement part",
    ),
    Tamper(
        "wrong_placement_cost",
        "fleet",
        _plan_edit(
            lambda plan: {"placement_cost": plan.placement_cost + 1.0, "objective": plan.objective + 1}
        ),
        r"placement_cost .* differs from the recomputed",
    ),
    Tamper(
        "wrong_criterion_gpus_used",
        "fleet",
        _plan_edit(lambda plan: {"stats": {**plan.stats, "criterion_gpus_used": 10.0}}),
        r"criterion_gpus_used reported 10.0, recomputed 11.0",
    ),
    Tamper(
        "wrong_criterion_cost",
        "cpu_tasks",
        _plan_edit(lambda plan: {"stats": {**plan.stats, "criterion_cost": 1.0}}),
        r"criterion_cost reported 1.0",
    ),
    Tamper(
        "wrong_lexicographic_weight",
        "lex",
        _plan_edit(lambda plan: {"stats": {**plan.stats, "weight_cost": 2 * plan.stats["weight_cost"]}}),
        r"placement_cost .* differs from the recomputed",
    ),
    Tamper(
        "lexicographic_weight_not_positive",
        "lex",
        _plan_edit(lambda plan: {"stats": {**plan.stats, "weight_gpus_used": 0.0}}),
        r"lexicographic objective: weight_gpus_used reported as 0.0",
    ),
    Tamper(
        "penalty_without_unassigned",
        "fleet",
        _plan_edit(lambda plan: {"penalty": 1.0, "objective": plan.objective + 1.0}),
        r"penalty 1.0 inconsistent with 0 unassigned",
    ),
    Tamper(
        "bound_above_objective",
        "fleet",
        _plan_edit(lambda plan: {"bound": plan.objective + 1.0}),
        r"bound .* above objective",
    ),
    Tamper(
        "optimal_with_a_gap",
        "fleet",
        _plan_edit(
            lambda plan: {"status": Status.OPTIMAL, "gap": 1e-3, "bound": plan.objective * (1 - 1e-3)}
        ),
        r"optimal plan with gap 0.001",
    ),
    Tamper(
        "no_solution_with_assignments",
        "fleet",
        _plan_edit(lambda plan: {"status": Status.INFEASIBLE}),
        r"status infeasible with assignments",
    ),
    Tamper(
        "priority_swap_on_one_gpu",
        "one_gpu",
        _swap_priorities,
        r"'hi' \(priority 2\) left out though it fits",
    ),
    Tamper(
        "dropped_task_fits_free_room",
        "room",
        lambda p, plan: _redecoded(p, plan, {"b": None}),
        r"'b' \(priority 0\) left out though it fits",
    ),
    Tamper(
        "dropped_cpu_only_task_fits",
        "cpu_tasks",
        lambda p, plan: _redecoded(p, plan, {"report": None}),
        r"CPU-only task 'report' \(priority 0\) left out though it fits on node 'cpu-2'",
    ),
]


MISSED: list[Tamper] = []  # broken plans verify() accepts: none known (each would be xfail strict)

TAMPERS += [
    Tamper(
        "moved_flag_on_a_task_not_running", "fleet", _edit("serve-2", moved=True), r"'serve-2': moved flag"
    ),
    Tamper(
        "gap_inconsistent_with_bound",
        "fleet",
        _plan_edit(lambda plan: {"bound": plan.objective / 2, "gap": 0.0}),
        r"gap 0.0 inconsistent",
    ),
    Tamper(
        "cpu_only_reported_type",
        "cpu_tasks",
        _edit("tokenize", gpu_type="A100-80G"),
        r"'tokenize': reported GPU type",
    ),
    Tamper(
        "cpu_only_reported_duration",
        "cpu_tasks",
        _edit("tokenize", duration_h=99.0),
        r"'tokenize': reported duration",
    ),
]


# --- scheduled problems: a hand-made valid schedule, then one tamper per timing rule ----------------

#: A scheduled problem (time criteria in a weighted objective, a horizon) set up for every timing rule:
#: one GPU used back to back by a chain (prep -> train) and a whole-GPU task, one shared by two tasks
#: in turn (memory would not fit at once), a gang on a node mixing speeds with input data, a free GPU
#: for an optional task, and a CPU-only node used in turn for CPU, host memory and a spread group.
SCHEDULED: dict = {
    "gpu_types": [
        {"name": "A", "memory_gb": 40, "cost_per_hour": 1.0},
        {"name": "B", "memory_gb": 40, "cost_per_hour": 1.0, "speed": 0.5},
    ],
    "nodes": [
        {"id": "n0", "gpu_counts": {"A": 1}},
        {"id": "n1", "gpu_counts": {"A": 1}},
        {"id": "n2", "gpu_counts": {"A": 1}},
        {"id": "mix", "gpu_counts": {"A": 1, "B": 1}, "bandwidth_gbps": 1},
        {"id": "cpu", "cpu_cores": 8, "memory_gb": 32},
    ],
    "tasks": [
        {"id": "prep", "work_h": 1, "optional": True},
        {"id": "train", "work_h": 2, "after": ["prep"], "deadline_h": 6, "due_h": 2, "weight": 2},
        {"id": "post", "work_h": 1},
        {"id": "eval", "work_h": 1, "gpu_share": 0.5, "gpu_memory_gb": 30, "release_h": 1},
        {"id": "report", "work_h": 1, "gpu_share": 0.5, "gpu_memory_gb": 20},
        {"id": "extra", "work_h": 1, "gpu_share": 0.25, "optional": True},
        {"id": "pair", "gpus": 2, "work_h": 1, "input_gb": 450},
        {"id": "etl1", "gpus": 0, "work_h": 1, "cpu_cores": 6},
        {"id": "etl2", "gpus": 0, "work_h": 1, "cpu_cores": 6},
        {"id": "load1", "gpus": 0, "work_h": 1, "memory_gb": 20},
        {"id": "load2", "gpus": 0, "work_h": 1, "memory_gb": 20},
        {"id": "svc1", "gpus": 0, "work_h": 1, "anti_affinity": "svc"},
        {"id": "svc2", "gpus": 0, "work_h": 1, "anti_affinity": "svc"},
    ],
    "horizon_h": 10,
    "objective": {
        "kind": "weighted",
        "terms": [
            {"kind": "cost"},
            {"kind": "makespan"},
            {"kind": "completion_time", "weight": 0.5},
            {"kind": "tardiness", "weight": 3},
        ],
    },
}

#: Where and when each task runs: GPUs (or the node of a CPU-only task) and the start, in hours.
SCHEDULE: dict[str, tuple[list[str] | str, float]] = {
    "prep": (["n0/A/0"], 0.0),
    "train": (["n0/A/0"], 1.0),  # right after prep, on the same GPU
    "post": (["n0/A/0"], 3.0),
    "eval": (["n1/A/0"], 1.0),
    "report": (["n1/A/0"], 2.0),  # after eval: 30 + 20 GB would not fit at once
    "extra": (["n2/A/0"], 0.0),
    "pair": (["mix/A/0", "mix/B/0"], 0.0),  # 3 h: the B GPU's 2 h plus 1 h of data transfer
    "etl1": ("cpu", 0.0),
    "etl2": ("cpu", 1.0),
    "load1": ("cpu", 0.0),
    "load2": ("cpu", 1.0),
    "svc1": ("cpu", 2.0),
    "svc2": ("cpu", 3.0),  # one spread group on one node, one after the other
}


def _timed(p: Problem, task_id: str, where: list[str] | str, start: float) -> Assignment:
    """The assignment of `task_id` at `where` from `start`, every number recomputed from the specs."""
    task = next(t for t in p.tasks if t.id == task_id)
    if isinstance(where, str):  # a CPU-only task on a node: its work at speed 1, no cost
        a = Assignment(task=task_id, gpus=[], node=where, cost=0.0, duration_h=task.work_h)
    else:
        a = _placed(p, task_id, where)
    assert a.duration_h is not None
    return a.model_copy(update={"start_h": start, "end_h": start + a.duration_h})


def _scheduled_plan(
    p: Problem, schedule: dict[str, tuple[list[str] | str, float]], stats: bool = True
) -> Plan:
    """A plan of `schedule` whose numbers are recomputed from the specs: money, the time criteria and
    the weighted objective; tasks not in `schedule` are left out at a penalty of 1 each."""
    rows = [_timed(p, tid, where, start) for tid, (where, start) in schedule.items()]
    tasks = {t.id: t for t in p.tasks}
    ends = {a.task: a.end_h or 0.0 for a in rows}
    crit = {
        "cost": sum(a.cost for a in rows),
        "makespan": max(ends.values()),
        "completion_time": sum(tasks[t].weight * e for t, e in ends.items()),
        "tardiness": sum(tasks[t].weight * max(0.0, e - (tasks[t].due_h or e)) for t, e in ends.items()),
    }
    placement = sum(w * crit[k] for k, w in p.objective.weights())
    left = [Unassigned(task=t.id, reason="hand-made") for t in p.tasks if t.id not in schedule]
    return Plan(
        status=Status.FEASIBLE,
        objective=placement + len(left),
        placement_cost=placement,
        penalty=float(len(left)),
        solver="hand",
        solver_requested="hand",
        wall_time_s=0.0,
        assignments=rows,
        unassigned=left,
        # n1/A/0 at any instant: share 0.5, memory 30 of 40 GB (all at once it would be 1 and 50 GB)
        gpus=[GPUUsage(gpu="n1/A/0", node="n1", tasks=2, used={}, capacity={}, utilization=0.75)],
        stats={f"criterion_{k}": v for k, v in crit.items()} if stats else {},
    )


def _reschedule(**changes: tuple[list[str] | str, float] | None) -> Callable[[Problem, Plan], Plan]:
    """The hand-made schedule with tasks moved ((where, start)) or left out (None), numbers recomputed."""

    def tamper(p: Problem, plan: Plan) -> Plan:
        schedule = dict(SCHEDULE)
        for task, row in changes.items():
            if row is None:
                del schedule[task]
            else:
                schedule[task] = row
        return _scheduled_plan(p, schedule)

    return tamper


def test_hand_made_schedule_is_accepted() -> None:
    """The hand-made schedule is valid, with the numbers worked out by hand: cost 10.25 (pair 5),
    makespan 4, completion time 33 (train counts twice), tardiness 2 (train ends 1 h past due, weight
    2); objective 10.25 + 4 + 0.5 x 33 + 3 x 2."""
    problem, plan = solved("scheduled")
    assert problem.scheduled
    assert plan.stats["criterion_cost"] == 10.25 and plan.stats["criterion_completion_time"] == 33
    assert plan.objective == pytest.approx(10.25 + 4 + 16.5 + 6)
    verify(plan, problem)
    verify(plan.model_copy(update={"stats": {}}), problem)


@pytest.mark.parametrize(("deadline", "accepted"), [(4.5, True), (5.0, False)])
def test_dropped_task_is_judged_within_its_time_window(deadline: float, accepted: bool) -> None:
    """An optional task that may start only once 'post' ends (4 h) and must end by its deadline is
    left out: with 4.5 h its 1 h of work has no room (accepted); with 5 h it fits on the free GPU."""
    data = json.loads(json.dumps(SCHEDULED))
    extra = next(t for t in data["tasks"] if t["id"] == "extra")
    extra.update({"after": ["post"], "deadline_h": deadline})
    problem = Problem.model_validate(data)
    plan = _scheduled_plan(problem, {k: v for k, v in SCHEDULE.items() if k != "extra"})
    if accepted:
        verify(plan, problem)
    else:
        with pytest.raises(VerificationError, match=r"'extra' \(priority 0\) left out though it fits"):
            verify(plan, problem)


def test_engine_schedules_the_hand_made_problem_at_least_as_well() -> None:
    """The engine's own plan of the hand-made scheduled problem passes the same verifier and is no
    worse than the hand-made schedule (objective 36.75; drop penalties are the engine's own, so the
    comparison holds when the engine places every task, as the hand-made plan does)."""
    plan = gpuplan.solve(Problem.model_validate(SCHEDULED), time_limit_s=10, workers=1)
    assert plan.status.has_solution and not plan.unassigned
    assert plan.objective <= 10.25 + 4 + 16.5 + 6 + 1e-6
    assert all(a.start_h is not None for a in plan.assignments)


def _crit(name: str, value: float) -> Callable[[Problem, Plan], Plan]:
    """Report criterion `name` as `value`."""
    return _plan_edit(lambda plan: {"stats": {**plan.stats, f"criterion_{name}": value}})


TAMPERS += [
    Tamper(
        "scheduled_without_times",
        "scheduled",
        _edit("report", start_h=None, end_h=None),
        r"'report': a scheduled plan gives start_h and end_h \(got None, None\)",
    ),
    Tamper(
        "end_is_not_start_plus_duration",
        "scheduled",
        _edit("eval", end_h=2.5),
        r"'eval': end_h 2.5 != start_h 1 \+ duration 1 h",
    ),
    Tamper(
        "gang_duration_is_the_slowest_gpu_with_transfer",
        "scheduled",
        _edit("pair", end_h=2.0),  # the A GPU's 1 h + 1 h transfer; the B GPU takes 3 h
        r"'pair': end_h 2 != start_h 0 \+ duration 3 h",
    ),
    Tamper(
        "start_before_release",
        "scheduled",
        _reschedule(eval=(["n1/A/0"], 0.5)),
        r"'eval': starts at 0.5 h, before its release_h 1 h",
    ),
    Tamper(
        "end_after_deadline",
        "scheduled",
        _reschedule(train=(["n0/A/0"], 4.5), post=(["n0/A/0"], 3.5)),
        r"'train': ends at 6.5 h, after its deadline_h 6 h",
    ),
    Tamper(
        "end_after_horizon",
        "scheduled",
        _reschedule(svc2=("cpu", 9.5)),
        r"'svc2': ends at 10.5 h, after the horizon 10 h",
    ),
    Tamper(
        "cpu_only_end_is_start_plus_work",
        "scheduled",
        _edit("etl1", end_h=2.0),
        r"'etl1': end_h 2 != start_h 0 \+ duration 1 h",
    ),
    Tamper(
        "starts_before_predecessor_ends",
        "scheduled",
        _reschedule(train=(["n1/A/0"], 0.5)),  # another GPU: only the precedence is broken
        r"'train' starts at 0.5 h, before its predecessor 'prep' \(after\) ends at 1 h",
    ),
    Tamper(
        "predecessor_left_out",
        "scheduled",
        _reschedule(prep=None),
        r"'train' is placed, but its predecessor 'prep' \(after\) is left out",
    ),
    Tamper(
        "gpu_share_at_one_instant",
        "scheduled",
        _reschedule(post=(["n0/A/0"], 2.0)),
        r"GPU 'n0/A/0' over capacity on gpu_share at 2 h: 2 > 1",
    ),
    Tamper(
        "gpu_memory_at_one_instant",
        "scheduled",
        _reschedule(report=(["n1/A/0"], 1.5)),  # shares 0.5 + 0.5 fit, 30 + 20 GB do not
        r"GPU 'n1/A/0' over memory at 1.5 h: 50 GB > 40 GB",
    ),
    Tamper(
        "node_cpu_at_one_instant",
        "scheduled",
        _reschedule(etl2=("cpu", 0.5)),
        r"node 'cpu' over CPU at 0.5 h: 12 > 8 cores",
    ),
    Tamper(
        "node_host_memory_at_one_instant",
        "scheduled",
        _reschedule(load2=("cpu", 0.5)),
        r"node 'cpu' over host memory at 0.5 h: 40 > 32 GB",
    ),
    Tamper(
        "anti_affinity_at_one_instant",
        "scheduled",
        _reschedule(svc2=("cpu", 2.5)),
        r"'svc2': spread group 'svc' twice on node 'cpu' at 2.5 h \(with 'svc1'\)",
    ),
    Tamper(
        "objective_counts_the_time_criteria",
        "scheduled",
        lambda p, plan: _scheduled_plan(p, SCHEDULE, stats=False).model_copy(
            update={"assignments": _reschedule(post=(["n0/A/0"], 4.0))(p, plan).assignments}
        ),  # post an hour later (still valid), the old numbers kept
        r"placement_cost 36.75 differs from the recomputed 38.25",
    ),
    Tamper(
        "wrong_makespan",
        "scheduled",
        _crit("makespan", 3.0),
        r"criterion_makespan reported 3.0, recomputed 4",
    ),
    Tamper(
        "wrong_completion_time",
        "scheduled",
        _crit("completion_time", 31.0),  # train counted at weight 1
        r"criterion_completion_time reported 31.0, recomputed 33",
    ),
    Tamper(
        "wrong_tardiness",
        "scheduled",
        _crit("tardiness", 1.0),  # train's lateness without its weight
        r"criterion_tardiness reported 1.0, recomputed 2",
    ),
    Tamper(
        "utilization_at_any_instant",
        "scheduled",
        _plan_edit(lambda plan: {"gpus": [plan.gpus[0].model_copy(update={"utilization": 1.25})]}),
        r"GPU 'n1/A/0': utilization reported 1.25, recomputed 0.75",
    ),
    Tamper(
        "dropped_task_fits_beside_the_schedule",
        "scheduled",
        _reschedule(extra=None),
        r"'extra' \(priority 0\) left out though it fits on GPU\(s\) \['n2/A/0'\]",
    ),
]


def _param(t: Tamper) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=t.missed)] if t.missed else []
    return pytest.param(t, id=t.rule, marks=marks)


@pytest.mark.parametrize("case", [_param(t) for t in TAMPERS + MISSED])
def test_tampered_plan_is_rejected(case: Tamper) -> None:
    """Each rule broken once in a valid engine plan is rejected with a message naming it."""
    problem, plan = solved(case.source)
    bad = case.tamper(problem, plan)
    assert bad != plan
    with pytest.raises(VerificationError, match=case.match):
        verify(bad, problem)


# --- single moves: verify agrees with the fleet program's own feasibility ---------------------------

#: Words of the messages about numbers (money, criteria, objective, bound) rather than placement rules.
NUMBERS = ("reported cost", "criterion_", "placement_cost", "objective", "penalty", "bound", "gap")
#: Words of the priority-dominance messages (a rule of the plan, not of the program's feasibility).
DOMINANCE = "left out though it fits"


@SETTINGS
@given(
    problem=st.one_of(fleets().map(Problem.model_validate), tiny_fleet_problems()),
    solver=st.sampled_from(["auto", "greedy"]),
    pick=st.data(),
)
def test_single_moves_agree_with_program_feasibility(
    problem: Problem, solver: str, pick: st.DataObject
) -> None:
    """Engine plans pass verify; one GPU of one placed task moved elsewhere (numbers recomputed) is
    accepted exactly when the compiled fleet program finds the result feasible."""
    plan = gpuplan.solve(problem, solver=solver, time_limit_s=1, workers=1, seed=0)
    if not plan.status.has_solution:
        return
    verify(plan, problem)
    c = compile_fleet(problem)
    assign = _assign(c, plan)
    verify(_decoded(c, assign), problem)
    placed = np.flatnonzero(assign[:, 0] != NONE).tolist()
    if not placed:
        return
    t = pick.draw(st.sampled_from(placed), label="task")
    k = pick.draw(st.integers(0, int(c.program.gang[t]) - 1), label="slot")
    # Half the time among the GPUs the task may use (capacity aside), so that some moves are feasible.
    near = pick.draw(st.booleans(), label="eligible only")
    allowed = c.program.eligible(t) if near else np.ones(c.program.n_gpus, dtype=bool)
    targets = [g for g in np.flatnonzero(allowed).tolist() if g != assign[t, k]]
    if not targets:
        return
    g = pick.draw(st.sampled_from(targets), label="to")
    moved = assign.copy()
    moved[t, k] = g
    broken = c.program.violations(moved)
    try:
        verify(_decoded(c, moved), problem)
    except VerificationError as err:
        why = str(err)
        assert not any(w in why for w in NUMBERS), f"numbers of a decoded plan rejected: {why}"
        if not broken:
            assert DOMINANCE in why, f"feasible by the program, rejected by verify: {why}"
        else:
            assert DOMINANCE not in why, f"program finds {broken}, verify only: {why}"
        return
    assert not broken, f"verify accepts a move the program finds infeasible: {broken}"
