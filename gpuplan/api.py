"""The public entry point: `solve` a Problem, the matrix form, or a dict read from JSON.

A Problem or the matrix form is built into its one program, solved through its GAP view by the GAP
strategy when it is a GAP (the matrix form always is), else by the fleet search. Every plan ends
with the one verifier.
"""

from __future__ import annotations

import math
import time
from typing import Any

from gpuplan.backends import BACKENDS
from gpuplan.errors import InputError
from gpuplan.interrupt import Stop, requested, watching
from gpuplan.models import Matrix, MatrixProblem, Plan, Problem
from gpuplan.models.objective import MAX_SEED, MAX_WORKERS

#: The names `solve` takes for its `solver` argument.
SOLVERS = ("auto", *BACKENDS)


def solve(
    problem: Problem | MatrixProblem | Matrix | dict[str, Any],
    solver: str | None = None,
    time_limit_s: float | None = None,
    workers: int | None = None,
    seed: int | None = None,
    stop: Stop | None = None,
    partitions: int = 1,
    ray: str | None = None,
) -> Plan:
    """Plan `problem` and return a verified Plan.

    `problem` is a Problem, the matrix form, or a dict of either (as read from JSON). Arguments
    left as None take the problem's `options` (defaults: auto, 10 s, all cores, seed 0). The time
    limit is wall-clock for the whole call; on timeout the best plan found so far is returned.
    `stop` (a `threading.Event`, or a callable returning True) ends the search early the same way:
    once set, the best verified plan found so far comes back, with `stats["interrupted"]` True and
    the message saying so. `partitions` > 1 cuts the fleet and the batch into that many parts,
    solved side by side in worker processes and repaired on the whole fleet (`gpuplan.partition`;
    fleet problems without times only, else an InputError naming the field); 1 (the default) solves
    the problem whole. With `ray` (a Ray address, `auto` for the cluster this machine belongs to) the
    parts run as Ray tasks there instead (Ray is imported only then).
    """
    started = time.monotonic()
    if isinstance(problem, dict):
        problem = parse_problem(problem)
    if solver is not None and solver not in SOLVERS:
        raise InputError("solver", f"unknown backend {solver!r} (choose {', '.join(SOLVERS)})")
    _check_settings(time_limit_s, workers, seed)
    if partitions != 1:
        from gpuplan.partition import refuse_unsupported

        refuse_unsupported(problem, partitions)
    if ray is not None and partitions == 1:
        raise InputError("ray", f"{ray!r}: Ray runs the parts of a partitioned solve; give partitions > 1")
    with watching(stop):
        if partitions > 1:
            assert isinstance(problem, Problem)  # refused otherwise
            plan = _solve_partitioned(problem, partitions, solver, time_limit_s, workers, seed, started, ray)
        elif isinstance(problem, Problem):
            plan = _solve_problem(problem, solver, time_limit_s, workers, seed, started)
        else:
            from gpuplan.strategy.fleet import solve_fleet

            plan = solve_fleet(  # the matrix form carries no options: the defaults fill in
                problem,
                solver=solver or "auto",
                time_limit_s=10.0 if time_limit_s is None else time_limit_s,
                workers=workers,
                seed=0 if seed is None else seed,
                started=started,
            )
        return _mark_interrupted(plan) if requested() else plan


def _check_settings(time_limit_s: float | None, workers: int | None, seed: int | None) -> None:
    """The call's own settings obey the limits of the problem's `options` (InputError otherwise)."""
    if time_limit_s is not None and not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise InputError("time_limit_s", f"must be a finite number of seconds > 0 (got {time_limit_s})")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise InputError("workers", f"must be between 1 and {MAX_WORKERS} (got {workers})")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InputError("seed", f"must be between 0 and {MAX_SEED} (got {seed})")


def _mark_interrupted(plan: Plan) -> Plan:
    """The plan of a search stopped by the caller: says so in `stats` and `message` (the plan itself
    was verified as it is)."""
    note = "interrupted: the best plan found before the stop"
    message = f"{note}; {plan.message}" if plan.message else note
    return plan.model_copy(update={"stats": {**plan.stats, "interrupted": True}, "message": message})


def _solve_problem(
    problem: Problem,
    solver: str | None,
    time_limit_s: float | None,
    workers: int | None,
    seed: int | None,
    started: float,
) -> Plan:
    """A Problem goes to its one program (`solve_fleet` picks the GAP view or the fleet search),
    with the problem's options filling what the call leaves out."""
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


def _solve_partitioned(
    problem: Problem,
    partitions: int,
    solver: str | None,
    time_limit_s: float | None,
    workers: int | None,
    seed: int | None,
    started: float,
    ray: str | None,
) -> Plan:
    """A Problem in `partitions` parts (`gpuplan.partition`), the problem's options filling in."""
    from gpuplan.partition import solve_partitioned

    opts = problem.options
    return solve_partitioned(
        problem,
        partitions=partitions,
        solver=solver or opts.solver,
        time_limit_s=time_limit_s if time_limit_s is not None else opts.time_limit_s,
        workers=workers or opts.workers,
        seed=seed if seed is not None else opts.seed,
        started=started,
        ray=ray,
    )


def parse_problem(data: dict[str, Any]) -> Problem | MatrixProblem:
    """A dict from JSON -> Problem, or MatrixProblem when it holds a `matrix` key."""
    if isinstance(data, dict) and "matrix" in data:
        return MatrixProblem.model_validate(data)
    return Problem.model_validate(data)
