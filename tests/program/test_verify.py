"""verify() accepts the engine's plans and rejects hand-broken ones."""

from __future__ import annotations

import re

import pytest

import gpuplan
from gpuplan import Assignment, MatrixProblem, Plan, Problem, Status, Unassigned, VerificationError, verify

MATRIX = MatrixProblem.model_validate(
    {
        "matrix": {
            "cost": [[1, 2], [3, 1], [2, 2]],
            "load": [[1, 1], [1, 1], [1, 1]],
            "capacity": [2, 1],
            "task_ids": ["a", "b", "c"],
            "gpu_ids": ["x", "y"],
        }
    }
)

PROBLEM = Problem.model_validate(
    {
        "gpu_types": [
            {"name": "big", "memory_gb": 80, "cost_per_hour": 2},
            {"name": "small", "memory_gb": 24, "cost_per_hour": 1},
        ],
        "nodes": [
            {
                "id": "n",
                "gpus": [
                    {"id": "B", "type": "big"},
                    {"id": "S", "type": "small"},
                    {"id": "sick", "type": "small", "healthy": False},
                ],
            }
        ],
        "tasks": [
            {"id": "train", "work_h": 2, "gpu_share": 0.5, "gpu_memory_gb": 40},
            {"id": "hi", "work_h": 1, "gpu_share": 0.5, "optional": True, "priority": 2},
            {"id": "lo", "work_h": 1, "gpu_share": 0.5, "optional": True, "priority": 1},
            {"id": "tiny", "work_h": 1, "gpu_share": 0.25, "optional": True, "priority": 1},
        ],
    }
)


@pytest.fixture(scope="module")
def matrix_plan() -> Plan:
    """The optimal plan of MATRIX: a->x, b->y, c->x, objective 4."""
    plan = gpuplan.solve(MATRIX, solver="milp", time_limit_s=5)
    assert plan.status is Status.OPTIMAL and plan.objective == 4
    assert {a.task: a.gpus[0] for a in plan.assignments} == {"a": "x", "b": "y", "c": "x"}
    return plan


@pytest.fixture(scope="module")
def problem_plan() -> Plan:
    """A plan for PROBLEM where every task is placed (there is room for all)."""
    plan = gpuplan.solve(PROBLEM, solver="milp", time_limit_s=5)
    assert plan.is_feasible and not plan.unassigned
    return plan


def with_assignments(plan: Plan, assignments: list[Assignment], **update: object) -> Plan:
    """A copy of `plan` with new assignments and placement cost/objective recomputed to match."""
    total = sum(a.cost for a in assignments)
    penalty = update.pop("penalty", plan.penalty or 0.0)
    fields = {
        "assignments": assignments,
        "placement_cost": total,
        "penalty": penalty,
        "objective": total + penalty,
        # the reported criteria, bound and gap describe the old assignments: left out, they are not checked
        "stats": {k: v for k, v in plan.stats.items() if not k.startswith("criterion_")},
        "bound": None,
        "gap": None,
        "status": Status.FEASIBLE,
        "gpus": [],
    }
    fields.update(update)
    return plan.model_copy(update=fields)


def by_task(plan: Plan) -> dict[str, Assignment]:
    """Assignments of a plan keyed by task id."""
    return {a.task: a for a in plan.assignments}


# --- good plans pass -------------------------------------------------------------------------------------


def test_engine_plans_pass(matrix_plan, problem_plan):
    """The engine's own plans pass verify, for the matrix, its MatrixProblem and a Problem."""
    verify(matrix_plan, MATRIX)
    verify(matrix_plan, MATRIX.matrix)
    verify(problem_plan, PROBLEM)


def test_plans_without_solution_pass():
    """A plan with no solution, no assignments and no objective passes."""
    plan = Plan(status=Status.UNKNOWN, solver="greedy", solver_requested="greedy", wall_time_s=0.0)
    verify(plan, MATRIX)
    verify(plan.model_copy(update={"status": Status.INFEASIBLE}), PROBLEM)


