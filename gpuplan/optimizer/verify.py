"""Independent check of a plan against the user's own specs (not the compiled arrays).

Recomputes eligibility, loads, capacities and costs from the Problem or matrix with plain Python,
so a bug in `compile` or a solver cannot vouch for itself. A plan that fails is a bug: it raises.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from gpuplan.errors import VerificationError
from gpuplan.models import GPU, Assignment, GPUType, Matrix, MatrixProblem, Node, Plan, Problem, Task
from gpuplan.status import OPTIMALITY_TOLERANCE

_REL = 1e-6
_NOISE = 1e-12


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
    if plan.status.value == "optimal" and (plan.gap is None or plan.gap > OPTIMALITY_TOLERANCE):
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


def verify_fleet(plan: Plan, p: Problem) -> None:
    """Independent check of a fleet plan (gangs, nodes, rules) from the Problem's own specs.

    Hard rules: every task once, required ones placed, gang size and one node, one type when asked,
    allowed and not forbidden types, memory, labels, health and temperature, durations within the
    horizon, per-GPU share/time and memory, node CPU and host memory, spread groups on distinct
    nodes, running tasks' `moved` flags; and the reported criteria (GPUs and nodes used, peak
    utilization, placed weight) recomputed; CPU-only tasks (gpus 0) by `_verify_cpu_only`. Priority
    dominance comes from the compiled penalties.
    """

    def fail(msg: str) -> None:
        raise VerificationError(f"plan fails verification: {msg}")

    if not plan.status.has_solution:
        if plan.assignments or plan.objective is not None:
            fail(f"status {plan.status.value} with assignments or an objective")
        return
    types = {t.name: t for t in p.gpu_types}
    gpus: dict[str, tuple[Node, GPU]] = {g.id: (n, g) for n, g in p.all_gpus()}
    tasks = {t.id: t for t in p.tasks}
    limit = p.temperature_limit_c
    gpu_load: dict[str, float] = defaultdict(float)
    gpu_mem: dict[str, float] = defaultdict(float)
    node_cpu: dict[str, float] = defaultdict(float)
    node_ram: dict[str, float] = defaultdict(float)
    spread: set[tuple[str, str]] = set()
    seen: set[str] = set()
    placed_weight = 0.0
    for a in plan.assignments:
        task = tasks.get(a.task)
        if task is None:
            fail(f"unknown task {a.task!r}")
            return
        if a.task in seen:
            fail(f"task {a.task!r} appears twice")
        seen.add(a.task)
        if task.gpus == 0:
            placed_weight += _verify_cpu_only(a, task, p, node_cpu, node_ram, spread)
            continue
        if len(a.gpus) != task.gpus or len(set(a.gpus)) != len(a.gpus):
            fail(f"task {a.task!r} needs {task.gpus} distinct GPU(s), got {a.gpus}")
        nodes = set()
        kinds = set()
        for gid in a.gpus:
            if gid not in gpus:
                fail(f"task {a.task!r} on unknown GPU {gid!r}")
            node, gpu = gpus[gid]
            nodes.add(node.id)
            kinds.add(gpu.type)
            gt = types[gpu.type]
            if task.allowed_types is not None and gpu.type not in task.allowed_types:
                fail(f"task {a.task!r}: type {gpu.type} not allowed")
            if gpu.type in task.forbidden_types:
                fail(f"task {a.task!r}: type {gpu.type} forbidden")
            if max(task.gpu_memory_gb, task.min_gpu_memory_gb) > gt.memory_gb + 1e-12:
                fail(f"task {a.task!r}: GPU {gid!r} has {gt.memory_gb} GB")
            if any(node.labels.get(k) != v for k, v in task.node_selector.items()):
                fail(f"task {a.task!r}: node {node.id!r} lacks labels {task.node_selector}")
            if not gpu.healthy or (
                limit is not None and gpu.temperature_c is not None and gpu.temperature_c > limit
            ):
                fail(f"task {a.task!r}: GPU {gid!r} unhealthy or too hot")
            if task.duration_h and gpu.type in task.duration_h:
                hours = task.duration_h[gpu.type]
            elif task.work_h is not None:
                hours = task.work_h / gt.speed
            else:
                fail(f"task {a.task!r}: no duration on {gpu.type}")
                return
            if node.bandwidth_gbps is not None:
                hours += 8.0 * task.input_gb / (3600.0 * node.bandwidth_gbps)
            gpu_load[gid] += task.gpu_share * (hours if p.horizon_h is not None else 1.0)
            gpu_mem[gid] += task.gpu_memory_gb
        if len(nodes) != 1:
            fail(f"task {a.task!r}: gang spans nodes {sorted(nodes)}")
        node_id = nodes.pop()
        if a.node != node_id:
            fail(f"task {a.task!r}: reported node {a.node!r}, GPUs on {node_id!r}")
        if task.same_type and len(kinds) != 1:
            fail(f"task {a.task!r}: gang mixes types {sorted(kinds)}")
        node_cpu[node_id] += task.cpu_cores
        node_ram[node_id] += task.memory_gb
        if task.anti_affinity is not None:
            if (task.anti_affinity, node_id) in spread:
                fail(f"task {a.task!r}: spread group {task.anti_affinity!r} twice on node {node_id!r}")
            spread.add((task.anti_affinity, node_id))
        if task.current_gpus is not None and a.moved != (set(task.current_gpus) != set(a.gpus)):
            fail(f"task {a.task!r}: moved flag {a.moved} is wrong")
        share = task.gpus * task.gpu_share
        placed_weight += {"gpu": share, "count": 1.0}.get(p.objective.placed_weight, 0.0)
    cap = p.horizon_h if p.horizon_h is not None else 1.0
    for gid, v in gpu_load.items():
        if v > cap + _REL * max(1.0, cap):
            fail(f"GPU {gid!r} over capacity: {v:.9g} > {cap:g}")
        if p.horizon_h is None and gpu_mem[gid] > types[gpus[gid][1].type].memory_gb * (1 + _REL):
            fail(f"GPU {gid!r} over memory: {gpu_mem[gid]:.9g} GB")
    nodes_by_id = {n.id: n for n in p.nodes}
    for nid, v in node_cpu.items():
        n = nodes_by_id[nid]
        if n.cpu_cores is not None and v > n.cpu_cores * (1 + _REL) + _REL:
            fail(f"node {nid!r} over CPU: {v:.9g} > {n.cpu_cores:g}")
        if n.memory_gb is not None and node_ram[nid] > n.memory_gb * (1 + _REL) + _REL:
            fail(f"node {nid!r} over memory: {node_ram[nid]:.9g} > {n.memory_gb:g}")
    for u in plan.unassigned:
        if u.task not in tasks or u.task in seen:
            fail(f"unassigned task {u.task!r} unknown or also assigned")
        seen.add(u.task)
        if not tasks[u.task].optional:
            fail(f"required task {u.task!r} left unassigned in a {plan.status.value} plan")
    if seen != set(tasks):
        fail(f"task(s) neither assigned nor unassigned: {sorted(set(tasks) - seen)[:5]}")
    checks = {
        "criterion_gpus_used": float(len(gpu_load)),
        "criterion_nodes_used": float(len(node_cpu)),
        "criterion_max_utilization": max(gpu_load.values(), default=0.0) / cap,
    }
    if p.objective.placed_weight != "work":
        checks["criterion_placed_weight"] = placed_weight
    for key, value in checks.items():
        if not _close(float(plan.stats.get(key, float("nan"))), value, abs(value)):
            fail(f"{key} reported {plan.stats.get(key)}, recomputed {value}")
    if plan.objective is None or (
        plan.bound is not None and plan.bound > plan.objective + _REL * max(1.0, abs(plan.objective))
    ):
        fail(f"bound {plan.bound} above objective {plan.objective}")


def _verify_cpu_only(
    a: Assignment,
    task: Task,
    p: Problem,
    node_cpu: dict[str, float],
    node_ram: dict[str, float],
    spread: set[tuple[str, str]],
) -> float:
    """Check one CPU-only task's assignment (no GPU, a known node, its labels, its duration within
    the horizon, its spread group) and add its CPU and memory to its node; the node totals are
    checked with the others. Returns its placed weight ('count' 1, 'gpu' 0)."""

    def fail(msg: str) -> None:
        raise VerificationError(f"plan fails verification: {msg}")

    node = next((n for n in p.nodes if n.id == a.node), None)
    if a.gpus:
        fail(f"CPU-only task {a.task!r} on GPU(s) {a.gpus}")
    if node is None:
        fail(f"CPU-only task {a.task!r} on unknown node {a.node!r}")
        return 0.0
    if any(node.labels.get(k) != v for k, v in task.node_selector.items()):
        fail(f"task {a.task!r}: node {node.id!r} lacks labels {task.node_selector}")
    hours = task.work_h or 0.0
    if node.bandwidth_gbps is not None:
        hours += 8.0 * task.input_gb / (3600.0 * node.bandwidth_gbps)
    if p.horizon_h is not None and hours > p.horizon_h * (1 + _REL):
        fail(f"CPU-only task {a.task!r}: {hours:.9g} h exceed the horizon {p.horizon_h:g} h")
    node_cpu[node.id] += task.cpu_cores
    node_ram[node.id] += task.memory_gb
    if task.anti_affinity is not None:
        if (task.anti_affinity, node.id) in spread:
            fail(f"task {a.task!r}: spread group {task.anti_affinity!r} twice on node {node.id!r}")
        spread.add((task.anti_affinity, node.id))
    return 1.0 if p.objective.placed_weight == "count" else 0.0
