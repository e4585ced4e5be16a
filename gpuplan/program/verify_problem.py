"""The independent check of a plan for a Problem, from the user's specs alone.

Every rule of the model is checked here, for every problem (the GAP core is a Problem like any
other): each task once, required tasks placed, gang size on distinct GPUs of one node (of one
type when asked), allowed and not forbidden types, GPU memory, node labels, health and
temperature, a known duration, per-GPU share (side by side) or GPU time (with a horizon), GPU
memory side by side, node CPU and host memory, spread groups on distinct nodes, `moved` flags,
reported durations, nodes and types; then the money of each assignment, every criterion and the
objective recomputed with the objective's weights; then priority dominance: no left-out task fits
on a node once the lower-priority optional work there is taken off (unless the plan says, in its
stats and message, that the solver's priority repair was cut by the time limit: then it claims no
dominance, and every other rule is still checked). Nothing here reads a compiled
program, so a bug in the builder or a backend cannot vouch for itself.

A scheduled problem (`Problem.scheduled`) is checked at every instant instead: each assignment
carries `start_h` and `end_h`, end = start + its duration, start >= release_h, end <= deadline_h and
<= horizon_h, each predecessor (`after`) placed and ended by the start; a sweep over the sorted start
and end events (intervals [start, end), float noise forgiven) bounds shares and memory per GPU, CPU
and host memory per node, and one task per spread group and node at a time; the time criteria
(makespan, completion time, tardiness) join the objective. Priority dominance there is the
conservative form: a left-out task must not fit beside all the placed work at once, on a GPU its
time window (release, predecessors' ends, deadline, horizon) leaves room on. A plan of an
unscheduled problem may carry times: they are checked for consistency (both given, end = start +
duration, start >= 0, end <= horizon_h) and the load rules stay the unscheduled ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from gpuplan.errors import VerificationError
from gpuplan.models import GPU, Assignment, GPUType, Node, Plan, Problem, Task
from gpuplan.status import OPTIMALITY_TOLERANCE, relative_gap

_REL = 1e-6
_NOISE = 1e-9


def _fail(msg: str) -> None:
    raise VerificationError(f"plan fails verification: {msg}")


def _close(a: float, b: float, scale: float = 1.0) -> bool:
    return abs(a - b) <= _REL * max(1.0, abs(a), abs(b), scale)


def hours(task: Task, gt: GPUType, node: Node) -> float | None:
    """Duration of `task` on a GPU of type `gt` in `node`: explicit or work / speed, plus transfer."""
    if task.duration_h and gt.name in task.duration_h:
        base = task.duration_h[gt.name]
    elif task.work_h is not None:
        base = task.work_h / gt.speed
    else:
        return None
    if node.bandwidth_gbps is not None:
        base += 8.0 * task.input_gb / (3600.0 * node.bandwidth_gbps)
    return base


def _why_unusable(gpu: GPU, limit: float | None) -> str:
    """Why `gpu` receives no task at all; '' when it may."""
    if not gpu.healthy:
        return "GPU unhealthy"
    if limit is not None and gpu.temperature_c is not None and gpu.temperature_c > limit:
        return "GPU over the temperature limit"
    return ""


def _tol(x: float) -> float:
    """The float noise forgiven on a time or amount of magnitude x."""
    return _REL * max(1.0, abs(x))


def _why_not(task: Task, gt: GPUType, node: Node, gpu: GPU, p: Problem, budget: bool) -> str:
    """Why `task` may not use `gpu` at all (capacity aside); '' when it may. `budget`: the horizon is
    a GPU-hours budget per GPU (an unscheduled problem with a horizon)."""
    if task.allowed_types is not None and gt.name not in task.allowed_types:
        return f"type {gt.name} not allowed"
    if gt.name in task.forbidden_types:
        return f"type {gt.name} forbidden"
    need = max(task.gpu_memory_gb, task.min_gpu_memory_gb)
    if need > gt.memory_gb + 1e-12:
        return f"needs {need} GB, type {gt.name} has {gt.memory_gb} GB"
    if any(node.labels.get(k) != v for k, v in task.node_selector.items()):
        return f"node {node.id!r} lacks the labels {task.node_selector}"
    unusable = _why_unusable(gpu, p.temperature_limit_c)
    if unusable:
        return unusable
    dur = hours(task, gt, node)
    if dur is None:
        return f"no duration on type {gt.name}"
    if budget and p.horizon_h is not None and task.gpu_share * dur > p.horizon_h * (1 + _REL) + _REL:
        return f"{task.gpu_share * dur:.6g} GPU-hours exceed the horizon {p.horizon_h:g}"
    return ""


@dataclass
class _Tally:
    """What the plan puts where, recomputed from the specs."""

    gpu_load: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gpu_mem: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    node_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    node_ram: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    on_node: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    where: dict[str, list[str]] = field(default_factory=dict)  # task -> its GPUs
    node_of: dict[str, str] = field(default_factory=dict)  # task -> its node
    cost: float = 0.0  # money: GPU-hours x price, data transfer, migration
    migration: float = 0.0
    energy: float = 0.0  # money: power x GPU-hours x energy price
    placed_weight: float = 0.0
    datasets: set[tuple[str, str]] = field(default_factory=set)
    times: dict[str, tuple[float, float]] = field(default_factory=dict)  # task -> (start, end)
    peak_share: dict[str, float] = field(default_factory=dict)  # scheduled: per GPU, at any instant
    peak_mem: dict[str, float] = field(default_factory=dict)


class _Specs:
    """The problem's specs indexed by id, and each rule's per-task quantities."""

    def __init__(self, p: Problem) -> None:
        self.p = p
        self.types = {t.name: t for t in p.gpu_types}
        self.gpus: dict[str, tuple[Node, GPU]] = {g.id: (n, g) for n, g in p.all_gpus()}
        self.tasks = {t.id: t for t in p.tasks}
        self.nodes = {n.id: n for n in p.nodes}
        self.sched = p.scheduled
        self.budget = p.horizon_h is not None and not self.sched  # GPU-hours per GPU within the horizon
        self.cap = p.horizon_h if self.budget and p.horizon_h is not None else 1.0
        self.ds_size: dict[str, float] = defaultdict(float)
        for t in p.tasks:
            if t.dataset is not None:
                self.ds_size[t.dataset] = max(self.ds_size[t.dataset], t.input_gb)

    def load(self, task: Task, gid: str) -> float:
        node, gpu = self.gpus[gid]
        dur = hours(task, self.types[gpu.type], node)
        assert dur is not None
        return task.gpu_share * (dur if self.budget else 1.0)

    def weight(self, task: Task) -> float:
        """The task's measure for the 'placed' criterion."""
        how = self.p.objective.placed_weight
        if how == "count":
            return 1.0
        size = task.gpus * task.gpu_share
        if how == "gpu":
            return size
        if task.gpus == 0:  # a CPU-only task counts its work
            assert task.work_h is not None
            return task.work_h
        if task.work_h is not None:
            work = task.work_h
        else:
            assert task.duration_h
            work = min(h * self.types[k].speed for k, h in task.duration_h.items())
        return work * size