def test_recomputed_copy_passes(matrix_plan):
    """The helper that rebuilds totals leaves a correct plan correct (so failures below are real)."""
    verify(with_assignments(matrix_plan, list(matrix_plan.assignments)), MATRIX)


# --- broken matrix plans --------------------------------------------------------------------------------


def test_rejects_over_capacity(matrix_plan):
    """Moving b onto x (cost 3) puts three unit loads on a GPU of capacity 2."""
    a = by_task(matrix_plan)
    moved = a["b"].model_copy(update={"gpus": ["x"], "cost": 3.0})
    broken = with_assignments(matrix_plan, [a["a"], moved, a["c"]])
    with pytest.raises(VerificationError, match="over capacity"):
        verify(broken, MATRIX)


def test_rejects_task_twice(matrix_plan):
    """The same task placed twice is rejected."""
    a = by_task(matrix_plan)
    broken = with_assignments(matrix_plan, [a["a"], a["b"], a["c"], a["b"]])
    with pytest.raises(VerificationError, match="'b' appears twice"):
        verify(broken, MATRIX)


def test_rejects_unknown_gpu(matrix_plan):
    """A task on a GPU that does not exist is rejected."""
    a = by_task(matrix_plan)
    ghost = a["a"].model_copy(update={"gpus": ["z"]})
    broken = with_assignments(matrix_plan, [ghost, a["b"], a["c"]])
    with pytest.raises(VerificationError, match="unknown GPU 'z'"):
        verify(broken, MATRIX)


def test_rejects_unknown_task(matrix_plan):
    """An assignment for a task that is not in the problem is rejected."""
    extra = matrix_plan.assignments[0].model_copy(update={"task": "nope"})
    broken = with_assignments(matrix_plan, [*matrix_plan.assignments, extra])
    with pytest.raises(VerificationError, match="unknown task 'nope'"):
        verify(broken, MATRIX)


def test_rejects_task_on_two_gpus(matrix_plan):
    """A single-GPU task listed on two GPUs is rejected."""
    a = by_task(matrix_plan)
    split = a["a"].model_copy(update={"gpus": ["x", "y"]})
    broken = with_assignments(matrix_plan, [split, a["b"], a["c"]])
    with pytest.raises(VerificationError, match="on 2 GPUs"):
        verify(broken, MATRIX)


def test_rejects_wrong_cost(matrix_plan):
    """An assignment whose reported cost differs from the matrix is rejected."""
    a = by_task(matrix_plan)
    cheap = a["c"].model_copy(update={"cost": 1.5})
    broken = with_assignments(matrix_plan, [a["a"], a["b"], cheap])
    with pytest.raises(VerificationError, match=r"reported cost 1\.5"):
        verify(broken, MATRIX)


def test_rejects_forbidden_pair():
    """A task placed where its cost is null is rejected."""
    m = MatrixProblem.model_validate(
        {"matrix": {"cost": [[1, None]], "load": [[1, None]], "capacity": [1, 1]}}
    )
    plan = gpuplan.solve(m, solver="greedy")
    moved = plan.assignments[0].model_copy(update={"gpus": ["1"], "cost": 0.0})
    with pytest.raises(VerificationError, match="may not run"):
        verify(with_assignments(plan, [moved]), m)


def test_rejects_required_task_unassigned(matrix_plan):
    """Leaving a required task out of a feasible plan is rejected."""
    a = by_task(matrix_plan)
    broken = with_assignments(
        matrix_plan,
        [a["a"], a["b"]],
        unassigned=[Unassigned(task="c", reason="dropped by hand")],
        penalty=1.0,
    )
    with pytest.raises(VerificationError, match="required task 'c' left unassigned"):
        verify(broken, MATRIX)


