"""The public entry point: `solve` a Problem, the matrix form, or a dict read from JSON.

A Problem that uses any fleet feature (or is too large for the dense GAP arrays, or whose priority
tiers are too wide to weigh in one program) goes to the fleet strategy; everything else to the GAP
strategy and its portfolio. Both end with the one verifier.
"""

from __future__ import annotations

import time
from typing import Any

from gpuplan.errors import InputError
from gpuplan.models import Matrix, MatrixProblem, Plan, Problem
from gpuplan.program.compile import compile_problem
from gpuplan.program.priorities import TiersTooWide
from gpuplan.strategy.gap import AUTO_MAX_PAIRS, solve_compiled

#: The names `solve` takes for its `solver` argument.
SOLVERS = ("auto", "greedy", "cpsat", "milp")


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
    from gpuplan.strategy.fleet import solve_fleet

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