def verify_problem(plan: Plan, p: Problem) -> None:
    """Raise VerificationError unless `plan` keeps every rule of `p` and its numbers add up."""
    if not plan.status.has_solution:
        if plan.assignments or plan.objective is not None:
            _fail(f"status {plan.status.value} with assignments or an objective")
        return
    s = _Specs(p)
    tally = _Tally()
    for a in plan.assignments:
        _check_assignment(a, s, tally)
    if s.sched:
        _check_schedule(s, tally)
    else:
        _check_capacities(s, tally)
    seen = set(tally.where)
    for u in plan.unassigned:
        if u.task not in s.tasks or u.task in seen:
            _fail(f"unassigned task {u.task!r} unknown or also assigned")
        seen.add(u.task)
        task = s.tasks[u.task]
        if not task.optional:
            _fail(f"required task {u.task!r} left unassigned in a {plan.status.value} plan")
        if task.current_gpus is not None:  # a running task dropped pays all of its migration
            tally.cost += task.migration_cost
            tally.migration += task.migration_cost
    if seen != set(s.tasks):
        _fail(f"task(s) neither assigned nor unassigned: {sorted(set(s.tasks) - seen)[:5]}")
    phi = p.transfer_cost_per_gb
    tally.cost += sum(phi * s.ds_size[d] for d, _ in tally.datasets)
    _check_numbers(plan, s, tally)
    if plan.stats.get("priority_repair_cut") is True:
        # The solver says its priority repair was stopped by the clock: dominance is not claimed,
        # and the plan must say so to its reader.
        if "priority repair cut" not in plan.message:
            _fail("a plan whose priority repair was cut must say so in its message")
    else:
        _check_dominance(plan, s, tally)


