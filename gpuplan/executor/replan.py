"""Re-planning: the unfinished work as a new Problem, solved with the faulty GPUs excluded.

The new problem keeps the fleet and the unfinished tasks. Counted GPUs are listed one by one (same
ids `<node>/<type>/<k>`) so a single one can be marked. Excluded GPUs (failed, overheated, or not
on this machine) are `healthy: false`. Running tasks get `current_gpus` = their GPUs and at least
`migration_cost`, so the optimizer keeps them where they are. Finished and failed tasks are removed.

A scheduled problem is re-planned from now: the re-plan's time zero is the moment it is made, so
each task's `after` keeps only the tasks still in the problem (the finished ones are done), releases
and due times move back by the hours elapsed (never below 0), a deadline too (dropped once it is
past: the task still runs, late), and running tasks lose their release, due time and deadline (they
have started). The horizon stays as it is (running tasks are counted with their whole duration).

If no plan places every required task, the executor solves again with the pending tasks (the
displaced ones and those not yet started) made optional: running tasks stay required, placed
pending tasks are queued on their new GPUs, and the rest wait for room (a task finishing or a GPU
cooling down triggers another re-plan).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gpuplan.models import GPU, Node, Plan, Problem, Task

log = logging.getLogger("gpuplan")


@dataclass(frozen=True)
class Replan:
    """A re-plan's outcome: the plan, whether pending tasks were made optional, and the problem."""

    plan: Plan
    relaxed: bool
    problem: Problem


def build_problem(
    problem: Problem,
    *,
    running: dict[str, list[str]],
    pending: list[str],
    excluded: set[str],
    migration_cost: float,
    optional_pending: bool = False,
    elapsed_h: float = 0.0,
) -> Problem:
    """The re-plan problem: `running` task -> its GPUs (kept, high migration cost), `pending` tasks
    free to place, `excluded` GPUs unhealthy; every other task is dropped. Times are shifted so that
    zero is now, `elapsed_h` hours after the original time zero (module docstring)."""
    nodes = []
    for node in problem.nodes:
        gpus = [
            GPU(id=f"{node.id}/{name}/{k}", type=name)
            for name, count in node.gpu_counts.items()
            for k in range(count)
        ]
        listed = [
            g.model_copy(update={"healthy": False}) if g.id in excluded else g for g in [*node.gpus, *gpus]
        ]
        nodes.append(
            Node(**{**node.model_dump(exclude={"gpus", "gpu_counts"}), "gpus": listed, "gpu_counts": {}})
        )
    keep = set(running) | set(pending)
    tasks = []
    for task in problem.tasks:
        if task.id not in keep:
            continue
        update: dict[str, object] = {"after": [p for p in task.after if p in keep]}
        if task.id in running:
            update.update(
                current_gpus=list(running[task.id]) if task.gpus else None,
                migration_cost=max(task.migration_cost, migration_cost),
                release_h=0.0,
                due_h=None,
                deadline_h=None,
            )
        else:
            update.update(current_gpus=None, **_shifted(task, elapsed_h))
            if optional_pending:
                update["optional"] = True
        tasks.append(task.model_copy(update=update))
    data = problem.model_dump()
    data["nodes"] = [n.model_dump() for n in nodes]
    data["tasks"] = [t.model_dump() for t in tasks]
    return Problem.model_validate(data)


def _shifted(task: Task, elapsed_h: float) -> dict[str, float | None]:
    """A pending task's release, due time and deadline with time zero moved `elapsed_h` hours later."""
    if elapsed_h <= 0:
        return {}
    release = max(0.0, task.release_h - elapsed_h)
    due = None if task.due_h is None else max(0.0, task.due_h - elapsed_h)
    deadline = None if task.deadline_h is None else task.deadline_h - elapsed_h
    if deadline is not None and deadline <= release:
        deadline = None  # already past: the task still runs, late
    return {"release_h": release, "due_h": due, "deadline_h": deadline}


def replan(
    problem: Problem,
    *,
    running: dict[str, list[str]],
    pending: list[str],
    excluded: set[str],
    migration_cost: float,
    solver: str,
    time_limit_s: float,
    workers: int | None,
    seed: int,
    elapsed_h: float = 0.0,
) -> Replan:
    """Solve the re-plan problem; if it has no solution, again with the pending tasks optional."""
    from gpuplan.api import solve

    args = dict(
        running=running,
        pending=pending,
        excluded=excluded,
        migration_cost=migration_cost,
        elapsed_h=elapsed_h,
    )
    first = build_problem(problem, **args)  # type: ignore[arg-type]
    plan = solve(first, solver=solver, time_limit_s=time_limit_s, workers=workers, seed=seed)
    if plan.status.has_solution or not pending:
        return Replan(plan, False, first)
    log.info("re-plan: %s with every task required; again with pending tasks optional", plan.status.value)
    relaxed = build_problem(problem, optional_pending=True, **args)  # type: ignore[arg-type]
    plan = solve(relaxed, solver=solver, time_limit_s=time_limit_s, workers=workers, seed=seed)
    return Replan(plan, True, relaxed)