def test_rejects_missing_task(matrix_plan):
    """A task that is neither assigned nor listed as unassigned is rejected."""
    a = by_task(matrix_plan)
    broken = with_assignments(matrix_plan, [a["a"], a["b"]])
    with pytest.raises(VerificationError, match="neither assigned nor unassigned"):
        verify(broken, MATRIX)


def test_rejects_bound_above_objective(matrix_plan):
    """A claimed lower bound above the objective is rejected."""
    broken = matrix_plan.model_copy(update={"bound": matrix_plan.objective + 1})
    with pytest.raises(VerificationError, match="bound"):
        verify(broken, MATRIX)


@pytest.mark.parametrize(
    ("update", "needle"),
    [
        ({"objective": 3.0}, "objective"),
        ({"placement_cost": 5.0}, "placement_cost"),
        ({"penalty": 2.0, "objective": 6.0}, "penalty"),
        ({"gap": 0.5}, "gap"),
    ],
)
def test_rejects_inconsistent_totals(matrix_plan, update, needle):
    """Objective, placement cost, penalty and gap must agree with the assignments."""
    with pytest.raises(VerificationError, match=needle):
        verify(matrix_plan.model_copy(update=update), MATRIX)


def test_rejects_assignments_without_solution(matrix_plan):
    """A plan that says infeasible must not carry assignments."""
    broken = matrix_plan.model_copy(update={"status": Status.INFEASIBLE})
    with pytest.raises(VerificationError, match="status infeasible"):
        verify(broken, MATRIX)


# --- broken Problem plans ---------------------------------------------------------------------------------


def drop(plan: Plan, task: str) -> Plan:
    """`plan` with `task` moved to unassigned (totals recomputed, a positive penalty)."""
    kept = [a for a in plan.assignments if a.task != task]
    return with_assignments(
        plan, kept, unassigned=[Unassigned(task=task, reason="dropped by hand")], penalty=10.0
    )


def test_rejects_dropped_task_that_fits_in_free_room(problem_plan):
    """An optional task left out although a GPU has free room for it is rejected."""
    with pytest.raises(VerificationError, match=r"'tiny'.*fits on GPU"):
        verify(drop(problem_plan, "tiny"), PROBLEM)


def test_rejects_dropped_task_that_could_replace_lower_priority():
    """A dropped high-priority task that fits in place of lower-priority optional work is rejected."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
            "tasks": [
                {"id": "hi", "work_h": 1, "gpu_share": 0.5, "optional": True, "priority": 5},
                {"id": "lo", "work_h": 1, "gpu_share": 0.75, "optional": True, "priority": 1},
            ],
        }
    )
    plan = gpuplan.solve(p, solver="milp", time_limit_s=5)
    assert [a.task for a in plan.assignments] == ["hi"]
    swapped = plan.assignments[0].model_copy(update={"task": "lo", "cost": 0.75})
    broken = with_assignments(plan, [swapped], unassigned=[Unassigned(task="hi", reason="by hand")])
    with pytest.raises(VerificationError, match=r"'hi'.*lower-priority"):
        verify(broken, p)


def exact_fit_case(kind: str) -> tuple[Problem, Plan]:
    """A hand-made plan that leaves out an optional task which fits *exactly* (free room or swap)."""
    if kind == "free room":
        tasks = [
            {"id": "kept", "work_h": 1, "gpu_share": 0.5},
            {"id": "left", "work_h": 1, "gpu_share": 0.5, "optional": True},
        ]
        placed = "kept"
    else:  # a whole-GPU task dropped in favour of a lower-priority whole-GPU task
        tasks = [
            {"id": "left", "work_h": 1, "optional": True, "priority": 5},
            {"id": "kept", "work_h": 1, "optional": True, "priority": 1},
        ]
        placed = "kept"
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
            "tasks": tasks,
        }
    )
    share = next(t.gpu_share for t in p.tasks if t.id == placed)
    a = Assignment(task=placed, gpus=["n/A/0"], node="n", gpu_type="A", cost=share, duration_h=1.0)
    plan = Plan(
        status=Status.FEASIBLE,
        solver="greedy",
        solver_requested="greedy",
        wall_time_s=0.0,
        objective=share + 10.0,
        placement_cost=share,
        penalty=10.0,
        assignments=[a],
        unassigned=[Unassigned(task="left", reason="by hand")],
    )
    return p, plan


@pytest.mark.parametrize("kind", ["free room", "in place of lower priority"])
def test_rejects_dropped_task_that_fits_exactly(kind):
    """A left-out optional task that fits exactly (free room, or replacing lower priority) is rejected."""
    p, plan = exact_fit_case(kind)
    message = ""
    try:
        verify(plan, p)
    except VerificationError as exc:
        message = str(exc)
    assert "'left'" in message and "fits on GPU" in message


def test_equal_priority_swap_is_accepted():
    """Dropping a task in favour of one of the same priority is allowed (it is a cost question)."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
            "tasks": [
                {"id": "one", "work_h": 1, "optional": True, "priority": 1},
                {"id": "two", "work_h": 2, "optional": True, "priority": 1},
            ],
        }
    )
    plan = gpuplan.solve(p, solver="milp", time_limit_s=5)
    placed = plan.assignments[0]
    other = "two" if placed.task == "one" else "one"
    cost = {"one": 1.0, "two": 2.0}[other]
    swapped = placed.model_copy(update={"task": other, "cost": cost, "duration_h": cost})
    verify(with_assignments(plan, [swapped], unassigned=[Unassigned(task=placed.task, reason="x")]), p)