def _check_assignment(a: Assignment, s: _Specs, tally: _Tally) -> None:
    task = s.tasks.get(a.task)
    if task is None:
        _fail(f"unknown task {a.task!r}")
        return
    if a.task in tally.where:
        _fail(f"task {a.task!r} appears twice")
    tally.where[a.task] = list(a.gpus)
    if task.current_gpus is None and a.moved is not None:
        _fail(f"task {a.task!r}: moved flag {a.moved} on a task that is not running")
    if task.gpus == 0:
        _check_cpu_only(a, task, s, tally)
        return
    if len(a.gpus) != task.gpus or len(set(a.gpus)) != len(a.gpus):
        _fail(f"task {a.task!r} needs {task.gpus} distinct GPU(s), got {a.gpus}")
    nodes, kinds, durs = set(), set(), []
    money = energy = 0.0
    for gid in a.gpus:
        if gid not in s.gpus:
            _fail(f"task {a.task!r} on unknown GPU {gid!r}")
        node, gpu = s.gpus[gid]
        gt = s.types[gpu.type]
        why = _why_not(task, gt, node, gpu, s.p, s.budget)
        if why:
            _fail(f"task {a.task!r} may not run on GPU {gid!r}: {why}")
        nodes.add(node.id)
        kinds.add(gpu.type)
        dur = hours(task, gt, node)
        assert dur is not None
        durs.append(dur)
        money += dur * task.gpu_share * gt.cost_per_hour
        energy += dur * task.gpu_share * gt.power_w / 1000.0 * s.p.objective.energy_price_per_kwh
        tally.gpu_load[gid] += s.load(task, gid)
        tally.gpu_mem[gid] += task.gpu_memory_gb
    if len(nodes) != 1:
        _fail(f"task {a.task!r}: gang spans nodes {sorted(nodes)}")
    node_id = nodes.pop()
    if a.node != node_id:
        _fail(f"task {a.task!r}: reported node {a.node!r}, its GPUs are on {node_id!r}")
    if task.same_type and len(kinds) != 1:
        _fail(f"task {a.task!r}: gang mixes types {sorted(kinds)}")
    if a.gpu_type is not None and kinds != {a.gpu_type}:
        _fail(f"task {a.task!r}: reported type {a.gpu_type!r}, its GPUs are {sorted(kinds)}")
    if a.duration_h is not None and not _close(a.duration_h, max(durs)):
        _fail(f"task {a.task!r}: reported duration {a.duration_h} h, recomputed {max(durs)} h")
    _check_times(a, task, max(durs), s, tally)
    _hold_node(a.task, task, node_id, tally, s)
    if task.current_gpus is not None:
        left = len(set(task.current_gpus) - set(a.gpus))
        if a.moved != (left > 0):
            _fail(f"task {a.task!r}: moved flag {a.moved}, but it leaves {left} of its current GPUs")
        charge = task.migration_cost * left / task.gpus
        money += charge
        tally.migration += charge
    _charge(a, task, money, energy, node_id, s, tally)


def _hold_node(tid: str, task: Task, node_id: str, tally: _Tally, s: _Specs) -> None:
    """Add a placed task's CPU, host memory and spread group to its node."""
    tally.node_of[tid] = node_id
    tally.node_cpu[node_id] += task.cpu_cores
    tally.node_ram[node_id] += task.memory_gb
    if task.anti_affinity is not None and not s.sched:  # scheduled: at each instant (_check_schedule)
        peers = [t for t in tally.on_node[node_id] if s.tasks[t].anti_affinity == task.anti_affinity]
        if peers:
            _fail(
                f"task {tid!r}: spread group {task.anti_affinity!r} twice on node {node_id!r}"
                f" (with {peers[0]!r})"
            )
    tally.on_node[node_id].append(tid)


def _charge(
    a: Assignment, task: Task, money: float, energy: float, node_id: str, s: _Specs, tally: _Tally
) -> None:
    """Add the task's data transfer to its money, check the reported cost, and count criteria."""
    if task.dataset is not None:
        tally.datasets.add((task.dataset, node_id))
    else:
        money += s.p.transfer_cost_per_gb * task.input_gb
    if not _close(a.cost, money, abs(money)):
        _fail(f"task {a.task!r}: reported cost {a.cost}, recomputed {money} (money)")
    tally.cost += money
    tally.energy += energy
    tally.placed_weight += s.weight(task)


def _check_cpu_only(a: Assignment, task: Task, s: _Specs, tally: _Tally) -> None:
    """A CPU-only task (gpus 0): no GPU, a known node with its labels, within the horizon."""
    node = s.nodes.get(a.node or "")
    if a.gpus:
        _fail(f"CPU-only task {a.task!r} on GPU(s) {a.gpus}")
    if node is None:
        _fail(f"CPU-only task {a.task!r} on unknown node {a.node!r}")
        return
    if any(node.labels.get(k) != v for k, v in task.node_selector.items()):
        _fail(f"task {a.task!r}: node {node.id!r} lacks the labels {task.node_selector}")
    dur = _cpu_hours(task, node)
    if a.gpu_type is not None:
        _fail(f"CPU-only task {a.task!r}: reported GPU type {a.gpu_type!r}")
    if a.duration_h is not None and not _close(a.duration_h, dur):
        _fail(f"task {a.task!r}: reported duration {a.duration_h} h, recomputed {dur} h")
    if s.budget and s.p.horizon_h is not None and dur > s.p.horizon_h * (1 + _REL):
        _fail(f"CPU-only task {a.task!r}: {dur:.9g} h exceed the horizon {s.p.horizon_h:g} h")
    _check_times(a, task, dur, s, tally)
    _hold_node(a.task, task, node.id, tally, s)
    _charge(a, task, 0.0, 0.0, node.id, s, tally)


