"""The one decode: from a program's index space back to a Plan (of a Problem, or of the matrix
form): ids, money per assignment, usage per resource, criteria, the objective's weights, and a
reason for every task left out."""

from __future__ import annotations

import time

import numpy as np

from gpuplan.models import Assignment, GPUUsage, Incumbent, Matrix, Plan, Scaling, Status, Unassigned
from gpuplan.program.fleet import FleetCompiled, FleetProgram
from gpuplan.program.schedule import peak_levels
from gpuplan.status import settle


def _room(status: Status) -> str:
    if status is Status.INFEASIBLE:
        return "required, but no plan places every required task (proven infeasible)"
    return "required, but no plan placing every required task was found within the time limit"


def _reason(c: FleetCompiled, t: int, status: Status, placed: np.ndarray | None = None) -> str:
    if isinstance(c.source, Matrix):
        if all(v is None for v in c.source.cost[t]):
            return "every cost entry is null: no GPU may take this task"
        if not c.program.eligible_c[t].any():
            return "its load exceeds the capacity of every GPU it may use"
        return _room(status)
    p, task = c.program, c.source.tasks[t]
    if not p.eligible_c[t].any() and p.cpu_only[t]:
        sel = task.node_selector.items()
        if not any(all(n.labels.get(k) == v for k, v in sel) for n in c.source.nodes):
            return f"no node carries the labels {task.node_selector}"
        return f"its duration ({task.work_h} h, with data transfer) exceeds the horizon"
    if not p.eligible_c[t].any():
        return _no_home(c, t)
    if not p.eligible(t).any():
        return "every eligible GPU is unhealthy or over the temperature limit"
    if placed is not None and task.after:
        ids = {tid: i for i, tid in enumerate(c.task_ids)}
        out = [a for a in task.after if not placed[ids[a]]]
        if out:
            return f"its predecessor {out[0]!r} (after) is left out"
    if task.optional:
        return "no room left: eligible GPUs or their nodes' CPU/memory are taken by other work"
    return _room(status)


def _no_home(c: FleetCompiled, t: int) -> str:
    """Why no GPU of the fleet may take task t, whatever the others do: the first rule that rules
    out every GPU type present (allowed types, durations, memory, horizon, labels, gang size)."""
    prob = c.source
    assert not isinstance(prob, Matrix)
    task = prob.tasks[t]
    present = {g.type for _, g in prob.all_gpus()}
    types = [gt for gt in prob.gpu_types if gt.name in present]
    if task.allowed_types is not None:
        types = [gt for gt in types if gt.name in task.allowed_types]
        if not types:
            return f"allowed types {', '.join(task.allowed_types)}: no such GPU in the fleet"
    types = [gt for gt in types if gt.name not in task.forbidden_types]
    if task.work_h is None:
        types = [gt for gt in types if gt.name in (task.duration_h or {})]
        if not types:
            return "duration_h names no allowed GPU type present in the fleet, and work_h is not given"
    if not types:
        return "every GPU type in the fleet is forbidden to it"
    need = max(task.gpu_memory_gb, task.min_gpu_memory_gb)
    big = max(types, key=lambda gt: gt.memory_gb)
    if need > big.memory_gb:
        return f"needs {need:g} GB; the largest eligible GPU has {big.memory_gb:g} GB"
    horizon = prob.horizon_h
    finite = c.duration[t][np.isfinite(c.duration[t])]
    if horizon is not None and not finite.size:
        fastest = min(
            (task.duration_h or {}).get(gt.name, (task.work_h or np.inf) / gt.speed)
            for gt in types
            if gt.memory_gb >= need
        )
        hours = fastest * task.gpu_share
        if hours > horizon:
            return f"needs {hours:g} h on its fastest eligible GPU; the horizon is {horizon:g} h"
    if task.node_selector:
        return f"no node carries the labels {task.node_selector} with an eligible GPU"
    if task.gpus > 1:
        return f"no node holds {task.gpus} eligible GPUs" + (" of one type" if task.same_type else "")
    if prob.scheduled:
        latest = min(task.deadline_h or np.inf, horizon or np.inf)
        if finite.size == 0 and np.isfinite(latest):
            return (
                f"starting at its release_h {task.release_h:g} h, it cannot end by {latest:g} h"
                " (its deadline_h or the horizon) on any GPU it may use"
            )
    return "no GPU of the fleet is allowed, large enough and fast enough for it"


