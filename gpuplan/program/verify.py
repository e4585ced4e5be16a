"""The one verifier: an independent check of a plan against the user's own input.

A Problem is checked rule by rule from its specs by :mod:`gpuplan.program.verify_problem`; the
matrix form here, from its cost, load and capacity tables. Neither reads a compiled program, so a
bug in the builder or a backend cannot vouch for itself. A plan that fails is a bug: it raises
VerificationError.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from gpuplan.errors import VerificationError
from gpuplan.models import Matrix, MatrixProblem, Plan, Problem
from gpuplan.program.verify_problem import check_totals, verify_problem

_REL = 1e-6


@dataclass(frozen=True)
class _Pair:
    ok: bool
    why: str
    cost: float
    loads: dict[str, float]


class _MatrixView:
    def __init__(self, m: Matrix) -> None:
        self.m = m
        self.t_index = {tid: i for i, tid in enumerate(m.task_ids or [str(i) for i in range(m.n_tasks)])}
        self.g_index = {gid: i for i, gid in enumerate(m.gpu_ids or [str(i) for i in range(m.n_gpus)])}
        self.tasks = self.t_index
        self.gpus = self.g_index
        self._loads = m.loads()
        self._caps = m.capacities()
        self._names = ["load"] if len(self._loads) == 1 else [f"load{r}" for r in range(len(self._loads))]

    def optional(self, t: str) -> bool:
        return False

    def priority(self, t: str) -> int:
        return 0

    def capacity(self, g: str) -> dict[str, float]:
        j = self.g_index[g]
        return {n: float(c[j]) for n, c in zip(self._names, self._caps, strict=True)}

    def pair(self, t: str, g: str) -> _Pair:
        i, j = self.t_index[t], self.g_index[g]
        c = self.m.cost[i][j]
        if c is None:
            return _Pair(False, "cost is null", 0.0, {})
        loads = {n: float(lr[i][j] or 0.0) for n, lr in zip(self._names, self._loads, strict=True)}
        return _Pair(True, "", float(c), loads)


def _close(a: float, b: float, scale: float = 1.0) -> bool:
    return abs(a - b) <= _REL * max(1.0, abs(a), abs(b), scale)


def verify_timed(plan: Plan, source: Problem | MatrixProblem | Matrix) -> None:
    """`verify`, then its wall time noted in the plan's stats as `verify_s` (where a solve's time
    goes; the stats are not part of what is verified)."""
    began = time.monotonic()
    verify(plan, source)
    plan.stats["verify_s"] = round(time.monotonic() - began, 4)


def verify(plan: Plan, source: Problem | MatrixProblem | Matrix) -> None:
    """Raise VerificationError unless `plan` is feasible for `source` and its numbers add up."""
    if isinstance(source, Problem):
        verify_problem(plan, source)
        return
    if isinstance(source, MatrixProblem):
        source = source.matrix
    view = _MatrixView(source)

    def fail(msg: str) -> None:
        raise VerificationError(f"plan fails verification: {msg}")

    if not plan.status.has_solution:
        if plan.assignments:
            fail(f"status {plan.status.value} but {len(plan.assignments)} assignments")
        if plan.objective is not None:
            fail(f"status {plan.status.value} but objective {plan.objective}")
        return

    seen: set[str] = set()
    used: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    on_gpu: dict[str, list[str]] = defaultdict(list)
    total = 0.0
    for a in plan.assignments:
        if a.task not in view.tasks:
            fail(f"unknown task {a.task!r}")
        if a.task in seen:
            fail(f"task {a.task!r} appears twice")
        seen.add(a.task)
        if len(a.gpus) != 1:
            fail(f"task {a.task!r} on {len(a.gpus)} GPUs, expected 1")
        g = a.gpus[0]
        if g not in view.gpus:
            fail(f"task {a.task!r} on unknown GPU {g!r}")
        pair = view.pair(a.task, g)
        if not pair.ok:
            fail(f"task {a.task!r} may not run on GPU {g!r}: {pair.why}")
        if not _close(a.cost, pair.cost):
            fail(f"task {a.task!r} on {g!r}: reported cost {a.cost}, recomputed {pair.cost}")
        total += pair.cost
        for r, v in pair.loads.items():
            used[g][r] += v
        on_gpu[g].append(a.task)
    for g, res in used.items():
        cap = view.capacity(g)
        for r, v in res.items():
            if v > cap[r] + _REL * max(1.0, cap[r]):
                fail(f"GPU {g!r} over capacity on {r}: {v:.6g} > {cap[r]:.6g}")
    for u in plan.unassigned:
        if u.task not in view.tasks:
            fail(f"unknown unassigned task {u.task!r}")
        if u.task in seen:
            fail(f"task {u.task!r} both assigned and unassigned")
        seen.add(u.task)
        if not view.optional(u.task):
            fail(f"required task {u.task!r} left unassigned in a {plan.status.value} plan")
    missing = set(view.tasks) - seen
    if missing:
        fail(f"task(s) neither assigned nor unassigned: {sorted(missing)[:5]}")
    check_totals(plan, total)
