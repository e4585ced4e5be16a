"""OR-Tools CP-SAT backend: Booleans only for eligible pairs, greedy hint, wall-clock limit."""

from __future__ import annotations

import time

import numpy as np

from gpuplan.interrupt import solve_cpsat
from gpuplan.program.gap import DROPPED, Program
from gpuplan.program.solution import RawSolution, SolveParams, int_bound_to_user, proven_status
from gpuplan.status import Status


def _status_map() -> dict[int, Status]:
    from ortools.sat.python import cp_model

    return {
        cp_model.OPTIMAL: Status.OPTIMAL,
        cp_model.FEASIBLE: Status.FEASIBLE,
        cp_model.INFEASIBLE: Status.INFEASIBLE,
        cp_model.UNKNOWN: Status.UNKNOWN,
    }


class CpSatSolver:
    """Exact backend on CP-SAT; the objective and best bound are read from the solver."""

    name = "cpsat"

    def __init__(self, use_hint: bool = True) -> None:
        self.use_hint = use_hint

    def solve(self, program: Program, params: SolveParams) -> RawSolution:
        from ortools.sat.python import cp_model

        started = time.monotonic()
        model = cp_model.CpModel()
        ts, gs = np.nonzero(program.eligible)
        n_pairs = ts.size
        x = [model.new_bool_var("") for _ in range(n_pairs)]
        drop: dict[int, cp_model.IntVar] = {}
        by_task: list[list[int]] = [[] for _ in range(program.n_tasks)]
        for k, t in enumerate(ts.tolist()):
            by_task[t].append(k)
        for t in range(program.n_tasks):
            lits = [x[k] for k in by_task[t]]
            if program.optional[t]:
                drop[t] = model.new_bool_var("")
                lits.append(drop[t])
            if not lits:
                return RawSolution.empty(program, Status.INFEASIBLE, "a required task has no eligible GPU")
            model.add_exactly_one(lits)
        order = np.argsort(gs, kind="stable")
        bounds = np.searchsorted(gs[order], np.arange(program.n_gpus + 1))
        for g in range(program.n_gpus):
            ks = order[bounds[g] : bounds[g + 1]]
            if ks.size == 0:
                continue
            for r in range(program.n_resources):
                coefs = program.load_int[r, ts[ks], g]
                cap = int(program.capacity_int[r, g])
                if int(coefs.sum()) <= cap:
                    continue  # never binding
                model.add(cp_model.LinearExpr.weighted_sum([x[k] for k in ks], coefs.tolist()) <= cap)
        obj_vars = list(x) + list(drop.values())
        obj_coefs = program.cost_int[ts, gs].tolist() + [int(program.penalty_int[t]) for t in drop]
        model.minimize(cp_model.LinearExpr.weighted_sum(obj_vars, obj_coefs))
        hint = params.hint
        if self.use_hint and hint is not None:
            for k in range(n_pairs):
                model.add_hint(x[k], bool(hint[ts[k]] == gs[k]))
            for t, d in drop.items():
                model.add_hint(d, bool(hint[t] == DROPPED))

        solver = cp_model.CpSolver()
        built = time.monotonic() - started
        solver.parameters.max_time_in_seconds = max(0.05, params.remaining())
        solver.parameters.num_workers = max(1, params.workers)
        solver.parameters.random_seed = params.seed
        timeline: list[tuple[float, float]] = []

        class _Recorder(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(self) -> None:
                timeline.append((time.monotonic() - started, self.objective_value))

        code = solve_cpsat(solver, model, _Recorder())
        status = _status_map().get(code, Status.UNKNOWN)
        stats: dict[str, bool | int | float | str] = {
            "build_s": round(built, 4),
            "variables": n_pairs + len(drop),
            "branches": int(solver.num_branches),
            "conflicts": int(solver.num_conflicts),
        }
        if not status.has_solution:
            sol = RawSolution.empty(program, status, f"CP-SAT: {solver.status_name(code)}")
            sol.stats = stats
            return sol
        chosen = np.array([solver.boolean_value(v) for v in x], dtype=bool)
        assign = np.full(program.n_tasks, DROPPED, dtype=np.int64)
        assign[ts[chosen]] = gs[chosen]
        bound = int_bound_to_user(program, solver.best_objective_bound)
        obj = program.objective(assign)
        if status is Status.OPTIMAL:
            status = proven_status(program, obj)
        inc = [(s, float(v) / program.cost_scale) for s, v in timeline]
        return RawSolution(assign, status, obj, bound, inc, stats)
