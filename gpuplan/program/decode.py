"""Back from index space to names for the matrix form: RawSolution + Compiled -> Plan.

A Problem's plans, whichever backends solved it, are decoded by `decode_fleet`."""

from __future__ import annotations

import numpy as np

from gpuplan.models import (
    Assignment,
    GPUUsage,
    Incumbent,
    Matrix,
    Plan,
    Scaling,
    Status,
    Unassigned,
)
from gpuplan.program.compile import Compiled
from gpuplan.program.gap import DROPPED, Program
from gpuplan.program.solution import RawSolution
from gpuplan.status import settle


def _room_reason(status: Status) -> str:
    if status is Status.INFEASIBLE:
        return "required, but no plan places every required task (proven infeasible)"
    return "required, but no plan placing every required task was found within the time limit"


def _matrix_reason(c: Compiled, t: int, status: Status) -> str:
    m = c.source
    assert isinstance(m, Matrix)
    if all(v is None for v in m.cost[t]):
        return "every cost entry is null: no GPU may take this task"
    if not c.program.eligible[t].any():
        return "its load exceeds the capacity of every GPU it may use"
    return _room_reason(status)


def reasons(c: Compiled, assign: np.ndarray, status: Status) -> list[Unassigned]:
    """Why each unplaced task is unplaced, in task order."""
    out = []
    for t in np.flatnonzero(assign == DROPPED):
        why = _matrix_reason(c, t, status)
        out.append(Unassigned(task=c.task_ids[t], reason=why))
    return out


def scaling_of(program: Program) -> Scaling:
    """How a GAP program was made integer, for the plan's `scaling` field."""
    return Scaling(
        cost_scale=program.cost_scale,
        load_scales={n: float(s) for n, s in zip(program.resource_names, program.load_scale, strict=True)},
        exact=program.scaling_exact,
    )


def decode(
    c: Compiled,
    sol: RawSolution,
    *,
    solver: str,
    phases: list[str],
    solver_requested: str,
    solver_reason: str,
    wall_time_s: float,
    warm_start_objective: float | None,
) -> Plan:
    """Turn a solver's answer on the matrix form into a Plan with names, costs, usage and reasons."""
    if not isinstance(c.source, Matrix):
        raise TypeError("decode takes the matrix form; a Problem's plans are decoded by decode_fleet")
    prog = c.program
    status = sol.status
    scaling = scaling_of(prog)
    common = dict(
        solver=solver,
        phases=phases,
        solver_requested=solver_requested,
        solver_reason=solver_reason,
        wall_time_s=round(wall_time_s, 4),
        warm_start_objective=warm_start_objective,
        incumbents=[Incumbent(time_s=round(t, 4), objective=o) for t, o in sol.incumbents],
        scaling=scaling,
        stats=sol.stats,
        message=sol.message,
    )
    if not status.has_solution:
        empty = np.full(prog.n_tasks, DROPPED, dtype=np.int64)
        return Plan(status=status, bound=sol.bound, unassigned=reasons(c, empty, status), **common)
    assign = sol.assign
    assignments = []
    for t in np.flatnonzero(assign != DROPPED):
        g = int(assign[t])
        dur = None if c.duration is None else float(c.duration[t, g])
        assignments.append(
            Assignment(
                task=c.task_ids[t],
                gpus=[c.gpu_ids[g]],
                node=c.gpu_nodes[g],
                gpu_type=c.gpu_types[g],
                cost=float(prog.cost[t, g]),
                duration_h=dur,
            )
        )
    placed = assign != DROPPED
    idx = np.flatnonzero(placed)
    used = np.zeros((prog.n_resources, prog.n_gpus))
    counts = np.bincount(assign[idx], minlength=prog.n_gpus)
    for r in range(prog.n_resources):
        np.add.at(used[r], assign[idx], prog.load[r, idx, assign[idx]])
    usage = []
    for g in range(prog.n_gpus):
        caps = prog.capacity[:, g]
        ratio = np.divide(used[:, g], caps, out=np.zeros_like(caps), where=caps > 0)
        usage.append(
            GPUUsage(
                gpu=c.gpu_ids[g],
                node=c.gpu_nodes[g],
                tasks=int(counts[g]),
                used={n: round(float(v), 9) for n, v in zip(prog.resource_names, used[:, g], strict=True)},
                capacity={n: float(v) for n, v in zip(prog.resource_names, caps, strict=True)},
                utilization=round(float(ratio.max(initial=0.0)), 6),
            )
        )
    placement_cost = float(prog.cost[idx, assign[idx]].sum())
    penalty = float(prog.penalty[~placed].sum())
    objective = placement_cost + penalty
    status, bound, gap = settle(status, objective, sol.bound)
    return Plan(
        status=status,
        objective=objective,
        bound=bound,
        gap=gap,
        placement_cost=placement_cost,
        penalty=penalty,
        assignments=assignments,
        unassigned=reasons(c, assign, status),
        gpus=usage,
        **common,
    )
