"""The GAP strategy: greedy warm start, then the backend asked for (`auto`: the portfolio), polish.

It runs on a GAP Program, the view of a program (a Problem's or the matrix form's) that is a GAP;
`strategy.fleet` decodes and verifies its plans."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from gpuplan.backends import get_solver, require
from gpuplan.heuristics.greedy import GreedySolver
from gpuplan.heuristics.polish import polish
from gpuplan.models import Status
from gpuplan.program.gap import Program
from gpuplan.program.solution import RawSolution, SolveParams

log = logging.getLogger("gpuplan")

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
    from gpuplan.heuristics.greedy import evaluate
    from gpuplan.heuristics.local import LocalSearch

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


@dataclass
class GapOutcome:
    """What the GAP strategy found: the solution in index space, what ran and why."""

    raw: RawSolution
    name: str  # the backend whose plan it is
    reason: str
    warm: float | None
    phases: list[str]


def search_gap(
    program: Program,
    *,
    solver: str,
    time_limit_s: float,
    workers: int | None,
    seed: int,
    started: float,
) -> GapOutcome:
    """The greedy warm start, then the backend `solver` names (`auto`: the portfolio) on a GAP
    program, within `started + time_limit_s`; polished."""
    deadline = started + time_limit_s
    workers = workers or os.cpu_count() or 1
    if solver != "auto":
        require(solver, program)

    no_home = np.flatnonzero(~program.eligible.any(axis=1) & ~program.optional)
    if no_home.size:
        raw = RawSolution.empty(
            program,
            Status.INFEASIBLE,
            f"{no_home.size} required task(s) have no eligible GPU",
        )
        return GapOutcome(raw, "presolve", "a required task fits on no GPU", None, ["presolve"])

    warm = GreedySolver().solve(program, SolveParams(deadline=deadline, workers=workers, seed=seed))
    if warm.status.has_solution:
        warm.assign = polish(program, warm.assign)
        warm.objective = program.objective(warm.assign)
    log.info("greedy: %s objective=%s", warm.status.value, warm.objective)
    name, reason = choose_backend(program) if solver == "auto" else (solver, "requested")
    phases = ["greedy"]
    if name != "greedy" and not warm.status.has_solution:
        budget = min(max(REPAIR_SHARE * time_limit_s, REPAIR_MIN_S), 0.3 * time_limit_s)
        warm = _repair(program, warm, started + budget, seed)
        phases.append("local search")
    if name != "greedy":
        phases.append(name)
    warm_obj = warm.objective

    if name == "greedy":
        best = warm
    elif name == "portfolio":
        from gpuplan.strategy.portfolio import run_portfolio

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
                name = "greedy"
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
            name = "greedy"  # the warm start is what comes back
        else:
            best = raw
    if best.status.has_solution:
        polished = polish(program, best.assign)
        if not np.array_equal(polished, best.assign):
            best.assign = polished
            best.objective = program.objective(polished)
            if best.status is Status.OPTIMAL:
                best.status = Status.FEASIBLE
    if best.status.has_solution and best.bound is not None and best.objective is not None:
        best.bound = min(best.bound, best.objective)
    return GapOutcome(best, name, reason, warm_obj, phases)
