"""SCIP (through OR-Tools' linear solver) on the integer program, run in a background thread.

SCIP's knapsack cover cuts and its own primal heuristics complement CP-SAT on small, tight programs,
and its `Solve` releases the GIL, so it can run on one core beside a one-worker CP-SAT. The time
limit is SCIP's own; the bound it reports is proven for the integer program.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from gpuplan.program.gap import DROPPED, Program


def scip_available() -> bool:
    """True when this OR-Tools build ships SCIP."""
    try:
        from ortools.linear_solver import pywraplp
    except ImportError:  # pragma: no cover - ortools is a dependency
        return False
    return pywraplp.Solver.CreateSolver("SCIP") is not None


class ScipRun:
    """One SCIP solve of `program` until `deadline`, started with `start()`, read after `join()`."""

    def __init__(self, program: Program, deadline: float, hint: np.ndarray | None = None) -> None:
        self.p = program
        self.deadline = deadline
        self.hint = hint
        self.assign: np.ndarray | None = None
        self.bound_int: float | None = None  # proven lower bound on the integer program's objective
        self.optimal = False
        self.error = ""
        self._solver: object | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="gpuplan-scip", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        """Ask SCIP to stop now (it keeps the best solution and bound found so far)."""
        with self._lock:
            self._stopped = True
            if self._solver is not None:
                self._solver.InterruptSolve()  # type: ignore[attr-defined]

    def _run(self) -> None:
        try:
            self._solve()
        except Exception as exc:  # a failed portfolio member must not sink the solve
            self.error = f"{type(exc).__name__}: {exc}"

    def _solve(self) -> None:
        from ortools.linear_solver import pywraplp

        p = self.p
        solver = pywraplp.Solver.CreateSolver("SCIP")
        if solver is None:
            self.error = "SCIP is not available"
            return
        ts, gs = np.nonzero(p.eligible)
        x = [solver.BoolVar("") for _ in range(ts.size)]
        objective = solver.Objective()
        objective.SetMinimization()
        rows = [solver.Constraint(1.0, 1.0) for _ in range(p.n_tasks)]
        drop: dict[int, pywraplp.Variable] = {}
        for t in np.flatnonzero(p.optional).tolist():
            drop[t] = solver.BoolVar("")
            rows[t].SetCoefficient(drop[t], 1.0)
            objective.SetCoefficient(drop[t], float(p.penalty_int[t]))
        for k, (t, g) in enumerate(zip(ts.tolist(), gs.tolist(), strict=True)):
            rows[t].SetCoefficient(x[k], 1.0)
            objective.SetCoefficient(x[k], float(p.cost_int[t, g]))
        for r in range(p.n_resources):
            for g in range(p.n_gpus):
                ks = np.flatnonzero(gs == g)
                coefs = p.load_int[r, ts[ks], g]
                if int(coefs.sum()) <= int(p.capacity_int[r, g]):
                    continue  # never binding
                row = solver.Constraint(-solver.infinity(), float(p.capacity_int[r, g]))
                for k, a in zip(ks.tolist(), coefs.tolist(), strict=True):
                    if a:
                        row.SetCoefficient(x[k], float(a))
        if self.hint is not None:
            hv = [x[k] for k in range(ts.size)] + list(drop.values())
            vals = [float(self.hint[t] == g) for t, g in zip(ts.tolist(), gs.tolist(), strict=True)]
            vals += [float(self.hint[t] == DROPPED) for t in drop]
            solver.SetHint(hv, vals)
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            return
        solver.SetTimeLimit(max(1, int(left * 1000)))
        params = pywraplp.MPSolverParameters()
        params.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, 0.0)
        with self._lock:
            if self._stopped:
                return
            self._solver = solver
        code = solver.Solve(params)
        if code not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            return
        chosen = np.array([v.solution_value() > 0.5 for v in x], dtype=bool)
        assign = np.full(p.n_tasks, DROPPED, dtype=np.int64)
        assign[ts[chosen]] = gs[chosen]
        self.assign = assign
        bound = solver.Objective().BestBound()
        if np.isfinite(bound):
            self.bound_int = float(bound) - 1e-6 * max(1.0, abs(float(bound)))
        self.optimal = code == pywraplp.Solver.OPTIMAL
