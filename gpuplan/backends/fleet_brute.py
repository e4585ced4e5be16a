"""Brute force for tiny fleet programs: the reference the exact solvers are tested against.

Every task is either dropped (when optional) or given every set of `gang` distinct eligible GPUs;
feasibility is judged by :meth:`FleetProgram.violations` only and the value by
:meth:`FleetProgram.objective` only, so the search shares no modelling with the solvers. A partial
assignment (later tasks still empty) is abandoned as soon as it breaks a rule other than "required
task dropped": every other rule only gets harder to meet as tasks are added.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from gpuplan.program.fleet import NONE, FleetProgram

#: Refuse programs with more complete assignments than this (it is a test oracle, not a solver).
MAX_ASSIGNMENTS = 2_000_000


def brute_force(program: FleetProgram) -> tuple[float, np.ndarray] | None:
    """(optimal objective, an optimal assignment [T, K]) of a tiny program; None when infeasible.

    Meant for about 5 tasks, 5 GPUs and gangs of at most 2; raises ValueError when the search
    space exceeds MAX_ASSIGNMENTS.
    """
    p = program
    options: list[list[tuple[int, ...]]] = []
    for t in range(p.n_tasks):
        gpus = np.flatnonzero(p.eligible(t)).tolist()
        opts: list[tuple[int, ...]] = [()] if p.optional[t] else []
        opts.extend(itertools.combinations(gpus, int(p.gang[t])))
        options.append(opts)
    size = math.prod(len(o) for o in options)
    if size > MAX_ASSIGNMENTS:
        raise ValueError(f"brute force: {size:,} assignments exceed {MAX_ASSIGNMENTS:,}")
    if size == 0:
        return None
    assign = np.full((p.n_tasks, p.max_gang), NONE, dtype=np.int64)
    best: list[tuple[float, np.ndarray]] = []

    def ok_so_far(upto: int) -> bool:
        """No violation except required tasks from `upto` on still being empty."""
        pending = {f"required task {t} dropped" for t in range(upto, p.n_tasks)}
        return all(v in pending for v in p.violations(assign))

    def visit(t: int) -> None:
        if t == p.n_tasks:
            value = p.objective(assign)
            if not best or value < best[0][0]:
                best[:] = [(value, assign.copy())]
            return
        for opt in options[t]:
            assign[t] = NONE
            assign[t, : len(opt)] = opt
            if ok_so_far(t + 1):
                visit(t + 1)
        assign[t] = NONE

    visit(0)
    return best[0] if best else None


__all__ = ["MAX_ASSIGNMENTS", "brute_force"]
