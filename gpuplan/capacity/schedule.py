"""Schedules on a fleet: per-node EDF simulation, insertion repair, a list scheduler, and the check.

A placement is (node, GPU indices within the node). A node's tasks run in earliest-deadline-first
order, each starting when all of its GPUs are free (a gang starts on all of them at once) and
holding them for its duration: a real non-preemptive schedule, so a task is on time when its end
is within its deadline and the horizon. With single-GPU tasks this is exactly the EDF test per GPU
(for every deadline d, the durations due by d sum to at most d); with gangs it is a sufficient one.

`check_schedule` is the independent check: it recomputes everything from the workload and catalog
(memory, allowed types, gang size on one node, durations, no overlap on any GPU, deadlines and
horizon) and trusts nothing computed elsewhere.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from gpuplan.capacity.models import Catalog, Workload
from gpuplan.capacity.prepare import Prepared

_TOL = 1e-6


@dataclass(frozen=True)
class FleetNodes:
    """The nodes of a fleet, numbered offer by offer."""

    offer: np.ndarray  # [N] offer index of each node
    ordinal: np.ndarray  # [N] index of the node within its offer

    @staticmethod
    def of(nodes: tuple[int, ...] | list[int]) -> FleetNodes:
        offer = np.repeat(np.arange(len(nodes)), nodes).astype(np.int64)
        ordinal = np.concatenate([np.arange(n) for n in nodes]).astype(np.int64) if len(nodes) else offer
        return FleetNodes(offer=offer, ordinal=ordinal)

    @property
    def size(self) -> int:
        return int(self.offer.shape[0])


Placement = tuple[int, tuple[int, ...]]  # (node, GPUs within the node)


class Schedule:
    """Tasks on nodes with their EDF start and end times, kept up to date node by node."""

    def __init__(self, prep: Prepared, fleet: FleetNodes) -> None:
        self.prep = prep
        self.fleet = fleet
        self.on_node: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in range(fleet.size)]
        self.where: dict[int, Placement] = {}
        self.start: dict[int, float] = {}
        self.end: dict[int, float] = {}
        self.due = np.minimum(prep.deadline, prep.horizon)

    def dur(self, t: int, node: int) -> float:
        return float(self.prep.duration[t, self.fleet.offer[node]])

    def simulate(self, node: int, items: list[tuple[int, tuple[int, ...]]]) -> dict[int, tuple[float, float]]:
        """EDF start/end of `items` on `node` (module docstring)."""
        k = int(self.prep.per_node[self.fleet.offer[node]])
        free = np.zeros(k)
        out: dict[int, tuple[float, float]] = {}
        order = sorted(items, key=lambda it: (self.due[it[0]], -len(it[1]), -self.dur(it[0], node), it[0]))
        for t, gpus in order:
            idx = list(gpus)
            s = float(free[idx].max())
            e = s + self.dur(t, node)
            free[idx] = e
            out[t] = (s, e)
        return out

    def on_time(self, times: dict[int, tuple[float, float]]) -> bool:
        return all(e <= self.due[t] * (1 + 1e-9) + 1e-9 for t, (_, e) in times.items())

    def set_node(self, node: int, items: list[tuple[int, tuple[int, ...]]]) -> None:
        for t, _ in self.on_node[node]:
            self.where.pop(t, None)
            self.start.pop(t, None)
            self.end.pop(t, None)
        self.on_node[node] = list(items)
        for t, (s, e) in self.simulate(node, items).items():
            self.start[t], self.end[t] = s, e
        for t, gpus in items:
            self.where[t] = (node, gpus)

    def late(self) -> list[int]:
        return [t for t, e in self.end.items() if e > self.due[t] * (1 + 1e-9) + 1e-9]

    def remove(self, tasks: list[int]) -> None:
        drop = set(tasks)
        for node in {self.where[t][0] for t in tasks if t in self.where}:
            self.set_node(node, [it for it in self.on_node[node] if it[0] not in drop])

    def busy(self, node: int) -> np.ndarray:
        k = int(self.prep.per_node[self.fleet.offer[node]])
        load = np.zeros(k)
        for t, gpus in self.on_node[node]:
            load[list(gpus)] += self.dur(t, node)
        return load

    def try_insert(self, t: int, nodes: np.ndarray | None = None) -> bool:
        """Put t on the first node (least loaded first) where every task stays on time."""
        prep = self.prep
        cand = np.flatnonzero(prep.eligible[t, self.fleet.offer]) if nodes is None else nodes
        if cand.size == 0:
            return False
        busy = [self.busy(int(j)) for j in cand]
        order = np.argsort([b.sum() / b.size for b in busy], kind="stable")
        k = int(prep.gang[t])
        for i in order:
            j = int(cand[i])
            gpus = tuple(sorted(int(g) for g in np.argsort(busy[i], kind="stable")[:k]))
            if busy[i][list(gpus)].max() + self.dur(t, j) > self.due[t] * (1 + 1e-9) + 1e-9:
                continue
            items = [*self.on_node[j], (t, gpus)]
            times = self.simulate(j, items)
            if self.on_time(times):
                self.set_node(j, items)
                return True
        return False

    def placements(self) -> dict[int, Placement]:
        return dict(self.where)


def repair(sched: Schedule, pending: list[int]) -> list[int]:
    """Insert `pending` tasks (required first, then by priority and deadline); returns those left."""
    prep = sched.prep
    pri = np.array([t.priority for t in prep.workload.tasks])
    order = sorted(
        pending,
        key=lambda t: (prep.optional[t], -pri[t], sched.due[t], -prep.gang[t] * prep.work[t], t),
    )
    return [t for t in order if not sched.try_insert(t)]


def list_schedule(
    prep: Prepared,
    fleet: FleetNodes,
    tasks: list[int],
    quota: np.ndarray | None = None,
    task_class: np.ndarray | None = None,
) -> tuple[Schedule, list[int]]:
    """From scratch: tasks by (required, deadline, size), each to the node and GPUs finishing it
    first; with `quota` [C, O] (reference GPU-hours per class and offer, e.g. the sizing MILP's
    flow) offers with quota left for the task's class come first, so the mix follows the sizing."""
    sched = Schedule(prep, fleet)
    free = [np.zeros(int(prep.per_node[o])) for o in fleet.offer]
    left_quota = None if quota is None else quota.astype(np.float64).copy()
    order = sorted(tasks, key=lambda t: (prep.optional[t], sched.due[t], -prep.gang[t] * prep.work[t], t))
    left: list[int] = []
    for t in order:
        k = int(prep.gang[t])
        need = k * float(prep.work[t])
        c = -1 if task_class is None else int(task_class[t])
        best: tuple[int, float, int, tuple[int, ...]] | None = None
        for j in np.flatnonzero(prep.eligible[t, fleet.offer]):
            f = free[j]
            gpus = np.argsort(f, kind="stable")[:k]
            end = float(f[gpus].max()) + sched.dur(t, int(j))
            if end > sched.due[t] * (1 + 1e-9) + 1e-9:
                continue
            o = int(fleet.offer[j])
            off_plan = 0 if left_quota is None or c < 0 else int(left_quota[c, o] < 0.5 * need)
            key = (off_plan, end, int(j), tuple(sorted(int(g) for g in gpus)))
            if best is None or key[:2] < best[:2]:
                best = key
        if best is None:
            left.append(t)
            continue
        _, end, j, gpus = best
        free[j][list(gpus)] = end
        sched.on_node[j].append((t, gpus))
        if left_quota is not None and c >= 0:
            left_quota[c, fleet.offer[j]] -= need
    for j in range(fleet.size):
        sched.set_node(j, sched.on_node[j])
    late = sched.late()
    sched.remove(late)
    return sched, left + late


