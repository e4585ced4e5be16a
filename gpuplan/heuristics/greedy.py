"""Greedy: priority first, cheapest GPU with room, best fit on ties. Vectorized over GPUs."""

from __future__ import annotations

import time

import numpy as np

from gpuplan.program.gap import DROPPED, Program
from gpuplan.program.solution import RawSolution, SolveParams
from gpuplan.status import Status


def task_order(program: Program) -> np.ndarray:
    """Required tasks first, then by priority (high first), then hardest to fit first.

    Hardness is the task's smallest relative load over its eligible GPUs (its "size"), so big
    tasks are placed while there is still room, and tasks with few eligible GPUs come early.
    """
    cap = np.maximum(program.capacity_int, 1)[:, None, :]
    rel = (program.load_int / cap).max(axis=0)  # [T, G]
    size = np.where(program.eligible, rel, np.inf).min(axis=1, initial=np.inf)
    size = np.where(np.isfinite(size), size, 0.0)
    choices = program.eligible.sum(axis=1)
    return np.lexsort((-size, choices, -program.priority, program.optional))


def place_in_order(program: Program, order: np.ndarray, assign: np.ndarray | None = None) -> np.ndarray:
    """Place each unplaced task of `order` on its cheapest eligible GPU with room."""
    assign = np.full(program.n_tasks, DROPPED, dtype=np.int64) if assign is None else assign.copy()
    resid = program.capacity_int - program.used_int(assign)
    big = np.iinfo(np.int64).max
    for t in order:
        if assign[t] != DROPPED:
            continue
        loads = program.load_int[:, t, :]
        fits = program.eligible[t] & np.all(loads <= resid, axis=0)
        if not fits.any():
            continue
        cost = np.where(fits, program.cost_int[t], big)
        best = np.flatnonzero(cost == cost.min())
        if best.size > 1:  # best fit: least relative room left
            slack = ((resid[:, best] - loads[:, best]) / np.maximum(program.capacity_int[:, best], 1)).min(
                axis=0
            )
            best = best[[int(np.argmin(slack))]]
        g = int(best[0])
        assign[t] = g
        resid[:, g] -= loads[:, g]
    return assign


def evaluate(program: Program, assign: np.ndarray, started: float, name: str) -> RawSolution:
    """Wrap an assignment as a RawSolution: feasible when every required task is placed."""
    missing = int(np.sum((assign == DROPPED) & ~program.optional))
    elapsed = time.monotonic() - started
    if missing:
        return RawSolution(
            assign,
            Status.UNKNOWN,
            None,
            stats={"time_s": elapsed, "required_unplaced": missing},
            message=f"{name} left {missing} required task(s) unplaced",
        )
    obj = program.objective(assign)
    return RawSolution(assign, Status.FEASIBLE, obj, incumbents=[(elapsed, obj)], stats={"time_s": elapsed})


class GreedySolver:
    """Fast constructive heuristic; the warm start of the exact backends and their fallback."""

    name = "greedy"

    def solve(self, program: Program, params: SolveParams) -> RawSolution:
        started = time.monotonic()
        assign = place_in_order(program, task_order(program))
        return evaluate(program, assign, started, self.name)
