"""Independent check of a plan against the user's own specs (not the compiled arrays).

Recomputes eligibility, loads, capacities and costs from the Problem or matrix with plain Python,
so a bug in `compile` or a solver cannot vouch for itself. A plan that fails is a bug: it raises.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from gpuplan.models import GPU, GPUType, Matrix, MatrixProblem, Plan, Problem, Task

_REL = 1e-6
_NOISE = 1e-12


class VerificationError(AssertionError):
    """The engine produced a plan that breaks the problem's rules (an internal bug)."""


@dataclass(frozen=True)
class _Pair:
    ok: bool
    why: str
    cost: float
    loads: dict[str, float]


class _ProblemView:
    def __init__(self, p: Problem) -> None:
        self.p = p
        self.types: dict[str, GPUType] = {t.name: t for t in p.gpu_types}
        self.gpus: dict[str, GPU] = {g.id: g for _, g in p.all_gpus()}
        self.tasks: dict[str, Task] = {t.id: t for t in p.tasks}

    def optional(self, t: str) -> bool:
        return self.tasks[t].optional

    def priority(self, t: str) -> int:
        return self.tasks[t].priority

    def capacity(self, g: str) -> dict[str, float]:
        if self.p.horizon_h is not None:
            return {"gpu_time_h": self.p.horizon_h}
        return {"gpu_share": 1.0, "gpu_memory_gb": self.types[self.gpus[g].type].memory_gb}

    def pair(self, t: str, g: str) -> _Pair:
        task, gpu = self.tasks[t], self.gpus[g]
        gt = self.types[gpu.type]
        if task.allowed_types is not None and gpu.type not in task.allowed_types:
            return _Pair(False, f"type {gpu.type} not allowed", 0.0, {})
        if task.gpu_memory_gb > gt.memory_gb:
            return _Pair(False, f"needs {task.gpu_memory_gb} GB > {gt.memory_gb} GB", 0.0, {})
        if not gpu.healthy:
            return _Pair(False, "GPU unhealthy", 0.0, {})
        limit = self.p.temperature_limit_c
        if limit is not None and gpu.temperature_c is not None and gpu.temperature_c > limit:
            return _Pair(False, "GPU over temperature", 0.0, {})
        if task.duration_h and gpu.type in task.duration_h:
            dur = task.duration_h[gpu.type]
        elif task.work_h is not None:
            dur = task.work_h / gt.speed
        else:
            return _Pair(False, "no duration for this type", 0.0, {})
        cost = dur * task.gpu_share * gt.cost_per_hour
        if self.p.horizon_h is not None:
            loads = {"gpu_time_h": dur * task.gpu_share}
        else:
            loads = {"gpu_share": task.gpu_share, "gpu_memory_gb": task.gpu_memory_gb}
        return _Pair(True, "", cost, loads)


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


def verify(plan: Plan, source: Problem | MatrixProblem | Matrix) -> None:
    """Raise VerificationError unless `plan` is feasible for `source` and its numbers add up."""
    if isinstance(source, MatrixProblem):
        source = source.matrix
    view = _MatrixView(source) if isinstance(source, Matrix) else _ProblemView(source)

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
    if plan.placement_cost is None or not _close(plan.placement_cost, total, abs(total)):
        fail(f"placement_cost {plan.placement_cost} differs from recomputed {total}")
    penalty = plan.penalty or 0.0
    if penalty < 0 or (not plan.unassigned and penalty != 0):
        fail(f"penalty {penalty} inconsistent with {len(plan.unassigned)} unassigned task(s)")
    if plan.objective is None or not _close(plan.objective, total + penalty, abs(total) + penalty):
        fail(f"objective {plan.objective} != placement cost {total} + penalty {penalty}")
    if plan.bound is not None and plan.bound > plan.objective + _REL * max(1.0, abs(plan.objective)):
        fail(f"bound {plan.bound} above objective {plan.objective}")
    if plan.status.value == "optimal" and plan.gap != 0:
        fail(f"optimal plan with gap {plan.gap}")
    _check_priority(plan, view, used, on_gpu)


def _check_priority(plan: Plan, view: _ProblemView | _MatrixView, used: dict, on_gpu: dict) -> None:
    """No unassigned task fits on a GPU once its lower-priority optional tasks are taken off."""
    for u in plan.unassigned:
        p = view.priority(u.task)
        for g in view.gpus:
            pair = view.pair(u.task, g)
            if not pair.ok:
                continue
            cap = view.capacity(g)
            freed: dict[str, float] = defaultdict(float)
            for other in on_gpu.get(g, []):
                if view.optional(other) and view.priority(other) < p:
                    for r, v in view.pair(other, g).loads.items():
                        freed[r] += v
            fits = all(  # an exact fit counts: only float noise is forgiven
                pair.loads[r] <= cap[r] - used.get(g, {}).get(r, 0.0) + freed[r] + _NOISE * max(1.0, cap[r])
                for r in pair.loads
            )
            if fits:
                raise VerificationError(
                    f"plan fails verification: task {u.task!r} (priority {p}) left out though it"
                    f" fits on GPU {g!r} in place of lower-priority work or in free room"
                )