def _check_times(a: Assignment, task: Task, dur: float, s: _Specs, tally: _Tally) -> None:
    """The assignment's start and end: required in a scheduled problem, optional otherwise; when
    given, end = start + duration, start >= release_h, end <= deadline_h and the horizon."""
    start, end = a.start_h, a.end_h
    if start is None or end is None:
        if s.sched:
            _fail(f"task {a.task!r}: a scheduled plan gives start_h and end_h (got {start}, {end})")
        if start is not None or end is not None:
            _fail(f"task {a.task!r}: start_h and end_h come together (got {start}, {end})")
        return
    if not _close(end, start + dur, dur):
        _fail(f"task {a.task!r}: end_h {end:.9g} != start_h {start:.9g} + duration {dur:.9g} h")
    if start < task.release_h - _tol(task.release_h):
        _fail(f"task {a.task!r}: starts at {start:.9g} h, before its release_h {task.release_h:g} h")
    if task.deadline_h is not None and end > task.deadline_h + _tol(task.deadline_h):
        _fail(f"task {a.task!r}: ends at {end:.9g} h, after its deadline_h {task.deadline_h:g} h")
    horizon = s.p.horizon_h
    if horizon is not None and end > horizon + _tol(horizon):
        _fail(f"task {a.task!r}: ends at {end:.9g} h, after the horizon {horizon:g} h")
    tally.times[a.task] = (start, end)