@pytest.mark.parametrize(
    ("task", "gpu", "cost", "needle"),
    [
        ("hi", "sick", 0.5, "unhealthy"),
        ("train", "S", 1.0, "needs 40.0 GB"),
    ],
)
def test_rejects_ineligible_gpu(problem_plan, task, gpu, cost, needle):
    """Tasks on unhealthy GPUs, or on GPUs with too little memory, are rejected."""
    a = by_task(problem_plan)
    a[task] = a[task].model_copy(update={"gpus": [gpu], "cost": cost})
    with pytest.raises(VerificationError, match=re.escape(needle)):
        verify(with_assignments(problem_plan, list(a.values())), PROBLEM)


def test_rejects_disallowed_type():
    """A task placed on a GPU type outside its allowed_types is rejected."""
    data = PROBLEM.model_dump()
    data["tasks"] = [{"id": "pinned", "work_h": 1, "allowed_types": ["big"]}]
    p = Problem.model_validate(data)
    plan = gpuplan.solve(p, solver="greedy")
    moved = plan.assignments[0].model_copy(update={"gpus": ["S"], "cost": 1.0})
    with pytest.raises(VerificationError, match="not allowed"):
        verify(with_assignments(plan, [moved]), p)


def test_rejects_horizon_overrun():
    """Two 3 h tasks on one GPU with a 5 h horizon are rejected."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 2}}],
            "tasks": [{"id": "t1", "work_h": 3}, {"id": "t2", "work_h": 3}],
            "horizon_h": 5,
        }
    )
    plan = gpuplan.solve(p, solver="greedy")
    a = by_task(plan)
    assert a["t1"].gpus != a["t2"].gpus
    together = [a["t1"], a["t2"].model_copy(update={"gpus": a["t1"].gpus})]
    with pytest.raises(VerificationError, match="over capacity on gpu_time_h"):
        verify(with_assignments(plan, together), p)


# --- times on a plan of an unscheduled problem: optional, checked when given -----------------------

HORIZON = {
    "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1}],
    "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
    "tasks": [{"id": "t1", "work_h": 2, "gpu_share": 0.5}, {"id": "t2", "work_h": 3, "gpu_share": 0.5}],
    "horizon_h": 5,
}


def _timed(plan: Plan, times: dict[str, tuple[float | None, float | None]]) -> Plan:
    """`plan` with start and end times on the named tasks."""
    out = [
        a.model_copy(update={"start_h": times[a.task][0], "end_h": times[a.task][1]})
        if a.task in times
        else a
        for a in plan.assignments
    ]
    return plan.model_copy(update={"assignments": out})


def test_unscheduled_plan_accepts_consistent_times(problem_plan):
    """An unscheduled problem's plan may carry times: consistent ones pass, and the load rules stay the
    unscheduled ones (side by side here: tasks on one GPU may share an instant)."""
    assert not PROBLEM.scheduled
    times = {a.task: (0.0, a.duration_h) for a in problem_plan.assignments}
    verify(_timed(problem_plan, times), PROBLEM)
    p = Problem.model_validate(HORIZON)  # GPU-hours: 0.5 x 2 + 0.5 x 3 <= 5 on the one GPU
    plan = gpuplan.solve(p, solver="greedy")
    verify(_timed(plan, {"t1": (3.0, 5.0), "t2": (0.0, 3.0)}), p)


@pytest.mark.parametrize(
    ("times", "needle"),
    [
        ({"t1": (0.0, None)}, r"'t1': start_h and end_h come together \(got 0.0, None\)"),
        ({"t1": (0.0, 2.5)}, r"'t1': end_h 2.5 != start_h 0 \+ duration 2 h"),
        ({"t1": (-1.0, 1.0)}, r"'t1': starts at -1 h, before its release_h 0 h"),
        ({"t2": (2.5, 5.5)}, r"'t2': ends at 5.5 h, after the horizon 5 h"),
    ],
)
def test_unscheduled_plan_rejects_inconsistent_times(times, needle):
    """Times on an unscheduled plan, when given, come as a pair, span the duration, start at 0 or
    later and end within the horizon."""
    p = Problem.model_validate(HORIZON)
    plan = gpuplan.solve(p, solver="greedy")
    with pytest.raises(VerificationError, match=needle):
        verify(_timed(plan, times), p)


def test_schedule_sweep_over_many_gpus():
    """20,000 scheduled tasks, two at a time on each of 1,000 GPUs for 10 hours, back to back: the
    sweep accepts it, and finds the one GPU and instant where a task moved half an hour earlier
    makes three run at once."""
    n, per_node, n_nodes = 20_000, 8, 125
    n_gpus = per_node * n_nodes
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 80}],
            "nodes": [{"id": f"n{k}", "gpu_counts": {"A": per_node}} for k in range(n_nodes)],
            "tasks": [{"id": f"t{i}", "work_h": 1, "gpu_share": 0.5} for i in range(n)],
            "objective": {"kind": "makespan"},
        }
    )
    rows = []
    for i in range(n):
        g, start = i % n_gpus, float(i // (2 * n_gpus))
        node = f"n{g // per_node}"
        rows.append(
            Assignment(
                task=f"t{i}",
                gpus=[f"{node}/A/{g % per_node}"],
                node=node,
                gpu_type="A",
                cost=0.0,
                duration_h=1.0,
                start_h=start,
                end_h=start + 1.0,
            )
        )
    plan = Plan(
        status=Status.FEASIBLE,
        objective=10.0,
        placement_cost=10.0,
        penalty=0.0,
        solver="hand",
        solver_requested="hand",
        wall_time_s=0.0,
        assignments=rows,
    )
    verify(plan, p)
    early = rows[-1].model_copy(update={"start_h": 8.5, "end_h": 9.5})
    with pytest.raises(
        VerificationError, match=r"GPU 'n124/A/7' over capacity on gpu_share at 8.5 h: 1.5 > 1"
    ):
        verify(plan.model_copy(update={"assignments": [*rows[:-1], early]}), p)


def test_verification_error_is_assertion_error():
    """VerificationError subclasses AssertionError (a broken plan is an internal bug)."""
    assert issubclass(VerificationError, AssertionError)