def check_schedule(
    wl: Workload,
    cat: Catalog,
    nodes: dict[str, int],
    rows: list[tuple[str, str, int, list[int], float, float]],
) -> list[str]:
    """Independent check of (task, offer, node ordinal, GPUs, start, end) rows; empty when valid."""
    errors: list[str] = []
    offers = {o.name: o for o in cat.offers}
    tasks = {t.id: t for t in wl.tasks}
    seen: set[str] = set()
    busy: dict[tuple[str, int, int], list[tuple[float, float]]] = {}
    for tid, oname, ordinal, gpus, start, end in rows:
        t, off = tasks.get(tid), offers.get(oname)
        if t is None or off is None:
            errors.append(f"{tid}: unknown task or offer {oname!r}")
            continue
        if tid in seen:
            errors.append(f"{tid}: placed twice")
        seen.add(tid)
        if not 0 <= ordinal < nodes.get(oname, 0):
            errors.append(f"{tid}: node {oname}#{ordinal} is not in the fleet")
        if (
            len(set(gpus)) != t.gpus
            or len(gpus) != t.gpus
            or not all(0 <= g < off.gpus_per_node for g in gpus)
        ):
            errors.append(f"{tid}: GPUs {gpus} for a gang of {t.gpus} on a {off.gpus_per_node}-GPU node")
        if t.gpu_memory_gb > off.gpu.memory_gb + 1e-9:
            errors.append(f"{tid}: needs {t.gpu_memory_gb} GB, {oname} has {off.gpu.memory_gb}")
        if t.allowed_types is not None and off.gpu.name not in t.allowed_types:
            errors.append(f"{tid}: GPU type {off.gpu.name} not allowed")
        dur = t.work_h / off.gpu.speed
        if abs(end - start - dur) > _TOL * max(1.0, dur) or start < -_TOL:
            errors.append(f"{tid}: runs {start:g}..{end:g}, duration should be {dur:g}")
        due = min(wl.horizon_h, t.deadline_h if t.deadline_h is not None else wl.horizon_h)
        if end > due + _TOL * max(1.0, due):
            errors.append(f"{tid}: ends at {end:g} h, after its deadline {due:g} h")
        for g in gpus:
            busy.setdefault((oname, ordinal, g), []).append((start, end))
    for (oname, ordinal, g), spans in busy.items():
        spans.sort()
        for (s0, e0), (s1, _) in itertools.pairwise(spans):
            if s1 < e0 - _TOL * max(1.0, e0):
                errors.append(f"{oname}#{ordinal} GPU {g}: tasks overlap ({s0:g}..{e0:g} and {s1:g}..)")
                break
    missing = [t.id for t in wl.tasks if not t.optional and t.id not in seen]
    if missing:
        errors.append(f"required tasks not placed: {', '.join(missing[:10])}")
    return errors


__all__ = ["FleetNodes", "Schedule", "check_schedule", "list_schedule", "repair"]
