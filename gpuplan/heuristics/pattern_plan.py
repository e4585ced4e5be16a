"""A plan from the node-pattern LP (`gpuplan.bounds.node_patterns`): its columns, rounded to whole
nodes, say which tasks each node takes; a greedy pass places them there, then fills what is left.

When the batch asks for more than the fleet holds, which tasks to place and on which nodes (small
tasks on the large-memory GPUs, whole-GPU tasks on the small ones, CPU and host memory spent in
step with the GPUs) is what a plain size order gets wrong, and what the LP's patterns answer. Phase
1 places each chosen task, in the greedy's order (gangs first, then the largest), on its node only;
phase 2 offers every task still out (those the rounding left out, and chosen ones that found no
room there) anywhere, smallest first, so the room left holds as many tasks as possible.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from gpuplan.bounds.node_patterns import NodePatterns
from gpuplan.heuristics.fleet_greedy import FleetState, task_order
from gpuplan.program.fleet import FleetProgram


class _Guided(FleetState):
    """A FleetState whose candidate nodes can be narrowed to one node for the task at hand."""

    only: int = -1  # the one node allowed, or -1 for every node

    def node_ok(self, t: int) -> np.ndarray:
        ok = super().node_ok(t)
        if self.only < 0:
            return ok
        one = np.zeros_like(ok)
        one[self.only] = ok[self.only]
        return one


def _size(p: FleetProgram) -> np.ndarray:
    """float [T]: the largest fraction of the fleet's GPUs, CPU or host memory a task takes."""
    gpus = max(int((p.gpu_ok & ~p.host).sum()), 1)
    rel = [p.gang * p.share / gpus]
    for cap, need in ((p.node_cpu, p.cpu), (p.node_ram, p.ram)):
        finite = cap[np.isfinite(cap)]
        if finite.size and finite.sum() > 0:
            rel.append(need / finite.sum())
    return np.maximum.reduce(rel)


def pattern_targets(p: FleetProgram, pat: NodePatterns) -> np.ndarray:
    """int [T]: the node each task goes to when the node-pattern LP's columns are rounded to whole
    nodes (-1: none). Per node class, each column gets floor(lambda) of its nodes, then the
    columns with the largest fractions one more while nodes are left; a node's pattern is filled
    with tasks of each shape in the greedy's order while there are any."""
    target = np.full(p.n_tasks, -1, dtype=np.int64)
    order = task_order(p, "dominant")
    shape = pat.shape_of_task[order]
    pools = {int(i): deque(order[shape == i]) for i in np.unique(shape[shape >= 0])}
    for b in np.unique(pat.node_class[pat.node_class >= 0]):
        nodes = list(np.flatnonzero(pat.node_class == b))
        cols = [(x, lam) for cb, x, lam in pat.columns if cb == b]
        counts = [int(np.floor(lam + 1e-9)) for _, lam in cols]
        for j in np.argsort([-(lam - np.floor(lam + 1e-9)) for _, lam in cols], kind="stable"):
            if sum(counts) >= len(nodes):
                break
            if cols[j][1] - counts[j] > 1e-9:
                counts[j] += 1
        for (x, _), c in zip(cols, counts, strict=True):
            for _ in range(c):
                if not nodes:
                    break
                n = nodes.pop(0)
                for i in np.flatnonzero(x):
                    pool = pools.get(int(i), deque())
                    for _ in range(int(x[i])):
                        if pool:
                            target[pool.popleft()] = n
    return target


def guided_greedy(p: FleetProgram, target: np.ndarray, deadline: float | None = None) -> FleetState:
    """One guided pass (module docstring): each task t with `target[t]` >= 0 first, on that node
    only; then every task still out, anywhere. Optional tasks go in only when that lowers the
    objective, as in the plain greedy; running tasks are kept where they are first when they still
    fit. Stops placing at `deadline`."""
    st = _Guided(p)
    first = task_order(p, "dominant")
    for t in first:
        cur = p.current[t]
        cur = cur[cur >= 0]
        if cur.size and cur.size == p.gang[t]:
            ok = st.gpu_ok(t, st.node_ok(t))
            one_node = np.unique(p.gpu_node[cur]).size == 1
            one_type = not p.same_type[t] or np.unique(p.gpu_type[cur]).size == 1
            if np.all(ok[cur]) and one_node and one_type:
                st.place(t, cur)
    chosen = first[target[first] >= 0]
    rest = np.lexsort((_size(p), p.gang, -p.priority))
    for phase, tasks in ((1, chosen), (2, rest)):
        for i, t in enumerate(tasks):
            if deadline is not None and i % 64 == 0 and time.monotonic() >= deadline:
                st.only = -1
                return st
            if st.assign[t, 0] >= 0:
                continue
            st.only = int(target[t]) if phase == 1 else -1
            spot = st.best_spot(int(t))
            if spot is None:
                continue
            if p.optional[t]:
                added = float(st.gpu_score(t, spot).sum() + st.node_extra(t, p.gpu_node[spot[:1]])[0])
                if added + p.transfer_each[t] >= p.penalty[t] + p.move_cost[t] * p.gang[t] * (
                    p.current[t, 0] >= 0
                ):
                    continue
            st.place(int(t), spot)
    st.only = -1
    return st


__all__ = ["guided_greedy", "pattern_targets"]