def _sweep(
    holder: np.ndarray, start: np.ndarray, end: np.ndarray, amount: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each holder (a GPU, a node, ...) carries over time, from intervals [start, end) taking
    `amount` of it: the events sorted by holder, then time (ends before starts at one instant, and
    ends moved earlier by the float noise, so back-to-back use is fine), as (holder, time, level held
    from that event on). O(n log n)."""
    back = end - _REL * np.maximum(1.0, np.abs(end))
    h = np.concatenate([holder, holder])
    t = np.concatenate([start, back])
    d = np.concatenate([amount, -amount])
    is_start = np.concatenate([np.ones(len(start), dtype=np.int8), np.zeros(len(end), dtype=np.int8)])
    order = np.lexsort((is_start, t, h))
    h, t, d = h[order], t[order], d[order]
    level = np.cumsum(d)
    first = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, dtype=np.int64)
    before = (level - d)[first]  # what earlier holders left in the running sum (float noise): restart
    level -= np.repeat(before, np.diff(np.r_[first, len(h)]))
    return h, t, level


def _over(
    holder: np.ndarray, start: np.ndarray, end: np.ndarray, amount: np.ndarray, cap: np.ndarray
) -> tuple[int, float, float] | None:
    """The first (holder, instant, level) where the level held passes the holder's capacity."""
    h, t, level = _sweep(holder, start, end, amount)
    bad = np.flatnonzero(level > cap[h] * (1 + _REL) + _REL)
    if not bad.size:
        return None
    i = int(bad[0])
    return int(h[i]), float(t[i]), float(level[i])


def _peaks(holder: np.ndarray, start: np.ndarray, end: np.ndarray, amount: np.ndarray) -> dict[int, float]:
    """The largest level each holder carries at any instant."""
    h, _, level = _sweep(holder, start, end, amount)
    if not len(h):
        return {}
    first = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
    return dict(zip(h[first].tolist(), np.maximum.reduceat(level, first).tolist(), strict=True))


def _check_schedule(s: _Specs, tally: _Tally) -> None:
    """A scheduled plan's rules over time: precedences, then the resources at every instant (shares
    and GPU memory per GPU, CPU and host memory per node, one task per spread group and node)."""
    for tid, (start, _) in tally.times.items():
        for pred in s.tasks[tid].after:
            if pred not in tally.times:
                _fail(f"task {tid!r} is placed, but its predecessor {pred!r} (after) is left out")
            if tally.times[pred][1] > start + _tol(start):
                _fail(
                    f"task {tid!r} starts at {start:.9g} h, before its predecessor {pred!r} (after)"
                    f" ends at {tally.times[pred][1]:.9g} h"
                )
    gids = list(s.gpus)
    g_pos = {g: i for i, g in enumerate(gids)}
    rows = [(g_pos[g], *tally.times[tid], s.tasks[tid]) for tid, where in tally.where.items() for g in where]
    gpu = np.array([r[0] for r in rows], dtype=np.int64)
    g_start = np.array([r[1] for r in rows], dtype=float)
    g_end = np.array([r[2] for r in rows], dtype=float)
    share = np.array([r[3].gpu_share for r in rows], dtype=float)
    mem = np.array([r[3].gpu_memory_gb for r in rows], dtype=float)
    mem_cap = np.array([s.types[s.gpus[g][1].type].memory_gb for g in gids])
    hit = _over(gpu, g_start, g_end, share, np.ones(len(gids)))
    if hit:
        _fail(f"GPU {gids[hit[0]]!r} over capacity on gpu_share at {hit[1]:.9g} h: {hit[2]:.9g} > 1")
    hit = _over(gpu, g_start, g_end, mem, mem_cap)
    if hit:
        _fail(f"GPU {gids[hit[0]]!r} over memory at {hit[1]:.9g} h: {hit[2]:.9g} GB > {mem_cap[hit[0]]:g} GB")
    tally.peak_share = {gids[k]: v for k, v in _peaks(gpu, g_start, g_end, share).items()}
    tally.peak_mem = {gids[k]: v for k, v in _peaks(gpu, g_start, g_end, mem).items()}

    node_ids = [n.id for n in s.p.nodes]
    n_pos = {n: i for i, n in enumerate(node_ids)}
    placed = list(tally.times)
    node = np.array([n_pos[tally.node_of[t]] for t in placed], dtype=np.int64)
    start = np.array([tally.times[t][0] for t in placed], dtype=float)
    end = np.array([tally.times[t][1] for t in placed], dtype=float)
    for what, unit, need, have in (
        ("CPU", "cores", [s.tasks[t].cpu_cores for t in placed], [n.cpu_cores for n in s.p.nodes]),
        ("host memory", "GB", [s.tasks[t].memory_gb for t in placed], [n.memory_gb for n in s.p.nodes]),
    ):
        cap = np.array([math.inf if c is None else c for c in have], dtype=float)
        hit = _over(node, start, end, np.array(need, dtype=float), cap)
        if hit:
            nid, at, level = node_ids[hit[0]], hit[1], hit[2]
            _fail(f"node {nid!r} over {what} at {at:.9g} h: {level:.9g} > {cap[hit[0]]:g} {unit}")
    spread = [i for i, t in enumerate(placed) if s.tasks[t].anti_affinity is not None]
    groups = {g: k for k, g in enumerate(sorted({s.tasks[placed[i]].anti_affinity or "" for i in spread}))}
    key = np.array(
        [groups[s.tasks[placed[i]].anti_affinity or ""] * len(node_ids) + node[i] for i in spread],
        dtype=np.int64,
    )
    sel = np.array(spread, dtype=np.int64)
    hit = _over(key, start[sel], end[sel], np.ones(len(sel)), np.ones(len(groups) * len(node_ids)))
    if hit:
        nid, at = node_ids[hit[0] % len(node_ids)], hit[1]
        running = [  # the spread tasks of that group and node running at that instant, by start
            placed[i]
            for j, i in enumerate(spread)
            if key[j] == hit[0] and start[i] <= at and end[i] - _tol(end[i]) > at
        ]
        running.sort(key=lambda t: tally.times[t][0])
        group = s.tasks[running[-1]].anti_affinity
        _fail(
            f"task {running[-1]!r}: spread group {group!r} twice on node {nid!r} at {at:.9g} h"
            f" (with {running[0]!r})"
        )


def _cpu_hours(task: Task, node: Node) -> float:
    """A CPU-only task's duration: its work at speed 1, plus its data transfer."""
    dur = task.work_h or 0.0
    if node.bandwidth_gbps is not None:
        dur += 8.0 * task.input_gb / (3600.0 * node.bandwidth_gbps)
    return dur


def _check_capacities(s: _Specs, tally: _Tally) -> None:
    for gid, v in tally.gpu_load.items():
        if v > s.cap * (1 + _REL) + _REL:
            what = "gpu_time_h" if s.p.horizon_h is not None else "gpu_share"
            _fail(f"GPU {gid!r} over capacity on {what}: {v:.9g} > {s.cap:g}")
        mem = s.types[s.gpus[gid][1].type].memory_gb
        if s.p.horizon_h is None and tally.gpu_mem[gid] > mem * (1 + _REL):
            _fail(f"GPU {gid!r} over memory: {tally.gpu_mem[gid]:.9g} GB > {mem:g} GB")
    for nid, v in tally.node_cpu.items():
        n = s.nodes[nid]
        if n.cpu_cores is not None and v > n.cpu_cores * (1 + _REL) + _REL:
            _fail(f"node {nid!r} over CPU: {v:.9g} > {n.cpu_cores:g} cores")
        if n.memory_gb is not None and tally.node_ram[nid] > n.memory_gb * (1 + _REL) + _REL:
            _fail(f"node {nid!r} over host memory: {tally.node_ram[nid]:.9g} > {n.memory_gb:g} GB")


def objective_weights(plan: Plan, p: Problem) -> dict[str, float]:
    """The weight of each criterion: 1 for a single one, the user's for 'weighted', and for
    'lexicographic' the weights the plan reports (`weight_<criterion>` in its stats; each must be
    positive, except that a plan solved in stages (`lexicographic_stages` > 1) weighs in its
    objective only the first stage's criteria, the first of them always: the others weigh 0).
    Migration without 'cost' among the criteria is a criterion of its own."""
    kind = p.objective.kind
    if kind == "lexicographic":
        out = {}
        staged = plan.stats.get("lexicographic_stages", 1)
        for i, t in enumerate(p.objective.terms):
            w = plan.stats.get(f"weight_{t.kind}")
            zero_ok = isinstance(staged, int) and staged > 1 and i > 0
            if not isinstance(w, int | float) or not (w > 0 or (zero_ok and w == 0)):
                _fail(f"lexicographic objective: weight_{t.kind} reported as {w!r}")
            out[t.kind] = float(w)  # type: ignore[arg-type]
        w = plan.stats.get("weight_migration")
        if isinstance(w, int | float):
            out["migration"] = float(w)
        return out
    out = dict(p.objective.weights())
    if "cost" not in out and any(t.migration_cost and t.current_gpus for t in p.tasks):
        out["migration"] = 1.0
    return out


def _check_numbers(plan: Plan, s: _Specs, tally: _Tally) -> None:
    """Criteria, placement part and objective recomputed; bound and gap consistent."""
    p = s.p
    if s.sched:  # the largest sum of shares on a GPU at any instant
        max_util = max(tally.peak_share.values(), default=0.0)
    else:
        max_util = max(tally.gpu_load.values(), default=0.0) / s.cap
    ends = {tid: end for tid, (_, end) in tally.times.items()}
    late = {tid: max(0.0, end - due) for tid, end in ends.items() if (due := s.tasks[tid].due_h) is not None}
    crit = {
        "cost": tally.cost,
        "energy": tally.energy,
        "balance": max_util,
        "gpus_used": float(len(tally.gpu_load)),
        "nodes_used": float(len(tally.on_node)),
        "migration": tally.migration,
        "placed": 0.0,  # carried by the drop penalties
        "makespan": max(ends.values(), default=0.0),
        "completion_time": sum(s.tasks[tid].weight * end for tid, end in ends.items()),
        "tardiness": sum(s.tasks[tid].weight * lateness for tid, lateness in late.items()),
    }
    weights = objective_weights(plan, p)
    placement = sum(w * crit[k] for k, w in weights.items() if k != "placed")
    reported = {
        "criterion_gpus_used": crit["gpus_used"],
        "criterion_nodes_used": crit["nodes_used"],
        "criterion_max_utilization": max_util,
        "criterion_placed_weight": tally.placed_weight,
        "criterion_cost": tally.cost,
        "criterion_energy": tally.energy,
        "criterion_makespan": crit["makespan"],
        "criterion_completion_time": crit["completion_time"],
        "criterion_tardiness": crit["tardiness"],
    }
    for key, value in reported.items():
        if key in plan.stats:
            got = plan.stats[key]
            if not isinstance(got, int | float) or not _close(float(got), value, abs(value)):
                _fail(f"{key} reported {got}, recomputed {value}")
    check_totals(plan, placement)
    for usage in plan.gpus:
        if usage.gpu not in s.gpus:
            _fail(f"usage reported for unknown GPU {usage.gpu!r}")
        mem = s.types[s.gpus[usage.gpu][1].type].memory_gb
        if s.sched:  # the larger ratio of share and memory at any instant
            util = max(tally.peak_share.get(usage.gpu, 0.0), tally.peak_mem.get(usage.gpu, 0.0) / mem)
        else:
            util = tally.gpu_load.get(usage.gpu, 0.0) / s.cap
            if s.p.horizon_h is None:  # memory is a resource side by side: the larger ratio counts
                util = max(util, tally.gpu_mem.get(usage.gpu, 0.0) / mem)
        if abs(usage.utilization - util) > 1e-5:
            _fail(f"GPU {usage.gpu!r}: utilization reported {usage.utilization}, recomputed {util:.6g}")


def check_totals(plan: Plan, placement: float) -> None:
    """The plan's numbers against a recomputed placement part: placement cost, penalties,
    objective, bound, gap, and `optimal` only within the tolerance (every source form)."""
    if plan.placement_cost is None or not _close(plan.placement_cost, placement, abs(placement)):
        _fail(f"placement_cost {plan.placement_cost} differs from the recomputed {placement}")
    penalty = plan.penalty or 0.0
    if penalty < 0 or (not plan.unassigned and penalty != 0):
        _fail(f"penalty {penalty} inconsistent with {len(plan.unassigned)} unassigned task(s)")
    if plan.objective is None or not _close(plan.objective, placement + penalty, abs(placement) + penalty):
        _fail(f"objective {plan.objective} != placement part {placement} + penalties {penalty}")
    if plan.bound is not None and plan.bound > plan.objective + _REL * max(1.0, abs(plan.objective)):
        _fail(f"bound {plan.bound} above objective {plan.objective}")
    gap = None if plan.bound is None else relative_gap(plan.objective, plan.bound)
    if (plan.gap is None) != (gap is None) or (gap is not None and not _close(plan.gap or 0.0, gap, 1e-9)):
        _fail(f"gap {plan.gap} inconsistent with objective {plan.objective} and bound {plan.bound} ({gap})")
    if plan.status.value == "optimal" and (plan.gap is None or plan.gap > OPTIMALITY_TOLERANCE):
        _fail(f"optimal plan with gap {plan.gap}")


def _check_dominance(plan: Plan, s: _Specs, tally: _Tally) -> None:
    """No left-out task fits on a node once the optional tasks of lower priority there are taken off
    (an exact fit counts; only float noise is forgiven). Vectorized over GPUs: one pass per task
    shape and priority level (tasks that `fits` cannot tell apart share it).
    Scheduled: no left-out task fits beside all the placed work at once, within its time window."""
    if not plan.unassigned:
        return
    p = s.p
    gids = list(s.gpus)
    node_ids = [n.id for n in p.nodes]
    n_index = {n: i for i, n in enumerate(node_ids)}
    type_names = [t.name for t in p.gpu_types]
    k_index = {k: i for i, k in enumerate(type_names)}
    g_node = np.array([n_index[s.gpus[g][0].id] for g in gids], dtype=np.int64)
    g_type = np.array([k_index[s.gpus[g][1].type] for g in gids], dtype=np.int64)
    limit = p.temperature_limit_c
    g_ok = np.array([not _why_unusable(s.gpus[g][1], limit) for g in gids], dtype=bool)
    g_memcap = np.array([s.types[type_names[k]].memory_gb for k in g_type])
    bw = [np.inf if n.bandwidth_gbps is None else n.bandwidth_gbps for n in p.nodes]
    g_bw = np.array([bw[n] for n in g_node])
    speed = np.array([t.speed for t in p.gpu_types])
    tmem = np.array([t.memory_gb for t in p.gpu_types])
    cpu_cap = np.array([np.inf if n.cpu_cores is None else n.cpu_cores for n in p.nodes])
    ram_cap = np.array([np.inf if n.memory_gb is None else n.memory_gb for n in p.nodes])
    g_pos = {g: i for i, g in enumerate(gids)}
    cache: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, set[tuple[str, int]]]] = {}

    def held(level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, set[tuple[str, int]]]:
        """GPU load and memory, node CPU and RAM, spread groups held by work that stays at `level`."""
        if level not in cache:
            load, mem = np.zeros(len(gids)), np.zeros(len(gids))
            cpu, ram = np.zeros(len(node_ids)), np.zeros(len(node_ids))
            groups: set[tuple[str, int]] = set()
            for tid, where in tally.where.items():
                t = s.tasks[tid]
                if t.optional and t.priority < level:
                    continue
                for g in where:
                    load[g_pos[g]] += s.load(t, g)
                    mem[g_pos[g]] += t.gpu_memory_gb
                n = n_index[tally.node_of[tid]]
                cpu[n] += t.cpu_cores
                ram[n] += t.memory_gb
                if t.anti_affinity is not None:
                    groups.add((t.anti_affinity, n))
            cache[level] = (load, mem, cpu, ram, groups)
        return cache[level]

    def fits(
        task: Task,
        load: np.ndarray,
        mem: np.ndarray,
        cpu: np.ndarray,
        ram: np.ndarray,
        groups: set[tuple[str, int]],
        span: tuple[float, float] | None = None,
    ) -> str:
        """Where `task` fits beside the work held (GPUs and node), or '' when nowhere. Scheduled: `span`
        is the earliest start and latest end the task may have."""
        base = np.full(len(type_names), np.nan)
        for k, name in enumerate(type_names):
            if task.duration_h and name in task.duration_h:
                base[k] = task.duration_h[name]
            elif task.work_h is not None:
                base[k] = task.work_h / speed[k]
        type_ok = np.isfinite(base) & (tmem + 1e-12 >= max(task.gpu_memory_gb, task.min_gpu_memory_gb))
        if task.allowed_types is not None:
            type_ok &= np.isin(type_names, task.allowed_types)
        if task.forbidden_types:
            type_ok &= ~np.isin(type_names, task.forbidden_types)
        sel_ok = (
            np.array([all(n.labels.get(k) == v for k, v in task.node_selector.items()) for n in p.nodes])
            if task.node_selector
            else np.ones(len(p.nodes), dtype=bool)
        )
        node_ok = (cpu + task.cpu_cores <= cpu_cap * (1 + _NOISE) + _NOISE) & (
            ram + task.memory_gb <= ram_cap * (1 + _NOISE) + _NOISE
        )
        if task.anti_affinity is not None:
            for grp, n in groups:
                if grp == task.anti_affinity:
                    node_ok[n] = False
        if task.gpus == 0:
            node_ok &= sel_ok
            if s.budget and p.horizon_h is not None:
                node_ok &= np.array([_cpu_hours(task, n) for n in p.nodes]) <= p.horizon_h * (1 + _REL)
            if span is not None:
                node_ok &= span[0] + np.array([_cpu_hours(task, n) for n in p.nodes]) <= span[1] + _tol(
                    span[1]
                )
            return f"node {node_ids[int(np.argmax(node_ok))]!r}" if node_ok.any() else ""
        dur = np.where(type_ok[g_type], np.nan_to_num(base[g_type]), 0.0)
        dur = dur + 8.0 * task.input_gb / (3600.0 * g_bw)
        need = task.gpu_share * (dur if s.budget else 1.0)
        fit = type_ok[g_type] & g_ok & sel_ok[g_node] & node_ok[g_node]
        fit &= load + need <= s.cap * (1 + _NOISE) + _NOISE
        if not s.budget:
            fit &= mem + task.gpu_memory_gb <= g_memcap * (1 + _NOISE) + _NOISE
        if span is not None:
            fit &= span[0] + dur <= span[1] + _tol(span[1])
        key = g_node * len(type_names) + g_type if task.same_type else g_node
        counts = np.bincount(key[fit], minlength=1)
        if counts.max(initial=0) < task.gpus:
            return ""
        k = int(np.argmax(counts))
        n = k // len(type_names) if task.same_type else k
        where = [gids[i] for i in np.flatnonzero(fit & (key == k))][: task.gpus]
        return f"GPU(s) {where} of node {node_ids[n]!r}"

    def latest(task: Task) -> float:
        """The latest end a scheduled task may have: its deadline and the horizon."""
        return min(x for x in (task.deadline_h, p.horizon_h, math.inf) if x is not None)

    def window(task: Task) -> tuple[float, float] | None:
        """Scheduled: the earliest start (release, predecessors' ends) and latest end a left-out task
        has beside the plan as it is; None when a predecessor is left out (so must the task be)."""
        ends = [tally.times.get(a) for a in task.after]
        if any(e is None for e in ends):
            return None
        return max([task.release_h, *(e[1] for e in ends if e is not None)]), latest(task)

    # Under a 'placed' criterion the lowest tier's base is 0: leaving out one of its tasks is the
    # user's trade-off against the other criteria, not a broken priority.
    lowest = None
    if "placed" in dict(p.objective.weights()):
        empty = (np.zeros(len(gids)), np.zeros(len(gids)), np.zeros(len(node_ids)), np.zeros(len(node_ids)))
        for t in sorted((t for t in p.tasks if t.optional), key=lambda t: t.priority):
            span = (t.release_h, latest(t)) if s.sched else None
            if fits(t, *empty, set(), span):  # the first with a home has the lowest such priority
                lowest = t.priority
                break

    def shape(task: Task, span: tuple[float, float] | None) -> tuple[object, ...]:
        """What `fits` reads of a task: two tasks of one shape, at one level, fit alike."""
        timed = s.budget or span is not None
        durations = tuple(sorted((task.duration_h or {}).items()))
        return (
            task.gpus, task.gpu_share, task.gpu_memory_gb, task.min_gpu_memory_gb, task.cpu_cores,
            task.memory_gb, task.same_type, task.input_gb, task.anti_affinity,
            None if task.allowed_types is None else tuple(task.allowed_types),
            tuple(task.forbidden_types or ()), tuple(sorted(task.node_selector.items())),
            (task.work_h, durations) if timed else (task.work_h is not None, tuple(k for k, _ in durations)),
            span,
        )  # fmt: skip

    misses: set[tuple[object, ...]] = set()  # (level, shape) that fit nowhere: one pass per shape
    for u in plan.unassigned:
        task = s.tasks[u.task]
        if task.priority == lowest:
            continue
        span = window(task) if s.sched else None
        level = -math.inf if s.sched else task.priority
        key = (level, shape(task, span))
        if key in misses or (s.sched and span is None):
            continue
        # scheduled: conservative, beside everything placed, as if it all ran at once
        where = fits(task, *held(level), span)
        if not where:
            misses.add(key)
        if where:
            kind = "CPU-only task" if task.gpus == 0 else "task"
            _fail(
                f"{kind} {u.task!r} (priority {task.priority}) left out though it fits on {where}"
                " in place of lower-priority work or in free room"
            )


__all__ = ["check_totals", "hours", "objective_weights", "verify_problem"]
