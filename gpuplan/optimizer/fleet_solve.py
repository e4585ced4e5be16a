"""Solve a fleet program: bound, greedy starts, ejection search, CP-SAT when small; decode; verify.

auto: the aggregated LP and packing bounds first (fleet_bound), then greedy passes with several task
orders and fit weights (the best kept), then ejection and swap moves that place left-out tasks; when the
model is small enough for the exact CP-SAT model (at most FLEET_EXACT_PAIRS eligible task-GPU
pairs), CP-SAT polishes the best start for the remaining time. 'greedy' stops after the greedy
passes; 'cpsat' always runs the exact model; 'milp' covers the GAP core only and is refused here.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from gpuplan.errors import InputError
from gpuplan.models import Assignment, GPUUsage, Incumbent, Plan, Problem, Status, Unassigned
from gpuplan.optimizer.fleet import NONE, FleetCompiled, FleetProgram, compile_fleet
from gpuplan.optimizer.fleet_bound import Packing, fleet_lower_bound, packing_bound
from gpuplan.solvers.fleet_greedy import FleetState, eject_improve, fleet_greedy, swap_improve, task_order

log = logging.getLogger("gpuplan")

#: Largest number of eligible (task, GPU) pairs for which auto runs the exact CP-SAT model.
FLEET_EXACT_PAIRS = 20_000


def _pairs(p: FleetProgram) -> int:
    per_class = np.bincount(p.gpu_class[p.gpu_ok], minlength=p.eligible_c.shape[1])
    return int((p.eligible_c @ per_class).sum())


def late_tasks(p: FleetProgram, packing: Packing | None) -> np.ndarray | None:
    """bool [T]: tasks beyond what the packing LP places of their kind (larger gangs served first)."""
    if packing is None or packing.used is None:
        return None
    left = np.round(packing.used).astype(np.int64)
    late = np.zeros(p.n_tasks, dtype=bool)
    for t in task_order(p, "gpu"):
        i = packing.item_of_task[t]
        if i < 0:
            continue
        if left[i] >= p.gang[t]:
            left[i] -= p.gang[t]
        else:
            late[t] = True
    return late if late.any() else None


def _starts(
    p: FleetProgram, deadline: float, hard_deadline: float, late: np.ndarray | None
) -> tuple[FleetState, str]:
    """Greedy passes over a few orders and fit weights, the best by objective; new passes start only
    before `deadline`, and every pass stops at `hard_deadline`."""
    best: FleetState | None = None
    best_val = np.inf
    name = ""
    variants = [(how, balance, None) for how in ("gpu", "dominant") for balance in (1.0, 0.0)]
    if late is not None:
        variants = [("gpu", 1.0, late), ("dominant", 1.0, late), *variants]
    for how, balance, lt in variants:
        if best is not None and time.monotonic() >= deadline:
            break
        st = fleet_greedy(p, order=task_order(p, how, lt), balance=balance, deadline=hard_deadline)
        val = np.inf if np.any((st.assign[:, 0] < 0) & ~p.optional) else p.objective(st.assign)
        if best is None or val < best_val:
            tag = ", packing order" if lt is not None else ""
            best, best_val, name = st, val, f"greedy({how}, balance={balance:g}{tag})"
    assert best is not None
    return best, name


def _reason(c: FleetCompiled, t: int, status: Status) -> str:
    p, task = c.program, c.source.tasks[t]
    if not p.eligible_c[t].any() and p.cpu_only[t]:
        sel = task.node_selector.items()
        if not any(all(n.labels.get(k) == v for k, v in sel) for n in c.source.nodes):
            return f"no node carries the labels {task.node_selector}"
        return f"its duration ({task.work_h} h, with data transfer) exceeds the horizon"
    if not p.eligible_c[t].any():
        prob = c.source
        present = {g.type for _, g in prob.all_gpus()}
        if task.allowed_types is not None and not present & set(task.allowed_types):
            return f"allowed types {', '.join(task.allowed_types)}: no such GPU in the fleet"
        if task.node_selector:
            return f"no node carries the labels {task.node_selector} with an eligible GPU"
        if task.gpus > 1:
            return f"no node holds {task.gpus} eligible GPUs" + (" of one type" if task.same_type else "")
        return "no GPU type in the fleet is allowed, large enough and has a duration for it"
    if not p.eligible(t).any():
        return "every eligible GPU is unhealthy or over the temperature limit"
    if task.optional:
        return "no room left: eligible GPUs or their nodes' CPU/memory are taken by other work"
    if status is Status.INFEASIBLE:
        return "required, but no plan places every required task (proven infeasible)"
    return "required, but no plan placing every required task was found within the time limit"


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


def decode_fleet(
    c: FleetCompiled,
    assign: np.ndarray | None,
    status: Status,
    bound: float | None,
    *,
    solver: str,
    requested: str,
    reason: str,
    started: float,
    warm: float | None,
    incumbents: list[tuple[float, float]],
    stats: dict[str, float | int | str],
    message: str = "",
) -> Plan:
    """FleetCompiled + assignment -> Plan."""
    p = c.program
    common = dict(
        solver=solver,
        solver_requested=requested,
        solver_reason=reason,
        warm_start_objective=warm,
        incumbents=[Incumbent(time_s=round(t, 4), objective=o) for t, o in incumbents],
        stats=stats,
        message=message,
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
    assignments = []
    for t in np.flatnonzero(assign[:, 0] >= 0):
        gs = assign[t][assign[t] >= 0]
        cls = p.gpu_class[gs]
        cost = float(p.cost_c[t, cls].sum() + p.transfer_each[t])
        if p.current[t, 0] >= 0:
            cost += float(p.move_cost[t] * np.sum(~np.isin(gs, p.current[t])))
        real = gs[~p.host[gs]]  # a CPU-only task's host slot is no GPU: it lists none
        types = {p.type_names[k] for k in p.gpu_type[real]}
        assignments.append(
            Assignment(
                task=c.task_ids[t],
                gpus=[c.gpu_ids[g] for g in real],
                node=c.node_ids[p.gpu_node[gs[0]]],
                gpu_type=types.pop() if len(types) == 1 else None,
                cost=cost,
                duration_h=float(np.max(c.duration[t, cls])),
                moved=bool(moved[t]) if p.current[t, 0] >= 0 else None,
            )
        )
    u = p.usage(assign)
    primary = "gpu_time_h" if p.horizon else "gpu_share"
    usage = []
    for g in np.flatnonzero(~p.host):
        used = {primary: round(float(u["load"][g]), 9)}
        cap = {primary: p.capacity}
        if not p.horizon:
            used["gpu_memory_gb"] = round(float(u["mem"][g]), 9)
            cap["gpu_memory_gb"] = float(p.mem_cap[g])
        usage.append(
            GPUUsage(
                gpu=c.gpu_ids[g],
                node=c.node_ids[p.gpu_node[g]],
                tasks=int(u["count"][g]),
                used=used,
                capacity=cap,
                utilization=round(float(u["load"][g] / p.capacity), 6),
            )
        )
    placed = assign[:, 0] >= 0
    objective = p.objective(assign)
    penalty = float(p.penalty[~placed].sum())
    if bound is not None:
        bound = min(bound, objective)
    gap = (
        0.0
        if status is Status.OPTIMAL
        else (None if bound is None else abs(objective - bound) / max(abs(objective), 1e-9))
    )
    stats = dict(stats)
    stats.update({f"criterion_{k}": v for k, v in criteria(p, assign).items()})
    common["stats"] = stats
    return Plan(
        status=status,
        objective=objective,
        bound=bound,
        gap=gap,
        placement_cost=objective - penalty,
        penalty=penalty,
        assignments=assignments,
        unassigned=[
            Unassigned(task=c.task_ids[t], reason=_reason(c, t, status)) for t in np.flatnonzero(~placed)
        ],
        gpus=usage,
        wall_time_s=round(time.monotonic() - started, 4),
        **common,
    )


def solve_fleet(
    problem: Problem,
    *,
    solver: str,
    time_limit_s: float,
    workers: int | None,
    seed: int,
    started: float,
) -> Plan:
    """Compile with the fleet program and solve (see the module docstring)."""
    from gpuplan.optimizer.verify import verify_fleet

    if solver == "milp":
        raise InputError(
            "solver",
            "'milp' covers the GAP core only (one GPU per task, share, memory, time); this "
            "problem uses gangs, node resources, placement rules, data, migration or another "
            "objective: use auto, cpsat or greedy",
        )
    deadline = started + time_limit_s
    workers = workers or os.cpu_count() or 1
    c = compile_fleet(problem)
    p = c.program
    stats: dict[str, float | int | str] = {}
    required_homeless = np.flatnonzero(~p.eligible_c.any(axis=1) & ~p.optional)
    if required_homeless.size:
        plan = decode_fleet(
            c,
            None,
            Status.INFEASIBLE,
            None,
            solver="presolve",
            requested=solver,
            reason="a required task fits on no GPU (or, CPU-only, on no node)",
            started=started,
            warm=None,
            incumbents=[],
            stats=stats,
            message=f"{required_homeless.size} required task(s) have no eligible GPU or node",
        )
        verify_fleet(plan, problem)
        return plan
    lp = fleet_lower_bound(p, deadline=started + 0.3 * time_limit_s)
    bound = None if not np.isfinite(lp.bound) else float(lp.bound)
    stats.update(lp.stats)
    packing = packing_bound(p, deadline=started + 0.3 * time_limit_s)
    if packing is not None:
        stats["packing_bound"] = packing.bound
        bound = packing.bound if bound is None else max(bound, packing.bound)
    st, name = _starts(
        p, started + 0.5 * time_limit_s, deadline - 0.02 * time_limit_s, late_tasks(p, packing)
    )
    incumbents: list[tuple[float, float]] = []
    feasible = not np.any((st.assign[:, 0] < 0) & ~p.optional)
    warm = p.objective(st.assign) if feasible else None
    if feasible:
        incumbents.append((time.monotonic() - started, warm))
    used = name
    pairs = _pairs(p)
    exact = solver == "cpsat" or (solver == "auto" and pairs <= FLEET_EXACT_PAIRS)
    if solver != "greedy":
        # Moves share the time with CP-SAT when it runs; otherwise they may use it all.
        until = started + (0.3 if exact else 0.95) * time_limit_s
        moved = eject_improve(st, min(until, started + 0.6 * time_limit_s))
        swapped = swap_improve(st, until)
        stats["eject_placed"], stats["swap_placed"] = moved, swapped
        if moved or swapped:
            used += "+moves"
    assign = st.assign.copy()
    feasible = not np.any((assign[:, 0] < 0) & ~p.optional)
    status = Status.FEASIBLE if feasible else Status.UNKNOWN
    objective = p.objective(assign) if feasible else None
    if objective is not None and (not incumbents or objective < incumbents[-1][1]):
        incumbents.append((time.monotonic() - started, objective))
    reason = f"{pairs:,} eligible pairs: greedy starts, LP and packing bounds, ejection and swap moves"
    if exact and time.monotonic() < deadline:
        from gpuplan.solvers.fleet_cpsat import solve_fleet_cpsat

        offset = time.monotonic() - started
        res = solve_fleet_cpsat(
            p, deadline=deadline, workers=workers, seed=seed, hint=assign if feasible else None
        )
        stats.update(res.stats)
        used = "cpsat" if solver == "cpsat" else f"{used}+cpsat"
        reason += ", exact CP-SAT"
        if res.bound is not None:
            bound = res.bound if bound is None else max(bound, res.bound)
        if res.status is Status.INFEASIBLE:
            status, assign, objective = Status.INFEASIBLE, None, None
        elif (
            res.status.has_solution
            and res.objective is not None
            and (objective is None or res.objective <= objective)
        ):
            assign, objective, status = res.assign, res.objective, res.status
            incumbents.extend((offset + t, v) for t, v in res.incumbents)
    proven = (
        objective is not None and bound is not None and objective - bound <= 1e-9 * max(1.0, abs(objective))
    )
    if status is Status.FEASIBLE and proven:
        status = Status.OPTIMAL
    if status.has_solution and assign is not None:
        bad = p.violations(assign)
        if bad:
            raise AssertionError(f"fleet solver produced an infeasible plan: {bad[:3]}")
    plan = decode_fleet(
        c,
        assign,
        status,
        bound,
        solver=used,
        requested=solver,
        reason=reason,
        started=started,
        warm=warm,
        incumbents=incumbents,
        stats=stats,
        message=""
        if status.has_solution or status is Status.INFEASIBLE
        else "no plan placing every required task was found within the time limit",
    )
    verify_fleet(plan, problem)
    return plan


__all__ = ["FLEET_EXACT_PAIRS", "NONE", "criteria", "decode_fleet", "solve_fleet"]
