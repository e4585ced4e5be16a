"""Large-neighbourhood search: re-optimize a few GPUs at a time with CP-SAT.

Each step frees the tasks on a subset of GPUs (plus left-out optional tasks that could go there),
keeps everything else fixed, and solves that small assignment problem exactly with CP-SAT, hinted
with the incumbent. Subsets are either random or built around one GPU and the GPUs its tasks could
most cheaply move to. The subset size adapts: it grows while steps finish with proven optima and
shrinks when they time out.
"""

from __future__ import annotations

import time

import numpy as np

from gpuplan.models.plan import Status
from gpuplan.optimizer.program import DROPPED, Program
from gpuplan.solvers.base import SolveParams
from gpuplan.solvers.cpsat import CpSatSolver


def subprogram(program: Program, gpus: np.ndarray, tasks: np.ndarray) -> Program:
    """The program restricted to `tasks` on `gpus` (full capacities of those GPUs)."""
    return Program(
        cost=program.cost[np.ix_(tasks, gpus)],
        eligible=program.eligible[np.ix_(tasks, gpus)],
        load=program.load[:, tasks][:, :, gpus],
        capacity=program.capacity[:, gpus],
        optional=program.optional[tasks],
        priority=program.priority[tasks],
        penalty=program.penalty[tasks],
        cost_int=program.cost_int[np.ix_(tasks, gpus)],
        penalty_int=program.penalty_int[tasks],
        load_int=program.load_int[:, tasks][:, :, gpus],
        capacity_int=program.capacity_int[:, gpus],
        cost_scale=program.cost_scale,
        load_scale=program.load_scale,
        resource_names=program.resource_names,
        scaling_exact=program.scaling_exact,
        loads_exact=program.loads_exact,
    )


class LNS:
    """Improve a feasible assignment until the deadline; records every improvement."""

    def __init__(self, program: Program, seed: int = 0, workers: int = 1, step_s: float = 0.1) -> None:
        self.p = program
        self.step_s = step_s
        self.rng = np.random.default_rng(seed)
        self.workers = workers
        self.seed = seed
        self.size = min(program.n_gpus, 4)
        self.steps = 0
        self.improvements = 0
        self.timeline: list[tuple[float, float]] = []

    def _pick(self, assign: np.ndarray) -> np.ndarray:
        g_n = self.p.n_gpus
        k = min(self.size, g_n)
        if k >= g_n:
            return np.arange(g_n)
        if self.rng.random() < 0.5:
            return np.sort(self.rng.choice(g_n, size=k, replace=False))
        g0 = int(self.rng.integers(g_n))
        on = np.flatnonzero(assign == g0)
        if on.size == 0:
            return np.sort(self.rng.choice(g_n, size=k, replace=False))
        cost = np.where(self.p.eligible[on], self.p.cost_int[on], np.iinfo(np.int64).max // 4)
        rel = (cost - self.p.cost_int[on, g0][:, None]).min(axis=0).astype(np.float64)
        rel += self.rng.random(g_n) * (np.abs(rel).mean() + 1.0)
        rel[g0] = -np.inf
        return np.sort(np.argsort(rel)[:k])

    def run(self, assign: np.ndarray, deadline: float, started: float) -> np.ndarray:
        """Return the improved assignment (always feasible if the input was)."""
        p = self.p
        best = assign.copy()
        best_obj = p.objective_int(best)
        solver = CpSatSolver()
        while True:
            left = deadline - time.monotonic()
            if left < 0.05:
                break
            gpus = self._pick(best)
            in_set = np.zeros(p.n_gpus, dtype=bool)
            in_set[gpus] = True
            placed_here = (best >= 0) & in_set[np.maximum(best, 0)]
            dropped_fit = (best == DROPPED) & p.eligible[:, gpus].any(axis=1)
            tasks = np.flatnonzero(placed_here | dropped_fit)
            if tasks.size == 0:
                continue
            sub = subprogram(p, gpus, tasks)
            local = np.searchsorted(gpus, best[tasks])
            hint = np.where(best[tasks] >= 0, local, DROPPED)
            limit = min(left, self.step_s)
            res = solver.solve(
                sub,
                SolveParams(
                    deadline=time.monotonic() + limit,
                    workers=self.workers,
                    seed=self.seed + self.steps,
                    hint=hint,
                ),
            )
            self.steps += 1
            if res.status is Status.OPTIMAL:
                self.size = min(self.size + 1, p.n_gpus)
            elif self.size > 2:
                self.size -= 1
            if not res.status.has_solution:
                continue
            cand = best.copy()
            cand[tasks] = np.where(res.assign >= 0, gpus[np.maximum(res.assign, 0)], DROPPED)
            obj = p.objective_int(cand)
            if obj < best_obj and p.is_feasible(cand):
                best, best_obj = cand, obj
                self.improvements += 1
                self.timeline.append((time.monotonic() - started, p.objective(best)))
        return best
