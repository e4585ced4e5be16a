"""Schedules on a fleet: per-node time-tables with gaps, list scheduling, repair, and the check.

A placement is (node, GPU indices within the node, start). Every node keeps, per GPU, its free
intervals within [0, horizon]. A task of gang g and duration p goes on g GPUs of one node that are
all free over [start, start + p] (a gang starts on all of them at once); when g divides the node's
GPU count the g GPUs form an aligned block (GPUs b*g .. b*g + g - 1), which keeps the node cut into
blocks that later gangs can use. The earliest feasible start on a block is one of the starts of
its GPUs' free intervals, so the search looks only at those; a short task can therefore fill a
gap that a gang left before it (best fit in time). Every placement ends by the task's deadline and
the horizon, so a schedule built here is on time by construction.

`check_schedule` is the independent check: it recomputes everything from the workload and catalog
(memory, allowed types, gang size on one node, durations, no overlap on any GPU, deadlines and
horizon) and trusts nothing computed elsewhere.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gpuplan.capacity.models import Catalog, Workload
from gpuplan.capacity.prepare import Prepared

_TOL = 1e-6
_EPS = 1e-9  # slack on times computed here (starts are sums of durations, exact up to rounding)


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
Slot = tuple[float, float, tuple[int, ...]]  # (start, idle gap created before it, GPUs)


class Timeline:
    """One node's GPUs as sorted lists of free intervals (start, end) within [0, horizon]."""

    def __init__(self, gpus: int, horizon: float) -> None:
        self.k = gpus
        self.horizon = horizon
        self.free: list[list[tuple[float, float]]] = [[(0.0, horizon)] for _ in range(gpus)]

    def blocks(self, g: int) -> list[tuple[int, ...]]:
        """Aligned blocks of g GPUs when g divides the node, else every GPU (see `find`)."""
        if self.k % g == 0:
            return [tuple(range(b * g, (b + 1) * g)) for b in range(self.k // g)]
        return [tuple(range(self.k))]

    @staticmethod
    def _holder(ivs: list[tuple[float, float]], s: float, e: float) -> tuple[float, float] | None:
        for a, b in ivs:
            if a > s + _EPS:
                return None
            if b >= e - _EPS:
                return (a, b)
        return None

    def find(self, g: int, p: float, due: float) -> Slot | None:
        """Earliest start (then least idle gap left before it) for g GPUs over p hours ending by due."""
        latest = min(due, self.horizon) - p
        if latest < -_EPS or g > self.k:
            return None
        best: Slot | None = None
        for block in self.blocks(g):
            starts = sorted(
                {a for q in block for a, b in self.free[q] if b - a >= p - _EPS and a <= latest + _EPS}
            )
            for s in starts:
                if best is not None and s > best[0] + _EPS:
                    break
                held = [(q, self._holder(self.free[q], s, s + p)) for q in block]
                ok = [(q, iv) for q, iv in held if iv is not None]
                if len(ok) < g:
                    continue
                ok.sort(key=lambda qi: (-qi[1][0], qi[0]))  # tightest fit: free since the latest
                chosen = ok[:g]
                gap = sum(s - iv[0] for _, iv in chosen)
                slot = (s, gap, tuple(sorted(q for q, _ in chosen)))
                if best is None or (round(s, 9), round(gap, 9)) < (round(best[0], 9), round(best[1], 9)):
                    best = slot
                break
        return best

    def occupy(self, gpus: Iterable[int], s: float, e: float) -> None:
        """Mark [s, e] busy on `gpus` (it must be free there)."""
        for q in gpus:
            ivs = self.free[q]
            for i, (a, b) in enumerate(ivs):
                if a <= s + _EPS and b >= e - _EPS:
                    repl = [iv for iv in ((a, s), (e, b)) if iv[1] - iv[0] > _EPS]
                    ivs[i : i + 1] = repl
                    break
            else:  # pragma: no cover - callers only occupy what `find` returned
                raise ValueError(f"GPU {q}: {s:g}..{e:g} is not free")

    def release(self, gpus: Iterable[int], s: float, e: float) -> None:
        """Free [s, e] on `gpus` again, merging with neighbouring free intervals."""
        for q in gpus:
            ivs = self.free[q]
            lo, hi = s, e
            keep = []
            for a, b in ivs:
                if b >= lo - _EPS and a <= hi + _EPS:
                    lo, hi = min(lo, a), max(hi, b)
                else:
                    keep.append((a, b))
            keep.append((lo, hi))
            keep.sort()
            self.free[q] = keep

    def idle(self) -> float:
        return sum(b - a for ivs in self.free for a, b in ivs)


class Schedule:
    """Tasks on nodes with their start and end times, one `Timeline` per node."""

    def __init__(self, prep: Prepared, fleet: FleetNodes) -> None:
        self.prep = prep
        self.fleet = fleet
        self.due = np.minimum(prep.deadline, prep.horizon)
        self.lines = [Timeline(int(prep.per_node[o]), prep.horizon) for o in fleet.offer]
        self.where: dict[int, Placement] = {}
        self.start: dict[int, float] = {}
        self.end: dict[int, float] = {}
        self.on_node: list[set[int]] = [set() for _ in range(fleet.size)]

    def dur(self, t: int, node: int) -> float:
        return float(self.prep.duration[t, self.fleet.offer[node]])

    def nodes_for(self, t: int) -> np.ndarray:
        """Nodes whose offer can take task t."""
        return np.flatnonzero(self.prep.eligible[t, self.fleet.offer])

    def find(self, t: int, node: int) -> Slot | None:
        return self.lines[node].find(int(self.prep.gang[t]), self.dur(t, node), float(self.due[t]))

    def place(self, t: int, node: int, slot: Slot) -> None:
        s, _, gpus = slot
        e = s + self.dur(t, node)
        self.lines[node].occupy(gpus, s, e)
        self.where[t] = (node, gpus)
        self.start[t], self.end[t] = s, e
        self.on_node[node].add(t)

    def unplace(self, t: int) -> None:
        node, gpus = self.where.pop(t)
        self.lines[node].release(gpus, self.start.pop(t), self.end.pop(t))
        self.on_node[node].discard(t)

    def best(self, t: int, nodes: Iterable[int]) -> tuple[int, Slot] | None:
        """The node and slot with the earliest end (then least idle gap, then lowest node)."""
        out: tuple[tuple[float, float, int], int, Slot] | None = None
        for j in nodes:
            slot = self.find(t, int(j))
            if slot is None:
                continue
            key = (round(slot[0] + self.dur(t, int(j)), 9), round(slot[1], 9), int(j))
            if out is None or key < out[0]:
                out = (key, int(j), slot)
        return None if out is None else (out[1], out[2])

    def insert(self, t: int, nodes: Iterable[int] | None = None) -> bool:
        hit = self.best(t, self.nodes_for(t) if nodes is None else nodes)
        if hit is None:
            return False
        self.place(t, *hit)
        return True

    def late(self) -> list[int]:
        """Tasks ending after their deadline (none, by construction; kept as a guard)."""
        return [t for t, e in self.end.items() if e > self.due[t] * (1 + 1e-9) + 1e-9]

    def placements(self) -> dict[int, Placement]:
        return dict(self.where)


def level_key(prep: Prepared, levels: np.ndarray | None) -> Callable[[int], tuple]:
    """EDF by deadline level, then larger gangs, then longer work (LPT), then index."""
    due = np.minimum(prep.deadline, prep.horizon)
    lv = (
        np.zeros(due.shape[0], dtype=np.int64)
        if levels is None
        else np.searchsorted(levels, due * (1 - 1e-12))
    )
    return lambda t: (int(lv[t]), -int(prep.gang[t]), -float(prep.work[t]), t)


def size_key(prep: Prepared) -> Callable[[int], tuple]:
    """Larger gangs, then longer work (LPT), then earlier deadline, then index."""
    return lambda t: (-int(prep.gang[t]), -float(prep.work[t]), float(prep.deadline[t]), t)


def timetable(
    sched: Schedule, tasks: Sequence[int], nodes: Callable[[int], Sequence[int]], key: Callable[[int], tuple]
) -> list[int]:
    """Place `tasks` in `key` order, each on the node (among `nodes(t)`) that ends it first."""
    left = []
    for t in sorted(tasks, key=key):
        if not sched.insert(t, nodes(t)):
            left.append(t)
    return left


def _work(prep: Prepared, tasks: Iterable[int]) -> float:
    return float(sum(prep.gang[t] * prep.work[t] for t in tasks))


def rebuild_node(
    sched: Schedule, node: int, extra: Sequence[int], keys: Sequence[Callable[[int], tuple]]
) -> bool:
    """Re-time-table `node` from scratch with its tasks and `extra`; keep it if every task fits."""
    old = [(t, sched.where[t][1], sched.start[t]) for t in sorted(sched.on_node[node])]
    items = [t for t, _, _ in old] + list(extra)
    for key in keys:
        for t, _, _ in old:
            sched.unplace(t)
        left = timetable(sched, items, lambda _t: (node,), key)
        if not left:
            return True
        for t in items:
            if t in sched.where:
                sched.unplace(t)
        for t, gpus, s in old:
            sched.place(t, node, (s, 0.0, gpus))
    return False


def repair(
    sched: Schedule,
    pending: list[int],
    keys: Sequence[Callable[[int], tuple]] = (),
    deadline: float | None = None,
) -> list[int]:
    """Place `pending` tasks (required first, then priority, deadline, size): insertion into gaps
    on any eligible node; then a node rebuilt with the task (orders `keys`); then one task moved
    off a node to another to make room. Returns the tasks still left."""
    prep = sched.prep
    pri = np.array([t.priority for t in prep.workload.tasks])
    order = sorted(
        pending,
        key=lambda t: (prep.optional[t], -pri[t], sched.due[t], -prep.gang[t] * prep.work[t], t),
    )
    left: list[int] = []
    for t in order:
        if sched.insert(t):
            continue
        if prep.optional[t] or (deadline is not None and time.monotonic() > deadline):
            left.append(t)
            continue
        if _rebuild_any(sched, t, keys) or _relocate(sched, t):
            continue
        left.append(t)
    return left


def _rebuild_any(sched: Schedule, t: int, keys: Sequence[Callable[[int], tuple]]) -> bool:
    """Rebuild the eligible node with the most idle time first; True when t went in somewhere."""
    if not keys:
        return False
    cand = sorted(sched.nodes_for(t).tolist(), key=lambda j: (-sched.lines[j].idle(), j))
    need = float(sched.prep.gang[t]) * sched.prep.work[t]
    for j in cand:
        if sched.lines[j].idle() * sched.prep.speed[sched.fleet.offer[j]] < need:
            break
        if rebuild_node(sched, int(j), [t], keys):
            return True
    return False


def _window(sched: Schedule, u: int) -> float:
    """Longest free run on u's GPUs if u were removed (free before + u + free after, the least over
    its GPUs)."""
    node, gpus = sched.where[u]
    s, e = sched.start[u], sched.end[u]
    out = np.inf
    for q in gpus:
        ivs = sched.lines[node].free[q]
        before = next((s - a for a, b in ivs if abs(b - s) <= _EPS), 0.0)
        after = next((b - e for a, b in ivs if abs(a - e) <= _EPS), 0.0)
        out = min(out, before + (e - s) + after)
    return float(out)


def _relocate(sched: Schedule, t: int, tries: int = 400) -> bool:
    """Move one task off an eligible node to another node (or elsewhere on it) so that t fits;
    tasks whose removal opens a long enough free run are tried first. True on success."""
    prep = sched.prep
    done = 0
    for j in sorted(sched.nodes_for(t).tolist(), key=lambda j: (-sched.lines[j].idle(), j)):
        need = sched.dur(t, j)
        movable = []
        for u in sched.on_node[j]:
            if prep.optional[u] or u == t:
                continue
            room = _window(sched, u)
            if room >= need - _EPS:
                movable.append((int(prep.gang[u] != prep.gang[t]), room, u))
        for _, _, u in sorted(movable):
            if done >= tries:
                return False
            done += 1
            keep = (sched.where[u][0], (sched.start[u], 0.0, sched.where[u][1]))
            sched.unplace(u)
            slot = sched.find(t, j)
            if slot is not None:
                sched.place(t, j, slot)
                others = [int(i) for i in sched.nodes_for(u) if i != j]
                if sched.insert(u, others) or sched.insert(u, [j]):
                    return True
                sched.unplace(t)
            sched.place(u, *keep)
    return False


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


__all__ = [
    "FleetNodes",
    "Schedule",
    "Timeline",
    "check_schedule",
    "level_key",
    "rebuild_node",
    "repair",
    "size_key",
    "timetable",
]
