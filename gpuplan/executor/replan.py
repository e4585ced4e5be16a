"""Re-planning: the unfinished work as a new Problem, solved with the faulty GPUs excluded.

The new problem keeps the fleet and the unfinished tasks. Counted GPUs are listed one by one (same
ids `<node>/<type>/<k>`) so a single one can be marked. Excluded GPUs (failed, overheated, or not
on this machine) are `healthy: false`. Running tasks get `current_gpus` = their GPUs and at least
`migration_cost`, so the optimizer keeps them where they are. Finished and failed tasks are removed.

If no plan places every required task, the executor solves again with the pending tasks (the
displaced ones and those not yet started) made optional: running tasks stay required, placed
pending tasks are queued on their new GPUs, and the rest wait for room (a task finishing or a GPU
cooling down triggers another re-plan).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gpuplan.models import GPU, Node, Plan, Problem

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
) -> Problem:
    """The re-plan problem: `running` task -> its GPUs (kept, high migration cost), `pending` tasks
    free to place, `excluded` GPUs unhealthy; every other task is dropped."""
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
        if task.id in running:
            tasks.append(
                task.model_copy(
                    update={
                        "current_gpus": list(running[task.id]),
                        "migration_cost": max(task.migration_cost, migration_cost),
                    }
                )
            )
        else:
            update: dict[str, object] = {"current_gpus": None}
            if optional_pending:
                update["optional"] = True
            tasks.append(task.model_copy(update=update))
    data = problem.model_dump()
    data["nodes"] = [n.model_dump() for n in nodes]
    data["tasks"] = [t.model_dump() for t in tasks]
    return Problem.model_validate(data)


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
) -> Replan:
    """Solve the re-plan problem; if it has no solution, again with the pending tasks optional."""
    from gpuplan.api import solve

    args = dict(running=running, pending=pending, excluded=excluded, migration_cost=migration_cost)
    first = build_problem(problem, **args)  # type: ignore[arg-type]
    plan = solve(first, solver=solver, time_limit_s=time_limit_s, workers=workers, seed=seed)
    if plan.status.has_solution or not pending:
        return Replan(plan, False, first)
    log.info("re-plan: %s with every task required; again with pending tasks optional", plan.status.value)
    relaxed = build_problem(problem, optional_pending=True, **args)  # type: ignore[arg-type]
    plan = solve(relaxed, solver=solver, time_limit_s=time_limit_s, workers=workers, seed=seed)
    return Replan(plan, True, relaxed)
