"""The solve() facade: compile, greedy warm start, exact backend, polish, decode, verify."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from gpuplan.errors import InputError
from gpuplan.models import Matrix, MatrixProblem, Plan, Problem, Status
from gpuplan.optimizer.compile import Compiled, compile_problem
from gpuplan.optimizer.decode import decode
from gpuplan.optimizer.priorities import TiersTooWide
from gpuplan.optimizer.program import Program
from gpuplan.optimizer.verify import verify
from gpuplan.solvers import get_solver
from gpuplan.solvers.base import RawSolution, SolveParams
from gpuplan.solvers.greedy import GreedySolver
from gpuplan.solvers.polish import polish

log = logging.getLogger("gpuplan")

#: The names `solve` takes for its `solver` argument.
SOLVERS = ("auto", "greedy", "cpsat", "milp")

#: Above this many eligible (task, GPU) pairs, `auto` skips the exact model.
AUTO_MAX_PAIRS = 2_000_000


def choose_backend(program: Program) -> tuple[str, str]:
    """The backend `auto` picks for this program, and why."""
    pairs = int(program.eligible.sum())
    if pairs > AUTO_MAX_PAIRS:
        return "greedy", f"{pairs:,} eligible pairs exceed {AUTO_MAX_PAIRS:,}: exact model too large"
    return "portfolio", f"{pairs:,} eligible pairs: greedy, LP bound, restricted then exact CP-SAT"


#: Share of the time limit the local search may spend repairing a greedy start that left
#: required tasks unplaced (the warm start of the exact backends).
REPAIR_SHARE = 0.08
REPAIR_MIN_S = 2.5


def _repair(program: Program, warm: RawSolution, until: float, seed: int) -> RawSolution:
    """Local search from the greedy start until every required task is placed (or time is up)."""
    from gpuplan.solvers.greedy import evaluate
    from gpuplan.solvers.local import LocalSearch

    started = time.monotonic()
    assign = LocalSearch(program, seed).run(warm.assign, until)
    if not program.is_feasible(assign):
        return warm
    assign = polish(program, assign)
    repaired = evaluate(program, assign, started, "greedy+local")
    log.info("local search repaired the greedy start: objective=%s", repaired.objective)
    return repaired


def _better(a: RawSolution, b: RawSolution, program: Program) -> RawSolution:
    """The solution with the lower objective (a solution beats none)."""
    if not b.status.has_solution:
        return a
    if not a.status.has_solution:
        return b
    return a if program.objective_int(a.assign) <= program.objective_int(b.assign) else b


def solve_compiled(
    compiled: Compiled,
    *,
    solver: str = "auto",
    time_limit_s: float = 10.0,
    workers: int | None = None,
    seed: int = 0,
    started: float | None = None,
) -> Plan:
    """Solve an already compiled problem; see `solve`."""
    started = time.monotonic() if started is None else started
    deadline = started + time_limit_s
    program = compiled.program
    workers = workers or os.cpu_count() or 1
    if solver not in ("auto", "greedy", "cpsat", "milp"):
        raise InputError("solver", f"unknown backend {solver!r} (choose auto, greedy, cpsat, milp)")

    no_home = np.flatnonzero(~program.eligible.any(axis=1) & ~program.optional)
    if no_home.size:
        raw = RawSolution.empty(
            program,
            Status.INFEASIBLE,
            f"{no_home.size} required task(s) have no eligible GPU",
        )
        return _finish(compiled, raw, "presolve", solver, "a required task fits on no GPU", started, None)

    warm = GreedySolver().solve(program, SolveParams(deadline=deadline, workers=workers, seed=seed))
    if warm.status.has_solution:
        warm.assign = polish(program, warm.assign)
        warm.objective = program.objective(warm.assign)
    log.info("greedy: %s objective=%s", warm.status.value, warm.objective)
    name, reason = choose_backend(program) if solver == "auto" else (solver, "requested")
    if name != "greedy" and not warm.status.has_solution:
        budget = min(max(REPAIR_SHARE * time_limit_s, REPAIR_MIN_S), 0.3 * time_limit_s)
        warm = _repair(program, warm, started + budget, seed)
    warm_obj = warm.objective

    if name == "greedy":
        best = warm
    elif name == "portfolio":
        from gpuplan.optimizer.portfolio import run_portfolio

        best = run_portfolio(program, SolveParams(deadline=deadline, workers=workers, seed=seed), warm)
    else:
        params = SolveParams(deadline=deadline, workers=workers, seed=seed, hint=warm.assign)
        raw = get_solver(name).solve(program, params)
        log.info("%s: %s objective=%s bound=%s", name, raw.status.value, raw.objective, raw.bound)
        if raw.status is Status.INFEASIBLE:
            best = raw
        elif raw.status.has_solution:
            best = _better(raw, warm, program)
            if best is warm:
                best = RawSolution(
                    warm.assign,
                    Status.FEASIBLE,
                    warm.objective,
                    raw.bound,
                    raw.incumbents,
                    raw.stats,
                    f"{name} did not improve on the greedy warm start",
                )
        elif warm.status.has_solution:
            best = RawSolution(
                warm.assign,
                Status.FEASIBLE,
                warm.objective,
                raw.bound,
                warm.incumbents,
                raw.stats,
                f"{name} found no solution in time ({raw.message}); returning the greedy warm start",
            )
            name = f"{name}+greedy"
        else:
            best = raw
    if best.status.has_solution:
        polished = polish(program, best.assign)
        if not np.array_equal(polished, best.assign):
            best.assign = polished
            best.objective = program.objective(polished)
            if best.status is Status.OPTIMAL:
                best.status = Status.FEASIBLE
    return _finish(compiled, best, name, solver, reason, started, warm_obj)


def _finish(
    compiled: Compiled,
    raw: RawSolution,
    name: str,
    requested: str,
    reason: str,
    started: float,
    warm_obj: float | None,
) -> Plan:
    if raw.status.has_solution and raw.bound is not None and raw.objective is not None:
        raw.bound = min(raw.bound, raw.objective)
    plan = decode(
        compiled,
        raw,
        solver=name,
        solver_requested=requested,
        solver_reason=reason,
        wall_time_s=time.monotonic() - started,
        warm_start_objective=warm_obj,
    )
    verify(plan, compiled.source)
    return plan


def solve(
    problem: Problem | MatrixProblem | Matrix | dict[str, Any],
    solver: str | None = None,
    time_limit_s: float | None = None,
    workers: int | None = None,
    seed: int | None = None,
) -> Plan:
    """Plan `problem` and return a verified Plan.

    `problem` is a Problem, the matrix form, or a dict of either (as read from JSON). Arguments
    left as None take the problem's `options` (defaults: auto, 10 s, all cores, seed 0). The time
    limit is wall-clock for the whole call; on timeout the best plan found so far is returned.
    """
    started = time.monotonic()
    if isinstance(problem, dict):
        problem = parse_problem(problem)
    opts = problem.options if isinstance(problem, Problem) else None
    if solver is not None and solver not in SOLVERS:
        raise InputError("solver", f"unknown backend {solver!r} (choose {', '.join(SOLVERS)})")
    if isinstance(problem, Problem) and (problem.uses_fleet_features or _too_big(problem)):
        return _solve_fleet(problem, solver, time_limit_s, workers, seed, started)
    try:
        compiled = compile_problem(problem)
    except TiersTooWide as why:
        # Only a Problem has priorities. The fleet program solves them tier by tier.
        assert isinstance(problem, Problem)
        if (solver or problem.options.solver) == "milp":
            raise InputError(
                "solver",
                f"'milp' weighs every priority tier in one program, and this problem's tiers ({why}) are "
                "too wide to weigh exactly: use auto, cpsat or greedy",
            ) from None
        return _solve_fleet(problem, solver, time_limit_s, workers, seed, started)
    return solve_compiled(
        compiled,
        solver=solver or (opts.solver if opts else "auto"),
        time_limit_s=time_limit_s if time_limit_s is not None else (opts.time_limit_s if opts else 10.0),
        workers=workers or (opts.workers if opts else None),
        seed=seed if seed is not None else (opts.seed if opts else 0),
        started=started,
    )


def _solve_fleet(
    problem: Problem,
    solver: str | None,
    time_limit_s: float | None,
    workers: int | None,
    seed: int | None,
    started: float,
) -> Plan:
    """`solve` on the fleet program, with the problem's options filling what the call leaves out."""
    from gpuplan.optimizer.fleet_solve import solve_fleet

    opts = problem.options
    return solve_fleet(
        problem,
        solver=solver or opts.solver,
        time_limit_s=time_limit_s if time_limit_s is not None else opts.time_limit_s,
        workers=workers or opts.workers,
        seed=seed if seed is not None else opts.seed,
        started=started,
    )


def _too_big(problem: Problem) -> bool:
    """True when the dense [T, G] GAP arrays would be too large: the fleet program scales instead."""
    return len(problem.tasks) * sum(problem.type_counts().values()) > AUTO_MAX_PAIRS


def parse_problem(data: dict[str, Any]) -> Problem | MatrixProblem:
    """A dict from JSON -> Problem, or MatrixProblem when it holds a `matrix` key."""
    if isinstance(data, dict) and "matrix" in data:
        return MatrixProblem.model_validate(data)
    return Problem.model_validate(data)