def criteria(p: FleetProgram, assign: np.ndarray) -> dict[str, float]:
    """Raw values of the criteria for a plan (unweighted), for the user's report."""
    placed = assign[:, 0] >= 0
    used = assign[assign >= 0]
    return {
        "gpus_used": float(np.unique(used[~p.host[used]]).size),
        "nodes_used": float(np.unique(p.gpu_node[used]).size),
        "max_utilization": round(p.max_utilization(assign), 9),
        "placed_weight": float(p.weight[placed].sum()),
        "unplaced_weight": float(p.weight[~placed].sum()),
        "tasks_moved": float(_moved(p, assign).sum()),
    }


def _moved(p: FleetProgram, assign: np.ndarray) -> np.ndarray:
    """bool [T]: tasks with a current placement that lose at least one of their current GPUs."""
    has = p.current[:, 0] >= 0
    out = np.zeros(p.n_tasks, dtype=bool)
    for t in np.flatnonzero(has):
        cur = set(p.current[t][p.current[t] >= 0].tolist())
        out[t] = cur != set(assign[t][assign[t] >= 0].tolist())
    return out


def _money_and_hours(c: FleetCompiled, assign: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per placed task of `rows`: the money its GPUs and transfer cost, and its longest duration on
    them (hours); computed per gang size, each sum over the task's own GPUs in order."""
    p = c.program
    money = np.zeros(rows.size)
    hours = np.zeros(rows.size)
    width = (assign[rows] >= 0).sum(axis=1)
    for k in np.unique(width).tolist():
        at = np.flatnonzero(width == k)
        t = rows[at]
        cls = p.gpu_class[assign[t, :k]]
        money[at] = c.money_c[t[:, None], cls].sum(axis=1) + c.transfer_money[t]
        hours[at] = c.duration[t[:, None], cls].max(axis=1)
    return money, hours


def decode_fleet(
    c: FleetCompiled,
    assign: np.ndarray | None,
    status: Status,
    bound: float | None,
    *,
    solver: str,
    phases: list[str],
    requested: str,
    reason: str,
    started: float,
    warm: float | None,
    incumbents: list[tuple[float, float]],
    stats: dict[str, bool | int | float | str],
    message: str = "",
    scaling: Scaling | None = None,
    start: np.ndarray | None = None,
) -> Plan:
    """FleetCompiled + assignment (+ start times, hours, for a scheduled problem) -> Plan."""
    p = c.program
    common = dict(
        solver=solver,
        phases=phases,
        solver_requested=requested,
        solver_reason=reason,
        warm_start_objective=warm,
        incumbents=[Incumbent(time_s=round(t, 4), objective=o) for t, o in incumbents],
        stats=stats,
        message=message,
        scaling=scaling,
    )
    if assign is None or not status.has_solution:
        empty = [Unassigned(task=c.task_ids[t], reason=_reason(c, t, status)) for t in range(p.n_tasks)]
        return Plan(
            status=status,
            bound=bound,
            unassigned=empty,
            wall_time_s=round(time.monotonic() - started, 4),
            **common,
        )
    moved = _moved(p, assign)
    end = None
    if c.times is not None:
        if start is None:
            raise ValueError("a scheduled problem's plan needs start times")
        end = start + _durations(c, assign)
    assignments = []
    host = p.host
    placed_rows = np.flatnonzero(assign[:, 0] >= 0)
    money, longest = _money_and_hours(c, assign, placed_rows)
    for t, money_t, hours in zip(placed_rows.tolist(), money.tolist(), longest.tolist(), strict=True):
        gs = assign[t][assign[t] >= 0]
        cost = money_t  # money, whatever the objective
        if p.current[t, 0] >= 0:
            left = int(np.sum(~np.isin(p.current[t][p.current[t] >= 0], gs)))
            cost += c.source.tasks[t].migration_cost * left / p.gang[t]  # type: ignore[union-attr]
        real = gs[~host[gs]]  # a CPU-only task's host slot is no GPU: it lists none
        types = {p.type_names[k] for k in p.gpu_type[real]} if p.shares else set()
        assignments.append(
            Assignment(
                task=c.task_ids[t],
                gpus=[c.gpu_ids[g] for g in real],
                node=c.node_ids[p.gpu_node[gs[0]]],
                gpu_type=types.pop() if len(types) == 1 else None,
                cost=cost,
                duration_h=hours if np.isfinite(hours) else None,
                moved=bool(moved[t]) if p.current[t, 0] >= 0 else None,
                start_h=None if end is None else float(start[t]),  # type: ignore[index]
                end_h=None if end is None else float(end[t]),
            )
        )
    u = p.usage(assign)
    names: list[str] = []
    used_rows: list[np.ndarray] = []
    cap_rows: list[np.ndarray] = []
    if end is not None:  # a schedule: the most used at any instant
        assert start is not None
        u["load"], u["mem"] = peak_use(p, assign, start, end)
    if p.shares:
        names.append("gpu_time_h" if p.horizon else "gpu_share")
        used_rows.append(u["load"])
        cap_rows.append(np.full(p.n_gpus, p.capacity))
        if not p.horizon:
            names.append("gpu_memory_gb")
            used_rows.append(u["mem"])
            cap_rows.append(p.mem_cap)
    names += p.extra_names
    used_rows += list(u["extra"])
    cap_rows += list(p.extra_cap)
    usage = []
    for g in np.flatnonzero(~host):
        used = {n: round(float(v[g]), 9) for n, v in zip(names, used_rows, strict=True)}
        cap = {n: float(v[g]) for n, v in zip(names, cap_rows, strict=True)}
        ratio = max((used[r] / cap[r] if cap[r] > 0 else 0.0 for r in used), default=0.0)
        usage.append(
            GPUUsage(
                gpu=c.gpu_ids[g],
                node=c.node_ids[p.gpu_node[g]],
                tasks=int(u["count"][g]),
                used=used,
                capacity=cap,
                utilization=round(ratio, 6),
            )
        )
    placed = assign[:, 0] >= 0
    crit = criteria(p, assign)
    time_part = 0.0
    if end is not None and c.times is not None:
        tm = c.times
        ends = end[placed]
        late = np.maximum(0.0, ends - tm.due[placed])
        timed = {
            "makespan": float(ends.max(initial=0.0)),
            "completion_time": float(tm.weight[placed] @ ends),
            "tardiness": float(tm.weight[placed] @ late),
        }
        crit.update(timed)
        crit["max_utilization"] = round(float(u["load"].max(initial=0.0)), 9)
        time_part = (
            tm.w_makespan * timed["makespan"]
            + tm.w_completion * timed["completion_time"]
            + tm.w_tardiness * timed["tardiness"]
        )
    objective = p.objective(assign) + time_part
    penalty = float(p.penalty[~placed].sum())
    status, bound, gap = settle(status, objective, bound)
    stats = dict(stats)
    stats.update({f"criterion_{k}": v for k, v in crit.items()})
    stats.update({f"weight_{k}": float(w) for k, w in c.terms})  # the objective's weights
    if c.stages > 1:  # the weights are one stage's: the verifier must know later levels weigh 0
        stats["lexicographic_stages"] = c.stages
    common["stats"] = stats
    return Plan(
        status=status,
        objective=objective,
        bound=bound,
        gap=gap,
        placement_cost=p.replace(penalty=np.zeros(p.n_tasks)).objective(assign) + time_part,  # no difference
        penalty=penalty,
        assignments=assignments,
        unassigned=[
            Unassigned(task=c.task_ids[t], reason=_reason(c, t, status, placed))
            for t in np.flatnonzero(~placed)
        ],
        gpus=usage,
        wall_time_s=round(time.monotonic() - started, 4),
        **common,
    )


def _durations(c: FleetCompiled, assign: np.ndarray) -> np.ndarray:
    """float [T]: each placed task's duration (its gang's slowest GPU), 0 where left out."""
    p = c.program
    out = np.zeros(p.n_tasks)
    for j in range(assign.shape[1]):
        g = assign[:, j]
        on = g >= 0
        d = np.zeros(p.n_tasks)
        d[on] = c.duration[np.flatnonzero(on), p.gpu_class[g[on]]]
        out = np.maximum(out, d)
    return out


def peak_use(
    p: FleetProgram, assign: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per GPU, the largest sum of shares and of GPU memory over the tasks running at any instant
    (`schedule.peak_levels`: a task ending when another starts does not overlap it)."""
    t_idx, k_idx = np.nonzero(assign >= 0)
    g = assign[t_idx, k_idx]
    s, e = start[t_idx], end[t_idx]
    share = peak_levels(g, s, e, p.share[t_idx], p.n_gpus)
    mem = peak_levels(g, s, e, p.gpu_mem[t_idx], p.n_gpus)
    return share, mem


def presolve_plan(c: FleetCompiled, requested: str, started: float, reason: str, message: str) -> Plan:
    """The infeasible plan found before any search (a required task with no home, a chain past its
    deadline): every task left out with its reason."""
    return decode_fleet(
        c,
        None,
        Status.INFEASIBLE,
        None,
        solver="presolve",
        phases=["presolve"],
        requested=requested,
        reason=reason,
        started=started,
        warm=None,
        incumbents=[],
        stats={},
        message=message,
    )


__all__ = ["criteria", "decode_fleet", "peak_use", "presolve_plan"]
